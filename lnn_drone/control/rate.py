"""Body-rate loop: the part of a flight controller that turns desired rates into torques.

A PI loop on angular acceleration with gyroscopic feed-forward, sized for first-order motor lag
(τ ≈ 20-60 ms): with gain k and lag τ the P loop is τ s² + s + k, damped ζ≈0.7 at k≈1/(2τ).
The integral (as in every real flight controller's rate PID) removes the steady rate error
that unequal rotors (thrust or drag-torque spread of a few %) would otherwise leave.
Works on one drone (3,) or a batch (B, 3) with per-drone inertia.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..vehicle import VehicleSpec


@dataclass
class RateGains:
    k_rp: float = 11.0    # 1/s    roll/pitch rate error -> angular acceleration
    k_yaw: float = 6.0    # 1/s
    ki_rp: float = 25.0   # 1/s^2  integral of roll/pitch rate error
    ki_yaw: float = 10.0  # 1/s^2
    integral_limit_rad: float = 2.0  # anti-windup: clamp of the integrated rate error


class RateController:
    def __init__(self, vehicle: VehicleSpec | list[VehicleSpec], gains: RateGains | None = None, speed=1.0):
        """``speed`` (scalar or (B,)) scales the roll/pitch gains (slower loop for slower motors);
        the yaw loop is slow enough (drag torque) to stay as it is."""
        vehicles = vehicle if isinstance(vehicle, list) else [vehicle]
        self.vehicle = vehicle
        self.gains = g = gains or RateGains()
        self._j = np.array([v.inertia_kg_m2 for v in vehicles])
        sp = np.asarray(speed, dtype=float)
        sp = np.stack([sp, sp, np.ones_like(sp)], -1)
        self._k = np.array([g.k_rp, g.k_rp, g.k_yaw]) * sp
        self._ki = np.array([g.ki_rp, g.ki_rp, g.ki_yaw]) * sp
        if not isinstance(vehicle, list):
            self._j = self._j[0]
        self.reset()

    def reset(self) -> None:
        """Clear the integral (start of a flight, or after arming)."""
        self._integral = np.zeros_like(self._j)

    def __call__(self, rates_des, gyro, dt: float = 0.0) -> np.ndarray:
        """Torque (N·m, body FLU) for desired and measured body rates (rad/s); ``dt`` > 0
        advances the integral."""
        w = np.asarray(gyro, dtype=float)
        err = np.asarray(rates_des, dtype=float) - w
        if dt > 0.0:
            lim = self.gains.integral_limit_rad
            self._integral = np.clip(self._integral + err * dt, -lim, lim)
        alpha = self._k * err + self._ki * self._integral
        return self._j * alpha + np.cross(w, self._j * w)
