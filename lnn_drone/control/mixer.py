"""Mixer: collective thrust + body torques -> per-rotor normalized commands u ∈ [0, 1].

Inverts the vehicle's allocation matrix (contract motor order FR, BR, BL, FL). When a demand
cannot be met, yaw gives way first, then roll/pitch are scaled, and the collective is shifted
to fit (attitude authority beats altitude, as in Betaflight's airmode).
"""
from __future__ import annotations

import numpy as np

from ..vehicle import VehicleSpec


class Mixer:
    def __init__(self, vehicle: VehicleSpec):
        self.vehicle = vehicle
        self._inv = np.linalg.inv(vehicle.allocation_matrix)
        self._tmax = vehicle.max_thrust_per_rotor_n

    def thrusts(self, thrust_n: float, torque) -> np.ndarray:
        """Per-rotor thrusts (N) before saturation."""
        return self._inv @ np.array([thrust_n, torque[0], torque[1], torque[2]])

    def __call__(self, thrust_n: float, torque) -> np.ndarray:
        tmax = self._tmax
        tau = np.asarray(torque, dtype=float)
        base = self._inv[:, 0] * thrust_n
        rp = self._inv[:, 1:3] @ tau[:2]
        yaw = self._inv[:, 3] * tau[2]
        # roll/pitch spread must fit in [0, tmax]
        spread = rp.max() - rp.min()
        if spread > tmax:
            rp *= tmax / spread
        # yaw gets what is left
        f = rp + yaw
        spread = f.max() - f.min()
        if spread > tmax:
            room = tmax - (rp.max() - rp.min())
            yaw_spread = yaw.max() - yaw.min()
            scale = max(0.0, room / yaw_spread) if yaw_spread > 0 else 0.0
            f = rp + yaw * scale
        f = f + base
        # shift the collective so every rotor fits
        if f.max() > tmax:
            f -= f.max() - tmax
        if f.min() < 0.0:
            f -= f.min()
        return np.clip(f / tmax, 0.0, 1.0)
