"""Mixer: collective thrust + body torques -> per-rotor normalized commands u ∈ [0, 1].

Inverts the vehicle's allocation matrix (contract motor order FR, BR, BL, FL). When a demand
cannot be met, yaw gives way first, then roll/pitch are scaled, and the collective is shifted
to fit (attitude authority beats altitude, as in Betaflight's airmode). Works on one drone or
a batch with per-drone allocation matrices.
"""
from __future__ import annotations

import numpy as np

from ..vehicle import VehicleSpec


class Mixer:
    def __init__(self, vehicle: VehicleSpec | list[VehicleSpec], kf_scale=None, km_scale=None):
        """``kf_scale``/``km_scale`` ((B, 4), default 1): known per-rotor deviations of the thrust
        and drag-torque coefficients (a privileged expert knows them; a real FC does not)."""
        vehicles = vehicle if isinstance(vehicle, list) else [vehicle]
        self._single = not isinstance(vehicle, list)
        self.vehicle = vehicle
        b = len(vehicles)
        kf = np.ones((b, 4)) if kf_scale is None else np.asarray(kf_scale, dtype=float).reshape(b, 4)
        km = np.ones((b, 4)) if km_scale is None else np.asarray(km_scale, dtype=float).reshape(b, 4)
        alloc = np.stack([v.allocation_matrix for v in vehicles])                      # (B, 4, 4) per newton
        alloc[:, 3, :] *= km / kf                                                     # drag torque per newton
        self._inv = np.linalg.inv(alloc)
        tmax = np.array([v.max_thrust_per_rotor_n for v in vehicles])[:, None] * kf   # (B, 4)
        # rotors differ: normalize each by its own maximum, and keep the common limit for the
        # saturation logic (the weakest rotor)
        self._tmax_rotor = tmax
        self._tmax = tmax.min(1)

    def __call__(self, thrust_n, torque) -> np.ndarray:
        thrust = np.atleast_1d(np.asarray(thrust_n, dtype=float))
        tau = np.asarray(torque, dtype=float).reshape(-1, 3)
        inv, tmax = self._inv, self._tmax[:, None]
        base = inv[:, :, 0] * thrust[:, None]
        rp = np.einsum("bij,bj->bi", inv[:, :, 1:3], tau[:, :2])
        yaw = inv[:, :, 3] * tau[:, 2:3]
        # roll/pitch spread must fit in [0, tmax]
        spread = rp.max(1, keepdims=True) - rp.min(1, keepdims=True)
        rp = np.where(spread > tmax, rp * tmax / np.maximum(spread, 1e-12), rp)
        # yaw gets what is left
        f = rp + yaw
        spread = f.max(1, keepdims=True) - f.min(1, keepdims=True)
        room = tmax - (rp.max(1, keepdims=True) - rp.min(1, keepdims=True))
        yaw_spread = yaw.max(1, keepdims=True) - yaw.min(1, keepdims=True)
        yaw_scale = np.clip(room / np.maximum(yaw_spread, 1e-12), 0.0, 1.0)
        f = np.where(spread > tmax, rp + yaw * yaw_scale, f) + base
        # shift the collective so every rotor fits
        f = f - np.clip(f.max(1, keepdims=True) - tmax, 0.0, None)
        f = f - np.clip(f.min(1, keepdims=True), None, 0.0)
        u = np.clip(f / self._tmax_rotor, 0.0, 1.0)
        return u[0] if self._single else u
