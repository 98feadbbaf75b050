"""ONNX export (dynamo=True) of one control step; parity with onnxruntime."""
import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime", reason="onnxruntime ('train' extra) is not installed")
pytest.importorskip("onnxscript", reason="onnxscript ('train' extra) is needed by the dynamo exporter")

from lnn_drone.policy.config import NetworkConfig  # noqa: E402
from lnn_drone.policy.export_onnx import OUTPUTS, export_onnx  # noqa: E402
from lnn_drone.policy.model_file import load_model, save_network  # noqa: E402
from lnn_drone.policy.network import build_policy_network  # noqa: E402
from lnn_drone.policy.runtime_numpy import NumpyRuntime  # noqa: E402
from lnn_drone.policy.spec import ActionSpec, InputSpec  # noqa: E402

VEC = (InputSpec.vector("imu", 6, std=2.0), InputSpec.vector("goal_error", 16))


@pytest.mark.parametrize("kw", [
    dict(camera=True),
    dict(core="ltc", ltc_ode_unfolds=4),
    dict(core="gru", action=ActionSpec("ctbr", max_rate=6.0)),
    dict(hover_thrust=True, action=ActionSpec("ctbr", max_rate=6.0, thrust_reference="hover_thrust")),
    dict(camera=True, image_normalization="per_frame"),
    dict(hover_thrust=True, action=ActionSpec("motors", thrust_reference="hover_thrust", thrust_reference_form="mixer")),
    dict(config_ref=True, camera=True, action=ActionSpec("ctbr", max_rate=6.0, thrust_reference="hover_thrust_config")),
    dict(hover_thrust=True, action=ActionSpec("motors", thrust_reference="hover_thrust", thrust_reference_form="linear")),
    dict(camera=True, image_normalization="per_frame", image_opponent="red"),
    dict(camera=True, image_normalization="per_frame", image_opponent="red_normalized"),
], ids=["cfc-camera", "ltc", "gru-ctbr", "cfc-ctbr-thrust_reference", "cfc-camera-per_frame", "cfc-motors-mixer",
        "cfc-camera-ctbr-config_reference", "cfc-motors-linear", "cfc-camera-per_frame-red",
        "cfc-camera-per_frame-red_normalized"])
def test_onnx_matches_torch_and_numpy(tmp_path, kw):
    kw = dict(kw)
    camera = kw.pop("camera", False)
    hover = (InputSpec.vector("hover_thrust", 1, mean=0.5, std=0.2),) if kw.pop("hover_thrust", False) else ()
    if kw.pop("config_ref", False):
        hover = (InputSpec.reference("hover_thrust_config"),)
    cfg = NetworkConfig(inputs=VEC + hover + ((InputSpec.image("image", 32, 48),) if camera else ()), **kw)
    net = build_policy_network(cfg, seed=0).eval()
    path = save_network(tmp_path / "m.safetensors", net)
    onnx_path = export_onnx(path, tmp_path / "m.onnx")  # from the model file, as the CLI does
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [s.name for s in cfg.inputs] + ["state", "dt"]
    assert [o.name for o in sess.get_outputs()] == list(OUTPUTS)
    rt = NumpyRuntime(load_model(path))
    rng = np.random.default_rng(0)
    state_ort = np.zeros((1, cfg.state_size), np.float32)
    state_torch = net.initial_state(1)
    worst = 0.0
    for _ in range(100):
        feeds = {s.name: (rng.integers(0, 256, (1, *s.shape), dtype=np.uint8) if s.kind == "image"
                          else rng.uniform(0.1, 0.9, (1, 1)).astype(np.float32) if s.kind == "reference"
                          else rng.normal(size=(1, s.dim)).astype(np.float32)) for s in cfg.inputs}
        dt = np.array([rng.uniform(0.002, 0.04)], np.float32)
        cmd, state_ort = sess.run(None, {**feeds, "state": state_ort, "dt": dt})
        with torch.no_grad():
            ref, state_torch = net.step({k: torch.from_numpy(v) for k, v in feeds.items()}, state_torch, torch.from_numpy(dt))
        cmd_np = rt.step({k: v[0] for k, v in feeds.items()}, float(dt[0]))
        worst = max(worst, np.abs(cmd - ref.numpy()).max(), np.abs(state_ort - state_torch.numpy()).max(),
                    np.abs(cmd[0] - cmd_np).max())
    assert worst <= 1e-5
