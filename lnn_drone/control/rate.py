"""Body-rate loop: the part of a flight controller that turns desired rates into torques.

A P loop on angular acceleration with gyroscopic feed-forward, sized for first-order motor lag
(τ ≈ 20-60 ms): with gain k and lag τ the loop is τ s² + s + k, damped ζ≈0.7 at k≈1/(2τ).
Works on one drone (3,) or a batch (B, 3) with per-drone inertia.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..vehicle import VehicleSpec


@dataclass
class RateGains:
    k_rp: float = 11.0   # 1/s  roll/pitch rate error -> angular acceleration
    k_yaw: float = 6.0   # 1/s


class RateController:
    def __init__(self, vehicle: VehicleSpec | list[VehicleSpec], gains: RateGains | None = None):
        vehicles = vehicle if isinstance(vehicle, list) else [vehicle]
        self.vehicle = vehicle
        self.gains = gains or RateGains()
        self._j = np.array([v.inertia_kg_m2 for v in vehicles])
        if not isinstance(vehicle, list):
            self._j = self._j[0]
        self._k = np.array([self.gains.k_rp, self.gains.k_rp, self.gains.k_yaw])

    def reset(self) -> None:
        """Stateless (P loop); kept for a uniform controller interface."""

    def __call__(self, rates_des, gyro) -> np.ndarray:
        """Torque (N·m, body FLU) for desired and measured body rates (rad/s)."""
        w = np.asarray(gyro, dtype=float)
        alpha = self._k * (np.asarray(rates_des, dtype=float) - w)
        return self._j * alpha + np.cross(w, self._j * w)
