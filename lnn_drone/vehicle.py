"""Vehicle description: a validated data file shared by the simulator, controllers and FC bridges.

Vehicles live as YAML in ``lnn_drone/vehicles/``; ``load_vehicle("crazyflie2")`` or a path.
A malformed file raises :class:`VehicleFileError` naming the offending field, because a typo
in a mass or inertia silently flies a different aircraft.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from .frames import GRAVITY, MOTOR_DIRECTIONS_FLU, YAW_TORQUE_SIGNS


class VehicleFileError(ValueError):
    """A vehicle file is missing, unreadable or has an invalid field."""


# field name -> (kind, min, max) ; kind "pos" scalar > 0, "vec3" three positive numbers
_FIELDS: dict[str, tuple[str, float, float]] = {
    "mass_kg": ("pos", 1e-3, 100.0),
    "arm_m": ("pos", 1e-3, 5.0),
    "inertia_kg_m2": ("vec3", 1e-9, 100.0),
    "kf_n_per_rpm2": ("pos", 1e-14, 1e-3),
    "km_nm_per_rpm2": ("pos", 1e-16, 1e-3),
    "thrust_to_weight": ("pos", 1.01, 20.0),
    "prop_radius_m": ("pos", 1e-3, 2.0),
    "motor_tau_up_s": ("pos", 1e-4, 1.0),
    "motor_tau_down_s": ("pos", 1e-4, 1.0),
    "rotor_drag_n_per_rpm_mps": ("vec3", 0.0, 1.0),
    "body_size_m": ("vec3", 1e-3, 10.0),
}


@dataclass(frozen=True)
class VehicleSpec:
    """Physical constants of one quadrotor (SI units, body frame FLU, X configuration)."""

    name: str
    mass_kg: float
    arm_m: float
    inertia_kg_m2: tuple[float, float, float]
    kf_n_per_rpm2: float
    km_nm_per_rpm2: float
    thrust_to_weight: float
    prop_radius_m: float
    motor_tau_up_s: float
    motor_tau_down_s: float
    rotor_drag_n_per_rpm_mps: tuple[float, float, float]
    body_size_m: tuple[float, float, float]
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    # ---- derived quantities -------------------------------------------------------------
    @property
    def weight_n(self) -> float:
        return self.mass_kg * GRAVITY

    @property
    def max_thrust_per_rotor_n(self) -> float:
        return self.thrust_to_weight * self.weight_n / 4.0

    @property
    def max_rpm(self) -> float:
        return math.sqrt(self.max_thrust_per_rotor_n / self.kf_n_per_rpm2)

    @property
    def torque_to_thrust_m(self) -> float:
        """Rotor drag torque per newton of thrust (km / kf)."""
        return self.km_nm_per_rpm2 / self.kf_n_per_rpm2

    @property
    def hover_command(self) -> float:
        """Per-rotor normalized thrust u that balances gravity."""
        return 1.0 / self.thrust_to_weight

    @property
    def hover_drag_per_mass_xyz(self) -> tuple[float, float, float]:
        """Rotor drag per unit mass at hover along body x, y and z (1/s), ``4 c RPM_hover / m``
        (the sim's drag model). Vertically it is how much the airframe damps a climb by itself
        (Crazyflie 2.2/s, a 5-inch quad 0.30/s; ``policy.vehicle_matching`` makes up the difference)."""
        hover_rpm = math.sqrt(self.weight_n / 4.0 / self.kf_n_per_rpm2)
        cx, cy, cz = self.rotor_drag_n_per_rpm_mps
        return (4.0 * cx * hover_rpm / self.mass_kg, 4.0 * cy * hover_rpm / self.mass_kg, 4.0 * cz * hover_rpm / self.mass_kg)

    @property
    def hover_drag_per_mass(self) -> tuple[float, float]:
        """Rotor drag per unit mass at hover along body x and y (1/s): the horizontal specific
        force an accelerometer reads is about minus this times the air-relative body velocity.

        Why it matters: it is the airframe's self-braking, and it differs several-fold between
        classes (Crazyflie 1.97/s, a 5-inch quad 0.45/s), so a policy that reads velocity from
        the accelerometer must be told it (``drag_velocity`` input)."""
        return self.hover_drag_per_mass_xyz[:2]

    @property
    def rotor_positions_flu(self) -> np.ndarray:
        """(4, 3) rotor hub positions in the body frame, contract motor order."""
        xy = MOTOR_DIRECTIONS_FLU * self.arm_m
        return np.hstack([xy, np.zeros((4, 1))])

    @property
    def allocation_matrix(self) -> np.ndarray:
        """A (4x4) with [T, tau_x, tau_y, tau_z] = A @ thrust_per_rotor (N, N·m)."""
        p = self.rotor_positions_flu
        return np.vstack(
            [np.ones(4), p[:, 1], -p[:, 0], YAW_TORQUE_SIGNS * self.torque_to_thrust_m]
        )

    def replace(self, **changes) -> "VehicleSpec":
        """A copy with some constants changed (domain randomization), re-validated."""
        spec = dataclasses.replace(self, **changes)
        _validate_values(dataclasses.asdict(spec), source=f"{self.name} (modified)")
        return spec


def _validate_values(data: dict, source: str) -> None:
    for name, (kind, lo, hi) in _FIELDS.items():
        if name not in data:
            raise VehicleFileError(f"{source}: missing field '{name}'")
        value = data[name]
        values = value if kind == "vec3" else [value]
        if kind == "vec3" and (not isinstance(value, (list, tuple)) or len(value) != 3):
            raise VehicleFileError(f"{source}: field '{name}' must be a list of 3 numbers, got {value!r}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise VehicleFileError(f"{source}: field '{name}' must be a finite number, got {v!r}")
            if not lo <= v <= hi:
                raise VehicleFileError(f"{source}: field '{name}' = {v} is outside [{lo:g}, {hi:g}]")
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise VehicleFileError(f"{source}: field 'name' must be a non-empty string")


def vehicle_from_dict(data: dict, source: str = "<dict>") -> VehicleSpec:
    """Validate a mapping and build a :class:`VehicleSpec`."""
    if not isinstance(data, dict):
        raise VehicleFileError(f"{source}: expected a mapping of fields, got {type(data).__name__}")
    known = set(_FIELDS) | {"name", "description"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise VehicleFileError(f"{source}: unknown field(s) {unknown}; known fields are {sorted(known)}")
    _validate_values(data, source)
    kwargs = {k: (tuple(float(x) for x in data[k]) if _FIELDS[k][0] == "vec3" else float(data[k])) for k in _FIELDS}
    return VehicleSpec(name=data["name"], description=str(data.get("description", "")), **kwargs)


def available_vehicles() -> list[str]:
    """Names of the vehicle files shipped with the package."""
    folder = resources.files("lnn_drone") / "vehicles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_vehicle(name_or_path: str | Path) -> VehicleSpec:
    """Load a shipped vehicle by name (``crazyflie2``, ``quad250``) or a YAML file by path."""
    text_path = str(name_or_path)
    if text_path.endswith((".yaml", ".yml")) or "/" in text_path:
        path = Path(text_path)
        if not path.is_file():
            raise VehicleFileError(f"vehicle file not found: {path}")
        text, source = path.read_text(), str(path)
    else:
        res = resources.files("lnn_drone") / "vehicles" / f"{text_path}.yaml"
        if not res.is_file():
            raise VehicleFileError(f"unknown vehicle '{text_path}'; shipped: {available_vehicles()}")
        text, source = res.read_text(), f"vehicle '{text_path}'"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise VehicleFileError(f"{source}: not valid YAML: {exc}") from exc
    return vehicle_from_dict(data, source)
