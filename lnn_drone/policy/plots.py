"""Pictures for humans: the wiring graph, and neuron traces / time constants over a rollout.

matplotlib is imported inside the functions (Agg backend), so importing this module is cheap and
torch-free; only the plotting needs matplotlib.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..liquid.wiring import Wiring

__all__ = ["plot_wiring", "plot_rollout", "record_rollout"]

_EXCITE, _INHIBIT = "#2a9d8f", "#e76f51"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _positions(wiring: Wiring) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the sensory inputs and of the neurons: one column per layer."""

    def column(n: int, x: float) -> np.ndarray:
        ys = np.linspace(1, -1, n) if n > 1 else np.zeros(1)
        return np.stack([np.full(n, x), ys], 1)

    sensory = column(wiring.input_size, 0.0)
    neurons = np.concatenate([column(size, 1.0 + l) for l, size in enumerate(wiring.layer_sizes)])
    return sensory, neurons


def plot_wiring(wiring: Wiring, path: str | os.PathLike, input_names: Sequence[str] | None = None,
                title: str | None = None) -> Path:
    """Draw the signed wiring graph (green excitatory, red inhibitory) as a PNG."""
    plt = _pyplot()
    sens, neu = _positions(wiring)
    fig, ax = plt.subplots(figsize=(3 + 2 * wiring.num_layers, 1 + 0.28 * max(wiring.input_size, wiring.units / 2)))
    for (i, j), pol in np.ndenumerate(wiring.sensory):
        if pol:
            ax.plot([sens[i, 0], neu[j, 0]], [sens[i, 1], neu[j, 1]], color=_EXCITE if pol > 0 else _INHIBIT, lw=0.5, alpha=0.5)
    for (i, j), pol in np.ndenumerate(wiring.adjacency):
        if not pol:
            continue
        color = _EXCITE if pol > 0 else _INHIBIT
        if neu[i, 0] == neu[j, 0]:  # recurrent inside a layer: an arc to the side
            ax.annotate("", xy=neu[j], xytext=neu[i],
                        arrowprops=dict(arrowstyle="->", color=color, lw=0.7, connectionstyle="arc3,rad=0.6"))
        else:
            ax.plot([neu[i, 0], neu[j, 0]], [neu[i, 1], neu[j, 1]], color=color, lw=0.8, alpha=0.7)
    ax.scatter(sens[:, 0], sens[:, 1], s=25, color="#8d99ae", zorder=3, label="sensory")
    palette = ["#264653", "#e9c46a", "#f4a261", "#9b5de5", "#00bbf9"]
    for l, name in enumerate(wiring.layer_names):
        sl = wiring.layer_slice(l)
        ax.scatter(neu[sl, 0], neu[sl, 1], s=80, color=palette[l % len(palette)], zorder=3, label=name)
    if input_names:
        for k, name in enumerate(input_names[: wiring.input_size]):
            ax.text(sens[k, 0] - 0.05, sens[k, 1], name, ha="right", va="center", fontsize=6)
    ax.set_title(title or f"{wiring.kind} wiring: {wiring.units} neurons, {wiring.synapse_count()} synapses")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2 + wiring.num_layers, fontsize=7, frameon=False)
    ax.axis("off")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path


def record_rollout(policy, observations: Iterable[Mapping[str, np.ndarray]], dts: Iterable[float]) -> dict[str, np.ndarray]:
    """Run a :class:`~lnn_drone.policy.policy.Policy` (built with ``record=True``) over a
    recorded observation sequence; returns time, commands, states and internals per step."""
    times, commands, states, internals = [], [], [], []
    t = 0.0
    for obs, dt in zip(observations, dts):
        t += float(dt)
        commands.append(policy.step(obs, dt))
        states.append(policy.state)
        if policy.internals is not None:
            internals.append(np.array(policy.internals))
        times.append(t)
    out = {"time": np.asarray(times), "command": np.asarray(commands), "state": np.asarray(states)}
    if internals:
        out["internals"] = np.asarray(internals)
    return out


def plot_rollout(record: Mapping[str, np.ndarray], path: str | os.PathLike, cell: str = "cfc",
                 wiring: Wiring | None = None) -> Path:
    """Neuron traces (and CfC time gates / LTC time constants when recorded) over a rollout."""
    plt = _pyplot()
    t = np.asarray(record["time"])
    internals = record.get("internals")
    rows = 3 if internals is not None else 2
    fig, axes = plt.subplots(rows, 1, figsize=(9, 2.4 * rows), sharex=True)
    state = np.asarray(record["state"])
    names = [f"n{i}" for i in range(state.shape[1])]
    if wiring is not None:
        names = [f"{wiring.layer_names[l]}{k}" for l, size in enumerate(wiring.layer_sizes) for k in range(size)]
    for i in range(state.shape[1]):
        axes[0].plot(t, state[:, i], lw=0.8, label=names[i] if i < len(names) else None)
    axes[0].set_ylabel("neuron state")
    if state.shape[1] <= 24:
        axes[0].legend(ncol=6, fontsize=6, frameon=False)
    axes[1].plot(t, np.asarray(record["command"]), lw=1.0)
    axes[1].set_ylabel("command")
    if internals is not None:
        axes[2].plot(t, internals, lw=0.8)
        axes[2].set_ylabel("time constant (s)" if cell == "ltc" else "time gate")
        if cell == "ltc":
            axes[2].set_yscale("log")
    axes[-1].set_xlabel("time (s)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
