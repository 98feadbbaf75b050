"""``lnn-drone inspect MODEL``: what a model file holds (architecture, sizes, specs, metadata)."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "show a model file's architecture, parameter counts and metadata"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="policy model file (.safetensors)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--plot-wiring", metavar="OUT.png", help="also draw the wiring graph to this PNG")


def _text(summary: dict) -> str:
    lines = [f"model            {summary['path']}  (schema {summary['schema_version']})"]
    w = summary["wiring"]
    core = summary["cell"]
    if w:
        layers = ", ".join(f"{n} {s}" for n, s in zip(w["layer_names"], w["layer_sizes"]))
        lines.append(f"core             {core} on a {w['kind']} wiring: {summary['neurons']} neurons ({layers}), "
                     f"{w['synapses']} synapses")
    else:
        lines.append(f"core             {core} ({summary['neurons']} units)")
    arch = summary["architecture"]
    if core == "cfc":
        lines.append(f"cfc mode         {arch['cfc_mode']}, masks {arch['cfc_mask_mode']}")
    if core == "ltc":
        lines.append(f"ltc ode_unfolds  {arch['ltc_ode_unfolds']}")
    lines.append(f"parameters       {summary['params_total']} total, {summary['params_liquid']} in the core, "
                 f"{summary['params_effective']} kept by the wiring masks")
    lines.append(f"state size       {summary['state_size']}")
    a = summary["action"]
    extra = f", max rate {a['max_rate']:g} rad/s" if a["mode"] == "ctbr" else ""
    lines.append(f"action           {a['mode']}: {', '.join(a['names'])}{extra}")
    lines.append(f"control period   {summary['control_period']:g} s")
    lines.append("inputs")
    for i in summary["inputs"]:
        lines.append(f"  {i['name']:<14} {i['kind']:<6} shape {tuple(i['shape'])}")
    lines.append(f"needs obs keys   {', '.join(summary['required_observations'])}")
    for key in ("provenance", "evaluation"):
        if summary[key]:
            lines.append(f"{key:<16} {json.dumps(summary[key], sort_keys=True)}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..policy.model_file import ModelFileError, load_model

    try:
        model = load_model(args.model)
    except ModelFileError as exc:
        print(f"lnn-drone inspect: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    summary = model.summary()
    if args.plot_wiring:
        if model.wiring is None:
            print(f"lnn-drone inspect: a {model.config.core} model has no wiring to plot", file=sys.stderr)
            return 1
        from ..policy.plots import plot_wiring

        names = []
        if not model.config.vector_encoder_units:
            for spec in model.config.vector_inputs:
                names += [f"{spec.name}[{k}]" for k in range(spec.dim)]
        summary["wiring_plot"] = str(plot_wiring(model.wiring, args.plot_wiring, names or None))
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print(_text(summary))
        if args.plot_wiring:
            print(f"wiring plot      {summary['wiring_plot']}")
    return 0
