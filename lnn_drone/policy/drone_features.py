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
    r0, r1, r2 = _rotation_rows(odom[..., 3:7])
    e_body = _to_body(r0, r1, r2, goal[..., :3] - odom[..., :3])
    v_body = _to_body(r0, r1, r2, odom[..., 7:10])
    up_body = np.stack([r2[..., 0], r2[..., 1], r2[..., 2]], -1)
    yaw = np.arctan2(r1[..., 0], r0[..., 0])
    dyaw = goal[..., 3] - yaw
    return np.concatenate([e_body, v_body, up_body, np.sin(dyaw)[..., None], np.cos(dyaw)[..., None]], -1)


@register_feature("last_action", dim=4, requires=())
def last_action(obs) -> np.ndarray:
    """The policy's own previous command (zeros after a reset). It requires no sensor: the
    :class:`~lnn_drone.policy.policy.Policy` feeds it back itself; envs put it in the
    observation so training sees exactly what the runtime will supply."""
    if "last_action" not in obs:
        raise ValueError("last_action is supplied by Policy.step (or the env); it is missing here")
    return np.asarray(obs["last_action"], dtype=np.float64)


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


@register_feature("imu_accel", dim=3, requires=("imu",))
def imu_accel(obs) -> np.ndarray:
    """The accelerometer part of ``imu`` (specific force, body FLU, m/s²). A camera policy that
    commands body rates reads this instead of the whole IMU: the gyro would mostly echo its own
    previous rate command, a shortcut that imitation learning takes instead of looking."""
    imu = np.asarray(obs["imu"], dtype=np.float64)
    if imu.shape[-1] != 6:
        raise ValueError(f"imu_accel needs imu (..., 6), got {imu.shape}")
    return imu[..., 3:6]
