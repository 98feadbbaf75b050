"""Evaluation reports: the same seeded protocol for every controller, side by side.

``run_matrix`` flies each controller through the tiers, the robustness grid (thrust-to-weight
× actuation latency), a constant push and an unseen vehicle; ``write_report`` turns the results
into a Markdown page with plots (trajectories, success vs thrust-to-weight and latency, neuron
traces) that says plainly where the liquid policy loses.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .evaluation import EvalSettings, ExpertAgent, evaluate, physics_rate_for

TW_GRID = (1.3, 1.5, 2.0, 3.0)
LATENCY_GRID_MS = (0.0, 10.0, 20.0)


@dataclass
class MatrixSpec:
    episodes: int = 100
    seed: int = 0
    tiers: tuple[str, ...] = ("A30", "A45", "A90")
    tw_grid: tuple[float, ...] = TW_GRID
    latency_grid_ms: tuple[float, ...] = LATENCY_GRID_MS
    push_frac: float = 0.2
    other_vehicle: str = "quad250"


def cells(spec: MatrixSpec) -> list[tuple[str, dict]]:
    """(cell name, EvalSettings overrides) for every cell of the matrix."""
    out = [(t, {"tier": t}) for t in spec.tiers]
    out += [(f"A30_tw{tw:g}_lat{lat:g}ms", {"tier": "A30", "thrust_to_weight": tw, "latency_ms": lat})
            for tw in spec.tw_grid for lat in spec.latency_grid_ms]
    out.append((f"A30_push{spec.push_frac:g}", {"tier": "A30", "push_frac": spec.push_frac}))
    out.append((f"A30_{spec.other_vehicle}", {"tier": "A30", "vehicle": spec.other_vehicle}))
    return out


CLASSICAL = {"expert": "expert (privileged)", "teacher": "teacher (estimated hover thrust + observed integral)"}
# the teacher of config/train_hover.yaml (teacher_vertical_speed_min; a test holds the two equal), so the
# report's 'teacher' row is the controller the shipped students imitated
HOVER_TEACHER_VERTICAL_SPEED_MIN = 1.0


def make_controller(source: str):
    """'expert', 'teacher' or a model file path -> (controller, action mode, control rate)."""
    if source == "expert":
        return ExpertAgent(), "motors", 240.0
    if source == "teacher":  # what the hover students imitate: the observed thrust estimate and integral
        return ExpertAgent(teacher="adaptive", vertical_speed_min=HOVER_TEACHER_VERTICAL_SPEED_MIN), "motors", 240.0
    from .agents import PolicyAgent

    agent = PolicyAgent(source)
    return agent, agent.action_mode, agent.control_hz


def evaluate_source(source: str, spec: MatrixSpec, record_tier: str = "A45") -> tuple[dict, list]:
    """Every cell of the matrix for one controller: ({"cells": ..., "params": ...}, trajectories)."""
    controller, mode, hz = make_controller(source)
    per, trajectories = {}, []
    for name, over in cells(spec):
        settings = EvalSettings(episodes=spec.episodes, seed=spec.seed, action_mode=mode, control_hz=hz,
                                physics_hz=physics_rate_for(hz), **over)
        record = name == record_tier
        summary = evaluate(controller, settings, record=record)
        per[name] = summary.to_json_dict()
        if record:
            trajectories = [{k: np.asarray(v).tolist() for k, v in r.trajectory.items()} for r in summary.results[:6]]
    info: dict = {"cells": per}
    if source not in CLASSICAL:
        from ..policy.model_file import load_model

        m = load_model(source)
        info["params"] = m.param_counts()
        info["core"] = m.config.core
    return info, trajectories


def run_matrix(sources: list[str], spec: MatrixSpec, progress: bool = True, record_tier: str = "A45",
               workers: int = 1) -> dict:
    """{source: {cell: summary dict}} plus recorded trajectories of ``record_tier``; controllers
    are evaluated in ``workers`` processes side by side (each is deterministic on its own)."""
    results: dict = {"spec": spec.__dict__, "controllers": {}, "trajectories": {}}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(sources), desc="report", unit="controller")
    if workers > 1 and len(sources) > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
            futures = {s: pool.submit(evaluate_source, s, spec, record_tier) for s in sources}
            outcomes = {}
            for s, f in futures.items():
                outcomes[s] = f.result()
                if bar:
                    bar.update(1)
    else:
        outcomes = {}
        for s in sources:
            outcomes[s] = evaluate_source(s, spec, record_tier)
            if bar:
                bar.update(1)
    for s in sources:
        results["controllers"][s], results["trajectories"][s] = outcomes[s]
    if bar:
        bar.close()
    return results


def _label(source: str) -> str:
    return CLASSICAL.get(source) or Path(source).stem


def _fmt(v, pct=False, unit=""):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{100 * v:.0f} %" if pct else f"{v:.3f}{unit}"


def write_report(results: dict, out_dir: str | Path, title: str = "Hover policy report",
                 neuron_model: str | None = None) -> Path:
    """Markdown page + PNGs from :func:`run_matrix` results."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({k: v for k, v in results.items() if k != "trajectories"}, indent=1))
    spec = results["spec"]
    sources = list(results["controllers"])
    lines = [f"# {title}", "", f"Seeded protocol (DESIGN §6): {spec['episodes']} episodes per cell, seed "
             f"{spec['seed']}, Crazyflie 2.x unless stated. Success = no crash and within 0.5 m of the goal for "
             "all of the last 5 s; CI = Wilson 95 % lower bound.", ""]
    # tiers table
    lines += ["## Recovery tiers", "", "| controller | params | tier | success (CI low) | crash | RMSE last 5 s | "
              "settle to 0.1 m | smoothness |", "|---|---|---|---|---|---|---|---|"]
    for s in sources:
        info = results["controllers"][s]
        p = info.get("params", {}).get("total", "—")
        for t in spec["tiers"]:
            c = info["cells"][t]
            lines.append(f"| {_label(s)} | {p} | {t} | {_fmt(c['success_rate'], True)} ({_fmt(c['success_ci_low'], True)}) "
                         f"| {_fmt(c['crash_rate'], True)} | {_fmt(c['rmse_m_median'], unit=' m')} | "
                         f"{_fmt(c['settle_s_median'], unit=' s')} | {_fmt(c['smoothness_mean'])} |")
    # robustness grid
    lines += ["", "## Robustness: success (A30) vs thrust-to-weight × actuation latency", ""]
    header = "| controller | " + " | ".join(f"T/W {tw:g}, {lat:g} ms" for tw in spec["tw_grid"] for lat in spec["latency_grid_ms"]) + " |"
    lines += [header, "|---|" + "---|" * (len(spec["tw_grid"]) * len(spec["latency_grid_ms"]))]
    for s in sources:
        cells_ = results["controllers"][s]["cells"]
        row = [_fmt(cells_[f"A30_tw{tw:g}_lat{lat:g}ms"]["success_rate"], True)
               for tw in spec["tw_grid"] for lat in spec["latency_grid_ms"]]
        lines.append(f"| {_label(s)} | " + " | ".join(row) + " |")
    push_key, veh_key = f"A30_push{spec['push_frac']:g}", f"A30_{spec['other_vehicle']}"
    lines += ["", f"## Constant push ({spec['push_frac']:.0%} of weight) and an unseen vehicle ({spec['other_vehicle']})", "",
              "| controller | push: success | push: steady offset | vehicle: success | vehicle: RMSE |", "|---|---|---|---|---|"]
    for s in sources:
        c = results["controllers"][s]["cells"]
        lines.append(f"| {_label(s)} | {_fmt(c[push_key]['success_rate'], True)} | {_fmt(c[push_key]['steady_offset_m'], unit=' m')} "
                     f"| {_fmt(c[veh_key]['success_rate'], True)} | {_fmt(c[veh_key]['rmse_m_median'], unit=' m')} |")

    # plot: success vs T/W per latency
    fig, axes = plt.subplots(1, len(spec["latency_grid_ms"]), figsize=(4.2 * len(spec["latency_grid_ms"]), 3.4), sharey=True)
    for ax, lat in zip(np.atleast_1d(axes), spec["latency_grid_ms"]):
        for s in sources:
            c = results["controllers"][s]["cells"]
            ys = [c[f"A30_tw{tw:g}_lat{lat:g}ms"]["success_rate"] for tw in spec["tw_grid"]]
            lo = [c[f"A30_tw{tw:g}_lat{lat:g}ms"]["success_ci_low"] for tw in spec["tw_grid"]]
            ax.plot(spec["tw_grid"], ys, marker="o", label=_label(s))
            ax.fill_between(spec["tw_grid"], lo, ys, alpha=0.12)
        ax.set_title(f"latency {lat:g} ms")
        ax.set_xlabel("thrust-to-weight")
        ax.set_ylim(-0.02, 1.02)
    np.atleast_1d(axes)[0].set_ylabel("success (A30)")
    np.atleast_1d(axes)[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "robustness.png", dpi=110)
    plt.close(fig)
    lines += ["", "![success vs thrust-to-weight and latency](robustness.png)", ""]

    # trajectories
    trajs = results.get("trajectories", {})
    if trajs:
        fig, axes = plt.subplots(1, len(trajs), figsize=(4.2 * len(trajs), 3.4), sharey=True)
        for ax, (s, eps) in zip(np.atleast_1d(axes), trajs.items()):
            for e in eps:
                t = np.asarray(e["t"])
                err = np.linalg.norm(np.asarray(e["position"]) - np.asarray(e["goal"])[:3], axis=1)
                ax.semilogy(t, np.maximum(err, 1e-4), lw=1)
            ax.axhline(0.1, color="grey", ls="--", lw=0.8)
            ax.set_title(_label(s))
            ax.set_xlabel("time [s]")
        np.atleast_1d(axes)[0].set_ylabel("distance to goal [m] (A45 episodes)")
        fig.tight_layout()
        fig.savefig(out / "trajectories.png", dpi=110)
        plt.close(fig)
        lines += ["## Trajectories", "", "![distance to goal over time](trajectories.png)", ""]

    lines += verdict_lines(results)
    if neuron_model:
        png = neuron_traces(neuron_model, out / "neurons.png")
        lines += ["## Inside the liquid policy", "", f"Neuron states and CfC time gates of `{Path(neuron_model).name}` "
                  "over one A45 recovery:", "", f"![neuron traces]({png.name})", ""]
    page = out / "report.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def neuron_traces(model_path: str, png: Path, seed: int = 0) -> Path:
    """Record one A45 recovery with the numpy policy and plot its neurons (policy.plots)."""
    from ..policy.plots import plot_rollout
    from ..policy.policy import Policy
    from .evaluation import make_env, episode_conditions

    policy = Policy.load(model_path, record=True)
    hz = 1.0 / policy.control_period
    settings = EvalSettings(tier="A45", episodes=1, seed=seed, control_hz=hz, physics_hz=physics_rate_for(hz))
    env = make_env(settings)
    try:
        state, goal, variation, s = episode_conditions(settings, 0, env.nominal_vehicle)
        obs, _ = env.reset(seed=s, options={"state": state, "goal": goal, "variation": variation})
        policy.reset()
        states, aux, actions = [], [], []
        for _ in range(int(4.0 * hz)):
            a = policy.step(obs, policy.control_period)
            states.append(policy.state.copy())
            aux.append(None if policy.internals is None else np.asarray(policy.internals).copy())
            actions.append(a)
            obs, _, term, trunc, _ = env.step(a)
            if term or trunc:
                break
    finally:
        env.close()
    record = {"time": np.arange(1, len(states) + 1) / hz, "state": np.array(states), "command": np.array(actions)}
    if aux and aux[0] is not None:
        record["internals"] = np.array(aux)
    plot_rollout(record, png, cell=policy.model.config.core, wiring=policy.model.wiring)
    return png


def verdict_lines(results: dict) -> list[str]:
    """Plain statements of who wins each headline figure among the learned controllers."""
    learned = {s: i for s, i in results["controllers"].items() if s not in CLASSICAL}
    if len(learned) < 2:
        return []
    spec = results["spec"]
    push_key, veh_key = f"A30_push{spec['push_frac']:g}", f"A30_{spec['other_vehicle']}"
    grid = [f"A30_tw{tw:g}_lat{lat:g}ms" for tw in spec["tw_grid"] for lat in spec["latency_grid_ms"]]
    figures = {
        "A45 success": (lambda c: c["A45"]["success_rate"], max),
        "A90 success": (lambda c: c["A90"]["success_rate"], max),
        "A45 RMSE (last 5 s)": (lambda c: c["A45"]["rmse_m_median"] if c["A45"]["rmse_m_median"] is not None else 9e9, min),
        "worst robustness-grid cell": (lambda c: min(c[k]["success_rate"] for k in grid), max),
        "mean robustness-grid success": (lambda c: float(np.mean([c[k]["success_rate"] for k in grid])), max),
        "push steady offset": (lambda c: c[push_key]["steady_offset_m"] if c[push_key]["steady_offset_m"] is not None else 9e9, min),
        f"{spec['other_vehicle']} success": (lambda c: c[veh_key]["success_rate"], max),
    }
    lines = ["## Who wins what (learned controllers only)", ""]
    for name, (metric, pick) in figures.items():
        values = {s: metric(i["cells"]) for s, i in learned.items()}
        top = pick(values.values())
        winners = [_label(s) for s, v in values.items() if abs(v - top) < 1e-9]
        who = f"best {winners[0]}" if len(winners) == 1 else "tie: " + ", ".join(winners)
        shown = ", ".join(f"{_label(s)} {v:.3g}" for s, v in values.items())
        lines.append(f"- **{name}**: {who} ({shown})")
    lines.append("")
    return lines
