"""The velocity a camera policy integrates from its IMU in the heading frame (``inertial_velocity``).

The heading frame follows the vehicle's yaw, not its roll and pitch: x is the nose's horizontal
direction, z is up. The estimate is a leaky integral of the acceleration in it, turned with the
yaw the gyro measures; the env keeps it in training and ``Policy`` on the drone, with one class.
The flight test uses the real simulator.
"""
import math

import numpy as np
import pytest

from lnn_drone.frames import GRAVITY
from lnn_drone.policy import Policy
from lnn_drone.policy.drone_features import gravity_body, inertial_velocity
from lnn_drone.policy.features import FeatureError
from lnn_drone.policy.inertial_velocity import LIMIT_MPS, InertialVelocityEstimator, heading_frame_axes
from lnn_drone.policy.spec import InputSpec

LEVEL = np.array([0.0, 0.0, 1.0])
NO_LEAK = 1e9


def _imu(gyro=(0.0, 0.0, 0.0), force=(0.0, 0.0, GRAVITY)):
    return np.array([*gyro, *force])


def test_heading_frame_is_the_nose_direction_made_level():
    for pitch in (-0.6, 0.0, 0.4):
        for roll in (-0.3, 0.2):
            # world up in the body frame for this roll and pitch (yaw plays no part)
            up = np.array([-math.sin(pitch), math.sin(roll) * math.cos(pitch), math.cos(roll) * math.cos(pitch)])
            x, y = heading_frame_axes(up[None])
            assert abs(float(x[0] @ up)) < 1e-12 and abs(float(y[0] @ up)) < 1e-12 and abs(float(x[0] @ y[0])) < 1e-12
            assert float(x[0, 0]) > 0 and float(y[0, 1]) > 0  # nose forward, left to the left
    x, y = heading_frame_axes(np.array([[1.0, 0.0, 0.0]]))  # nose straight up: still a frame
    assert np.isfinite(x).all() and abs(float(np.linalg.norm(x))) == pytest.approx(1.0)


def test_integrates_acceleration_and_turns_the_velocity_with_the_yaw():
    est = InertialVelocityEstimator(1, leak_time_s=NO_LEAK)
    for _ in range(100):  # 1 s at 1 m/s² forward, level (the specific force has the push forward)
        est.update(_imu(force=(1.0, 0.0, GRAVITY)), LEVEL, 0.01)
    np.testing.assert_allclose(est.value[0], [1.0, 0.0, 0.0], atol=1e-9)
    for _ in range(1000):  # then a quarter turn to the left at constant world velocity
        est.update(_imu(gyro=(0.0, 0.0, math.pi / 2)), LEVEL, 0.001)
    # the world velocity now points to the vehicle's right
    np.testing.assert_allclose(est.value[0], [0.0, -1.0, 0.0], atol=1e-3)


def test_tilted_hover_and_its_yaw_read_nothing():
    est = InertialVelocityEstimator(1)
    up = np.array([0.3, -0.2, math.sqrt(1 - 0.13)])
    for _ in range(60):
        est.update(_imu(gyro=(0.5, 0.1, 0.7), force=tuple(GRAVITY * up)), up, 1 / 30)
    np.testing.assert_allclose(est.value, 0.0, atol=1e-12)


def test_bad_samples_leave_the_state_and_bad_calls_are_refused():
    est = InertialVelocityEstimator(1)
    est.update(_imu(force=(2.0, 0.0, GRAVITY)), LEVEL, 0.1)
    before = est.value.copy()
    est.update(np.array([0.0, np.nan, 0.0, 0.0, 0.0, GRAVITY]), LEVEL, 0.1)
    est.update(_imu(), np.array([np.nan, 0.0, 1.0]), 0.1)
    est.update(_imu(), np.zeros(3), 0.1)  # no attitude at all
    np.testing.assert_array_equal(est.value, before)
    est.update(_imu(force=(1e4, -1e4, GRAVITY)), LEVEL, 0.1)
    np.testing.assert_allclose(est.value[0, :2], [LIMIT_MPS, -LIMIT_MPS])
    with pytest.raises(ValueError, match="dt"):
        est.update(_imu(), LEVEL, -1.0)
    with pytest.raises(ValueError, match="imu"):
        est.update(np.zeros(3), LEVEL, 0.1)
    with pytest.raises(ValueError, match="leak_time_s"):
        InertialVelocityEstimator(1, leak_time_s=0.0)
    est.reset()
    assert not est.value.any()
    with pytest.raises(ValueError, match="inertial_velocity is supplied"):
        inertial_velocity({"imu": np.zeros(6)})


@pytest.mark.parametrize("vehicle", ["crazyflie2", "quad250"])
def test_inertial_velocity_follows_the_heading_frame_velocity_in_flight(vehicle, fly_visual_expert):
    """The expert flies to four targets; the env's observation, from the IMU and the attitude
    alone, follows the true velocity in the heading frame. The leak forgets the slow forward
    approach (a high-pass), so the forward axis is judged by correlation."""
    est, true = [], []

    def record(obs, env):
        b = env.unwrapped
        r = np.asarray(b.sim.rotation_matrix).reshape(3, 3)
        yaw = math.atan2(r[1, 0], r[0, 0])
        v = np.asarray(b.sim._vel)
        true.append([math.cos(yaw) * v[0] + math.sin(yaw) * v[1], -math.sin(yaw) * v[0] + math.cos(yaw) * v[1], v[2]])
        est.append(obs["inertial_velocity"].tolist())

    fly_visual_expert(vehicle, record)
    est, true = np.array(est), np.array(true)
    assert np.ptp(true[:, 0]) > 1.0  # it flew forward
    # measured: correlation 0.91 / 0.93 forward and 0.81 / 0.86 vertical (Crazyflie / quad250)
    assert np.corrcoef(est[:, 0], true[:, 0])[0, 1] > 0.85
    assert np.corrcoef(est[:, 2], true[:, 2])[0, 1] > 0.7


def test_policy_keeps_the_same_estimate_as_the_env(random_ctbr_model):
    model = random_ctbr_model((InputSpec.vector("inertial_velocity", 3, std=[0.5, 0.5, 0.3]),))
    onboard, fed = Policy(model), Policy(model)
    reference = InertialVelocityEstimator(1)
    rng = np.random.default_rng(1)
    attitude = np.array([0.08, -0.05, 0.6, 0.8]) / np.linalg.norm([0.08, -0.05, 0.6, 0.8])
    for _ in range(20):
        imu = np.array([*rng.normal(0, 0.5, 3), *rng.normal([0.5, -0.3, GRAVITY], 0.5)])
        raw = {"imu": imu, "attitude": attitude}
        value = reference.update(imu, gravity_body(raw), 1 / 30)[0].copy()
        np.testing.assert_allclose(onboard.step(raw, 1 / 30), fed.step({**raw, "inertial_velocity": value}, 1 / 30),
                                   rtol=0, atol=1e-12)
    assert np.abs(onboard._inertial.value).max() > 0.1
    onboard.reset()
    assert not onboard._inertial.value.any()
    with pytest.raises(FeatureError, match="attitude"):
        onboard.step({"imu": np.zeros(6)}, 1 / 30)
