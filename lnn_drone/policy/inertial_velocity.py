"""The whole velocity an IMU can tell, in the vehicle's heading frame (torch-free).

Why it exists: :mod:`lnn_drone.policy.climb_rate` gave the 250 mm vehicle's camera student a
vertical velocity and its height stopped bobbing (session 21: height spread over the last 3 s
0.03-0.11 m against 0.18-0.70 m), but it still swung horizontally by 0.2-0.5 m/s, where rotor
drag does not damp it either. ``drag_velocity`` reads the horizontal velocity through rotor drag,
which at low drag divides the accelerometer's noise by a small number and reads a constant push
as a velocity. Integrating the acceleration reads neither: a push is a real acceleration.

The frame: the *heading frame* has its z axis up and its x axis along the body's nose projected
on the horizontal plane; it follows the vehicle's yaw and not its roll or pitch, so a velocity in
it needs no magnetometer. Each tick:

    a_h = (f · x_h, f · y_h, f · u - g)      (f: specific force; u, x_h, y_h: the heading frame's
                                             axes in the body frame, from the attitude estimate)
    v <- Rz(-dpsi) v · exp(-dt / tau) + a_h · dt      dpsi = (gyro · u) dt, the yaw turned

clipped to ±LIMIT_MPS per axis. The leak (``tau``) bounds the start velocity's and a bias's
effect, as in the climb rate.

The cost of the horizontal part is the attitude estimate: a tilt error ``e`` reads as ``g e`` of
horizontal acceleration (0.17 m/s² per degree), first order where the vertical part is second
order. The simulator's attitude observation is the true attitude, so this input is only as good
on a vehicle as that vehicle's AHRS; the vertical part alone is :mod:`~lnn_drone.policy.climb_rate`.

The env computes it for training and evaluation (observation ``inertial_velocity``) and
:class:`~lnn_drone.policy.policy.Policy` computes it on the drone, with this one class.
"""
from __future__ import annotations

import numpy as np

from ..frames import GRAVITY
from .batch_integral import LeakyIntegral

LEAK_TIME_S = 3.0   # memory of the integral (s), as the climb rate's
LIMIT_MPS = 5.0     # clip per axis (m/s)


def heading_frame_axes(up_body: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x_h, y_h) of the heading frame in the body frame, (n, 3) each, from world up ``u``.
    x_h is the body x axis with its vertical part removed (degenerate only with the nose
    straight up, where the body y axis stands in)."""
    u = up_body
    x = np.array([1.0, 0.0, 0.0]) - u[:, :1] * u
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    y_fallback = np.array([0.0, 1.0, 0.0]) - u[:, 1:2] * u
    x = np.where(norm > 1e-6, x / np.maximum(norm, 1e-12), np.cross(y_fallback, u))
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x, np.cross(u, x)


class InertialVelocityEstimator(LeakyIntegral):
    """High-passed velocity (m/s) in the heading frame for a batch of ``n`` vehicles."""

    def __init__(self, n: int = 1, leak_time_s: float = LEAK_TIME_S):
        super().__init__(leak_time_s, n, (3,))

    def update(self, imu: np.ndarray, up_body: np.ndarray, dt: float) -> np.ndarray:
        """Advance by ``dt`` with IMU samples (n, 6: gyro rad/s, specific force m/s², body FLU)
        and world up in the body frame (n, 3); returns the new (n, 3) value. A non-finite sample
        leaves its vehicle's value untouched."""
        keep = self.decay(dt)
        imu, up = self.rows(imu, 6, "imu"), self.rows(up_body, 3, "up_body")
        ok = np.isfinite(imu).all(1) & np.isfinite(up).all(1) & (np.linalg.norm(np.nan_to_num(up), axis=1) > 0.5)
        imu = np.where(ok[:, None], imu, 0.0)
        up = np.where(ok[:, None], up, np.array([0.0, 0.0, 1.0]))
        up = up / np.linalg.norm(up, axis=1, keepdims=True)
        x_h, y_h = heading_frame_axes(up)
        f = imu[:, 3:6]
        accel = np.stack([(f * x_h).sum(1), (f * y_h).sum(1), (f * up).sum(1) - GRAVITY], 1)
        dpsi = (imu[:, 0:3] * up).sum(1) * dt
        c, s = np.cos(dpsi), np.sin(dpsi)
        vx, vy = self.value[:, 0], self.value[:, 1]
        # the frame turned by dpsi: the same world velocity reads rotated by -dpsi in it
        rotated = np.stack([c * vx + s * vy, -s * vx + c * vy, self.value[:, 2]], 1)
        new = np.clip(rotated * keep + accel * dt, -LIMIT_MPS, LIMIT_MPS)
        self.value = np.where(ok[:, None], new, self.value)
        return self.value
