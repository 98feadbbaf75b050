"""Flight plots: position, error and motor commands over time, and a 3-D trajectory.

People would rather look at a flight than read it; every report and the demo use these.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_flight(trajectory: dict, path: str | Path, title: str = "") -> Path:
    """Write a PNG with the 3-D path, position vs goal, distance to goal and motor commands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t, pos, goal, motors = trajectory["t"], trajectory["position"], trajectory["goal"], trajectory["motors"]
    err = np.linalg.norm(pos - goal[:3], axis=1)
    fig = plt.figure(figsize=(12, 7.5))
    ax3 = fig.add_subplot(2, 2, 1, projection="3d")
    ax3.plot(pos[:, 0], pos[:, 1], pos[:, 2], lw=1.5, label="flight")
    ax3.scatter(*pos[0], color="tab:orange", s=30, label="start")
    ax3.scatter(*goal[:3], color="tab:green", marker="*", s=120, label="goal")
    ax3.set_xlabel("x [m]")
    ax3.set_ylabel("y [m]")
    ax3.set_zlabel("z [m]")
    ax3.legend(loc="upper left", fontsize=8)
    ax = fig.add_subplot(2, 2, 2)
    for i, name in enumerate("xyz"):
        ax.plot(t, pos[:, i], label=name)
        ax.axhline(goal[i], color=f"C{i}", ls=":", lw=0.8)
    ax.set_ylabel("position [m] (dotted: goal)")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(2, 2, 3)
    ax.semilogy(t, np.maximum(err, 1e-4))
    ax.axhline(0.1, color="grey", ls="--", lw=0.8, label="0.1 m settle")
    ax.axhline(0.5, color="red", ls="--", lw=0.8, label="0.5 m success")
    ax.set_xlabel("time [s]")
    ax.set_ylabel("distance to goal [m]")
    ax.legend(fontsize=8)
    ax = fig.add_subplot(2, 2, 4)
    names = ("FR", "BR", "BL", "FL")
    for i in range(motors.shape[1]):
        ax.plot(t[1:len(motors) + 1], motors[:, i], lw=0.8, label=names[i])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("motor command u")
    ax.legend(fontsize=8, ncol=4)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
