"""``lnn-drone train``: DAgger imitation of the privileged expert under domain randomization."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HELP = "train a policy (liquid CfC/LTC or a GRU/MLP baseline) by DAgger; prints train_wall_s"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="training YAML (fields of TrainConfig), e.g. config/train_hover.yaml")
    p.add_argument("--core", choices=["cfc", "ltc", "gru", "mlp"], help="network core (overrides the config)")
    p.add_argument("--out", default=None, help="model file to write (default models/<name>.safetensors)")
    p.add_argument("--run-dir", default=None, help="run folder: log, dataset, checkpoint (default runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--iterations", type=int, default=None, help="DAgger iterations after the expert one")
    p.add_argument("--final-episodes", type=int, default=None, help="episodes per tier for the final evaluation")
    p.add_argument("--name", default=None, help="run name (default from the config)")
    p.add_argument("--no-progress", action="store_true")


def read_recipe(path: Path, seen: tuple = ()) -> dict:
    """A training YAML, with ``extends: other.yaml`` (relative to this file) resolved: the base's
    fields, then this file's on top (top-level keys replace, ``network`` included). Baselines
    extend the shipped recipe, so "same data and budget" holds by construction."""
    import yaml

    if path.resolve() in seen:
        raise ValueError(f"{path}: 'extends' loops back on itself")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a training config is a mapping of TrainConfig fields")
    base = data.pop("extends", None)
    if base is None:
        return data
    return {**read_recipe(path.parent / str(base), seen + (path.resolve(),)), **data}


def load_train_config(args):
    from ..config import from_dict
    from ..training.dagger import TrainConfig

    data = read_recipe(Path(args.config)) if args.config else {}
    for key, value in (("core", args.core), ("seed", args.seed), ("iterations", args.iterations),
                       ("final_eval_episodes", args.final_episodes), ("name", args.name)):
        if value is not None:
            data[key] = value
    if data.get("task", "hover") == "visual_target":
        from ..training.dagger_visual import VisualTrainConfig

        return from_dict(VisualTrainConfig, data)
    if "task" in data and data["task"] != "hover":
        raise ValueError(f"task must be hover or visual_target, got {data['task']!r}")
    data.pop("task", None)
    return from_dict(TrainConfig, data)


def run(args) -> int:
    from ..config import ConfigError
    from ..policy.model_file import save_network
    from ..training.dagger import DaggerTrainer, git_commit

    try:
        cfg = load_train_config(args)
    except (ConfigError, OSError, ValueError) as exc:
        print(f"lnn-drone train: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or f"models/{cfg.name}.safetensors")
    run_dir = Path(args.run_dir or f"runs/{cfg.name}")
    t0 = time.perf_counter()
    if getattr(cfg, "task", "hover") == "visual_target":
        from ..training.dagger_visual import VisualDaggerTrainer as trainer_class
    else:
        trainer_class = DaggerTrainer
    trainer = trainer_class(cfg, run_dir, progress=not args.no_progress)
    try:
        result = trainer.run(resume=args.resume)
        out.parent.mkdir(parents=True, exist_ok=True)
        from dataclasses import asdict

        provenance = {"trainer": "dagger", "config": asdict(cfg), "git_commit": git_commit(),
                      "dataset_episodes": len(trainer.dataset.episodes), "dataset_steps": trainer.dataset.steps,
                      "train_wall_s": round(result["train_wall_s"], 1)}
        if "averaged_iterations" in result:
            provenance["averaged_iterations"] = result["averaged_iterations"]
        elif "selected_iteration" in result:
            provenance["selected_iteration"] = result["selected_iteration"]
        save_network(out, trainer.net, provenance=provenance)
        evaluation = trainer.final_evaluation(out)
        save_network(out, trainer.net, provenance=provenance, evaluation=evaluation)
    except ValueError as exc:
        print(f"lnn-drone train: error: {exc}", file=sys.stderr)
        return 2
    finally:
        trainer.close()
    for tier, s in evaluation.items():
        detail = (f"final distance {s['final_distance_error_m_median']:.3f} m" if "final_distance_error_m_median" in s
                  else f"rmse {s['rmse_m_median']}, settle {s['settle_s_median']}")
        print(f"{tier}: success {s['success_rate']:.1%} (CI low {s['success_ci_low']:.1%}), {detail}", flush=True)
    print(f"model: {out}")
    print(json.dumps({"model": str(out), "train_wall_s": round(result["train_wall_s"], 1),
                      "total_wall_s": round(time.perf_counter() - t0, 1)}))
    print(f"train_wall_s={result['train_wall_s']:.1f}")
    return 0
