"""numpy runtime vs torch: max abs difference <= 1e-5 over 1,000-step rollouts with varying dt."""
import numpy as np
import pytest
import torch

from lnn_drone.policy.config import NetworkConfig
from lnn_drone.policy.model_file import load_model, save_network
from lnn_drone.policy.network import build_policy_network
from lnn_drone.policy.runtime_numpy import NumpyRuntime
from lnn_drone.policy.spec import ActionSpec, InputSpec

VEC = (InputSpec.vector("imu", 6, mean=[0.0, 0.0, 0.0, 0.0, 0.0, 9.81], std=[1.0, 1.0, 1.0, 2.0, 2.0, 2.0]),
       InputSpec.vector("goal_error", 16, mean=0.1, std=0.5))
CAM = InputSpec.image("image", 48, 64, mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3])
# wide enough that the rollouts' 1.5-sigma inputs often pass the reference clip (0.02-0.98)
HOVER = InputSpec.vector("hover_thrust", 1, mean=0.5, std=0.3)
REF = dict(hover_thrust=True, thrust_reference="hover_thrust")
# the vehicle's configured hover thrust: a "reference" input, outside the encoder
CONFIG_REF = InputSpec.reference("hover_thrust_config")

LONG = {  # 1,000 steps each: the parity contract
    "cfc-ncp": dict(),
    "cfc-dense": dict(wiring="dense", units=12),
    "ltc-ncp": dict(core="ltc"),
    "ltc-dense": dict(core="ltc", wiring="dense", units=12),
    "cfc-ncp-camera": dict(camera=True),
    "ltc-ncp-camera": dict(core="ltc", camera=True),
}
SHORT = {  # other heads / modes / baselines, 200 steps
    "cfc-no_gate": dict(cfc_mode="no_gate"),
    "cfc-pure": dict(cfc_mode="pure"),
    "cfc-ncps-masks": dict(cfc_mask_mode="ncps"),
    "cfc-encoder-ctbr": dict(vector_encoder_units=10, action=ActionSpec("ctbr", max_rate=5.0)),
    "gru": dict(core="gru"),
    "mlp": dict(core="mlp", mlp_hidden=(24, 16), mlp_history=3),
    "mlp-encoder-camera": dict(core="mlp", vector_encoder_units=6, camera=True, mlp_history=2),
    "cfc-camera-per_frame": dict(camera=True, image_normalization="per_frame"),
    "gru-camera-per_frame": dict(core="gru", camera=True, image_normalization="per_frame"),
    # the red opponent channel (raw chroma, or on the normalised channels), with either normalisation
    "cfc-camera-per_frame-red": dict(camera=True, image_normalization="per_frame", image_opponent="red"),
    "mlp-camera-red": dict(core="mlp", camera=True, mlp_history=2, image_opponent="red"),
    "cfc-camera-per_frame-red_normalized": dict(camera=True, image_normalization="per_frame", image_opponent="red_normalized"),
    "gru-camera-red_normalized": dict(core="gru", camera=True, image_opponent="red_normalized"),
    # thrust outputs relative to the hover-thrust input (policy/spec.py)
    "cfc-ref-motors": dict(REF),
    "cfc-ref-encoder-motors": dict(REF, vector_encoder_units=12),
    "cfc-ref-offset": dict(REF, thrust_reference_form="offset"),
    "cfc-ref-mixer": dict(REF, thrust_reference_form="mixer"),
    "mlp-ref-mixer": dict(REF, core="mlp", mlp_hidden=(16,), thrust_reference_form="mixer"),
    "cfc-ref-ctbr": dict(REF, mode="ctbr"),
    "cfc-ref-linear": dict(REF, thrust_reference_form="linear"),
    "gru-ref-linear-ctbr": dict(REF, core="gru", mode="ctbr", thrust_reference_form="linear"),
    "gru-ref-motors": dict(REF, core="gru"),
    "mlp-ref-ctbr": dict(REF, core="mlp", mlp_hidden=(16,), mode="ctbr"),
    "cfc-config_ref-ctbr-camera": dict(config_ref=True, thrust_reference="hover_thrust_config", mode="ctbr", camera=True,
                                       vector_encoder_units=8, image_normalization="per_frame"),
    "gru-config_ref-ctbr": dict(config_ref=True, thrust_reference="hover_thrust_config", mode="ctbr", core="gru"),
}


def make(tmp_path, name, kw, seed=0):
    kw = dict(kw)
    camera = kw.pop("camera", False)
    hover = kw.pop("hover_thrust", False)
    config_ref = kw.pop("config_ref", False)
    if "thrust_reference" in kw:
        mode = kw.pop("mode", "motors")
        kw["action"] = ActionSpec(mode, max_rate=5.0 if mode == "ctbr" else 0.0, thrust_reference=kw.pop("thrust_reference"),
                                  thrust_reference_form=kw.pop("thrust_reference_form", "scaled"))
    cfg = NetworkConfig(inputs=VEC + ((HOVER,) if hover else ()) + ((CONFIG_REF,) if config_ref else ())
                        + ((CAM,) if camera else ()), **kw)
    net = build_policy_network(cfg, seed=seed)
    with torch.no_grad():  # move away from the initialisation so every weight matters
        g = torch.Generator().manual_seed(seed)
        for p in net.parameters():
            p.add_(0.15 * torch.randn(p.shape, generator=g))
    path = save_network(tmp_path / f"{name}.safetensors", net)
    return cfg, net.eval(), load_model(path)


def rollout_diff(cfg, net, model, steps, seed=1):
    rng = np.random.default_rng(seed)
    rt = NumpyRuntime(model)
    state = net.initial_state(1)
    worst = 0.0
    for t in range(steps):
        obs = {}
        for s in cfg.inputs:
            if s.kind == "image":
                obs[s.name] = rng.integers(0, 256, s.shape, dtype=np.uint8)
            elif s.kind == "reference":  # a hover-thrust fraction
                obs[s.name] = rng.uniform(0.1, 0.9, 1).astype(np.float32)
            else:
                obs[s.name] = (np.asarray(s.mean) + np.asarray(s.std) * 1.5 * rng.normal(size=s.dim)).astype(np.float32)
        dt = float(rng.uniform(0.001, 0.05))  # varying dt, as a real loop sees it
        if t == 500:
            rt.reset()
            state = net.initial_state(1)
        with torch.no_grad():
            a, state = net.step({k: torch.from_numpy(v)[None] for k, v in obs.items()}, state, torch.tensor([dt]))
        b = rt.step(obs, dt)
        worst = max(worst, float(np.abs(a[0].numpy() - b).max()), float(np.abs(state[0].numpy() - rt.state).max()))
    return worst


@pytest.mark.parametrize("name", list(LONG))
def test_parity_1000_steps(tmp_path, name):
    cfg, net, model = make(tmp_path, name, LONG[name])
    assert rollout_diff(cfg, net, model, 1000) <= 1e-5


@pytest.mark.parametrize("name", list(SHORT))
def test_parity_other_variants(tmp_path, name):
    cfg, net, model = make(tmp_path, name, SHORT[name])
    assert rollout_diff(cfg, net, model, 200) <= 1e-5


def test_state_roundtrip_and_internals(tmp_path):
    cfg, net, model = make(tmp_path, "cfc", {})
    rt = NumpyRuntime(model, record=True)
    obs = {"imu": np.ones(6, np.float32), "goal_error": np.zeros(16, np.float32)}
    rt.step(obs, 0.01)
    s = rt.state
    a1 = rt.step(obs, 0.01)
    gates = rt.aux.copy()
    rt.state = s
    np.testing.assert_array_equal(rt.step(obs, 0.01), a1)
    with torch.no_grad():
        _, _, g = net.core(net.encode({k: torch.from_numpy(v)[None] for k, v in obs.items()}),
                           torch.from_numpy(s).float()[None], torch.tensor([0.01]))
    np.testing.assert_allclose(gates, g[0].numpy(), atol=1e-6)
    with pytest.raises(ValueError):
        rt.state = np.zeros(3)


def test_ltc_time_constants_match_torch(tmp_path):
    cfg, net, model = make(tmp_path, "ltc", {"core": "ltc"})
    rt = NumpyRuntime(model, record=True)
    obs = {"imu": np.full(6, 0.3, np.float32), "goal_error": np.full(16, -0.2, np.float32)}
    rt.step(obs, 0.02)
    with torch.no_grad():
        _, _, tau = net.core(net.encode({k: torch.from_numpy(v)[None] for k, v in obs.items()}),
                             torch.zeros(1, cfg.state_size), torch.tensor([0.02]))
    np.testing.assert_allclose(rt.aux, tau[0].numpy(), rtol=1e-5)
    assert (rt.aux > 0).all()
