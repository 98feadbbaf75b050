"""Record topics to MCAP (readable by Foxglove) without rosbag2, which the pip path lacks.

Messages are stored as the CDR bytes that came over DDS (``raw=True`` subscriptions, no
decode/encode), with ``ros2msg`` schemas built from the installed ``.msg`` files, exactly as
rosbag2's MCAP storage writes them. New topics are discovered while recording.
"""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from .env import prepare_process_environment

_SEP = "=" * 80
_BUILTIN = {"bool", "byte", "char", "float32", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
            "int64", "uint64", "string", "wstring"}


def _msg_file(pkg: str, name: str) -> Path:
    prepare_process_environment()
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(pkg)) / "msg" / f"{name}.msg"


def _deps(pkg: str, text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        typ = line.split()[0]
        if "=" in line.split()[1] if len(line.split()) > 1 else False:
            continue  # a constant
        base = re.sub(r"\[.*\]$", "", typ).split("<=")[0]
        if base in _BUILTIN or base.startswith("string"):
            continue
        if "/" not in base:
            base = "builtin_interfaces/" + base if base in ("Time", "Duration") else f"{pkg}/{base}"
        out.append(base)
    return out


def message_definition(type_name: str) -> str:
    """The concatenated definition (``ros2msg`` schema) of e.g. ``sensor_msgs/msg/Imu``."""
    pkg, _, name = type_name.split("/")
    main = _msg_file(pkg, name).read_text()
    parts, seen, todo = [], {f"{pkg}/{name}"}, _deps(pkg, main)
    while todo:
        dep = todo.pop(0)
        if dep in seen:
            continue
        seen.add(dep)
        dpkg, dname = dep.split("/")
        text = _msg_file(dpkg, dname).read_text()
        parts.append(f"{_SEP}\nMSG: {dep}\n{text}")
        todo.extend(_deps(dpkg, text))
    return "\n".join([main] + parts)


def _import_type(type_name: str):
    pkg, kind, name = type_name.split("/")
    module = __import__(f"{pkg}.{kind}", fromlist=[name])
    return getattr(module, name)


class McapRecorder:
    """Subscribes to every topic (re-discovered every ``discover_s``) and writes MCAP."""

    def __init__(self, node: Node, path: str | Path, discover_s: float = 0.5):
        from mcap.writer import CompressionType, Writer

        self.node = node
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "wb")
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._writer.start(profile="ros2", library="lnn_drone")
        self._lock = threading.Lock()
        self._schemas: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._subs = []
        self.subscriptions: dict = {}
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []
        self._closed = False
        self._timer = node.create_timer(discover_s, self.discover)

    def matched(self, topic: str) -> bool:
        """Whether our subscription to ``topic`` is matched with a publisher (nothing lost from now)."""
        sub = self.subscriptions.get(self.node.resolve_topic_name(topic))
        return sub is not None and sub.get_publisher_count() > 0

    def subscribe_contract(self) -> None:
        """The DESIGN.md §3 topics (relative names resolve in the recorder node's namespace)."""
        from . import convert as cv

        best, rel = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT), QoSProfile(depth=1000)
        for topic, type_name, qos in (
                ("/clock", "rosgraph_msgs/msg/Clock", best), ("imu", "sensor_msgs/msg/Imu", best),
                ("odom", "nav_msgs/msg/Odometry", best), ("camera/image_raw", "sensor_msgs/msg/Image", best),
                ("camera/camera_info", "sensor_msgs/msg/CameraInfo", best), ("goal", "geometry_msgs/msg/PoseStamped", cv.GOAL_QOS),
                ("motor_commands", "sensor_msgs/msg/JointState", best), ("ctbr_command", "geometry_msgs/msg/TwistStamped", best),
                ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", rel),
                ("policy/neurons", "std_msgs/msg/Float32MultiArray", rel)):
            self.subscribe(topic, type_name, qos)

    def _qos_for(self, topic: str) -> QoSProfile:
        infos = self.node.get_publishers_info_by_topic(topic)
        reliable = infos and all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in infos)
        latched = infos and all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in infos)
        return QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
                          durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE)

    def discover(self) -> None:
        for topic, types in self.node.get_topic_names_and_types():
            if topic in self._channels or not types or not self.node.get_publishers_info_by_topic(topic):
                continue
            self.subscribe(topic, types[0], self._qos_for(topic))

    def subscribe(self, topic: str, type_name: str, qos: QoSProfile | None = None) -> None:
        """Record ``topic`` from now on (known topics are subscribed before their publishers start,
        so the first messages are not lost to discovery)."""
        topic = self.node.resolve_topic_name(topic)
        if topic in self._channels:
            return
        if qos is None:
            qos = QoSProfile(depth=1000, reliability=ReliabilityPolicy.BEST_EFFORT)
        if True:
            try:
                msg_type = _import_type(type_name)
                with self._lock:
                    if type_name not in self._schemas:
                        self._schemas[type_name] = self._writer.register_schema(
                            type_name, "ros2msg", message_definition(type_name).encode())
                    self._channels[topic] = self._writer.register_channel(topic, "cdr", self._schemas[type_name])
            except Exception as exc:  # an unknown type: record the rest
                self.errors.append(f"{topic} ({type_name}): {exc}")
                self._channels[topic] = -1
                return
            cid = self._channels[topic]
            sub = self.node.create_subscription(
                msg_type, topic, lambda data, cid=cid, topic=topic: self._write(cid, topic, data), qos, raw=True)
            self._subs.append(sub)
            self.subscriptions[topic] = sub

    def _write(self, channel_id: int, topic: str, data: bytes) -> None:
        now = time.time_ns()
        with self._lock:
            if self._closed:
                return
            self._writer.add_message(channel_id, log_time=now, data=data, publish_time=now)
            self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._writer.finish()
            self._file.close()
