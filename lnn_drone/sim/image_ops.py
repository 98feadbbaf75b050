"""Image corruptions of the simulated camera: colour gain, contrast, brightness, blur, noise.

They live in the camera path of the core simulator (not in a ROS node) so that evaluation,
training and a flight over ROS see the same corrupted frames. Pure numpy, uint8 in and out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Corruption:
    """One frame transform, applied in this order: colour gain, contrast about mid-grey,
    brightness offset, Gaussian blur, additive Gaussian noise (all in 0..255 units)."""

    color_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    contrast: float = 1.0
    brightness: float = 0.0
    blur_sigma_px: float = 0.0
    noise_std: float = 0.0

    @property
    def is_identity(self) -> bool:
        return (tuple(self.color_gain) == (1.0, 1.0, 1.0) and self.contrast == 1.0 and self.brightness == 0.0
                and self.blur_sigma_px <= 0.0 and self.noise_std <= 0.0)


def check_image(image: np.ndarray) -> np.ndarray:
    """Raise a ValueError that says what is wrong unless ``image`` is an (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB, got dtype {image.dtype}")
    return image


def gaussian_kernel(sigma_px: float) -> np.ndarray:
    """Normalised 1-D Gaussian taps out to 3 sigma."""
    radius = max(1, int(math.ceil(3.0 * sigma_px)))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma_px) ** 2)
    return k / k.sum()


def blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Separable Gaussian blur of a float (H, W, C) image, edges replicated."""
    if sigma_px <= 0.0:
        return image
    k = gaussian_kernel(sigma_px)
    r = len(k) // 2
    out = np.asarray(image, dtype=np.float64)
    for axis in (0, 1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="edge")
        n = out.shape[axis]
        acc = np.zeros_like(out)
        for i, w in enumerate(k):
            acc += w * np.take(padded, np.arange(i, i + n), axis=axis)
        out = acc
    return out


def apply_corruption(image: np.ndarray, c: Corruption, rng: np.random.Generator | None = None) -> np.ndarray:
    """A new uint8 frame: ``image`` seen through corruption ``c`` (noise drawn from ``rng``)."""
    check_image(image)
    if c.is_identity:
        return image.copy()
    x = image.astype(np.float64)
    gain = np.asarray(c.color_gain, dtype=np.float64)
    if gain.shape != (3,) or not np.isfinite(gain).all() or (gain < 0).any():
        raise ValueError(f"color_gain must be 3 finite values >= 0, got {c.color_gain}")
    x = x * gain
    x = (x - 127.5) * c.contrast + 127.5 + c.brightness
    x = blur(x, c.blur_sigma_px)
    if c.noise_std > 0.0:
        if rng is None:
            raise ValueError("image noise needs a random generator")
        x = x + c.noise_std * rng.standard_normal(x.shape)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
