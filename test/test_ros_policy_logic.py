"""The policy node's decisions without DDS (PolicyCore is rclpy-free), and the sim FC backend."""
from __future__ import annotations

import numpy as np
import pytest

from lnn_drone.ros.node_config import PolicyNodeConfig
from lnn_drone.ros.policy_logic import PolicyCore

P = 4_166_667  # ns, 240 Hz


class Echo:
    """A stand-in controller *for the logic only* (the ROS tests fly real models)."""

    required = {"imu", "odom", "goal"}
    mode = "motors"
    neurons = None

    def __init__(self):
        self.resets = 0
        self.dts = []

    def reset(self):
        self.resets += 1

    def compute(self, obs, dt):
        self.dts.append(dt)
        return np.full(4, 0.5)


def core(**cfg):
    c = Echo()
    return PolicyCore(PolicyNodeConfig(failsafe_action="hover", **cfg), c, 0.4, P / 1e9), c


def feed(pc, k, imu=True, odom=True, value=None):
    out = []
    t = k * P
    v6 = np.zeros(6) if value is None else value
    if imu:
        out.append(pc.on_sample("imu", t, v6, t))
    if odom:
        out.append(pc.on_sample("odom", t, np.zeros(13), t))
    return [c for c in out if c is not None]


def test_exact_sync_computes_once_per_tick_with_the_newest_stamp():
    pc, c = core()
    pc.on_sample("goal", 0, np.zeros(4), 0)
    for k in range(1, 5):
        cmds = feed(pc, k)
        assert len(cmds) == 1 and cmds[0].stamp_ns == k * P and not cmds[0].failsafe
    assert c.dts[1:] == [P / 1e9] * 3  # 1 ns stamp rounding snaps to the nominal period


def test_a_resent_tick_is_answered_again_without_a_step_and_a_lost_sample_is_recovered():
    pc, c = core()
    pc.on_sample("goal", 0, np.zeros(4), 0)
    first = feed(pc, 1)
    assert len(first) == 1
    again = feed(pc, 1)  # both samples re-sent: the command may have been lost, so it goes out again
    assert again == first and pc.stats.duplicates == 2
    assert len(c.dts) == 1, "a re-sent tick must not step the network"
    assert feed(pc, 2, odom=False) == []                  # tick 2's odom was dropped on the way
    cmds = feed(pc, 2)                                    # the sim re-sends tick 2
    assert len(cmds) == 1 and cmds[0].stamp_ns == 2 * P and not cmds[0].failsafe
    assert c.dts == [P / 1e9, P / 1e9]                    # never a zero-dt step


def test_a_tick_waits_for_a_late_goal():
    pc, c = core()
    assert feed(pc, 1) == []  # sensors in, no goal yet: this tick waits
    cmd = pc.on_sample("goal", 0, np.zeros(4), P)
    assert cmd is not None and cmd.stamp_ns == P and not cmd.failsafe


def test_missing_goal_is_failsafe_then_recovers_with_a_reset():
    pc, c = core()
    assert feed(pc, 1) == []
    cmd = pc.watchdog(3 * P)
    assert cmd.failsafe and "goal" in cmd.reason and np.allclose(cmd.values, 0.4)
    pc.on_sample("goal", 0, np.zeros(4), 3 * P)
    (cmd,) = feed(pc, 4)
    assert not cmd.failsafe and "recovered" in cmd.reason and c.resets >= 1
    assert pc.stats.failsafe_events == 0  # waiting for inputs at start-up is not an event
    pc.watchdog(10 * P)
    assert pc.stats.failsafe_events == 1


def test_stale_imu_failsafe_by_watchdog_and_nan_never_computes():
    pc, _ = core()
    pc.on_sample("goal", 0, np.zeros(4), 0)
    feed(pc, 1)
    assert pc.watchdog(int(2.4 * P)) is None  # < 1.5 periods after the last sample
    cmd = pc.watchdog(int(2.6 * P))
    assert cmd.failsafe and "stale input imu" in cmd.reason
    (cmd,) = feed(pc, 3, value=np.array([np.nan, 0, 0, 0, 0, 9.8]))
    assert cmd.failsafe and "non-finite" in cmd.reason and np.isfinite(cmd.values).all()


def test_time_going_back_starts_a_new_episode():
    pc, c = core()
    pc.on_sample("goal", 0, np.zeros(4), 0)
    feed(pc, 100)
    r = c.resets
    (cmd,) = feed(pc, 0)
    assert not cmd.failsafe and c.resets == r + 1


@pytest.mark.parametrize("action,expected", [("motors_off", 0.0), ("hover", 0.4), ("descend", 0.4 * 0.85)])
def test_failsafe_actions(action, expected):
    pc, _ = core()
    pc.config.failsafe_action = action
    assert np.allclose(pc.failsafe_values(), expected)


def test_swap_refuses_other_inputs():
    pc, _ = core()
    other = Echo()
    other.required = {"imu"}
    assert "restart" in pc.swap_controller(other)
    assert pc.swap_controller(Echo()) is None


def test_sim_fc_backend_arms_flies_and_times_out():
    from lnn_drone.fc import create_backend
    from lnn_drone.fc.base import BackendUnavailable

    fc = create_backend("sim", command_timeout_s=0.05)
    fc.open()
    try:
        assert fc.poll(100.0) == []  # first poll sets the clock
        fc.arm()
        imu = []
        for i in range(15):  # 0.3 s of commands every 20 ms
            fc.send_motors([0.6] * 4, now=100.0 + 0.02 * i)
            imu += fc.poll(100.0 + 0.02 * (i + 1))
        assert len(imu) >= 70 and imu[-1].accel[2] > 9.8  # thrust above hover: specific force > g
        assert fc.status(100.3).armed
        fc.poll(100.5)  # no command for > 50 ms: the FC's own failsafe
        st = fc.status(100.5)
        assert not st.armed and st.failsafe
    finally:
        fc.close()
    with pytest.raises(BackendUnavailable):
        create_backend("crazyflie")  # betaflight and mavlink exist now (test_fc_msp.py, test_hil_*.py, test_fc_mavlink.py)
