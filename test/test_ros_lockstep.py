"""Closed-loop lockstep flights over ROS (sim_node + policy_node processes, real DDS) fly the
same seeded A30 episodes as the in-process evaluation and must give the same results."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")

from lnn_drone.ros.testing import RosHarness, random_model  # noqa: E402
from lnn_drone.training.agents import PolicyAgent  # noqa: E402  (the in-process reference, numpy runtime)
from lnn_drone.training.evaluation import EvalSettings, ExpertAgent, evaluate  # noqa: E402

TRAJ_TOL_M = 1e-6


def fly_over_ros(tmp_path, policy_params: dict, episodes: int, control_hz: float = 240.0) -> dict:
    results = tmp_path / "results.json"
    with RosHarness(tmp_path / "logs") as h:
        h.start("policy_node", "policy", {"use_sim_time": True, "control_rate_hz": control_hz, "sync": "exact", **policy_params})
        # the lockstep timeout is a hang guard here, not a deadline: on a loaded 2-core machine a
        # command may legitimately take seconds, and a timed-out tick would change the trajectory
        sim = h.start("sim_node", "sim", {"lockstep": True, "lockstep_timeout_s": 120.0,
                                          "sim.control_hz": control_hz, "episode.count": episodes, "episode.tier": "A30",
                                          "episode.seed": 0, "results_file": str(results), "exit_when_done": True})
        rc = sim.wait(timeout=60 + 30 * episodes)  # hang guard only
        assert rc == 0, h.graph.log_tail("sim")
    return json.loads(results.read_text())


def _compare(ros: dict, reference) -> None:
    assert ros["link"]["lockstep_timeouts"] == 0
    assert ros["link"]["control_rate_achieved_frac"] == 1.0
    assert len(ros["episodes"]) == len(reference.results)
    for ep, ref in zip(ros["episodes"], reference.results):
        assert ep["success"] == ref.success and ep["crashed"] == ref.crashed, ep["index"]
        pos = np.asarray(ep["trajectory"]["position"])
        assert pos.shape == ref.trajectory["position"].shape, ep["index"]
        assert np.abs(pos - ref.trajectory["position"]).max() < TRAJ_TOL_M, ep["index"]


def test_expert_over_ros_matches_in_process_on_10_a30_episodes(tmp_path):
    ros = fly_over_ros(tmp_path, {"controller": "expert"}, episodes=10)
    ref = evaluate(ExpertAgent(), EvalSettings(tier="A30", episodes=10, seed=0), record=True)
    _compare(ros, ref)
    assert ros["summary"]["success_rate"] == ref.success_rate
    assert ref.success_rate > 0.5  # the comparison is about flights that fly


def test_model_file_over_ros_matches_in_process(tmp_path):
    # a random CfC network does not fly; its (short) trajectories must still match exactly
    model = random_model(tmp_path / "m.safetensors", seed=3)
    ros = fly_over_ros(tmp_path, {"controller": "policy", "model": str(model)}, episodes=3)
    ref = evaluate(PolicyAgent(model), EvalSettings(tier="A30", episodes=3, seed=0), record=True)
    _compare(ros, ref)


SHIPPED = Path(__file__).resolve().parents[1] / "models" / "hover.safetensors"


@pytest.mark.skipif(not SHIPPED.exists(), reason="models/hover.safetensors not trained yet")
def test_shipped_model_over_ros_matches_in_process(tmp_path):
    """The shipped model reads state the node keeps itself (its last command, the error integral,
    the hover-thrust estimate): over ROS it must fly the trajectories it flies in process."""
    ros = fly_over_ros(tmp_path, {"controller": "policy", "model": str(SHIPPED)}, episodes=2, control_hz=120.0)
    ref = evaluate(PolicyAgent(SHIPPED), EvalSettings(tier="A30", episodes=2, seed=0, control_hz=120.0), record=True)
    _compare(ros, ref)
    assert ros["summary"]["success_rate"] == ref.success_rate == 1.0


def test_lockstep_sim_resends_a_tick_that_got_no_command(tmp_path):
    """A dropped best-effort sample must not stall a lockstep flight: the tick is re-sent."""
    from sensor_msgs.msg import Imu, JointState

    from lnn_drone.ros import convert as cv

    stamps: list[int] = []
    with RosHarness(tmp_path / "logs") as h:
        h.node.create_subscription(Imu, "imu", lambda m: stamps.append(cv.msg_to_ns(m.header.stamp)), cv.SENSOR_QOS)
        h.publisher(JointState, "motor_commands", cv.COMMAND_QOS)  # a controller that never answers
        h.start("sim_node", "sim", {"lockstep": True, "lockstep_timeout_s": 600.0, "lockstep_resend_s": 0.2,
                                    "episode.count": 1, "episode.seed": 0})
        assert h.spin_until(lambda: len(stamps) >= 3, 120), "the sim sent no IMU samples"
        assert len(set(stamps)) == 1, "the sim moved on without a command"
