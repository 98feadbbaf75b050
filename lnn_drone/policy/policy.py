"""``Policy``: the object a flight node holds. Load a model file, ``reset()``, ``step(obs, dt)``.

Runs on the numpy runtime, so the whole deployment path (this module, ``model_file``,
``runtime_numpy``, ``spec``, ``features``) imports neither torch nor pybullet.
"""
from __future__ import annotations

import math
import os
from typing import Iterable, Mapping

import numpy as np

from .climb_rate import ClimbRateEstimator
from .drone_features import DRAG_PER_MASS_CONFIG  # the vehicle's rotor drag per mass (Policy's drag_per_mass_config)
from .drone_features import gravity_body, gravity_body_one
from .error_integral import ErrorIntegrator
from .features import FeatureError, extract, required_observations
from .hover_thrust import HoverThrustEstimator, body_z_velocity, collective_of
from .inertial_velocity import InertialVelocityEstimator
from .model_file import LoadedModel, check_inputs, load_model
from .runtime_numpy import NumpyRuntime
from .spec import ActionSpec, InputSpec
from .vehicle_matching import VehicleMatching

LAST_ACTION = "last_action"  # the model's own previous command, fed back by :class:`Policy`
ERROR_INTEGRAL = "error_integral"  # ∫(p - p_goal) dt, kept by :class:`Policy` for models that read it
HOVER_THRUST_CONFIG = "hover_thrust_config"  # the vehicle's configured hover collective (Policy's hover_thrust_config)
HOVER_THRUST = "hover_thrust"  # estimated hover collective, kept by :class:`Policy` for models that read it
CLIMB_RATE = "climb_rate"  # high-passed vertical velocity from the IMU, kept by :class:`Policy` for models that read it
INERTIAL_VELOCITY = "inertial_velocity"  # the same in 3 axes of the heading frame, likewise

__all__ = ["Policy"]


def _one_sample(observation: Mapping[str, np.ndarray], name: str, **shapes: tuple[int, ...]) -> list[np.ndarray]:
    """The observation keys that input ``name`` integrates on the drone, one sample each, as flat
    float64 arrays of the given shapes; a :class:`FeatureError` naming what is missing or malformed."""
    if any(k not in observation for k in shapes):
        raise FeatureError(f"input {name!r} needs observation keys {' and '.join(shapes)}; got {sorted(observation)}")
    arrays = [np.asarray(observation[k], dtype=np.float64).reshape(-1) for k in shapes]
    if any(a.shape != shape for a, shape in zip(arrays, shapes.values())):
        raise FeatureError(f"input {name!r} needs " + " and ".join(f"{k} {v}" for k, v in shapes.items())
                           + ", got " + " and ".join(str(a.shape) for a in arrays))
    return arrays


class Policy:
    """Stateful policy: ``command = policy.step(observation, dt)``.

    ``observation`` is the raw observation dict (``imu``, ``odom``, ``goal``, ``image``…);
    each model input is computed from it by :mod:`lnn_drone.policy.features` and checked
    (shape, finite). ``dt`` is the time in seconds since the previous step (the liquid cells use
    it; use the nominal :attr:`control_period` if unknown). The command is a new float64 array:
    4 motor values in [0, 1], or [thrust fraction, p, q, r (rad/s)] in ``ctbr`` mode.
    """

    def __init__(self, model: LoadedModel | str | os.PathLike, available_observations: Iterable[str] | None = None,
                 record: bool = False, hover_thrust_config: float | None = None,
                 drag_per_mass_config: Iterable[float] | None = None,
                 vehicle_matching: VehicleMatching | None = None) -> None:
        self.model = model if isinstance(model, LoadedModel) else load_model(model)
        # flying another airframe than the training one (``vehicle_matching.matching_for_model``)
        self.vehicle_matching = vehicle_matching
        if available_observations is not None:
            check_inputs(self.model, available_observations)
        self.runtime = NumpyRuntime(self.model, record=record)
        cfg = self.model.config
        self._vector = [(s.name, s.shape, self.runtime.input_view(s.name)) for s in cfg.vector_inputs + cfg.reference_inputs]
        # the vehicle's configured hover thrust, for models whose thrust is relative to it
        # (``hover_thrust_config``): a deployment constant, used unless the observation has one
        self._hover_config = None
        if hover_thrust_config is not None:
            h = float(hover_thrust_config)
            if not 0.0 < h < 1.0:
                raise ValueError(f"hover_thrust_config must be in (0, 1) (1 / thrust-to-weight), got {hover_thrust_config!r}")
            self._hover_config = np.array([h])
        # the vehicle's rotor drag per mass at hover (body x, y; 1/s), for models that read
        # ``drag_velocity``: likewise a deployment constant, used unless the observation has one
        self._drag_config = None
        if drag_per_mass_config is not None:
            d = np.asarray(list(drag_per_mass_config), dtype=np.float64)
            if d.shape != (2,) or not np.all(np.isfinite(d) & (d > 0.0)):
                raise ValueError(f"drag_per_mass_config must be 2 positive finite numbers (1/s, body x and y), "
                                 f"got {drag_per_mass_config!r}")
            self._drag_config = d
        self._image = cfg.image_input
        # a model may read its own previous command (``last_action``): the policy supplies it
        # unless the caller does, so every runtime feeds it back identically (zeros after reset)
        self._feeds_back = LAST_ACTION in self.model.input_names
        self._last_action = np.zeros(cfg.action.dim)
        # likewise the position-error integral (``goal_error_integral``): same class as the envs
        self._integrator = ErrorIntegrator(1) if "goal_error_integral" in self.model.input_names else None
        # and the hover-thrust estimate (accelerometer, odometry velocity, own commands): same class as the envs
        self._hover_estimator = HoverThrustEstimator(1) if HOVER_THRUST in self.model.input_names else None
        # and the climb rate (accelerometer and attitude): same class as the visual env
        self._climb = ClimbRateEstimator(1) if CLIMB_RATE in self.model.input_names else None
        self._inertial = InertialVelocityEstimator(1) if INERTIAL_VELOCITY in self.model.input_names else None

    @classmethod
    def load(cls, path: str | os.PathLike, available_observations: Iterable[str] | None = None, record: bool = False,
             hover_thrust_config: float | None = None,
             drag_per_mass_config: Iterable[float] | None = None,
             vehicle_matching: VehicleMatching | None = None) -> "Policy":
        return cls(load_model(path), available_observations, record, hover_thrust_config, drag_per_mass_config,
                   vehicle_matching)

    # -- what the model declares -------------------------------------------------------------
    @property
    def inputs(self) -> tuple[InputSpec, ...]:
        return self.model.config.inputs

    @property
    def action(self) -> ActionSpec:
        return self.model.config.action

    @property
    def action_mode(self) -> str:
        return self.model.config.action.mode

    @property
    def control_period(self) -> float:
        return self.model.config.control_period

    @property
    def required_observations(self) -> set[str]:
        return required_observations(s.name for s in self.inputs)

    # -- running -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Zero the recurrent state (start of an episode / after a failsafe)."""
        self.runtime.reset()
        self._last_action = np.zeros_like(self._last_action)
        if self._integrator is not None:
            self._integrator.reset()
        if self._hover_estimator is not None:
            self._hover_estimator.reset()
        if self._climb is not None:
            self._climb.reset()
        if self._inertial is not None:
            self._inertial.reset()
        if self.vehicle_matching is not None:
            self.vehicle_matching.reset()

    @property
    def state(self) -> np.ndarray:
        return self.runtime.state

    @property
    def internals(self) -> np.ndarray | None:
        """With ``record=True``: CfC time gates or LTC time constants of the last step."""
        return self.runtime.aux

    def _estimate_hover_thrust(self, observation: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        """Advance the hover-thrust estimate with this tick's accelerometer and odometry and the
        previous command (the caller's ``last_action`` if it supplies one, else the policy's own)."""
        imu, odom = _one_sample(observation, HOVER_THRUST, imu=(6,), odom=(13,))
        a = observation.get(LAST_ACTION, self._last_action)
        collective = collective_of(a.tolist() if isinstance(a, np.ndarray) else list(a), self.action_mode)
        return np.array([self._hover_estimator.update_one(float(imu[5]), collective, body_z_velocity(odom), dt)])

    def _imu_and_up(self, observation: Mapping[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
        """This tick's IMU sample (6,) and world up in the body frame (3,), for input ``name``."""
        imu, q = _one_sample(observation, name, imu=(6,), attitude=(4,))
        try:
            return imu, gravity_body({"attitude": q})
        except ValueError as exc:
            raise FeatureError(f"input {name!r}: {exc}") from exc

    def _estimate_climb_rate(self, observation: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        """Advance the climb-rate integral with this tick's accelerometer and attitude (scalar
        arithmetic: this runs every tick on the drone)."""
        imu, q = _one_sample(observation, CLIMB_RATE, imu=(6,), attitude=(4,))
        return np.array([self._climb.update_one(imu[3:6].tolist(), gravity_body_one(q.tolist()), dt)])

    def _estimate_inertial_velocity(self, observation: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        """Advance the heading-frame velocity integral with this tick's IMU and attitude."""
        imu, up = self._imu_and_up(observation, INERTIAL_VELOCITY)
        return self._inertial.update(imu, up, dt)[0].copy()

    def step(self, observation: Mapping[str, np.ndarray], dt: float) -> np.ndarray:
        if not isinstance(dt, (int, float, np.floating, np.integer)) or not math.isfinite(dt) or dt < 0:
            raise ValueError(f"dt must be a finite number of seconds >= 0, got {dt!r}")
        if self.vehicle_matching is not None:
            observation = self.vehicle_matching.observe(observation, float(dt))
        if self._feeds_back and LAST_ACTION not in observation:
            observation = {**observation, LAST_ACTION: self._last_action}
        if self._integrator is not None and ERROR_INTEGRAL not in observation:
            if "odom" not in observation or "goal" not in observation:
                raise FeatureError(f"input 'goal_error_integral' needs observation keys odom and goal; got {sorted(observation)}")
            try:
                value = self._integrator.update(observation["odom"], observation["goal"], float(dt))
            except ValueError as exc:
                raise FeatureError(f"input 'goal_error_integral': {exc}") from exc
            observation = {**observation, ERROR_INTEGRAL: value[0]}
        if self._hover_estimator is not None and HOVER_THRUST not in observation:
            observation = {**observation, HOVER_THRUST: self._estimate_hover_thrust(observation, float(dt))}
        if self._climb is not None and CLIMB_RATE not in observation:
            observation = {**observation, CLIMB_RATE: self._estimate_climb_rate(observation, float(dt))}
        if self._inertial is not None and INERTIAL_VELOCITY not in observation:
            observation = {**observation, INERTIAL_VELOCITY: self._estimate_inertial_velocity(observation, float(dt))}
        if self._hover_config is not None and HOVER_THRUST_CONFIG not in observation:
            observation = {**observation, HOVER_THRUST_CONFIG: self._hover_config}
        if self._drag_config is not None and DRAG_PER_MASS_CONFIG not in observation:
            observation = {**observation, DRAG_PER_MASS_CONFIG: self._drag_config}
        for name, shape, view in self._vector:
            extract(name, observation, shape, out=view)
        if self._image is not None:
            img = extract(self._image.name, observation, self._image.shape, dtype=None)
            if img.dtype != np.uint8:
                raise FeatureError(f"input {self._image.name!r} must be uint8 RGB, got dtype {img.dtype}")
            self.runtime.set_input(self._image.name, img)
        command = self.runtime.run(float(dt))
        if self._feeds_back or self._hover_estimator is not None:
            self._last_action = command.copy()
        if self.vehicle_matching is not None:
            return self.vehicle_matching.command(command, float(dt))
        return command
