"""Thrust outputs relative to the hover-thrust input: u = sigmoid(logit(h) + z / (1 - h)).

The point of the head: a zero network output hovers at any thrust-to-weight, and one unit of
output is one g of acceleration at hover (du/dz = h) whatever h is. Checked here in torch, in the
model file and config validation; numpy and ONNX parity live with the other variants in
test_numpy_runtime.py and test_onnx_export.py.
"""
import numpy as np
import pytest
import torch

from lnn_drone.policy.config import ConfigError, NetworkConfig
from lnn_drone.policy.model_file import load_model, save_network
from lnn_drone.policy.network import build_policy_network
from lnn_drone.policy.runtime_numpy import NumpyRuntime
from lnn_drone.policy.spec import ActionSpec, InputSpec, SpecError

INPUTS = (InputSpec.vector("imu", 6, std=2.0), InputSpec.vector("goal_error", 9, std=0.5),
          InputSpec.vector("hover_thrust", 1, mean=0.5, std=0.2))
MOTORS_REF = dict(action=ActionSpec("motors", thrust_reference="hover_thrust"))


def build(kw, seed=0):
    cfg = NetworkConfig(inputs=INPUTS, **kw)
    net = build_policy_network(cfg, seed=seed)
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        for p in net.parameters():
            p.add_(0.15 * torch.randn(p.shape, generator=g))
    return cfg, net.eval()


@pytest.mark.parametrize("form", ["scaled", "offset"])
@pytest.mark.parametrize("mode", ["motors", "ctbr"])
def test_zero_output_hovers_and_the_slope_is_the_forms(mode, form):
    """Both forms hover at a zero output; "scaled" makes one output unit one g (du/dz = h),
    "offset" keeps the plain sigmoid's slope at u = h (h (1 - h))."""
    action = ActionSpec(mode, max_rate=6.0 if mode == "ctbr" else 0.0, thrust_reference="hover_thrust",
                        thrust_reference_form=form)
    cfg = NetworkConfig(inputs=INPUTS, action=action, head="linear")
    net = build_policy_network(cfg, seed=0).eval()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    h = torch.tensor([0.1, 0.3, 0.45, 0.77, 0.9])[:, None]
    core_out = torch.zeros(5, cfg.core_output_size)
    with torch.no_grad():
        u = net.act(core_out, {"hover_thrust": h})
    n = 4 if mode == "motors" else 1
    torch.testing.assert_close(u[:, :n], h.expand(5, n), rtol=0, atol=1e-6)
    if mode == "ctbr":
        assert torch.all(u[:, 1:] == 0)
    # slope at hover: du/dz = h, i.e. z is the commanded acceleration in g (u = h (1 + a/g))
    eps = 1e-3
    with torch.no_grad():
        net.head.bias[:n] = eps
        up = net.act(core_out, {"hover_thrust": h})
        net.head.bias[:n] = -eps
        down = net.act(core_out, {"hover_thrust": h})
    slope = (up[:, :n] - down[:, :n]) / (2 * eps)  # central difference
    want = h if form == "scaled" else h * (1 - h)
    torch.testing.assert_close(slope, want.expand(5, n), rtol=2e-3, atol=1e-4)


def test_outputs_stay_in_range_for_any_reference():
    cfg, net = build(MOTORS_REF)
    x = {"imu": torch.randn(64, 6) * 5, "goal_error": torch.randn(64, 9) * 5,
         "hover_thrust": torch.linspace(-1.0, 2.0, 64)[:, None]}
    with torch.no_grad():
        u, _ = net.step(x, net.initial_state(64), torch.full((64,), 0.01))
    assert torch.isfinite(u).all() and (u >= 0).all() and (u <= 1).all()


def test_numpy_runtime_passes_a_nan_reference_on_as_nan(tmp_path):
    """A NaN reference must not be silently clipped into a plausible command: the policy's
    non-finite-input failsafe has to see it."""
    cfg, net = build(MOTORS_REF)
    rt = NumpyRuntime(load_model(save_network(tmp_path / "m.safetensors", net)))
    obs = {"imu": np.zeros(6), "goal_error": np.zeros(9), "hover_thrust": np.array([np.nan])}
    assert np.isnan(rt.step(obs, 0.01)).all()


def test_config_refuses_a_reference_it_cannot_read():
    with pytest.raises(ConfigError, match="hover_thrust"):
        NetworkConfig(inputs=INPUTS[:2], action=ActionSpec("motors", thrust_reference="hover_thrust"))
    wide = (INPUTS[0], InputSpec.vector("hover_thrust", 2))
    with pytest.raises(ConfigError, match="1-value"):
        NetworkConfig(inputs=wide, action=ActionSpec("motors", thrust_reference="hover_thrust"))
    with pytest.raises(SpecError, match="thrust_reference"):
        ActionSpec("motors", thrust_reference="imu")
    with pytest.raises(SpecError, match="thrust_reference_form"):
        ActionSpec("motors", thrust_reference="hover_thrust", thrust_reference_form="log")


def test_action_spec_roundtrip_and_old_headers():
    a = ActionSpec("ctbr", max_rate=5.0, thrust_reference="hover_thrust")
    assert ActionSpec.from_dict(a.to_dict()) == a
    b = ActionSpec("motors", thrust_reference="hover_thrust", thrust_reference_form="offset")
    assert ActionSpec.from_dict(b.to_dict()) == b
    old = {"mode": "motors", "max_rate": 0.0}  # a header written before references existed
    assert ActionSpec.from_dict(old).thrust_reference == "none"


def test_shipped_models_still_load():
    """Every shipped model file loads under the new action schema."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "models"
    files = sorted(root.rglob("*.safetensors"))
    assert files
    for f in files:
        m = load_model(f)
        assert m.config.action.thrust_reference in ("none", "hover_thrust")
