"""Message conversions and QoS of the DESIGN.md §3 contracts (standard message types only).

Stamps are integer nanoseconds of sim (or ROS) time so that a command's stamp can be matched
exactly against the sensor sample it was computed from.
"""
from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped, TwistStamped
from nav_msgs.msg import Odometry
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, Imu, JointState

from ..frames import MOTOR_NAMES, quat_to_rotmat
from ..state import DroneState

SENSOR_QOS = qos_profile_sensor_data  # best effort, keep last 5
# Commands: best effort, depth 1 (DESIGN §3 said reliable "unless measured otherwise"). Measured on
# this 2-core host under load: a reliable publish() of a JointState cost 120 us median with a
# multi-ms p99 tail, best effort 57 us / 111 us. A resent sample of a stale command is worth
# nothing to a control loop, and a lost one is replaced by the next tick's; in lockstep the sim
# re-sends the tick and the policy answers it again (PolicyCore), so a dropped command cannot
# stall it. A best-effort reader also matches reliable writers (other tools, older nodes).
COMMAND_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT, history=HistoryPolicy.KEEP_LAST)
GOAL_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)  # a late joiner still gets the goal

def no_event_handlers(kind: str = "subscription") -> dict:
    """``event_callbacks`` kwargs that create no QoS-event handlers on a publisher or subscription.

    rclpy gives every publisher and subscription a default incompatible-QoS handler, and the
    executor rebuilds its wait set in Python on every wake-up, handlers included: each cost
    ~15-25 us per wake-up on this host, and a policy node wakes several times per tick. Used
    where the handler can never fire or is not worth that cost on the hot path: a best-effort,
    volatile reader is compatible with every writer; the sim's sensor writers are its hot path."""
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks

    cls = SubscriptionEventCallbacks if kind == "subscription" else PublisherEventCallbacks
    return {"event_callbacks": cls(use_default_callbacks=False)}


TOPICS = {"imu": "imu", "odom": "odom", "goal": "goal", "image": "camera/image_raw"}


class MessageError(ValueError):
    """A message that breaks the contract (wrong encoding, size, NaN…)."""


# --------------------------------------------------------------------------------------- time
def ns_to_msg(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def msg_to_ns(t: Time) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def seconds_to_ns(t: float) -> int:
    return int(round(t * 1e9))


# --------------------------------------------------------------------------------------- imu
def imu_msg(stamp_ns: int, gyro, accel, frame_id: str = "base_link", orientation=None) -> Imu:
    """``orientation``: the IMU's own attitude estimate (quaternion xyzw), or None for none."""
    m = Imu()
    m.header.stamp = ns_to_msg(stamp_ns)
    m.header.frame_id = frame_id
    m.angular_velocity.x, m.angular_velocity.y, m.angular_velocity.z = (float(v) for v in gyro)
    m.linear_acceleration.x, m.linear_acceleration.y, m.linear_acceleration.z = (float(v) for v in accel)
    if orientation is None:
        m.orientation_covariance[0] = -1.0  # no orientation estimate (REP-145)
    else:
        q = m.orientation
        q.x, q.y, q.z, q.w = (float(v) for v in orientation)
    return m


def imu_attitude(m: Imu) -> np.ndarray:
    """The ``attitude`` observation (quaternion xyzw) from an Imu message's orientation estimate;
    MessageError when the message says it has none (covariance[0] = -1) or it is not a rotation."""
    if m.orientation_covariance[0] == -1.0:
        raise MessageError("imu carries no orientation estimate (orientation_covariance[0] = -1)")
    o = m.orientation
    q = np.array([o.x, o.y, o.z, o.w])
    n = float(np.linalg.norm(q))
    if not np.isfinite(q).all() or abs(n - 1.0) > 0.05:
        raise MessageError(f"imu orientation is not a unit quaternion: {q.tolist()}")
    return q / n


def imu_vector(m: Imu) -> np.ndarray:
    """6 values: gyro (rad/s), specific force (m/s^2), body FLU — the ``imu`` observation."""
    w, a = m.angular_velocity, m.linear_acceleration
    return np.array([w.x, w.y, w.z, a.x, a.y, a.z])


# --------------------------------------------------------------------------------------- odom
def odom_msg(stamp_ns: int, s: DroneState, frame_id: str = "odom", child_frame_id: str = "base_link") -> Odometry:
    m = Odometry()
    m.header.stamp = ns_to_msg(stamp_ns)
    m.header.frame_id, m.child_frame_id = frame_id, child_frame_id
    p, q = m.pose.pose.position, m.pose.pose.orientation
    p.x, p.y, p.z = (float(v) for v in s.position)
    q.x, q.y, q.z, q.w = (float(v) for v in s.quaternion)
    v_body = quat_to_rotmat(s.quaternion).T @ np.asarray(s.velocity, dtype=float)  # REP-105: twist in child frame
    t = m.twist.twist
    t.linear.x, t.linear.y, t.linear.z = (float(v) for v in v_body)
    t.angular.x, t.angular.y, t.angular.z = (float(v) for v in s.angular_velocity)
    return m


def odom_state(m: Odometry) -> DroneState:
    p, q = m.pose.pose.position, m.pose.pose.orientation
    quat = np.array([q.x, q.y, q.z, q.w])
    t = m.twist.twist
    v_body = np.array([t.linear.x, t.linear.y, t.linear.z])
    return DroneState(np.array([p.x, p.y, p.z]), quat, quat_to_rotmat(quat) @ v_body,
                      np.array([t.angular.x, t.angular.y, t.angular.z]))


def odom_vector(m: Odometry) -> np.ndarray:
    """13 values: position, quaternion xyzw, world velocity, body rates — the ``odom`` observation."""
    return odom_state(m).as_vector()


# --------------------------------------------------------------------------------------- goal
def goal_msg(stamp_ns: int, goal, frame_id: str = "odom") -> PoseStamped:
    m = PoseStamped()
    m.header.stamp = ns_to_msg(stamp_ns)
    m.header.frame_id = frame_id
    m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in goal[:3])
    yaw = float(goal[3]) if len(goal) > 3 else 0.0
    m.pose.orientation.z, m.pose.orientation.w = math.sin(yaw / 2.0), math.cos(yaw / 2.0)
    return m


def goal_vector(m: PoseStamped) -> np.ndarray:
    """4 values: x, y, z (m), yaw (rad) — the ``goal`` observation."""
    p, q = m.pose.position, m.pose.orientation
    yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
    return np.array([p.x, p.y, p.z, yaw])


# --------------------------------------------------------------------------------------- camera
def image_msg(stamp_ns: int, rgb: np.ndarray, frame_id: str = "camera") -> Image:
    m = Image()
    m.header.stamp = ns_to_msg(stamp_ns)
    m.header.frame_id = frame_id
    m.height, m.width = int(rgb.shape[0]), int(rgb.shape[1])
    m.encoding, m.is_bigendian, m.step = "rgb8", 0, int(rgb.shape[1]) * 3
    m.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return m


def image_array(m: Image, shape: tuple[int, int, int] | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB, or :class:`MessageError` saying what is wrong."""
    if m.encoding != "rgb8":
        raise MessageError(f"camera image encoding is {m.encoding!r}, expected 'rgb8'")
    if shape is not None and (m.height, m.width) != tuple(shape[:2]):
        raise MessageError(f"camera image is {m.width}x{m.height}, the model expects {shape[1]}x{shape[0]}")
    if m.step != m.width * 3 or len(m.data) != m.height * m.step:
        raise MessageError(f"camera image data is {len(m.data)} bytes with step {m.step}, expected {m.height * m.width * 3}")
    return np.frombuffer(bytes(m.data), dtype=np.uint8).reshape(m.height, m.width, 3)


def camera_info_msg(stamp_ns: int, width: int, height: int, fov_deg: float, frame_id: str = "camera") -> CameraInfo:
    """Pinhole intrinsics of the simulated camera (vertical field of view, square pixels)."""
    m = CameraInfo()
    m.header.stamp = ns_to_msg(stamp_ns)
    m.header.frame_id = frame_id
    m.width, m.height = int(width), int(height)
    f = 0.5 * height / math.tan(math.radians(fov_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    m.distortion_model = "plumb_bob"
    m.d = [0.0] * 5
    m.k = [f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0]
    m.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    m.p = [f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return m


# --------------------------------------------------------------------------------------- commands
def motor_msg(stamp_ns: int, u, frame_id: str = "base_link") -> JointState:
    m = JointState()
    m.header.stamp = ns_to_msg(stamp_ns)
    m.header.frame_id = frame_id
    m.name = list(MOTOR_NAMES)
    m.effort = [float(v) for v in u]
    return m


def motor_vector(m: JointState) -> np.ndarray:
    """u in contract order; names, when given, may come in any order."""
    if len(m.effort) != 4:
        raise MessageError(f"motor_commands needs 4 efforts, got {len(m.effort)}")
    u = np.array(m.effort, dtype=float)
    if m.name and list(m.name) != list(MOTOR_NAMES):
        try:
            u = u[[list(m.name).index(n) for n in MOTOR_NAMES]]
        except ValueError:
            raise MessageError(f"motor_commands names {list(m.name)} are not {list(MOTOR_NAMES)}") from None
    return u


def ctbr_msg(stamp_ns: int, thrust: float, rates, frame_id: str = "base_link") -> TwistStamped:
    m = TwistStamped()
    m.header.stamp = ns_to_msg(stamp_ns)
    m.header.frame_id = frame_id
    m.twist.linear.z = float(thrust)
    m.twist.angular.x, m.twist.angular.y, m.twist.angular.z = (float(v) for v in rates)
    return m


def ctbr_vector(m: TwistStamped) -> np.ndarray:
    """[collective thrust fraction, p, q, r]."""
    a = m.twist.angular
    return np.array([m.twist.linear.z, a.x, a.y, a.z])
