"""Policies: specs, feature extractors, the model file and the torch-free runtime.

Torch-free on purpose (the onboard computer has no torch): the torch network lives in
:mod:`lnn_drone.policy.network` and ONNX export in :mod:`lnn_drone.policy.export_onnx`;
import those explicitly.
"""
from __future__ import annotations

from .config import NetworkConfig
from .features import register_feature
from .model_file import LoadedModel, ModelFileError, load_model, save_model
from .policy import Policy
from .spec import ActionSpec, InputSpec

__all__ = [
    "ActionSpec",
    "InputSpec",
    "LoadedModel",
    "ModelFileError",
    "NetworkConfig",
    "Policy",
    "load_model",
    "register_feature",
    "save_model",
]
