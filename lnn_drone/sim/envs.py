"""Gymnasium environments: position hold (``LnnDrone/Hover-v0``) and fly-to-visual-target
(``LnnDrone/VisualTarget-v0``).

Observations are dicts of named arrays so that a policy takes exactly what it declares:
``imu`` (6: gyro rad/s, specific force m/s², body FLU), ``odom`` (13: position, quaternion
xyzw, world velocity, body rates), ``goal`` (4: position, yaw) and, with a camera, ``image``
(H, W, 3 uint8 RGB). A crash is ``terminated``; the episode time limit is ``truncated``.
The true state is in ``env.unwrapped.sim.state`` for privileged experts.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ..config import RandomizationConfig, SimConfig, validate
from ..control.mixer import Mixer
from ..control.rate import RateController
from ..policy.climb_rate import ClimbRateEstimator
from ..policy.drone_features import gravity_body
from ..policy.error_integral import ErrorIntegrator
from ..policy.hover_thrust import HoverThrustEstimator, body_z_velocity, collective_of
from ..policy.inertial_velocity import InertialVelocityEstimator
from ..state import DroneState
from ..vehicle import VehicleSpec, load_vehicle
from .initial_states import Tier, get_tier, sample_initial_state
from .quadsim import QuadSim
from .randomization import EpisodeVariation, apply_variation, sample_variation
from .scene import Scene, SceneRandomization

CTBR_MAX_RATE_RAD_S = 10.0


@dataclass
class TaskConfig:
    episode_s: float = 10.0
    goal: tuple[float, float, float, float] = (0.0, 0.0, 2.0, 0.0)  # x, y, z (m), yaw (rad)
    tier: str = "A30"                  # initial-state tier when reset() gets no explicit state
    max_distance_m: float = 15.0       # beyond this from the goal the episode is a crash (fly-away)
    ground_clearance_m: float = 0.02   # body touching the ground = crash
    motor_init: str = "hover"          # rotor speeds at reset: "hover" or "off"


@dataclass
class VisualTaskConfig(TaskConfig):
    goal: tuple[float, float, float, float] = (0.0, 0.0, 1.5, 0.0)
    target_distance_m: tuple[float, float] = (2.0, 6.0)
    target_bearing_deg: float = 45.0
    target_height_m: float = 1.0       # ± around the start height
    target_radius_m: tuple[float, float] = (0.10, 0.20)
    standoff_m: float = 1.0            # hold this far in front of the target, facing it
    target_speed_mps: float = 0.0      # > 0: the target drifts at this speed (moving variant)
    target_rgba: tuple[float, float, float, float] = (0.95, 0.15, 0.1, 1.0)
    camera_latency_s: tuple[float, float] | None = None  # [min, max] per episode; None: the camera config's
    scene: SceneRandomization = field(default_factory=SceneRandomization)
    start_tier: Tier = Tier("start", 10.0, 0.2, 0.2, 0.2)


class QuadrotorEnv(gym.Env):
    """Base env: one drone, a goal pose, motors or CTBR actions."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(self, sim_config: SimConfig | None = None, task: TaskConfig | None = None,
                 randomization: RandomizationConfig | None = None, vehicle: VehicleSpec | str | None = None,
                 action_mode: str = "motors", render_mode: str | None = None):
        if action_mode not in ("motors", "ctbr"):
            raise ValueError(f"action_mode must be 'motors' or 'ctbr', got {action_mode!r}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.sim_config = validate(copy.deepcopy(sim_config) if sim_config else SimConfig())
        self.task = task or TaskConfig()
        get_tier(self.task.tier) if isinstance(self.task.tier, str) else None
        self.randomization = validate(randomization or RandomizationConfig())
        if isinstance(vehicle, str):
            vehicle = load_vehicle(vehicle)
        self.nominal_vehicle = vehicle or load_vehicle(self.sim_config.vehicle)
        self.action_mode = action_mode
        self.render_mode = render_mode
        self.sim = QuadSim(self.sim_config, self.nominal_vehicle)
        self.control_dt = 1.0 / self.sim_config.control_hz
        self.max_steps = int(round(self.task.episode_s * self.sim_config.control_hz))
        obs_spaces = {
            "imu": spaces.Box(-np.inf, np.inf, (6,), np.float32),
            "odom": spaces.Box(-np.inf, np.inf, (13,), np.float32),
            "goal": spaces.Box(-np.inf, np.inf, (4,), np.float32),
            # the action given to the previous step (zeros after reset): what a policy node
            # knows of its own last command, for policies that need it (thrust adaptation)
            "last_action": spaces.Box(-np.inf, np.inf, (4,), np.float32),
            # ∫(p - p_goal) dt from the odometry above (world, m·s), kept exactly as the onboard
            # Policy keeps it, for policies with integral action (``goal_error_integral``)
            "error_integral": spaces.Box(-np.inf, np.inf, (3,), np.float32),
            # the hover collective estimated from the accelerometer, the odometry's velocity and
            # last_action, kept exactly as the onboard Policy keeps it (``policy.hover_thrust``)
            "hover_thrust": spaces.Box(0.0, 1.0, (1,), np.float32),
            # the hover collective the vehicle file states (1 / thrust_to_weight of the nominal,
            # unrandomized vehicle): what a flight controller is configured with, not the truth
            "hover_thrust_config": spaces.Box(0.0, 1.0, (1,), np.float32),
            # the rotor drag per mass at hover its vehicle file states (1/s, body x and y) for the
            # episode's drag coefficients but the nominal mass and thrust: the airframe class is
            # known to whoever configures the vehicle, its exact mass and thrust are not
            "drag_per_mass_config": spaces.Box(0.0, np.inf, (2,), np.float32),
        }
        cam = self.sim_config.camera
        if cam.enabled:
            obs_spaces["image"] = spaces.Box(0, 255, (cam.height, cam.width, 3), np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)
        if action_mode == "motors":
            self.action_space = spaces.Box(0.0, 1.0, (4,), np.float32)
        else:
            r = CTBR_MAX_RATE_RAD_S
            self.action_space = spaces.Box(np.array([0, -r, -r, -r], np.float32), np.array([1, r, r, r], np.float32))
        self.goal = np.asarray(self.task.goal, dtype=float)
        self._goal32 = self.goal.astype(np.float32)
        self._goal_t = tuple(self.goal.tolist())
        self._last_action = (0.0, 0.0, 0.0, 0.0)
        self._integrator = ErrorIntegrator(1)
        self._hover_estimator = HoverThrustEstimator(1)
        self._floor_z = self.sim.body_half_height + self.task.ground_clearance_m
        self._max_dist = self.task.max_distance_m
        self.variation = EpisodeVariation(self.nominal_vehicle)
        self._drag_config = np.array(self.nominal_vehicle.hover_drag_per_mass, dtype=np.float32)
        self._rate_loop: RateController | None = None
        self._mixer: Mixer | None = None
        self._steps = 0
        self._chase_cam = None
        # subclasses that override the per-step hooks pay for them; the hover env does not
        self._has_hooks = (type(self)._before_observation is not QuadrotorEnv._before_observation
                           or type(self)._extra_crash is not QuadrotorEnv._extra_crash)
        c = self.sim_config.odom
        self._odom_is_noisy = bool(c.position_noise_std or c.velocity_noise_std or c.attitude_noise_std)

    # ---------------------------------------------------------------- reset
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = options or {}
        rng = self.np_random
        self.variation = options.get("variation") or sample_variation(self.nominal_vehicle, self.randomization, rng)
        apply_variation(self.sim, self.variation)
        configured = self.nominal_vehicle.replace(rotor_drag_n_per_rpm_mps=self.variation.vehicle.rotor_drag_n_per_rpm_mps)
        self._drag_config = np.array(configured.hover_drag_per_mass, dtype=np.float32)
        if "goal" in options:
            goal = np.asarray(options["goal"], dtype=float)
            if goal.shape != (4,) or not np.isfinite(goal).all():
                raise ValueError(f"options['goal'] must be 4 finite numbers (x, y, z, yaw), got {options['goal']!r}")
            self.goal = goal
        else:
            self.goal = self._sample_goal(rng)
        state = options.get("state")
        if state is None:
            state = self._sample_start(rng)
        motor = 0.0 if self.task.motor_init == "off" else None
        self.sim.reset(state, motor_speed=motor, seed=int(rng.integers(2**31)))
        if self.action_mode == "ctbr":
            self._rate_loop = RateController(self.variation.vehicle)
            self._mixer = Mixer(self.variation.vehicle)
        self._steps = 0
        self._last_action = (0.0, 0.0, 0.0, 0.0)
        self._integrator.reset()
        self._hover_estimator.reset()
        self._after_reset(rng)
        self._goal32 = self.goal.astype(np.float32)
        self._goal_t = tuple(self.goal.tolist())
        return self._observation(), self._info(False)

    def _sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(self.task.goal, dtype=float)

    def _sample_start(self, rng: np.random.Generator) -> DroneState:
        return sample_initial_state(rng, self.task.tier, self.goal[:3])

    def _after_reset(self, rng: np.random.Generator) -> None:
        pass

    # ---------------------------------------------------------------- step
    def motors_from_action(self, action) -> list:
        """Motor commands u ∈ [0,1]^4 for an action of this env's action mode."""
        a = np.asarray(action, dtype=float).reshape(-1)
        if a.shape != (4,):
            raise ValueError(f"action must have 4 values, got shape {a.shape}")
        if self.action_mode == "motors":
            return a.tolist()
        v = self.variation.vehicle
        torque = self._rate_loop(a[1:], self.sim.imu.gyro, self.control_dt)
        return self._mixer(float(a[0]) * 4.0 * v.max_thrust_per_rotor_n, torque).tolist()

    def step(self, action):
        sim = self.sim
        if self.action_mode == "motors" and type(action) is np.ndarray and action.shape == (4,):
            u = action.tolist()  # fast path: the action is the motor command
            self._last_action = u  # the sim copies what it keeps, so sharing the list is safe
        else:
            u = self.motors_from_action(action)
            self._last_action = tuple(float(a) for a in np.asarray(action, dtype=float).reshape(-1))
        sim.step(u)
        self._steps += 1
        if self._has_hooks:
            self._before_observation()
        pos = sim._pos
        g = self._goal_t
        dx, dy, dz = pos[0] - g[0], pos[1] - g[1], pos[2] - g[2]
        dist = math.sqrt(dx * dx + dy * dy + dz * dz)
        crashed = pos[2] < self._floor_z or not dist < self._max_dist or (self._has_hooks and self._extra_crash())
        truncated = not crashed and self._steps >= self.max_steps
        wv = sim._wvel
        reward = -dist - 0.02 * math.sqrt(wv[0] * wv[0] + wv[1] * wv[1] + wv[2] * wv[2])
        if crashed:
            reward -= 100.0
        return self._observation(), reward, crashed, truncated, self._info(crashed, dist)

    def _before_observation(self) -> None:
        pass

    def _extra_crash(self) -> bool:
        return False

    def _observation(self) -> dict:
        sim = self.sim
        imu = sim.imu
        if not self._odom_is_noisy:
            rates = sim.body_rates
            # one allocation, three views: the arrays are fresh each step, so callers may keep them
            buf = np.array((*imu.gyro, *imu.accel, *sim._pos, *sim._quat, *sim._vel, *rates, *self._goal_t,
                            *self._last_action), dtype=np.float32)
            obs = {"imu": buf[0:6], "odom": buf[6:19], "goal": buf[19:23], "last_action": buf[23:27]}
        else:
            odom = sim.odometry().as_vector().astype(np.float32)
            obs = {"imu": np.array(imu.gyro + imu.accel, dtype=np.float32), "odom": odom, "goal": self._goal32.copy(),
                   "last_action": np.array(self._last_action, dtype=np.float32)}
        obs["error_integral"] = self._integrator.update(obs["odom"], obs["goal"], self.control_dt)[0].astype(np.float32)
        collective = collective_of(self._last_action, self.action_mode)
        v_z = body_z_velocity(obs["odom"])
        obs["hover_thrust"] = np.array([self._hover_estimator.update_one(imu.accel[2], collective, v_z, self.control_dt)],
                                       dtype=np.float32)
        obs["hover_thrust_config"] = np.array([self.nominal_vehicle.hover_command], dtype=np.float32)
        obs["drag_per_mass_config"] = self._drag_config.copy()
        return self._with_image(obs)

    @property
    def error_integral(self) -> np.ndarray:
        """World-frame ∫(p - p_goal) dt of the current observation (what ``teacher="integral"`` applies)."""
        return self._integrator.value[0]

    @property
    def hover_thrust(self) -> float:
        """The estimated hover collective of the current observation (what ``teacher="adaptive"``
        flies with instead of the true vehicle's)."""
        return float(self._hover_estimator.value[0])

    def _with_image(self, obs: dict) -> dict:
        cam = self.sim.camera
        if cam is not None:
            obs["image"] = cam.image.copy()
        return obs

    def _info(self, crashed: bool, dist: float | None = None) -> dict:
        if dist is None:
            dist = float(np.linalg.norm(np.asarray(self.sim.position) - self.goal[:3]))
        return {"t": self.sim.t, "distance_m": dist, "crashed": crashed}

    # ---------------------------------------------------------------- render
    def render(self):
        if self.render_mode != "rgb_array":
            return None
        from ..config import CameraConfig
        from .camera import Camera

        if self._chase_cam is None:
            self._chase_cam = Camera(CameraConfig(enabled=True, width=320, height=240, fov_deg=60.0, pitch_up_deg=-20.0),
                                     self.sim.client, mount_offset_m=0.0)
        pos = np.asarray(self.sim.position)
        yaw = math.atan2(self.sim.rotation_matrix[3], self.sim.rotation_matrix[0])
        eye = pos - 1.2 * np.array([math.cos(yaw), math.sin(yaw), 0.0]) + np.array([0, 0, 0.5])
        c, s = math.cos(yaw), math.sin(yaw)
        rot = (c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0)
        return self._chase_cam.render(eye, rot)

    def close(self):
        self.sim.close()


class HoverEnv(QuadrotorEnv):
    """Recover from a tier's initial state and hold the goal pose."""


class VisualTargetEnv(QuadrotorEnv):
    """Fly to a coloured sphere placed 2-6 m ahead (±45° bearing, ±1 m height) and hold 1 m in
    front of it, facing it. The camera is on; the goal in ``obs['goal']`` is privileged.

    ``obs['attitude']`` (quaternion xyzw) is the attitude estimate a flight controller's AHRS
    computes from its IMU alone (gyro + accelerometer): what ``sensor_msgs/Imu.orientation``
    carries. Its roll and pitch are observable from an IMU; its yaw is not (no magnetometer),
    so policies should read only the gravity direction from it (feature ``gravity_body``)."""

    def __init__(self, sim_config: SimConfig | None = None, task: VisualTaskConfig | None = None, **kwargs):
        cfg = copy.deepcopy(sim_config) if sim_config else SimConfig()
        cfg.camera.enabled = True
        super().__init__(cfg, task or VisualTaskConfig(), **kwargs)
        # climb_rate and inertial_velocity: high-passed velocities integrated from the IMU and this
        # attitude, kept exactly as the onboard Policy keeps them (``policy.climb_rate``,
        # ``policy.inertial_velocity``)
        self.observation_space = spaces.Dict({**self.observation_space.spaces,
                                              "attitude": spaces.Box(-1.0, 1.0, (4,), np.float32),
                                              "climb_rate": spaces.Box(-np.inf, np.inf, (1,), np.float32),
                                              "inertial_velocity": spaces.Box(-np.inf, np.inf, (3,), np.float32)})
        self._climb = ClimbRateEstimator(1)
        self._inertial = InertialVelocityEstimator(1)
        self.scene = Scene(self.sim.client, self.sim.plane_id)
        self.target_position = np.zeros(3)
        self.target_velocity = np.zeros(3)

    def _observation(self) -> dict:
        obs = super()._observation()
        obs["attitude"] = np.array(self.sim._quat, dtype=np.float32)
        up = gravity_body(obs)   # the same attitude-to-up the policy's gravity_body input reads
        obs["climb_rate"] = self._climb.update(self.sim.imu.accel, up, self.control_dt).astype(np.float32)
        obs["inertial_velocity"] = self._inertial.update(obs["imu"], up, self.control_dt)[0].astype(np.float32)
        return obs

    def _sample_goal(self, rng):
        t: VisualTaskConfig = self.task  # type: ignore[assignment]
        start = np.asarray(t.goal[:3], dtype=float)
        d = rng.uniform(*t.target_distance_m)
        bearing = math.radians(rng.uniform(-t.target_bearing_deg, t.target_bearing_deg))
        direction = np.array([math.cos(bearing), math.sin(bearing), 0.0])
        self.target_position = start + d * direction + np.array([0, 0, rng.uniform(-t.target_height_m, t.target_height_m)])
        self.target_position[2] = max(self.target_position[2], 0.4)
        if t.target_speed_mps > 0:
            az = rng.uniform(0, 2 * math.pi)
            self.target_velocity = t.target_speed_mps * np.array([math.cos(az), math.sin(az), 0.0])
        else:
            self.target_velocity = np.zeros(3)
        return self._goal_for_target()

    def _goal_for_target(self) -> np.ndarray:
        t: VisualTaskConfig = self.task  # type: ignore[assignment]
        start = np.asarray(t.goal[:3], dtype=float)
        horiz = self.target_position[:2] - start[:2]
        direction = horiz / max(np.linalg.norm(horiz), 1e-6)
        goal_xy = self.target_position[:2] - t.standoff_m * direction
        yaw = math.atan2(direction[1], direction[0])
        return np.array([goal_xy[0], goal_xy[1], self.target_position[2], yaw])

    def _sample_start(self, rng):
        t: VisualTaskConfig = self.task  # type: ignore[assignment]
        return sample_initial_state(rng, t.start_tier, np.asarray(t.goal[:3], dtype=float))

    def _after_reset(self, rng):
        t: VisualTaskConfig = self.task  # type: ignore[assignment]
        self._climb.reset()
        self._inertial.reset()
        radius = rng.uniform(*t.target_radius_m)
        jitter = t.scene.target_color_jitter
        rgba = tuple(float(np.clip(c + rng.uniform(-jitter, jitter), 0, 1)) for c in t.target_rgba[:3]) + (1.0,)
        self.scene.randomize(rng, t.scene, avoid=self.target_position, avoid_radius=1.5)
        self.scene.set_target(self.target_position, radius, rgba)
        if t.scene.second_object_rgba is not None:
            # beside the target, across the line of sight, so both are in view
            los = self.target_position[:2] - np.asarray(t.goal[:2], dtype=float)
            side = np.array([-los[1], los[0]]) / max(np.linalg.norm(los), 1e-6) * rng.choice([-1.0, 1.0])
            p = self.target_position.copy()
            p[:2] += side * rng.uniform(0.8, 1.5)
            self.scene.set_second_object(p, radius, t.scene.second_object_rgba)
        else:
            self.scene.set_second_object(None, radius, None)
        if t.camera_latency_s is not None:
            self.sim.camera.config.latency_s = float(rng.uniform(*t.camera_latency_s))
            self.sim.camera.reset(self.sim.camera._rng)
        self.sim.camera.light = self.scene.light
        self.sim.camera.sky_rgb = self.scene.sky_rgb
        self.sim.camera.update(self.sim.t, self.sim.position, self.sim.rotation_matrix, force=True)

    def _before_observation(self) -> None:
        if self.target_velocity.any():
            self.target_position = self.target_position + self.target_velocity * self.control_dt
            self.scene.move_target(self.target_position)
            self.goal = self._goal_for_target()
            self._goal32 = self.goal.astype(np.float32)
            self._goal_t = tuple(self.goal.tolist())

    def _extra_crash(self) -> bool:
        d = np.linalg.norm(np.asarray(self.sim.position) - self.target_position)
        return bool(d < self.scene.state.target_radius + 0.05)

    def _info(self, crashed, dist=None):
        info = super()._info(crashed, dist)
        info["target_position"] = self.target_position.copy()
        return info
