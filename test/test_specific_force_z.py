"""``specific_force_z``: the accelerometer's body-z axis alone, for a camera policy that must take
its horizontal velocity from the camera, not from rotor drag (which reads the velocity relative to
the air). The physics part flies the real simulator in a steady wind."""
from __future__ import annotations

import numpy as np
import pytest

from lnn_drone.config import SimConfig
from lnn_drone.policy.drone_features import imu_accel, specific_force_z
from lnn_drone.policy.features import get_feature
from lnn_drone.sim.envs import HoverEnv, TaskConfig
from lnn_drone.sim.randomization import EpisodeVariation
from lnn_drone.state import DroneState


def test_it_is_the_body_z_specific_force_of_one_or_many_readings_and_refuses_other_shapes():
    imu = np.array([0.1, 0.2, 0.3, -0.9, 0.45, 9.7])
    np.testing.assert_allclose(specific_force_z({"imu": imu}), [9.7])
    batch = specific_force_z({"imu": np.stack([imu, imu * 2])})
    assert batch.shape == (2, 1)
    np.testing.assert_allclose(batch[:, 0], [9.7, 19.4])
    feature = get_feature("specific_force_z")
    assert feature.dim == 1 and feature.requires == ("imu",)
    with pytest.raises(ValueError, match="specific_force_z needs imu"):
        specific_force_z({"imu": imu[:3]})


def _first_imu(env: HoverEnv, wind) -> dict:
    """The IMU after a few ticks of the hover command, level, from rest at the same spot."""
    obs, _ = env.reset(seed=3, options={"state": DroneState(position=np.array([0.0, 0.0, 2.0])),
                                        "variation": EpisodeVariation(env.nominal_vehicle, wind_mps=wind)})
    hover = np.array([env.nominal_vehicle.hover_command, 0.0, 0.0, 0.0])
    for _ in range(3):
        obs, *_ = env.step(hover)
    return {"imu": np.asarray(obs["imu"], dtype=np.float64)}


def test_a_breeze_moves_the_horizontal_reading_and_not_this_one():
    """At rest over the ground in a 1 m/s breeze, rotor drag shows in the accelerometer's
    horizontal axes as if the drone were flying at 1 m/s; the body-z reading stays that of hover."""
    env = HoverEnv(SimConfig(vehicle="crazyflie2"), TaskConfig(episode_s=3.0), action_mode="ctbr")
    try:
        calm, windy = _first_imu(env, None), _first_imu(env, (1.0, 0.0, 0.0))
    finally:
        env.close()
    horizontal = imu_accel(windy)[:2] - imu_accel(calm)[:2]
    assert horizontal[0] > 0.5                      # drag pushes downwind: about the drag per mass x 1 m/s
    assert abs(specific_force_z(windy)[0] - specific_force_z(calm)[0]) < 0.1 * abs(horizontal[0])
