"""Thrust outputs relative to the hover-thrust input: u = sigmoid(logit(h) + z / (1 - h)), or the
mixer form u = shift-to-fit(h (1 + S z)).

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
from lnn_drone.policy.spec import MIXER_SIGNS, ActionSpec, InputSpec, SpecError

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


def _mixer_net():
    action = ActionSpec("motors", thrust_reference="hover_thrust", thrust_reference_form="mixer")
    cfg = NetworkConfig(inputs=INPUTS, action=action, head="linear")
    net = build_policy_network(cfg, seed=0).eval()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
    return cfg, net


def _mixer_act(net, cfg, z, h):
    """Motors for head outputs ``z`` (collective, roll, pitch, yaw) at reference ``h``."""
    with torch.no_grad():
        net.head.bias.copy_(torch.tensor(z, dtype=torch.float32))
        return net.act(torch.zeros(len(h), cfg.core_output_size), {"hover_thrust": torch.tensor(h)[:, None]})


def test_mixer_form_hovers_at_zero_and_one_unit_is_one_g_on_every_axis():
    cfg, net = _mixer_net()
    h = [0.1, 0.3, 0.45, 0.77]
    hv = torch.tensor(h)[:, None]
    torch.testing.assert_close(_mixer_act(net, cfg, [0, 0, 0, 0], h), hv.expand(4, 4), rtol=0, atol=1e-6)
    for axis in range(4):
        z = [0.0] * 4
        z[axis] = 0.01
        du = _mixer_act(net, cfg, z, h) - hv
        want = 0.01 * hv * torch.tensor(MIXER_SIGNS[:, axis], dtype=torch.float32)
        torch.testing.assert_close(du, want, rtol=0, atol=1e-6)


def test_mixer_form_keeps_the_torque_and_gives_up_lift_when_a_rotor_would_pass_full_thrust():
    """T/W 1.3 (h = 0.77), a roll demand of 0.4: the linear mix asks 1.08 of two rotors. The whole
    is shifted down, so the differential (the torque) is kept; a per-rotor sigmoid would instead
    give the top rotors +0.18 and take 0.40 from the others."""
    cfg, net = _mixer_net()
    u = _mixer_act(net, cfg, [0.0, 0.4, 0.0, 0.0], [0.77])[0]
    assert float(u.max()) == pytest.approx(1.0, abs=1e-6)
    assert float(u.max() - u.min()) == pytest.approx(2 * 0.77 * 0.4, abs=1e-5)
    # past what the rotors can do at all, it clips: still in range, still the right sign
    big = _mixer_act(net, cfg, [0.0, 3.0, 0.0, 0.0], [0.77])[0]
    assert float(big.min()) == 0.0 and float(big.max()) == 1.0
    assert torch.equal(big > 0.5, torch.tensor(MIXER_SIGNS[:, 1] > 0))


def test_mixer_signs_match_the_vehicle_geometry():
    """Yaw column = the rotors' reaction-torque signs; roll and pitch columns = the side and the
    end of the body each rotor sits on (contract motor order FR, BR, BL, FL)."""
    from lnn_drone.frames import MOTOR_DIRECTIONS_FLU, YAW_TORQUE_SIGNS

    np.testing.assert_array_equal(MIXER_SIGNS[:, 3], YAW_TORQUE_SIGNS)
    np.testing.assert_array_equal(MIXER_SIGNS[:, 1], np.sign(MOTOR_DIRECTIONS_FLU[:, 1]))   # left (+y) minus right
    np.testing.assert_array_equal(MIXER_SIGNS[:, 2], -np.sign(MOTOR_DIRECTIONS_FLU[:, 0]))  # back (-x) minus front
    assert (MIXER_SIGNS[:, 0] == 1).all()


@pytest.mark.parametrize("mode", ["motors", "ctbr"])
def test_linear_form_is_symmetric_about_hover_and_clips_with_a_straight_through_gradient(mode):
    """u = clip(h (1 + z), 0, 1): one unit is one g, a correction up gives exactly what the same
    correction down takes (the sigmoid's lopsidedness near full thrust is gone), the range's end
    clips, and in training the gradient passes a clip so an output beyond it is pulled back."""
    action = ActionSpec(mode, max_rate=6.0 if mode == "ctbr" else 0.0, thrust_reference="hover_thrust",
                        thrust_reference_form="linear")
    cfg = NetworkConfig(inputs=INPUTS, action=action, head="linear")
    net = build_policy_network(cfg, seed=0).eval()
    n = action.thrust_outputs
    h = torch.tensor([0.3, 0.5, 0.77])[:, None]
    core_out = torch.zeros(3, cfg.core_output_size)

    def act(z):
        with torch.no_grad():
            net.head.weight.zero_()
            net.head.bias.zero_()
            net.head.bias[:n] = z
            return net.act(core_out, {"hover_thrust": h})[:, :n]

    torch.testing.assert_close(act(0.0), h.expand(3, n), rtol=0, atol=1e-7)
    up, down = act(0.2), act(-0.2)
    torch.testing.assert_close(up[:2] - h[:2], h[:2] - down[:2], rtol=0, atol=1e-6)  # below the top
    torch.testing.assert_close(up[:2], (h[:2] * 1.2).expand(2, n), rtol=0, atol=1e-6)
    assert torch.all(act(0.5)[2] == 1.0) and torch.all(act(-2.0) == 0.0)
    # beyond the top: no gradient in eval, the line's in training
    net.head.bias.requires_grad_(True)
    for training, want in ((False, 0.0), (True, 0.77)):
        net.train(training)
        with torch.no_grad():
            net.head.bias.zero_()
            net.head.bias[:n] = 0.5
        net.head.bias.grad = None
        net.act(core_out[2:], {"hover_thrust": h[2:]})[:, :n].sum().backward()
        torch.testing.assert_close(net.head.bias.grad[:n], torch.full((n,), want), rtol=0, atol=1e-6)
    with pytest.raises(SpecError, match="linear"):
        ActionSpec("motors", thrust_reference_form="linear")


def test_mixer_form_is_refused_without_motors_or_a_reference():
    with pytest.raises(SpecError, match="mixer"):
        ActionSpec("ctbr", max_rate=5.0, thrust_reference="hover_thrust", thrust_reference_form="mixer")
    with pytest.raises(SpecError, match="mixer"):
        ActionSpec("motors", thrust_reference_form="mixer")


@pytest.mark.parametrize("form", ["scaled", "mixer", "linear"])
def test_outputs_stay_in_range_for_any_reference(form):
    cfg, net = build(dict(action=ActionSpec("motors", thrust_reference="hover_thrust", thrust_reference_form=form)))
    x = {"imu": torch.randn(64, 6) * 5, "goal_error": torch.randn(64, 9) * 5,
         "hover_thrust": torch.linspace(-1.0, 2.0, 64)[:, None]}
    with torch.no_grad():
        u, _ = net.step(x, net.initial_state(64), torch.full((64,), 0.01))
    assert torch.isfinite(u).all() and (u >= 0).all() and (u <= 1).all()


@pytest.mark.parametrize("form", ["scaled", "mixer", "linear"])
def test_numpy_runtime_passes_a_nan_reference_on_as_nan(tmp_path, form):
    """A NaN reference must not be silently clipped into a plausible command: the policy's
    non-finite-input failsafe has to see it."""
    cfg, net = build(dict(action=ActionSpec("motors", thrust_reference="hover_thrust", thrust_reference_form=form)))
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
    for form in ("offset", "mixer"):
        b = ActionSpec("motors", thrust_reference="hover_thrust", thrust_reference_form=form)
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
