"""The vertical velocity an IMU alone can tell, kept by whoever feeds a policy (torch-free).

Why it exists: a camera policy has no odometry, so nothing tells it how fast it climbs or sinks.
On the Crazyflie that hardly matters: its rotor drag damps vertical motion by itself (about
2.2/s per unit mass at hover). A 5-inch quad has about a seventh of that damping, and the
visual students flown on it bobbed up and down by ±0.2-0.7 m around the standoff point where
the Crazyflie held ±0.02-0.07 m (session 21, ``README`` "Tried and dropped"). Damping has to be
active there, and active damping needs a velocity.

The estimate is a leaky integral of the vertical acceleration the IMU measures:

    a_z = f · u - g            (f: specific force, body frame; u: world "up" in the body frame)
    v <- v · exp(-dt / tau) + a_z · dt,      clipped to ±LIMIT_MPS

``u`` comes from the attitude estimate (the ``gravity_body`` input). A tilt error ``e`` of that
estimate enters ``a_z`` only as ``g (1 - cos e)``, second order, so the vertical channel of a
strapdown integration is the one that stays honest without odometry. The leak (``tau``,
:data:`LEAK_TIME_S`) bounds what an accelerometer bias or the unknown start velocity can do:
their effect fades with ``tau``, so the value is a high-passed climb rate (a bias ``b`` reads as a
steady ``b tau``). That is what damping needs: at the ~1 Hz of the bobbing it leads the truth by
3°. Along the flights of a bobbing student (4 episodes on each airframe, a throwaway script), a
leak of 2 s followed the true vertical velocity with a correlation of 0.91, 4 s with 0.96, and
1 s with 0.78-0.80 (it filters out the slow part of the flight); 3 s sits between.

The env computes it for training and evaluation (observation ``climb_rate``) and
:class:`~lnn_drone.policy.policy.Policy` computes it on the drone, with this one class.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..frames import GRAVITY
from .batch_integral import LeakyIntegral

LEAK_TIME_S = 3.0   # memory of the integral (s)
LIMIT_MPS = 5.0     # clip (m/s): beyond it the value is a crash spike, not a climb rate


class ClimbRateEstimator(LeakyIntegral):
    """High-passed vertical velocity (m/s, up positive) for a batch of ``n`` vehicles."""

    def __init__(self, n: int = 1, leak_time_s: float = LEAK_TIME_S):
        super().__init__(leak_time_s, n)

    def update(self, accel: np.ndarray, up_body: np.ndarray, dt: float) -> np.ndarray:
        """Advance by ``dt`` with specific forces (n, 3) and world-up vectors in the body frame
        (n, 3); returns the new (n,) value. A non-finite sample leaves its vehicle's value
        untouched, so one bad IMU message cannot poison the state."""
        keep = self.decay(dt)
        accel, up = self.rows(accel, 3, "accel"), self.rows(up_body, 3, "up_body")
        ok = np.isfinite(accel).all(1) & np.isfinite(up).all(1)
        a_z = np.where(ok, (np.where(ok[:, None], accel, 0.0) * np.where(ok[:, None], up, 0.0)).sum(1) - GRAVITY, 0.0)
        new = np.clip(self.value * keep + a_z * dt, -LIMIT_MPS, LIMIT_MPS)
        self.value = np.where(ok, new, self.value)
        return self.value

    def update_one(self, accel: Sequence[float], up_body: Sequence[float], dt: float) -> float:
        """:meth:`update` for one vehicle in scalar arithmetic (the onboard per-tick call: a dozen
        tiny numpy calls cost more than the sum they compute); the same rule, tested equal."""
        keep = self.decay(dt)
        if self.value.shape[0] != 1 or len(accel) != 3 or len(up_body) != 3:
            raise ValueError(f"update_one is for one vehicle with accel (3,) and up_body (3,), got "
                             f"{self.value.shape[0]} vehicles, {len(accel)} and {len(up_body)} values")
        if not all(math.isfinite(v) for v in (*accel, *up_body)):
            return float(self.value[0])
        a_z = accel[0] * up_body[0] + accel[1] * up_body[1] + accel[2] * up_body[2] - GRAVITY
        self.value[0] = min(max(float(self.value[0]) * keep + a_z * dt, -LIMIT_MPS), LIMIT_MPS)
        return float(self.value[0])
