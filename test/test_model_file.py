"""Model file: round trip, metadata, and one specific error per way a file can be wrong."""
import json
import struct

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from lnn_drone.policy import model_file as mf
from lnn_drone.policy.config import NetworkConfig
from lnn_drone.policy.network import build_policy_network
from lnn_drone.policy.spec import InputSpec

CFG = NetworkConfig(inputs=(InputSpec.vector("imu", 6, mean=[0.1] * 6, std=[3.0] * 6), InputSpec.vector("odom", 13)))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "policy.safetensors"
    net = build_policy_network(CFG, seed=0)
    mf.save_network(path, net, provenance={"dataset": "unit-test", "seed": 0}, evaluation={"A30_success": 0.97})
    return path, net


def rewrite(src, dst, tensors=None, metadata=None):
    """Copy a model file with modified tensors / metadata (as a hostile or buggy writer would)."""
    from safetensors import safe_open

    with safe_open(str(src), "np") as f:
        meta = dict(f.metadata())
        arrays = {k: f.get_tensor(k) for k in f.keys()}
    if tensors:
        arrays.update(tensors)
        arrays = {k: v for k, v in arrays.items() if v is not None}
    if metadata:
        meta.update(metadata)
    save_file(arrays, str(dst), metadata=meta)
    return dst


def test_roundtrip(saved):
    path, net = saved
    model = mf.load_model(path)
    assert model.config == CFG
    assert model.wiring.same_as(net.wiring)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(model.tensors[k], v.numpy())
    assert model.provenance == {"dataset": "unit-test", "seed": 0}
    assert model.evaluation == {"A30_success": 0.97}
    s = model.summary()
    assert s["cell"] == "cfc" and s["neurons"] == 19 and s["action_mode"] == "motors"
    assert s["params_total"] == net.param_counts()["total"]
    assert s["params_liquid"] == net.param_counts()["liquid"]
    assert s["params_effective"] == net.param_counts()["effective"]
    # wiring masks are stored as tensors, metadata as JSON strings
    raw = load_file(str(path))
    assert raw["wiring.adjacency"].dtype == np.int8
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    meta = json.loads(path.read_bytes()[8 : 8 + header_len])["__metadata__"]
    assert meta["format"] == mf.FORMAT and meta["schema_version"] == str(mf.SCHEMA_VERSION)
    assert json.loads(meta["inputs"])[0]["mean"] == [0.1] * 6


def test_truncated(saved, tmp_path):
    data = saved[0].read_bytes()
    for cut in (4, 200, len(data) - 10):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(mf.TruncatedModelError, match=str(bad.name)):
            mf.load_model(bad)


def test_not_a_safetensors_file(tmp_path):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(mf.NotAModelFileError, match="not a safetensors file"):
        mf.load_model(bad)
    bad.write_bytes(struct.pack("<Q", 5) + b"hello")
    with pytest.raises(mf.NotAModelFileError, match="not JSON"):
        mf.load_model(bad)
    other = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(other))
    with pytest.raises(mf.NotAModelFileError, match="not an lnn_drone policy"):
        mf.load_model(other)
    with pytest.raises(mf.ModelFileError, match="no such file"):
        mf.load_model(tmp_path / "missing.safetensors")


def test_unknown_schema_version(saved, tmp_path):
    bad = rewrite(saved[0], tmp_path / "v99.safetensors", metadata={"schema_version": "99"})
    with pytest.raises(mf.SchemaVersionError, match="schema version 99"):
        mf.load_model(bad)


def test_missing_tensor(saved, tmp_path):
    bad = rewrite(saved[0], tmp_path / "m.safetensors", tensors={"core.layers.1.bias": None})
    with pytest.raises(mf.MissingTensorError, match="core.layers.1.bias"):
        mf.load_model(bad)
    bad = rewrite(saved[0], tmp_path / "w.safetensors", tensors={"wiring.adjacency": None})
    with pytest.raises(mf.MissingTensorError, match="adjacency"):
        mf.load_model(bad)


def test_wrong_shape(saved, tmp_path):
    bad = rewrite(saved[0], tmp_path / "s.safetensors", tensors={"head.scale": np.ones(5, np.float32)})
    with pytest.raises(mf.TensorShapeError, match=r"'head.scale' has shape \(5,\)"):
        mf.load_model(bad)


def test_unexpected_tensor(saved, tmp_path):
    bad = rewrite(saved[0], tmp_path / "u.safetensors", tensors={"core.extra": np.ones(2, np.float32)})
    with pytest.raises(mf.UnexpectedTensorError, match="core.extra"):
        mf.load_model(bad)


def test_non_finite_weights(saved, tmp_path):
    w = mf.load_model(saved[0]).tensors["core.layers.0.weight"].copy()
    w[0, 0] = np.nan
    bad = rewrite(saved[0], tmp_path / "nan.safetensors", tensors={"core.layers.0.weight": w})
    with pytest.raises(mf.NonFiniteWeightsError, match="core.layers.0.weight"):
        mf.load_model(bad)
    # and saving refuses to write such a file in the first place
    with pytest.raises(mf.NonFiniteWeightsError):
        net = build_policy_network(CFG)
        state = {k: v.clone() for k, v in net.state_dict().items()}
        state["head.bias"][0] = float("inf")
        mf.save_model(tmp_path / "never.safetensors", CFG, state, net.wiring)
    assert not (tmp_path / "never.safetensors").exists()


def test_bad_metadata(saved, tmp_path):
    bad = rewrite(saved[0], tmp_path / "meta.safetensors", metadata={"inputs": "{not json"})
    with pytest.raises(mf.MetadataError, match="'inputs' is not valid JSON"):
        mf.load_model(bad)
    bad = rewrite(saved[0], tmp_path / "arch.safetensors", metadata={"network": json.dumps({"core": "quantum"})})
    with pytest.raises(mf.MetadataError, match="core"):
        mf.load_model(bad)


def test_inputs_the_caller_cannot_provide(saved):
    with pytest.raises(mf.MissingInputsError, match=r"\['odom'\]"):
        mf.load_model(saved[0], available_inputs=["imu", "goal"])
    assert mf.load_model(saved[0], available_inputs=["imu", "odom", "goal"]).input_names == ["imu", "odom"]

