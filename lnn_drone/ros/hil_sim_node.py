"""HIL sim node: the PyBullet vehicle wired to a Betaflight SITL's physics ports.

The firmware gets the vehicle's sensors and drives its motors over UDP every physics step
(``lnn_drone.hil``); this node only publishes what the rest of the graph needs: ``/clock`` (the
simulated time, which the firmware's clock follows too), ``odom`` (true state, standing in for
mocap/VIO), ``goal`` and ``fc/motor_output`` (the firmware's motor outputs, contract order).
The IMU the policy flies on comes from the flight controller, through the fc bridge node. The vehicle sits level on the ground until the firmware spins the motors
(the bridge armed it), then each episode releases it at the protocol's initial state.
"""
from __future__ import annotations

import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState

from . import convert as cv
from .diagnostics import OK, diagnostic_array
from .node_config import HilSimNodeConfig
from .params import declare_config
from .node_main import stopped_by_shutdown
from .sim_node import CLOCK_QOS, write_results

ARMED_OUTPUT = 0.01  # any motor output above this: the firmware is armed (idle is ~0.055)
NOT_ARMED_EXIT = 3  # exit status when the firmware never armed (fly --launch hil_betaflight retries on it)
CLOCK_LEAD_PERIODS = 3.0


class HilSimNode(Node):
    def __init__(self, **kwargs):
        super().__init__("hil_sim", **kwargs)
        self.cfg: HilSimNodeConfig = declare_config(self, HilSimNodeConfig)
        from ..hil.episodes import hil_settings
        from ..hil.rig import SitlVehicle

        c, e = self.cfg, self.cfg.episode
        if e.task != "hover":
            raise ValueError(f"hil_sim_node flies the hover protocol only, got episode.task {e.task!r}")
        self.settings = hil_settings(tier=e.tier, episodes=max(e.count, 1), seed=e.seed, episode_s=e.duration_s,
                                     vehicle=c.vehicle, control_hz=c.odom_rate_hz, physics_hz=c.physics_hz)
        self.settings.goal = tuple(e.goal)
        self.vehicle = SitlVehicle(c.sitl_state_port, c.sitl_motor_port, c.vehicle, c.physics_hz,
                                   c.real_time_factor, c.imu_noise)
        self.vehicle.link.state_addr = (c.sitl_host, c.sitl_state_port)
        self.vehicle.hold()
        self.clock_lead_ns = int(round(CLOCK_LEAD_PERIODS * 1e9 / c.odom_rate_hz))
        self.clock_pub = self.create_publisher(Clock, "/clock", CLOCK_QOS)
        self.odom_pub = self.create_publisher(Odometry, "odom", cv.SENSOR_QOS)
        self.goal_pub = self.create_publisher(PoseStamped, "goal", cv.GOAL_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # what the firmware drives the motors with (contract order, [0, 1]): telemetry of the ESC side
        self.motor_pub = self.create_publisher(JointState, "fc/motor_output", cv.SENSOR_QOS)
        self.commands_seen = 0  # the policy's commands go to the FC; counted here for the report only
        # a deep queue: with the command topic's depth 1, commands that arrive while the physics
        # loop runs would overwrite each other and the count would under-report the policy's rate
        count_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
        self.create_subscription(TwistStamped, "ctbr_command", self._count, count_qos)
        self.get_logger().info(f"HIL sim: SITL state port {c.sitl_state_port}, motor port {c.sitl_motor_port}, "
                               f"{c.physics_hz:g} Hz physics at {c.real_time_factor:g}x real time")

    def _count(self, _msg) -> None:
        self.commands_seen += 1

    def close(self) -> None:
        self.vehicle.close()

    def stamp_ns(self) -> int:
        if not self.cfg.sim_clock:
            return self.get_clock().now().nanoseconds
        return int(round(self.vehicle.fdm_t * 1e9))

    def publish_clock(self) -> None:
        """/clock leads the published state by ``CLOCK_LEAD_PERIODS`` control periods: a
        receiver must never hold a sample stamped after its own clock (the policy takes time
        going backwards for an episode reset), yet a busy executor handles a batch of messages
        odom-first, and the bridge's IMU is stamped from the bridge's clock. The lead only adds
        to the measured input ages."""
        if not self.cfg.sim_clock:
            return
        m = Clock()
        m.clock.sec, m.clock.nanosec = divmod(self.stamp_ns() + self.clock_lead_ns, 1_000_000_000)
        self.clock_pub.publish(m)

    def publish_state(self) -> None:
        ns = self.stamp_ns()
        self.odom_pub.publish(cv.odom_msg(ns, self.vehicle.sim.odometry()))
        self.motor_pub.publish(cv.motor_msg(ns, self.vehicle.outputs))

    def publish_diagnostics(self, episode: int) -> None:
        link = self.vehicle.link
        self.diag_pub.publish(diagnostic_array(self.get_clock().now().to_msg(), f"{self.get_fully_qualified_name()}: sitl link",
                                               "hil_sim", OK, "flying", {"episode": episode, "state_packets": link.sent,
                                                                          "motor_packets": link.received,
                                                                          "missed": link.missed,
                                                                          "held_packets": link.held_sent,
                                                                          "held_missed": link.held_missed}))


def run(node: HilSimNode) -> int:
    from ..hil.episodes import physics_episode, steps_per_control
    from ..training.evaluation import summarize

    executor = SingleThreadedExecutor()
    executor.add_node(node)
    log = node.get_logger()
    c, e, v = node.cfg, node.cfg.episode, node.vehicle
    goal = np.asarray(e.goal, dtype=float)
    deadline = time.monotonic() + c.arm_timeout_s
    while max(v.outputs) <= ARMED_OUTPUT:  # on the ground until the firmware arms
        node.publish_clock()
        node.goal_pub.publish(cv.goal_msg(node.stamp_ns(), goal))
        node.publish_state()
        executor.spin_once(timeout_sec=0.02)
        if time.monotonic() > deadline or not rclpy.ok():
            log.error(f"the firmware did not arm within {c.arm_timeout_s} s")
            return NOT_ARMED_EXIT
    log.info("motors spinning: the firmware is armed, releasing the vehicle")
    per = steps_per_control(node.settings)
    last_diag = [time.monotonic()]
    results = []

    def on_step(k: int) -> None:
        node.publish_clock()
        if k % per == 0:
            node.publish_state()
            executor.spin_once(timeout_sec=0.0)
        now = time.monotonic()
        if now - last_diag[0] > 1.0:
            last_diag[0] = now
            node.publish_diagnostics(len(results))
            node.goal_pub.publish(cv.goal_msg(node.stamp_ns(), goal))

    i = e.start_index
    try:
        while rclpy.ok() and (e.count == 0 or i < e.start_index + e.count):
            r = physics_episode(v, node.settings, i, on_step, record=True)
            results.append(r)
            log.info(f"episode {i}: {'success' if r.success else ('crash' if r.crashed else 'fail')}, "
                     f"rmse {r.rmse_m:.3f} m, final error {r.final_error_m:.3f} m")
            i += 1
    except KeyboardInterrupt:
        pass
    except Exception as exc:
        if not stopped_by_shutdown("hil_sim_node", exc):
            raise  # a shutdown racing a publish: what was flown is still written below
    if c.results_file:
        lat = np.asarray(v.link.latency_s, dtype=float) * 1e6
        write_results(c.results_file,
                      {"hil": "betaflight_sitl", "physics_hz": c.physics_hz, "control_hz": c.odom_rate_hz,
                       "tier": e.tier, "seed": e.seed, "vehicle": c.vehicle, "real_time_factor": c.real_time_factor,
                       "lockstep": False},
                      {"commands_matched": node.commands_seen, "state_packets": v.link.sent,
                       "motor_packets": v.link.received, "missed": v.link.missed,
                       "held_packets": v.link.held_sent, "held_missed": v.link.held_missed,
                       "latency_us_p50": float(np.percentile(lat, 50)) if lat.size else None,
                       "latency_us_p99": float(np.percentile(lat, 99)) if lat.size else None},
                      summarize("ros-hil", node.settings, results).to_json_dict() if results else None,
                      results)
    if not c.exit_when_done:
        while rclpy.ok():  # hold the vehicle, keep clock and state going until shut down
            node.publish_clock()
            node.publish_state()
            executor.spin_once(timeout_sec=0.5 / c.odom_rate_hz)
    return 0


def main(args=None) -> int:
    from .node_main import run_node

    return run_node("hil_sim_node", HilSimNode, args, spin=run)


if __name__ == "__main__":
    raise SystemExit(main())
