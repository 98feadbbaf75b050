"""Online estimate of the hover thrust, kept by whoever feeds a policy (torch-free).

Why it exists: the collective a vehicle needs to hover (a fraction of its total thrust) varies
2.3x across the thrust-to-weight range a hover policy must fly (1.3-3), and more across vehicle
classes. A student that cannot see it learns the average and sags (or climbs) until an integral
winds up; a teacher that knows it is privileged. This estimator makes it observable from what a
hover policy already reads: the accelerometer's specific force along body z (thrust / mass plus
rotor drag, with no gravity in it, whatever the attitude), the collective it commanded and the
odometry's velocity. PX4 runs a hover-thrust estimator for the same reason. This one is a
two-parameter recursive least squares with forgetting:

    f_z = theta * c + beta * v_z * sqrt(c)       hover fraction h = g / theta

``c``: commanded collective (fraction of total thrust), after a nominal motor lag; ``v_z``: body-z
velocity (m/s). The drag term matters: a vehicle falling at 2 m/s gets up to 40 % of its thrust
again from rotor drag (the sim's Förster drag model is proportional to rotor speed x velocity),
and a one-parameter fit read that as a stronger vehicle, commanded less and fell further. All
regressors and f_z pass through the same low-pass.

The env keeps it for training and evaluation (observation ``hover_thrust``),
:class:`~lnn_drone.policy.policy.Policy` keeps it on the drone with this same class, and
``ExpertAgent(teacher="adaptive")`` flies with this value instead of the true one, so its
labels are a function of what the student sees.
"""
from __future__ import annotations

import math

import numpy as np

from ..frames import GRAVITY

PRIOR_HOVER_FRACTION = 0.5   # vehicle-agnostic start: T/W 2
MOTOR_LAG_S = 0.05           # nominal rotor lag applied to the commanded collective
FILTER_S = 0.02              # low-pass of all signals (accelerometer noise, vibration)
MEMORY_S = 0.25              # RLS forgetting: short, a slow estimate lets the z loop overshoot (tuned on the teacher)
MIN_COLLECTIVE = 0.05        # below this the ratio is noise (and a falling vehicle tells nothing)
P0 = (400.0, 0.2)            # initial (and largest) variances of theta and beta
HOVER_RANGE = (0.08, 0.95)   # estimates are clipped to physically meaningful hover fractions
BETA_RANGE = (-5.0, 0.0)     # drag opposes motion; (m/s^2) per (m/s x sqrt(collective)); Crazyflie fits -2.4


class HoverThrustEstimator:
    """Hover collective fraction ``h`` for a batch of ``n`` vehicles (``n = 1`` for one policy)."""

    def __init__(self, n: int = 1):
        self.n = n
        self.reset()

    def reset(self, mask: np.ndarray | None = None) -> None:
        m = np.ones(self.n, bool) if mask is None else np.asarray(mask, dtype=bool)
        if mask is None:
            self.params = np.zeros((self.n, 2))        # [theta, beta]
            self.cov = np.zeros((self.n, 2, 2))
            self.filtered = np.zeros((self.n, 3))      # low-passed [c, v_z sqrt(c), f_z]
            self.cmd_lagged = np.zeros(self.n)
        self.params[m] = (GRAVITY / PRIOR_HOVER_FRACTION, 0.0)
        self.cov[m] = np.diag(P0)
        self.filtered[m] = 0.0
        self.cmd_lagged[m] = np.nan   # nan: not started (the first commanded collective starts it)

    @property
    def value(self) -> np.ndarray:
        """(n,) hover fractions of total thrust."""
        return np.clip(GRAVITY / self.params[:, 0], *HOVER_RANGE)

    @staticmethod
    def _rates(dt: float) -> tuple[float, float, float]:
        return 1.0 - math.exp(-dt / MOTOR_LAG_S), 1.0 - math.exp(-dt / FILTER_S), math.exp(-dt / MEMORY_S)

    def update(self, accel_z, collective, velocity_z, dt: float) -> np.ndarray:
        """Advance by ``dt`` with the measured body-z specific force (n,) in m/s², the collective
        commanded at the previous tick (n,) as a fraction of total thrust and the body-z velocity
        (n,) in m/s; returns (n,) hover fractions. Non-finite samples leave that vehicle's estimate
        untouched."""
        fz = np.asarray(accel_z, dtype=np.float64).reshape(self.n)
        c = np.asarray(collective, dtype=np.float64).reshape(self.n)
        vz = np.asarray(velocity_z, dtype=np.float64).reshape(self.n)
        ok = np.isfinite(fz) & np.isfinite(c) & np.isfinite(vz)
        if not dt > 0.0:
            return self.value
        c = np.clip(np.where(ok, c, 0.0), 0.0, 1.0)
        a_lag, a_f, lam = self._rates(dt)
        # the filters start at the first commanded collective (after a reset the fed-back command
        # is zero while the rotors still spin: starting there would read as a huge thrust)
        waiting = np.isnan(self.cmd_lagged)
        ok &= ~(waiting & (c <= MIN_COLLECTIVE))
        fresh = ok & waiting
        lagged = np.where(fresh, c, self.cmd_lagged + a_lag * (c - np.nan_to_num(self.cmd_lagged)))
        sample = np.stack([lagged, np.where(ok, vz, 0.0) * np.sqrt(np.clip(lagged, 0.0, 1.0)), np.where(ok, fz, 0.0)], 1)
        filtered = np.where(fresh[:, None], sample, self.filtered + a_f * (sample - self.filtered))
        self.cmd_lagged = np.where(ok, lagged, self.cmd_lagged)
        self.filtered = np.where(ok[:, None], filtered, self.filtered)
        use = ok & (filtered[:, 0] > MIN_COLLECTIVE)
        if use.any():
            x, y = filtered[:, :2], filtered[:, 2]
            px = np.einsum("nij,nj->ni", self.cov, x)
            gain = px / (lam + (x * px).sum(1))[:, None]
            params = self.params + gain * (y - (self.params * x).sum(1))[:, None]
            cov = _bounded((self.cov - gain[:, :, None] * px[:, None, :]) / lam)
            params[:, 0] = np.clip(params[:, 0], GRAVITY / HOVER_RANGE[1], GRAVITY / HOVER_RANGE[0])
            params[:, 1] = np.clip(params[:, 1], *BETA_RANGE)
            self.params = np.where(use[:, None], params, self.params)
            self.cov = np.where(use[:, None, None], cov, self.cov)
        return self.value

    def update_one(self, fz: float, c: float, vz: float, dt: float) -> float:
        """:meth:`update` for one vehicle in scalar arithmetic (the onboard per-tick call: a dozen
        tiny numpy calls would cost more than the network); the same rule, tested equal.
        Returns the hover fraction."""
        if math.isfinite(fz) and math.isfinite(c) and math.isfinite(vz) and dt > 0.0:
            self._advance_one(fz, min(max(c, 0.0), 1.0), vz, dt)
        return min(max(GRAVITY / float(self.params[0, 0]), HOVER_RANGE[0]), HOVER_RANGE[1])

    def _advance_one(self, fz: float, c: float, vz: float, dt: float) -> None:
        a_lag, a_f, lam = self._rates(dt)
        lagged0 = float(self.cmd_lagged[0])
        f = self.filtered[0]
        if math.isnan(lagged0):
            if c <= MIN_COLLECTIVE:  # not started: see update()
                return
            lagged = c
            x0, x1, y = c, vz * math.sqrt(c), fz
        else:
            lagged = lagged0 + a_lag * (c - lagged0)
            s = vz * math.sqrt(min(max(lagged, 0.0), 1.0))
            x0, x1, y = f[0] + a_f * (lagged - f[0]), f[1] + a_f * (s - f[1]), f[2] + a_f * (fz - f[2])
        self.cmd_lagged[0] = lagged
        f[0], f[1], f[2] = x0, x1, y
        if x0 <= MIN_COLLECTIVE:
            return
        (p00, p01), (p10, p11) = self.cov[0].tolist()
        th, be = self.params[0].tolist()
        px0, px1 = p00 * x0 + p01 * x1, p10 * x0 + p11 * x1
        den = lam + x0 * px0 + x1 * px1
        g0, g1 = px0 / den, px1 / den
        err = y - (th * x0 + be * x1)
        self.params[0, 0] = min(max(th + g0 * err, GRAVITY / HOVER_RANGE[1]), GRAVITY / HOVER_RANGE[0])
        self.params[0, 1] = min(max(be + g1 * err, BETA_RANGE[0]), BETA_RANGE[1])
        # _bounded() in scalars
        d0 = min(max((p00 - g0 * px0) / lam, 1e-9), P0[0])
        d1 = min(max((p11 - g1 * px1) / lam, 1e-9), P0[1])
        lim = 0.999 * math.sqrt(d0 * d1)
        off = min(max(0.5 * ((p01 - g0 * px1) + (p10 - g1 * px0)) / lam, -lim), lim)
        self.cov[0] = ((d0, off), (off, d1))


def _bounded(cov: np.ndarray) -> np.ndarray:
    """Covariances (n, 2, 2) kept symmetric, with variances at most :data:`P0` (forgetting without
    excitation would blow them up) and a valid correlation."""
    cov = 0.5 * (cov + cov.transpose(0, 2, 1))
    d0 = np.clip(cov[:, 0, 0], 1e-9, P0[0])
    d1 = np.clip(cov[:, 1, 1], 1e-9, P0[1])
    lim = 0.999 * np.sqrt(d0 * d1)
    off = np.clip(cov[:, 0, 1], -lim, lim)
    return np.stack([np.stack([d0, off], 1), np.stack([off, d1], 1)], 1)


def collective_of(action, action_mode: str) -> float:
    """The collective, a fraction of total thrust, of one action: the CTBR thrust, or the mean of
    the four motor commands (thrust is linear in the command, DESIGN §2)."""
    return float(action[0]) if action_mode == "ctbr" else 0.25 * (action[0] + action[1] + action[2] + action[3])


def body_z_velocity(odom) -> float:
    """Velocity along body z (m/s) from an odometry vector (13,): world velocity on the third
    column of the attitude's rotation matrix."""
    x, y, z, w = (float(v) for v in odom[3:7])
    n = x * x + y * y + z * z + w * w
    if not n > 0.0:
        return float("nan")
    s = 2.0 / n
    return (s * (x * z + y * w)) * float(odom[7]) + (s * (y * z - x * w)) * float(odom[8]) \
        + (1.0 - s * (x * x + y * y)) * float(odom[9])
