"""Rigid-body state of one drone, in the contract frames (world ENU, body FLU)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


def _vec(n: int, *vals: float):
    return field(default_factory=lambda: np.array(vals if vals else [0.0] * n, dtype=float))


@dataclass
class DroneState:
    """position (m, world), quaternion (x, y, z, w body→world), velocity (m/s, world),
    angular_velocity (rad/s, body FLU: the gyro's axes)."""

    position: np.ndarray = _vec(3)
    quaternion: np.ndarray = _vec(4, 0.0, 0.0, 0.0, 1.0)
    velocity: np.ndarray = _vec(3)
    angular_velocity: np.ndarray = _vec(3)

    def copy(self) -> "DroneState":
        return DroneState(self.position.copy(), self.quaternion.copy(), self.velocity.copy(), self.angular_velocity.copy())

    def as_vector(self) -> np.ndarray:
        """13 values: position, quaternion (xyzw), velocity (world), body rates."""
        return np.concatenate([self.position, self.quaternion, self.velocity, self.angular_velocity])

    def is_finite(self) -> bool:
        return bool(np.isfinite(self.as_vector()).all())
