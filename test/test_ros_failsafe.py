"""Policy node failsafe over real DDS: the test process plays the simulator (publishes /clock and
sensors in sim time) against a policy_node process running a model file."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

pytest.importorskip("rclpy")

from lnn_drone.ros.env import ros_environment  # noqa: E402
from lnn_drone.ros.launcher import executable_command  # noqa: E402
from lnn_drone.ros.testing import RosHarness, random_model  # noqa: E402
from lnn_drone.state import DroneState  # noqa: E402
from lnn_drone.vehicle import load_vehicle  # noqa: E402

PERIOD_NS = int(round(1e9 / 240))
HOVER = load_vehicle("crazyflie2").hover_command
IMU_OK = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 9.80665])
STATE = DroneState(position=np.array([0.0, 0.0, 2.0]))


def _tick(h: RosHarness, k: int, imu=IMU_OK, odom=True, wait: float = 20.0, resend_s: float = 1.0):
    """Publish tick ``k``'s sensors and wait for its command (``wait``: a hang guard), re-sending
    like the lockstep sim does: sensor QoS is best effort and a loaded machine may drop a sample."""
    t = k * PERIOD_NS
    waited = 0.0
    while waited < wait:
        h.publish_clock(t)
        h.publish_sensors(t, imu=imu, odom_state=STATE if odom else None)
        cmd = h.command_for(t, min(resend_s, wait - waited))
        if cmd is not None:
            return cmd
        waited += resend_s
    return None


def _values(status) -> dict:
    return {kv.key: kv.value for kv in status.values}


def _is_failsafe(cmd) -> bool:
    return cmd is not None and np.allclose(cmd[1], HOVER, atol=0.0, rtol=0.0)


@pytest.fixture
def policy_graph(tmp_path):
    model = random_model(tmp_path / "m.safetensors")
    with RosHarness(tmp_path / "logs") as h:
        h.collect_commands()
        h.start("policy_node", "policy", {"model": str(model), "use_sim_time": True, "control_rate_hz": 240.0,
                                          "failsafe_action": "hover", "diagnostics_period_s": 0.2})
        assert h.wait_for_subscriber("imu") and h.wait_for_subscriber("odom") and h.wait_for_subscriber("/clock") and h.wait_for_publisher("motor_commands")
        h.publish_goal([0.0, 0.0, 2.0, 0.0])
        h.spin_for(0.5)
        yield h


def test_imu_stops_failsafe_within_two_periods_then_recovers(policy_graph):
    h = policy_graph
    for k in range(1, 20):
        cmd = _tick(h, k)
        assert cmd is not None and cmd[0] == k * PERIOD_NS and not _is_failsafe(cmd), f"no normal command at tick {k}"
    last_imu = 19
    first_failsafe = None
    n_before = len(h.commands)
    for k in range(20, 40):  # odom and /clock go on, the IMU is silent
        _tick(h, k, imu=None, wait=0.3)
        failsafes = [c for c in h.commands[n_before:] if _is_failsafe(c)]
        if failsafes:
            # stamped with the newest sensor sample the node had (odom), i.e. sim time of the decision
            first_failsafe = failsafes[0][0]
            break
    assert first_failsafe is not None, "no failsafe command after the IMU stopped"
    assert first_failsafe - last_imu * PERIOD_NS <= 2 * PERIOD_NS, "failsafe later than two control periods of sim time"
    k0 = first_failsafe // PERIOD_NS + 1
    for k in range(k0, k0 + 10):  # the IMU is back: control resumes
        cmd = _tick(h, k)
    assert cmd is not None and cmd[0] == (k0 + 9) * PERIOD_NS and not _is_failsafe(cmd)

    def events():
        return [int(_values(s)["failsafe_events"]) for s in h.diagnostics if s.name.endswith(": policy")]

    assert h.spin_until(lambda: events() and events()[-1] >= 1, 10), "the failsafe is not on /diagnostics"


def test_nan_imu_never_leaves_as_nan_command(policy_graph):
    h = policy_graph
    for k in range(1, 10):
        _tick(h, k)
    nan_imu = IMU_OK.copy()
    nan_imu[2] = np.nan
    for k in range(10, 15):
        cmd = _tick(h, k, imu=nan_imu)
        assert cmd is not None and _is_failsafe(cmd), "a NaN IMU sample must give the failsafe command"
    for k in range(15, 20):
        cmd = _tick(h, k)
    assert not _is_failsafe(cmd)
    h.spin_for(0.3)
    assert all(np.isfinite(c[1]).all() for c in h.commands)
    assert h.spin_until(lambda: any(int(_values(s).get("rejected.imu", 0)) >= 5 for s in h.diagnostics
                                    if s.name.endswith(": policy")), 10), "rejected IMU samples not on /diagnostics"


def test_wrong_image_is_a_diagnostics_error_not_a_crash(tmp_path):

    from lnn_drone.ros import convert as cv

    model = random_model(tmp_path / "img.safetensors", image=(24, 32), inputs=("imu",))
    with RosHarness(tmp_path / "logs") as h:
        h.collect_commands()
        proc = h.start("policy_node", "policy", {"model": str(model), "use_sim_time": True, "control_rate_hz": 240.0,
                                                 "sync": "latest", "failsafe_action": "hover", "image_timeout_s": 10.0})
        assert h.wait_for_subscriber("camera/image_raw") and h.wait_for_subscriber("imu") and h.wait_for_publisher("motor_commands")
        h.spin_for(0.5)
        good = np.zeros((24, 32, 3), dtype=np.uint8)
        h.publish_clock(PERIOD_NS)
        h.publish_sensors(PERIOD_NS, image=good)
        h.spin_for(0.2)
        assert not _is_failsafe(_tick(h, 1))
        bad = cv.image_msg(2 * PERIOD_NS, good)
        bad.encoding = "bgr8"
        h.publish_sensors(2 * PERIOD_NS, image_msg=bad)
        small = cv.image_msg(2 * PERIOD_NS, np.zeros((10, 10, 3), dtype=np.uint8))
        h.publish_sensors(2 * PERIOD_NS, image_msg=small)

        def errors():
            return [s for s in h.diagnostics if s.name.endswith(": policy") and s.level == cv_error()]

        assert h.spin_until(lambda: len({s.message for s in errors()}) >= 1 and any("10x10" in s.message for s in errors()), 15)
        assert any("bgr8" in s.message for s in errors()), [s.message for s in errors()]
        assert proc.poll() is None, "the node crashed on a bad image"
        assert _tick(h, 3) is not None  # still commanding


def cv_error():
    from diagnostic_msgs.msg import DiagnosticStatus

    return DiagnosticStatus.ERROR


def test_corrupt_model_refuses_to_start(tmp_path):
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    from lnn_drone.ros.env import DomainLease

    with DomainLease() as lease:
        env = ros_environment(domain_id=lease.domain_id)
        p = subprocess.run(executable_command("policy_node") + ["--ros-args", "-p", f"model:={bad}"], env=env,
                           capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "cannot start" in p.stderr and "corrupt.safetensors" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
