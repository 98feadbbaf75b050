"""The target's velocity relative to the drone, in the drone's heading frame: the labels of an
auxiliary loss on the recurrent core's state.

Why: the students trail a moving target. The teacher leads it by the target's velocity, which a
student can only take from the camera (the target's drift and looming, the ground's flow), and
imitation gives the core only an indirect reason to compute the velocity relative to the target;
this label gives a direct one. (Session 25 built it thinking the students took the accelerometer's
rotor-drag reading for that velocity; session 26 found that taking the reading away changes
nothing: README, "Failing conditions".) Privileged (true velocities), training only: the head
that reads it is never part of the model file.
"""
from __future__ import annotations

import math

import numpy as np

RELATIVE_VELOCITY_LABELS = 3   # forward, left, up (m/s): x and y of the heading frame, world z


def relative_velocity_label(rot, drone_velocity, target_velocity) -> np.ndarray:
    """(3,) ``target_velocity - drone_velocity`` (world ENU) in the heading frame of a drone whose
    body-to-world rotation is ``rot`` (row-major 3x3): rotated by its yaw alone, so a tilt does not
    mix the vertical into the horizontal."""
    r = np.asarray(rot, dtype=float).reshape(3, 3)
    yaw = math.atan2(r[1, 0], r[0, 0])
    c, s = math.cos(yaw), math.sin(yaw)
    d = np.asarray(target_velocity, dtype=float) - np.asarray(drone_velocity, dtype=float)
    return np.array([c * d[0] + s * d[1], -s * d[0] + c * d[1], d[2]], dtype=np.float32)


def relative_velocity_loss(pred, labels, mask):
    """Mean over scored steps of the squared error: ``pred`` and ``labels`` (..., 3), ``mask`` (...)."""
    per = (pred - labels).square().sum(-1)
    return (per * mask).sum() / mask.sum().clamp(min=1.0)
