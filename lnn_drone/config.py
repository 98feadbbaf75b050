"""One configuration schema for the CLI, the ROS nodes and the YAML files.

Every tunable is a dataclass field declared with :func:`param`, which records its unit, range
and meaning. The same metadata validates a YAML file, becomes a ROS parameter descriptor, and
prints as CLI help, so a parameter has one name, one unit, one range, one place.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Type, TypeVar

import yaml


class ConfigError(ValueError):
    """A configuration value is of the wrong type, out of range, or unknown."""


def param(default: Any, *, unit: str = "", lo: float | None = None, hi: float | None = None,
          doc: str = "", choices: tuple | None = None, runtime: bool = False):
    """A config field with its unit, range, allowed choices and whether it may change at run time."""
    meta = {"unit": unit, "lo": lo, "hi": hi, "doc": doc, "choices": choices, "runtime": runtime}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


T = TypeVar("T")


def _check_scalar(name: str, value: Any, f: dataclasses.Field) -> Any:
    meta = f.metadata
    typ = f.type if isinstance(f.type, type) else {"float": float, "int": int, "bool": bool, "str": str}.get(str(f.type))
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{name}: must be finite, got {value}")
    elif typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise ConfigError(f"{name}: expected an integer, got {value!r}")
    elif typ is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name}: expected true/false, got {value!r}")
    elif typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{name}: {value!r} is not one of {list(meta['choices'])}")
    lo, hi = meta.get("lo"), meta.get("hi")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if lo is not None and value < lo:
            raise ConfigError(f"{name}: {value} is below the minimum {lo} {meta.get('unit', '')}".rstrip())
        if hi is not None and value > hi:
            raise ConfigError(f"{name}: {value} is above the maximum {hi} {meta.get('unit', '')}".rstrip())
    return value


def validate(cfg: Any, prefix: str = "") -> Any:
    """Check every field of a config dataclass (recursively); return it for chaining."""
    for f in dataclasses.fields(cfg):
        name = prefix + f.name
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            validate(value, name + ".")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, str) and not f.metadata:
                    continue  # a list of names (plain dataclass field without a numeric range)
                if isinstance(item, bool) or not isinstance(item, (int, float)) or not math.isfinite(item):
                    raise ConfigError(f"{name}[{i}]: expected a finite number, got {item!r}")
                lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
                if (lo is not None and item < lo) or (hi is not None and item > hi):
                    raise ConfigError(f"{name}[{i}]: {item} is outside [{lo}, {hi}]")
        else:
            setattr(cfg, f.name, _check_scalar(name, value, f))
    post = getattr(cfg, "check", None)
    if callable(post):
        post()
    return cfg


def from_dict(cls: Type[T], data: dict | None, prefix: str = "") -> T:
    """Build and validate a config dataclass from a (possibly nested, partial) mapping."""
    data = dict(data or {})
    kwargs = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{prefix or cls.__name__}: unknown parameter(s) {unknown}; known: {sorted(fields)}")
    for name, value in data.items():
        f = fields[name]
        sub = f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]
        if dataclasses.is_dataclass(sub):
            if not isinstance(value, dict):
                raise ConfigError(f"{prefix}{name}: expected a mapping")
            kwargs[name] = from_dict(type(sub), value, prefix + name + ".")
        elif isinstance(sub, list):
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{prefix}{name}: expected a list, got {value!r}")
            kwargs[name] = list(value)
        else:
            kwargs[name] = value
    return validate(cls(**kwargs), prefix)


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def flatten(cfg: Any, prefix: str = "") -> dict[str, tuple[Any, dataclasses.Field]]:
    """``{"imu.rate_hz": (value, field)}``: the shape ROS parameters take."""
    out: dict[str, tuple[Any, dataclasses.Field]] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            out.update(flatten(value, prefix + f.name + "."))
        else:
            out[prefix + f.name] = (value, f)
    return out


def load_yaml(cls: Type[T], path: str | Path, section: str | None = None) -> T:
    """Read a config from YAML. Accepts the ROS ``/**: ros__parameters:`` form too."""
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    if isinstance(data, dict) and len(data) == 1:
        (only,) = data.values()
        if isinstance(only, dict) and "ros__parameters" in only:
            data = only["ros__parameters"]
    if section is not None:
        data = (data or {}).get(section, {})
    return from_dict(cls, data)


# --------------------------------------------------------------------------------------------
# Simulator configuration
# --------------------------------------------------------------------------------------------
@dataclass
class ImuConfig:
    rate_hz: float = param(500.0, unit="Hz", lo=10.0, hi=8000.0, doc="IMU sample rate (held between samples)")
    latency_s: float = param(0.0, unit="s", lo=0.0, hi=0.2, doc="delay from measurement to availability")
    gyro_noise_density: float = param(2.4e-4, unit="rad/s/sqrt(Hz)", lo=0.0, hi=0.1, doc="gyro white noise (BMI088-class)")
    accel_noise_density: float = param(1.7e-3, unit="m/s^2/sqrt(Hz)", lo=0.0, hi=1.0, doc="accelerometer white noise")
    gyro_bias_random_walk: float = param(1e-5, unit="rad/s^2/sqrt(Hz)", lo=0.0, hi=0.1, doc="gyro bias random walk")
    accel_bias_random_walk: float = param(1e-4, unit="m/s^3/sqrt(Hz)", lo=0.0, hi=1.0, doc="accelerometer bias random walk")
    initial_gyro_bias_std: float = param(0.0, unit="rad/s", lo=0.0, hi=1.0, doc="std of the bias drawn at reset")
    initial_accel_bias_std: float = param(0.0, unit="m/s^2", lo=0.0, hi=5.0, doc="std of the bias drawn at reset")


@dataclass
class OdomConfig:
    position_noise_std: float = param(0.0, unit="m", lo=0.0, hi=5.0, doc="white noise on position (0 = true state)")
    velocity_noise_std: float = param(0.0, unit="m/s", lo=0.0, hi=5.0, doc="white noise on velocity")
    attitude_noise_std: float = param(0.0, unit="rad", lo=0.0, hi=1.0, doc="white noise on attitude (small-angle)")


@dataclass
class CameraConfig:
    enabled: bool = param(False, doc="render a strapdown camera (costs ~3.5 ms per 64x48 frame)")
    width: int = param(64, unit="px", lo=8, hi=1920)
    height: int = param(64, unit="px", lo=8, hi=1080)
    fov_deg: float = param(90.0, unit="deg", lo=10.0, hi=170.0, doc="vertical field of view")
    rate_hz: float = param(30.0, unit="Hz", lo=1.0, hi=240.0)
    latency_s: float = param(0.0, unit="s", lo=0.0, hi=0.5)
    pitch_up_deg: float = param(0.0, unit="deg", lo=-90.0, hi=90.0, doc="camera tilt above the body x axis")
    shadows: bool = param(False, doc="TinyRenderer shadows (~3x slower)")
    near_m: float = param(0.02, unit="m", lo=1e-3, hi=10.0)
    far_m: float = param(30.0, unit="m", lo=1.0, hi=1000.0)


@dataclass
class WindConfig:
    constant_mps: list = param([0.0, 0.0, 0.0], unit="m/s", lo=-30.0, hi=30.0, doc="steady wind, world ENU")
    gust_std_mps: float = param(0.0, unit="m/s", lo=0.0, hi=20.0, doc="std of the Ornstein-Uhlenbeck gust")
    gust_tau_s: float = param(1.0, unit="s", lo=0.01, hi=60.0, doc="gust correlation time")


@dataclass
class SimConfig:
    vehicle: str = param("crazyflie2", doc="shipped vehicle name or path to a vehicle YAML")
    physics_hz: float = param(240.0, unit="Hz", lo=50.0, hi=2000.0, doc="PyBullet step rate")
    control_hz: float = param(240.0, unit="Hz", lo=1.0, hi=2000.0, doc="command rate (<= physics_hz)")
    action_latency_s: float = param(0.0, unit="s", lo=0.0, hi=0.2, doc="delay from command to motors")
    drag: bool = param(True, doc="rotor/body drag")
    ground_effect: bool = param(True, doc="Cheeseman-Bennett thrust increase near the ground")
    imu: ImuConfig = field(default_factory=ImuConfig)
    odom: OdomConfig = field(default_factory=OdomConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    wind: WindConfig = field(default_factory=WindConfig)

    def check(self) -> None:
        if self.control_hz > self.physics_hz:
            raise ConfigError(f"control_hz ({self.control_hz}) must not exceed physics_hz ({self.physics_hz})")


@dataclass
class RandomizationConfig:
    """Domain randomization, all drawn from the episode seed. Fractions are ± relative spreads."""

    enabled: bool = param(False)
    mass_frac: float = param(0.2, lo=0.0, hi=0.9, doc="mass scaled by U(1-f, 1+f)")
    inertia_frac: float = param(0.2, lo=0.0, hi=0.9)
    kf_frac: float = param(0.05, lo=0.0, hi=0.5, doc="per-rotor thrust coefficient spread")
    km_frac: float = param(0.1, lo=0.0, hi=0.5, doc="per-rotor torque coefficient spread")
    thrust_to_weight: list = param([1.8, 3.0], lo=1.05, hi=20.0, doc="[min, max] thrust-to-weight")
    thrust_to_weight_sampling: str = param("uniform", choices=("uniform", "hover_uniform"),
                                           doc="uniform in T/W, or uniform in the hover thrust 1/(T/W): more "
                                               "episodes at the low end, where hovering takes most of the thrust")
    motor_tau_s: list = param([0.02, 0.06], unit="s", lo=1e-3, hi=1.0, doc="[min, max] motor time constant")
    action_latency_s: list = param([0.0, 0.02], unit="s", lo=0.0, hi=0.2, doc="[min, max] actuation latency")
    imu_noise_scale: list = param([0.5, 3.0], lo=0.0, hi=100.0, doc="[min, max] multiplier on IMU noise")
    push_prob: float = param(0.0, lo=0.0, hi=1.0, doc="probability of a constant push per episode")
    push_frac_of_weight: float = param(0.2, lo=0.0, hi=2.0, doc="max constant push, fraction of weight")
    gust_std_mps: list = param([0.0, 0.0], unit="m/s", lo=0.0, hi=20.0)
    rotor_drag_scale: list = param([1.0, 1.0], lo=0.0, hi=10.0,
                                   doc="[min, max] multiplier on the rotor-drag coefficients: how fast the airframe "
                                       "brakes itself (drag per mass differs several-fold between classes)")
    wind_prob: float = param(0.0, lo=0.0, hi=1.0, doc="probability of a steady horizontal wind per episode")
    wind_speed_mps: list = param([0.0, 0.0], unit="m/s", lo=0.0, hi=30.0,
                                 doc="[min, max] speed of that wind, in a random horizontal direction. Why: a "
                                     "steady breeze is the first thing a policy meets outdoors, and holding still "
                                     "in it takes a steady tilt against rotor drag")

    def check(self) -> None:
        for name in ("thrust_to_weight", "motor_tau_s", "action_latency_s", "imu_noise_scale", "gust_std_mps",
                     "rotor_drag_scale", "wind_speed_mps"):
            v = getattr(self, name)
            if len(v) != 2 or v[0] > v[1]:
                raise ConfigError(f"randomization.{name}: expected [min, max] with min <= max, got {v}")
