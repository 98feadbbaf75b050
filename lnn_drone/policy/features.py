"""Feature extractors: how a model input is computed from the raw observation dict.

A model input named ``imu`` is, by default, ``obs["imu"]`` flattened to float32. Derived inputs
(an odometry/goal error, a rotated velocity…) are registered once, next to the code that
defines them, so training, evaluation and the onboard node compute them identically::

    @register_feature("goal_error", dim=16, requires=("odom", "goal"))
    def goal_error(obs):
        ...

Torch-free: this is on the deployment path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np

__all__ = [
    "Feature",
    "FeatureError",
    "register_feature",
    "get_feature",
    "registered_features",
    "extract",
    "required_observations",
]

Extractor = Callable[[Mapping[str, np.ndarray]], np.ndarray]


class FeatureError(ValueError):
    """An observation that cannot produce a model input (missing key, wrong size, NaN…)."""


@dataclass(frozen=True)
class Feature:
    name: str
    fn: Extractor
    dim: int | None  # None: any size (checked against the model's spec instead)
    requires: tuple[str, ...]  # raw observation keys it reads


_REGISTRY: dict[str, Feature] = {}


def register_feature(name: str, dim: int | None = None, requires: Iterable[str] | None = None,
                     replace: bool = False) -> Callable[[Extractor], Extractor]:
    """Decorator registering ``fn(obs) -> array`` as the extractor of input ``name``.

    ``requires`` lists the raw observation keys it reads (default: ``(name,)``); it lets a node
    tell, before flying, that it cannot provide a model's inputs.
    """

    def decorate(fn: Extractor) -> Extractor:
        if name in _REGISTRY and not replace and _REGISTRY[name].fn is not fn:
            raise ValueError(f"feature {name!r} is already registered (pass replace=True to override)")
        _REGISTRY[name] = Feature(name, fn, None if dim is None else int(dim),
                                  tuple(requires) if requires is not None else (name,))
        return fn

    return decorate


def _raw(name: str) -> Feature:
    return Feature(name, lambda obs: obs[name], None, (name,))


def get_feature(name: str) -> Feature:
    """The registered extractor, or the default ``obs[name]``."""
    return _REGISTRY.get(name) or _raw(name)


def registered_features() -> dict[str, Feature]:
    return dict(_REGISTRY)


def required_observations(names: Iterable[str]) -> set[str]:
    """Raw observation keys needed to compute the given inputs."""
    keys: set[str] = set()
    for name in names:
        keys.update(get_feature(name).requires)
    return keys


def extract(name: str, obs: Mapping[str, np.ndarray], shape: tuple[int, ...], dtype=np.float32,
            out: np.ndarray | None = None) -> np.ndarray:
    """Compute input ``name`` from ``obs`` and check it: shape ``shape`` (a vector input is
    flattened first), finite values. Raises :class:`FeatureError` with the reason."""
    feature = get_feature(name)
    missing = [k for k in feature.requires if k not in obs]
    if missing:
        raise FeatureError(f"input {name!r} needs observation key(s) {missing}; got {sorted(obs)}")
    try:
        value = np.asarray(feature.fn(obs))
    except FeatureError:
        raise
    except Exception as exc:  # an extractor failing on malformed data: say which input
        raise FeatureError(f"computing input {name!r} failed: {exc!r}") from exc
    if len(shape) == 1:
        value = value.reshape(-1)
    if value.shape != tuple(shape):
        raise FeatureError(f"input {name!r} has shape {value.shape}, the model expects {tuple(shape)}")
    if value.dtype.kind not in "fiub":
        raise FeatureError(f"input {name!r} has non-numeric dtype {value.dtype}")
    if value.dtype.kind == "f" and not np.isfinite(value).all():
        raise FeatureError(f"input {name!r} contains NaN or inf")
    if out is not None:
        out[...] = value
        return out
    return value if dtype is None else value.astype(dtype, copy=False)


# The drone's derived inputs (goal_error…) register themselves here, so that every user of the
# feature registry — training, evaluation, the onboard node — sees the same extractors.
from . import drone_features  # noqa: E402,F401
