"""Where a camera policy looks: input-gradient saliency over the frames of a flight (torch).

For every step ``t`` the recurrent state before the step is taken from a forward run over the
whole flight; the saliency of frame ``t`` is then sum_k |d a_k(t) / d image(t)| over the four
normalised command components (thrust fraction, rates / max_rate), summed over RGB. It says
which pixels the command of that step is most sensitive to (Simonyan et al., 2014). The share
of the saliency that falls on the target's disc measures whether the policy looks at the
target or at the scene.
"""
from __future__ import annotations

import math

import numpy as np


def torch_network(model):
    """The torch :class:`PolicyNetwork` of a loaded model file (weights copied, eval mode)."""
    import torch

    from ..policy.network import build_policy_network

    net = build_policy_network(model.config, wiring=model.wiring)
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in model.tensors.items()})
    return net.eval()


def saliency_maps(net, inputs: dict[str, np.ndarray], dt: float, image_name: str = "image") -> np.ndarray:
    """(T, H, W) saliency of each frame of one flight; ``inputs`` are (T, ...) model inputs."""
    import torch

    x = {k: torch.from_numpy(np.ascontiguousarray(v))[None] for k, v in inputs.items()}
    t_len = x[image_name].shape[1]
    dts = torch.full((1, t_len), float(dt))
    with torch.no_grad():
        _, seq = net(x, dts, return_states=True)
    states = seq.states[0] if seq.states is not None else None
    h0 = torch.zeros(1, net.state_size)
    prev = torch.cat([h0, states[:-1]], 0) if states is not None else h0.expand(t_len, -1)
    step_in = {k: v[0] for k, v in x.items()}
    img = step_in[image_name].to(torch.float32).requires_grad_(True)
    step_in[image_name] = img
    action, _ = net.step(step_in, prev, torch.full((t_len,), float(dt)))
    scale = torch.ones(4)
    if net.config.action.mode == "ctbr":
        scale[1:] = 1.0 / net.config.action.max_rate
    total = torch.zeros_like(img)
    for k in range(4):
        (g,) = torch.autograd.grad(action[:, k].sum() * scale[k], img, retain_graph=k < 3)
        total += g.abs()
    return total.sum(-1).numpy()


def project_target(rot, position, target, radius: float, width: int, height: int, fov_deg: float,
                   mount_offset_m: float = 0.03) -> tuple[float, float, float] | None:
    """Pixel centre (u, v) and radius of a sphere seen by the strapdown camera (pitch 0), or
    None when it is behind the camera."""
    r = np.asarray(rot, dtype=float).reshape(3, 3)
    cam = np.asarray(position, dtype=float) + r[:, 0] * mount_offset_m
    p = r.T @ (np.asarray(target, dtype=float) - cam)
    if p[0] <= 1e-3:
        return None
    f = (height / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return width / 2.0 - f * p[1] / p[0], height / 2.0 - f * p[2] / p[0], f * radius / p[0]


def target_share(saliency: np.ndarray, disc: tuple[float, float, float] | None, margin_px: float = 1.5) -> float | None:
    """Fraction of one frame's saliency inside the target's disc (+ margin); None if not in view."""
    if disc is None:
        return None
    h, w = saliency.shape
    u, v, rad = disc
    yy, xx = np.mgrid[0:h, 0:w]
    inside = (xx + 0.5 - u) ** 2 + (yy + 0.5 - v) ** 2 <= (rad + margin_px) ** 2
    if not inside.any():
        return None
    total = float(saliency.sum())
    return float(saliency[inside].sum()) / total if total > 0 else None
