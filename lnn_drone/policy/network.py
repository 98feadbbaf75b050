"""The torch policy network: normalise -> encoders -> core -> head, for training and export.

Cores share one step interface (``forward(x, h, dt) -> (output, new_state, aux)``) so that the
liquid networks and the GRU / MLP baselines train, evaluate and export the same way:

* ``cfc`` / ``ltc``: liquid cells over an NCP or dense wiring (:mod:`lnn_drone.liquid`);
* ``gru``: a GRU cell (ignores dt, as a discrete-time baseline should);
* ``mlp``: a feed-forward net over the last ``mlp_history`` encoded inputs (its "state" is that
  shift register, so it needs no special casing anywhere).

Every core's state is one flat (B, S) tensor, which is what the ONNX graph and the numpy
runtime carry between steps.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..liquid.cfc import CfCCell
from ..liquid.ltc import LTCCell
from ..liquid.rnn import SequenceOutput, run_sequence
from ..liquid.wiring import Wiring
from .architecture import LIQUID_PREFIX, build_wiring, check_wiring, expected_shapes
from .config import OPPONENT_FLOOR, PER_FRAME_STD_FLOOR, NetworkConfig
from .spec import MIXER_SIGNS, REFERENCE_CLIP

__all__ = ["NetworkConfig", "PolicyNetwork", "build_policy_network", "GRUCore", "MLPCore"]


class GRUCore(nn.Module):
    def __init__(self, input_size: int, units: int) -> None:
        super().__init__()
        self.cell = nn.GRUCell(input_size, units)
        self.state_size = self.output_size = units

    def forward(self, x, h, dt):
        h = self.cell(x, h)
        return h, h, None


class MLPCore(nn.Module):
    """tanh MLP over [x(t-k+1), ..., x(t)]; the state holds the k-1 previous inputs."""

    def __init__(self, input_size: int, hidden: tuple[int, ...], history: int) -> None:
        super().__init__()
        self.input_size, self.history = input_size, history
        sizes = [input_size * history, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.state_size = (history - 1) * input_size
        self.output_size = hidden[-1]

    def forward(self, x, h, dt):
        window = torch.cat([h, x], 1)
        y = window
        for layer in self.layers:
            y = torch.tanh(layer(y))
        return y, window[:, self.input_size :], None


class ConvEncoder(nn.Module):
    """Small strided-conv encoder for a uint8 HxWx3 image -> ``features`` values in (-1, 1)."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        spec = config.image_input
        convs, c_in = [], config.image_input_channels
        for c, k, s in zip(config.image_channels, config.image_kernels, config.image_strides):
            convs.append(nn.Conv2d(c_in, c, k, stride=s))
            c_in = c
        self.convs = nn.ModuleList(convs)
        h, w, c = config.conv_output_shape()
        self.fc = nn.Linear(h * w * c, config.image_features)
        self.per_frame = config.image_normalization == "per_frame"
        self.opponent = config.image_opponent
        self.register_buffer("mean", torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("inv_std", 1.0 / torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).to(torch.float32) * (1.0 / 255.0)
        red = None
        if self.opponent == "red":  # from the raw pixels, before any normalisation
            red = (x[:, :1] - torch.maximum(x[:, 1:2], x[:, 2:3])) / (x.sum(1, keepdim=True) + OPPONENT_FLOOR)
        if self.per_frame:
            mu = x.mean(dim=(2, 3), keepdim=True)
            var = (x - mu).square().mean(dim=(2, 3), keepdim=True)
            x = (x - mu) * torch.rsqrt(var + PER_FRAME_STD_FLOOR**2)
        else:
            x = (x - self.mean) * self.inv_std
        if self.opponent == "red_normalized":
            red = x[:, :1] - torch.maximum(x[:, 1:2], x[:, 2:3])
        if red is not None:
            x = torch.cat([x, red], 1)
        for conv in self.convs:
            x = torch.relu(conv(x))
        return torch.tanh(self.fc(x.flatten(1)))


class AffineHead(nn.Module):
    """Per-output scale and bias: motor neuron i drives rotor i (keeps the NCP readable)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(size))
        self.bias = nn.Parameter(torch.zeros(size))

    def forward(self, x):
        return x * self.scale + self.bias


class PolicyNetwork(nn.Module):
    """Policy network built from a :class:`NetworkConfig` (optionally with a given wiring)."""

    def __init__(self, config: NetworkConfig, wiring: Wiring | None = None) -> None:
        super().__init__()
        self.config = config
        self.wiring = wiring if wiring is not None else build_wiring(config)
        if self.wiring is not None:
            check_wiring(config, self.wiring)
        vec = config.vector_inputs
        self.vector_names = [s.name for s in vec]
        self.image_name = config.image_input.name if config.image_input is not None else None
        if vec:
            mean = np.concatenate([s.mean for s in vec]).astype(np.float32)
            std = np.concatenate([s.std for s in vec]).astype(np.float32)
            self.register_buffer("vec_mean", torch.from_numpy(mean), persistent=False)
            self.register_buffer("vec_inv_std", torch.from_numpy(1.0 / std), persistent=False)
        self.vector_encoder = nn.Linear(config.vector_size, config.vector_encoder_units) if config.vector_encoder_units else None
        self.image_encoder = ConvEncoder(config) if self.image_name else None

        f = config.core_input_size
        if config.core == "cfc":
            self.core = CfCCell(self.wiring, config.cfc_mode, config.cfc_mask_mode)
        elif config.core == "ltc":
            self.core = LTCCell(self.wiring, config.ltc_ode_unfolds, input_mapping="affine", output_mapping="none")
        elif config.core == "gru":
            self.core = GRUCore(f, config.gru_units)
        else:
            self.core = MLPCore(f, config.mlp_hidden, config.mlp_history)
        a = config.action
        self.head = AffineHead(a.dim) if config.head_kind == "affine" else nn.Linear(config.core_output_size, a.dim)
        self.max_rate = a.max_rate
        self.register_buffer("mixer_signs", torch.tensor(MIXER_SIGNS, dtype=torch.float32), persistent=False)

    # -- pieces ------------------------------------------------------------------------------
    @property
    def state_size(self) -> int:
        return self.core.state_size

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(batch, self.state_size)

    def encode(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Inputs with a leading batch dimension (any number of leading dims is fine)."""
        lead = None
        parts = []
        if self.vector_names:
            x = torch.cat([inputs[n].to(torch.float32) for n in self.vector_names], -1)
            lead = x.shape[:-1]
            x = (x - self.vec_mean) * self.vec_inv_std
            if self.vector_encoder is not None:
                x = torch.tanh(self.vector_encoder(x))
            parts.append(x)
        if self.image_name:
            img = inputs[self.image_name]
            lead = img.shape[:-3]
            parts.append(self.image_encoder(img.reshape(-1, *img.shape[-3:])).reshape(*lead, -1))
        return torch.cat(parts, -1) if len(parts) > 1 else parts[0]

    def act(self, core_out: torch.Tensor, inputs: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Head + output squashing: motors -> sigmoid; ctbr -> [sigmoid, max_rate * tanh].

        With a thrust reference h (a raw input), each thrust is ``sigmoid(logit(h) + z / (1 - h))``
        (form ``scaled``), ``sigmoid(logit(h) + z)`` (``offset``), ``clip(h (1 + z), 0, 1)``
        (``linear``) or the ``mixer`` form (see :mod:`lnn_drone.policy.spec`): hover is built in,
        the network learns the deviation."""
        z = self.head(core_out)
        a = self.config.action
        n = a.thrust_outputs
        zt = z[..., :n]
        if a.thrust_reference != "none":
            if inputs is None:
                raise ValueError(f"a thrust reference needs the raw input {a.thrust_reference!r}")
            h = inputs[a.thrust_reference][..., :1].to(torch.float32).clamp(*REFERENCE_CLIP)
            if a.thrust_reference_form == "mixer":
                f = h * (1.0 + zt @ self.mixer_signs.T)
                f = f - torch.relu(f.amax(-1, keepdim=True) - 1.0)  # shift the whole so the top rotor fits
                f = f + torch.relu(-f.amin(-1, keepdim=True))       # and the bottom one (then clip)
                return f.clamp(0.0, 1.0)
            if a.thrust_reference_form == "linear":
                f = h * (1.0 + zt)
                # straight through in training: the clipped value flies, the gradient sees the line
                thrust = f + (f.clamp(0.0, 1.0) - f).detach() if self.training else f.clamp(0.0, 1.0)
            else:
                thrust = torch.sigmoid(torch.logit(h) + (zt / (1.0 - h) if a.thrust_reference_form == "scaled" else zt))
        else:
            thrust = torch.sigmoid(zt)
        if a.mode == "motors":
            return thrust
        return torch.cat([thrust, self.max_rate * torch.tanh(z[..., 1:])], -1)

    # -- running -------------------------------------------------------------------------------
    def step(self, inputs: dict[str, torch.Tensor], state: torch.Tensor, dt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One control step for a batch: ``inputs`` (B, ...), ``state`` (B, S), ``dt`` (B,)."""
        x = self.encode(inputs)
        out, new_state, _ = self.core(x, state, dt)
        return self.act(out, inputs), new_state

    def forward(
        self,
        inputs: dict[str, torch.Tensor],
        dt: torch.Tensor | float,
        state: torch.Tensor | None = None,
        reset: torch.Tensor | None = None,
        return_states: bool = False,
    ) -> tuple[torch.Tensor, SequenceOutput]:
        """Sequence mode for training: inputs (B, T, ...) -> actions (B, T, 4) and the core run."""
        x = self.encode(inputs)
        seq = run_sequence(self.core, x, dt, state, reset, return_states)
        return self.act(seq.outputs, inputs), seq

    # -- bookkeeping ---------------------------------------------------------------------------
    def param_counts(self) -> dict[str, int]:
        """Trainable tensors (allocated), the core's share, and the entries the masks keep."""
        total = sum(p.numel() for p in self.parameters())
        liquid = sum(p.numel() for p in self.core.parameters())
        effective = total
        if isinstance(self.core, CfCCell):
            effective -= sum(int((l.mask == 0).sum()) for l in self.core.layers)
        elif isinstance(self.core, LTCCell):
            effective -= 4 * int((self.core.mask == 0).sum()) + 4 * int((self.core.sensory_mask == 0).sum())
        return {"total": total, "liquid": liquid, "effective": effective}

    def check_contract(self) -> None:
        """Assert that ``state_dict`` names/shapes are exactly :func:`expected_shapes`."""
        got = {k: tuple(v.shape) for k, v in self.state_dict().items()}
        want = expected_shapes(self.config, self.wiring)
        if got != want:
            raise AssertionError(f"state_dict differs from the contract: got {got}, want {want}")

    @property
    def liquid_prefix(self) -> str:
        return LIQUID_PREFIX


def build_policy_network(config: NetworkConfig, wiring: Wiring | None = None, seed: int | None = None) -> PolicyNetwork:
    """Build the network of ``config`` (weights from ``torch.manual_seed(seed)`` if given)."""
    if seed is not None:
        torch.manual_seed(seed)
    net = PolicyNetwork(config, wiring)
    net.check_contract()
    return net

