"""The evaluation protocol and the classical expert that flies it."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from lnn_drone.training.evaluation import EvalSettings, ExpertAgent, episode_conditions, evaluate
from lnn_drone.training.stats import wilson_interval
from lnn_drone.vehicle import load_vehicle


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(95, 100)
    assert lo == pytest.approx(0.8883, abs=1e-3) and hi == pytest.approx(0.9785, abs=1e-3)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and 0.25 < hi < 0.35
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)


@pytest.mark.parametrize("tier, max_deg, vel, rate", [("A30", 30, 1, 1), ("A45", 45, 1, 1), ("A90", 90, 2, 2)])
def test_initial_states_respect_the_tier(tier, max_deg, vel, rate):
    settings = EvalSettings(tier=tier)
    v = load_vehicle("crazyflie2")
    angles = []
    for i in range(200):
        state, goal, _, _ = episode_conditions(settings, i, v)
        assert np.linalg.norm(state.position - goal[:3]) <= 1.0
        assert np.linalg.norm(state.velocity) <= vel
        assert np.linalg.norm(state.angular_velocity) <= rate
        angles.append(np.degrees(2 * np.arccos(min(1.0, abs(state.quaternion[3])))))
    assert max(angles) <= max_deg + 1e-6 and max(angles) > 0.8 * max_deg


def test_episode_conditions_are_a_pure_function_of_the_seed():
    v = load_vehicle("crazyflie2")
    a = episode_conditions(EvalSettings(seed=3), 7, v)
    b = episode_conditions(EvalSettings(seed=3), 7, v)
    c = episode_conditions(EvalSettings(seed=4), 7, v)
    assert np.array_equal(a[0].as_vector(), b[0].as_vector()) and a[3] == b[3]
    assert not np.array_equal(a[0].as_vector(), c[0].as_vector())


def test_evaluation_is_deterministic_for_a_seed():
    s1 = evaluate(ExpertAgent(), EvalSettings(tier="A45", episodes=3, seed=5))
    s2 = evaluate(ExpertAgent(), EvalSettings(tier="A45", episodes=3, seed=5))
    assert s1.to_json_dict() == s2.to_json_dict()


@pytest.mark.slow
def test_expert_succeeds_on_a45():
    summary = evaluate(ExpertAgent(), EvalSettings(tier="A45", episodes=50, seed=0))
    assert summary.success_rate >= 0.95, summary.to_json_dict()
    assert summary.crash_rate == 0.0
    assert summary.rmse_m_median < 0.03


def test_expert_rejects_a_constant_push_with_its_integral():
    s = evaluate(ExpertAgent(), EvalSettings(tier="A30", episodes=3, seed=1, push_frac=0.2))
    assert s.success_rate == 1.0 and s.steady_offset_m < 0.05


def test_expert_flies_the_250mm_quad():
    s = evaluate(ExpertAgent(), EvalSettings(tier="A30", episodes=3, seed=1, vehicle="quad250"))
    assert s.success_rate == 1.0


def test_ctbr_mode_flies_through_the_simulated_rate_loop():
    s = evaluate(ExpertAgent(), EvalSettings(tier="A30", episodes=3, seed=2, action_mode="ctbr"))
    assert s.success_rate == 1.0


def test_vertical_speed_floor_keeps_the_vertical_gains_and_only_them():
    """A slowed-down controller (slow motors) with the vertical floor at 1 answers a vertical error
    as at full speed and a horizontal one as slowed; with no floor it slows both."""
    from lnn_drone.control.geometric import BatchGeometricController, GeometricGains

    def command(error, speed, floor):
        c = BatchGeometricController([0.03], [0.6], GeometricGains(vertical_speed_min=floor), speed=speed)
        thrust, rates = c(np.array([[0.0, 0.0, 2.0]]) + np.asarray(error), np.array([[0.0, 0.0, 0.0, 1.0]]),
                          np.zeros((1, 3)), np.array([[0.0, 0.0, 2.0, 0.0]]), 0.0)
        return thrust[0], rates[0]

    below = [0.0, 0.0, -0.3]
    assert command(below, 0.5, 0.0)[0] < command(below, 1.0, 0.0)[0]            # slowed: climbs less
    assert command(below, 0.5, 1.0)[0] == pytest.approx(command(below, 1.0, 0.0)[0], rel=1e-9)
    aside = [0.3, -0.2, 0.0]
    np.testing.assert_allclose(command(aside, 0.5, 1.0)[1], command(aside, 0.5, 0.0)[1], rtol=1e-9)
    assert np.abs(command(aside, 0.5, 0.0)[1]).max() < np.abs(command(aside, 1.0, 0.0)[1]).max()
    with pytest.raises(ValueError, match="vertical_speed_min"):
        ExpertAgent(teacher="adaptive", vertical_speed_min=1.5)


def test_impossible_thrust_to_weight_fails_honestly():
    # T/W 1.05 leaves almost no margin: the protocol must report failures, not hide them
    s = evaluate(ExpertAgent(), EvalSettings(tier="A90", episodes=4, seed=0, thrust_to_weight=1.05))
    assert s.success_rate < 1.0


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "lnn_drone.cli", *args], capture_output=True, text=True, timeout=600)


def test_eval_cli_prints_one_json_object():
    r = run_cli("eval", "--controller", "expert", "--tier", "A45", "--episodes", "2", "--seed", "3", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    for key in ("success_rate", "success_ci_low", "crash_rate", "rmse_m_median", "settle_s_median", "episodes"):
        assert key in out
    assert out["episodes"] == 2 and out["success_rate"] == 1.0


@pytest.mark.parametrize("args, words", [
    (["--tier", "A60"], "unknown tier"),
    (["--episodes", "0"], "episodes must be"),
    (["--vehicle", "nope"], "unknown vehicle"),
    (["--tw", "0.5"], "thrust-to-weight"),
])
def test_eval_cli_rejects_bad_arguments(args, words):
    r = run_cli("eval", "--controller", "expert", *args, "--json")
    assert r.returncode == 2 and words in r.stderr and r.stdout == ""
