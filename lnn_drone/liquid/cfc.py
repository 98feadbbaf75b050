"""Closed-form continuous-time (CfC) cell, Hasani et al. 2022 (Nature Machine Intelligence).

For each neuron the CfC replaces the ODE solver of an LTC by the closed-form interpolation

    x(t + dt) = f1 * (1 - g) + g * f2,     g = sigmoid(t_a * dt + t_b)        (mode "default")
    x(t + dt) = f1 + g * f2                                                   (mode "no_gate")
    x(t + dt) = A - A * exp(-dt * (|w_tau| + |f1|)) * f1                      (mode "pure")

with f1 = tanh(W1 I + b1), f2 = tanh(W2 I + b2), t_a = Wa I + ba, t_b = Wb I + bb and
I = [input to the layer, the layer's previous state]. With a layered wiring (NCP) each layer is
one such CfC whose input is the *new* output of the layer below, so a step costs one fused
masked matmul per layer: the four maps are stacked into one weight of shape (4H, in + H).

Masks (``mask_mode``):
  * ``"strict"`` (default): the wiring mask applies to every map, the time gates (t_a, t_b)
    included, and the recurrent block inside a layer follows the wiring's intra-layer synapses
    plus each neuron's own state (its memory). This is what the NCP wiring *says*.
  * ``"ncps"``: reproduces ``ncps==1.0.1``: only f1 and f2 are masked on the input block; the
    recurrent block and both time gates are dense. Used for oracle tests and old checkpoints.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .wiring import Wiring

__all__ = ["CfCCell", "CFC_MODES", "MASK_MODES"]

CFC_MODES = ("default", "no_gate", "pure")
MASK_MODES = ("strict", "ncps")


def cfc_layer_mask(wiring: Wiring, layer: int, mode: str, mask_mode: str) -> torch.Tensor:
    """Stacked 0/1 mask (blocks * H, in + H) of one layer (see :meth:`Wiring.cfc_mask`)."""
    return torch.from_numpy(wiring.cfc_mask(layer, mode, mask_mode))


class _CfCLayer(nn.Module):
    """One layer of CfC neurons: a single masked matmul yields f1, f2, t_a, t_b."""

    def __init__(self, in_features: int, size: int, mask: torch.Tensor, mode: str) -> None:
        super().__init__()
        self.in_features, self.size, self.mode = in_features, size, mode
        blocks = 1 if mode == "pure" else 4
        self.weight = nn.Parameter(torch.empty(blocks * size, in_features + size))
        self.bias = nn.Parameter(torch.empty(blocks * size))
        self.register_buffer("mask", mask, persistent=False)
        if mode == "pure":
            self.w_tau = nn.Parameter(torch.zeros(size))
            self.A = nn.Parameter(torch.ones(size))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        fan = self.in_features + self.size
        for block in self.weight.split(self.size, 0):
            nn.init.xavier_uniform_(block)
        nn.init.uniform_(self.bias, -1 / math.sqrt(fan), 1 / math.sqrt(fan))
        self.weight.mul_(self.mask)  # stored weights are exactly zero where there is no synapse

    def forward(self, x: torch.Tensor, h: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = nn.functional.linear(torch.cat([x, h], 1), self.weight * self.mask, self.bias)
        if self.mode == "pure":
            decay = torch.exp(-dt * (self.w_tau.abs() + z.abs()))
            return self.A - self.A * decay * z, decay
        f1, f2, t_a, t_b = z.split(self.size, 1)
        f1, f2 = torch.tanh(f1), torch.tanh(f2)
        gate = torch.sigmoid(t_a * dt + t_b)
        if self.mode == "no_gate":
            return f1 + gate * f2, gate
        return f1 * (1.0 - gate) + gate * f2, gate


class CfCCell(nn.Module):
    """A CfC network laid out by a :class:`Wiring` (one fused masked layer per wiring layer).

    ``forward(x, h, dt)`` -> ``(output, new_state, time_gates)`` with ``x`` (B, inputs),
    ``h`` (B, units), ``dt`` (B,) or (B, 1) in seconds; the output is the motor neurons' state.
    ``time_gates`` (B, units) are the interpolation gates g (the decay factor in ``pure`` mode).
    """

    def __init__(self, wiring: Wiring, mode: str = "default", mask_mode: str = "strict") -> None:
        super().__init__()
        if mode not in CFC_MODES:
            raise ValueError(f"unknown CfC mode {mode!r}; choose one of {CFC_MODES}")
        if mask_mode not in MASK_MODES:
            raise ValueError(f"unknown mask_mode {mask_mode!r}; choose one of {MASK_MODES}")
        wiring.check_layered()
        self.wiring, self.mode, self.mask_mode = wiring, mode, mask_mode
        layers = []
        in_features = wiring.input_size
        for layer, size in enumerate(wiring.layer_sizes):
            layers.append(_CfCLayer(in_features, size, cfc_layer_mask(wiring, layer, mode, mask_mode), mode))
            in_features = size
        self.layers = nn.ModuleList(layers)
        out = wiring.output_slice
        last = wiring.layer_slice(wiring.num_layers - 1)
        if out.start < last.start:
            raise ValueError("the output neurons of a layered CfC must lie in its last layer")
        self._out = slice(out.start - last.start, out.stop - last.start)

    @property
    def input_size(self) -> int:
        return self.wiring.input_size

    @property
    def state_size(self) -> int:
        return self.wiring.units

    @property
    def output_size(self) -> int:
        return self.wiring.output_size

    def forward(self, x: torch.Tensor, h: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dt = _as_column(dt, x)
        new_states, gates = [], []
        inp = x
        for layer, (module, h_l) in enumerate(zip(self.layers, h.split(self.wiring.layer_sizes, 1))):
            inp, gate = module(inp, h_l, dt)
            new_states.append(inp)
            gates.append(gate)
        return inp[:, self._out], torch.cat(new_states, 1), torch.cat(gates, 1)


def _as_column(dt: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Per-sample elapsed time as a (B, 1) column (a scalar is broadcast to the batch)."""
    dt = torch.as_tensor(dt, dtype=x.dtype, device=x.device)
    if dt.dim() == 0:
        return dt.expand(x.shape[0], 1)
    return dt.reshape(x.shape[0], 1)
