"""``lnn-drone eval``: the seeded evaluation protocol of DESIGN.md §6 for a controller or model."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "evaluate a controller or a model file with the seeded protocol (tiers A30, A45, A90)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="model file (.safetensors); omit to evaluate --controller")
    p.add_argument("--controller", default=None, choices=["expert"], help="classical controller to evaluate")
    p.add_argument("--tier", default="A30", help="initial-state tier: A30, A45 or A90 (default A30)")
    p.add_argument("--episodes", type=int, default=100, help="number of episodes (default 100)")
    p.add_argument("--seed", type=int, default=0, help="protocol seed: same seed, same episodes")
    p.add_argument("--vehicle", default="crazyflie2", help="shipped vehicle name or vehicle YAML path")
    p.add_argument("--latency-ms", type=float, default=0.0, help="actuation latency in ms")
    p.add_argument("--tw", type=float, default=None, help="thrust-to-weight override")
    p.add_argument("--push-frac", type=float, default=0.0, help="constant horizontal push, fraction of weight")
    p.add_argument("--episode-s", type=float, default=None, help="episode length in s (default 10; visual_target 8)")
    p.add_argument("--task", default="hover", choices=["hover", "visual_target"],
                   help="hover (tiers) or visual_target (conditions, IMU + camera policies)")
    p.add_argument("--condition", default="nominal", help="visual_target: evaluation condition (see --list-conditions)")
    p.add_argument("--list-conditions", action="store_true", help="visual_target: print the condition names and exit")
    p.add_argument("--no-vehicle-matching", action="store_true",
                   help="fly a model raw on a vehicle other than its training one (default: through vehicle "
                        "matching where the model allows it, lnn_drone/policy/vehicle_matching.py)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_controller(args):
    if args.model and args.controller:
        raise ValueError("give either a MODEL or --controller, not both")
    if args.controller == "expert" or (not args.model and not args.controller):
        from ..training.evaluation import ExpertAgent

        return ExpertAgent(), "motors", 240.0
    from ..training.agents import PolicyAgent  # torch-free numpy policy runtime

    agent = PolicyAgent.from_file(args.model, vehicle_matching=not args.no_vehicle_matching)
    return agent, agent.action_mode, agent.control_hz


def run(args) -> int:
    if args.task == "visual_target":
        from .eval_visual import run_visual

        return run_visual(args)
    if args.list_conditions:
        print("lnn-drone eval: error: --list-conditions needs --task visual_target", file=sys.stderr)
        return 2
    from ..policy.model_file import ModelFileError
    from ..training.evaluation import EvalSettings, evaluate, physics_rate_for
    from ..vehicle import VehicleFileError

    try:
        controller, action_mode, control_hz = build_controller(args)
        settings = EvalSettings(tier=args.tier.upper(), episodes=args.episodes, seed=args.seed, vehicle=args.vehicle,
                                latency_ms=args.latency_ms, thrust_to_weight=args.tw, push_frac=args.push_frac,
                                episode_s=args.episode_s or 10.0, action_mode=action_mode, control_hz=control_hz,
                                physics_hz=physics_rate_for(control_hz))
        summary = evaluate(controller, settings, progress=not (args.json or args.no_progress) and sys.stderr.isatty())
    except (ValueError, VehicleFileError, FileNotFoundError, ModelFileError) as exc:
        print(f"lnn-drone eval: error: {exc}", file=sys.stderr)
        return 2
    out = summary.to_json_dict()
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"controller {out['controller']}  tier {settings.tier}  episodes {out['episodes']}  seed {settings.seed}")
    print(f"  success   {out['success_rate']:.1%}  (95% CI {out['success_ci_low']:.1%} - {out['success_ci_high']:.1%})")
    print(f"  crashes   {out['crash_rate']:.1%}")
    fmt = lambda v, unit: "n/a" if v is None else f"{v:.3f} {unit}"  # noqa: E731
    print(f"  RMSE last 5 s (median)   {fmt(out['rmse_m_median'], 'm')}")
    print(f"  settling to 0.1 m (med.) {fmt(out['settle_s_median'], 's')}")
    print(f"  steady offset (median)   {fmt(out['steady_offset_m'], 'm')}")
    print(f"  saturation {out['saturation_mean']:.2%}  smoothness {out['smoothness_mean']:.4f} per step")
    return 0
