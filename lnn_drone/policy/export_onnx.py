"""ONNX export of ONE control step: (observations…, state, dt) -> (command, new_state).

The graph has one input per model input (vector inputs float32 (1, dim); the image uint8
(1, H, W, 3)), then ``state`` float32 (1, S) and ``dt`` float32 (1,) seconds; outputs
``command`` (1, 4) and ``state_out`` (1, S). Normalisation is inside the graph, so a runtime
feeds raw features exactly like :class:`~lnn_drone.policy.policy.Policy` does. The recurrent
state is explicit (zeros at reset), which is what ONNX runtimes and TensorRT-style targets want.
Uses the ``dynamo=True`` exporter.
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .model_file import LoadedModel, load_model
from .network import PolicyNetwork

__all__ = ["export_onnx", "network_from_model", "onnx_input_names", "STATE_INPUT", "DT_INPUT", "OUTPUTS"]

STATE_INPUT, DT_INPUT = "state", "dt"
OUTPUTS = ("command", "state_out")


class _OneStep(nn.Module):
    def __init__(self, net: PolicyNetwork) -> None:
        super().__init__()
        self.net = net
        self.names = [s.name for s in net.config.inputs]

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = dict(zip(self.names, args[: len(self.names)]))
        state, dt = args[len(self.names)], args[len(self.names) + 1]
        return self.net.step(inputs, state, dt)


def network_from_model(model: LoadedModel) -> PolicyNetwork:
    """Rebuild the torch network of a loaded model file (its wiring and weights)."""
    net = PolicyNetwork(model.config, model.wiring)
    net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.tensors.items()}, strict=True)
    return net.eval()


def onnx_input_names(net: PolicyNetwork) -> list[str]:
    return [s.name for s in net.config.inputs] + [STATE_INPUT, DT_INPUT]


def example_inputs(net: PolicyNetwork) -> tuple[torch.Tensor, ...]:
    args = []
    for s in net.config.inputs:
        if s.kind == "image":
            args.append(torch.zeros((1, *s.shape), dtype=torch.uint8))
        else:
            args.append(torch.zeros((1, s.dim), dtype=torch.float32))
    args.append(torch.zeros(1, net.state_size))
    args.append(torch.full((1,), net.config.control_period))
    return tuple(args)


def export_onnx(model: LoadedModel | PolicyNetwork | str | os.PathLike, out: str | os.PathLike, opset: int | None = None) -> Path:
    """Write the single-step ONNX graph of a model file or network to ``out``."""
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    net = model if isinstance(model, PolicyNetwork) else network_from_model(model)
    if net.state_size == 0:
        raise ValueError("a stateless network (mlp_history=1) has no state to export; use mlp_history >= 2")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _OneStep(net).eval()
    kwargs = {} if opset is None else {"opset_version": opset}
    # the exporter logs one warning per missing torchvision op; they do not concern this graph
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            wrapper,
            example_inputs(net),
            dynamo=True,
            input_names=onnx_input_names(net),
            output_names=list(OUTPUTS),
            verbose=False,
            **kwargs,
        )
    program.save(str(out))
    return out
