"""The integral of the position error, kept by whoever feeds a policy (torch-free).

Why it exists: a hover policy that sees only the current error holds a steady offset whenever its
idea of the hover thrust is wrong (another thrust-to-weight, a heavier payload) or a constant
push acts on it; rejecting both needs integral action. A recurrent core *can* learn to integrate,
but the imitation labels can only teach it if the teacher's integral is something the student
sees. So the integral is an observation: the env computes it for training and evaluation,
:class:`~lnn_drone.policy.policy.Policy` computes it on the drone, with this one class, and the
teacher (``ExpertAgent(teacher="integral")``) applies exactly this value.

Rule (world frame, ``e = p - p_goal`` from odometry): integrate only while the vehicle is nearly
still (speed below :data:`SPEED_GATE_MPS`, so a recovery transient does not wind it up), with each
axis of ``e`` clipped to :data:`ERROR_CLIP_M` and the integral to :data:`LIMIT_M_S`.
"""
from __future__ import annotations

import math

import numpy as np

from .batch_integral import BatchIntegral

SPEED_GATE_MPS = 0.3
ERROR_CLIP_M = 0.5
LIMIT_M_S = 3.0


class ErrorIntegrator(BatchIntegral):
    """World-frame ∫(p - p_goal) dt for a batch of ``n`` vehicles (``n = 1`` for one policy)."""

    def __init__(self, n: int = 1):
        super().__init__(n, (3,))

    def update(self, odom: np.ndarray, goal: np.ndarray, dt: float) -> np.ndarray:
        """Advance by ``dt`` with odometry (n, 13) and goals (n, 4); returns the new (n, 3) value.

        Non-finite odometry or goals leave the integral untouched (and are reported by the
        feature extractors that read them), so one bad sample cannot poison the state."""
        if self.value.shape[0] == 1 and np.ndim(odom) == 1 and np.ndim(goal) == 1 and len(odom) == 13 and len(goal) == 4:
            return self._update_one(np.asarray(odom).tolist(), np.asarray(goal).tolist(), dt)
        odom = np.asarray(odom, dtype=np.float64).reshape(self.value.shape[0], -1)
        goal = np.asarray(goal, dtype=np.float64).reshape(self.value.shape[0], -1)
        if odom.shape[1] != 13 or goal.shape[1] != 4:
            raise ValueError(f"the error integral needs odom (n, 13) and goal (n, 4), got {odom.shape} and {goal.shape}")
        ok = np.isfinite(odom[:, :10]).all(1) & np.isfinite(goal[:, :3]).all(1)
        v = odom[:, 7:10]
        still = ok & ((v * v).sum(1) < SPEED_GATE_MPS**2)
        if still.any() and dt > 0.0:
            e = np.clip(odom[:, 0:3] - goal[:, 0:3], -ERROR_CLIP_M, ERROR_CLIP_M)
            new = np.clip(self.value + e * dt, -LIMIT_M_S, LIMIT_M_S)
            self.value = np.where(still[:, None], new, self.value)
        return self.value

    def _update_one(self, o: list, g: list, dt: float) -> np.ndarray:
        """:meth:`update` for one vehicle in scalar arithmetic (the onboard node's per-tick call:
        a dozen tiny numpy calls cost more than the network); same rule, same result."""
        if not all(math.isfinite(v) for v in o[:10]) or not all(math.isfinite(v) for v in g[:3]):
            return self.value
        vx, vy, vz = o[7], o[8], o[9]
        if dt > 0.0 and vx * vx + vy * vy + vz * vz < SPEED_GATE_MPS**2:
            row = self.value[0]
            for i in range(3):
                e = min(max(o[i] - g[i], -ERROR_CLIP_M), ERROR_CLIP_M)
                row[i] = min(max(row[i] + e * dt, -LIMIT_M_S), LIMIT_M_S)
        return self.value
