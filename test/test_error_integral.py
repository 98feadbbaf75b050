"""The position-error integral: one rule for the env, the onboard Policy and the teacher."""
from __future__ import annotations

import numpy as np
import pytest

from lnn_drone.policy.error_integral import ERROR_CLIP_M, LIMIT_M_S, SPEED_GATE_MPS, ErrorIntegrator
from lnn_drone.policy.features import FeatureError
from lnn_drone.policy.policy import Policy
from lnn_drone.ros.testing import random_model
from lnn_drone.training.evaluation import EvalSettings, ExpertAgent, evaluate


def _odom(pos, vel=(0.0, 0.0, 0.0), quat=(0.0, 0.0, 0.0, 1.0)):
    return np.array([*pos, *quat, *vel, 0.0, 0.0, 0.0])


GOAL = np.array([0.0, 0.0, 2.0, 0.0])


def test_integrates_clipped_error_only_while_still():
    it = ErrorIntegrator()
    v = it.update(_odom((0.1, -2.0, 2.0)), GOAL, 0.5)
    assert v[0] == pytest.approx([0.05, -ERROR_CLIP_M * 0.5, 0.0])
    moving = it.update(_odom((0.1, 0.0, 2.0), vel=(0.0, 2 * SPEED_GATE_MPS, 0.0)), GOAL, 0.5)
    assert moving[0] == pytest.approx([0.05, -ERROR_CLIP_M * 0.5, 0.0]), "a moving vehicle must not wind it up"
    for _ in range(100):
        it.update(_odom((0.0, 0.0, 3.0)), GOAL, 1.0)
    assert it.value[0, 2] == pytest.approx(LIMIT_M_S)
    it.reset()
    assert not it.value.any()


def test_non_finite_samples_leave_it_untouched_and_bad_shapes_are_refused():
    it = ErrorIntegrator()
    it.update(_odom((0.2, 0.0, 2.0)), GOAL, 1.0)
    before = it.value.copy()
    it.update(_odom((np.nan, 0.0, 2.0)), GOAL, 1.0)
    np.testing.assert_array_equal(it.value, before)
    with pytest.raises(ValueError, match="odom"):
        it.update(np.zeros(7), GOAL, 1.0)


def _integral_model(path) -> Policy:
    return Policy.load(random_model(path, seed=3, inputs=("imu", "goal_error", "goal_error_integral"), control_period=1.0 / 120.0))


def test_policy_keeps_the_same_integral_as_the_env(tmp_path):
    """The env's ``error_integral`` (training) and the one Policy keeps itself (the drone) agree,
    so a model is fed on board exactly what it was trained on."""
    from lnn_drone.sim.envs import HoverEnv, TaskConfig

    env = HoverEnv(task=TaskConfig(episode_s=3.0))
    onboard, trained = _integral_model(tmp_path / "a.safetensors"), _integral_model(tmp_path / "b.safetensors")
    pilot = ExpertAgent(teacher="integral")  # flies; the two policies only compute
    obs, _ = env.reset(seed=4)
    pilot.reset([env])
    dt = env.control_dt
    integral_seen = []
    for _ in range(env.max_steps):
        a = onboard.step({k: v for k, v in obs.items() if k != "error_integral"}, dt)
        b = trained.step(obs, dt)
        np.testing.assert_allclose(a, b, atol=1e-5)
        integral_seen.append(np.abs(obs["error_integral"]).sum())
        obs, _, term, trunc, _ = env.step(pilot.act([obs], [env])[0])
        if term or trunc:
            break
    env.close()
    assert max(integral_seen) > 0.0, "the episode never integrated anything: the check above proved nothing"


def test_policy_refuses_an_integral_model_without_odometry(tmp_path):
    p = _integral_model(tmp_path / "m.safetensors")
    with pytest.raises(FeatureError, match="odom"):
        p.step({"imu": np.zeros(6), "goal": GOAL}, 0.01)


def test_integral_teacher_rejects_a_push_and_finds_the_hover_thrust_it_was_not_told():
    """The teacher flies with the nominal hover thrust; the observed integral must remove the
    steady offset of a constant push and of another thrust-to-weight."""
    for extra in ({"push_frac": 0.2}, {"thrust_to_weight": 1.6}):
        s = EvalSettings(tier="A30", episodes=2, seed=0, **extra)
        r = evaluate(ExpertAgent(teacher="integral"), s)
        assert r.success_rate == 1.0, extra
        assert r.steady_offset_m < 0.05, (extra, r.steady_offset_m)


def test_unknown_teacher_is_refused():
    with pytest.raises(ValueError, match="teacher"):
        ExpertAgent(teacher="oracle")


def test_goal_error_of_one_sample_equals_the_batch_computation():
    """The onboard node's scalar fast path and the batched training path are the same maths."""
    from lnn_drone.policy.drone_features import goal_error

    rng = np.random.default_rng(0)
    odom = rng.normal(size=(64, 13))
    odom[:, 3:7] *= rng.uniform(0.5, 2.0, (64, 1))  # non-unit quaternions are normalised by both
    goal = rng.normal(size=(64, 4))
    batch = goal_error({"odom": odom, "goal": goal})
    one = np.stack([goal_error({"odom": o, "goal": g}) for o, g in zip(odom, goal)])
    np.testing.assert_allclose(one, batch, atol=1e-12)
    nan = goal_error({"odom": np.full(13, np.nan), "goal": goal[0]})
    assert nan.shape == (11,) and np.isnan(nan).any()


def test_goal_error_integral_of_one_sample_equals_the_batch_computation():
    from lnn_drone.policy.drone_features import goal_error_integral

    rng = np.random.default_rng(1)
    odom = rng.normal(size=(32, 13))
    integral = rng.normal(size=(32, 3))
    batch = goal_error_integral({"odom": odom, "error_integral": integral})
    one = np.stack([goal_error_integral({"odom": o, "error_integral": i}) for o, i in zip(odom, integral)])
    np.testing.assert_allclose(one, batch, atol=1e-12)


def test_one_vehicle_fast_path_follows_the_batch_rule():
    """The per-tick scalar path (one vehicle, 1-D samples) and the batched path agree."""
    rng = np.random.default_rng(2)
    one, batch = ErrorIntegrator(1), ErrorIntegrator(1)
    for k in range(400):
        odom = _odom(rng.normal(0, 0.4, 3) + [0, 0, 2], vel=rng.normal(0, 0.2, 3))
        if k % 50 == 7:
            odom[0] = np.nan
        a = one.update(odom, GOAL, 0.01)
        b = batch.update(odom[None], GOAL[None], 0.01)
        np.testing.assert_allclose(a, b, atol=1e-12)
    assert np.abs(one.value).sum() > 0.0
