"""Flight-controller bridge node: commands in, the FC's telemetry out (as on a real vehicle,
where the IMU is the flight controller's).

Selects an :mod:`lnn_drone.fc` backend by the ``backend`` parameter; the node itself knows no
protocol. Subscribes to ``motor_commands`` and ``ctbr_command``; publishes ``imu`` (and
``odom`` when the backend has an estimate) and the link state (connected, armed, FC failsafe)
on ``/diagnostics``.
"""
from __future__ import annotations

import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState

from ..fc import FcError, create_backend
from . import convert as cv
from .diagnostics import ERROR, OK, WARN, diagnostic_array
from .node_config import FcBridgeNodeConfig
from .params import ConfigGuard, declare_config
from .scheduling import schedule_node

JITTER_CLAMP_NS = 100_000_000


class FcBridgeNode(Node):
    def __init__(self, **kwargs):
        super().__init__("fc_bridge", **kwargs)
        self.cfg: FcBridgeNodeConfig = declare_config(self, FcBridgeNodeConfig)
        schedule_node(self, self.cfg.realtime_priority)
        c = self.cfg
        kwargs = {}
        if c.backend == "sim":
            kwargs = {"sim_config": c.sim, "initial_position": c.initial_position, "command_timeout_s": c.command_timeout_s}
        elif c.backend == "betaflight":
            kwargs = {"device": c.device, "telemetry_rate_hz": c.telemetry_rate_hz, "command_timeout_s": c.command_timeout_s}
        else:
            kwargs = {"device": c.device}
        self.fc = create_backend(c.backend, **kwargs)
        self.fc.open()
        self.imu_pub = self.create_publisher(Imu, "imu", cv.SENSOR_QOS)
        self.odom_pub = self.create_publisher(Odometry, "odom", cv.SENSOR_QOS) if c.publish_odom else None
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        if "motors" in self.fc.command_modes:
            self.create_subscription(JointState, "motor_commands", self._on_motors, cv.COMMAND_QOS)
        if "ctbr" in self.fc.command_modes:
            self.create_subscription(TwistStamped, "ctbr_command", self._on_ctbr, cv.COMMAND_QOS)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self.create_timer(1.0 / c.telemetry_rate_hz, self._on_tick, clock=steady)
        self.create_timer(1.0, self._publish_diagnostics, clock=steady)
        self.guard = ConfigGuard(self, c, self._apply)
        self.rejected = 0
        self._last_imu_stamp = -(2**62)
        self.get_logger().info(f"fc bridge: backend '{c.backend}', commands {sorted(self.fc.command_modes)}")

    def close(self) -> None:
        self.fc.close()

    def _apply(self, changes: dict, candidate: FcBridgeNodeConfig) -> str | None:
        if "command_timeout_s" in changes and hasattr(self.fc, "command_timeout_s"):
            self.fc.command_timeout_s = candidate.command_timeout_s
        self.cfg = candidate
        return None

    # ------------------------------------------------------------------ commands
    def _maybe_arm(self) -> None:
        st = self.fc.status(time.monotonic())
        if not st.armed and self.cfg.auto_arm and not st.failsafe:
            try:
                self.fc.arm()
                self.get_logger().info("armed")
            except FcError as exc:
                self.get_logger().error(f"arming refused: {exc}", throttle_duration_sec=2.0)

    def _on_motors(self, m: JointState) -> None:
        try:
            u = cv.motor_vector(m)
        except cv.MessageError as exc:
            self.rejected += 1
            self.get_logger().error(f"motor_commands rejected: {exc}", throttle_duration_sec=1.0)
            return
        if not np.isfinite(u).all():
            self.rejected += 1
            return  # the FC's command timeout takes over if this persists
        self._maybe_arm()
        self.fc.send_motors(u, time.monotonic())

    def _on_ctbr(self, m: TwistStamped) -> None:
        v = cv.ctbr_vector(m)
        if not np.isfinite(v).all():
            self.rejected += 1
            return
        self._maybe_arm()
        self.fc.send_ctbr(v[0], v[1:], time.monotonic())

    # ------------------------------------------------------------------ telemetry
    def _on_tick(self) -> None:
        host_now = time.monotonic()
        try:
            readings = self.fc.poll(host_now)
        except FcError as exc:
            self.get_logger().error(f"FC link: {exc}", throttle_duration_sec=1.0)
            return
        ros_now = self.get_clock().now().nanoseconds
        if ros_now == 0:
            return  # use_sim_time and no /clock yet: there is no time to stamp the samples with
        for r in readings:
            stamp = ros_now - int((host_now - r.stamp) * 1e9)
            # never a little older than the previous sample (receivers take that as time going
            # back): under sim time the wall-clock link delay jitters against the slower clock.
            # A big step back is a real clock reset and passes.
            if 0 <= self._last_imu_stamp - stamp < JITTER_CLAMP_NS:
                stamp = self._last_imu_stamp + 1
            self._last_imu_stamp = stamp
            self.imu_pub.publish(cv.imu_msg(stamp, r.gyro, r.accel))
        if self.odom_pub is not None and readings:
            s = self.fc.odometry()
            if s is not None:
                self.odom_pub.publish(cv.odom_msg(ros_now - int((host_now - readings[-1].stamp) * 1e9), s))

    def _publish_diagnostics(self) -> None:
        st = self.fc.status(time.monotonic())
        level = ERROR if not st.connected else (WARN if st.failsafe or not st.armed else OK)
        values = {"backend": self.cfg.backend, "connected": st.connected, "armed": st.armed,
                  "fc_failsafe": st.failsafe, "last_rx_age_s": st.last_rx_age_s, "rejected_commands": self.rejected}
        values.update(dict(st.extra))
        self.diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), f"{self.get_fully_qualified_name()}: fc link",
                                               self.cfg.backend, level, st.message, values))


def main(args=None) -> int:
    from .node_main import run_node

    return run_node("fc_bridge_node", FcBridgeNode, args)


if __name__ == "__main__":
    raise SystemExit(main())
