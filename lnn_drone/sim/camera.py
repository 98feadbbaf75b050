"""Strapdown pinhole camera rendered with PyBullet's TinyRenderer (CPU, headless).

The camera is rigidly mounted on the body (it rolls with it), looks along body +x tilted up
by ``pitch_up_deg``, and renders at its own rate; between frames the last frame is held.
Aspect ratio is width/height so pixels are square; the field of view is vertical.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np
from ._pybullet import pb

from ..config import CameraConfig
from .image_ops import Corruption, apply_corruption


class Camera:
    def __init__(self, config: CameraConfig, client: int, mount_offset_m: float = 0.03):
        self.config = config
        self.client = client
        self.mount_offset_m = mount_offset_m
        self.projection = pb.computeProjectionMatrixFOV(
            fov=config.fov_deg, aspect=config.width / config.height, nearVal=config.near_m, farVal=config.far_m)
        p = math.radians(config.pitch_up_deg)
        self._fwd_body = (math.cos(p), 0.0, math.sin(p))
        self._up_body = (-math.sin(p), 0.0, math.cos(p))
        self.light: dict = {}
        # paint what no object covers (the background above the horizon) in this colour; None: the
        # renderer's own. Why: a policy trained on one background colour learns to need it
        self.sky_rgb: tuple | None = None
        self.frame_count = 0
        # what the lens and sensor do to a frame (evaluation conditions; identity by default)
        self.corruption = Corruption()
        self.reset()

    def reset(self, rng: np.random.Generator | None = None) -> None:
        """Drop queued frames; ``rng`` draws the image noise of the coming episode."""
        self._rng = rng if rng is not None else np.random.default_rng(0)
        self._next_t = 0.0
        self._queue: deque = deque()
        self.image = np.zeros((self.config.height, self.config.width, 3), dtype=np.uint8)
        self.stamp = -1.0

    def set_lighting(self, direction=None, color=None, ambient: float | None = None,
                     diffuse: float | None = None, specular: float | None = None) -> None:
        """Scene lighting for TinyRenderer (randomized by scenes)."""
        light = {}
        if direction is not None:
            light["lightDirection"] = list(direction)
        if color is not None:
            light["lightColor"] = list(color)
        if ambient is not None:
            light["lightAmbientCoeff"] = ambient
        if diffuse is not None:
            light["lightDiffuseCoeff"] = diffuse
        if specular is not None:
            light["lightSpecularCoeff"] = specular
        self.light = light

    def render(self, pos, rot) -> np.ndarray:  # noqa: D401
        """Render one RGB frame (H, W, 3 uint8) from a body pose (rot: row-major 9-tuple)."""
        f, u = self._fwd_body, self._up_body
        fw = (rot[0] * f[0] + rot[2] * f[2], rot[3] * f[0] + rot[5] * f[2], rot[6] * f[0] + rot[8] * f[2])
        up = (rot[0] * u[0] + rot[2] * u[2], rot[3] * u[0] + rot[5] * u[2], rot[6] * u[0] + rot[8] * u[2])
        o = self.mount_offset_m
        eye = (pos[0] + fw[0] * o, pos[1] + fw[1] * o, pos[2] + fw[2] * o)
        target = (eye[0] + fw[0], eye[1] + fw[1], eye[2] + fw[2])
        view = pb.computeViewMatrix(eye, target, up)
        cfg = self.config
        sky = self.sky_rgb
        _, _, rgba, _, seg = pb.getCameraImage(
            cfg.width, cfg.height, view, self.projection, shadow=int(cfg.shadows),
            renderer=pb.ER_TINY_RENDERER, flags=0 if sky is not None else pb.ER_NO_SEGMENTATION_MASK,
            physicsClientId=self.client, **self.light)
        self.frame_count += 1
        frame = np.asarray(rgba, dtype=np.uint8).reshape(cfg.height, cfg.width, 4)[:, :, :3].copy()
        if sky is not None:
            frame[np.asarray(seg).reshape(cfg.height, cfg.width) < 0] = sky   # -1: no object in that pixel
        return frame

    def update(self, t: float, pos, rot, force: bool = False) -> None:
        """Render if a frame is due at time ``t``; deliver frames after the configured latency."""
        if force or t >= self._next_t - 1e-9:
            frame = self.render(pos, rot)
            if not self.corruption.is_identity:
                frame = apply_corruption(frame, self.corruption, self._rng)
            self._next_t = t + 1.0 / self.config.rate_hz
            if self.config.latency_s <= 0.0 or self.stamp < 0:
                # (the first frame of an episode is there at once: the camera was running before)
                self.image, self.stamp = frame, t
            else:
                self._queue.append((t, frame))
        q = self._queue
        while q and q[0][0] <= t - self.config.latency_s + 1e-9:
            self.stamp, self.image = q.popleft()
