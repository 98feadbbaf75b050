"""Liquid time-constant (LTC) cell, Hasani et al. 2021 (AAAI), with the fused semi-implicit solver.

Each neuron j has a membrane potential v_j obeying

    cm_j dv_j/dt = gleak_j (vleak_j - v_j) + sum_i w_ij s_ij(v_i) (erev_ij - v_j)

with s_ij(v) = sigmoid(sigma_ij (v - mu_ij)) over recurrent and sensory synapses (the sensory
ones driven by the affinely mapped inputs). One call advances dt seconds with ``ode_unfolds``
semi-implicit Euler steps of h = dt / ode_unfolds:

    v <- (cm v + h (gleak vleak + sum w s erev)) / (cm + h (gleak + sum w s) + h eps)

which is the ncps update multiplied through by h, so dt -> 0 keeps the state exactly instead of
dividing by zero. The liquid time constant reported per neuron is
tau_j = cm_j / (gleak_j + sum_i w_ij s_ij) at the last unfold.

cm, gleak, w and sensory_w must be positive: they are stored unconstrained and passed through
softplus (``ncps``' ``implicit_param_constraints=True``), so gradient steps cannot break them.
The wiring mask multiplies the synaptic weights, so absent synapses carry no current and get
no gradient (for w, sigma, mu and erev alike). Initial reversal potentials are the wiring's
polarities.
"""
from __future__ import annotations

import torch
from torch import nn

from .cfc import _as_column
from .wiring import Wiring

__all__ = ["LTCCell", "inverse_softplus"]

_MAPPINGS = ("affine", "linear", "none")


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """x with softplus(x) == y (y > 0): used to initialise positive parameters in range."""
    return torch.where(y > 20, y, torch.log(torch.expm1(y)))


class LTCCell(nn.Module):
    """LTC network over a :class:`Wiring` (one fused (B, N, N) synapse evaluation per unfold).

    ``forward(x, v, dt)`` -> ``(output, new_state, time_constants)``.
    """

    def __init__(
        self,
        wiring: Wiring,
        ode_unfolds: int = 6,
        input_mapping: str = "affine",
        output_mapping: str = "affine",
        epsilon: float = 1e-8,
    ) -> None:
        super().__init__()
        if ode_unfolds < 1:
            raise ValueError(f"ode_unfolds must be >= 1, got {ode_unfolds}")
        if input_mapping not in _MAPPINGS or output_mapping not in _MAPPINGS:
            raise ValueError(f"input/output mapping must be one of {_MAPPINGS}")
        self.wiring = wiring
        self.ode_unfolds, self.epsilon = int(ode_unfolds), float(epsilon)
        self.input_mapping, self.output_mapping = input_mapping, output_mapping
        n, f = wiring.units, wiring.input_size

        def uniform(shape, lo, hi):
            return torch.rand(*shape) * (hi - lo) + lo

        self.gleak = nn.Parameter(inverse_softplus(uniform((n,), 0.001, 1.0)))
        self.vleak = nn.Parameter(uniform((n,), -0.2, 0.2))
        self.cm = nn.Parameter(inverse_softplus(uniform((n,), 0.4, 0.6)))
        self.sigma = nn.Parameter(uniform((n, n), 3.0, 8.0))
        self.mu = nn.Parameter(uniform((n, n), 0.3, 0.8))
        self.w = nn.Parameter(inverse_softplus(uniform((n, n), 0.001, 1.0)))
        self.erev = nn.Parameter(torch.from_numpy(wiring.adjacency.astype("float32")))
        self.sensory_sigma = nn.Parameter(uniform((f, n), 3.0, 8.0))
        self.sensory_mu = nn.Parameter(uniform((f, n), 0.3, 0.8))
        self.sensory_w = nn.Parameter(inverse_softplus(uniform((f, n), 0.001, 1.0)))
        self.sensory_erev = nn.Parameter(torch.from_numpy(wiring.sensory.astype("float32")))
        self.register_buffer("mask", torch.from_numpy((wiring.adjacency != 0).astype("float32")), persistent=False)
        self.register_buffer(
            "sensory_mask", torch.from_numpy((wiring.sensory != 0).astype("float32")), persistent=False
        )
        if input_mapping in ("affine", "linear"):
            self.input_w = nn.Parameter(torch.ones(f))
        if input_mapping == "affine":
            self.input_b = nn.Parameter(torch.zeros(f))
        if output_mapping in ("affine", "linear"):
            self.output_w = nn.Parameter(torch.ones(wiring.output_size))
        if output_mapping == "affine":
            self.output_b = nn.Parameter(torch.zeros(wiring.output_size))

    @property
    def input_size(self) -> int:
        return self.wiring.input_size

    @property
    def state_size(self) -> int:
        return self.wiring.units

    @property
    def output_size(self) -> int:
        return self.wiring.output_size

    def forward(self, x: torch.Tensor, v: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        softplus = nn.functional.softplus
        if self.input_mapping != "none":
            x = x * self.input_w
        if self.input_mapping == "affine":
            x = x + self.input_b
        h = _as_column(dt, x) / self.ode_unfolds  # (B, 1)

        # Sensory synapses see a constant input during the step: evaluate them once.
        s_w = softplus(self.sensory_w) * self.sensory_mask
        s_act = s_w * torch.sigmoid(self.sensory_sigma * (x.unsqueeze(-1) - self.sensory_mu))  # (B, F, N)
        num_sensory = (s_act * self.sensory_erev).sum(1)
        den_sensory = s_act.sum(1)

        cm, gleak = softplus(self.cm), softplus(self.gleak)
        w = softplus(self.w) * self.mask
        leak = gleak * self.vleak
        den = den_sensory
        for _ in range(self.ode_unfolds):
            act = w * torch.sigmoid(self.sigma * (v.unsqueeze(-1) - self.mu))  # (B, N_src, N_dst)
            num = (act * self.erev).sum(1) + num_sensory
            den = act.sum(1) + den_sensory
            v = (cm * v + h * (leak + num)) / (cm + h * (gleak + den + self.epsilon))
        tau = cm / (gleak + den)

        out = v[:, self.wiring.output_slice]
        if self.output_mapping != "none":
            out = out * self.output_w
        if self.output_mapping == "affine":
            out = out + self.output_b
        return out, v, tau
