"""Where the target is in the camera's view: the labels of an auxiliary perception loss.

Why: imitation gives the camera encoder only an indirect signal (the expert's commands), and in
walls scenes that signal never taught it to find the target (README, "Walls in training"), while
the same encoder, trained on these labels directly, finds it to ~4° (session 19's probe). The
labels are privileged (true pose and target), so they exist in training only; the head that
reads them is never part of the model file.

A known approximation: the labels are of the pose at the tick, while in episodes with camera
latency the frame may be one tick (33 ms) older; at the task's turn rates that is a few degrees.
"""
from __future__ import annotations

import math

import numpy as np

# log-range is centred on the middle of the task's 2-6 m so all three labels are O(1)
LOG_RANGE_CENTRE = math.log(3.0)
VIEW_LABELS = 4  # azimuth (rad, + left), elevation (rad, + up), log range - centre, in view (0/1)


def target_view_labels(rot, position, target, width: int, height: int, fov_deg: float,
                       mount_offset_m: float = 0.03) -> np.ndarray:
    """(azimuth, elevation, log range - centre, in view) of ``target`` seen by the strapdown
    camera (body x forward, pitch 0, vertical ``fov_deg``). Out of view the first three are 0,
    and the flag tells the loss to skip the step."""
    r = np.asarray(rot, dtype=float).reshape(3, 3)
    cam = np.asarray(position, dtype=float) + r[:, 0] * mount_offset_m
    p = r.T @ (np.asarray(target, dtype=float) - cam)
    tan_v = math.tan(math.radians(fov_deg) / 2.0)
    tan_h = tan_v * width / height
    if not (p[0] > 1e-3 and abs(p[1]) < tan_h * p[0] and abs(p[2]) < tan_v * p[0]):
        return np.zeros(VIEW_LABELS, dtype=np.float32)
    return np.array([math.atan2(p[1], p[0]), math.atan2(p[2], math.hypot(p[0], p[1])),
                     math.log(float(np.linalg.norm(p))) - LOG_RANGE_CENTRE, 1.0], dtype=np.float32)


def target_view_loss(pred, labels, mask):
    """Mean over in-view, scored steps of the squared error of (azimuth, elevation, log range):
    ``pred`` (..., 3), ``labels`` (..., 4) with the in-view flag last, ``mask`` (...)."""
    w = labels[..., 3] * mask
    per = (pred - labels[..., :3]).square().sum(-1)
    return (per * w).sum() / w.sum().clamp(min=1.0)
