"""Gymnasium envs, camera, scenes, determinism and domain randomization."""
from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import lnn_drone.sim  # noqa: F401  (registers the envs)
from lnn_drone.config import RandomizationConfig, SimConfig
from lnn_drone.sim.envs import HoverEnv, TaskConfig, VisualTargetEnv
from lnn_drone.sim.quadsim import QuadSim
from lnn_drone.sim.scene import Scene
from lnn_drone.state import DroneState
from lnn_drone.training.evaluation import ExpertAgent


@pytest.mark.parametrize("env_id", ["LnnDrone/Hover-v0", "LnnDrone/VisualTarget-v0"])
def test_registered_envs_pass_check_env(env_id):
    env = gym.make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_ctbr_env_passes_check_env():
    env = HoverEnv(action_mode="ctbr")
    check_env(env, skip_render_check=True)
    env.close()


def test_observation_is_a_dict_of_named_arrays():
    env = HoverEnv()
    obs, info = env.reset(seed=1)
    assert set(obs) == {"imu", "odom", "goal", "last_action", "error_integral", "hover_thrust", "hover_thrust_config",
                        "drag_per_mass_config"}
    assert obs["imu"].shape == (6,) and obs["odom"].shape == (13,) and obs["goal"].shape == (4,)
    assert np.allclose(obs["odom"][3:7] @ obs["odom"][3:7], 1.0, atol=1e-5)  # unit quaternion
    assert np.allclose(obs["goal"], [0, 0, 2, 0])
    env.close()


def test_crash_is_terminated_and_time_limit_is_truncated():
    env = HoverEnv(task=TaskConfig(episode_s=0.5))
    env.reset(seed=0, options={"state": DroneState(position=np.array([0.0, 0.0, 2.0]))})
    hover = np.full(4, env.sim.vehicle.hover_command, np.float32)
    done = []
    for _ in range(200):
        _, _, term, trunc, _ = env.step(hover)
        if term or trunc:
            done.append((term, trunc))
            break
    assert done == [(False, True)]
    env.reset(seed=0, options={"state": DroneState(position=np.array([0.0, 0.0, 0.5]))})
    for _ in range(400):
        _, reward, term, trunc, info = env.step(np.zeros(4, np.float32))  # motors off: falls
        if term or trunc:
            break
    assert term and not trunc and info["crashed"] and reward < -50
    env.close()


def rollout(env, seed, steps=300):
    obs, _ = env.reset(seed=seed)
    agent = ExpertAgent()
    agent.reset([env])
    traj = []
    for _ in range(steps):
        obs, _, term, trunc, _ = env.step(agent.act([obs], [env])[0])
        traj.append(np.concatenate([obs["odom"], obs["imu"]]))
        if term or trunc:
            break
    return np.array(traj)


def test_same_seed_same_trajectory_with_noise_and_randomization():
    env = HoverEnv(randomization=RandomizationConfig(enabled=True, push_prob=0.5, gust_std_mps=[0.0, 0.5]))
    a = rollout(env, seed=11)
    b = rollout(env, seed=11)
    c = rollout(env, seed=12)
    assert a.shape == b.shape and np.array_equal(a, b)
    assert not np.array_equal(a[:10], c[:10])
    env.close()


def test_domain_randomization_draws_from_the_seed():
    env = HoverEnv(randomization=RandomizationConfig(enabled=True, thrust_to_weight=[1.5, 3.0]))
    env.reset(seed=5)
    v1 = env.variation
    env.reset(seed=5)
    v2 = env.variation
    env.reset(seed=6)
    v3 = env.variation
    assert v1.summary() == v2.summary() and v1.summary() != v3.summary()
    assert 1.5 <= v1.vehicle.thrust_to_weight <= 3.0
    env.reset(seed=5)
    assert env.sim.vehicle.mass_kg == pytest.approx(v1.vehicle.mass_kg)
    env.close()


def test_hover_uniform_sampling_spreads_the_hover_thrust_evenly():
    """``thrust_to_weight_sampling: hover_uniform`` draws 1/(T/W) uniformly: T/W stays in range,
    and the low end (T/W < 1.5, hover above 2/3 of the thrust) gets its share, 23 % of 1.3-3."""
    from lnn_drone.sim.randomization import sample_variation
    from lnn_drone.vehicle import load_vehicle

    nominal = load_vehicle("crazyflie2")
    rng = np.random.default_rng(0)
    draws = {}
    for mode in ("uniform", "hover_uniform"):
        cfg = RandomizationConfig(enabled=True, thrust_to_weight=[1.3, 3.0], thrust_to_weight_sampling=mode)
        draws[mode] = np.array([sample_variation(nominal, cfg, rng).vehicle.thrust_to_weight for _ in range(4000)])
        assert draws[mode].min() >= 1.3 - 1e-9 and draws[mode].max() <= 3.0 + 1e-9
    low = {m: float((d < 1.5).mean()) for m, d in draws.items()}
    assert low["uniform"] == pytest.approx(0.2 / 1.7, abs=0.02)
    assert low["hover_uniform"] == pytest.approx((1 / 1.3 - 1 / 1.5) / (1 / 1.3 - 1 / 3.0), abs=0.02)
    hover = 1.0 / draws["hover_uniform"]
    assert np.histogram(hover, bins=4)[0].min() > 0.8 * len(hover) / 4, "hover thrust not spread evenly"


def camera_world(width: int = 64, height: int = 64) -> tuple[QuadSim, Scene]:
    """A camera drone at 1.5 m in a scene, ready to render."""
    cfg = SimConfig()
    cfg.camera.enabled = True
    cfg.camera.width, cfg.camera.height = width, height
    sim = QuadSim(cfg, seed=0)
    scene = Scene(sim.client, sim.plane_id)
    sim.reset(DroneState(position=np.array([0.0, 0.0, 1.5])))
    return sim, scene


def red_pixels(img: np.ndarray) -> int:
    r, g, b = img[..., 0].astype(int), img[..., 1].astype(int), img[..., 2].astype(int)
    return int(((r > 150) & (g < 90) & (b < 90)).sum())


def test_camera_sees_the_target_ahead_and_not_behind():
    sim, scene = camera_world(64, 48)
    scene.set_target([3.0, 0.0, 1.5], radius=0.3, rgba=(1.0, 0.05, 0.05, 1.0))
    img = sim.camera.render(sim.position, sim.rotation_matrix)
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert red_pixels(img) > 10
    ys, xs = np.nonzero((img[..., 0] > 150) & (img[..., 1] < 90))
    assert abs(xs.mean() - 31.5) < 4 and abs(ys.mean() - 23.5) < 4  # centred: straight ahead
    scene.set_target([-3.0, 0.0, 1.5], radius=0.3, rgba=(1.0, 0.05, 0.05, 1.0))
    assert red_pixels(sim.camera.render(sim.position, sim.rotation_matrix)) == 0
    # target to the left (+y) appears in the left half of the image
    scene.set_target([3.0, 1.5, 1.5], radius=0.3, rgba=(1.0, 0.05, 0.05, 1.0))
    img = sim.camera.render(sim.position, sim.rotation_matrix)
    ys, xs = np.nonzero((img[..., 0] > 150) & (img[..., 1] < 90))
    assert len(xs) > 0 and xs.mean() < 31.5
    sim.close()


def test_camera_is_strapdown_rolls_with_the_body():
    sim, scene = camera_world()
    scene.set_target([3.0, 0.0, 2.5], radius=0.3, rgba=(1.0, 0.05, 0.05, 1.0))  # above the horizon
    from lnn_drone.frames import axis_angle_to_quat
    sim.reset(DroneState(position=np.array([0.0, 0.0, 1.5])))
    img = sim.camera.render(sim.position, sim.rotation_matrix)
    _, xs_level = np.nonzero((img[..., 0] > 150) & (img[..., 1] < 90))
    assert abs(xs_level.mean() - 31.5) < 2
    sim.reset(DroneState(position=np.array([0.0, 0.0, 1.5]), quaternion=axis_angle_to_quat([1, 0, 0], math.radians(40))))
    img = sim.camera.render(sim.position, sim.rotation_matrix)
    ys, xs = np.nonzero((img[..., 0] > 150) & (img[..., 1] < 90))
    assert len(xs) > 0
    # rolled left side up (+x rotation, FLU), a target above the horizon appears up and to the LEFT:
    # camera-left in the world is (0, cos θ, sin θ), so world +z has a positive left component
    assert xs.mean() < 29
    sim.close()


def test_camera_aspect_ratio_keeps_a_sphere_round():
    sim, scene = camera_world(96, 48)
    scene.set_target([2.0, 0.0, 1.5], radius=0.3, rgba=(1.0, 0.05, 0.05, 1.0))
    img = sim.camera.render(sim.position, sim.rotation_matrix)
    ys, xs = np.nonzero((img[..., 0] > 150) & (img[..., 1] < 90))
    width, height = xs.max() - xs.min() + 1, ys.max() - ys.min() + 1
    assert width == pytest.approx(height, abs=2)
    sim.close()


def test_visual_target_env_places_target_within_the_task_limits():
    env = VisualTargetEnv()
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        target = info["target_position"]
        start = np.array(env.task.goal[:3])
        d = np.linalg.norm(target[:2] - start[:2])
        bearing = math.degrees(math.atan2(target[1] - start[1], target[0] - start[0]))
        assert 2.0 - 1e-6 <= d <= 6.0 + 1e-6 and abs(bearing) <= 45.0 + 1e-6
        assert abs(target[2] - start[2]) <= 1.0 + 1e-6
        goal = env.goal
        assert np.linalg.norm(goal[:2] - target[:2]) == pytest.approx(1.0)  # 1 m stand-off
        assert obs["image"].shape == (64, 64, 3)
        assert red_pixels(obs["image"]) > 0  # the target is in view at the start
    env.close()


def test_scene_randomization_changes_the_image():
    env = VisualTargetEnv()
    a = env.reset(seed=1)[0]["image"]
    b = env.reset(seed=2)[0]["image"]
    a2 = env.reset(seed=1)[0]["image"]
    assert not np.array_equal(a, b)
    assert np.array_equal(a, a2)
    env.close()


def test_render_rgb_array():
    env = HoverEnv(render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (240, 320, 3)
    env.close()
