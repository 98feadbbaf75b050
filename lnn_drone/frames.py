"""Shared frame and motor-order contracts (DESIGN.md §3).

World frame ENU, body frame FLU, ROS quaternions (x, y, z, w). Motor index 0..3 =
front-right, back-right, back-left, front-left (Crazyflie M1..M4), X configuration.
"""
from __future__ import annotations

import math

import numpy as np

MOTOR_NAMES: tuple[str, ...] = ("rotor_front_right", "rotor_back_right", "rotor_back_left", "rotor_front_left")
# Unit direction of each rotor from the centre in the body frame (FLU), X configuration.
_S = 1.0 / math.sqrt(2.0)
MOTOR_DIRECTIONS_FLU = np.array([[_S, -_S], [-_S, -_S], [-_S, _S], [_S, _S]])
# Sign of each rotor's reaction (yaw) torque on the body: FR and BL spin counter-clockwise
# seen from above, so their drag torque on the body is clockwise (negative about +z).
YAW_TORQUE_SIGNS = np.array([-1.0, 1.0, -1.0, 1.0])
GRAVITY = 9.80665


def quat_to_rotmat(q_xyzw) -> np.ndarray:
    """Rotation matrix (body→world) from a unit quaternion in ROS (x, y, z, w) order."""
    x, y, z, w = q_xyzw
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotmat_to_quat(r: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w), w ≥ 0, from a rotation matrix (Shepperd's method)."""
    tr = r[0, 0] + r[1, 1] + r[2, 2]
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    qa = np.array(q)
    qa /= np.linalg.norm(qa)
    return -qa if qa[3] < 0 else qa


def axis_angle_to_quat(axis, angle: float) -> np.ndarray:
    """Quaternion (x, y, z, w) of a rotation by ``angle`` rad about ``axis``."""
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    s = math.sin(angle / 2.0)
    return np.array([a[0] * s, a[1] * s, a[2] * s, math.cos(angle / 2.0)])


def yaw_of_rotmat(r: np.ndarray) -> float:
    """Heading (rad, ENU, about +z) of the body x axis."""
    return math.atan2(r[1, 0], r[0, 0])


def rotvec_to_rotmat(v) -> np.ndarray:
    """Rotation matrix of a rotation vector (axis * angle, rad), Rodrigues' formula."""
    v = np.asarray(v, dtype=float)
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    k = v / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * (kx @ kx)
