"""The tensor contract between the torch network, the model file and the numpy runtime.

``expected_shapes(config, wiring)`` lists every weight tensor a network of that configuration
owns, by its ``state_dict`` name, with its shape. The model loader checks a file against it and
the numpy runtime reads exactly these names; a test checks that the torch network's
``state_dict`` matches it. Torch-free.
"""
from __future__ import annotations

from ..liquid.wiring import Wiring, fully_connected_wiring, ncp_wiring
from .config import ConfigError, NetworkConfig

__all__ = ["build_wiring", "expected_shapes", "LIQUID_PREFIX", "WIRING_PREFIX"]

LIQUID_PREFIX = "core."
WIRING_PREFIX = "wiring."


def build_wiring(config: NetworkConfig) -> Wiring | None:
    """The wiring a configuration generates (None for the GRU/MLP baselines)."""
    if config.core not in ("cfc", "ltc"):
        return None
    try:
        if config.wiring == "ncp":
            return ncp_wiring(
                config.core_input_size,
                inter_neurons=config.inter_neurons,
                command_neurons=config.command_neurons,
                motor_neurons=config.motor_neurons,
                sensory_fanout=config.sensory_fanout,
                inter_fanout=config.inter_fanout,
                recurrent_command_synapses=config.recurrent_command_synapses,
                motor_fanin=config.motor_fanin,
                seed=config.wiring_seed,
            )
        return fully_connected_wiring(config.core_input_size, config.units, config.motor_neurons, seed=config.wiring_seed)
    except ValueError as exc:
        raise ConfigError(f"cannot build the {config.wiring} wiring: {exc}") from None


def check_wiring(config: NetworkConfig, wiring: Wiring) -> None:
    """Raise ConfigError if a (loaded) wiring does not fit the configuration's sizes."""
    if wiring.input_size != config.core_input_size:
        raise ConfigError(f"wiring has {wiring.input_size} inputs, the network feeds it {config.core_input_size}")
    if wiring.units != config.liquid_units or wiring.output_size != config.motor_neurons:
        raise ConfigError(
            f"wiring has {wiring.units} neurons / {wiring.output_size} outputs, the config says "
            f"{config.liquid_units} / {config.motor_neurons}"
        )


def expected_shapes(config: NetworkConfig, wiring: Wiring | None = None) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every trainable tensor of the network."""
    shapes: dict[str, tuple[int, ...]] = {}
    if config.vector_encoder_units:
        shapes["vector_encoder.weight"] = (config.vector_encoder_units, config.vector_size)
        shapes["vector_encoder.bias"] = (config.vector_encoder_units,)
    if config.image_input is not None:
        c_in = config.image_input_channels
        for i, (c, k) in enumerate(zip(config.image_channels, config.image_kernels)):
            shapes[f"image_encoder.convs.{i}.weight"] = (c, c_in, k, k)
            shapes[f"image_encoder.convs.{i}.bias"] = (c,)
            c_in = c
        h, w, c = config.conv_output_shape()
        shapes["image_encoder.fc.weight"] = (config.image_features, h * w * c)
        shapes["image_encoder.fc.bias"] = (config.image_features,)

    p = LIQUID_PREFIX
    f = config.core_input_size
    if config.core == "cfc":
        wiring = wiring or build_wiring(config)
        blocks = 1 if config.cfc_mode == "pure" else 4
        in_features = f
        for layer, size in enumerate(wiring.layer_sizes):
            shapes[f"{p}layers.{layer}.weight"] = (blocks * size, in_features + size)
            shapes[f"{p}layers.{layer}.bias"] = (blocks * size,)
            if config.cfc_mode == "pure":
                shapes[f"{p}layers.{layer}.w_tau"] = (size,)
                shapes[f"{p}layers.{layer}.A"] = (size,)
            in_features = size
    elif config.core == "ltc":
        n = config.liquid_units
        for name in ("gleak", "vleak", "cm"):
            shapes[p + name] = (n,)
        for name in ("sigma", "mu", "w", "erev"):
            shapes[p + name] = (n, n)
        for name in ("sensory_sigma", "sensory_mu", "sensory_w", "sensory_erev"):
            shapes[p + name] = (f, n)
        shapes[p + "input_w"] = (f,)
        shapes[p + "input_b"] = (f,)
    elif config.core == "gru":
        u = config.gru_units
        shapes.update({p + "cell.weight_ih": (3 * u, f), p + "cell.weight_hh": (3 * u, u),
                       p + "cell.bias_ih": (3 * u,), p + "cell.bias_hh": (3 * u,)})
    else:
        in_features = f * config.mlp_history
        for i, units in enumerate(config.mlp_hidden):
            shapes[f"{p}layers.{i}.weight"] = (units, in_features)
            shapes[f"{p}layers.{i}.bias"] = (units,)
            in_features = units

    if config.head_kind == "affine":
        shapes["head.scale"] = (config.action.dim,)
        shapes["head.bias"] = (config.action.dim,)
    else:
        shapes["head.weight"] = (config.action.dim, config.core_output_size)
        shapes["head.bias"] = (config.action.dim,)
    return shapes
