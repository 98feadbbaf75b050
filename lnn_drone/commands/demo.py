"""``lnn-drone demo``: the project's main job in one command (``make demo``).

Flies one seeded recovery episode in the PyBullet simulator and writes a flight plot and a
short report. Until the ROS 2 nodes land, the pilot is the classical geometric controller.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "fly a simulated recovery and write a plot and a short report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    p.add_argument("--tier", default="A45", help="initial-state tier (default A45)")
    p.add_argument("--seed", type=int, default=7, help="episode seed")
    p.add_argument("--vehicle", default="crazyflie2", help="vehicle name or YAML path")


def run(args) -> int:
    from ..training.evaluation import EvalSettings, ExpertAgent, make_env, run_episode, summarize
    from ..training.plots import plot_flight

    settings = EvalSettings(tier=args.tier.upper(), episodes=1, seed=args.seed, vehicle=args.vehicle)
    settings.check()
    env = make_env(settings)
    try:
        result = run_episode(env, ExpertAgent(), settings, 0, record=True)
    finally:
        env.close()
    out = Path(args.out)
    png = plot_flight(result.trajectory, out / "flight.png",
                      title=f"expert, {settings.vehicle}, tier {settings.tier}, seed {settings.seed}")
    summary = summarize("expert", settings, [result]).to_json_dict()
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    settle = "never" if result.settle_s == float("inf") else f"{result.settle_s:.2f} s"
    print(f"flight: {'success' if result.success else 'FAILED'}  crashed={result.crashed}  "
          f"settled to 0.1 m in {settle}  RMSE last 5 s {result.rmse_m * 100:.1f} cm")
    print(f"plot:   {png}")
    print(f"report: {out / 'report.json'}")
    return 0 if result.success else 1
