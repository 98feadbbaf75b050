"""Policy network: config -> torch network, tensor contract, sizes, heads, sequence == steps."""
import numpy as np
import pytest
import torch

from lnn_drone.policy.architecture import expected_shapes
from lnn_drone.policy.config import ConfigError, NetworkConfig
from lnn_drone.policy.network import build_policy_network
from lnn_drone.policy.spec import ActionSpec, InputSpec, SpecError

VEC = (InputSpec.vector("imu", 6), InputSpec.vector("goal_error", 16))
CAM = InputSpec.image("image", 32, 40)

VARIANTS = {
    "cfc-ncp": dict(),
    "cfc-dense": dict(wiring="dense", units=10),
    "cfc-pure": dict(cfc_mode="pure"),
    "ltc-ncp": dict(core="ltc", ltc_ode_unfolds=3),
    "gru": dict(core="gru"),
    "mlp": dict(core="mlp", mlp_hidden=(32, 16)),
    "encoded+camera": dict(vector_encoder_units=8, image_features=12),
    "ctbr": dict(action=ActionSpec("ctbr", max_rate=7.0), head="linear"),
}


def config(name):
    kw = dict(VARIANTS[name])
    inputs = VEC + ((CAM,) if "camera" in name else ())
    return NetworkConfig(inputs=inputs, **kw)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_contract_and_shapes(name):
    cfg = config(name)
    net = build_policy_network(cfg, seed=0)  # checks state_dict == expected_shapes
    assert set(net.state_dict()) == set(expected_shapes(cfg, net.wiring))
    assert net.state_size == cfg.state_size
    B, T = 3, 5
    inputs = {s.name: (torch.randint(0, 256, (B, T, *s.shape), dtype=torch.uint8) if s.kind == "image"
                       else torch.randn(B, T, s.dim)) for s in cfg.inputs}
    actions, seq = net(inputs, torch.rand(B, T) * 0.02)
    assert actions.shape == (B, T, 4) and torch.isfinite(actions).all()
    # the sequence pass equals stepping one control period at a time
    dt = torch.full((B, T), 0.01)
    actions, _ = net(inputs, dt)
    state = net.initial_state(B)
    for t in range(T):
        a, state = net.step({k: v[:, t] for k, v in inputs.items()}, state, dt[:, t])
        assert torch.allclose(a, actions[:, t], atol=1e-6)


def test_action_ranges():
    for name in ("cfc-ncp", "ctbr"):
        cfg = config(name)
        net = build_policy_network(cfg, seed=1)
        with torch.no_grad():
            net.head.bias.add_(torch.tensor([30.0, -30.0, 30.0, 0.0]))  # drive into saturation
        a, _ = net({"imu": torch.randn(2, 4, 6) * 10, "goal_error": torch.randn(2, 4, 16) * 10}, 0.01)
        if cfg.action.mode == "motors":
            assert ((a >= 0) & (a <= 1)).all()
        else:
            assert ((a[..., 0] >= 0) & (a[..., 0] <= 1)).all()
            assert (a[..., 1:].abs() <= 7.0 + 1e-6).all() and (a[..., 1:].abs() > 6.9).any()


def test_hover_policy_size_target():
    """The shipped hover policy shape: imu + ~16 odometry-error values, CfC-NCP of 19 neurons,
    motors output, <= 2,100 parameters."""
    cfg = NetworkConfig(inputs=VEC)
    net = build_policy_network(cfg)
    counts = net.param_counts()
    assert cfg.liquid_units == 19 and cfg.head_kind == "affine"
    assert counts["total"] <= 2100, counts


def test_normalisation_is_applied():
    spec = InputSpec.vector("imu", 6, mean=[1, 2, 3, 4, 5, 6], std=[2] * 6)
    cfg = NetworkConfig(inputs=(spec,), inter_neurons=4, command_neurons=4, sensory_fanout=2, inter_fanout=2, motor_fanin=2)
    net = build_policy_network(cfg, seed=0)
    raw = torch.tensor([[1.0, 2, 3, 4, 5, 6]])
    assert torch.allclose(net.encode({"imu": raw}), torch.zeros(1, 6))


@pytest.mark.parametrize("bad", [
    dict(core="transformer"), dict(wiring="random"), dict(head="affine", core="gru"),
    dict(sensory_fanout=99), dict(control_period=0.0), dict(ltc_ode_unfolds=0),
])
def test_bad_configs(bad):
    with pytest.raises(ConfigError):
        cfg = NetworkConfig(inputs=VEC, **bad)
        build_policy_network(cfg)


def test_bad_specs():
    with pytest.raises(SpecError):
        InputSpec.vector("imu", 6, std=[0.0] * 6)
    with pytest.raises(SpecError):
        InputSpec("image", (64, 64, 4), "image")
    with pytest.raises(SpecError):
        ActionSpec("ctbr")  # needs a max rate
    with pytest.raises(SpecError):
        InputSpec.vector("imu", 6, mean=[np.nan] * 6)
    with pytest.raises(ConfigError):
        NetworkConfig(inputs=(InputSpec.image("image", 8, 8),))  # too small for the conv stack


def test_config_roundtrip():
    cfg = config("encoded+camera")
    assert NetworkConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError):
        NetworkConfig.from_dict({**cfg.to_dict(), "bogus": 1})
