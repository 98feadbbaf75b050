"""The visual-target report: success per condition for every controller, saliency over flight
frames, neuron traces of the liquid core (``lnn-drone report --task visual_target``).

Results are kept in ``results.json`` per (controller, condition) so a long evaluation can be
extended (more controllers, more conditions) without re-running what is there. A cell is reused
only for the same episodes, seed and model file content (its SHA-256; for the expert, that of
its code), so a model retrained under the same path, or an edited teacher, is evaluated afresh
instead of inheriting its predecessor's numbers.
"""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np

from .vision import (CONDITIONS, VisualEvalSettings, VisualSetup, episode_start, evaluate_visual, get_condition,
                     make_visual_env, ood_condition_names, setup_for_model)

SALIENCY_CONDITIONS = ("nominal", "textures", "dim_light", "distractors", "second_object", "noise")
SALIENCY_TIMES_S = (0.3, 1.5, 3.0, 6.0)


def _controller(source: str):
    if source == "expert":
        from .vision import VisualExpert

        return VisualExpert(), VisualSetup()
    from .agents import PolicyAgent

    agent = PolicyAgent.from_file(source)
    return agent, setup_for_model(agent.model)


def expert_code_digest() -> str:
    """SHA-256 of the code that decides the expert's commands: the visual expert, the batched
    expert it wraps, and the geometric controller. A name alone would let an edited teacher
    inherit the cells of the old one."""
    import inspect

    from ..control import geometric
    from .evaluation import ExpertAgent
    from .vision import VisualExpert

    h = hashlib.sha256()
    for part in (inspect.getsource(VisualExpert), inspect.getsource(ExpertAgent), inspect.getsource(geometric)):
        h.update(part.encode())
    return h.hexdigest()


def controller_digest(source: str) -> str:
    """What a cached cell was measured on: the model file's SHA-256, or that of the expert's code."""
    if source == "expert":
        return "expert-code:" + expert_code_digest()
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()


def expected_matching(source: str, condition: str) -> tuple[str, str | None]:
    """How a cell of ``source`` under ``condition`` is flown with respect to vehicle matching, and
    the matching code's SHA-256 where it is used: a cached cell is reused only if both agree."""
    if source == "expert":
        return "not needed", None
    import inspect

    from ..policy import vehicle_matching
    from ..vehicle import load_vehicle
    from .agents import PolicyAgent

    flown = load_vehicle(get_condition(condition).vehicle or VisualEvalSettings().vehicle)
    status = PolicyAgent.from_file(source).matching_for(flown)[1]
    if not status.startswith("on"):
        return status, None
    return status, hashlib.sha256(inspect.getsource(vehicle_matching).encode()).hexdigest()


def evaluate_matrix(sources: list[str], conditions: list[str], episodes: int, seed: int = 0,
                    results_path: Path | None = None, progress: bool = False) -> dict:
    """{source: {condition: summary}}, reusing cells already in ``results_path`` (same N, seed,
    model content)."""
    results: dict = {}
    if results_path is not None and results_path.exists():
        results = json.loads(results_path.read_text()).get("cells", {})
    for source in sources:
        digest = controller_digest(source)
        for cond in conditions:
            old = results.get(source, {}).get(cond)
            matching = expected_matching(source, cond)
            if (old and old["episodes"] == episodes and old["settings"]["seed"] == seed
                    and old.get("controller_sha256") == digest
                    and old.get("vehicle_matching", "not needed") == matching[0]
                    and old.get("vehicle_matching_sha256") == matching[1]):
                continue
            controller, setup = _controller(source)
            s = VisualEvalSettings(condition=cond, episodes=episodes, seed=seed, setup=setup)
            cell = evaluate_visual(controller, s, progress=progress).to_json_dict()
            cell["controller_sha256"] = digest
            cell["vehicle_matching_sha256"] = matching[1]
            results.setdefault(source, {})[cond] = cell
            if results_path is not None:
                _save(results_path, results)
    return results


def _save(path: Path, cells: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": cells}, indent=1))


def record_flight(model_path: str, condition: str, index: int = 0, seed: int = 0, seconds: float | None = None) -> dict:
    """Fly one protocol episode with the numpy policy (record=True) and keep what the plots need."""
    from ..policy.features import get_feature
    from ..policy.policy import Policy

    policy = Policy.load(model_path, record=True)
    setup = setup_for_model(policy.model)
    settings = VisualEvalSettings(condition=condition, episodes=1, seed=seed, setup=setup)
    env = make_visual_env(settings)
    names = [s.name for s in policy.inputs]
    rec: dict[str, list] = {k: [] for k in ("state", "internals", "command", "position", "rot", "target", "time")}
    rec.update({"input_" + n: [] for n in names})
    try:
        from ..sim.randomization import EpisodeVariation

        state, env_seed = episode_start(seed, index)
        obs, _ = env.reset(seed=env_seed, options={"state": state, "variation": EpisodeVariation(env.nominal_vehicle)})
        policy.reset()
        last = np.zeros(4)
        steps = int(round((seconds or setup.episode_s) * setup.control_hz))
        for k in range(steps):
            full = {**obs, "last_action": last}
            for n in names:  # the model inputs as the deployment extractors compute them
                rec["input_" + n].append(np.array(get_feature(n).fn(full)))
            rec["position"].append(np.asarray(env.sim.position))
            rec["rot"].append(np.asarray(env.sim.rotation_matrix))
            rec["target"].append(env.target_position.copy())
            a = policy.step(obs, policy.control_period)
            last = a
            rec["command"].append(a)
            rec["state"].append(policy.state.copy())
            if policy.internals is not None:
                rec["internals"].append(np.asarray(policy.internals).copy())
            rec["time"].append((k + 1) * policy.control_period)
            obs, _, term, trunc, _ = env.step(a)
            if term or trunc:
                break
    finally:
        env.close()
    out = {k: np.asarray(v) for k, v in rec.items() if len(v)}
    out["names"] = names
    out["control_period"] = policy.control_period
    out["fov_deg"] = setup.fov_deg
    return out


def saliency_for_flight(model_path: str, flight: dict) -> np.ndarray:
    from ..policy.model_file import load_model
    from .saliency import saliency_maps, torch_network

    net = torch_network(load_model(model_path))
    inputs = {n: flight["input_" + n].astype(np.uint8 if n == "image" else np.float32) for n in flight["names"]}
    return saliency_maps(net, inputs, flight["control_period"])


def target_shares(flight: dict, sal: np.ndarray, radius: float) -> list[float]:
    from .saliency import project_target, target_share

    h, w = sal.shape[1:]
    out = []
    for k in range(len(sal)):
        disc = project_target(flight["rot"][k], flight["position"][k], flight["target"][k], radius, w, h, flight["fov_deg"])
        s = target_share(sal[k], disc)
        if s is not None:
            out.append(s)
    return out


def saliency_figure(model_path: str, out_png: Path, conditions=SALIENCY_CONDITIONS, index: int = 1, seed: int = 0) -> dict:
    """Frames with their saliency overlaid, one row per condition; returns the mean share of
    saliency on the target per condition (and the target's share of the image area)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .vision import TARGET_RADIUS_M

    stats = {}
    fig, axes = plt.subplots(len(conditions), len(SALIENCY_TIMES_S), figsize=(2.2 * len(SALIENCY_TIMES_S), 1.8 * len(conditions)))
    for row, cond in zip(np.atleast_2d(axes), conditions):
        flight = record_flight(model_path, cond, index=index, seed=seed)
        sal = saliency_for_flight(model_path, flight)
        shares = target_shares(flight, sal, TARGET_RADIUS_M)
        stats[cond] = {"target_share_mean": float(np.mean(shares)) if shares else None, "frames": len(sal)}
        for ax, ts in zip(row, SALIENCY_TIMES_S):
            k = min(len(sal) - 1, int(round(ts / flight["control_period"])))
            ax.imshow(flight["input_image"][k])
            s = sal[k] / (sal[k].max() + 1e-12)
            ax.imshow(s, cmap="inferno", alpha=0.55, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if ts == SALIENCY_TIMES_S[0]:
                ax.set_ylabel(cond, fontsize=8)
            if cond == conditions[0]:
                ax.set_title(f"t = {ts:g} s", fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return stats


def neuron_figure(model_path: str, out_png: Path, condition: str = "nominal", index: int = 1, seed: int = 0) -> Path:
    from ..policy.model_file import load_model
    from ..policy.plots import plot_rollout

    flight = record_flight(model_path, condition, index=index, seed=seed)
    record = {"time": flight["time"], "state": flight["state"], "command": flight["command"]}
    if "internals" in flight:
        record["internals"] = flight["internals"]
    model = load_model(model_path)
    return plot_rollout(record, out_png, cell=model.config.core, wiring=model.wiring)


def _label(source: str) -> str:
    return "expert (privileged)" if source == "expert" else Path(source).stem


def _pct(v) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{100 * v:.0f} %"


def write_visual_report(cells: dict, out_dir: Path, saliency_model: str | None, params: dict | None = None,
                        saliency_stats: dict | None = None, notes: list[str] | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = list(cells)
    conds = [c for c in CONDITIONS if any(c in cells[s] for s in sources)]
    ood = [c for c in ood_condition_names() if c in conds]
    n = {cells[s][c]["episodes"] for s in sources for c in cells[s]}
    lines = ["# Visual target: IMU + camera only", "",
             "Seeded protocol (`lnn_drone/training/vision.py`): a 40 cm red sphere 2-6 m ahead (±45°, ±1 m); "
             "success = no crash and, for all of the last 3 s of an 8 s episode, within 0.5 m of the point 1 m in "
             f"front of the target and heading within 30° of it. Episodes per cell: {sorted(n)}; "
             "cell = success (Wilson 95 % lower bound) / median final distance.", "",
             "| condition | " + " | ".join(_label(s) for s in sources) + " |", "|---|" + "---|" * len(sources)]
    for c in conds:
        row = []
        for s in sources:
            v = cells[s].get(c)
            matched = v is not None and v.get("vehicle_matching", "").startswith("on")
            row.append("—" if v is None else f"{_pct(v['success_rate'])} ({_pct(v['success_ci_low'])}) / "
                       f"{v['final_distance_error_m_median']:.2f} m" + (" †" if matched else ""))
        tag = "" if CONDITIONS[c].in_distribution else " (extra, not in the OOD mean)" if CONDITIONS[c].extra else " (OOD)"
        lines.append(f"| {c}{tag} | " + " | ".join(row) + " |")
    means = []
    for s in sources:
        vals = [cells[s][c]["success_rate"] for c in ood if c in cells[s]]
        means.append(_pct(float(np.mean(vals))) + f" over {len(vals)}" if vals else "—")
    lines.append("| **mean over OOD conditions** | " + " | ".join(means) + " |")
    matched = sorted({v["vehicle_matching"].removeprefix("on (").removesuffix(")") for s in sources
                      for v in cells[s].values() if v.get("vehicle_matching", "").startswith("on")})
    if matched:
        lines += ["", f"† flown through vehicle matching, {'; '.join(matched)} (`lnn_drone/policy/vehicle_matching.py`): "
                  "the policy node, told its vehicle, makes the flown airframe respond as the trained one from the two "
                  "vehicle files and the IMU. `lnn-drone eval --no-vehicle-matching` flies it raw."]
    if params:
        lines += ["", "| controller | core | parameters (of which core) | training data | gradient steps | train wall time |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {_label(s)} | {p['core']} | {p['total']} ({p['liquid']}) | {p['data']} | {p['updates']} | "
                  f"{p['train_wall_s']} s |" for s, p in params.items()]
    lines += ["", "Conditions:", ""] + [f"- `{c}`: {CONDITIONS[c].description}" for c in conds]
    if saliency_model:
        lines += ["", "## Where the policy looks", "",
                  f"Input-gradient saliency (sum over the four normalised commands of |d command / d pixel|) of "
                  f"`{Path(saliency_model).name}` over frames of one flight per condition (same episode, same target):",
                  "", "![saliency](saliency.png)", ""]
        if saliency_stats:
            lines += ["| condition | mean share of saliency on the target disc (+1.5 px) |", "|---|---|"]
            lines += [f"| {c} | {_pct(v['target_share_mean'])} |" for c, v in saliency_stats.items()]
        lines += ["", "## Inside the liquid core", "", "Neuron states, commands and CfC time gates over the nominal flight:",
                  "", "![neuron traces](neurons.png)", ""]
    lines += [""] + (notes or [])
    page = out_dir / "report.md"
    page.write_text("\n".join(lines) + "\n")
    return page


def _training_facts(model) -> dict:
    """What the report says about how a model was trained (from its provenance)."""
    prov = model.provenance or {}
    cfg = prov.get("config", {})
    counts = model.param_counts()
    if cfg.get("dataset"):
        data = f"same data: {prov.get('dataset_episodes')} episodes of `{cfg['dataset']}` (no own rollouts)"
        updates = cfg.get("updates_first")
    else:
        data = f"DAgger, own rollouts: {prov.get('dataset_episodes')} episodes"
        it = prov.get("config", {}).get("iterations", 0)
        updates = None if not cfg else cfg.get("updates_first", 0) + it * cfg.get("updates_per_iteration", 0)
    return {"core": model.config.core, "total": counts["total"], "liquid": counts["liquid"], "data": data,
            "updates": updates, "train_wall_s": prov.get("train_wall_s")}


def run_report(models: list[str], out_dir: str, episodes: int, seed: int = 0, conditions: list[str] | None = None,
               progress: bool = False, notes: list[str] | None = None) -> Path:
    """Evaluate every controller on every condition, draw saliency and neurons of the first model."""
    from ..policy.model_file import load_model

    out = Path(out_dir)
    conditions = conditions or list(CONDITIONS)
    cells = evaluate_matrix(models, conditions, episodes, seed, out / "results.json", progress)
    cells = {m: cells[m] for m in models}  # the command's order; other controllers kept in results.json stay out
    first = next((m for m in models if m != "expert"), None)
    params = {m: _training_facts(load_model(m)) for m in models if m != "expert"}
    stats = None
    if first:
        stats = saliency_figure(first, out / "saliency.png")
        neuron_figure(first, out / "neurons.png")
    return write_visual_report(cells, out, first, params, stats, notes)
