"""Drone-specific model inputs computed from the raw observations (torch-free).

``goal_error`` turns odometry (from mocap, VIO or the autopilot's estimator) and the goal into
what a hover controller needs, in the body frame so the policy does not depend on heading:

====== =====================================================================
0..2   position error to the goal, body frame (m)      R^T (p_goal - p)
3..5   velocity, body frame (m/s)                       R^T v
6..8   world "up" seen in the body frame (tilt)         R^T e_z = 3rd row of R
9..10  heading error to the goal yaw                    sin, cos of (ψ_goal - ψ)
====== =====================================================================

The functions accept single observations (13,) / (4,) and batches (N, 13) / (N, 4): training
computes thousands at once with the same code the onboard node runs.
"""
from __future__ import annotations

import math

import numpy as np

from .features import register_feature

GOAL_ERROR_DIM = 11


def _rotation_rows(q: np.ndarray) -> tuple[np.ndarray, ...]:
    x, y, z, w = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    n = np.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    r0 = np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1)
    r1 = np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1)
    r2 = np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)
    return r0, r1, r2


def _to_body(r0, r1, r2, v: np.ndarray) -> np.ndarray:
    """R^T v for body→world R given by its rows."""
    return r0 * v[..., 0:1] + r1 * v[..., 1:2] + r2 * v[..., 2:3]


@register_feature("goal_error", dim=GOAL_ERROR_DIM, requires=("odom", "goal"))
def goal_error(obs) -> np.ndarray:
    odom = np.asarray(obs["odom"], dtype=np.float64)
    goal = np.asarray(obs["goal"], dtype=np.float64)
    if odom.shape[-1] != 13 or goal.shape[-1] != 4:
        raise ValueError(f"goal_error needs odom (..., 13) and goal (..., 4), got {odom.shape} and {goal.shape}")
    if odom.ndim == 1 and goal.ndim == 1:
        return _goal_error_one(odom.tolist(), goal.tolist())
    r0, r1, r2 = _rotation_rows(odom[..., 3:7])
    e_body = _to_body(r0, r1, r2, goal[..., :3] - odom[..., :3])
    v_body = _to_body(r0, r1, r2, odom[..., 7:10])
    up_body = np.stack([r2[..., 0], r2[..., 1], r2[..., 2]], -1)
    yaw = np.arctan2(r1[..., 0], r0[..., 0])
    dyaw = goal[..., 3] - yaw
    return np.concatenate([e_body, v_body, up_body, np.sin(dyaw)[..., None], np.cos(dyaw)[..., None]], -1)


def _rotation_one(q: list) -> tuple[float, ...] | None:
    """The 9 entries of R (body→world, row-major) of one quaternion xyzw in scalar arithmetic;
    None for a zero or NaN quaternion (the batch code then produces the NaNs)."""
    x, y, z, w = q
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if not n > 0.0:
        return None
    x, y, z, w = x / n, y / n, z / n, w / n
    return (1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y))


def _goal_error_one(o: list, g: list) -> np.ndarray:
    """:func:`goal_error` of one sample in scalar arithmetic: the onboard node computes one per
    control tick, and ~15 tiny numpy calls cost more than the network itself (same maths)."""
    r = _rotation_one(o[3:7])
    if r is None:
        return goal_error({"odom": np.asarray(o)[None], "goal": np.asarray(g)[None]})[0]
    r00, r01, r02, r10, r11, r12, r20, r21, r22 = r
    ex, ey, ez = g[0] - o[0], g[1] - o[1], g[2] - o[2]
    vx, vy, vz = o[7], o[8], o[9]
    dyaw = g[3] - math.atan2(r10, r00)
    return np.array([r00 * ex + r10 * ey + r20 * ez, r01 * ex + r11 * ey + r21 * ez, r02 * ex + r12 * ey + r22 * ez,
                     r00 * vx + r10 * vy + r20 * vz, r01 * vx + r11 * vy + r21 * vz, r02 * vx + r12 * vy + r22 * vz,
                     r20, r21, r22, math.sin(dyaw), math.cos(dyaw)])


@register_feature("last_action", dim=4, requires=())
def last_action(obs) -> np.ndarray:
    """The policy's own previous command (zeros after a reset). It requires no sensor: the
    :class:`~lnn_drone.policy.policy.Policy` feeds it back itself; envs put it in the
    observation so training sees exactly what the runtime will supply."""
    if "last_action" not in obs:
        raise ValueError("last_action is supplied by Policy.step (or the env); it is missing here")
    return np.asarray(obs["last_action"], dtype=np.float64)


@register_feature("hover_thrust", dim=1, requires=("imu", "odom"))
def hover_thrust(obs) -> np.ndarray:
    """The estimated hover collective, a fraction of total thrust (see
    :mod:`lnn_drone.policy.hover_thrust`): from the accelerometer, the odometry's velocity and the
    policy's own commands,
    kept by the env in training and by :class:`~lnn_drone.policy.policy.Policy` on the drone. It
    tells a hover policy how strong the vehicle under it is (thrust-to-weight, payload, class)."""
    if "hover_thrust" not in obs:
        raise ValueError("hover_thrust is supplied by Policy.step (or the env); it is missing here")
    h = np.asarray(obs["hover_thrust"], dtype=np.float64)
    return h.reshape(*h.shape[:-1], 1) if h.ndim and h.shape[-1] == 1 else h[..., None]


@register_feature("hover_thrust_config", dim=1, requires=())
def hover_thrust_config(obs) -> np.ndarray:
    """The vehicle's configured hover collective, ``1 / thrust_to_weight`` of its vehicle file (a
    flight controller's hover-throttle setting, as PX4's ``MPC_THR_HOVER``): a constant of the
    deployment, not a measurement, supplied by :class:`~lnn_drone.policy.policy.Policy` from its
    vehicle (and by the env in training). Refused outside (0, 1)."""
    if "hover_thrust_config" not in obs:
        raise ValueError("hover_thrust_config is supplied by Policy (its vehicle) or the env; it is missing here")
    h = np.asarray(obs["hover_thrust_config"], dtype=np.float64)
    h = h.reshape(*h.shape[:-1], 1) if h.ndim and h.shape[-1] == 1 else h[..., None]
    if not np.all((h > 0.0) & (h < 1.0)):  # also refuses NaN
        raise ValueError(f"hover_thrust_config must be in (0, 1), got {np.ravel(h)[:4].tolist()}")
    return h


@register_feature("gravity_body", dim=3, requires=("attitude",))
def gravity_body(obs) -> np.ndarray:
    """World "up" in the body frame (3rd row of R) from the IMU's attitude estimate
    (``attitude``, quaternion xyzw): roll and pitch, which an IMU observes, and not yaw,
    which it does not."""
    q = np.asarray(obs["attitude"], dtype=np.float64)
    if q.shape[-1] != 4:
        raise ValueError(f"gravity_body needs attitude (..., 4) as quaternion xyzw, got {q.shape}")
    _, _, r2 = _rotation_rows(q)
    return r2


def gravity_body_one(q: list[float]) -> list[float]:
    """:func:`gravity_body` of one quaternion (xyzw) in scalar arithmetic, for the onboard per-tick
    path; NaN where the quaternion has no direction (zero or non-finite), as the array form."""
    x, y, z, w = q
    n2 = x * x + y * y + z * z + w * w
    if not (math.isfinite(n2) and n2 > 0.0):
        return [math.nan, math.nan, math.nan]
    s = 2.0 / n2
    return [s * (x * z - y * w), s * (y * z + x * w), 1.0 - s * (x * x + y * y)]


def _imu(obs, feature: str) -> np.ndarray:
    """``obs["imu"]`` (gyro then accelerometer, (..., 6)) as float64, for the features read from it."""
    imu = np.asarray(obs["imu"], dtype=np.float64)
    if imu.shape[-1] != 6:
        raise ValueError(f"{feature} needs imu (..., 6), got {imu.shape}")
    return imu


@register_feature("imu_accel", dim=3, requires=("imu",))
def imu_accel(obs) -> np.ndarray:
    """The accelerometer part of ``imu`` (specific force, body FLU, m/s²). A camera policy that
    commands body rates reads this instead of the whole IMU: the gyro would mostly echo its own
    previous rate command, a shortcut that imitation learning takes instead of looking."""
    return _imu(obs, "imu_accel")[..., 3:6]


@register_feature("specific_force_z", dim=1, requires=("imu",))
def specific_force_z(obs) -> np.ndarray:
    """The accelerometer's body-z specific force alone (m/s², thrust and vertical drag per mass).

    Why: thrust is along body z, so the horizontal specific force of ``imu_accel`` is rotor drag,
    which reads the velocity relative to the *air*, not to the target. Reading this instead, a
    camera policy has to take its horizontal velocity from the camera. (Trained so, the visual
    student flies nominal as well and trails a moving target the same: README, "Failing
    conditions".)"""
    return _imu(obs, "specific_force_z")[..., 5:6]


# |drag_velocity| is clipped here (m/s): beyond it the linear drag model says nothing, and a
# push or a crash spike divided by a small drag per mass would be a large, meaningless input
DRAG_VELOCITY_LIMIT_MPS = 6.0
DRAG_PER_MASS_CONFIG = "drag_per_mass_config"


@register_feature("drag_velocity", dim=2, requires=("imu",))
def drag_velocity(obs) -> np.ndarray:
    """The air-relative horizontal body velocity (x, y, m/s) the accelerometer implies through
    rotor drag: ``-f_xy / d``, with ``d`` the vehicle's configured drag per mass at hover
    (``drag_per_mass_config``, 1/s, :attr:`~lnn_drone.vehicle.VehicleSpec.hover_drag_per_mass`
    of its vehicle file, supplied by :class:`~lnn_drone.policy.policy.Policy` and by the env).

    Why: a camera policy without odometry senses its velocity through rotor drag (thrust is
    along body z, so the horizontal specific force is drag alone). Raw, that reading scales with
    the airframe's drag per mass, which differs 4.4-fold between the Crazyflie and a 5-inch quad;
    divided by it, the same velocity reads the same on both. Clipped to
    ±:data:`DRAG_VELOCITY_LIMIT_MPS`."""
    imu = _imu(obs, "drag_velocity")
    if DRAG_PER_MASS_CONFIG not in obs:
        raise ValueError("drag_velocity needs drag_per_mass_config, supplied by Policy (its vehicle) or the env; "
                         "it is missing here")
    d = np.asarray(obs[DRAG_PER_MASS_CONFIG], dtype=np.float64)
    if d.shape[-1] != 2 or not np.all(d > 0.0):  # also refuses NaN
        raise ValueError(f"drag_per_mass_config must be 2 positive numbers (1/s), got {np.ravel(d)[:4].tolist()}")
    return np.clip(-imu[..., 3:5] / d, -DRAG_VELOCITY_LIMIT_MPS, DRAG_VELOCITY_LIMIT_MPS)


@register_feature("climb_rate", dim=1, requires=("imu", "attitude"))
def climb_rate(obs) -> np.ndarray:
    """The high-passed vertical velocity (m/s, up positive) the IMU alone tells: a leaky integral
    of ``f · u - g`` (see :mod:`lnn_drone.policy.climb_rate`), kept by the env in training and by
    :class:`~lnn_drone.policy.policy.Policy` on the drone. A camera policy reads it to damp its
    height where the airframe's own drag does not."""
    if "climb_rate" not in obs:
        raise ValueError("climb_rate is supplied by Policy.step (or the env); it is missing here")
    v = np.asarray(obs["climb_rate"], dtype=np.float64)
    return v.reshape(*v.shape[:-1], 1) if v.ndim and v.shape[-1] == 1 else v[..., None]


@register_feature("inertial_velocity", dim=3, requires=("imu", "attitude"))
def inertial_velocity(obs) -> np.ndarray:
    """The high-passed velocity (m/s) in the heading frame (x: the nose's horizontal direction, z:
    up) that the IMU tells by integrating its acceleration (see
    :mod:`lnn_drone.policy.inertial_velocity`), kept by the env in training and by
    :class:`~lnn_drone.policy.policy.Policy` on the drone."""
    if "inertial_velocity" not in obs:
        raise ValueError("inertial_velocity is supplied by Policy.step (or the env); it is missing here")
    return np.asarray(obs["inertial_velocity"], dtype=np.float64)


@register_feature("goal_error_integral", dim=3, requires=("odom", "goal"))
def goal_error_integral(obs) -> np.ndarray:
    """∫(p_goal - p) dt in the body frame (m·s): the integral action a hover policy needs against
    a wrong hover thrust or a constant push. The world-frame integral (``error_integral``,
    ∫(p - p_goal) dt, see :mod:`lnn_drone.policy.error_integral`) is kept by the env in training
    and by :class:`~lnn_drone.policy.policy.Policy` on the drone."""
    if "error_integral" not in obs:
        raise ValueError("error_integral is supplied by Policy.step (or the env); it is missing here")
    odom = np.asarray(obs["odom"], dtype=np.float64)
    integral = np.asarray(obs["error_integral"], dtype=np.float64)
    if odom.shape[-1] != 13 or integral.shape[-1] != 3:
        raise ValueError(f"goal_error_integral needs odom (..., 13) and error_integral (..., 3), "
                         f"got {odom.shape} and {integral.shape}")
    if odom.ndim == 1 and integral.ndim == 1:  # one sample per control tick on the drone
        r = _rotation_one(odom[3:7].tolist())
        if r is not None:
            ix, iy, iz = (-integral).tolist()
            return np.array([r[0] * ix + r[3] * iy + r[6] * iz, r[1] * ix + r[4] * iy + r[7] * iz,
                             r[2] * ix + r[5] * iy + r[8] * iz])
    r0, r1, r2 = _rotation_rows(odom[..., 3:7])
    return _to_body(r0, r1, r2, -integral)
