"""The hover-thrust estimate: one rule for the env, the onboard Policy and the adaptive teacher."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lnn_drone.frames import GRAVITY
from lnn_drone.policy.features import FeatureError
from lnn_drone.policy.hover_thrust import PRIOR_HOVER_FRACTION, HoverThrustEstimator
from lnn_drone.policy.policy import Policy
from lnn_drone.ros.testing import random_model
from lnn_drone.training.evaluation import EvalSettings, ExpertAgent, evaluate


def test_converges_to_the_ratio_of_specific_force_and_collective():
    est = HoverThrustEstimator()
    assert est.value[0] == pytest.approx(PRIOR_HOVER_FRACTION)
    # a T/W 1.3 vehicle: hovering at c = 1/1.3 gives f_z = g
    for _ in range(240):
        h = est.update_one(GRAVITY, 1.0 / 1.3, 0.0, 1.0 / 120.0)
    assert h == pytest.approx(1.0 / 1.3, rel=1e-3)
    # the estimate is a ratio, not a hover detector: climbing at c = 0.9 tells the same thing
    for _ in range(240):
        h = est.update_one(0.9 * 1.3 * GRAVITY, 0.9, 0.0, 1.0 / 120.0)
    assert h == pytest.approx(1.0 / 1.3, rel=1e-3)


def test_rotor_drag_of_a_fast_descent_is_not_read_as_thrust():
    """Falling, rotor drag adds specific force: f_z = theta c + beta v sqrt(c). The estimate must
    stay at the true hover fraction through a descent, where a ratio f_z / c would read a
    stronger vehicle (and a teacher on it would command less and fall further)."""
    theta, beta, dt = 1.3 * GRAVITY, -2.4, 1.0 / 120.0
    est = HoverThrustEstimator()
    rng = np.random.default_rng(0)
    c = thrust = 1.0 / 1.3
    for k in range(600):
        v = -2.0 * math.sin(k * dt * 3.0) ** 2          # repeated descents up to 2 m/s
        c = float(np.clip(c + rng.normal(0.0, 0.01), 0.5, 0.95))
        thrust += (c - thrust) * (1.0 - math.exp(-dt / 0.05))  # the rotors lag the command by 50 ms
        h = est.update_one(theta * thrust + beta * v * math.sqrt(thrust), c, v, dt)
        if k > 120:
            assert h == pytest.approx(1.0 / 1.3, rel=0.03), k
    ratio = (theta * c + beta * -2.0 * math.sqrt(c)) / c
    assert GRAVITY / ratio < 0.85 / 1.3, "the scenario is not one where drag fools a plain ratio"


def test_it_starts_at_the_first_command_and_ignores_bad_samples():
    est = HoverThrustEstimator()
    # after a reset the fed-back command is zero while the rotors spin: no information, no change
    for _ in range(10):
        est.update_one(GRAVITY, 0.0, 0.0, 0.01)
    assert est.value[0] == pytest.approx(PRIOR_HOVER_FRACTION)
    for _ in range(100):
        est.update_one(GRAVITY, 0.3, 0.0, 0.01)
    before = est.value.copy()
    for bad in ((np.nan, 0.3, 0.0), (GRAVITY, np.inf, 0.0), (GRAVITY, 0.3, np.nan)):
        est.update_one(*bad, 0.01)
    est.update_one(GRAVITY, 0.3, 0.0, float("nan"))
    np.testing.assert_array_equal(est.value, before)
    est.reset()
    assert est.value[0] == pytest.approx(PRIOR_HOVER_FRACTION)


def test_one_vehicle_fast_path_follows_the_batch_rule():
    rng = np.random.default_rng(5)
    one, batch = HoverThrustEstimator(1), HoverThrustEstimator(3)
    for k in range(300):
        fz = rng.normal(GRAVITY, 2.0, 3)
        c = np.clip(rng.normal(0.4, 0.2, 3), 0.0, 1.0)
        vz = rng.normal(0.0, 1.0, 3)
        if k < 3:
            c[:] = 0.0  # not started yet
        if k % 40 == 11:
            fz[0] = np.nan
        if k % 50 == 17:
            vz[0] = np.inf
        a = one.update_one(float(fz[0]), float(c[0]), float(vz[0]), 0.01)
        b = batch.update(fz, c, vz, 0.01)
        assert a == pytest.approx(b[0], abs=1e-9)
        np.testing.assert_allclose(one.cov[0], batch.cov[0], atol=1e-9)
    assert abs(one.value[0] - PRIOR_HOVER_FRACTION) > 1e-3


def _model(path) -> Policy:
    return Policy.load(random_model(path, seed=3, inputs=("imu", "goal_error", "hover_thrust"), control_period=1.0 / 120.0))


@pytest.mark.parametrize("thrust_to_weight", [1.3, 3.0])
def test_policy_keeps_the_same_estimate_as_the_env_and_both_find_the_truth(tmp_path, thrust_to_weight):
    """Env (training) and Policy (drone) compute the same estimate from the same stream, and it
    reaches the true hover fraction of a vehicle far from the prior."""
    from lnn_drone.config import RandomizationConfig
    from lnn_drone.sim.envs import HoverEnv, TaskConfig

    rand = RandomizationConfig(enabled=True, thrust_to_weight=[thrust_to_weight, thrust_to_weight])
    env = HoverEnv(task=TaskConfig(episode_s=3.0), randomization=rand)
    policy = _model(tmp_path / "m.safetensors")
    pilot = ExpertAgent(teacher="adaptive")  # flies; the policy only computes
    obs, _ = env.reset(seed=4)
    pilot.reset([env])
    v = env.unwrapped.variation.vehicle
    true_hover = v.mass_kg * GRAVITY / (4.0 * v.max_thrust_per_rotor_n)
    assert true_hover == pytest.approx(1.0 / thrust_to_weight, rel=0.02)
    for _ in range(env.max_steps):
        action = pilot.act([obs], [env])[0]
        # Policy feeds back its own command; here the pilot's is what flew, so pass it as last_action
        policy.step({k: obs[k] for k in ("imu", "odom", "goal", "last_action")}, env.control_dt)
        assert policy._hover_estimator.value[0] == pytest.approx(float(obs["hover_thrust"][0]), abs=1e-6)
        obs, _, term, trunc, _ = env.step(action)
        if term or trunc:
            break
    env.close()
    assert not term
    assert float(obs["hover_thrust"][0]) == pytest.approx(true_hover, rel=0.05)


def test_policy_refuses_a_hover_thrust_model_without_imu_or_odometry(tmp_path):
    p = _model(tmp_path / "m.safetensors")
    with pytest.raises(FeatureError, match="imu"):
        p.step({"odom": np.zeros(13), "goal": np.zeros(4)}, 0.01)
    with pytest.raises(FeatureError, match="odom"):
        p.step({"imu": np.zeros(6), "goal": np.zeros(4)}, 0.01)


def test_body_z_velocity_of_a_tilted_vehicle():
    from lnn_drone.policy.hover_thrust import body_z_velocity

    odom = np.zeros(13)
    odom[3:7] = (0.0, 0.0, 0.0, 1.0)
    odom[7:10] = (0.0, 0.0, -2.0)
    assert body_z_velocity(odom) == pytest.approx(-2.0)
    odom[3:7] = (math.sin(math.pi / 4), 0.0, 0.0, math.cos(math.pi / 4))  # rolled 90°: body z = world -y
    odom[7:10] = (0.0, 1.5, 0.0)
    assert body_z_velocity(odom) == pytest.approx(-1.5)


def test_adaptive_teacher_flies_the_grid_corners_the_integral_teacher_cannot():
    """With the estimated hover thrust the teacher flies T/W 1.3 at 20 ms latency (the integral
    teacher, on the nominal hover thrust, crashes or drifts there) and rejects a push."""
    for extra in ({"thrust_to_weight": 1.3, "latency_ms": 20.0}, {"thrust_to_weight": 3.0, "latency_ms": 20.0},
                  {"push_frac": 0.2}):
        s = EvalSettings(tier="A30", episodes=2, seed=0, control_hz=120.0, **extra)
        r = evaluate(ExpertAgent(teacher="adaptive"), s)
        assert r.success_rate == 1.0, extra
        assert r.steady_offset_m < 0.05, (extra, r.steady_offset_m)
    s = EvalSettings(tier="A30", episodes=2, seed=0, control_hz=120.0, thrust_to_weight=1.3, latency_ms=20.0)
    assert evaluate(ExpertAgent(teacher="integral"), s).success_rate < 1.0
