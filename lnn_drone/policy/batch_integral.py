"""Per-vehicle integrator state shared by the observations a policy's feeder integrates (torch-free).

Why it exists: the error integral, the climb rate and the inertial velocity are each a running
state kept for a batch of vehicles (the env's rollouts) or one (the policy on the drone), zeroed
per vehicle when its episode restarts. They differ only in what they integrate; the state, its
reset and, for the leaky ones, the leak and the time step's checks live here once.
"""
from __future__ import annotations

import math

import numpy as np


class BatchIntegral:
    """A value of shape ``(n, *shape)``, one row a vehicle, zeroed per vehicle by :meth:`reset`."""

    def __init__(self, n: int = 1, shape: tuple[int, ...] = ()):
        self.value = np.zeros((n, *shape))

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Zero every vehicle's row, or only those where ``mask`` holds."""
        if mask is None:
            self.value[:] = 0.0
        else:
            self.value[np.asarray(mask, dtype=bool)] = 0.0

    def rows(self, array: np.ndarray, width: int, name: str) -> np.ndarray:
        """``array`` as float64 rows of ``width``, one a vehicle: a clear error instead of a broadcast."""
        rows = np.asarray(array, dtype=np.float64).reshape(self.value.shape[0], -1)
        if rows.shape[1] != width:
            raise ValueError(f"{type(self).__name__} needs {name} as (n, {width}), got {rows.shape}")
        return rows


class LeakyIntegral(BatchIntegral):
    """A :class:`BatchIntegral` that forgets with time constant ``leak_time_s``: the leak bounds
    what an unknown start value or a sensor bias can do to the state."""

    def __init__(self, leak_time_s: float, n: int = 1, shape: tuple[int, ...] = ()):
        if not (math.isfinite(leak_time_s) and leak_time_s > 0.0):
            raise ValueError(f"leak_time_s must be a positive number of seconds, got {leak_time_s!r}")
        super().__init__(n, shape)
        self.leak_time_s = float(leak_time_s)

    def decay(self, dt: float) -> float:
        """The factor the state keeps over ``dt`` seconds (refuses a non-finite or negative step)."""
        if not (math.isfinite(dt) and dt >= 0.0):
            raise ValueError(f"dt must be a finite number of seconds >= 0, got {dt!r}")
        return math.exp(-dt / self.leak_time_s)
