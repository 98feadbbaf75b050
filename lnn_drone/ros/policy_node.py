"""Policy node: a model file on the numpy runtime (or the classical expert) turned into
commands at the control rate, with a failsafe on stale, missing or non-finite input.

Subscribes to exactly the inputs the model declares (``imu``, ``odom``, ``goal``,
``camera/image_raw``), publishes ``motor_commands`` (JointState) or ``ctbr_command``
(TwistStamped) stamped with the newest sensor sample used, and ``/diagnostics`` at ~1 Hz.
``policy_lifecycle_node`` is the managed variant for onboard use: the model loads on
*configure*, commands flow only while *active*.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rclpy import logging as rclpy_logging
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Image, Imu
from std_msgs.msg import Float32MultiArray

from . import convert as cv
from .diagnostics import ERROR, OK, WARN, diagnostic_array
from .node_config import PolicyNodeConfig
from .params import ConfigGuard, declare_config
from .scheduling import schedule_node
from .policy_logic import Command, ExpertAdapter, PolicyController, PolicyCore
from diagnostic_msgs.msg import DiagnosticArray


def default_model_path() -> str:
    """The shipped model: the installed share directory, else the source tree's models/."""
    try:
        from ament_index_python.packages import get_package_share_directory

        p = Path(get_package_share_directory("lnn_drone")) / "models" / "hover.safetensors"
        if p.exists():
            return str(p)
    except Exception:
        pass
    return str(Path(__file__).resolve().parents[2] / "models" / "hover.safetensors")


def build_controller(cfg: PolicyNodeConfig):
    """The controller a config asks for; raises with a clear message if it cannot be built."""
    from ..vehicle import load_vehicle

    vehicle = load_vehicle(cfg.vehicle)
    if cfg.controller == "expert":
        return ExpertAdapter(vehicle), vehicle
    from ..policy import Policy
    from ..policy.model_file import load_model
    from ..policy.vehicle_matching import VehicleMatchingError, matching_for_model

    try:  # derived model inputs (goal_error…) are registered by the drone feature module
        from ..policy import drone_features  # noqa: F401
    except ImportError:
        pass
    path = cfg.model or default_model_path()
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist (set the 'model' parameter)")
    # the vehicle's configured hover thrust and drag per mass: for models whose collective is
    # relative to the one, or that read their velocity through the other (``drag_velocity``)
    drag = vehicle.hover_drag_per_mass
    has_drag = min(drag) > 0.0
    model = load_model(path)
    matching = None
    if cfg.vehicle_matching:
        try:
            matching = matching_for_model(model, vehicle)
        except VehicleMatchingError as exc:
            rclpy_logging.get_logger("policy_node").warning(
                f"vehicle {vehicle.name!r}: the model flies without vehicle matching: {exc}")
        if matching is not None:
            rclpy_logging.get_logger("policy_node").info(f"vehicle matching on: {matching.description}")
    policy = Policy(model, record=False, hover_thrust_config=vehicle.hover_command,
                    drag_per_mass_config=drag if has_drag else None, vehicle_matching=matching)
    if not has_drag and "drag_velocity" in policy.model.input_names:
        raise ValueError(f"model {path!r} reads drag_velocity, but vehicle {vehicle.name!r} has no rotor drag "
                         "(rotor_drag_n_per_rpm_mps) to read a velocity through")
    img = policy.model.config.image_input
    return PolicyController(policy, img.shape if img is not None else None), vehicle


def control_period(cfg: PolicyNodeConfig, controller) -> float:
    if cfg.control_rate_hz > 0:
        return 1.0 / cfg.control_rate_hz
    return controller.control_period or 1.0 / 240.0


class PolicyGraph:
    """Subscriptions, publishers and timers of a policy node around a :class:`PolicyCore`.

    Shared by the plain and the lifecycle node; ``active`` gates publishing."""

    def __init__(self, node: Node, cfg: PolicyNodeConfig, lifecycle: bool = False):
        self.node = node
        self.cfg = cfg
        controller, vehicle = build_controller(cfg)
        self.period = control_period(cfg, controller)
        self.core = PolicyCore(cfg, controller, vehicle.hover_command, self.period)
        self.active = not lifecycle
        self._image_shape = getattr(controller, "image_shape", None)
        mk_pub = node.create_lifecycle_publisher if lifecycle else node.create_publisher
        topic = "motor_commands" if controller.mode == "motors" else "ctbr_command"
        from geometry_msgs.msg import TwistStamped
        from sensor_msgs.msg import JointState

        self.cmd_pub = mk_pub(JointState if controller.mode == "motors" else TwistStamped, topic, cv.COMMAND_QOS)
        self.diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10, **cv.no_event_handlers("publisher"))
        self.neuron_pub = None
        self.subs = []
        req = controller.required
        if "imu" in req or "attitude" in req:  # attitude = the imu message's orientation estimate
            self.subs.append(node.create_subscription(Imu, "imu", self._on_imu, cv.SENSOR_QOS, **cv.no_event_handlers()))
        if "odom" in req:
            self.subs.append(node.create_subscription(Odometry, "odom", self._on_odom, cv.SENSOR_QOS, **cv.no_event_handlers()))
        if "goal" in req:
            self.subs.append(node.create_subscription(PoseStamped, "goal", self._on_goal, cv.GOAL_QOS))
        if "image" in req:
            self.subs.append(node.create_subscription(Image, "camera/image_raw", self._on_image, cv.SENSOR_QOS,
                                                      **cv.no_event_handlers()))
        self.watchdog_timer = node.create_timer(self.period, self._on_watchdog)  # node clock: sim time if use_sim_time
        self.diag_timer = node.create_timer(cfg.diagnostics_period_s, self._publish_diagnostics,
                                            clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._logged_reason: str | None = None
        self.guard = None
        node.get_logger().info(
            f"{cfg.controller} controller ready: inputs {sorted(req)}, output {controller.mode} on '{topic}', "
            f"{1.0 / self.period:.1f} Hz, failsafe '{cfg.failsafe_action}'")

    # ------------------------------------------------------------------ inputs
    def _now(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def _feed(self, name: str, stamp, value: np.ndarray | None, error: str = "") -> None:
        cmd = self.core.on_sample(name, cv.msg_to_ns(stamp), value, self._now(), error)
        if cmd is not None and not cmd.failsafe:
            # a tick answered: the watchdog restarts its countdown, so while inputs flow it never
            # fires (one executor wake-up less per tick); one period after the last answered tick
            # it checks the inputs' ages, and declares the failsafe by the second period at most
            self.watchdog_timer.reset()
        self._publish(cmd)

    def _on_imu(self, m: Imu) -> None:
        if "attitude" in self.core.inputs:  # before imu: both belong to the same tick
            try:
                self._feed("attitude", m.header.stamp, cv.imu_attitude(m))
            except cv.MessageError as exc:
                self._feed("attitude", m.header.stamp, None, str(exc))
        self._feed("imu", m.header.stamp, cv.imu_vector(m))

    def _on_odom(self, m: Odometry) -> None:
        self._feed("odom", m.header.stamp, cv.odom_vector(m))

    def _on_goal(self, m: PoseStamped) -> None:
        self._feed("goal", m.header.stamp, cv.goal_vector(m))

    def _on_image(self, m: Image) -> None:
        try:
            img = cv.image_array(m, self._image_shape)
        except cv.MessageError as exc:
            self.node.get_logger().error(f"camera/image_raw rejected: {exc}", throttle_duration_sec=1.0)
            self._feed("image", m.header.stamp, None, str(exc))
            self._publish_diagnostics()
            return
        self._feed("image", m.header.stamp, img)

    def _on_watchdog(self) -> None:
        self._publish(self.core.watchdog(self._now()))

    # ------------------------------------------------------------------ outputs
    def _publish(self, cmd: Command | None) -> None:
        if cmd is None or not self.active:
            return
        log = self.node.get_logger()
        if cmd.failsafe and self._logged_reason is None:
            log.warning(f"FAILSAFE ({self.cfg.failsafe_action}): {cmd.reason}")
        elif not cmd.failsafe and self._logged_reason is not None:
            log.info(f"control resumed: {cmd.reason or 'inputs back'}")
        self._logged_reason = cmd.reason if cmd.failsafe else None
        v = cmd.values
        if not np.isfinite(v).all():  # last line of defence: a NaN never leaves the node
            v = self.core.failsafe_values()
        if cmd.mode == "motors":
            self.cmd_pub.publish(cv.motor_msg(cmd.stamp_ns, v))
        else:
            self.cmd_pub.publish(cv.ctbr_msg(cmd.stamp_ns, v[0], v[1:]))
        if self.neuron_pub is not None and not cmd.failsafe:
            n = getattr(self.core.controller, "neurons", None)
            if n is not None:
                self.neuron_pub.publish(Float32MultiArray(data=[float(x) for x in n]))

    def set_internals(self, on: bool) -> None:
        if on and self.neuron_pub is None:
            self.neuron_pub = self.node.create_publisher(Float32MultiArray, "~/neurons", 10)

    def _publish_diagnostics(self) -> None:
        core, st = self.core, self.core.stats
        now_ns = self._now()
        wall = st.command_wall
        span = (wall[-1] - wall[0]) if len(wall) > 1 else 0.0
        rate = (len(wall) - 1) / span if span > 0 else 0.0
        values = {"control_rate_hz": rate, "control_rate_target_hz": 1.0 / self.period,
                  "failsafe": core.failsafe_reason is not None, "failsafe_reason": core.failsafe_reason or "",
                  "failsafe_action": self.cfg.failsafe_action, "failsafe_events": st.failsafe_events,
                  "failsafe_commands": st.failsafe_commands, "commands_computed": st.computed,
                  "episode_resets": st.resets, "duplicate_samples": st.duplicates, "active": self.active, "controller": self.cfg.controller,
                  "model": self.cfg.model or ("" if self.cfg.controller == "expert" else default_model_path())}
        if st.inference_s:
            values["inference_ms_mean"] = 1e3 * float(np.mean(st.inference_s))
            values["inference_ms_max"] = 1e3 * float(np.max(st.inference_s))
        for name, age in core.input_ages(now_ns).items():
            values[f"input_age_s.{name}"] = age if math.isfinite(age) else -1.0
        for name, ages in st.input_age_s.items():
            values[f"input_age_ms_p99.{name}"] = 1e3 * float(np.percentile(ages, 99)) if ages else -1.0
        for name, slot in core.inputs.items():
            values[f"rejected.{name}"] = slot.rejected
        errors = core.input_errors()
        for name, err in errors.items():
            values[f"error.{name}"] = err
        if errors:
            level, msg = ERROR, "; ".join(f"{k}: {v}" for k, v in errors.items())
        elif core.failsafe_reason is not None:
            level, msg = WARN, f"failsafe ({self.cfg.failsafe_action}): {core.failsafe_reason}"
        else:
            level, msg = OK, "flying"
        self.diag_pub.publish(diagnostic_array(self.node.get_clock().now().to_msg(), f"{self.node.get_fully_qualified_name()}: policy",
                                               "lnn_drone", level, msg, values))
        st.inference_s.clear()
        st.input_age_s.clear()
        del wall[:-1]

    # ------------------------------------------------------------------ parameters
    def apply(self, changes: dict, candidate: PolicyNodeConfig) -> str | None:
        if "model" in changes:
            if candidate.controller != "policy":
                return "the expert controller has no model; 'model' applies to controller=policy"
            try:
                controller, _ = build_controller(candidate)
            except Exception as exc:
                return f"model not swapped: {exc}"
            reason = self.core.swap_controller(controller)
            if reason:
                return f"model not swapped: {reason}"
            self._image_shape = getattr(controller, "image_shape", None)
            self.node.get_logger().info(f"model swapped to {candidate.model}")
        self.cfg = candidate
        self.core.config = candidate
        self.set_internals(candidate.publish_internals)
        return None

    def destroy(self) -> None:
        n = self.node
        for s in self.subs:
            n.destroy_subscription(s)
        for t in (self.watchdog_timer, self.diag_timer):
            n.destroy_timer(t)
        n.destroy_publisher(self.cmd_pub)
        n.destroy_publisher(self.diag_pub)
        if self.neuron_pub is not None:
            n.destroy_publisher(self.neuron_pub)


class PolicyNode(Node):
    def __init__(self, **kwargs):
        super().__init__("policy", **kwargs)
        cfg = declare_config(self, PolicyNodeConfig)
        schedule_node(self, cfg.realtime_priority)
        self.graph = PolicyGraph(self, cfg)
        self.graph.set_internals(cfg.publish_internals)
        self.guard = ConfigGuard(self, cfg, self.graph.apply)


def main(args=None) -> int:
    from .node_main import run_node

    return run_node("policy_node", PolicyNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
