"""``NetworkConfig``: every architectural knob of a policy network in one typed, JSON-able place.

The same object builds the torch network (training), describes the model in the model file, and
tells the torch-free runtime which tensors of which shapes to expect. Torch-free.

The default is the shipped hover policy's shape: vector inputs straight into a CfC with an NCP
wiring of 8 inter + 7 command + 4 motor neurons (19), whose motor neurons drive the 4 rotors
through a per-neuron affine head and a sigmoid (~1.7 k parameters with 22 input values).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from .spec import ActionSpec, InputSpec, SpecError

__all__ = ["NetworkConfig", "CORES", "WIRINGS", "HEADS", "ConfigError"]

CORES = ("cfc", "ltc", "gru", "mlp")
WIRINGS = ("ncp", "dense")
HEADS = ("auto", "affine", "linear")
IMAGE_NORMALIZATIONS = ("dataset", "per_frame")
IMAGE_OPPONENTS = ("none", "red", "red_normalized")
# the "red" channel is (R - max(G, B)) / (R + G + B + floor), pixel values in [0, 1]: the floor keeps
# dark pixels, whose chroma is mostly sensor noise, near 0
OPPONENT_FLOOR = 0.1
# per-frame normalisation divides by sqrt(var + floor^2) (pixel values in [0, 1]): a flat frame
# (lens cap, dark room) stays finite and its sensor noise is not blown up to unit variance
PER_FRAME_STD_FLOOR = 0.02


class ConfigError(ValueError):
    """A network configuration that cannot be built."""


@dataclass(frozen=True)
class NetworkConfig:
    inputs: tuple[InputSpec, ...]
    action: ActionSpec = field(default_factory=ActionSpec)
    control_period: float = 0.01  # s, nominal policy period (the runtime still takes the real dt)
    core: str = "cfc"
    # liquid wiring
    wiring: str = "ncp"
    inter_neurons: int = 8
    command_neurons: int = 7
    motor_neurons: int = 4
    sensory_fanout: int = 4
    inter_fanout: int = 3
    recurrent_command_synapses: int = 4
    motor_fanin: int = 4
    wiring_seed: int = 22222
    units: int = 19  # dense wiring size; its outputs are the last ``motor_neurons`` neurons
    # cells
    cfc_mode: str = "default"
    cfc_mask_mode: str = "strict"
    ltc_ode_unfolds: int = 6
    # encoders (vector: Linear + tanh over the concatenated normalised vectors; 0 = none)
    vector_encoder_units: int = 0
    image_channels: tuple[int, ...] = (8, 16, 16)
    image_kernels: tuple[int, ...] = (5, 3, 3)
    image_strides: tuple[int, ...] = (2, 2, 2)
    image_features: int = 32
    # "dataset": (x - mean) / std with the training set's per-channel statistics (InputSpec);
    # "per_frame": each frame by its own per-channel mean and std, so the encoder never sees
    # exposure, contrast or white balance (an affine change of a channel cancels exactly)
    image_normalization: str = "dataset"
    # a fourth input channel that marks red pixels (a linear first conv can weigh R against G and
    # B but not take their max; a red target on a textured wall of random colours is what this is
    # for, README, the walls diagnosis):
    # "red": the raw chroma toward red, (R - max(G, B)) / (R + G + B + floor), in (-1, 1). Measured:
    #   contrast and white balance change it, so it undid what per-frame normalisation bought
    #   (low contrast 93 -> 30 %, colour shift 89 -> 64 %, config/experiments/visual_red.yaml);
    # "red_normalized": R' - max(G', B') of the normalised channels (per frame: each channel's gain
    #   and offset cancel before the max, so the channel keeps that invariance);
    # "none": RGB only
    image_opponent: str = "none"
    # baselines
    gru_units: int = 16
    mlp_hidden: tuple[int, ...] = (64, 64)
    mlp_history: int = 3
    # head: "affine" = per-output scale + bias (needs core outputs == 4), "linear" = dense,
    # "auto" = affine when the core has exactly 4 outputs, else linear
    head: str = "auto"

    def __post_init__(self) -> None:
        inputs = tuple(InputSpec.from_dict(i) if isinstance(i, dict) else i for i in self.inputs)
        object.__setattr__(self, "inputs", inputs)
        if isinstance(self.action, dict):
            object.__setattr__(self, "action", ActionSpec.from_dict(self.action))
        for name in ("image_channels", "image_kernels", "image_strides", "mlp_hidden"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        self.validate()

    # -- checks ------------------------------------------------------------------------------
    def validate(self) -> None:
        if not self.inputs:
            raise ConfigError("a policy needs at least one input")
        names = [i.name for i in self.inputs]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate input names in {names}")
        if sum(i.kind == "image" for i in self.inputs) > 1:
            raise ConfigError("at most one image input is supported")
        if self.core not in CORES:
            raise ConfigError(f"core must be one of {CORES}, got {self.core!r}")
        if self.wiring not in WIRINGS:
            raise ConfigError(f"wiring must be one of {WIRINGS}, got {self.wiring!r}")
        if self.head not in HEADS:
            raise ConfigError(f"head must be one of {HEADS}, got {self.head!r}")
        if not (self.control_period > 0):
            raise ConfigError("control_period must be > 0 s")
        if self.wiring == "dense" and not 1 <= self.motor_neurons <= self.units:
            raise ConfigError("dense wiring needs 1 <= motor_neurons <= units")
        if self.ltc_ode_unfolds < 1:
            raise ConfigError("ltc_ode_unfolds must be >= 1")
        if self.mlp_history < 1 or not self.mlp_hidden or min(self.mlp_hidden) < 1:
            raise ConfigError("mlp_history must be >= 1 and mlp_hidden non-empty and positive")
        if self.vector_encoder_units < 0 or self.gru_units < 1:
            raise ConfigError("vector_encoder_units must be >= 0 and gru_units >= 1")
        if self.vector_encoder_units and not self.vector_inputs:
            raise ConfigError("vector_encoder_units set but there is no vector input")
        if self.image_input is not None:
            if not (len(self.image_channels) == len(self.image_kernels) == len(self.image_strides) >= 1):
                raise ConfigError("image_channels, image_kernels and image_strides need the same length (>= 1)")
            self.conv_output_shape()  # raises when the image is too small
        if self.image_normalization not in IMAGE_NORMALIZATIONS:
            raise ConfigError(f"image_normalization must be one of {IMAGE_NORMALIZATIONS}, got {self.image_normalization!r}")
        if self.image_opponent not in IMAGE_OPPONENTS:
            raise ConfigError(f"image_opponent must be one of {IMAGE_OPPONENTS}, got {self.image_opponent!r}")
        ref = self.action.thrust_reference
        if ref != "none":
            spec = next((i for i in self.vector_inputs + self.reference_inputs if i.name == ref), None)
            if spec is None or spec.dim != 1:
                raise ConfigError(f"thrust_reference {ref!r} needs a 1-value input named {ref!r}; "
                                  f"the inputs are {[i.name for i in self.inputs]}")
        stray = [i.name for i in self.reference_inputs if i.name != ref]
        if stray:
            raise ConfigError(f"reference inputs {stray} are read only as the thrust reference, which is {ref!r}")
        if self.head == "affine" and self.core_output_size != self.action.dim:
            raise ConfigError(f"head='affine' needs {self.action.dim} core outputs, the core has {self.core_output_size}")

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def vector_inputs(self) -> tuple[InputSpec, ...]:
        return tuple(i for i in self.inputs if i.kind == "vector")

    @property
    def reference_inputs(self) -> tuple[InputSpec, ...]:
        """Inputs the head reads as its thrust reference, outside the encoder (kind ``reference``)."""
        return tuple(i for i in self.inputs if i.kind == "reference")

    @property
    def image_input(self) -> InputSpec | None:
        return next((i for i in self.inputs if i.kind == "image"), None)

    @property
    def vector_size(self) -> int:
        return sum(i.dim for i in self.vector_inputs)

    @property
    def image_input_channels(self) -> int:
        """Channels the first conv reads: RGB, plus the opponent channel when there is one."""
        return 3 + (self.image_opponent != "none")

    def conv_output_shape(self) -> tuple[int, int, int]:
        """(H, W, C) after the conv stack (valid padding)."""
        img = self.image_input
        if img is None:
            raise ConfigError("no image input")
        h, w = img.shape[0], img.shape[1]
        for k, s in zip(self.image_kernels, self.image_strides):
            if k < 1 or s < 1:
                raise ConfigError("image kernels and strides must be >= 1")
            h, w = (h - k) // s + 1, (w - k) // s + 1
            if h < 1 or w < 1:
                raise ConfigError(f"image {img.shape[:2]} is too small for kernels {self.image_kernels}")
        return h, w, self.image_channels[-1]

    @property
    def core_input_size(self) -> int:
        size = self.vector_encoder_units or self.vector_size
        if self.image_input is not None:
            size += self.image_features
        return size

    @property
    def liquid_units(self) -> int:
        if self.wiring == "ncp":
            return self.inter_neurons + self.command_neurons + self.motor_neurons
        return self.units

    @property
    def core_output_size(self) -> int:
        if self.core in ("cfc", "ltc"):
            return self.motor_neurons
        if self.core == "gru":
            return self.gru_units
        return self.mlp_hidden[-1]

    @property
    def head_kind(self) -> str:
        if self.head != "auto":
            return self.head
        return "affine" if self.core_output_size == self.action.dim else "linear"

    @property
    def state_size(self) -> int:
        if self.core in ("cfc", "ltc"):
            return self.liquid_units
        if self.core == "gru":
            return self.gru_units
        return (self.mlp_history - 1) * self.core_input_size

    # -- serialisation -------------------------------------------------------------------------
    def architecture_dict(self) -> dict:
        """The knobs only (inputs/action are stored separately in the model file)."""
        out = {}
        for f in fields(self):
            if f.name in ("inputs", "action", "control_period"):
                continue
            v = getattr(self, f.name)
            out[f.name] = list(v) if isinstance(v, tuple) else v
        return out

    def to_dict(self) -> dict:
        d = self.architecture_dict()
        d["inputs"] = [i.to_dict() for i in self.inputs]
        d["action"] = self.action.to_dict()
        d["control_period"] = self.control_period
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown network config keys: {sorted(unknown)}")
        try:
            return cls(**d)
        except (TypeError, SpecError) as exc:
            raise ConfigError(f"bad network config: {exc}") from None

    def replace(self, **changes) -> "NetworkConfig":
        return replace(self, **changes)

    def as_dict(self) -> dict:  # pragma: no cover - convenience alias
        return asdict(self)
