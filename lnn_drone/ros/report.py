"""Flight report from a ROS run: the sim's episode results + the MCAP recording -> numbers,
PNG plots and a Markdown page. rclpy-free (reads MCAP with ``mcap_ros2``)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np


def _stamp(h) -> float:
    return h.stamp.sec + h.stamp.nanosec * 1e-9


def read_recording(path: str | Path) -> dict:
    """Commands, neuron states and diagnostics out of an MCAP file."""
    from mcap_ros2.reader import read_ros2_messages

    out = {"commands": [], "neurons": [], "diagnostics": [], "counts": {}}
    for m in read_ros2_messages(str(path)):
        topic = m.channel.topic
        out["counts"][topic] = out["counts"].get(topic, 0) + 1
        msg = m.ros_msg
        if topic.endswith("motor_commands"):
            out["commands"].append((_stamp(msg.header), list(msg.effort)))
        elif topic.endswith("ctbr_command"):
            a = msg.twist.angular
            out["commands"].append((_stamp(msg.header), [msg.twist.linear.z, a.x, a.y, a.z]))
        elif topic.endswith("neurons"):
            out["neurons"].append((m.log_time_ns * 1e-9, list(msg.data)))
        elif topic == "/diagnostics":
            for st in msg.status:
                out["diagnostics"].append((m.log_time_ns * 1e-9, st.name, st.level if isinstance(st.level, int) else st.level[0],
                                           st.message, {kv.key: kv.value for kv in st.values}))
    return out


def _float(v, default=None):
    try:
        f = float(v)
        return f if math.isfinite(f) else default
    except (TypeError, ValueError):
        return default


def metrics(results: dict | None, rec: dict | None) -> dict:
    """The headline numbers (what ``lnn-drone fly --json`` prints)."""
    out: dict = {"success": None, "rmse_m": None, "control_rate_hz": None, "failsafe_events": None, "latency_ms_p99": None}
    if results:
        eps = results.get("episodes") or []
        if eps:
            out["success"] = all(bool(e["success"]) for e in eps)
            out["rmse_m"] = float(np.mean([e["rmse_m"] for e in eps]))
            out["crashed"] = any(e["crashed"] for e in eps)
            out["final_error_m"] = eps[-1]["final_error_m"]
            flown = sum(e["duration_s"] for e in eps)
            link = results.get("link", {})
            out["control_rate_hz"] = link.get("commands_matched", 0) / flown if flown else 0.0
            out["control_rate_target_hz"] = results["config"]["control_hz"]
            out["control_rate_achieved_frac"] = link.get("control_rate_achieved_frac")
            out["lockstep"] = results["config"]["lockstep"]
            out["lockstep_timeouts"] = link.get("lockstep_timeouts")
            p99 = link.get("latency_us_p99")
            out["latency_ms_p99"] = None if p99 is None else p99 / 1000.0
            p50 = link.get("latency_us_p50")
            out["latency_ms_p50"] = None if p50 is None else p50 / 1000.0
    if rec:
        pol = [d for d in rec["diagnostics"] if d[1].endswith(": policy")]
        if pol:
            last = pol[-1][4]
            out["failsafe_events"] = int(_float(last.get("failsafe_events"), 0))
            out["inference_ms_mean"] = _float(last.get("inference_ms_mean"))
        out["recorded_messages"] = sum(rec["counts"].values())
    return out


def write_report(out_dir: str | Path, results: dict | None, mcap_path: str | Path | None) -> tuple[Path, dict]:
    """Write ``report.md`` + PNGs into ``out_dir``; return the report path and the metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rec = read_recording(mcap_path) if mcap_path and Path(mcap_path).exists() else None
    m = metrics(results, rec)
    figs = []
    eps = (results or {}).get("episodes") or []
    if eps:
        tr = eps[-1]["trajectory"]
        t, pos, goal = np.asarray(tr["t"]), np.asarray(tr["position"]), np.asarray(tr["goal"])
        fig, ax = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
        for i, c in enumerate("xyz"):
            ax[0].plot(t, pos[:, i], label=c)
            ax[0].axhline(goal[i], ls="--", lw=0.8, color=f"C{i}")
        ax[0].set_ylabel("position (m)"); ax[0].legend(); ax[0].set_title("trajectory (dashed: goal)")
        ax[1].plot(t, np.linalg.norm(pos - goal[:3], axis=1))
        ax[1].axhline(0.5, ls=":", color="k", lw=0.8)
        ax[1].set_ylabel("distance to goal (m)"); ax[1].set_xlabel("sim time (s)")
        figs.append(("trajectory.png", fig))
    if rec and rec["commands"]:
        ct = np.array([c[0] for c in rec["commands"]])
        cv = np.array([c[1] for c in rec["commands"]])
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for i in range(cv.shape[1]):
            ax.plot(ct, cv[:, i], lw=0.7, label=f"cmd {i}")
        ax.set_xlabel("stamp (s)"); ax.set_ylabel("command"); ax.legend(ncol=4); ax.set_title("commands (as published)")
        figs.append(("commands.png", fig))
    if rec:
        pol = [d for d in rec["diagnostics"] if d[1].endswith(": policy")]
        keys = sorted({k for d in pol for k in d[4] if k.startswith("input_age_ms_p99.")})
        if keys:
            fig, ax = plt.subplots(figsize=(8, 3))
            t0 = pol[0][0]
            for k in keys:
                ax.plot([d[0] - t0 for d in pol], [_float(d[4].get(k), np.nan) for d in pol], marker=".", label=k.split(".", 1)[1])
            ax.set_xlabel("wall time (s)"); ax.set_ylabel("input age p99 (ms)"); ax.legend(); ax.set_title("inputs' ages at compute time")
            figs.append(("input_ages.png", fig))
        if rec["neurons"]:
            n = np.array([x[1] for x in rec["neurons"]])
            fig, ax = plt.subplots(figsize=(8, 3.5))
            ax.imshow(n.T, aspect="auto", interpolation="nearest", cmap="coolwarm")
            ax.set_xlabel("control step"); ax.set_ylabel("neuron"); ax.set_title("liquid neuron activity")
            figs.append(("neurons.png", fig))
    for name, fig in figs:
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=90)
        plt.close(fig)
    lines = ["# lnn-drone flight report", "", "| metric | value |", "|---|---|"]
    for k, v in m.items():
        lines.append(f"| {k} | {v if not isinstance(v, float) else f'{v:.4g}'} |")
    if rec:
        lines += ["", f"Recording: `{mcap_path}` ({m.get('recorded_messages', 0)} messages; open it in Foxglove).", "",
                  "| topic | messages |", "|---|---|"] + [f"| {k} | {v} |" for k, v in sorted(rec["counts"].items())]
    lines += [""] + [f"![{name[:-4]}]({name})" for name, _ in figs]
    if rec and not rec["neurons"]:
        lines += ["", "No neuron activity recorded (the controller has no liquid state, or publish_internals was off)."]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out_dir / "metrics.json").write_text(json.dumps(m, indent=2))
    return path, m
