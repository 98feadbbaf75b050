"""``lnn-drone demo``: the project's main job in one command (``make demo``).

A ROS 2 flight of the shipped liquid policy (``models/hover.safetensors``) in simulation: the
sim node and the policy node run as separate processes over real DDS, the flight is recorded
to MCAP, and a report (plots + numbers) is written. Without a trained model (or with
``--classical``) it flies the classical geometric controller in-process and writes a plot.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "fly the shipped liquid policy over ROS 2 in simulation and write a report"
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "models" / "hover.safetensors"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="model file (default models/hover.safetensors)")
    p.add_argument("--tier", default="A45", help="initial-state tier (default A45)")
    p.add_argument("--seed", type=int, default=7, help="episode seed")
    p.add_argument("--classical", action="store_true", help="fly the classical controller in-process instead")


def run(args) -> int:
    if not args.classical and Path(args.model).exists():
        from . import fly_cmd

        parser = argparse.ArgumentParser()
        fly_cmd.add_arguments(parser)
        fly_args = parser.parse_args(["--launch", "sim", "--model", args.model, "--duration", "10",
                                      "--tier", args.tier.upper(), "--seed", str(args.seed), "--out", args.out])
        print(f"demo: ROS 2 flight of {Path(args.model).name} (sim node + policy node over DDS, lockstep)")
        return fly_cmd.run(fly_args)
    if not args.classical:
        print(f"demo: {args.model} not found; flying the classical controller instead")
    return classical_flight(args)


def classical_flight(args) -> int:
    from ..training.evaluation import EvalSettings, ExpertAgent, make_env, run_episode, summarize
    from ..training.plots import plot_flight

    settings = EvalSettings(tier=args.tier.upper(), episodes=1, seed=args.seed)
    settings.check()
    env = make_env(settings)
    try:
        result = run_episode(env, ExpertAgent(), settings, 0, record=True)
    finally:
        env.close()
    out = Path(args.out)
    png = plot_flight(result.trajectory, out / "flight.png", title=f"expert, tier {settings.tier}, seed {settings.seed}")
    summary = summarize("expert", settings, [result]).to_json_dict()
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    settle = "never" if result.settle_s == float("inf") else f"{result.settle_s:.2f} s"
    print(f"flight: {'success' if result.success else 'FAILED'}  crashed={result.crashed}  "
          f"settled to 0.1 m in {settle}  RMSE last 5 s {result.rmse_m * 100:.1f} cm")
    print(f"plot:   {png}")
    print(f"report: {out / 'report.json'}")
    return 0 if result.success else 1
