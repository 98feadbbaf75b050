"""What a policy reads and what it commands: input/output specs that travel in the model file.

A model declares its inputs by name (``imu``, ``goal_error``, ``image``…) with their sizes and
the normalisation it was trained with, so a deployment node can subscribe to exactly what the
model needs and refuse a model whose inputs it cannot provide. Action modes follow DESIGN.md §3:
``motors`` = 4 normalised rotor thrusts u in [0, 1] (contract motor order), ``ctbr`` =
collective thrust fraction in [0, 1] followed by body rates p, q, r in rad/s (FLU), the rates
bounded by ``max_rate``. A thrust reference (``thrust_reference="hover_thrust"``) makes the
thrust outputs relative to a hover-thrust input h, so a zero network output hovers at any
thrust-to-weight. Forms: ``scaled`` (default), ``u = sigmoid(logit(h) + z / (1 - h))``, where a
unit output is also one g of acceleration (``du/dz = h`` at hover, the physics of
``u = h (1 + a / g)``); ``offset``, ``u = sigmoid(logit(h) + z)``, which only moves the plain
sigmoid's centre to h (``du/dz = h (1 - h)``, as the plain head has at u = h). And, in motors
mode only, ``mixer``: the four outputs are collective, roll, pitch and yaw in g units (z_c = 1 is
one g more, a unit of differential is h on each rotor), mixed linearly by :data:`MIXER_SIGNS`,
``f = h (1 + S z)``, then shifted as a whole so every rotor fits in [0, 1] (what a flight
controller's airmode does: attitude authority before altitude) and clipped. Unlike a per-rotor
sigmoid, it is symmetric about hover: near full thrust a sigmoid gives a rotor little more while
its opposite loses much, so every attitude correction of a low thrust-to-weight vehicle also
costs lift. ``linear``: each thrust output is ``u = clip(h (1 + z), 0, 1)``, per rotor (motors) or
the collective (ctbr): one unit is one g, as in ``scaled``, and symmetric about hover up to the
range's end; where it clips, training passes the gradient straight through, so an output beyond
the range is still pulled towards the label.

The reference may also be the vehicle's *configured* hover thrust (``hover_thrust_config``, an
input of kind ``reference``: the ``1 / thrust_to_weight`` of its vehicle file, as a flight
controller's hover-throttle setting such as PX4's ``MPC_THR_HOVER``). A reference input is not
normalised and never enters the encoder: it only scales the thrust outputs, so a policy trained on
one vehicle class keeps its meaning (a unit output is one g) on another. Torch-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["SpecError", "InputSpec", "ActionSpec", "ACTION_MODES", "THRUST_REFERENCES", "REFERENCE_FORMS", "REFERENCE_CLIP",
           "MIXER_SIGNS", "MOTOR_NAMES", "CTBR_NAMES", "REFERENCE_INPUTS"]

ACTION_MODES = ("motors", "ctbr")
# "none": thrust = sigmoid(z); an input name: thrust relative to that (1-value) hover-thrust input
THRUST_REFERENCES = ("none", "hover_thrust", "hover_thrust_config")
# inputs of kind "reference": read by the head only (see the module docstring)
REFERENCE_INPUTS = ("hover_thrust_config",)
REFERENCE_FORMS = ("scaled", "offset", "mixer", "linear")
# rotors (contract order FR, BR, BL, FL) x mixer coordinates (collective, roll = left minus right,
# pitch = back minus front, yaw = the rotors' reaction-torque signs): u = S @ (c, r, p, y)
MIXER_SIGNS = np.array([[1.0, -1.0, -1.0, -1.0], [1.0, -1.0, 1.0, 1.0], [1.0, 1.0, 1.0, -1.0], [1.0, 1.0, -1.0, 1.0]])
# the reference is clipped to this before its logit (the hover-thrust estimator keeps 0.08-0.95)
REFERENCE_CLIP = (0.02, 0.98)
MOTOR_NAMES = ("front_right", "back_right", "back_left", "front_left")
CTBR_NAMES = ("collective_thrust", "roll_rate", "pitch_rate", "yaw_rate")


class SpecError(ValueError):
    """An input or action specification that is malformed or inconsistent."""


def _floats(values, n: int, what: str) -> tuple[float, ...]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 1 and n > 1:
        arr = np.full(n, arr[0])
    if arr.size != n:
        raise SpecError(f"{what} has {arr.size} values, expected {n}")
    if not np.isfinite(arr).all():
        raise SpecError(f"{what} must be finite")
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class InputSpec:
    """One named model input.

    ``kind="vector"``: ``shape == (dim,)``, float features, normalised as (x - mean) / std per
    element. ``kind="image"``: ``shape == (H, W, 3)`` uint8 RGB, scaled to [0, 1] then
    normalised per channel. ``kind="reference"``: ``shape == (1,)``, a thrust reference read by
    the head only, never normalised nor encoded (its mean and std stay 0 and 1).
    """

    name: str
    shape: tuple[int, ...]
    kind: str = "vector"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise SpecError(f"input name {self.name!r} must be a non-empty identifier")
        shape = tuple(int(s) for s in self.shape)
        object.__setattr__(self, "shape", shape)
        if self.kind == "vector":
            if len(shape) != 1 or shape[0] < 1:
                raise SpecError(f"vector input {self.name!r} needs shape (dim,), got {shape}")
        elif self.kind == "image":
            if len(shape) != 3 or shape[2] != 3 or min(shape) < 1:
                raise SpecError(f"image input {self.name!r} needs shape (H, W, 3), got {shape}")
        elif self.kind == "reference":
            if shape != (1,) or self.name not in REFERENCE_INPUTS:
                raise SpecError(f"reference input {self.name!r} must be one of {REFERENCE_INPUTS} with shape (1,), "
                                f"got shape {shape}")
            if (np.size(self.mean) and tuple(self.mean) != (0.0,)) or (np.size(self.std) and tuple(self.std) != (1.0,)):
                raise SpecError(f"reference input {self.name!r} is not normalised: mean must be 0 and std 1")
        else:
            raise SpecError(f"input {self.name!r}: kind must be 'vector', 'image' or 'reference', got {self.kind!r}")
        n = self.norm_size
        mean = _floats(self.mean if np.size(self.mean) else (0.5 if self.kind == "image" else 0.0), n, f"{self.name}.mean")
        std = _floats(self.std if np.size(self.std) else (0.25 if self.kind == "image" else 1.0), n, f"{self.name}.std")
        if min(std) <= 0:
            raise SpecError(f"{self.name}.std must be > 0 everywhere")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @classmethod
    def vector(cls, name: str, dim: int, mean=None, std=None, description: str = "") -> "InputSpec":
        return cls(name, (dim,), "vector", () if mean is None else mean, () if std is None else std, description)

    @classmethod
    def reference(cls, name: str = "hover_thrust_config", description: str = "") -> "InputSpec":
        return cls(name, (1,), "reference", (), (), description or "configured hover thrust of the vehicle (fraction)")

    @classmethod
    def image(cls, name: str = "image", height: int = 64, width: int = 64, mean=None, std=None) -> "InputSpec":
        return cls(name, (height, width, 3), "image", () if mean is None else mean, () if std is None else std,
                   "RGB camera image, uint8 HxWx3")

    @property
    def dim(self) -> int:
        """Number of values (H*W*3 for an image)."""
        return math.prod(self.shape)

    @property
    def norm_size(self) -> int:
        return 3 if self.kind == "image" else self.shape[0]

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape), "mean": list(self.mean),
                "std": list(self.std), "description": self.description}

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        try:
            return cls(str(d["name"]), tuple(d["shape"]), str(d.get("kind", "vector")), tuple(d.get("mean", ())),
                       tuple(d.get("std", ())), str(d.get("description", "")))
        except (KeyError, TypeError) as exc:
            raise SpecError(f"malformed input spec {d!r}: {exc}") from None

    def with_normalization(self, mean, std) -> "InputSpec":
        """Copy with new normalisation (e.g. statistics measured on a training set)."""
        return InputSpec(self.name, self.shape, self.kind, tuple(np.ravel(mean)), tuple(np.ravel(std)), self.description)


@dataclass(frozen=True)
class ActionSpec:
    """Output of the policy: ``motors`` (4 x u in [0, 1]) or ``ctbr`` (thrust fraction + rates)."""

    mode: str = "motors"
    max_rate: float = 0.0  # rad/s, bound of |p|, |q|, |r| in ctbr mode
    names: tuple[str, ...] = field(default=(), compare=False)
    # thrust outputs relative to this input (all 4 rotors in motors mode, the collective in ctbr)
    thrust_reference: str = "none"
    thrust_reference_form: str = "scaled"   # see the module docstring

    def __post_init__(self) -> None:
        if self.mode not in ACTION_MODES:
            raise SpecError(f"action mode must be one of {ACTION_MODES}, got {self.mode!r}")
        if self.thrust_reference not in THRUST_REFERENCES:
            raise SpecError(f"thrust_reference must be one of {THRUST_REFERENCES}, got {self.thrust_reference!r}")
        if self.thrust_reference_form not in REFERENCE_FORMS:
            raise SpecError(f"thrust_reference_form must be one of {REFERENCE_FORMS}, got {self.thrust_reference_form!r}")
        if self.thrust_reference_form == "linear" and self.thrust_reference == "none":
            raise SpecError("thrust_reference_form 'linear' needs a thrust reference")
        if self.thrust_reference_form == "mixer" and (self.mode != "motors" or self.thrust_reference == "none"):
            raise SpecError("thrust_reference_form 'mixer' needs action mode 'motors' and a thrust reference, "
                            f"got mode {self.mode!r} and reference {self.thrust_reference!r}")
        if self.mode == "ctbr" and not (math.isfinite(self.max_rate) and self.max_rate > 0):
            raise SpecError(f"ctbr needs max_rate > 0 (rad/s), got {self.max_rate}")
        object.__setattr__(self, "max_rate", float(self.max_rate))
        object.__setattr__(self, "names", MOTOR_NAMES if self.mode == "motors" else CTBR_NAMES)

    @property
    def dim(self) -> int:
        return 4

    @property
    def thrust_outputs(self) -> int:
        """How many leading outputs are thrusts in [0, 1] (the ones a reference applies to)."""
        return 4 if self.mode == "motors" else 1

    def to_dict(self) -> dict:
        return {"mode": self.mode, "max_rate": self.max_rate, "names": list(self.names),
                "thrust_reference": self.thrust_reference, "thrust_reference_form": self.thrust_reference_form,
                "units": "u in [0,1]" if self.mode == "motors" else "thrust fraction [0,1], rates rad/s FLU"}

    @classmethod
    def from_dict(cls, d: dict) -> "ActionSpec":
        try:
            # files written before thrust references existed have none
            return cls(str(d["mode"]), float(d.get("max_rate", 0.0)),
                       thrust_reference=str(d.get("thrust_reference", "none")),
                       thrust_reference_form=str(d.get("thrust_reference_form", "scaled")))
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(f"malformed action spec {d!r}: {exc}") from None
