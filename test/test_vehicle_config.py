"""Vehicle files and the config schema reject bad input with messages that name the field."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from lnn_drone.config import ConfigError, RandomizationConfig, SimConfig, flatten, from_dict, load_yaml
from lnn_drone.frames import YAW_TORQUE_SIGNS
from lnn_drone.vehicle import VehicleFileError, available_vehicles, load_vehicle


def test_shipped_vehicles_load_with_published_constants():
    assert {"crazyflie2", "quad250"} <= set(available_vehicles())
    cf = load_vehicle("crazyflie2")
    assert cf.mass_kg == 0.027 and cf.arm_m == 0.0397 and cf.inertia_kg_m2 == (1.4e-5, 1.4e-5, 2.17e-5)
    assert cf.kf_n_per_rpm2 == 3.16e-10 and cf.km_nm_per_rpm2 == 7.94e-12 and cf.thrust_to_weight == 2.25
    assert cf.prop_radius_m == 0.0231
    big = load_vehicle("quad250")
    assert big.mass_kg > 10 * cf.mass_kg and big.arm_m == pytest.approx(0.125)


def test_allocation_matrix_matches_the_motor_contract():
    v = load_vehicle("crazyflie2")
    a = v.allocation_matrix
    assert np.allclose(a[0], 1.0)
    assert np.allclose(np.sign(a[1]), [-1, -1, 1, 1])      # roll torque: left rotors positive
    assert np.allclose(np.sign(a[2]), [-1, 1, 1, -1])      # pitch torque: front rotors negative
    assert np.allclose(np.sign(a[3]), YAW_TORQUE_SIGNS)


def write(tmp_path, data) -> str:
    p = tmp_path / "v.yaml"
    p.write_text(yaml.safe_dump(data))
    return str(p)


def base() -> dict:
    v = load_vehicle("crazyflie2")
    d = dataclasses.asdict(v)
    d.pop("extra")
    for k, val in d.items():
        if isinstance(val, tuple):
            d[k] = list(val)
    return d


@pytest.mark.parametrize("field, value, words", [
    ("mass_kg", -1.0, "mass_kg"),
    ("mass_kg", "heavy", "mass_kg"),
    ("inertia_kg_m2", [1e-5, 1e-5], "inertia_kg_m2"),
    ("thrust_to_weight", 0.9, "thrust_to_weight"),
    ("motor_tau_up_s", float("nan"), "motor_tau_up_s"),
])
def test_bad_vehicle_field_is_named(tmp_path, field, value, words):
    d = base()
    d[field] = value
    with pytest.raises(VehicleFileError, match=words):
        load_vehicle(write(tmp_path, d))


def test_missing_and_unknown_vehicle_fields(tmp_path):
    d = base()
    del d["arm_m"]
    with pytest.raises(VehicleFileError, match="missing field 'arm_m'"):
        load_vehicle(write(tmp_path, d))
    d = base()
    d["mas_kg"] = 1.0
    with pytest.raises(VehicleFileError, match="unknown field.*mas_kg"):
        load_vehicle(write(tmp_path, d))
    with pytest.raises(VehicleFileError, match="unknown vehicle 'nope'"):
        load_vehicle("nope")
    with pytest.raises(VehicleFileError, match="not found"):
        load_vehicle(str(tmp_path / "missing.yaml"))
    (tmp_path / "bad.yaml").write_text("mass_kg: [1, 2\n")
    with pytest.raises(VehicleFileError, match="not valid YAML"):
        load_vehicle(str(tmp_path / "bad.yaml"))


def test_config_validation_messages():
    with pytest.raises(ConfigError, match="physics_hz: 10.0 is below the minimum 50.0"):
        from_dict(SimConfig, {"physics_hz": 10})
    with pytest.raises(ConfigError, match="control_hz .* must not exceed physics_hz"):
        from_dict(SimConfig, {"physics_hz": 240, "control_hz": 500})
    with pytest.raises(ConfigError, match="imu.rate_hz: expected a number"):
        from_dict(SimConfig, {"imu": {"rate_hz": "fast"}})
    with pytest.raises(ConfigError, match="unknown parameter.*'imu_rate'"):
        from_dict(SimConfig, {"imu_rate": 3})
    with pytest.raises(ConfigError, match="thrust_to_weight"):
        from_dict(RandomizationConfig, {"thrust_to_weight": [3.0, 1.5]})
    cfg = from_dict(SimConfig, {"imu": {"rate_hz": 1000}, "camera": {"enabled": True}})
    assert cfg.imu.rate_hz == 1000.0 and cfg.camera.enabled


def test_config_reads_the_ros_parameter_yaml_form(tmp_path):
    p = tmp_path / "sim.yaml"
    p.write_text("/**:\n  ros__parameters:\n    physics_hz: 500.0\n    imu:\n      latency_s: 0.002\n")
    cfg = load_yaml(SimConfig, p)
    assert cfg.physics_hz == 500.0 and cfg.imu.latency_s == 0.002
    flat = flatten(cfg)
    value, f = flat["imu.latency_s"]
    assert value == 0.002 and f.metadata["unit"] == "s" and f.metadata["hi"] == 0.2
