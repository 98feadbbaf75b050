"""Node config dataclasses <-> ROS parameters, with descriptors, ranges and validation.

``declare_config`` declares one ROS parameter per field of a :mod:`node_config` schema (its doc
and unit become the description, lo/hi the advertised range, ``runtime=False`` read-only), reads
the values a launch file or YAML gave, and validates them with the shared schema. ``ConfigGuard``
is the on-set-parameters callback: a change is validated on a copy, handed to the node's own
``apply`` (which may refuse, e.g. a model that does not load), and only then committed.
"""
from __future__ import annotations

import copy
import dataclasses
from typing import Any, Callable

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..config import ConfigError, flatten, from_dict, validate

_TYPES = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
          float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}


def _field_type(f: dataclasses.Field) -> type:
    t = f.type if isinstance(f.type, type) else {"float": float, "int": int, "bool": bool, "str": str, "list": list}.get(str(f.type))
    return t or str


def descriptor(name: str, f: dataclasses.Field) -> ParameterDescriptor:
    meta = f.metadata
    typ = _field_type(f)
    text = meta.get("doc", "")
    if meta.get("unit"):
        text += f" [{meta['unit']}]"
    d = ParameterDescriptor(name=name, description=text, read_only=not meta.get("runtime", False))
    if typ is list:
        d.type = ParameterType.PARAMETER_DOUBLE_ARRAY
        d.dynamic_typing = True  # YAML [0, 0, 2] parses as integers; the schema checks values
    else:
        d.type = _TYPES[typ]
        d.dynamic_typing = typ is float  # accept `2` for 2.0; the schema converts and checks
    lo, hi = meta.get("lo"), meta.get("hi")
    if typ is float and lo is not None and hi is not None:
        d.floating_point_range = [FloatingPointRange(from_value=float(lo), to_value=float(hi), step=0.0)]
    elif typ is int and lo is not None and hi is not None:
        d.integer_range = [IntegerRange(from_value=int(lo), to_value=int(hi), step=0)]
    if meta.get("choices"):
        d.additional_constraints = "one of: " + ", ".join(map(str, meta["choices"]))
    return d


def _nest(flat: dict[str, Any]) -> dict:
    out: dict = {}
    for name, value in flat.items():
        node = out
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or type(value).__name__ == "array":
        return [v for v in value]
    return value


def declare_config(node: Node, cls: type, overrides: dict[str, Any] | None = None):
    """Declare every field of ``cls`` as a parameter of ``node``; return the validated config.

    Raises :class:`ConfigError` with the offending parameter's name when a value is bad."""
    defaults = flatten(cls())
    values = {}
    for name, (default, f) in defaults.items():
        value = (overrides or {}).get(name, default)
        p = node.declare_parameter(name, list(value) if isinstance(value, list) else value, descriptor(name, f))
        values[name] = _plain(p.value)
    return from_dict(cls, _nest(values))


def set_dotted(cfg: Any, name: str, value: Any) -> None:
    *parents, leaf = name.split(".")
    target = cfg
    for p in parents:
        target = getattr(target, p)
    setattr(target, leaf, value)


class ConfigGuard:
    """On-set-parameters callback validating changes against the schema before committing.

    ``apply(changes, candidate) -> str | None`` returns a refusal reason, or None to accept;
    it runs in the executor thread, so whatever it swaps is swapped between two control steps."""

    def __init__(self, node: Node, config: Any, apply: Callable[[dict, Any], str | None]):
        self.node, self.config, self._apply = node, config, apply
        self._fields = flatten(config)
        node.add_on_set_parameters_callback(self)

    def __call__(self, params: list[Parameter]) -> SetParametersResult:
        candidate = copy.deepcopy(self.config)
        changes = {}
        for p in params:
            if p.name not in self._fields:
                continue  # use_sim_time and other rclpy-owned parameters
            _, f = self._fields[p.name]
            if not f.metadata.get("runtime", False):
                return SetParametersResult(successful=False, reason=f"{p.name} is read-only while running; restart the node")
            changes[p.name] = _plain(p.value)
            set_dotted(candidate, p.name, changes[p.name])
        if not changes:
            return SetParametersResult(successful=True)
        try:
            validate(candidate)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        try:
            reason = self._apply(changes, candidate)
        except Exception as exc:  # a failing apply must refuse the change, never kill the node
            reason = f"{type(exc).__name__}: {exc}"
        if reason:
            return SetParametersResult(successful=False, reason=reason)
        self.config = candidate
        return SetParametersResult(successful=True)
