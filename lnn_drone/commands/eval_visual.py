"""``lnn-drone eval --task visual_target``: the visual-target protocol under a named condition."""
from __future__ import annotations

import json
import sys


def run_visual(args) -> int:
    from ..policy.model_file import ModelFileError
    from ..training.vision import VisualEvalSettings, VisualSetup, condition_names, evaluate_visual, setup_for_model
    from ..vehicle import VehicleFileError

    if args.list_conditions:
        print("\n".join(condition_names()))
        return 0
    try:
        if args.model and args.controller:
            raise ValueError("give either a MODEL or --controller, not both")
        if args.model:
            from ..training.agents import PolicyAgent

            controller = PolicyAgent.from_file(args.model, vehicle_matching=not args.no_vehicle_matching)
            setup = setup_for_model(controller.model)
        else:
            from ..training.vision import VisualExpert

            controller, setup = VisualExpert(), VisualSetup()
        if args.episode_s is not None:
            from dataclasses import replace

            setup = replace(setup, episode_s=args.episode_s)
        settings = VisualEvalSettings(condition=args.condition, episodes=args.episodes, seed=args.seed,
                                      vehicle=args.vehicle, setup=setup)
        summary = evaluate_visual(controller, settings,
                                  progress=not (args.json or args.no_progress) and sys.stderr.isatty())
    except (ValueError, VehicleFileError, FileNotFoundError, ModelFileError) as exc:
        print(f"lnn-drone eval: error: {exc}", file=sys.stderr)
        return 2
    out = summary.to_json_dict()
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"controller {out['controller']}  task visual_target  condition {out['condition']}  "
          f"episodes {out['episodes']}  seed {settings.seed}")
    print(f"  success   {out['success_rate']:.1%}  (95% CI {out['success_ci_low']:.1%} - {out['success_ci_high']:.1%})")
    print(f"  crashes   {out['crash_rate']:.1%}")
    print(f"  final distance to the standoff point (median) {out['final_distance_error_m_median']:.3f} m")
    print(f"  final heading error to the target (median)    {out['final_heading_error_deg_median']:.1f} deg")
    if out["vehicle_matching"] != "not needed":
        print(f"  vehicle matching  {out['vehicle_matching']}")
    return 0
