"""Geometric tracking controller on SE(3) (Lee, Leok & McClamroch, CDC 2010), position level.

Outputs a CTBR command (collective thrust fraction, body rates): what a real flight
controller's rate loop accepts, and what the learned ``ctbr`` policies imitate. Gains are
mass-normalized (accelerations), so the same gains fly a 27 g and a 750 g quadrotor.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..frames import GRAVITY, quat_to_rotmat
from ..vehicle import VehicleSpec
from ..state import DroneState


@dataclass
class GeometricGains:
    kp: float = 9.0           # 1/s^2  position error -> acceleration
    kv: float = 5.0           # 1/s    velocity error -> acceleration
    ki: float = 3.0           # 1/s^3  integral of position error (rejects constant pushes)
    integral_limit_m_s: float = 1.0  # x ki = 3 m/s^2: rejects pushes up to ~30 % of weight
    integral_zone_m: float = 0.3   # integrate only within this distance of the goal...
    integral_zone_mps: float = 0.2  # ...and below this speed
    k_att: float = 8.0        # 1/s    attitude error -> body rate
    k_yaw: float = 2.5        # 1/s    yaw is less urgent than tilt
    max_tilt_deg: float = 50.0
    max_rate_rad_s: float = 8.0
    max_accel_m_s2: float = 12.0


@dataclass
class CtbrCommand:
    """Collective thrust as a fraction of total max thrust [0, 1], body rates rad/s (FLU)."""

    thrust: float
    rates: np.ndarray

    def as_array(self) -> np.ndarray:
        return np.array([self.thrust, *self.rates], dtype=float)


def _vee(m: np.ndarray) -> np.ndarray:
    return np.array([m[2, 1], m[0, 2], m[1, 0]])


class GeometricController:
    def __init__(self, vehicle: VehicleSpec, gains: GeometricGains | None = None):
        self.vehicle = vehicle
        self.gains = gains or GeometricGains()
        self.reset()

    def reset(self) -> None:
        self._integral = np.zeros(3)

    def __call__(self, state: DroneState, goal_position, goal_yaw: float = 0.0, dt: float = 0.0,
                 goal_velocity=None, goal_accel=None) -> CtbrCommand:
        g = self.gains
        r = quat_to_rotmat(state.quaternion)
        e_p = state.position - np.asarray(goal_position, dtype=float)
        e_v = state.velocity - (np.zeros(3) if goal_velocity is None else np.asarray(goal_velocity, dtype=float))
        if dt > 0.0 and float(e_p @ e_p) < g.integral_zone_m ** 2 and float(e_v @ e_v) < g.integral_zone_mps ** 2:
            # conditional integration: only near the goal and nearly still, so the transient of a
            # recovery does not wind it up (that would overshoot); steady pushes still integrate
            lim = g.integral_limit_m_s
            self._integral = np.clip(self._integral + e_p * dt, -lim, lim)
        a = -g.kp * e_p - g.kv * e_v - g.ki * self._integral
        if goal_accel is not None:
            a = a + np.asarray(goal_accel, dtype=float)
        # limit horizontal demand first (keep altitude authority), then total
        a_h = a[:2]
        h_max = min(g.max_accel_m_s2, (a[2] + GRAVITY) * math.tan(math.radians(g.max_tilt_deg)))
        h_max = max(h_max, 0.0)
        n = np.linalg.norm(a_h)
        if n > h_max:
            a[:2] = a_h * (h_max / n)
        a[2] = max(a[2], -0.7 * GRAVITY)  # never command free fall
        f_des = a + np.array([0.0, 0.0, GRAVITY])
        b3 = r[:, 2]
        thrust_n = self.vehicle.mass_kg * float(f_des @ b3)
        thrust_frac = thrust_n / (4.0 * self.vehicle.max_thrust_per_rotor_n)
        # desired attitude
        b3d = f_des / np.linalg.norm(f_des)
        b1c = np.array([math.cos(goal_yaw), math.sin(goal_yaw), 0.0])
        b2d = np.cross(b3d, b1c)
        nb2 = np.linalg.norm(b2d)
        b2d = b2d / nb2 if nb2 > 1e-6 else r[:, 1]
        b1d = np.cross(b2d, b3d)
        rd = np.column_stack([b1d, b2d, b3d])
        e_r = 0.5 * _vee(rd.T @ r - r.T @ rd)
        # if upside down, e_r underestimates the error; rotate towards b3d through the shortest way
        if float(b3 @ b3d) < 0.0:
            axis = np.cross(b3, b3d)
            na = np.linalg.norm(axis)
            axis = r.T @ (axis / na if na > 1e-6 else r[:, 0])
            e_r = -axis * math.pi / 2
        rates = -np.array([g.k_att, g.k_att, g.k_yaw]) * e_r
        rates = np.clip(rates, -g.max_rate_rad_s, g.max_rate_rad_s)
        return CtbrCommand(float(min(max(thrust_frac, 0.0), 1.0)), rates)
