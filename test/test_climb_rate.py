"""The vertical velocity a camera policy reads from its IMU (``climb_rate``).

Why it exists: without odometry nothing tells a camera policy how fast it climbs or sinks, and
on a low-drag airframe (the 250 mm vehicle) the air does not damp that motion for it. The
estimate is a leaky integral of ``f · u - g`` from the accelerometer and the attitude estimate,
computed by the env in training and by ``Policy`` on the drone with one class. The flight test
uses the real simulator.
"""
import math

import numpy as np
import pytest

from lnn_drone.frames import GRAVITY
from lnn_drone.policy import Policy
from lnn_drone.policy.climb_rate import LEAK_TIME_S, LIMIT_MPS, ClimbRateEstimator
from lnn_drone.policy.drone_features import climb_rate, gravity_body, gravity_body_one
from lnn_drone.policy.features import FeatureError
from lnn_drone.policy.spec import InputSpec

LEVEL = np.array([0.0, 0.0, 1.0])


def test_integrates_the_vertical_acceleration_and_forgets_it_with_the_leak():
    est = ClimbRateEstimator(1)
    dt = 0.01
    for _ in range(100):  # 1 s climbing at +1 m/s²: the specific force is g + 1 along "up"
        v = est.update(np.array([0.0, 0.0, GRAVITY + 1.0]), LEVEL, dt)[0]
    decay = math.exp(-dt / LEAK_TIME_S)
    assert v == pytest.approx(dt * (1 - decay**100) / (1 - decay), rel=1e-9)
    assert 0.8 < v < 1.0  # nearly the 1 m/s gained: the leak is slow against a second
    for _ in range(round(LEAK_TIME_S / dt)):  # unaccelerated: only the leak acts
        est.update(np.array([0.0, 0.0, GRAVITY]), LEVEL, dt)
    assert est.value[0] == pytest.approx(v / math.e, rel=1e-6)


def test_hovering_tilted_reads_no_vertical_acceleration():
    """Specific force along the tilted up-vector with magnitude g is unaccelerated flight, at any
    attitude: the horizontal part of the specific force is not mistaken for a climb."""
    est = ClimbRateEstimator(2)
    tilt = math.radians(25)
    up = np.array([[math.sin(tilt), 0.0, math.cos(tilt)], [0.0, -math.sin(tilt), math.cos(tilt)]])
    for _ in range(30):
        est.update(GRAVITY * up, up, 1 / 30)
    np.testing.assert_allclose(est.value, 0.0, atol=1e-12)


def test_bad_samples_leave_the_state_and_bad_calls_are_refused():
    est = ClimbRateEstimator(1)
    est.update(np.array([0.0, 0.0, GRAVITY + 3.0]), LEVEL, 0.1)
    before = est.value.copy()
    est.update(np.array([np.nan, 0.0, GRAVITY]), LEVEL, 0.1)
    est.update(np.array([0.0, 0.0, GRAVITY]), np.array([0.0, np.inf, 1.0]), 0.1)
    np.testing.assert_array_equal(est.value, before)
    est.update(np.array([0.0, 0.0, GRAVITY + 1e4]), LEVEL, 0.1)  # a crash spike is clipped
    assert est.value[0] == LIMIT_MPS
    for dt in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="dt"):
            est.update(np.zeros(3), LEVEL, dt)
    with pytest.raises(ValueError, match="accel"):
        est.update(np.zeros(2), LEVEL, 0.1)
    for leak in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="leak_time_s"):
            ClimbRateEstimator(1, leak_time_s=leak)
    est.reset()
    assert est.value[0] == 0.0


def test_scalar_path_equals_the_batch_path_bad_samples_included():
    """The onboard per-tick path (update_one, gravity_body_one) is the batch rule in scalar
    arithmetic: the same values over a sequence with NaN, zero-norm and spiking samples."""
    rng = np.random.default_rng(3)
    batch, one = ClimbRateEstimator(1), ClimbRateEstimator(1)
    for i in range(200):
        accel = rng.normal([0.3, -0.2, GRAVITY], 2.0)
        q = rng.normal(size=4) * [0.2, 0.2, 1.0, 1.0]
        if i % 17 == 0:
            accel[i % 3] = np.nan
        if i % 23 == 0:
            q[:] = 0.0                      # no direction: both paths must leave the state
        if i % 31 == 0:
            accel[2] = 400.0                # a crash spike: clipped the same way
        with np.errstate(invalid="ignore"):  # the zero quaternion: NaN by design
            up = gravity_body({"attitude": q})
        np.testing.assert_allclose(gravity_body_one(q.tolist()), up, rtol=0, atol=1e-12)
        want = batch.update(accel, up, 1 / 30)[0]
        assert one.update_one(accel.tolist(), gravity_body_one(q.tolist()), 1 / 30) == pytest.approx(want, abs=1e-12)
    with pytest.raises(ValueError, match="one vehicle"):
        ClimbRateEstimator(2).update_one([0.0, 0.0, GRAVITY], [0.0, 0.0, 1.0], 0.1)
    with pytest.raises(ValueError, match="dt"):
        one.update_one([0.0, 0.0, GRAVITY], [0.0, 0.0, 1.0], float("nan"))


def test_feature_reads_the_supplied_value_and_refuses_its_absence():
    assert climb_rate({"climb_rate": np.array([0.4])}).tolist() == [0.4]
    assert climb_rate({"climb_rate": np.array([[0.4], [-0.2]])}).shape == (2, 1)
    with pytest.raises(ValueError, match="climb_rate is supplied"):
        climb_rate({"imu": np.zeros(6)})


@pytest.mark.parametrize("vehicle", ["crazyflie2", "quad250"])
def test_climb_rate_follows_the_vertical_velocity_in_flight(vehicle, fly_visual_expert):
    """The expert flies to targets above and below the start (real physics, IMU noise); the
    observation the env computes from the IMU alone follows the true vertical velocity."""
    est, true = [], []

    def record(obs, env):
        assert env.observation_space["climb_rate"].contains(obs["climb_rate"])
        est.append(float(obs["climb_rate"][0]))
        true.append(float(env.unwrapped.sim._vel[2]))

    fly_visual_expert(vehicle, record)
    est, true = np.array(est), np.array(true)
    assert np.ptp(true) > 0.4  # it did climb and sink
    # measured: RMS 0.075 / 0.078 m/s, correlation 0.81 / 0.86 (Crazyflie / quad250); the misses are the slow
    # part of the flight, which the leak forgets by design
    assert np.sqrt(np.mean((est - true) ** 2)) < 0.12
    assert np.corrcoef(est, true)[0, 1] > 0.7


def test_policy_keeps_the_same_estimate_as_the_env_and_resets_it(random_ctbr_model):
    """On the drone the observation has no climb_rate: Policy integrates it from imu and attitude
    with the same class, so a policy fed raw IMU messages commands what one fed the env's value does."""
    model = random_ctbr_model((InputSpec.vector("climb_rate", 1, std=0.3), InputSpec.vector("imu_accel", 3, mean=[0, 0, 9.81])))
    onboard, fed = Policy(model), Policy(model)
    reference = ClimbRateEstimator(1)
    rng = np.random.default_rng(0)
    attitude = np.array([0.05, -0.03, 0.2, 1.0]) / np.linalg.norm([0.05, -0.03, 0.2, 1.0])
    seq = [np.array([0.0, 0.0, 0.0, *rng.normal([0.3, -0.2, GRAVITY + 0.5], 0.4)]) for _ in range(20)]
    for imu in seq:
        raw = {"imu": imu, "attitude": attitude}
        value = reference.update(imu[3:6], gravity_body(raw), 1 / 30).copy()
        np.testing.assert_allclose(onboard.step(raw, 1 / 30), fed.step({**raw, "climb_rate": value}, 1 / 30),
                                   rtol=0, atol=1e-12)
    assert abs(onboard._climb.value[0]) > 0.05  # it did integrate something
    onboard.reset()
    assert onboard._climb.value[0] == 0.0
    with pytest.raises(FeatureError, match="attitude"):
        onboard.step({"imu": seq[0]}, 1 / 30)
    with pytest.raises(FeatureError, match="climb_rate"):
        onboard.step({"imu": seq[0][:5], "attitude": attitude}, 1 / 30)


def test_visual_env_starts_each_episode_from_zero():
    from lnn_drone.training.vision import VisualEvalSettings, make_visual_env

    env = make_visual_env(VisualEvalSettings())
    try:
        obs, _ = env.reset(seed=0)
        for _ in range(20):
            obs, *_ = env.step(np.array([0.9, 0.0, 0.0, 0.0]))  # full collective: a climb
        assert obs["climb_rate"][0] > 1.0
        obs, _ = env.reset(seed=1)
        # one tick of the reset state's acceleration at most (the first observation is computed after one dt)
        assert abs(obs["climb_rate"][0]) < 0.5
    finally:
        env.close()
