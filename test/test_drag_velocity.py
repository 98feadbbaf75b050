"""The velocity a camera policy reads through rotor drag (``drag_velocity``).

Why it exists: without odometry the student senses its velocity through rotor drag (thrust is
along body z, so the accelerometer's horizontal specific force is drag alone). That reading
scales with the airframe's drag per mass, 4.4 times smaller on the 250 mm vehicle than on the
Crazyflie. Divided by the vehicle file's drag per mass (a deployment constant, like the hover
thrust), the same velocity reads the same on both. These tests fly the real simulator.
"""
from importlib import resources

import numpy as np
import pytest
import yaml

from lnn_drone.config import RandomizationConfig, SimConfig
from lnn_drone.policy import Policy
from lnn_drone.policy.drone_features import DRAG_VELOCITY_LIMIT_MPS, drag_velocity, goal_error
from lnn_drone.policy.features import FeatureError
from lnn_drone.policy.spec import InputSpec
from lnn_drone.vehicle import load_vehicle


def test_drag_per_mass_of_the_shipped_vehicles():
    """4 x drag coefficient x hover RPM / mass, from the vehicle files (README, Vision)."""
    cf, q250 = load_vehicle("crazyflie2").hover_drag_per_mass, load_vehicle("quad250").hover_drag_per_mass
    assert cf[0] == pytest.approx(1.968, abs=0.002) and cf[1] == cf[0]
    assert q250[0] == pytest.approx(0.446, abs=0.002)
    assert cf[0] / q250[0] == pytest.approx(4.41, abs=0.02)


@pytest.mark.parametrize("vehicle", ["crazyflie2", "quad250"])
def test_drag_velocity_tracks_the_body_velocity_in_flight(vehicle):
    """The expert flies to the visual target; the feature, computed from the IMU alone, follows
    the true horizontal body velocity on both airframes. The raw specific force does not: its
    scale differs by the drag ratio."""
    from lnn_drone.training.vision import VisualEvalSettings, VisualExpert, make_visual_env

    env = make_visual_env(VisualEvalSettings(vehicle=vehicle))
    try:
        obs, _ = env.reset(seed=5)
        expert = VisualExpert()
        expert.reset([env])
        est, true, raw = [], [], []
        for _ in range(90):
            obs, _, terminated, _, _ = env.step(expert.act([obs], [env])[0])
            assert not terminated
            est.append(drag_velocity(obs))
            true.append(goal_error(obs)[3:5])
            raw.append(obs["imu"][3:5])
    finally:
        env.close()
    est, true, raw = np.array(est), np.array(true), np.array(raw)
    assert np.abs(true[:, 0]).max() > 1.0  # it did fly forward
    assert np.sqrt(np.mean((est[:, 0] - true[:, 0]) ** 2)) < 0.2
    assert np.corrcoef(est[:, 0], true[:, 0])[0, 1] > 0.95
    slope = np.polyfit(true[:, 0], -raw[:, 0], 1)[0]  # the raw reading's scale is the drag per mass
    assert slope == pytest.approx(load_vehicle(vehicle).hover_drag_per_mass[0], rel=0.25)


def test_feature_refuses_a_missing_or_bad_configuration_and_clips():
    imu = np.array([0.0, 0.0, 0.0, -0.9, 0.45, 9.8])
    np.testing.assert_allclose(drag_velocity({"imu": imu, "drag_per_mass_config": np.array([0.45, 0.45])}), [2.0, -1.0])
    with pytest.raises(ValueError, match="drag_per_mass_config"):
        drag_velocity({"imu": imu})
    for bad in ([0.0, 1.0], [np.nan, 1.0], [1.0], [-1.0, 1.0]):
        with pytest.raises(ValueError, match="drag_per_mass_config"):
            drag_velocity({"imu": imu, "drag_per_mass_config": np.array(bad)})
    spike = drag_velocity({"imu": imu * 100, "drag_per_mass_config": np.array([0.45, 0.45])})
    np.testing.assert_allclose(spike, [DRAG_VELOCITY_LIMIT_MPS, -DRAG_VELOCITY_LIMIT_MPS])
    batch = drag_velocity({"imu": np.stack([imu, imu]), "drag_per_mass_config": np.array([[0.45, 0.45], [0.9, 0.9]])})
    np.testing.assert_allclose(batch, [[2.0, -1.0], [1.0, -0.5]])


DRAG_INPUTS = (InputSpec.vector("drag_velocity", 2, std=0.5), InputSpec.vector("imu_accel", 3, mean=[0, 0, 9.81]))


def test_policy_supplies_the_vehicle_files_drag_and_refuses_bad_ones(random_ctbr_model):
    model = random_ctbr_model(DRAG_INPUTS)
    obs = {"imu": np.array([0.0, 0.0, 0.0, -0.5, 0.2, 9.8])}
    q250 = load_vehicle("quad250").hover_drag_per_mass
    given = Policy(model, drag_per_mass_config=q250).step(obs, 1 / 30)
    from_obs = Policy(model).step({**obs, "drag_per_mass_config": np.array(q250)}, 1 / 30)
    np.testing.assert_allclose(given, from_obs, rtol=0, atol=1e-12)
    cf = Policy(model, drag_per_mass_config=load_vehicle("crazyflie2").hover_drag_per_mass).step(obs, 1 / 30)
    assert not np.allclose(cf, given)  # the same reading means another velocity on another airframe
    with pytest.raises(FeatureError, match="drag_per_mass_config"):
        Policy(model).step(obs, 1 / 30)  # neither the policy nor the observation has it
    for bad in ([0.0, 1.0], [float("nan"), 1.0], [1.0]):
        with pytest.raises(ValueError, match="drag_per_mass_config"):
            Policy(model, drag_per_mass_config=bad)


def test_policy_node_builds_the_policy_with_its_vehicles_drag(tmp_path, random_ctbr_model):
    """The ROS node's controller factory (no rclpy needed to build it) hands the vehicle file's
    value to the policy, so a drag_velocity model flies on the vehicle the node is configured for."""
    from lnn_drone.ros.node_config import PolicyNodeConfig
    from lnn_drone.ros.policy_node import build_controller

    path = tmp_path / "m.safetensors"
    random_ctbr_model(DRAG_INPUTS)
    controller, vehicle = build_controller(PolicyNodeConfig(model=str(path), vehicle="quad250"))
    assert vehicle.name == "quad250"
    np.testing.assert_allclose(controller.policy._drag_config, vehicle.hover_drag_per_mass)
    dragless = tmp_path / "dragless.yaml"
    dragless.write_text(yaml.safe_dump({**yaml.safe_load((resources.files("lnn_drone") / "vehicles" / "quad250.yaml")
                                                          .read_text()), "rotor_drag_n_per_rpm_mps": [0.0, 0.0, 0.0]}))
    with pytest.raises(ValueError, match="no rotor drag"):
        build_controller(PolicyNodeConfig(model=str(path), vehicle=str(dragless)))
    hover = build_controller(PolicyNodeConfig(model="", vehicle=str(dragless)))[0]  # a model that does not read it flies
    assert hover.policy._drag_config is None


def test_env_observes_the_episodes_drag_class_with_the_nominal_mass():
    """Under rotor-drag randomization the configured value follows the drawn drag coefficients
    (the airframe class is known to whoever configures it); without it, the vehicle file's."""
    from lnn_drone.sim.envs import HoverEnv

    nominal = load_vehicle("crazyflie2")
    env = HoverEnv(SimConfig(vehicle="crazyflie2"), randomization=RandomizationConfig(enabled=True, rotor_drag_scale=[0.2, 1.0]))
    plain = HoverEnv(SimConfig(vehicle="crazyflie2"), randomization=RandomizationConfig(enabled=True))
    try:
        scales = []
        for seed in range(6):
            obs, _ = env.reset(seed=seed)
            assert env.observation_space["drag_per_mass_config"].contains(obs["drag_per_mass_config"])
            k = env.variation.vehicle.rotor_drag_n_per_rpm_mps[0] / nominal.rotor_drag_n_per_rpm_mps[0]
            scales.append(k)
            np.testing.assert_allclose(obs["drag_per_mass_config"], np.array(nominal.hover_drag_per_mass) * k, rtol=1e-5)
        assert min(scales) < 0.6 < max(scales)
        obs, _ = plain.reset(seed=0)
        assert plain.variation.vehicle.mass_kg != nominal.mass_kg  # randomized truth, configured nominal
        np.testing.assert_allclose(obs["drag_per_mass_config"], nominal.hover_drag_per_mass, rtol=1e-6)
    finally:
        env.close()
        plain.close()
