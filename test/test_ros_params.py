"""Policy node parameters over real DDS: descriptors with ranges, validation in the callback,
run-time changes that take effect, atomic-or-refused model swap, and the lifecycle variant."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from lnn_drone.ros.testing import RosHarness, random_model  # noqa: E402
from lnn_drone.state import DroneState  # noqa: E402
from lnn_drone.vehicle import load_vehicle  # noqa: E402

PERIOD_NS = int(round(1e9 / 240))
HOVER = load_vehicle("crazyflie2").hover_command
IMU = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 9.80665])
STATE = DroneState(position=np.array([0.0, 0.0, 2.0]))


def _tick(h, k, imu=IMU, wait=5.0):
    t = k * PERIOD_NS
    h.publish_clock(t)
    h.publish_sensors(t, imu=imu, odom_state=STATE)
    return h.command_for(t, wait)


@pytest.fixture
def graph(tmp_path):
    model = random_model(tmp_path / "a.safetensors", seed=1)
    with RosHarness(tmp_path / "logs") as h:
        h.collect_commands()
        h.start("policy_node", "policy", {"model": str(model), "use_sim_time": True, "control_rate_hz": 240.0})
        assert h.wait_for_subscriber("imu") and h.wait_for_subscriber("odom") and h.wait_for_subscriber("/clock") and h.wait_for_publisher("motor_commands")
        h.publish_goal([0.0, 0.0, 2.0, 0.0])
        h.spin_for(0.3)
        yield h, tmp_path


def test_out_of_range_and_bad_choices_are_rejected_with_a_reason(graph):
    h, _ = graph
    (r,) = h.set_parameters("policy", {"input_timeout_periods": 0.5})
    assert not r.successful and "input_timeout_periods" in r.reason, r.reason
    (r,) = h.set_parameters("policy", {"failsafe_action": "fly_away"})
    assert not r.successful and "motors_off" in r.reason, r.reason
    (r,) = h.set_parameters("policy", {"controller": "expert"})  # read-only while running
    assert not r.successful and r.reason
    (r,) = h.set_parameters("policy", {"descend_thrust_frac": 7})  # an integer out of range (dynamic typing)
    assert not r.successful and "descend_thrust_frac" in r.reason
    assert h.get_parameters("policy", ["failsafe_action", "input_timeout_periods"]) == ["motors_off", 1.5]


def test_valid_change_takes_effect(graph):
    h, _ = graph
    for k in range(1, 5):
        _tick(h, k)
    results = h.set_parameters("policy", {"failsafe_action": "descend", "descend_thrust_frac": 0.5})
    assert all(r.successful for r in results), [r.reason for r in results]
    assert h.get_parameters("policy", ["failsafe_action"]) == ["descend"]
    nan = IMU.copy()
    nan[0] = np.nan
    cmd = _tick(h, 5, imu=nan)
    assert cmd is not None and np.allclose(cmd[1], 0.5 * HOVER), cmd


def test_model_swap_is_atomic_or_refused(graph, tmp_path):
    h, _ = graph
    for k in range(1, 4):
        before = _tick(h, k)
    same_inputs = random_model(tmp_path / "b.safetensors", seed=2)
    (r,) = h.set_parameters("policy", {"model": str(same_inputs)})
    assert r.successful, r.reason
    after = _tick(h, 4)
    assert after is not None and not np.allclose(after[1], before[1])  # another network now
    other_inputs = random_model(tmp_path / "c.safetensors", inputs=("imu", "goal"))
    (r,) = h.set_parameters("policy", {"model": str(other_inputs)})
    assert not r.successful and "restart" in r.reason, r.reason
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"garbage")
    (r,) = h.set_parameters("policy", {"model": str(corrupt)})
    assert not r.successful and "corrupt.safetensors" in r.reason, r.reason
    assert h.get_parameters("policy", ["model"]) == [str(same_inputs)]
    assert _tick(h, 5) is not None  # still flying the accepted model


def test_lifecycle_node_commands_only_while_active(tmp_path):
    model = random_model(tmp_path / "a.safetensors")
    with RosHarness(tmp_path / "logs") as h:
        h.collect_commands()
        h.start("policy_lifecycle_node", "policy", {"model": str(model), "use_sim_time": True, "control_rate_hz": 240.0})
        assert h.lifecycle("policy", "configure")
        assert h.wait_for_subscriber("imu") and h.wait_for_subscriber("odom") and h.wait_for_subscriber("/clock")
        h.publish_goal([0.0, 0.0, 2.0, 0.0])
        h.spin_for(0.3)
        assert _tick(h, 1, wait=0.5) is None, "an inactive node must not command"
        assert h.lifecycle("policy", "activate")
        h.spin_for(0.2)
        assert _tick(h, 2) is not None
        assert h.lifecycle("policy", "deactivate")
        h.spin_for(0.2)
        n = len(h.commands)
        _tick(h, 3, wait=0.5)
        assert len(h.commands) == n


def test_lifecycle_configure_fails_cleanly_on_a_bad_model(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"")
    with RosHarness(tmp_path / "logs") as h:
        proc = h.start("policy_lifecycle_node", "policy", {"model": str(bad)})
        assert not h.lifecycle("policy", "configure")
        assert proc.poll() is None  # unconfigured, alive, can be fixed and configured again


def test_realtime_priority_is_applied_or_refused_with_a_reason():
    """``realtime_priority``: every thread of the process goes under SCHED_FIFO where permitted;
    where not, a message that says what is missing, and the process runs on."""
    import os
    import subprocess
    import sys

    code = ("import os, threading, time\n"
            "from lnn_drone.ros.scheduling import apply_realtime_priority\n"
            "t = threading.Thread(target=time.sleep, args=(2,)); t.start()\n"
            "msg = apply_realtime_priority(7)\n"
            "tids = [int(x) for x in os.listdir('/proc/self/task')]\n"
            "print(msg); print(sorted({os.sched_getscheduler(x) for x in tids}))\n"
            "assert apply_realtime_priority(0) == ''\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    msg, policies = r.stdout.strip().splitlines()
    if msg.startswith("SCHED_FIFO"):
        assert policies == str([os.SCHED_FIFO]), "a thread was left on the normal scheduler"
    else:
        assert "not permitted" in msg and "CAP_SYS_NICE" in msg, msg
