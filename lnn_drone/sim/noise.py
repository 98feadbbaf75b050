"""Cheap seeded Gaussian noise for the inner physics loop.

Drawing a few normals per step with numpy costs microseconds of call overhead; drawing them in
blocks and handing out Python floats keeps the per-step cost near a list index.
"""
from __future__ import annotations

import numpy as np


class NormalStream:
    """An endless stream of standard normal floats from one seeded generator."""

    def __init__(self, rng: np.random.Generator, block: int = 8192):
        self._rng = rng
        self._block = block
        self._buf: list[float] = []
        self._i = 0

    def take(self, n: int) -> list[float]:
        if self._i + n > len(self._buf):
            self._buf = self._rng.standard_normal(max(self._block, n)).tolist()
            self._i = 0
        out = self._buf[self._i:self._i + n]
        self._i += n
        return out


class NormalRows:
    """Rows of ``width`` standard normals, drawn in blocks (one list index per use)."""

    def __init__(self, rng: np.random.Generator, width: int, block: int = 256):
        self._rng = rng
        self._width = width
        self._block = block
        self._rows: list[list[float]] = []
        self._i = 0

    def next(self) -> list[float]:
        i = self._i
        if i >= len(self._rows):
            self._rows = self._rng.standard_normal((self._block, self._width)).tolist()
            i = 0
        self._i = i + 1
        return self._rows[i]


class ImuNoise:
    """IMU errors per sample: white noise plus a bias random walk, generated in seeded blocks.

    Row k holds (gyro xyz, accel xyz) = bias_k + white_k, with bias_k = bias_{k-1} + rw · n_k;
    computing blocks with numpy (cumsum) leaves one list index and six adds per sample.
    """

    def __init__(self, rng: np.random.Generator, white: tuple[float, float], random_walk: tuple[float, float],
                 initial_bias, block: int = 256):
        self._rng = rng
        self._white = np.repeat(np.asarray(white, dtype=float), 3)
        self._rw = np.repeat(np.asarray(random_walk, dtype=float), 3)
        self._bias = np.asarray(initial_bias, dtype=float).reshape(6)
        self._block = block
        self._rows: list[list[float]] = []
        self._i = 0

    @property
    def bias(self) -> np.ndarray:
        """Bias (gyro xyz, accel xyz) at the most recently generated row."""
        return self._bias.copy()

    def next(self) -> list[float]:
        i = self._i
        if i >= len(self._rows):
            n = self._rng.standard_normal((self._block, 12))
            bias = self._bias + np.cumsum(n[:, 6:] * self._rw, axis=0)
            self._bias = bias[-1].copy()
            self._rows = (bias + n[:, :6] * self._white).tolist()
            i = 0
        self._i = i + 1
        return self._rows[i]
