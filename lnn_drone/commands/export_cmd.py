"""``lnn-drone export MODEL --onnx OUT``: a single-step ONNX graph of a model file."""
from __future__ import annotations

import argparse
import sys

HELP = "export a model file to a single-step ONNX graph (needs torch + onnx)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="policy model file (.safetensors)")
    parser.add_argument("--onnx", required=True, metavar="OUT", help="ONNX file to write")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-numpy check after export")


def run(args: argparse.Namespace) -> int:
    from ..policy.model_file import ModelFileError, load_model

    try:
        model = load_model(args.model)
    except ModelFileError as exc:
        print(f"lnn-drone export: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    try:
        from ..policy.export_onnx import export_onnx
    except ImportError as exc:
        print(f"lnn-drone export: needs the 'train' extra (torch, onnx, onnxscript): {exc}", file=sys.stderr)
        return 1
    out = export_onnx(model, args.onnx, opset=args.opset)
    print(f"wrote {out}")
    if not args.no_check:
        try:
            diff = _check(model, out)
        except ImportError:
            print("onnxruntime not installed: parity not checked")
            return 0
        print(f"onnxruntime vs numpy runtime, 50 random steps: max abs diff {diff:.2e}")
        if not diff <= 1e-4:
            print("lnn-drone export: the exported graph disagrees with the model", file=sys.stderr)
            return 1
    return 0


def _check(model, path) -> float:
    """Max |onnxruntime - numpy runtime| over a short random rollout (a smoke check)."""
    import numpy as np
    import onnxruntime as ort

    from ..policy.runtime_numpy import NumpyRuntime

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rt = NumpyRuntime(model)
    rng = np.random.default_rng(0)
    state = np.zeros((1, model.config.state_size), np.float32)
    worst = 0.0
    for _ in range(50):
        feeds = {}
        for spec in model.config.inputs:
            if spec.kind == "image":
                feeds[spec.name] = rng.integers(0, 256, (1, *spec.shape), dtype=np.uint8)
            elif spec.kind == "reference":  # a hover-thrust fraction
                feeds[spec.name] = rng.uniform(0.1, 0.9, (1, 1)).astype(np.float32)
            else:
                feeds[spec.name] = (np.asarray(spec.mean) + np.asarray(spec.std) * rng.normal(size=spec.dim)).astype(np.float32)[None]
        dt = float(model.config.control_period * rng.uniform(0.5, 1.5))
        cmd, state = sess.run(None, {**feeds, "state": state, "dt": np.array([dt], np.float32)})
        ref = rt.step({k: v[0] for k, v in feeds.items()}, dt)
        worst = max(worst, float(np.abs(cmd[0] - ref).max()))
    return worst
