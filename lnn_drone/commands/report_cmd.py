"""``lnn-drone report``: evaluate controllers side by side and write a Markdown report with plots."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "evaluate models (and the expert) on tiers, robustness grids, pushes and another vehicle; write report.md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("models", nargs="+",
                   help="model files, 'expert' (privileged) or 'teacher' (what hover students imitate); "
                        "the first model gets the neuron plot")
    p.add_argument("--out", default="reports/hover", help="output folder (default reports/hover)")
    p.add_argument("--episodes", type=int, default=100, help="episodes per cell (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--title", default="Hover policy report")
    p.add_argument("--workers", type=int, default=2, help="processes evaluating controllers side by side")
    p.add_argument("--task", default="hover", choices=["hover", "visual_target"],
                   help="visual_target: success per condition, saliency and neuron plots (default out reports/visual_target)")
    p.add_argument("--conditions", default=None, help="visual_target: comma-separated conditions (default all)")
    p.add_argument("--notes", default=None,
                   help="visual_target: a Markdown file whose text becomes the report's Notes section "
                        "(what the numbers alone do not say; kept in the repo so a rerun keeps it)")
    p.add_argument("--no-progress", action="store_true")


def run_visual(args) -> int:
    from ..policy.model_file import ModelFileError
    from ..training.vision_report import run_report

    out = "reports/visual_target" if args.out == "reports/hover" else args.out
    try:
        conds = args.conditions.split(",") if args.conditions else None
        notes = None
        if args.notes:
            text = Path(args.notes).read_text(encoding="utf-8").strip()
            notes = ["## Notes", ""] + text.splitlines() if text else None
        page = run_report(args.models, out, args.episodes, args.seed, conds,
                          progress=not args.no_progress and sys.stderr.isatty(), notes=notes)
    except (ModelFileError, ValueError, FileNotFoundError, UnicodeDecodeError) as exc:
        print(f"lnn-drone report: error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {page}")
    return 0


def run(args) -> int:
    if args.task == "visual_target":
        return run_visual(args)
    from ..policy.model_file import ModelFileError
    from ..training.report import MatrixSpec, run_matrix, write_report

    try:
        results = run_matrix(args.models, MatrixSpec(episodes=args.episodes, seed=args.seed),
                             progress=not args.no_progress and sys.stderr.isatty(), workers=args.workers)
    except (ModelFileError, ValueError, FileNotFoundError) as exc:
        print(f"lnn-drone report: error: {exc}", file=sys.stderr)
        return 2
    first_model = next((m for m in args.models if m not in ("expert", "teacher")), None)
    page = write_report(results, args.out, args.title, neuron_model=first_model)
    print(f"report: {page}")
    return 0
