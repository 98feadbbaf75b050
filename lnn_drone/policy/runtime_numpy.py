"""Torch-free inference: the policy network's maths in numpy, lean enough for a 500 Hz loop.

Same equations as :mod:`lnn_drone.policy.network` (parity-tested to <= 1e-5 over 1,000-step
rollouts), rearranged once at load time so that a step is a handful of numpy calls on
preallocated arrays (batch 1, no per-step allocation on the vector path):

* **float64** throughout: the float32 weights are widened once, which costs nothing at these
  sizes and keeps the runtime's own rounding far below the parity target.
* Input normalisation is folded into the first linear map that reads the input
  (encoder, CfC layer 0, GRU, LTC input mapping, first conv), so raw features go straight in.
* Biases ride on a constant 1 stored next to each state block, so a layer is one ``np.dot``.
* ``sigmoid(y) = (1 + tanh(y / 2)) / 2`` with the 1/2 folded into the weights, so all squashing
  is ``np.tanh`` on contiguous slices.
* A layered CfC keeps all blocks in one buffer ``[x | 1 | 2h_0 | 1 | 2h_1 | 1 | …]``: layer l's
  input (the new output of layer l-1, its own previous state, a 1) is one contiguous slice and
  its result is written in place, so nothing is copied between layers. States are stored
  doubled (2h) because the default-mode update is then ``[f1, f2] * (1 + [-t, t])`` summed
  pairwise (t = tanh of the half gate pre-activation); readers of 2h get halved weights.

Batch 1 only: batches are what torch is for.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from .config import OPPONENT_FLOOR, PER_FRAME_STD_FLOOR
from .model_file import LoadedModel
from .spec import MIXER_SIGNS, REFERENCE_CLIP

__all__ = ["NumpyRuntime", "softplus"]

_F = np.float64
_REF_LO, _REF_HI = REFERENCE_CLIP


def softplus(x: np.ndarray) -> np.ndarray:
    """Numerically safe softplus, matching ``torch.nn.functional.softplus`` (threshold 20)."""
    x = np.asarray(x, dtype=_F)
    return np.where(x > 20.0, x, np.log1p(np.exp(np.minimum(x, 20.0))))


class _Core:
    """Interface of the core stages. ``inp``: the writable core input (F,); ``out``: a view of
    the outputs followed by a constant 1 (for the head's bias); ``out_scale``: value = out * it."""

    inp: np.ndarray
    out: np.ndarray
    out_scale: float = 1.0
    folds_input: bool = True
    record: bool = False
    aux: np.ndarray | None = None

    def run(self, dt: float) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def reset(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def get_state(self) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def set_state(self, state: np.ndarray) -> None:  # pragma: no cover - interface
        raise NotImplementedError


def _fold_input(w_in: np.ndarray, b: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W (x*scale + shift) + b == (W*scale) x + (b + W shift), W in (out, in) layout."""
    return w_in * scale[None, :], b + w_in @ shift


class _CfCCore(_Core):
    def __init__(self, model: LoadedModel, scale: np.ndarray, shift: np.ndarray) -> None:
        cfg, wiring, t = model.config, model.wiring, model.tensors
        self.mode = cfg.cfc_mode
        sizes = wiring.layer_sizes
        f = wiring.input_size
        # layout [x | 1 | 2h0 | 1 | 2h1 | 1 | ...]
        starts, pos = [], f + 1
        for size in sizes:
            starts.append(pos)
            pos += size + 1
        self.buf = np.zeros(pos, _F)
        self.buf[f] = 1.0
        for s, size in zip(starts, sizes):
            self.buf[s + size] = 1.0
        self.starts, self.sizes = starts, sizes
        self.inp = self.buf[:f]
        last = starts[-1]
        o = wiring.output_slice.start - sum(sizes[:-1])
        self.out = self.buf[last + o : last + sizes[-1] + 1]
        self.out_scale = 0.5
        self.layers = []
        for l, size in enumerate(sizes):
            mask = wiring.cfc_mask(l, cfg.cfc_mode, cfg.cfc_mask_mode).astype(_F)
            w = t[f"core.layers.{l}.weight"].astype(_F) * mask
            b = t[f"core.layers.{l}.bias"].astype(_F)
            n_in = w.shape[1] - size
            w_in, w_rec = w[:, :n_in], w[:, n_in:]
            if l == 0:
                w_in, b = _fold_input(w_in, b, scale, shift)
            else:
                w_in = 0.5 * w_in  # reads the doubled state of the layer below
            w_rec = 0.5 * w_rec
            seg_start = 0 if l == 0 else starts[l - 1]
            seg = slice(seg_start, starts[l] + size + 1)
            rows = seg.stop - seg.start
            # rows: [input block (n_in) | 1 | own state (size) | 1]
            full = np.zeros((w.shape[0], rows), _F)
            full[:, :n_in] = w_in
            full[:, n_in] = b
            full[:, n_in + 1 : n_in + 1 + size] = w_rec
            hslot = self.buf[starts[l] : starts[l] + size]
            if self.mode == "default":
                # z = [ta', ta' | tb', tb' | f1 | f2 | G]; G = dt * [ta', ta'] + [tb', tb'] by a
                # (2,) x (2, 2H) dot; one tanh over [f1, f2, G] gives [f1, f2, t, t] (' = halved, so
                # sigmoid = (1 + t) / 2); G *= [f1, f2]; then 2h = f1 + f2 - t f1 + t f2 is one
                # (4,) x (4, H) dot.
                f12, ta, tb = full[: 2 * size], 0.5 * full[2 * size : 3 * size], 0.5 * full[3 * size :]
                cols = np.concatenate([ta, ta, tb, tb, f12], 0)
                z = np.zeros(8 * size, _F)
                g = z[6 * size :]
                layer = (self.buf[seg], np.ascontiguousarray(cols), z[: 6 * size],
                         z[: 4 * size].reshape(2, 2 * size), g, z[4 * size :], z[4 * size : 6 * size],
                         z[4 * size :].reshape(4, size), hslot, g[:size])
            elif self.mode == "no_gate":
                f12, ta, tb = full[: 2 * size], 0.5 * full[2 * size : 3 * size], 0.5 * full[3 * size :]
                cols = np.concatenate([f12, ta, tb], 0)
                z = np.zeros(4 * size, _F)
                layer = (self.buf[seg], np.ascontiguousarray(cols), z, z[2 * size : 3 * size], z[3 * size :],
                         z[: 3 * size], z[:size], z[size : 2 * size], hslot, np.ones(size, _F))
            else:  # pure
                z = np.zeros(size, _F)
                layer = (self.buf[seg], np.ascontiguousarray(full), z, np.zeros(size, _F),
                         np.abs(t[f"core.layers.{l}.w_tau"].astype(_F)), 2.0 * t[f"core.layers.{l}.A"].astype(_F), hslot)
            self.layers.append(layer)
        self.hslots = [L[-2] if self.mode != "pure" else L[-1] for L in self.layers]
        self.combine = np.array([1.0, 1.0, -1.0, 1.0], _F)
        self.dtv = np.array([0.0, 1.0], _F)
        self.n = sum(sizes)

    def run(self, dt: float) -> None:
        tanh, mul, add, dot = np.tanh, np.multiply, np.add, np.dot
        auxes = [] if self.record else None
        if self.mode == "default":
            dtv = self.dtv
            dtv[0] = dt
            combine = self.combine
            for seg, W, zo, AB, G, tz, f12, z4, hslot, t in self.layers:
                dot(W, seg, out=zo)
                dot(dtv, AB, out=G)
                tanh(tz, out=tz)
                if auxes is not None:
                    auxes.append(0.5 * (1.0 + t))
                mul(G, f12, out=G)
                dot(combine, z4, out=hslot)
        elif self.mode == "no_gate":
            for seg, W, z, g, tb, z3, f1, f2, hslot, ones in self.layers:
                dot(W, seg, out=z)
                mul(g, dt, out=g)
                add(g, tb, out=g)
                tanh(z3, out=z3)
                add(g, ones, out=g)
                if auxes is not None:
                    auxes.append(0.5 * g)
                mul(g, f2, out=g)
                add(g, f1, out=g)
                add(g, f1, out=hslot)
        else:
            for seg, W, z, tmp, abs_wtau, two_a, hslot in self.layers:
                dot(W, seg, out=z)
                np.abs(z, out=tmp)
                add(tmp, abs_wtau, out=tmp)
                mul(tmp, -dt, out=tmp)
                np.exp(tmp, out=tmp)
                if auxes is not None:
                    auxes.append(tmp.copy())
                mul(tmp, z, out=tmp)
                mul(tmp, two_a, out=tmp)
                np.subtract(two_a, tmp, out=hslot)
        if auxes is not None:
            self.aux = np.concatenate(auxes)

    def reset(self) -> None:
        for hslot in self.hslots:
            hslot[:] = 0.0

    def get_state(self) -> np.ndarray:
        return 0.5 * np.concatenate(self.hslots)

    def set_state(self, state: np.ndarray) -> None:
        pos = 0
        for hslot in self.hslots:
            hslot[:] = 2.0 * state[pos : pos + len(hslot)]
            pos += len(hslot)


class _LTCCore(_Core):
    def __init__(self, model: LoadedModel, scale: np.ndarray, shift: np.ndarray) -> None:
        cfg, wiring, t = model.config, model.wiring, model.tensors
        g = lambda k: t["core." + k].astype(_F)  # noqa: E731
        n, f = wiring.units, wiring.input_size
        self.unfolds, self.eps = cfg.ltc_ode_unfolds, 1e-8
        self.inp = np.zeros(f, _F)
        self.vbuf = np.zeros(n + 1, _F)
        self.vbuf[n] = 1.0
        self.v = self.vbuf[:n]
        self.out = self.vbuf[wiring.output_slice.start :]
        # input mapping x' = iw x + ib with the normalisation folded in
        iw = g("input_w") * scale
        ib = g("input_w") * shift + g("input_b")
        s_sigma, s_mu = g("sensory_sigma"), g("sensory_mu")
        self.SA = 0.5 * s_sigma * iw[:, None]
        self.SB = 0.5 * s_sigma * (ib[:, None] - s_mu)
        s_w = softplus(g("sensory_w")) * (wiring.sensory != 0)
        s_we = s_w * g("sensory_erev")
        self.SW2 = 0.5 * np.stack([s_we, s_w])  # (2, F, N)
        w = softplus(g("w")) * (wiring.adjacency != 0)
        we = w * g("erev")
        self.RA = 0.5 * g("sigma")
        self.RB = 0.5 * g("sigma") * g("mu")
        self.W2 = 0.5 * np.stack([we, w])  # (2, N, N)
        self.cm = softplus(g("cm"))
        gleak = softplus(g("gleak"))
        self.gleak = gleak
        # per-step constant part of [numerator, denominator] (sigmoid = 1/2 + tanh/2 halves)
        self.K = np.stack([gleak * g("vleak"), gleak + self.eps]) + self.SW2.sum(1) + self.W2.sum(1)
        self.sb = np.zeros((f, n), _F)
        self.sb2 = np.zeros((2, f, n), _F)
        self.rb = np.zeros((n, n), _F)
        self.rb2 = np.zeros((2, n, n), _F)
        self.ss = np.zeros((2, n), _F)
        self.acc = np.zeros((2, n), _F)
        self.tmp = np.zeros(n, _F)

    def run(self, dt: float) -> None:
        mul, add, tanh = np.multiply, np.add, np.tanh
        x, sb, sb2, ss = self.inp, self.sb, self.sb2, self.ss
        mul(x[:, None], self.SA, out=sb)
        add(sb, self.SB, out=sb)
        tanh(sb, out=sb)
        mul(sb[None], self.SW2, out=sb2)
        np.sum(sb2, axis=1, out=ss)
        add(ss, self.K, out=ss)
        h = dt / self.unfolds
        v, rb, rb2, acc, cm, tmp = self.v, self.rb, self.rb2, self.acc, self.cm, self.tmp
        for _ in range(self.unfolds):
            mul(v[:, None], self.RA, out=rb)
            np.subtract(rb, self.RB, out=rb)
            tanh(rb, out=rb)
            mul(rb[None], self.W2, out=rb2)
            np.sum(rb2, axis=1, out=acc)
            add(acc, ss, out=acc)
            if self.record:
                self.aux = cm / (acc[1] - self.eps)
            mul(acc, h, out=acc)
            mul(cm, v, out=tmp)
            add(acc[0], tmp, out=acc[0])
            add(acc[1], cm, out=acc[1])
            np.divide(acc[0], acc[1], out=v)

    def reset(self) -> None:
        self.v[:] = 0.0

    def get_state(self) -> np.ndarray:
        return self.v.copy()

    def set_state(self, state: np.ndarray) -> None:
        self.v[:] = state


class _GRUCore(_Core):
    """torch.nn.GRUCell maths: r, z gates, n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""

    def __init__(self, model: LoadedModel, scale: np.ndarray, shift: np.ndarray) -> None:
        t = model.tensors
        u = model.config.gru_units
        w_ih, w_hh = t["core.cell.weight_ih"].astype(_F), t["core.cell.weight_hh"].astype(_F)
        b_ih, b_hh = t["core.cell.bias_ih"].astype(_F), t["core.cell.bias_hh"].astype(_F)
        w_ih, b_ih = _fold_input(w_ih, b_ih, scale, shift)
        f = w_ih.shape[1]
        self.buf = np.zeros(f + u + 1, _F)
        self.buf[-1] = 1.0
        self.inp, self.h, self.out = self.buf[:f], self.buf[f : f + u], self.buf[f:]
        cols = np.zeros((4 * u, f + u + 1), _F)
        cols[: 2 * u, :f] = 0.5 * w_ih[: 2 * u]  # r, z (halved for the tanh form)
        cols[: 2 * u, f : f + u] = 0.5 * w_hh[: 2 * u]
        cols[: 2 * u, -1] = 0.5 * (b_ih[: 2 * u] + b_hh[: 2 * u])
        cols[2 * u : 3 * u, :f] = w_ih[2 * u :]  # n, input part
        cols[2 * u : 3 * u, -1] = b_ih[2 * u :]
        cols[3 * u :, f : f + u] = 0.5 * w_hh[2 * u :]  # n, hidden part (halved: r = (1+t)/2)
        cols[3 * u :, -1] = 0.5 * b_hh[2 * u :]
        self.W = np.ascontiguousarray(cols)
        self.ones, self.half = np.ones(u, _F), np.full(u, 0.5, _F)
        self.z = z = np.zeros(4 * u, _F)
        self.u = u
        self.views = (z[:u], z[u : 2 * u], z[2 * u : 3 * u], z[3 * u :], z[: 2 * u])

    def run(self, dt: float) -> None:
        z, add, mul = self.z, np.add, np.multiply
        tr, tz, n, nh, rz = self.views
        np.dot(self.W, self.buf, out=z)
        np.tanh(rz, out=rz)
        add(tr, self.ones, out=tr)
        mul(tr, nh, out=tr)
        add(n, tr, out=n)
        np.tanh(n, out=n)
        np.subtract(self.h, n, out=tr)
        add(tz, self.ones, out=tz)
        mul(tr, tz, out=tr)
        mul(tr, self.half, out=tr)
        add(n, tr, out=self.h)

    def reset(self) -> None:
        self.h[:] = 0.0

    def get_state(self) -> np.ndarray:
        return self.h.copy()

    def set_state(self, state: np.ndarray) -> None:
        self.h[:] = state


class _MLPCore(_Core):
    """tanh MLP over a window of the last k normalised inputs (the window is the state)."""

    folds_input = False

    def __init__(self, model: LoadedModel, scale: np.ndarray, shift: np.ndarray) -> None:
        cfg, t = model.config, model.tensors
        f, k = cfg.core_input_size, cfg.mlp_history
        self.f, self.k = f, k
        self.scale, self.shift = scale, shift
        self.window = np.zeros(k * f + 1, _F)
        self.window[-1] = 1.0
        self.inp = np.zeros(f, _F)
        self.bufs, self.Ws = [], []
        for i, units in enumerate(cfg.mlp_hidden):
            w, b = t[f"core.layers.{i}.weight"].astype(_F), t[f"core.layers.{i}.bias"].astype(_F)
            self.Ws.append(np.ascontiguousarray(np.concatenate([w, b[:, None]], 1)))
            buf = np.zeros(units + 1, _F)
            buf[-1] = 1.0
            self.bufs.append(buf)
        self.out = self.bufs[-1]

    def run(self, dt: float) -> None:
        f, k, win = self.f, self.k, self.window
        slot = win[(k - 1) * f : k * f]
        np.multiply(self.inp, self.scale, out=slot)
        np.add(slot, self.shift, out=slot)
        prev = win
        for W, buf in zip(self.Ws, self.bufs):
            h = buf[:-1]
            np.dot(W, prev, out=h)
            np.tanh(h, out=h)
            prev = buf
        if k > 1:
            win[: (k - 1) * f] = win[f : k * f]

    def reset(self) -> None:
        self.window[:-1] = 0.0

    def get_state(self) -> np.ndarray:
        return self.window[: (self.k - 1) * self.f].copy()

    def set_state(self, state: np.ndarray) -> None:
        self.window[: (self.k - 1) * self.f] = state


_LEVELS = np.arange(256, dtype=_F)
_LEVELS_SQ = _LEVELS * _LEVELS


class _ConvEncoder:
    """Valid-padding strided convs (im2col + one matmul each, HWC layout), ReLU, then fc + tanh.

    The image normalisation is folded into the first conv, so the uint8 frame goes straight
    into im2col: once at load for the dataset statistics, per frame for ``per_frame`` (from a
    256-bin histogram per channel, exact, far cheaper than normalising the frame in float)."""

    def __init__(self, model: LoadedModel, out: np.ndarray) -> None:
        cfg, t = model.config, model.tensors
        spec = cfg.image_input
        self.out = out
        h, w, c = spec.shape
        self.per_frame = cfg.image_normalization == "per_frame"
        self.pixels = h * w
        self.opponent = cfg.image_opponent if cfg.image_opponent != "none" else None
        # with the opponent channel the first conv reads a float (H, W, 4) frame: RGB as uint8
        # levels (the normalisation still folded into its weights) + the opponent channel, unscaled
        self._frame4 = np.zeros((h, w, 4), _F) if self.opponent else None
        c = cfg.image_input_channels
        self.layers = []
        self.image = None
        for i, (co, k, s) in enumerate(zip(cfg.image_channels, cfg.image_kernels, cfg.image_strides)):
            wt = t[f"image_encoder.convs.{i}.weight"].astype(_F)  # (co, c, k, k)
            ho, wo = (h - k) // s + 1, (w - k) // s + 1
            # im2col rows in (c, kh, kw) order = sliding_window_view's trailing axes
            self.layers.append({
                "k": k, "s": s,
                "patches": np.zeros((ho, wo, c, k, k), _F),
                "W": np.ascontiguousarray(wt.reshape(co, -1).T),
                "b": t[f"image_encoder.convs.{i}.bias"].astype(_F),
                "y": np.zeros((ho, wo, co), _F),
            })
            h, w, c = ho, wo, co
        first = self.layers[0]
        self._raw_W, self._raw_b = first["W"], first["b"]   # unfolded, for the per-frame fold
        self._rows_per_channel = first["k"] * first["k"]
        if not self.per_frame:
            self._fold(np.asarray(spec.mean, _F), np.asarray(spec.std, _F))
        fc_w = t["image_encoder.fc.weight"].astype(_F)  # (feat, c*h*w) in torch's CHW flatten order
        feat = fc_w.shape[0]
        fc_w = fc_w.reshape(feat, c, h, w).transpose(0, 2, 3, 1).reshape(feat, -1)  # -> HWC order
        self.fc_W = np.ascontiguousarray(fc_w)
        self.fc_b = t["image_encoder.fc.bias"].astype(_F)

    def _fold(self, mean: np.ndarray, std: np.ndarray) -> None:
        """First conv on uint8 pixels = conv on (x / 255 - mean) / std, per channel."""
        r = self._rows_per_channel
        first = self.layers[0]
        scale, shift = 1.0 / (255.0 * std), mean / std
        self._level_scale, self._level_shift = scale, shift   # normalised = level * scale - shift
        if self.opponent:  # the opponent channel enters unscaled
            scale, shift = np.append(scale, 1.0), np.append(shift, 0.0)
        first["W"] = self._raw_W * np.repeat(scale, r)[:, None]
        first["b"] = self._raw_b - np.repeat(shift, r) @ self._raw_W

    def run(self, image: np.ndarray) -> None:
        sw = np.lib.stride_tricks.sliding_window_view
        if self.per_frame:
            counts = np.stack([np.bincount(image[..., ch].ravel(), minlength=256) for ch in range(3)])
            mean = (counts @ _LEVELS) / (255.0 * self.pixels)
            var = (counts @ _LEVELS_SQ) / (255.0 * 255.0 * self.pixels) - mean * mean
            self._fold(mean, np.sqrt(np.maximum(var, 0.0) + PER_FRAME_STD_FLOOR**2))
        x = image
        if self.opponent:
            x = self._frame4
            x[..., :3] = image
            rgb = x[..., :3]
            if self.opponent == "red":
                np.subtract(rgb[..., 0], np.maximum(rgb[..., 1], rgb[..., 2]), out=x[..., 3])
                x[..., 3] /= rgb.sum(-1) + 255.0 * OPPONENT_FLOOR   # the same ratio in 0-255 levels
            else:  # red_normalized: on the normalised channels (the fold's own scale and shift)
                n = rgb * self._level_scale - self._level_shift
                np.subtract(n[..., 0], np.maximum(n[..., 1], n[..., 2]), out=x[..., 3])
        for layer in self.layers:
            k, s, patches, y = layer["k"], layer["s"], layer["patches"], layer["y"]
            ho, wo = y.shape[:2]
            win = sw(x, (k, k), axis=(0, 1))[: s * (ho - 1) + 1 : s, : s * (wo - 1) + 1 : s]
            np.copyto(patches, win)
            y2 = y.reshape(ho * wo, -1)
            np.dot(patches.reshape(ho * wo, -1), layer["W"], out=y2)
            np.add(y2, layer["b"], out=y2)
            np.maximum(y2, 0.0, out=y2)
            x = y
        np.dot(self.fc_W, x.reshape(-1), out=self.out)
        np.add(self.out, self.fc_b, out=self.out)
        np.tanh(self.out, out=self.out)


_CORES = {"cfc": _CfCCore, "ltc": _LTCCore, "gru": _GRUCore, "mlp": _MLPCore}


class NumpyRuntime:
    """Batch-1 stepper for a :class:`LoadedModel`.

    Write model inputs with :meth:`set_input` (or pass them to :meth:`step`), then :meth:`run`.
    ``record=True`` keeps per-step CfC time gates / LTC time constants in :attr:`aux`.
    """

    def __init__(self, model: LoadedModel, record: bool = False) -> None:
        cfg, t = model.config, model.tensors
        self.model, self.config = model, cfg
        f = cfg.core_input_size
        vec = cfg.vector_inputs
        mean = np.concatenate([np.asarray(s.mean, _F) for s in vec]) if vec else np.zeros(0, _F)
        std = np.concatenate([np.asarray(s.std, _F) for s in vec]) if vec else np.ones(0, _F)
        enc = cfg.vector_encoder_units
        # normalised core input = x * scale + shift (identity on encoded / image columns)
        scale, shift = np.ones(f, _F), np.zeros(f, _F)
        if vec and not enc:
            scale[: cfg.vector_size] = 1.0 / std
            shift[: cfg.vector_size] = -mean / std
        core_cls = _CORES[cfg.core]
        self.core = core_cls(model, scale, shift)
        self.core.record = record
        self._vec_views: dict[str, np.ndarray] = {}
        if vec:
            if enc:
                self._vec = np.zeros(cfg.vector_size + 1, _F)
                self._vec[-1] = 1.0
                w, b = _fold_input(t["vector_encoder.weight"].astype(_F), t["vector_encoder.bias"].astype(_F), 1.0 / std, -mean / std)
                self._enc_W = np.ascontiguousarray(np.concatenate([w, b[:, None]], 1))
                self._enc_out = self.core.inp[:enc]
                target = self._vec
            else:
                self._vec = None
                target = self.core.inp
            pos = 0
            for s in vec:
                self._vec_views[s.name] = target[pos : pos + s.dim]
                pos += s.dim
        # reference inputs: read by the head only (see ActionSpec), never encoded
        self._refs = np.zeros(len(cfg.reference_inputs), _F)
        for k, s in enumerate(cfg.reference_inputs):
            self._vec_views[s.name] = self._refs[k : k + 1]
        img = cfg.image_input
        self._image_name = img.name if img is not None else None
        self._image = None
        if img is not None:
            start = enc or cfg.vector_size
            self._conv = _ConvEncoder(model, self.core.inp[start : start + cfg.image_features])
        # head: y = tanh(out @ W') ; action = y * c1 + c0 (sigmoid / max_rate * tanh folded)
        a = cfg.action
        # the mixer form works on the raw head outputs (no squashing to fold)
        self._mixer = MIXER_SIGNS.astype(_F) if a.thrust_reference_form == "mixer" else None
        if self._mixer is not None or a.thrust_reference_form == "linear":  # raw outputs (linear: thrusts clipped in run)
            c = np.ones(a.dim)
        else:
            c = np.full(a.dim, 0.5) if a.mode == "motors" else np.array([0.5] + [1.0] * (a.dim - 1))
        self._c1 = c.copy() if a.mode == "motors" else np.array([0.5] + [a.max_rate] * (a.dim - 1))
        self._c0 = np.array([0.5] + [0.0 if a.mode == "ctbr" else 0.5] * (a.dim - 1))
        o = cfg.core_output_size
        if cfg.head_kind == "affine":
            w = np.diag(t["head.scale"].astype(_F))
        else:
            w = t["head.weight"].astype(_F)
        w = w * self.core.out_scale
        b = t["head.bias"].astype(_F)
        head = np.concatenate([w, b[:, None]], 1) * c[:, None]  # (A, o + 1)
        assert head.shape[1] == o + 1 == self.core.out.shape[0]
        self._head_W = np.ascontiguousarray(head)
        self._y = y = np.zeros(a.dim, _F)
        # thrust reference h: the (halved) thrust pre-activations become logit(h)/2 + y/(1 - h)
        # (form "scaled") or logit(h)/2 + y ("offset")
        self._ref = self._vec_views[a.thrust_reference] if a.thrust_reference != "none" else None
        self._ref_y = y[: a.thrust_outputs] if a.thrust_outputs < a.dim else y  # a view, made once
        self._ref_scaled = a.thrust_reference_form == "scaled"
        self._ref_linear = a.thrust_reference_form == "linear"
        self.aux: np.ndarray | None = None

    # -- inputs ------------------------------------------------------------------------------
    def input_view(self, name: str) -> np.ndarray:
        """Writable array where vector input ``name`` goes (float64, shape (dim,))."""
        return self._vec_views[name]

    def set_input(self, name: str, value: np.ndarray) -> None:
        if name == self._image_name:
            self._image = value
        else:
            self._vec_views[name][...] = value

    # -- stepping ------------------------------------------------------------------------------
    def run(self, dt: float) -> np.ndarray:
        """Advance one step with the inputs already set; returns a new action array."""
        if self._vec is not None:
            out = self._enc_out
            np.dot(self._enc_W, self._vec, out=out)
            np.tanh(out, out=out)
        if self._image_name is not None:
            if self._image is None:
                raise ValueError(f"image input {self._image_name!r} was not set")
            self._conv.run(self._image)
        core = self.core
        core.run(dt)
        y = self._y
        np.dot(self._head_W, core.out, out=y)
        if self._ref is not None:
            h = float(self._ref[0])
            h = _REF_LO if h < _REF_LO else _REF_HI if h > _REF_HI else h  # NaN stays NaN: the caller's failsafe sees it
        if self._mixer is not None:
            act = self._mixed(y, h)
        else:
            thrust = None
            if self._ref is not None:
                yt = self._ref_y
                if self._ref_linear:  # clip(h (1 + z), 0, 1) on the raw thrust rows
                    thrust = np.clip(h * (1.0 + yt), 0.0, 1.0)
                else:
                    if self._ref_scaled:
                        yt *= 1.0 / (1.0 - h)
                    yt += 0.5 * math.log(h / (1.0 - h))
            np.tanh(y, out=y)
            act = y * self._c1
            act += self._c0
            if thrust is not None:
                act[: len(thrust)] = thrust
        if core.record:
            self.aux = core.aux
        return act

    def _mixed(self, z: np.ndarray, h: float) -> np.ndarray:
        """Mixer form: h (1 + S z), shifted as a whole to fit [0, 1], then clipped (spec.py)."""
        act = self._mixer @ z
        act += 1.0
        act *= h
        top, bottom = act.max(), act.min()
        if top > 1.0:
            act -= top - 1.0
            bottom -= top - 1.0
        if bottom < 0.0:
            act -= bottom
        np.clip(act, 0.0, 1.0, out=act)
        return act

    def step(self, inputs: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        for name, value in inputs.items():
            self.set_input(name, value)
        return self.run(dt)

    def reset(self) -> None:
        self.core.reset()

    @property
    def state(self) -> np.ndarray:
        """Copy of the recurrent state, in the torch network's layout."""
        return self.core.get_state()

    @state.setter
    def state(self, value: np.ndarray) -> None:
        value = np.asarray(value, _F).reshape(-1)
        if value.shape != (self.config.state_size,):
            raise ValueError(f"state must have {self.config.state_size} values, got {value.shape}")
        self.core.set_state(value)
