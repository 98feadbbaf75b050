"""A harness for multi-process ROS tests and benchmarks: a private DDS domain, node processes
started like ``lnn-drone fly`` starts them, and an in-process rclpy node that plays the
simulator / ground station (publishes sensors and /clock, collects commands and diagnostics,
sets parameters, drives lifecycle transitions). Real rclpy over real DDS; nothing is mocked.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .env import DomainLease, ros_environment
from .launcher import Graph, NodeSpec


class RosHarness:
    def __init__(self, log_dir: str | Path):
        self.lease = DomainLease()
        self.env = ros_environment(domain_id=self.lease.domain_id)
        self._saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
        self.node = rclpy.create_node("harness", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.graph = Graph(self.env, log_dir)
        self.commands: list[tuple[int, np.ndarray]] = []
        self.diagnostics: list = []
        self._pubs: dict = {}

    # ------------------------------------------------------------------ processes
    def start(self, executable: str, name: str, params: dict | None = None, params_files=(), namespace: str = ""):
        return self.graph.start(NodeSpec(executable, name, list(map(str, params_files)), params or {}, namespace))

    def close(self) -> dict:
        codes = self.graph.stop()
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.rclpy.try_shutdown(context=self.context)
        self.lease.close()
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        return codes

    def __enter__(self) -> "RosHarness":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ spinning
    def spin_until(self, predicate, timeout: float) -> bool:
        """Spin until ``predicate()`` holds; ``timeout`` (wall s) is a hang guard only."""
        deadline = time.monotonic() + timeout
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.executor.spin_once(timeout_sec=min(left, 0.05))
        return True

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    # ------------------------------------------------------------------ the fake vehicle
    def publisher(self, msg_type, topic: str, qos):
        key = (topic, msg_type)
        if key not in self._pubs:
            self._pubs[key] = self.node.create_publisher(msg_type, topic, qos)
        return self._pubs[key]

    def collect_commands(self) -> None:
        from geometry_msgs.msg import TwistStamped
        from sensor_msgs.msg import JointState
        from diagnostic_msgs.msg import DiagnosticArray

        from . import convert as cv

        self._cmd_subs = {}
        self._cmd_subs["motor_commands"] = self.node.create_subscription(JointState, "motor_commands",
                                      lambda m: self.commands.append((cv.msg_to_ns(m.header.stamp), np.array(m.effort))), cv.COMMAND_QOS)
        self._cmd_subs["ctbr_command"] = self.node.create_subscription(TwistStamped, "ctbr_command",
                                      lambda m: self.commands.append((cv.msg_to_ns(m.header.stamp), cv.ctbr_vector(m))), cv.COMMAND_QOS)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: self.diagnostics.extend(m.status), 50)

    def wait_for_subscriber(self, topic: str, timeout: float = 60.0) -> bool:
        """Create this harness's publisher of a sensor topic and wait until it is *matched* with a
        subscriber (a best-effort sample published before matching is simply lost)."""
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import Image, Imu

        from . import convert as cv

        from rosgraph_msgs.msg import Clock

        from .sim_node import CLOCK_QOS

        types = {"imu": (Imu, cv.SENSOR_QOS), "odom": (Odometry, cv.SENSOR_QOS),
                 "camera/image_raw": (Image, cv.SENSOR_QOS), "/clock": (Clock, CLOCK_QOS)}
        if topic not in types:
            return self.spin_until(lambda: self.node.count_subscribers(topic) > 0, timeout)
        pub = self.publisher(types[topic][0], topic, types[topic][1])
        return self.spin_until(lambda: pub.get_subscription_count() > 0, timeout)

    def wait_for_publisher(self, topic: str, timeout: float = 60.0) -> bool:
        """Wait for a publisher; for the command topics, until it is matched with our subscription."""
        sub = getattr(self, "_cmd_subs", {}).get(topic)
        if sub is not None:
            return self.spin_until(lambda: sub.get_publisher_count() > 0, timeout)
        return self.spin_until(lambda: self.node.count_publishers(topic) > 0, timeout)

    def publish_clock(self, t_ns: int) -> None:
        from rosgraph_msgs.msg import Clock

        from . import convert as cv
        from .sim_node import CLOCK_QOS

        self.publisher(Clock, "/clock", CLOCK_QOS).publish(Clock(clock=cv.ns_to_msg(t_ns)))

    def publish_sensors(self, t_ns: int, imu=None, odom_state=None, image: np.ndarray | None = None, image_msg=None) -> None:
        from nav_msgs.msg import Odometry
        from sensor_msgs.msg import Image, Imu

        from . import convert as cv

        if imu is not None:
            self.publisher(Imu, "imu", cv.SENSOR_QOS).publish(cv.imu_msg(t_ns, imu[:3], imu[3:]))
        if odom_state is not None:
            self.publisher(Odometry, "odom", cv.SENSOR_QOS).publish(cv.odom_msg(t_ns, odom_state))
        if image is not None:
            image_msg = cv.image_msg(t_ns, image)
        if image_msg is not None:
            self.publisher(Image, "camera/image_raw", cv.SENSOR_QOS).publish(image_msg)

    def publish_goal(self, goal) -> None:
        from geometry_msgs.msg import PoseStamped

        from . import convert as cv

        self.publisher(PoseStamped, "goal", cv.GOAL_QOS).publish(cv.goal_msg(0, goal))

    def command_for(self, stamp_ns: int, timeout: float) -> tuple[int, np.ndarray] | None:
        """Spin until a command stamped ``>= stamp_ns`` arrives."""
        found: list = []

        def pred():
            for c in reversed(self.commands):
                if c[0] >= stamp_ns:
                    found.append(c)
                    return True
            return False

        return found[0] if self.spin_until(pred, timeout) else None

    # ------------------------------------------------------------------ parameters, lifecycle
    # The timeouts below are hang guards, not speed limits: a first transition imports the policy
    # stack, which took over 30 s on a 2-core machine that was also training two models.
    def set_parameters(self, node_name: str, values: dict, timeout: float = 120.0):
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.node.create_client(SetParameters, f"/{node_name}/set_parameters")
        assert client.wait_for_service(timeout_sec=timeout), f"/{node_name}/set_parameters not available"
        req = SetParameters.Request(parameters=[Parameter(k, value=v).to_parameter_msg() for k, v in values.items()])
        fut = client.call_async(req)
        assert self.spin_until(fut.done, timeout), "set_parameters timed out"
        self.node.destroy_client(client)
        return fut.result().results

    def get_parameters(self, node_name: str, names: list[str], timeout: float = 120.0) -> list:
        from rcl_interfaces.srv import GetParameters
        from rclpy.parameter import parameter_value_to_python

        client = self.node.create_client(GetParameters, f"/{node_name}/get_parameters")
        assert client.wait_for_service(timeout_sec=timeout)
        fut = client.call_async(GetParameters.Request(names=names))
        assert self.spin_until(fut.done, timeout)
        self.node.destroy_client(client)
        return [parameter_value_to_python(v) for v in fut.result().values]

    def lifecycle(self, node_name: str, transition: str, timeout: float = 120.0) -> bool:
        from lifecycle_msgs.msg import Transition
        from lifecycle_msgs.srv import ChangeState

        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE, "cleanup": Transition.TRANSITION_CLEANUP}
        client = self.node.create_client(ChangeState, f"/{node_name}/change_state")
        assert client.wait_for_service(timeout_sec=timeout), f"/{node_name}/change_state not available"
        fut = client.call_async(ChangeState.Request(transition=Transition(id=ids[transition])))
        assert self.spin_until(fut.done, timeout)
        self.node.destroy_client(client)
        return bool(fut.result().success)


def random_model(path: str | Path, image: tuple[int, int] | None = None, seed: int = 0, inputs=("imu", "odom", "goal"),
                 control_period: float = 1.0 / 240.0) -> Path:
    """A randomly initialised CfC/NCP model file (plumbing tests; it does not fly well)."""
    from ..policy import InputSpec, NetworkConfig, save_model
    from ..policy.architecture import build_wiring, expected_shapes

    from ..policy import drone_features  # noqa: F401  (registers the derived inputs: goal_error, hover_thrust...)
    from ..policy.features import get_feature

    dims = {"imu": 6, "odom": 13, "goal": 4}
    specs = [InputSpec.vector(n, dims[n] if n in dims else get_feature(n).dim) for n in inputs]
    extra = {}
    if image is not None:
        specs.append(InputSpec.image("image", image[0], image[1]))
        extra = {"image_channels": (4, 8), "image_kernels": (5, 3), "image_strides": (2, 2), "image_features": 8}
    cfg = NetworkConfig(inputs=tuple(specs), control_period=control_period, **extra)
    wiring = build_wiring(cfg)
    rng = np.random.default_rng(seed)
    tensors = {k: rng.normal(0.0, 0.3, s).astype(np.float32) for k, s in expected_shapes(cfg, wiring).items()}
    return save_model(path, cfg, tensors, wiring)
