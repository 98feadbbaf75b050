"""Sequence wrapper: runs any step cell over (B, T, F) with per-sample, per-step elapsed time.

A *step cell* is a module with ``state_size``/``output_size`` and
``forward(x (B, F), h (B, S), dt (B, 1)) -> (output, new_state, aux)``; ``aux`` is per-neuron
(CfC time gates, LTC time constants) or ``None``. The wrapper adds what training needs and
``ncps`` lacks: ``dt`` per sample *and* per step (``ncps`` squeezes a batch of timespans into a
wrongly broadcast vector), and reset masks so that one tensor can hold several episodes.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["SequenceOutput", "LiquidRNN", "run_sequence", "expand_dt"]


@dataclass
class SequenceOutput:
    """Result of a sequence run. ``states``/``aux`` are only filled when asked for."""

    outputs: torch.Tensor  # (B, T, O)
    state: torch.Tensor  # (B, S): state after the last step
    states: torch.Tensor | None = None  # (B, T, S): state after each step
    aux: torch.Tensor | None = None  # (B, T, S): time gates (CfC) or time constants (LTC)

    @property
    def time_gates(self) -> torch.Tensor | None:
        return self.aux

    @property
    def time_constants(self) -> torch.Tensor | None:
        return self.aux


def expand_dt(dt: torch.Tensor | float, batch: int, steps: int, like: torch.Tensor) -> torch.Tensor:
    """Normalise dt given as a scalar, (B,), (B, T) or (B, T, 1) to a (B, T) tensor."""
    dt = torch.as_tensor(dt, dtype=like.dtype, device=like.device)
    if dt.dim() == 0:
        return dt.expand(batch, steps)
    if dt.dim() == 1 and dt.shape[0] == batch:
        return dt.unsqueeze(1).expand(batch, steps)
    if dt.dim() == 3 and dt.shape[-1] == 1:
        dt = dt.squeeze(-1)
    if dt.shape != (batch, steps):
        raise ValueError(f"dt must be a scalar, (B,), (B, T) or (B, T, 1) with B={batch}, T={steps}; got {tuple(dt.shape)}")
    return dt


class LiquidRNN(nn.Module):
    """Runs a step cell over a sequence.

    ``forward(x, dt, h0=None, reset=None, return_states=False)``: ``x`` (B, T, F); ``dt`` in
    seconds (see :func:`expand_dt`); ``h0`` (B, S) or zeros; ``reset`` (B, T) bool/0-1: where
    true the state is zeroed *before* step t (step t starts a new episode).
    """

    def __init__(self, cell: nn.Module) -> None:
        super().__init__()
        self.cell = cell

    @property
    def state_size(self) -> int:
        return self.cell.state_size

    @property
    def output_size(self) -> int:
        return self.cell.output_size

    def forward(
        self,
        x: torch.Tensor,
        dt: torch.Tensor | float,
        h0: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
        return_states: bool = False,
    ) -> SequenceOutput:
        return run_sequence(self.cell, x, dt, h0, reset, return_states)


def run_sequence(
    cell: nn.Module,
    x: torch.Tensor,
    dt: torch.Tensor | float,
    h0: torch.Tensor | None = None,
    reset: torch.Tensor | None = None,
    return_states: bool = False,
) -> SequenceOutput:
    """Functional form of :class:`LiquidRNN` (for modules that own the cell themselves)."""
    if x.dim() != 3:
        raise ValueError(f"x must be (B, T, F), got shape {tuple(x.shape)}")
    batch, steps, _ = x.shape
    dt = expand_dt(dt, batch, steps, x)
    h = x.new_zeros(batch, cell.state_size) if h0 is None else h0
    keep = None
    if reset is not None:
        if tuple(reset.shape) != (batch, steps):
            raise ValueError(f"reset must be (B, T) = {(batch, steps)}, got {tuple(reset.shape)}")
        keep = 1.0 - reset.to(x.dtype)
    outputs, states, auxes = [], [], []
    for t in range(steps):
        if keep is not None:
            h = h * keep[:, t : t + 1]
        out, h, aux = cell(x[:, t], h, dt[:, t : t + 1])
        outputs.append(out)
        if return_states:
            states.append(h)
            if aux is not None:
                auxes.append(aux)
    return SequenceOutput(
        outputs=torch.stack(outputs, 1),
        state=h,
        states=torch.stack(states, 1) if return_states else None,
        aux=torch.stack(auxes, 1) if auxes else None,
    )

