"""Thrust outputs relative to the hover-thrust input: u = sigmoid(logit(h) + z / (1 - h)).

The point of the head: a zero network output hovers at any thrust-to-weight, and one unit of
output is one g of acceleration at hover (du/dz = h) whatever h is. Checked here in torch, in the
numpy runtime (parity), in ONNX, and in the model file and config validation.
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
CASES = {
    "cfc-motors": dict(action=ActionSpec("motors", thrust_reference="hover_thrust")),
    "cfc-encoder-motors": dict(vector_encoder_units=12, action=ActionSpec("motors", thrust_reference="hover_thrust")),
    "cfc-ctbr": dict(action=ActionSpec("ctbr", max_rate=6.0, thrust_reference="hover_thrust")),
    "gru-motors": dict(core="gru", action=ActionSpec("motors", thrust_reference="hover_thrust")),
    "cfc-motors-offset": dict(action=ActionSpec("motors", thrust_reference="hover_thrust", thrust_reference_form="offset")),
    "mlp-ctbr": dict(core="mlp", mlp_hidden=(16,), action=ActionSpec("ctbr", max_rate=6.0, thrust_reference="hover_thrust")),
}


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
    cfg, net = build(CASES["cfc-motors"])
    x = {"imu": torch.randn(64, 6) * 5, "goal_error": torch.randn(64, 9) * 5,
         "hover_thrust": torch.linspace(-1.0, 2.0, 64)[:, None]}
    with torch.no_grad():
        u, _ = net.step(x, net.initial_state(64), torch.full((64,), 0.01))
    assert torch.isfinite(u).all() and (u >= 0).all() and (u <= 1).all()


@pytest.mark.parametrize("name", list(CASES))
def test_numpy_runtime_matches_torch(tmp_path, name):
    cfg, net = build(CASES[name])
    model = load_model(save_network(tmp_path / f"{name}.safetensors", net))
    assert model.config.action.thrust_reference == "hover_thrust"
    rt = NumpyRuntime(model)
    rng = np.random.default_rng(1)
    state = net.initial_state(1)
    worst = 0.0
    for t in range(300):
        obs = {s.name: (np.asarray(s.mean) + np.asarray(s.std) * 1.5 * rng.normal(size=s.dim)).astype(np.float32)
               for s in cfg.inputs}
        if t % 50 == 0:  # beyond the clip now and then
            obs["hover_thrust"] = np.array([rng.choice([-0.5, 1.5])], np.float32)
        dt = float(rng.uniform(0.002, 0.04))
        with torch.no_grad():
            a, state = net.step({k: torch.from_numpy(v)[None] for k, v in obs.items()}, state, torch.tensor([dt]))
        b = rt.step(obs, dt)
        worst = max(worst, float(np.abs(a[0].numpy() - b).max()), float(np.abs(state[0].numpy() - rt.state).max()))
    assert worst <= 1e-5


def test_numpy_runtime_passes_a_nan_reference_on_as_nan(tmp_path):
    """A NaN reference must not be silently clipped into a plausible command: the policy's
    non-finite-input failsafe has to see it."""
    cfg, net = build(CASES["cfc-motors"])
    rt = NumpyRuntime(load_model(save_network(tmp_path / "m.safetensors", net)))
    obs = {"imu": np.zeros(6), "goal_error": np.zeros(9), "hover_thrust": np.array([np.nan])}
    assert np.isnan(rt.step(obs, 0.01)).all()


def test_onnx_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime ('train' extra) is not installed")
    pytest.importorskip("onnxscript", reason="onnxscript ('train' extra) is needed by the dynamo exporter")
    from lnn_drone.policy.export_onnx import export_onnx

    cfg, net = build(CASES["cfc-ctbr"])
    path = save_network(tmp_path / "m.safetensors", net)
    sess = ort.InferenceSession(str(export_onnx(path, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    state_ort = np.zeros((1, cfg.state_size), np.float32)
    state_torch = net.initial_state(1)
    worst = 0.0
    for _ in range(50):
        feeds = {s.name: rng.normal(size=(1, s.dim)).astype(np.float32) for s in cfg.inputs}
        feeds["hover_thrust"] = rng.uniform(0.0, 1.0, (1, 1)).astype(np.float32)
        dt = np.array([rng.uniform(0.002, 0.04)], np.float32)
        cmd, state_ort = sess.run(None, {**feeds, "state": state_ort, "dt": dt})
        with torch.no_grad():
            ref, state_torch = net.step({k: torch.from_numpy(v) for k, v in feeds.items()}, state_torch, torch.from_numpy(dt))
        worst = max(worst, float(np.abs(cmd - ref.numpy()).max()), float(np.abs(state_ort - state_torch.numpy()).max()))
    assert worst <= 1e-5


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
