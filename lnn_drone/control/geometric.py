"""Geometric tracking controller on SE(3) (Lee, Leok & McClamroch, CDC 2010), position level.

Outputs a CTBR command (collective thrust fraction, body rates): what a real flight
controller's rate loop accepts, and what the learned ``ctbr`` policies imitate. Gains are
mass-normalized (accelerations), so the same gains fly a 27 g and a 750 g quadrotor.

The maths is written for a batch of B drones (arrays with a leading B axis): training labels
thousands of states per step, and one vectorized call costs what one drone costs. The
single-drone API is a B = 1 view of the same code, so there is one implementation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..frames import GRAVITY
from ..state import DroneState
from ..vehicle import VehicleSpec


@dataclass
class GeometricGains:
    kp: float = 9.0           # 1/s^2  position error -> acceleration
    kv: float = 5.0           # 1/s    velocity error -> acceleration
    ki: float = 3.0           # 1/s^3  integral of position error (rejects constant pushes)
    ki_z: float = 6.0         # 1/s^3  vertical: also absorbs a wrong hover thrust (up to T/W x 1.7)
    integral_limit_m_s: float = 1.0  # x ki = 3 m/s^2: rejects pushes up to ~30 % of weight
    integral_zone_m: float = 0.3   # integrate only within this distance of the goal...
    integral_zone_mps: float = 0.2  # ...and below this speed
    k_att: float = 8.0        # 1/s    attitude error -> body rate
    k_yaw: float = 2.5        # 1/s    yaw is less urgent than tilt
    max_tilt_deg: float = 50.0
    max_rate_rad_s: float = 8.0
    max_accel_m_s2: float = 12.0
    # the vertical position loop slows down with ``speed`` only to this floor (1: never). Why: the
    # slow-down is for the attitude cascade, whose lag it would otherwise destabilise; the vertical
    # loop has only the motor lag in it (with a 100 ms first-order lag the nominal kp, kv still pass
    # Routh's test, and the hover teacher flies every grid cell with the floor at 1). A student that
    # cannot observe the motor lag learns the average of speed-scaled gains, which is part of why
    # the hover students settle slowly (README; config/experiments/hover_teacher_vertical.yaml)
    vertical_speed_min: float = 0.0


@dataclass
class CtbrCommand:
    """Collective thrust as a fraction of total max thrust [0, 1], body rates rad/s (FLU)."""

    thrust: float
    rates: np.ndarray

    def as_array(self) -> np.ndarray:
        return np.array([self.thrust, *self.rates], dtype=float)


def quats_to_rotmats(q: np.ndarray) -> np.ndarray:
    """(B, 4) quaternions xyzw -> (B, 3, 3) body→world rotation matrices."""
    x, y, z, w = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    r = np.empty((q.shape[0], 3, 3))
    r[:, 0, 0] = 1 - 2 * (y * y + z * z)
    r[:, 0, 1] = 2 * (x * y - z * w)
    r[:, 0, 2] = 2 * (x * z + y * w)
    r[:, 1, 0] = 2 * (x * y + z * w)
    r[:, 1, 1] = 1 - 2 * (x * x + z * z)
    r[:, 1, 2] = 2 * (y * z - x * w)
    r[:, 2, 0] = 2 * (x * z - y * w)
    r[:, 2, 1] = 2 * (y * z + x * w)
    r[:, 2, 2] = 1 - 2 * (x * x + y * y)
    return r


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


class BatchGeometricController:
    """Geometric controller for B drones at once (each with its own mass and max thrust)."""

    def __init__(self, mass_kg, max_total_thrust_n, gains: GeometricGains | None = None, speed=1.0):
        """``speed`` (scalar or (B,)) scales the loop bandwidths: attitude gains by s, position
        gains by s and s² — how a privileged expert slows down for slow motors or latency."""
        self.mass = np.atleast_1d(np.asarray(mass_kg, dtype=float))
        self.max_total_thrust = np.atleast_1d(np.asarray(max_total_thrust_n, dtype=float))
        self.gains = gains or GeometricGains()
        self.speed = np.broadcast_to(np.asarray(speed, dtype=float), self.mass.shape).copy()
        self.reset()

    @classmethod
    def for_vehicles(cls, vehicles: list[VehicleSpec], gains: GeometricGains | None = None, speed=1.0):
        return cls([v.mass_kg for v in vehicles], [4.0 * v.max_thrust_per_rotor_n for v in vehicles], gains, speed)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Clear the integral (for all drones, or where ``mask`` is true)."""
        if mask is None or not hasattr(self, "integral"):
            self.integral = np.zeros((self.mass.shape[0], 3))
        else:
            self.integral[np.asarray(mask, dtype=bool)] = 0.0

    def __call__(self, position, quaternion, velocity, goal, dt: float,
                 integral: np.ndarray | None = None,
                 hover_fraction: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Collective thrust fraction (B,) and body rates (B, 3) for states and goals (B, 4).

        ``integral`` (B, 3), world ∫(p - p_goal) dt, replaces the controller's own integral: a
        teacher whose integral term is one the student observes (see ``policy.error_integral``).
        ``hover_fraction`` (B,) replaces the vehicle's mass / max thrust by an estimate of the
        collective that hovers it (see ``policy.hover_thrust``), for the same reason."""
        g = self.gains
        goal = np.asarray(goal, dtype=float)
        r = quats_to_rotmats(np.asarray(quaternion, dtype=float))
        e_p = np.asarray(position, dtype=float) - goal[:, :3]
        e_v = np.asarray(velocity, dtype=float)
        if integral is not None:
            self.integral = np.asarray(integral, dtype=float).reshape(self.integral.shape)
        elif dt > 0.0:
            # conditional integration: only near the goal and nearly still, so the transient of a
            # recovery does not wind it up (that would overshoot); steady pushes still integrate
            near = ((e_p * e_p).sum(1) < g.integral_zone_m ** 2) & ((e_v * e_v).sum(1) < g.integral_zone_mps ** 2)
            lim = g.integral_limit_m_s
            self.integral = np.where(near[:, None], np.clip(self.integral + e_p * dt, -lim, lim), self.integral)
        s = self.speed[:, None]
        # the integral is the slowest loop: it is slowed down only in proportion (s, not s^3), or a
        # vehicle with slow motors would take most of an episode to find its hover thrust
        ki = np.array([g.ki, g.ki, g.ki_z])
        s_axes = np.repeat(s, 3, axis=1)
        s_axes[:, 2] = np.maximum(s_axes[:, 2], g.vertical_speed_min)
        a = -(g.kp * s_axes * s_axes) * e_p - (g.kv * s_axes) * e_v - (ki * s) * self.integral
        # limit the horizontal demand first (keep altitude authority)
        h_max = np.clip(np.minimum(g.max_accel_m_s2, (a[:, 2] + GRAVITY) * math.tan(math.radians(g.max_tilt_deg))),
                        0.0, None)
        n = np.linalg.norm(a[:, :2], axis=1)
        scale = np.where(n > h_max, h_max / np.maximum(n, 1e-12), 1.0)
        a[:, :2] *= scale[:, None]
        a[:, 2] = np.maximum(a[:, 2], -0.7 * GRAVITY)  # never command free fall
        f_des = a.copy()
        f_des[:, 2] += GRAVITY
        b3 = r[:, :, 2]
        if hover_fraction is None:
            thrust = self.mass * (f_des * b3).sum(1) / self.max_total_thrust
        else:
            thrust = np.asarray(hover_fraction, dtype=float) * (f_des * b3).sum(1) / GRAVITY
        # desired attitude from the thrust direction and the goal yaw
        b3d = _unit(f_des)
        yaw = goal[:, 3]
        b1c = np.stack([np.cos(yaw), np.sin(yaw), np.zeros_like(yaw)], axis=1)
        b2d = np.cross(b3d, b1c)
        nb2 = np.linalg.norm(b2d, axis=1, keepdims=True)
        b2d = np.where(nb2 > 1e-6, b2d / np.maximum(nb2, 1e-12), r[:, :, 1])
        b1d = np.cross(b2d, b3d)
        rd = np.stack([b1d, b2d, b3d], axis=2)
        m = np.einsum("bji,bjk->bik", rd, r) - np.einsum("bji,bjk->bik", r, rd)
        e_r = 0.5 * np.stack([m[:, 2, 1], m[:, 0, 2], m[:, 1, 0]], axis=1)
        # upside down, e_r underestimates the error: rotate towards b3d the shortest way
        flipped = (b3 * b3d).sum(1) < 0.0
        if flipped.any():
            axis = np.cross(b3, b3d)
            na = np.linalg.norm(axis, axis=1, keepdims=True)
            axis = np.where(na > 1e-6, axis / np.maximum(na, 1e-12), r[:, :, 0])
            axis_body = np.einsum("bji,bj->bi", r, axis)
            e_r = np.where(flipped[:, None], -axis_body * (math.pi / 2), e_r)
        rates = -np.array([g.k_att, g.k_att, g.k_yaw]) * s * e_r
        return np.clip(thrust, 0.0, 1.0), np.clip(rates, -g.max_rate_rad_s, g.max_rate_rad_s)


class GeometricController:
    """One drone: a B = 1 view of :class:`BatchGeometricController`."""

    def __init__(self, vehicle: VehicleSpec, gains: GeometricGains | None = None):
        self.vehicle = vehicle
        self.gains = gains or GeometricGains()
        self._batch = BatchGeometricController.for_vehicles([vehicle], self.gains)

    def reset(self) -> None:
        self._batch.reset()

    def __call__(self, state: DroneState, goal_position, goal_yaw: float = 0.0, dt: float = 0.0) -> CtbrCommand:
        goal = np.array([[*np.asarray(goal_position, dtype=float)[:3], goal_yaw]])
        thrust, rates = self._batch(state.position[None], state.quaternion[None], state.velocity[None], goal, dt)
        return CtbrCommand(float(thrust[0]), rates[0])
