"""The model file: ONE ``.safetensors`` file carrying a trained policy to a vehicle.

Layout: the network's weights by their ``state_dict`` names (float32), the wiring as int tensors
(``wiring.sensory``, ``wiring.adjacency``, ``wiring.layer_sizes``, ``wiring.output_size``),
and JSON strings in the safetensors header's ``__metadata__``:

=================  =========================================================================
``format``         ``"lnn_drone.policy"`` (tells our files from other safetensors files)
``schema_version`` integer as a string; this code reads versions <= :data:`SCHEMA_VERSION`
``network``        architecture knobs (:meth:`NetworkConfig.architecture_dict`)
``inputs``         input specs with normalisation; ``action``: action mode and max rate
``control_period`` seconds; ``wiring``: wiring description (kind, layers, generator params)
``provenance``     free JSON: dataset, seeds, git commit, training budget, dates…
``evaluation``     free JSON: evaluation summary (success rates, RMSE…)
=================  =========================================================================

Loading never unpickles (safetensors has no code path for it) and never needs torch
(``safetensors.numpy``). Every way a file can be wrong raises a specific subclass of
:class:`ModelFileError` whose message says what is wrong and where.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..liquid.wiring import Wiring, WiringError
from .architecture import LIQUID_PREFIX, WIRING_PREFIX, check_wiring, expected_shapes
from .config import ConfigError, NetworkConfig
from .features import required_observations
from .spec import ActionSpec, InputSpec, SpecError

__all__ = [
    "SCHEMA_VERSION",
    "FORMAT",
    "ModelFileError",
    "TruncatedModelError",
    "NotAModelFileError",
    "SchemaVersionError",
    "MetadataError",
    "MissingTensorError",
    "UnexpectedTensorError",
    "TensorShapeError",
    "NonFiniteWeightsError",
    "MissingInputsError",
    "LoadedModel",
    "save_model",
    "save_network",
    "load_model",
    "check_inputs",
]

SCHEMA_VERSION = 1
FORMAT = "lnn_drone.policy"
_MAX_HEADER = 100 * 1024 * 1024


class ModelFileError(Exception):
    """Base class: a model file that cannot be used. ``path`` says which file."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class TruncatedModelError(ModelFileError):
    """The file ends before the data its header announces (an interrupted copy)."""


class NotAModelFileError(ModelFileError):
    """Not a safetensors file at all, or a safetensors file that is not an lnn_drone policy."""


class SchemaVersionError(ModelFileError):
    """Written by a newer (or unknown) version of the format."""


class MetadataError(ModelFileError):
    """Header metadata missing or malformed (bad JSON, invalid spec or architecture)."""


class MissingTensorError(ModelFileError):
    """A weight the architecture needs is not in the file."""


class UnexpectedTensorError(ModelFileError):
    """The file holds a weight the architecture does not use (wrong architecture metadata?)."""


class TensorShapeError(ModelFileError):
    """A weight has a shape other than the architecture implies."""


class NonFiniteWeightsError(ModelFileError):
    """A weight contains NaN or inf (a diverged training run)."""


class MissingInputsError(ModelFileError):
    """The model needs inputs that the caller (node, environment) cannot provide."""


@dataclass
class LoadedModel:
    """A validated model: configuration, wiring, float32 weights and the free metadata."""

    config: NetworkConfig
    wiring: Wiring | None
    tensors: dict[str, np.ndarray]
    provenance: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    path: str | None = None

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.config.inputs]

    def param_counts(self) -> dict[str, int]:
        """Allocated weights (total, liquid core) and the entries the wiring masks keep."""
        total = sum(int(v.size) for v in self.tensors.values())
        liquid = sum(int(v.size) for k, v in self.tensors.items() if k.startswith(LIQUID_PREFIX))
        masked = 0
        cfg, w = self.config, self.wiring
        if w is not None and cfg.core == "cfc":
            masked = sum(int((w.cfc_mask(l, cfg.cfc_mode, cfg.cfc_mask_mode) == 0).sum()) for l in range(w.num_layers))
        elif w is not None and cfg.core == "ltc":
            masked = 4 * int((w.adjacency == 0).sum() + (w.sensory == 0).sum())
        return {"total": total, "liquid": liquid, "effective": total - masked}

    def summary(self) -> dict[str, Any]:
        """What ``lnn-drone inspect --json`` prints."""
        cfg = self.config
        counts = self.param_counts()
        neurons = cfg.liquid_units if cfg.core in ("cfc", "ltc") else (cfg.gru_units if cfg.core == "gru" else sum(cfg.mlp_hidden))
        return {
            "path": self.path,
            "schema_version": self.schema_version,
            "cell": cfg.core,
            "wiring": None if self.wiring is None else self.wiring.describe(),
            "neurons": neurons,
            "state_size": cfg.state_size,
            "params_total": counts["total"],
            "params_liquid": counts["liquid"],
            "params_effective": counts["effective"],
            "action_mode": cfg.action.mode,
            "action": cfg.action.to_dict(),
            "inputs": [i.to_dict() for i in cfg.inputs],
            "required_observations": sorted(required_observations(self.input_names)),
            "control_period": cfg.control_period,
            "architecture": cfg.architecture_dict(),
            "provenance": self.provenance,
            "evaluation": self.evaluation,
        }


# -- saving -----------------------------------------------------------------------------------
def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor, without importing torch here
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def save_model(
    path: str | os.PathLike,
    config: NetworkConfig,
    tensors: Mapping[str, Any],
    wiring: Wiring | None = None,
    provenance: Mapping | None = None,
    evaluation: Mapping | None = None,
) -> Path:
    """Write a model file (torch-free; tensors may be numpy arrays or torch tensors).

    The tensors are validated exactly as on load, so an unusable file is never written.
    """
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(_to_numpy(v), dtype=np.float32) for k, v in tensors.items()}
    _validate_tensors(config, wiring, arrays, path)
    if wiring is not None:
        for k, v in wiring.to_arrays().items():
            arrays[WIRING_PREFIX + k] = np.ascontiguousarray(v)
    metadata = {
        "format": FORMAT,
        "schema_version": str(SCHEMA_VERSION),
        "network": json.dumps(config.architecture_dict()),
        "inputs": json.dumps([i.to_dict() for i in config.inputs]),
        "action": json.dumps(config.action.to_dict()),
        "control_period": repr(float(config.control_period)),
        "wiring": json.dumps(None if wiring is None else wiring.describe()),
        "provenance": json.dumps(dict(provenance or {}), default=str),
        "evaluation": json.dumps(dict(evaluation or {}), default=str),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(arrays, str(tmp), metadata=metadata)
    os.replace(tmp, path)  # atomic: a reader never sees a half-written model
    return path


def save_network(path, network, provenance: Mapping | None = None, evaluation: Mapping | None = None) -> Path:
    """Save a :class:`~lnn_drone.policy.network.PolicyNetwork` (its config, wiring and weights)."""
    return save_model(path, network.config, network.state_dict(), network.wiring, provenance, evaluation)


# -- loading ----------------------------------------------------------------------------------
def _read_header(data: bytes, path) -> tuple[dict, int]:
    if len(data) < 8:
        raise TruncatedModelError(
            f"file is {len(data)} bytes; a safetensors file starts with an 8-byte header length", path
        )
    (n,) = struct.unpack("<Q", data[:8])
    if n == 0 or n > _MAX_HEADER:
        raise NotAModelFileError(f"not a safetensors file (header length field reads {n})", path)
    if 8 + n > len(data):
        if data[8:9] == b"{":
            raise TruncatedModelError(f"header announces {n} bytes but the file has only {len(data) - 8} after the length", path)
        raise NotAModelFileError("not a safetensors file (no JSON header)", path)
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotAModelFileError(f"not a safetensors file (header is not JSON: {exc})", path) from None
    if not isinstance(header, dict):
        raise NotAModelFileError("not a safetensors file (header is not a JSON object)", path)
    body = len(data) - 8 - n
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            end = max(end, int(info["data_offsets"][1]))
        except (TypeError, KeyError, IndexError, ValueError):
            raise NotAModelFileError(f"tensor entry {name!r} in the header is malformed", path) from None
    if end > body:
        raise TruncatedModelError(f"tensor data ends at byte {end} but the file holds only {body} data bytes", path)
    return header, n


def _json(meta: dict, key: str, path, default: Any = ...) -> Any:
    if key not in meta:
        if default is ...:
            raise MetadataError(f"metadata entry {key!r} is missing", path)
        return default
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as exc:
        raise MetadataError(f"metadata entry {key!r} is not valid JSON: {exc}", path) from None


def _validate_tensors(config: NetworkConfig, wiring: Wiring | None, tensors: Mapping[str, np.ndarray], path) -> None:
    want = expected_shapes(config, wiring)
    missing = [k for k in want if k not in tensors]
    if missing:
        raise MissingTensorError(f"missing tensor(s) {missing} required by the {config.core} architecture", path)
    extra = [k for k in tensors if k not in want]
    if extra:
        raise UnexpectedTensorError(f"unexpected tensor(s) {extra}: the architecture metadata does not use them", path)
    for k, shape in want.items():
        got = tuple(tensors[k].shape)
        if got != shape:
            raise TensorShapeError(f"tensor {k!r} has shape {got}, the architecture needs {shape}", path)
    for k, v in tensors.items():
        if v.dtype.kind != "f":
            raise TensorShapeError(f"tensor {k!r} has dtype {v.dtype}; weights must be floating point", path)
        if not np.isfinite(v).all():
            bad = int(np.size(v) - np.isfinite(v).sum())
            raise NonFiniteWeightsError(f"tensor {k!r} has {bad} NaN/inf value(s)", path)


def load_model(path: str | os.PathLike, available_inputs: Iterable[str] | None = None) -> LoadedModel:
    """Read and validate a model file (torch-free, never unpickles).

    ``available_inputs``: raw observation keys the caller can provide; if given and the model
    needs others, :class:`MissingInputsError` is raised here, before anything flies.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError("no such file", path) from None
    except IsADirectoryError:
        raise ModelFileError("is a directory, not a model file", path) from None
    header, _ = _read_header(data, path)
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise NotAModelFileError(f"a safetensors file, but not an lnn_drone policy (no format={FORMAT!r} metadata)", path)
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise SchemaVersionError(f"schema_version {meta.get('schema_version')!r} is not an integer", path) from None
    if not 1 <= version <= SCHEMA_VERSION:
        raise SchemaVersionError(
            f"schema version {version} is not supported (this lnn_drone reads 1..{SCHEMA_VERSION}); "
            "upgrade lnn_drone or re-export the model",
            path,
        )
    try:
        arch = _json(meta, "network", path)
        inputs = [InputSpec.from_dict(d) for d in _json(meta, "inputs", path)]
        action = ActionSpec.from_dict(_json(meta, "action", path))
        period = float(meta.get("control_period", "nan"))
        if not math.isfinite(period):
            raise MetadataError("control_period is missing or not a number", path)
        config = NetworkConfig.from_dict({**arch, "inputs": tuple(inputs), "action": action, "control_period": period})
    except (SpecError, ConfigError, TypeError) as exc:
        raise MetadataError(f"invalid architecture or specs: {exc}", path) from None
    wiring_desc = _json(meta, "wiring", path, None)

    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    try:
        arrays = st_load(data)
    except (SafetensorError, ValueError) as exc:
        raise NotAModelFileError(f"corrupt safetensors data: {exc}", path) from None
    wiring_arrays = {k[len(WIRING_PREFIX):]: v for k, v in arrays.items() if k.startswith(WIRING_PREFIX)}
    tensors = {k: v for k, v in arrays.items() if not k.startswith(WIRING_PREFIX)}
    wiring = None
    if config.core in ("cfc", "ltc"):
        if not wiring_arrays:
            raise MissingTensorError(f"the {config.core} model has no wiring tensors ({WIRING_PREFIX}*)", path)
        try:
            wiring = Wiring.from_arrays(wiring_arrays, wiring_desc)
            check_wiring(config, wiring)
        except WiringError as exc:
            raise MissingTensorError(str(exc), path) if "missing" in str(exc) else TensorShapeError(str(exc), path) from None
        except ConfigError as exc:
            raise TensorShapeError(f"wiring does not fit the architecture: {exc}", path) from None
    _validate_tensors(config, wiring, tensors, path)
    model = LoadedModel(
        config=config,
        wiring=wiring,
        tensors={k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()},
        provenance=_json(meta, "provenance", path, {}),
        evaluation=_json(meta, "evaluation", path, {}),
        schema_version=version,
        path=str(path),
    )
    if available_inputs is not None:
        check_inputs(model, available_inputs)
    return model


def check_inputs(model: LoadedModel, available: Iterable[str]) -> None:
    """Raise :class:`MissingInputsError` if the caller cannot provide the model's inputs."""
    available = set(available)
    need = required_observations(model.input_names)
    missing = sorted(need - available)
    if missing:
        raise MissingInputsError(
            f"the model needs observation(s) {missing} (inputs {model.input_names}) but only "
            f"{sorted(available)} are available",
            model.path,
        )
