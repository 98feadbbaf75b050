"""The vehicle's configured hover thrust as the collective's reference (``hover_thrust_config``).

Why it exists: a camera policy cannot measure the hover thrust (no odometry), and an absolute
collective trained on one airframe flies a stronger one away. The configured value (1 / T/W of the
vehicle file, what a flight controller's hover-throttle setting holds) scales the collective
instead. It is a ``reference`` input: read by the head only, never normalised or encoded, so a new
vehicle changes the thrust scale and nothing else. Parity (numpy, ONNX) lives with the other
variants in test_numpy_runtime.py and test_onnx_export.py.
"""
import numpy as np
import pytest
import torch

from lnn_drone.config import RandomizationConfig
from lnn_drone.policy import Policy
from lnn_drone.policy.config import ConfigError, NetworkConfig
from lnn_drone.policy.features import FeatureError
from lnn_drone.policy.model_file import load_model, save_network
from lnn_drone.policy.network import build_policy_network
from lnn_drone.policy.spec import ActionSpec, InputSpec, SpecError
from lnn_drone.sim.randomization import sample_variation
from lnn_drone.vehicle import load_vehicle

REF = InputSpec.reference("hover_thrust_config")
INPUTS = (InputSpec.vector("imu_accel", 3, mean=[0.0, 0.0, 9.81], std=2.0), REF)
CTBR = ActionSpec("ctbr", max_rate=6.0, thrust_reference="hover_thrust_config")


def _net(seed=0):
    net = build_policy_network(NetworkConfig(inputs=INPUTS, action=CTBR, vector_encoder_units=8), seed=seed)
    with torch.no_grad():  # move away from the initialisation so every weight matters
        g = torch.Generator().manual_seed(seed)
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    return net.eval()


def test_reference_input_spec_rules():
    assert REF.kind == "reference" and REF.shape == (1,) and REF.mean == (0.0,) and REF.std == (1.0,)
    assert InputSpec.from_dict(REF.to_dict()) == REF
    with pytest.raises(SpecError, match="reference input"):
        InputSpec("imu", (1,), "reference")  # only the known references
    with pytest.raises(SpecError, match="reference input"):
        InputSpec("hover_thrust_config", (2,), "reference")
    with pytest.raises(SpecError, match="not normalised"):
        InputSpec("hover_thrust_config", (1,), "reference", (0.4,), (0.1,))


def test_config_refuses_a_reference_input_that_is_not_the_thrust_reference():
    with pytest.raises(ConfigError, match="reference inputs"):
        NetworkConfig(inputs=INPUTS, action=ActionSpec("ctbr", max_rate=6.0))
    with pytest.raises(ConfigError, match="hover_thrust_config"):
        NetworkConfig(inputs=INPUTS[:1], action=CTBR)


def test_the_reference_scales_the_collective_and_touches_nothing_else():
    """Same inputs, another vehicle's configured hover thrust: the recurrent state and the body
    rates are unchanged, and the collective follows the reference (a zero output hovers)."""
    net = _net()
    accel = torch.randn(5, 3) * 2 + torch.tensor([0.0, 0.0, 9.81])
    state = net.initial_state(5)
    dt = torch.full((5,), 1 / 30)
    with torch.no_grad():
        a_cf, s_cf = net.step({"imu_accel": accel, "hover_thrust_config": torch.full((5, 1), 1 / 2.25)}, state, dt)
        a_250, s_250 = net.step({"imu_accel": accel, "hover_thrust_config": torch.full((5, 1), 1 / 4.6)}, state, dt)
    torch.testing.assert_close(s_cf, s_250, rtol=0, atol=0)
    torch.testing.assert_close(a_cf[:, 1:], a_250[:, 1:], rtol=0, atol=0)
    assert torch.all(a_250[:, 0] < a_cf[:, 0])  # monotone in the reference (same z)
    with torch.no_grad():
        for p in net.head.parameters():
            p.zero_()
        zero, _ = net.step({"imu_accel": accel, "hover_thrust_config": torch.full((5, 1), 1 / 4.6)}, state, dt)
    torch.testing.assert_close(zero[:, 0], torch.full((5,), 1 / 4.6), rtol=0, atol=1e-6)


def test_policy_supplies_the_configured_value_and_refuses_bad_ones(tmp_path):
    model = load_model(save_network(tmp_path / "m.safetensors", _net()))
    obs = {"imu": np.array([0.0, 0.0, 0.0, 0.3, -0.2, 9.9])}  # gyro, accel
    given = Policy(model, hover_thrust_config=0.3).step(obs, 1 / 30)
    from_obs = Policy(model).step({**obs, "hover_thrust_config": np.array([0.3])}, 1 / 30)
    np.testing.assert_allclose(given, from_obs, rtol=0, atol=1e-12)
    other = Policy(model, hover_thrust_config=0.6).step(obs, 1 / 30)
    assert other[0] > given[0] and np.allclose(other[1:], given[1:])
    with pytest.raises(FeatureError, match="hover_thrust_config"):
        Policy(model).step(obs, 1 / 30)  # neither the policy nor the observation has it
    for bad in (0.0, 1.2, float("nan")):
        with pytest.raises(ValueError, match="hover_thrust_config"):
            Policy(model, hover_thrust_config=bad)
        with pytest.raises(FeatureError, match="hover_thrust_config"):
            Policy(model).step({**obs, "hover_thrust_config": np.array([bad])}, 1 / 30)


@pytest.mark.parametrize("vehicle", ["crazyflie2", "quad250"])
def test_env_observes_the_vehicle_files_value_not_the_randomized_truth(vehicle):
    from lnn_drone.config import SimConfig
    from lnn_drone.sim.envs import HoverEnv

    rnd = RandomizationConfig(enabled=True, thrust_to_weight=[1.5, 3.5])
    env = HoverEnv(SimConfig(vehicle=vehicle), randomization=rnd)
    try:
        nominal = load_vehicle(vehicle)
        seen = set()
        for seed in range(3):
            obs, _ = env.reset(seed=seed)
            seen.add(round(env.variation.vehicle.thrust_to_weight, 3))
            assert obs["hover_thrust_config"].shape == (1,)
            assert obs["hover_thrust_config"][0] == pytest.approx(1.0 / nominal.thrust_to_weight, rel=1e-6)
        assert len(seen) == 3  # the truth did vary
    finally:
        env.close()


def test_rotor_drag_randomization_scales_drag_and_keeps_the_other_draws():
    nominal = load_vehicle("crazyflie2")
    base = RandomizationConfig(enabled=True)
    scaled = RandomizationConfig(enabled=True, rotor_drag_scale=[0.2, 1.2])
    ks = []
    for seed in range(20):
        a = sample_variation(nominal, base, np.random.default_rng(seed))
        b = sample_variation(nominal, scaled, np.random.default_rng(seed))
        # the new draw comes last: everything drawn before is what the default draws
        assert a.vehicle.mass_kg == b.vehicle.mass_kg and a.vehicle.thrust_to_weight == b.vehicle.thrust_to_weight
        assert a.kf_scale == b.kf_scale and a.constant_push_n == b.constant_push_n and a.gust_std_mps == b.gust_std_mps
        assert a.vehicle.rotor_drag_n_per_rpm_mps == nominal.rotor_drag_n_per_rpm_mps
        k = np.array(b.vehicle.rotor_drag_n_per_rpm_mps) / np.array(nominal.rotor_drag_n_per_rpm_mps)
        assert np.allclose(k, k[0]) and 0.2 <= k[0] <= 1.2
        ks.append(k[0])
    assert max(ks) - min(ks) > 0.5  # spread over the range
    with pytest.raises(Exception, match="rotor_drag_scale"):
        from lnn_drone.config import validate

        validate(RandomizationConfig(rotor_drag_scale=[1.2, 0.2]))
