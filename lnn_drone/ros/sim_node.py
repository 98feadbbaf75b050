"""Simulation node: the PyBullet quadrotor flying the seeded evaluation episodes over ROS.

Publishes ``/clock``, ``imu``, ``odom``, ``goal`` and (with a camera) ``camera/image_raw`` +
``camera/camera_info``; applies ``motor_commands`` or ``ctbr_command`` (through the simulated
rate loop and mixer, as a flight controller would). The episode loop *is* the in-process
evaluation's (:func:`lnn_drone.training.evaluation.run_episode`): the ROS graph is plugged in as
its controller, so a flight over ROS and an in-process flight differ only by the transport.

* lockstep: every control tick waits for the command computed from that tick's sensors (matched
  by stamp); a wait longer than ``lockstep_timeout_s`` holds the last command and is counted.
* real time: ticks are paced by the wall clock; the newest command received is applied.

Sim time restarts at 0 with each episode (a backwards jump: the policy node resets its state).
"""
from __future__ import annotations

import json
import os
import time
from collections import deque

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState

from . import convert as cv
from .diagnostics import OK, WARN, diagnostic_array
from .node_config import SimNodeConfig
from .params import declare_config
from .scheduling import schedule_node

CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)


class LinkStats:
    """Tick/command bookkeeping: lockstep timeouts, control rate, sensor->command latency."""

    def __init__(self):
        self.ticks = 0
        self.commands = 0
        self.matched = 0
        self.timeouts = 0
        self.resends = 0
        self.latency_s: deque = deque(maxlen=200_000)
        self.published_at: dict[int, float] = {}
        self.wall_start = time.perf_counter()

    def summary(self) -> dict:
        lat = np.asarray(self.latency_s, dtype=float) * 1e6
        wall = time.perf_counter() - self.wall_start
        return {"ticks": self.ticks, "commands_received": self.commands, "commands_matched": self.matched,
                "lockstep_timeouts": self.timeouts, "lockstep_resends": self.resends,
                "control_rate_achieved_frac": self.matched / self.ticks if self.ticks else 0.0,
                "command_rate_hz": self.matched / wall if wall > 0 else 0.0,
                **{f"latency_us_p{q:g}".replace(".", ""): float(np.percentile(lat, q)) if lat.size else None
                   for q in (10, 50, 90, 99, 99.9)},
                "latency_samples": int(lat.size)}


class SimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("sim", **kwargs)
        self.cfg: SimNodeConfig = declare_config(self, SimNodeConfig)
        schedule_node(self, self.cfg.realtime_priority)
        from ..training.evaluation import EvalSettings, make_env

        c, e = self.cfg, self.cfg.episode
        self.settings = EvalSettings(tier=e.tier, episodes=max(e.count, 1), seed=e.seed, vehicle=c.sim.vehicle,
                                     latency_ms=e.latency_ms, episode_s=e.duration_s, goal=tuple(e.goal),
                                     control_hz=c.sim.control_hz, physics_hz=c.sim.physics_hz)
        self.settings.check()
        self.visual = None
        if e.task == "visual_target":
            self.visual = _visual_settings(c)
            from ..training.vision import make_visual_env

            self.env = make_visual_env(self.visual)
        else:
            self.env = make_env(self.settings, c.sim)
        self.dt = 1.0 / c.sim.control_hz
        fp = c.frame_prefix
        self.frames = (fp + "odom", fp + "base_link", fp + "camera")
        # no QoS-event handlers on the per-tick topics: each would cost every wake-up of the loop
        # (see convert.no_event_handlers); the goal keeps rclpy's incompatible-QoS warning
        quiet_pub, quiet_sub = cv.no_event_handlers("publisher"), cv.no_event_handlers()
        self.clock_pub = self.create_publisher(Clock, "/clock", CLOCK_QOS, **quiet_pub)
        self.imu_pub = self.create_publisher(Imu, "imu", cv.SENSOR_QOS, **quiet_pub)
        self.odom_pub = self.create_publisher(Odometry, "odom", cv.SENSOR_QOS, **quiet_pub)
        self.goal_pub = self.create_publisher(PoseStamped, "goal", cv.GOAL_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10, **quiet_pub)
        self.cam_pubs = None
        if c.sim.camera.enabled:
            self.cam_pubs = (self.create_publisher(Image, "camera/image_raw", cv.SENSOR_QOS, **quiet_pub),
                             self.create_publisher(CameraInfo, "camera/camera_info", cv.SENSOR_QOS, **quiet_pub))
        self.create_subscription(JointState, "motor_commands", self._on_motors, cv.COMMAND_QOS, **quiet_sub)
        self.create_subscription(TwistStamped, "ctbr_command", self._on_ctbr, cv.COMMAND_QOS, **quiet_sub)
        self.stats = LinkStats()
        self._cmd: tuple[int, str, np.ndarray] | None = None  # newest (stamp, mode, values)
        self._fresh_cmd = False
        self.results: list[dict] = []
        self.get_logger().info(f"{'lockstep' if c.lockstep else 'real-time'} sim at {c.sim.control_hz:g} Hz control / "
                               f"{c.sim.physics_hz:g} Hz physics, {e.count or 'endless'} x {e.duration_s:g} s {e.tier} episodes")

    def close(self) -> None:
        self.env.close()

    # ------------------------------------------------------------------ commands in
    def _on_command(self, stamp, mode: str, values: np.ndarray) -> None:
        ns = cv.msg_to_ns(stamp)
        self.stats.commands += 1
        sent = self.stats.published_at.pop(ns, None)
        if sent is not None:
            self.stats.latency_s.append(time.perf_counter() - sent)
            self.stats.matched += 1
        if not np.isfinite(values).all():
            values = np.zeros(4) if mode == "motors" else np.array([0.0, 0.0, 0.0, 0.0])
            self.get_logger().error("non-finite command received: motors off", throttle_duration_sec=1.0)
        self._cmd = (ns, mode, values)
        self._fresh_cmd = True

    def _on_motors(self, m: JointState) -> None:
        try:
            self._on_command(m.header.stamp, "motors", cv.motor_vector(m))
        except cv.MessageError as exc:
            self.get_logger().error(f"motor_commands rejected: {exc}", throttle_duration_sec=1.0)

    def _on_ctbr(self, m: TwistStamped) -> None:
        self._on_command(m.header.stamp, "ctbr", cv.ctbr_vector(m))

    # ------------------------------------------------------------------ the episode link
    def wait_for_controller(self, executor) -> bool:
        deadline = time.monotonic() + self.cfg.startup_timeout_s
        while rclpy.ok():
            pubs = self.count_publishers("motor_commands") + self.count_publishers("ctbr_command")
            n = max(1, self.cfg.min_sensor_subscribers)
            subs = max(self.imu_pub.get_subscription_count(), self.odom_pub.get_subscription_count())
            # the command topics' other listeners (a recorder) must be known too, or their first
            # commands are lost: the graph counts this node's own subscription as one of n
            cmd_subs = max(self.count_subscribers("motor_commands"), self.count_subscribers("ctbr_command"))
            if pubs and subs >= n and cmd_subs >= n:
                settle = time.monotonic() + 0.3  # let the remaining endpoints match
                while time.monotonic() < settle:
                    executor.spin_once(timeout_sec=0.05)
                return True
            if time.monotonic() > deadline:
                return False
            executor.spin_once(timeout_sec=0.05)
        return False

    def publish_tick(self, sim) -> int:
        """Sensors of the current tick; returns the stamp a command for it will carry."""
        cam = sim.camera
        # the frame goes out before the IMU that triggers the policy, so a camera policy sees the
        # frame of its own tick
        if self.cam_pubs is not None and cam is not None and cam.stamp >= 0 and cam.stamp != getattr(self, "_cam_stamp", None):
            self._cam_stamp = cam.stamp
            c_ns = cv.seconds_to_ns(cam.stamp)
            cc = cam.config
            self.cam_pubs[0].publish(cv.image_msg(c_ns, cam.image, self.frames[2]))
            self.cam_pubs[1].publish(cv.camera_info_msg(c_ns, cc.width, cc.height, cc.fov_deg, self.frames[2]))
        t_ns, imu_ns = self.publish_sensors(sim)
        stamp = max(t_ns, imu_ns)
        self.stats.ticks += 1
        self.stats.published_at[stamp] = time.perf_counter()
        if len(self.stats.published_at) > 1000:  # commands that never came: forget them
            for k in sorted(self.stats.published_at)[:500]:
                del self.stats.published_at[k]
        return stamp

    def publish_sensors(self, sim) -> tuple[int, int]:
        """/clock, IMU and odometry of the current tick (also a lockstep re-send): their stamps."""
        t_ns = cv.seconds_to_ns(sim.t)
        self.clock_pub.publish(Clock(clock=cv.ns_to_msg(t_ns)))
        imu = sim.imu
        imu_ns = cv.seconds_to_ns(imu.stamp)
        base, odom_frame = self.frames[1], self.frames[0]
        # the simulated FC's attitude estimate rides in the message (true attitude, as in the envs)
        self.imu_pub.publish(cv.imu_msg(imu_ns, imu.gyro, imu.accel, base, orientation=sim._quat))
        self.odom_pub.publish(cv.odom_msg(t_ns, sim.odometry(), odom_frame, base))
        return t_ns, imu_ns

    def publish_diagnostics(self, episode: int) -> None:
        s = self.stats.summary()
        level = WARN if s["lockstep_timeouts"] else OK
        msg = f"episode {episode}: {s['lockstep_timeouts']} lockstep timeouts" if self.cfg.lockstep else f"episode {episode}"
        self.diag_pub.publish(diagnostic_array(cv.ns_to_msg(cv.seconds_to_ns(self.env.sim.t)), f"{self.get_fully_qualified_name()}: sim",
                                               "lnn_drone-sim", level, msg, {**s, "episode": episode, "lockstep": self.cfg.lockstep}))


class RosLink:
    """The ROS graph as a controller of :func:`run_episode`: publish this tick, get its command."""

    name = "ros"

    def __init__(self, node: SimNode, executor):
        self.node, self.executor = node, executor
        self._tick_wall = 0.0
        self._diag_wall = 0.0
        self.episode = -1

    def reset(self, envs: list) -> None:
        from ..control import Mixer, RateController

        base = envs[0].unwrapped  # one vehicle per sim node (run_episodes is batched)
        self.sim = base.sim
        v = base.variation.vehicle
        self.rate, self.mixer, self.tmax = RateController(v), Mixer(v), v.max_thrust_per_rotor_n
        self.hold = np.full(4, v.hover_command)
        self.node._cmd = None
        self.episode += 1
        self.node.goal_pub.publish(cv.goal_msg(0, base.goal, self.node.frames[0]))
        self._tick_wall = time.perf_counter()

    def _motors(self, mode: str, values: np.ndarray) -> np.ndarray:
        if mode == "motors":
            return values
        torque = self.rate(values[1:], self.sim.imu.gyro, self.node.dt)  # integral as the envs' rate loop
        return self.mixer(float(values[0]) * 4.0 * self.tmax, torque)

    def act(self, observations: list, envs: list) -> np.ndarray:
        try:
            return self._act()[None, :]
        except ExternalShutdownException:
            raise KeyboardInterrupt from None

    def _act(self) -> np.ndarray:
        node, ex, cfg = self.node, self.executor, self.node.cfg
        expected = node.publish_tick(self.sim)
        node._fresh_cmd = False
        if cfg.lockstep:
            deadline = time.monotonic() + cfg.lockstep_timeout_s
            resend_at = time.monotonic() + cfg.lockstep_resend_s
            while rclpy.ok():
                c = node._cmd
                if c is not None and node._fresh_cmd and c[0] >= expected:
                    break
                if time.monotonic() >= resend_at:  # a best-effort sample may have been dropped
                    node.publish_sensors(self.sim)
                    node.stats.resends += 1
                    resend_at = time.monotonic() + cfg.lockstep_resend_s
                remaining = min(deadline, resend_at) - time.monotonic()
                if deadline - time.monotonic() <= 0:
                    node.stats.timeouts += 1
                    node.get_logger().warning(f"lockstep: no command for t={expected / 1e9:.4f} s within "
                                           f"{cfg.lockstep_timeout_s} s (holding the last one)", throttle_duration_sec=1.0)
                    break
                ex.spin_once(timeout_sec=max(remaining, 0.0))
        else:
            self._tick_wall += self.sim_dt_wall
            while rclpy.ok():
                remaining = self._tick_wall - time.perf_counter()
                if remaining <= 0:
                    break
                ex.spin_once(timeout_sec=remaining)
            if -remaining > 0.5:  # fell far behind (a debugger, a loaded machine): don't sprint to catch up
                self._tick_wall = time.perf_counter()
        if not rclpy.ok():
            raise KeyboardInterrupt
        now = time.monotonic()
        if now - self._diag_wall > 1.0:
            self._diag_wall = now
            node.publish_diagnostics(self.episode)
        c = node._cmd
        if c is not None:
            self.hold = self._motors(c[1], c[2])
        return self.hold

    @property
    def sim_dt_wall(self) -> float:
        return self.node.dt / self.node.cfg.real_time_factor


def _jsonable(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def write_results(path: str, config: dict, link: dict, summary: dict | None, results: list) -> None:
    """The results file of a simulated flight (read by ``lnn-drone fly`` and the benchmarks),
    episodes with their trajectories; it appears complete or not at all."""
    out = {"config": config, "link": link, "summary": summary,
           "episodes": [{k: _jsonable(v) for k, v in r.__dict__.items() if k != "trajectory"}
                        | {"trajectory": {k: _jsonable(np.asarray(v)) for k, v in (r.trajectory or {}).items()}}
                        for r in results]}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f)
    os.replace(tmp, path)


def run(node: SimNode) -> int:
    from ..training.evaluation import run_episode, summarize
    from .node_main import stopped_by_shutdown

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    log = node.get_logger()
    if not node.wait_for_controller(executor):
        log.error(f"no controller (motor_commands/ctbr_command publisher and imu/odom subscriber) within "
                  f"{node.cfg.startup_timeout_s} s")
        return 3
    link = RosLink(node, executor)
    e = node.cfg.episode
    results = []
    i = e.start_index
    try:
        while rclpy.ok() and (e.count == 0 or i < e.start_index + e.count):
            if node.visual is not None:
                r = _visual_episode(node, link, i)
                results.append(r)
                log.info(f"episode {i}: {'success' if r.success else ('crash' if r.crashed else 'fail')}, "
                         f"final distance to the standoff point {r.final_error_m:.3f} m")
                i += 1
                continue
            r = run_episode(node.env, link, node.settings, i, record=True)
            results.append(r)
            log.info(f"episode {i}: {'success' if r.success else ('crash' if r.crashed else 'fail')}, "
                     f"rmse {r.rmse_m:.3f} m, final error {r.final_error_m:.3f} m")
            i += 1
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        if not stopped_by_shutdown("sim_node", exc):
            raise  # a shutdown racing a publish: what was flown is still written below
    if node.cfg.results_file:
        write_results(node.cfg.results_file,
                      {"lockstep": node.cfg.lockstep, "control_hz": node.cfg.sim.control_hz,
                       "physics_hz": node.cfg.sim.physics_hz, "tier": e.tier, "seed": e.seed,
                       "vehicle": node.cfg.sim.vehicle},
                      node.stats.summary(),
                      summarize("ros", node.settings, results).to_json_dict() if results and node.visual is None else None,
                      results)
    if not node.cfg.exit_when_done and rclpy.ok():
        try:
            executor.spin()
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
    return 0


def _visual_settings(c: SimNodeConfig):
    """The visual-target protocol at the node's rates and camera (the env is built from these)."""
    from ..training.vision import VisualEvalSettings, VisualSetup

    cam, e = c.sim.camera, c.episode
    if not cam.enabled:
        raise ValueError("episode.task visual_target needs sim.camera.enabled: true")
    # the node turns ctbr commands into motors itself (RosLink), so the env takes motors
    setup = VisualSetup(control_hz=c.sim.control_hz, physics_hz=c.sim.physics_hz, width=cam.width, height=cam.height,
                        fov_deg=cam.fov_deg, episode_s=e.duration_s, action_mode="motors")
    s = VisualEvalSettings(condition=e.condition, episodes=max(e.count, 1), seed=e.seed, vehicle=c.sim.vehicle, setup=setup)
    s.check()
    return s


def _visual_episode(node: SimNode, link, index: int):
    """One visual-target episode over ROS, scored by the visual protocol, with the fields the
    flight report reads (rmse over the success window, final error, trajectory)."""
    from types import SimpleNamespace

    from ..training.vision import TAIL_S, run_visual_episodes

    rec = _Trajectory(link)
    v = run_visual_episodes([node.env], rec, node.visual, [index])[0]
    t, pos, goal = rec.arrays(node.env)
    tail = t >= t[-1] - TAIL_S
    rmse = float(np.sqrt(np.mean(np.sum((pos[tail] - goal[tail]) ** 2, axis=1))))
    return SimpleNamespace(index=index, success=v.success, crashed=v.crashed, rmse_m=rmse,
                           final_error_m=v.final_distance_error_m, heading_error_deg=v.final_heading_error_deg,
                           duration_s=v.duration_s, trajectory={"t": t, "position": pos, "goal": goal[-1]})


class _Trajectory:
    """Passes the link through and keeps position and standoff goal per tick."""

    def __init__(self, inner):
        self.inner, self.name = inner, inner.name
        self.t, self.pos, self.goal = [], [], []

    def reset(self, envs):
        self.inner.reset(envs)

    def act(self, observations, envs):
        b = envs[0].unwrapped
        self.t.append(b.sim.t)
        self.pos.append(np.asarray(b.sim.position))
        self.goal.append(b.goal[:3].copy())
        return self.inner.act(observations, envs)

    def arrays(self, env):
        b = env.unwrapped
        t = np.asarray(self.t + [b.sim.t])
        return t, np.asarray(self.pos + [np.asarray(b.sim.position)]), np.asarray(self.goal + [b.goal[:3].copy()])


def main(args=None) -> int:
    from .node_main import run_node

    return run_node("sim_node", SimNode, args, spin=run)

if __name__ == "__main__":
    raise SystemExit(main())
