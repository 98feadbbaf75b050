"""Neuron wirings for liquid networks, stored as explicit signed adjacency matrices.

A wiring says which neuron may talk to which (and with what polarity). It is built completely
when it is created (no later ``build()`` that mutates it, unlike ``ncps``), its arrays are
read-only, and it round-trips through a plain ``dict`` of numpy arrays so that the model file
carries the exact masks a policy was trained with; the generator seed is provenance only.

Neuron order is layer order: for an NCP ``[inter..., command..., motor...]``, so the motor
(output) neurons are always the *last* ``output_size`` neurons and a layered cell's state is the
concatenation of its layers. This module is numpy-only (the torch-free runtime needs it).

Conventions: ``sensory[i, j]`` is the synapse from input feature ``i`` to neuron ``j``;
``adjacency[i, j]`` the synapse from neuron ``i`` to neuron ``j``; values in {-1, 0, +1}
(0 = no synapse, the sign is the synapse polarity, used by LTC to initialise reversal potentials).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Wiring", "ncp_wiring", "fully_connected_wiring", "WiringError"]


class WiringError(ValueError):
    """A wiring that is inconsistent or cannot be built from the given sizes."""


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.int8, copy=True)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Wiring:
    """Immutable signed connectivity of a liquid network.

    ``layer_sizes`` partitions the neurons into consecutive layers (one layer for a dense
    wiring); ``layer_names`` names them (``inter``, ``command``, ``motor`` for an NCP).
    """

    sensory: np.ndarray
    adjacency: np.ndarray
    layer_sizes: tuple[int, ...]
    output_size: int
    kind: str = "custom"
    layer_names: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        sensory = _frozen(self.sensory)
        adjacency = _frozen(self.adjacency)
        object.__setattr__(self, "sensory", sensory)
        object.__setattr__(self, "adjacency", adjacency)
        object.__setattr__(self, "layer_sizes", tuple(int(s) for s in self.layer_sizes))
        if not self.layer_names:
            object.__setattr__(self, "layer_names", tuple(f"layer{i}" for i in range(len(self.layer_sizes))))
        n = adjacency.shape[0]
        if sensory.ndim != 2 or adjacency.ndim != 2 or adjacency.shape != (n, n) or sensory.shape[1] != n:
            raise WiringError(
                f"wiring shapes disagree: sensory {sensory.shape}, adjacency {adjacency.shape} "
                "(want (inputs, N) and (N, N))"
            )
        if sum(self.layer_sizes) != n or min(self.layer_sizes, default=0) < 1:
            raise WiringError(f"layer sizes {self.layer_sizes} do not partition {n} neurons")
        if len(self.layer_names) != len(self.layer_sizes):
            raise WiringError("one layer name per layer is required")
        if not 1 <= self.output_size <= n:
            raise WiringError(f"output_size {self.output_size} must be in [1, {n}]")
        if not (np.isin(sensory, (-1, 0, 1)).all() and np.isin(adjacency, (-1, 0, 1)).all()):
            raise WiringError("wiring entries must be -1, 0 or +1")

    # -- sizes -------------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return int(self.sensory.shape[0])

    @property
    def units(self) -> int:
        return int(self.adjacency.shape[0])

    @property
    def num_layers(self) -> int:
        return len(self.layer_sizes)

    def layer_slice(self, layer: int) -> slice:
        start = sum(self.layer_sizes[:layer])
        return slice(start, start + self.layer_sizes[layer])

    @property
    def output_slice(self) -> slice:
        return slice(self.units - self.output_size, self.units)

    def synapse_count(self) -> int:
        return int(np.count_nonzero(self.adjacency) + np.count_nonzero(self.sensory))

    # -- masks for layered cells ---------------------------------------------------------------
    def layer_input_mask(self, layer: int) -> np.ndarray:
        """0/1 mask (inputs_of_layer, layer_size): what a layer hears from the layer below.

        Layer 0 hears the sensory inputs; layer ``l`` hears layer ``l-1``. Synapses that skip a
        layer cannot be expressed by a layered cell, so they are rejected.
        """
        cur = self.layer_slice(layer)
        if layer == 0:
            block = self.sensory[:, cur]
        else:
            block = self.adjacency[self.layer_slice(layer - 1), cur]
        return (block != 0).astype(np.float32)

    def layer_recurrent_mask(self, layer: int, self_connections: bool = True) -> np.ndarray:
        """0/1 mask (layer_size, layer_size) of synapses inside a layer (plus each neuron's own
        state when ``self_connections``: the CfC analogue of a membrane's memory)."""
        cur = self.layer_slice(layer)
        mask = (self.adjacency[cur, cur] != 0).astype(np.float32)
        if self_connections:
            np.fill_diagonal(mask, 1.0)
        return mask

    def cfc_mask(self, layer: int, mode: str = "default", mask_mode: str = "strict") -> np.ndarray:
        """0/1 mask of a CfC layer's stacked weight, (blocks * H, in + H) in ``nn.Linear`` layout.

        ``strict``: every block (f1, f2, t_a, t_b) follows the wiring, inside the layer too (plus
        each neuron's own state). ``ncps``: as ``ncps`` 1.0.1, only f1/f2 masked and only on the
        input side. ``pure`` mode has a single block.
        """
        inp = self.layer_input_mask(layer)
        size = self.layer_sizes[layer]
        if mask_mode == "strict":
            strict = np.concatenate([inp, self.layer_recurrent_mask(layer, True)], 0).T
            blocks = [strict] * (1 if mode == "pure" else 4)
        elif mask_mode == "ncps":
            ff = np.concatenate([inp, np.ones((size, size), np.float32)], 0).T
            blocks = [ff] if mode == "pure" else [ff, ff, np.ones_like(ff), np.ones_like(ff)]
        else:
            raise WiringError(f"unknown mask_mode {mask_mode!r}")
        return np.ascontiguousarray(np.concatenate(blocks, 0), dtype=np.float32)

    def check_layered(self) -> None:
        """Raise if a synapse skips layers or points backwards (a layered CfC cannot run it)."""
        allowed = np.zeros((self.units, self.units), dtype=bool)
        for layer in range(self.num_layers):
            cur = self.layer_slice(layer)
            allowed[cur, cur] = True
            if layer > 0:
                allowed[self.layer_slice(layer - 1), cur] = True
        bad = np.argwhere((self.adjacency != 0) & ~allowed)
        if len(bad):
            i, j = bad[0]
            raise WiringError(f"synapse {i}->{j} skips or reverses layers; a layered cell cannot use it")
        if np.count_nonzero(self.sensory[:, self.layer_sizes[0]:]):
            raise WiringError("sensory synapses must all end in the first layer")

    # -- serialisation -------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Arrays for the model file (names are relative; the file prefixes them)."""
        return {
            "sensory": np.array(self.sensory),
            "adjacency": np.array(self.adjacency),
            "layer_sizes": np.asarray(self.layer_sizes, dtype=np.int32),
            "output_size": np.asarray([self.output_size], dtype=np.int32),
        }

    def describe(self) -> dict:
        """JSON-friendly description (no masks): kind, layers, generator parameters."""
        return {
            "kind": self.kind,
            "layer_names": list(self.layer_names),
            "layer_sizes": list(self.layer_sizes),
            "output_size": self.output_size,
            "input_size": self.input_size,
            "units": self.units,
            "synapses": self.synapse_count(),
            "params": dict(self.params),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], describe: dict | None = None) -> "Wiring":
        describe = describe or {}
        try:
            return cls(
                sensory=np.asarray(arrays["sensory"]),
                adjacency=np.asarray(arrays["adjacency"]),
                layer_sizes=tuple(int(x) for x in np.asarray(arrays["layer_sizes"]).ravel()),
                output_size=int(np.asarray(arrays["output_size"]).ravel()[0]),
                kind=str(describe.get("kind", "custom")),
                layer_names=tuple(describe.get("layer_names", ())),
                params=dict(describe.get("params", {})),
            )
        except KeyError as exc:
            raise WiringError(f"wiring array {exc.args[0]!r} is missing") from None

    def same_as(self, other: "Wiring") -> bool:
        return (
            np.array_equal(self.sensory, other.sensory)
            and np.array_equal(self.adjacency, other.adjacency)
            and self.layer_sizes == other.layer_sizes
            and self.output_size == other.output_size
        )

    # convenience constructors
    @classmethod
    def ncp(cls, *args, **kwargs) -> "Wiring":
        return ncp_wiring(*args, **kwargs)

    @classmethod
    def fully_connected(cls, *args, **kwargs) -> "Wiring":
        return fully_connected_wiring(*args, **kwargs)


# Alias so code can say ``FullyConnected(...)`` as in the NCP literature.
def FullyConnected(input_size: int, units: int, output_size: int | None = None, seed: int = 0) -> Wiring:  # noqa: N802
    """Dense wiring: see :func:`fully_connected_wiring`."""
    return fully_connected_wiring(input_size, units, output_size, seed=seed)


def NCP(input_size: int, **kwargs) -> Wiring:  # noqa: N802
    """NCP wiring: see :func:`ncp_wiring`."""
    return ncp_wiring(input_size, **kwargs)


def _polarity(rng: np.random.Generator, n: int | None = None):
    return rng.choice(np.array([-1, 1], dtype=np.int8), size=n)


def ncp_wiring(
    input_size: int,
    inter_neurons: int = 8,
    command_neurons: int = 7,
    motor_neurons: int = 4,
    sensory_fanout: int = 4,
    inter_fanout: int = 3,
    recurrent_command_synapses: int = 4,
    motor_fanin: int = 4,
    seed: int = 22222,
) -> Wiring:
    """Neural-circuit-policy wiring (Lechner et al. 2020): sensory -> inter -> command -> motor.

    Each sensory input projects to ``sensory_fanout`` distinct inter neurons, each inter neuron
    to ``inter_fanout`` distinct command neurons, each motor neuron receives ``motor_fanin``
    distinct command neurons, and ``recurrent_command_synapses`` random command->command synapses
    are added. Neurons left without input (or command neurons without output) get a few random
    synapses so that every neuron lies on a sensory->motor path. Polarity is random (+/-1).
    The result depends only on the arguments (``numpy.random.default_rng(seed)``).
    """
    sizes = dict(inter_neurons=inter_neurons, command_neurons=command_neurons, motor_neurons=motor_neurons)
    for name, value in {**sizes, "input_size": input_size}.items():
        if int(value) < 1:
            raise WiringError(f"{name} must be >= 1, got {value}")
    for name, value, limit, what in (
        ("sensory_fanout", sensory_fanout, inter_neurons, "inter"),
        ("inter_fanout", inter_fanout, command_neurons, "command"),
        ("motor_fanin", motor_fanin, command_neurons, "command"),
    ):
        if not 1 <= value <= limit:
            raise WiringError(f"{name}={value} must be in [1, {limit}] (there are {limit} {what} neurons)")
    if recurrent_command_synapses < 0:
        raise WiringError("recurrent_command_synapses must be >= 0")

    rng = np.random.default_rng(seed)
    n = inter_neurons + command_neurons + motor_neurons
    inter = np.arange(0, inter_neurons)
    command = np.arange(inter_neurons, inter_neurons + command_neurons)
    motor = np.arange(inter_neurons + command_neurons, n)
    sensory = np.zeros((input_size, n), dtype=np.int8)
    adjacency = np.zeros((n, n), dtype=np.int8)

    # sensory -> inter: fixed fan-out, then give every silent inter neuron some inputs.
    for src in range(input_size):
        dst = rng.choice(inter, size=sensory_fanout, replace=False)
        sensory[src, dst] = _polarity(rng, sensory_fanout)
    fanin = int(np.clip(input_size * sensory_fanout // inter_neurons, 1, input_size))
    for dst in inter[~sensory[:, inter].any(axis=0)]:
        src = rng.choice(input_size, size=fanin, replace=False)
        sensory[src, dst] = _polarity(rng, fanin)

    # inter -> command: fixed fan-out, then feed every silent command neuron.
    for src in inter:
        dst = rng.choice(command, size=inter_fanout, replace=False)
        adjacency[src, dst] = _polarity(rng, inter_fanout)
    fanin = int(np.clip(inter_neurons * inter_fanout // command_neurons, 1, inter_neurons))
    for dst in command[~adjacency[np.ix_(inter, command)].any(axis=0)]:
        src = rng.choice(inter, size=fanin, replace=False)
        adjacency[src, dst] = _polarity(rng, fanin)

    # command -> command: recurrent synapses (self-synapses allowed, as in the NCP paper).
    for _ in range(recurrent_command_synapses):
        src, dst = rng.choice(command), rng.choice(command)
        adjacency[src, dst] = _polarity(rng)

    # command -> motor: fixed fan-in, then give every command neuron at least one output.
    for dst in motor:
        src = rng.choice(command, size=motor_fanin, replace=False)
        adjacency[src, dst] = _polarity(rng, motor_fanin)
    fanout = int(np.clip(motor_neurons * motor_fanin // command_neurons, 1, motor_neurons))
    for src in command[~adjacency[np.ix_(command, motor)].any(axis=1)]:
        dst = rng.choice(motor, size=fanout, replace=False)
        adjacency[src, dst] = _polarity(rng, fanout)

    return Wiring(
        sensory=sensory,
        adjacency=adjacency,
        layer_sizes=(inter_neurons, command_neurons, motor_neurons),
        output_size=motor_neurons,
        kind="ncp",
        layer_names=("inter", "command", "motor"),
        params=dict(
            sizes,
            sensory_fanout=sensory_fanout,
            inter_fanout=inter_fanout,
            recurrent_command_synapses=recurrent_command_synapses,
            motor_fanin=motor_fanin,
            seed=int(seed),
        ),
    )


def fully_connected_wiring(input_size: int, units: int, output_size: int | None = None, seed: int = 0) -> Wiring:
    """Dense wiring: every input reaches every neuron, every neuron every neuron (self included).

    One layer; the outputs are the last ``output_size`` neurons (all of them by default).
    Polarities are random from ``seed`` (they only matter for LTC reversal potentials).
    """
    if input_size < 1 or units < 1:
        raise WiringError(f"input_size and units must be >= 1, got {input_size}, {units}")
    output_size = units if output_size is None else int(output_size)
    rng = np.random.default_rng(seed)
    return Wiring(
        sensory=_polarity(rng, (input_size, units)),
        adjacency=_polarity(rng, (units, units)),
        layer_sizes=(units,),
        output_size=output_size,
        kind="dense",
        layer_names=("all",),
        params=dict(units=units, output_size=output_size, seed=int(seed)),
    )
