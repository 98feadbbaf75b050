"""Physics of the PyBullet quadrotor: hover, motor signs, free fall, motor lag, IMU."""
from __future__ import annotations

import math

import numpy as np
import pytest

from lnn_drone.config import SimConfig
from lnn_drone.frames import GRAVITY, axis_angle_to_quat
from lnn_drone.sim.quadsim import QuadSim
from lnn_drone.state import DroneState


def quiet_config(**kw) -> SimConfig:
    """No sensor noise, no ground effect: clean physics for exact checks."""
    cfg = SimConfig(**kw)
    cfg.imu.gyro_noise_density = cfg.imu.accel_noise_density = 0.0
    cfg.imu.gyro_bias_random_walk = cfg.imu.accel_bias_random_walk = 0.0
    return cfg


def at(z: float = 2.0, **kw) -> DroneState:
    return DroneState(position=np.array([0.0, 0.0, z]), **kw)


@pytest.fixture
def sim():
    s = QuadSim(quiet_config(), seed=0)
    yield s
    s.close()


def test_hover_thrust_holds_altitude(sim):
    sim.reset(at(2.0))
    u = [sim.vehicle.hover_command] * 4
    for _ in range(int(5 * 240)):
        sim.step(u)
    st = sim.state
    assert abs(st.position[2] - 2.0) < 1e-3
    assert np.linalg.norm(st.position[:2]) < 1e-3
    assert np.linalg.norm(st.angular_velocity) < 1e-3


def test_thrust_below_hover_descends(sim):
    sim.reset(at(2.0))
    for _ in range(240):
        sim.step([0.8 * sim.vehicle.hover_command] * 4)
    assert sim.state.velocity[2] < -0.3


# contract order FR, BR, BL, FL; expected sign of (roll rate p, pitch rate q, yaw rate r)
# p: rotors on the left (+y) lift the left side -> +p; q: front rotors lift the nose -> -q (FLU);
# r: FR and BL spin CCW seen from above -> their reaction torque is clockwise -> -r.
EXPECTED_SIGNS = {0: (-1, -1, -1), 1: (-1, +1, +1), 2: (+1, +1, -1), 3: (+1, -1, +1)}


@pytest.mark.parametrize("motor", [0, 1, 2, 3])
def test_motor_step_gives_contract_signs(sim, motor):
    sim.reset(at(2.0))
    u = [sim.vehicle.hover_command] * 4
    u[motor] += 0.15
    for _ in range(12):  # 50 ms
        sim.step(u)
    rates = sim.state.angular_velocity
    gyro = np.array(sim.imu.gyro)
    for axis, sign in enumerate(EXPECTED_SIGNS[motor]):
        assert np.sign(rates[axis]) == sign, f"motor {motor} axis {axis}: rates {rates}"
        assert np.sign(gyro[axis]) == sign, f"gyro disagrees with the true rates: {gyro}"
    assert abs(rates[2]) > 1e-3


def test_free_fall_accelerates_at_g_and_imu_reads_zero(sim):
    sim.reset(at(30.0), motor_speed=0.0)
    accels = []
    for _ in range(240):
        sim.step([0, 0, 0, 0])
        accels.append(sim.imu.accel)
    st = sim.state
    assert st.velocity[2] == pytest.approx(-GRAVITY, abs=2e-3)
    assert st.position[2] == pytest.approx(30.0 - 0.5 * GRAVITY, abs=0.03)
    assert np.abs(np.mean(accels[5:], axis=0)).max() < 1e-3


def test_imu_reads_plus_g_at_rest_on_the_ground():
    s = QuadSim(quiet_config(), seed=0)
    s.reset(DroneState(position=np.array([0.0, 0.0, s.body_half_height])), motor_speed=0.0)
    acc = []
    for _ in range(480):
        s.step([0, 0, 0, 0])
        acc.append(s.imu.accel)
    mean = np.mean(acc[240:], axis=0)
    assert mean[2] == pytest.approx(GRAVITY, abs=0.05)
    assert np.abs(mean[:2]).max() < 0.05
    s.close()


def test_imu_rotates_gravity_into_the_body_frame(sim):
    # level flight: +g on body z; rolled 90 deg right side down (about +x): gravity's reaction on +y? no:
    # rolled +90 deg about x, body z points to world -y, body y points to world +z -> specific force on +y
    sim.reset(DroneState(position=np.array([0, 0, 50.0]), quaternion=axis_angle_to_quat([1, 0, 0], math.pi / 2)),
              motor_speed=0.0)
    # at rest in the air (one step of zero velocity change is not free fall): hold it still
    f = np.array(sim.imu.accel)
    assert f[1] == pytest.approx(GRAVITY, abs=1e-6) and abs(f[2]) < 1e-6


@pytest.mark.parametrize("direction", ["up", "down"])
def test_motor_lag_matches_time_constant(direction):
    cfg = quiet_config(physics_hz=500.0, control_hz=500.0)
    s = QuadSim(cfg, seed=0)
    tau = s.vehicle.motor_tau_up_s if direction == "up" else s.vehicle.motor_tau_down_s
    w0, w1 = (0.4, 0.9) if direction == "up" else (0.9, 0.4)
    s.reset(at(50.0), motor_speed=w0)
    t, w = [0.0], [w0]
    for _ in range(int(3 * tau * 500)):
        s.step([w1 * w1] * 4)
        t.append(s.t)
        w.append(s.motor_speeds[0])
    t, w = np.array(t), np.array(w)
    # time to 63.2 % of the step, interpolated between samples
    frac = (w - w0) / (w1 - w0)
    k = int(np.argmax(frac >= 1 - math.exp(-1)))
    t63 = t[k - 1] + (1 - math.exp(-1) - frac[k - 1]) / (frac[k] - frac[k - 1]) * (t[k] - t[k - 1])
    assert t63 == pytest.approx(tau, rel=0.05)
    s.close()


def test_actuation_latency_delays_the_motors():
    cfg = quiet_config()
    cfg.action_latency_s = 0.02
    s = QuadSim(cfg, seed=0)
    s.reset(at(50.0), motor_speed=0.5)
    s.step([1.0] * 4)
    assert s.applied_command[0] == pytest.approx(0.25)
    for _ in range(4):
        s.step([1.0] * 4)
    assert s.applied_command[0] == pytest.approx(0.25)  # 5 steps started before 20 ms
    s.step([1.0] * 4)
    assert s.applied_command[0] == pytest.approx(1.0)  # the 6th step starts at 20.8 ms
    s.close()


def test_ground_effect_adds_thrust_near_the_ground():
    s = QuadSim(quiet_config(), seed=0)
    s.reset(DroneState(position=np.array([0.0, 0.0, 0.03])))
    s.step([s.vehicle.hover_command] * 4)
    near = sum(s.motor_thrusts_n)
    s.reset(at(2.0))
    s.step([s.vehicle.hover_command] * 4)
    far = sum(s.motor_thrusts_n)
    r = s.vehicle.prop_radius_m
    # Cheeseman-Bennett: T_ige / T_oge = 1 / (1 - (R / 4z)^2), z = rotor height
    assert near == pytest.approx(far / (1 - (r / (4 * 0.03)) ** 2), rel=1e-3)
    assert near > 1.03 * far
    assert far == pytest.approx(s.vehicle.weight_n, rel=1e-6)
    s.close()


def test_constant_push_and_wind_move_the_drone():
    s = QuadSim(quiet_config(), seed=0)
    s.reset(at(2.0))
    s.set_constant_push([0.2 * s.vehicle.weight_n, 0, 0])
    for _ in range(240):
        s.step([s.vehicle.hover_command] * 4)
    assert s.state.velocity[0] > 0.5
    s.set_constant_push([0, 0, 0])
    s.reset(at(2.0))
    s.set_wind([0.0, 3.0, 0.0])
    for _ in range(240):
        s.step([s.vehicle.hover_command] * 4)
    assert s.state.velocity[1] > 0.1  # rotor drag pulls the drone downwind
    s.close()


def test_impulse_push_is_temporary():
    s = QuadSim(quiet_config(), seed=0)
    s.reset(at(2.0))
    s.push([0, 0.5, 0], duration_s=0.1)
    for _ in range(24):
        s.step([s.vehicle.hover_command] * 4)
    v1 = s.state.velocity[1]
    for _ in range(24):
        s.step([s.vehicle.hover_command] * 4)
    assert v1 > 0.5 and s.state.velocity[1] < v1  # drag slows it once the push ends
    s.close()


def test_nan_command_is_motor_off_not_nan_state(sim):
    sim.reset(at(2.0))
    sim.step([float("nan"), 0.5, 0.5, 0.5])
    assert sim.applied_command[0] == 0.0
    assert sim.state.is_finite()
    with pytest.raises(ValueError):
        sim.step([0.5, 0.5])


def test_imu_noise_has_configured_density():
    cfg = SimConfig()
    cfg.imu.rate_hz = 240.0
    cfg.imu.gyro_bias_random_walk = cfg.imu.accel_bias_random_walk = 0.0
    s = QuadSim(cfg, seed=3)
    s.reset(at(50.0), motor_speed=0.0)
    g = []
    for _ in range(2000):
        s.step([0, 0, 0, 0])
        g.append(s.imu.gyro)
    expected = cfg.imu.gyro_noise_density * math.sqrt(240.0)
    assert np.std(g, axis=0) == pytest.approx([expected] * 3, rel=0.1)
    s.close()


def test_imu_rate_and_latency_hold_and_delay_samples():
    cfg = quiet_config()
    cfg.imu.rate_hz = 60.0
    cfg.imu.latency_s = 0.05
    s = QuadSim(cfg, seed=0)
    s.reset(at(50.0))
    stamps = []
    for _ in range(240):
        s.step([s.vehicle.hover_command] * 4)
        stamps.append((s.t, s.imu.stamp))
    t, stamp = np.array(stamps).T
    assert len(np.unique(stamp)) == pytest.approx(60 - 3, abs=2)  # 60 Hz, first 50 ms waiting
    assert np.all(t[t > 0.1] - stamp[t > 0.1] >= 0.05 - 1e-9)
    s.close()


def test_reset_does_not_reload_the_world(sim):
    bodies = sim.client, sim.body_id, sim.plane_id
    for _ in range(3):
        sim.reset(at(1.0))
    assert (sim.client, sim.body_id, sim.plane_id) == bodies
    from lnn_drone.sim._pybullet import pb
    assert pb.getNumBodies(physicsClientId=sim.client) == 2
