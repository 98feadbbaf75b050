"""Policy (deployment API) and the feature registry: reset/step, input checks, derived features."""
import numpy as np
import pytest
import torch

from lnn_drone.policy import Policy
from lnn_drone.policy.config import NetworkConfig
from lnn_drone.policy.features import FeatureError, extract, get_feature, register_feature, required_observations
from lnn_drone.policy.model_file import MissingInputsError, save_network
from lnn_drone.policy.network import build_policy_network
from lnn_drone.policy.spec import InputSpec


@register_feature("test_goal_offset", dim=3, requires=("odom", "goal"))
def _goal_offset(obs):
    return np.asarray(obs["goal"][:3]) - np.asarray(obs["odom"][:3])


CFG = NetworkConfig(inputs=(InputSpec.vector("imu", 6), InputSpec.vector("test_goal_offset", 3),
                            InputSpec.image("image", 32, 32)), image_features=8)


def observation(rng):
    return {"imu": rng.normal(size=6).astype(np.float32), "odom": rng.normal(size=13), "goal": rng.normal(size=4),
            "image": rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)}


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("p") / "p.safetensors"
    save_network(path, build_policy_network(CFG, seed=0))
    return path


def test_step_reset_and_determinism(model_path):
    policy = Policy.load(model_path)
    assert policy.action_mode == "motors" and policy.control_period == 0.01
    assert policy.required_observations == {"imu", "odom", "goal", "image"}
    rng = np.random.default_rng(0)
    seq = [observation(rng) for _ in range(20)]
    first = [policy.step(o, 0.01) for o in seq]
    assert all(c.shape == (4,) and ((c >= 0) & (c <= 1)).all() for c in first)
    policy.reset()
    again = [policy.step(o, 0.01) for o in seq]
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first[0], first[-1])  # the state evolves
    # commands are fresh arrays: mutating one does not touch the policy
    again[-1][:] = 5.0
    assert policy.step(seq[0], 0.01).max() <= 1


def test_derived_feature_matches_torch(model_path):
    """The registered extractor feeds the runtime exactly what training would see."""
    policy = Policy.load(model_path)
    net = build_policy_network(CFG, seed=0).eval()
    rng = np.random.default_rng(3)
    state = net.initial_state(1)
    for _ in range(5):
        obs = observation(rng)
        cmd = policy.step(obs, 0.02)
        inputs = {"imu": torch.from_numpy(obs["imu"])[None], "image": torch.from_numpy(obs["image"])[None],
                  "test_goal_offset": torch.from_numpy(_goal_offset(obs).astype(np.float32))[None]}
        with torch.no_grad():
            ref, state = net.step(inputs, state, torch.tensor([0.02]))
        np.testing.assert_allclose(cmd, ref[0].numpy(), atol=1e-5)


def test_bad_observations(model_path):
    policy = Policy.load(model_path)
    rng = np.random.default_rng(1)
    obs = observation(rng)
    with pytest.raises(FeatureError, match="odom"):
        policy.step({k: v for k, v in obs.items() if k != "odom"}, 0.01)
    with pytest.raises(FeatureError, match="NaN"):
        policy.step({**obs, "imu": np.full(6, np.nan)}, 0.01)
    with pytest.raises(FeatureError, match=r"shape \(5,\)"):
        policy.step({**obs, "imu": np.zeros(5)}, 0.01)
    with pytest.raises(FeatureError, match="uint8"):
        policy.step({**obs, "image": obs["image"].astype(np.float32)}, 0.01)
    with pytest.raises(FeatureError, match="image"):
        policy.step({**obs, "image": obs["image"][:16]}, 0.01)
    for dt in (-0.01, float("nan"), "0.01"):
        with pytest.raises(ValueError, match="dt"):
            policy.step(obs, dt)


def test_missing_inputs_refused_up_front(model_path):
    with pytest.raises(MissingInputsError, match="image"):
        Policy.load(model_path, available_observations=["imu", "odom", "goal"])
    Policy.load(model_path, available_observations=["imu", "odom", "goal", "image"])


def test_feature_registry():
    assert get_feature("imu").requires == ("imu",)  # default: the raw observation
    assert required_observations(["imu", "test_goal_offset"]) == {"imu", "odom", "goal"}
    np.testing.assert_array_equal(extract("imu", {"imu": [[1, 2], [3, 4]]}, (4,)), [1, 2, 3, 4])
    with pytest.raises(ValueError, match="already registered"):
        register_feature("test_goal_offset")(lambda obs: obs)

    @register_feature("test_broken", requires=("imu",))
    def broken(obs):
        raise KeyError("oops")

    with pytest.raises(FeatureError, match="test_broken"):
        extract("test_broken", {"imu": np.zeros(6)}, (6,))


def test_plots(tmp_path, model_path):
    from lnn_drone.policy.plots import plot_rollout, plot_wiring, record_rollout

    policy = Policy.load(model_path, record=True)
    rng = np.random.default_rng(0)
    rec = record_rollout(policy, [observation(rng) for _ in range(30)], [0.01] * 30)
    assert rec["state"].shape == (30, 19) and rec["internals"].shape == (30, 19)
    for path in (plot_rollout(rec, tmp_path / "r.png", "cfc", policy.model.wiring),
                 plot_wiring(policy.model.wiring, tmp_path / "w.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
