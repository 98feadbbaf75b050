"""The visual-target task's evaluation protocol and its named conditions.

Task (``LnnDrone/VisualTarget-v0``): a 40 cm red sphere 2-6 m ahead (±45° bearing, ±1 m
height); the policy sees only the IMU and a 64x48 camera and must hold the standoff point
1 m in front of the target, facing it. Episode ``i`` of seed ``S`` has the same start state,
target and scene draw for every controller and every condition, so conditions differ only in
what they change.

Success (decided here, documented in the README): no crash and, for every step of the last
:data:`TAIL_S` seconds, within :data:`SUCCESS_RADIUS_M` of the (possibly moving) standoff point
and heading within :data:`HEADING_TOL_DEG` of the bearing to the target.

Conditions are plain overrides of the scene, camera, vehicle and target; ``nominal`` (first)
is the training distribution of scenes flown by the nominal vehicle. Those marked
``in_distribution`` are not counted in the out-of-distribution mean, nor are the ``extra`` ones:
conditions beyond the issue's out-of-distribution list (a steady wind), reported beside it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..config import SimConfig
from ..sim.image_ops import Corruption
from ..sim.scene import SceneRandomization
from .evaluation import fly_in_batches
from .stats import wilson_interval

SUCCESS_RADIUS_M = 0.5
HEADING_TOL_DEG = 30.0
TAIL_S = 3.0
START_POSITION = (0.0, 0.0, 1.5)
TARGET_RADIUS_M = 0.2           # a 40 cm sphere: a known size is what makes range visible
TARGET_RGBA = (1.0, 0.08, 0.05, 1.0)
TRAIN_TEXTURES = ("checker", "stripes", "noise", "tiles")
OOD_TEXTURES = ("dots", "rings", "diagonal", "gradient")


@dataclass(frozen=True)
class VisualSetup:
    """Rates and camera of the visual task (a model file carries its own; these are defaults)."""

    control_hz: float = 30.0
    physics_hz: float = 240.0
    width: int = 64
    height: int = 48
    fov_deg: float = 90.0
    episode_s: float = 8.0
    action_mode: str = "ctbr"


def train_scene() -> SceneRandomization:
    """The scene randomization of training (and of the ``nominal`` condition)."""
    return SceneRandomization(ground_textures=True, target_color_jitter=0.12, distractors=(0, 0),
                              light_direction=True, light_intensity=(0.6, 1.0), ambient=(0.4, 0.8),
                              texture_styles=TRAIN_TEXTURES)


@dataclass(frozen=True)
class Condition:
    name: str
    description: str
    in_distribution: bool = False
    scene: dict = field(default_factory=dict)       # SceneRandomization overrides
    corruption: Corruption = Corruption()
    camera_latency_s: float = 0.0
    vehicle: str | None = None                       # None: the settings' vehicle
    target_speed_mps: float = 0.0
    target_rgba: tuple | None = None
    wind_mps: float = 0.0                            # steady horizontal wind, a random direction per episode
    extra: bool = False                              # beyond the OOD list: not in the OOD mean


CONDITIONS: dict[str, Condition] = {c.name: c for c in (
    Condition("nominal", "training distribution of scenes, nominal crazyflie2, static target", True),
    Condition("moving_target", "target drifts at 0.5 m/s in a random horizontal direction", True,
              target_speed_mps=0.5),
    Condition("textures", "ground and wall textures of styles never trained on (dots, rings, diagonal, gradient)",
              scene={"texture_styles": OOD_TEXTURES, "walls": True}),
    Condition("dim_light", "light intensity 0.25-0.4 and ambient 0.15-0.3 (training: 0.6-1.0, 0.4-0.8)",
              scene={"light_intensity": (0.25, 0.4), "ambient": (0.15, 0.3)}),
    Condition("color_shift", "camera colour gains (1.15, 0.85, 1.1) and an orange target shade",
              corruption=Corruption(color_gain=(1.15, 0.85, 1.1)), target_rgba=(0.95, 0.4, 0.1, 1.0)),
    Condition("low_contrast", "image contrast halved, brightness +20", corruption=Corruption(contrast=0.5, brightness=20.0)),
    Condition("distractors", "3-4 distractor objects (boxes, spheres, cylinders) of random colours",
              scene={"distractors": (3, 4)}),
    Condition("second_object", "a second sphere of the target's size in blue, 0.8-1.5 m beside the target",
              scene={"second_object_rgba": (0.1, 0.3, 0.95, 1.0)}),
    Condition("noise", "Gaussian pixel noise, std 12 of 255", corruption=Corruption(noise_std=12.0)),
    Condition("blur", "Gaussian blur, sigma 1 px", corruption=Corruption(blur_sigma_px=1.0)),
    Condition("latency_50ms", "camera frames arrive 50 ms late", camera_latency_s=0.05),
    Condition("quad250", "the 250 mm vehicle (quad250) instead of the crazyflie2", vehicle="quad250"),
    Condition("wind", "a steady 0.5 m/s horizontal wind (a light breeze) from a random direction, static target",
              wind_mps=0.5, extra=True),
)}


def condition_names() -> list[str]:
    return list(CONDITIONS)


def get_condition(name: str) -> Condition:
    try:
        return CONDITIONS[name]
    except KeyError:
        raise ValueError(f"unknown condition {name!r}; known: {', '.join(CONDITIONS)}") from None


def ood_condition_names() -> list[str]:
    """The conditions of the out-of-distribution mean: the issue's list, without the extras."""
    return [n for n, c in CONDITIONS.items() if not (c.in_distribution or c.extra)]


def episode_wind(condition: Condition, seed: int, index: int) -> tuple[float, float, float] | None:
    """The steady wind (world ENU, m/s) of protocol episode ``index``, or None: its direction is a
    pure function of the seed and index, from a stream of its own (the start states stay those of
    every other condition)."""
    if condition.wind_mps <= 0:
        return None
    az = np.random.default_rng([seed, 4243, index]).uniform(-math.pi, math.pi)
    return (condition.wind_mps * math.cos(az), condition.wind_mps * math.sin(az), 0.0)


@dataclass
class VisualEvalSettings:
    condition: str = "nominal"
    episodes: int = 100
    seed: int = 0
    vehicle: str = "crazyflie2"
    setup: VisualSetup = field(default_factory=VisualSetup)

    def check(self) -> None:
        get_condition(self.condition)
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.setup.episode_s <= TAIL_S:
            raise ValueError(f"episode_s must exceed the {TAIL_S} s success window, got {self.setup.episode_s}")


def make_visual_env(settings: VisualEvalSettings, randomization=None, scene: SceneRandomization | None = None,
                    camera_latency_range: tuple[float, float] | None = None, target_speed_mps: float | None = None):
    """The visual-target env of a condition (training passes its own randomization and scene)."""
    from ..sim.envs import VisualTargetEnv, VisualTaskConfig

    cond = get_condition(settings.condition)
    s = settings.setup
    cfg = SimConfig(physics_hz=s.physics_hz, control_hz=s.control_hz, vehicle=cond.vehicle or settings.vehicle)
    cam = cfg.camera
    cam.enabled, cam.width, cam.height, cam.fov_deg, cam.rate_hz = True, s.width, s.height, s.fov_deg, s.control_hz
    cam.latency_s = cond.camera_latency_s
    sc = replace(scene or train_scene(), **cond.scene)
    task = VisualTaskConfig(episode_s=s.episode_s, goal=(*START_POSITION, 0.0), target_radius_m=(TARGET_RADIUS_M,) * 2,
                            target_speed_mps=cond.target_speed_mps if target_speed_mps is None else target_speed_mps,
                            scene=sc, camera_latency_s=camera_latency_range)
    task.target_rgba = tuple(cond.target_rgba or TARGET_RGBA)
    env = VisualTargetEnv(cfg, task, randomization=randomization, action_mode=s.action_mode)
    env.sim.camera.corruption = cond.corruption
    return env


class VisualExpert:
    """The privileged teacher of the visual task: the geometric expert on the true state, with
    gentler gains (tilt <= 25°, acceleration <= 5 m/s²). A vision student has to estimate its
    velocity from how the target moves in the image; slower, smoother flight is what it can
    imitate, and the task (hold a point 1 m from a target) has no need for aggressive moves."""

    name = "expert"
    GAINS = dict(kp=4.0, kv=3.5, max_tilt_deg=25.0, max_accel_m_s2=5.0, k_att=6.0)

    def __init__(self, slows_for_lag: bool = True, lead_matches_loop: bool = False, integral_gain: float = 0.0,
                 integral_limit_m: float = 0.6, integral_gate_m: float = 0.8):
        """``slows_for_lag``: scale the loop bandwidths down for slow motors or actuation latency
        (``ExpertAgent.loop_speed``), as the hover expert does; False flies the nominal gains on
        every vehicle (an experiment: it crashed in 19 of 96 training episodes with slow motors and
        latency, config/experiments/visual_expert_nominal_gains.yaml).
        ``lead_matches_loop``: lead a moving target by v kv / (kp s), the lag of the slowed loop
        (position gains kp s^2, velocity gains kv s), instead of the nominal loop's v kv / kp; with
        s < 1 the nominal lead leaves a steady lag of v kv / kp (1 / s - 1).
        ``integral_gain`` (1/s, 0 = off): integral action on the position error, counted only while
        the drone is within ``integral_gate_m`` of the standoff point (so the approach from 2-6 m
        does not wind it up) and bounded to ``integral_limit_m``; the goal moves by gain x integral.
        Why: the lead needs the target's velocity, which a student sees only through the slow
        looming of a few-pixel sphere; an integral of the error it sees is a function of its own
        observation history, so under DAgger the labels along a lagging student's flight keep
        pushing until the lag is gone (the teacher's integral grows with the student's error)."""
        if integral_gain < 0 or integral_limit_m <= 0 or integral_gate_m <= 0:
            raise ValueError(f"integral_gain must be >= 0 and integral_limit_m, integral_gate_m > 0, got "
                             f"{integral_gain}, {integral_limit_m}, {integral_gate_m}")
        from .evaluation import ExpertAgent

        self._inner = ExpertAgent()
        self.slows_for_lag = slows_for_lag
        self.lead_matches_loop = lead_matches_loop
        self.integral_gain, self.integral_limit_m, self.integral_gate_m = integral_gain, integral_limit_m, integral_gate_m
        self.integral = np.zeros((0, 3))

    def reset(self, envs: list) -> None:
        from ..control.geometric import BatchGeometricController, GeometricGains

        inner = self._inner
        inner.reset(envs)
        bases = [e.unwrapped for e in envs]
        # the inner expert's reset already found each vehicle's loop speed for its motor lag
        speed = inner._geo.speed if self.slows_for_lag else 1.0
        inner._geo = BatchGeometricController.for_vehicles([b.variation.vehicle for b in bases],
                                                           GeometricGains(**self.GAINS), speed=speed)
        self.integral = np.zeros((len(envs), 3))

    def ctbr(self, envs: list) -> np.ndarray:
        """CTBR toward the standoff point, led by target velocity x kv/kp: the steady lag of a
        PD loop behind a point moving at constant speed, removed (the expert knows the speed).
        With ``integral_gain`` > 0 each call advances the integral by one control step, so call
        it once per step (``act`` does)."""
        inner = self._inner
        bases = [e.unwrapped for e in envs]
        goal = np.array([b.goal for b in bases])
        pos = np.array([b.sim.position for b in bases])
        if self.integral_gain > 0:
            goal[:, :3] += self.integral_gain * self._integrate(goal[:, :3] - pos, inner._dt)
        goal[:, :3] += self.lead(bases)
        quat = np.array([b.sim._quat for b in bases])
        vel = np.array([b.sim._vel for b in bases])
        thrust, rates = inner._geo(pos, quat, vel, goal, inner._dt)
        return np.column_stack([thrust, rates])

    def _integrate(self, error: np.ndarray, dt: float) -> np.ndarray:
        """(B, 3) the gated, bounded integral of the position error, advanced by one control step."""
        near = np.linalg.norm(error, axis=1, keepdims=True) < self.integral_gate_m
        self.integral = np.clip(self.integral + np.where(near, error, 0.0) * dt,
                                -self.integral_limit_m, self.integral_limit_m)
        return self.integral

    def lead(self, bases: list) -> np.ndarray:
        """(B, 3) offset of the goal ahead of a moving target: the steady lag of the PD loop."""
        lag_s = self.GAINS["kv"] / self.GAINS["kp"]
        if self.lead_matches_loop:
            lag_s = lag_s / np.asarray(self._inner._geo.speed, dtype=float)[:, None]
        return np.array([b.target_velocity for b in bases]) * lag_s

    def act(self, observations: list[dict], envs: list) -> np.ndarray:
        ctbr = self.ctbr(envs)
        return ctbr if envs[0].unwrapped.action_mode == "ctbr" else self._inner.motors(envs, ctbr)


def episode_start(seed: int, index: int):
    """(start state, env seed) of protocol episode ``index``: a pure function of the seed."""
    from ..sim.initial_states import sample_initial_state

    rng = np.random.default_rng([seed, 4242, index])
    t = _start_tier()
    state = sample_initial_state(rng, t, np.asarray(START_POSITION))
    return state, int(rng.integers(2**31))


def _start_tier():
    from ..sim.envs import VisualTaskConfig

    return VisualTaskConfig().start_tier


def heading_error_rad(rot_matrix, position, target) -> float:
    """Angle between the body x axis and the direction to the target, both horizontal."""
    fx, fy = rot_matrix[0], rot_matrix[3]
    dx, dy = target[0] - position[0], target[1] - position[1]
    a = math.atan2(dy, dx) - math.atan2(fy, fx)
    return abs((a + math.pi) % (2 * math.pi) - math.pi)


class TaskRecorder:
    """Wraps a controller; before each step records every env's standoff goal, target and
    heading error, which the scoring needs when the target moves."""

    def __init__(self, inner):
        self.inner = inner
        self.name = inner.name

    def reset(self, envs: list) -> None:
        self.goals: list[list] = [[] for _ in envs]
        self.heading: list[list] = [[] for _ in envs]
        self.inner.reset(envs)

    def record(self, envs: list) -> None:
        for i, env in enumerate(envs):
            b = env.unwrapped
            self.goals[i].append(b.goal[:3].copy())
            self.heading[i].append(heading_error_rad(b.sim.rotation_matrix, b.sim.position, b.target_position))

    def act(self, observations: list[dict], envs: list) -> np.ndarray:
        self.record(envs)
        return self.inner.act(observations, envs)


@dataclass
class VisualEpisode:
    index: int
    success: bool
    crashed: bool
    final_distance_error_m: float
    final_heading_error_deg: float
    tail_max_distance_m: float
    duration_s: float


def score_visual(index: int, dt: float, episode_s: float, pos: np.ndarray, goals: np.ndarray, heading: np.ndarray,
                 crashed: bool, completed: bool) -> VisualEpisode:
    """Score one flight: ``pos``, ``goals`` (n+1, 3) and ``heading`` (n+1,) per control tick."""
    n = len(pos)
    t = np.arange(n) * dt
    err = np.linalg.norm(pos - goals, axis=1)
    tail = t >= episode_s - TAIL_S - 1e-9
    ok_pos = bool((err[tail] <= SUCCESS_RADIUS_M).all()) if tail.any() else False
    ok_head = bool((heading[tail] <= math.radians(HEADING_TOL_DEG)).all()) if tail.any() else False
    success = (not crashed) and completed and ok_pos and ok_head
    return VisualEpisode(index, success, crashed, float(err[-1]), float(math.degrees(heading[-1])),
                         float(err[tail].max()) if tail.any() else float("inf"), float(t[-1]))


def run_visual_episodes(envs: list, controller, settings: VisualEvalSettings, indices: list[int]) -> list[VisualEpisode]:
    from ..sim.randomization import EpisodeVariation
    from .evaluation import fly_batch

    rec = TaskRecorder(controller)
    cond = get_condition(settings.condition)
    resets = []
    for env, index in zip(envs, indices):
        state, seed = episode_start(settings.seed, index)
        variation = EpisodeVariation(env.unwrapped.nominal_vehicle, wind_mps=episode_wind(cond, settings.seed, index))
        resets.append((seed, {"state": state, "variation": variation}))
    flight = fly_batch(envs, rec, resets)
    rec.record(envs[: len(indices)])  # the state after the last step
    out = []
    for i, index in enumerate(indices):
        b = envs[i].unwrapped
        m = int(flight.steps[i])
        goals = np.asarray(rec.goals[i][:m] + [rec.goals[i][-1]])
        heading = np.asarray(rec.heading[i][:m] + [rec.heading[i][-1]])
        out.append(score_visual(index, b.control_dt, settings.setup.episode_s, flight.position[i, : m + 1], goals,
                                heading, bool(flight.crashed[i]), m >= b.max_steps))
    return out


@dataclass
class VisualSummary:
    controller: str
    task: str
    condition: str
    settings: dict
    episodes: int
    success_rate: float
    success_ci_low: float
    success_ci_high: float
    crash_rate: float
    final_distance_error_m_median: float
    final_heading_error_deg_median: float
    results: list = field(default_factory=list, repr=False)
    # whether a model was flown through vehicle matching (PolicyAgent.vehicle_matching_status)
    vehicle_matching: str = "not needed"

    def to_json_dict(self) -> dict:
        d = asdict(self)
        d.pop("results")
        return d


def summarize_visual(name: str, settings: VisualEvalSettings, results: list[VisualEpisode]) -> VisualSummary:
    n = len(results)
    k = sum(r.success for r in results)
    lo, hi = wilson_interval(k, n)
    return VisualSummary(name, "visual_target", settings.condition, asdict(settings), n, k / n, lo, hi,
                         sum(r.crashed for r in results) / n,
                         float(np.median([r.final_distance_error_m for r in results])),
                         float(np.median([r.final_heading_error_deg for r in results])), results)


def evaluate_visual(controller, settings: VisualEvalSettings, progress: bool = False, batch: int = 8,
                    indices: list[int] | None = None) -> VisualSummary:
    """Fly ``settings.episodes`` protocol episodes (``batch`` side by side) of a condition."""
    settings.check()
    indices = list(range(settings.episodes)) if indices is None else list(indices)
    b = max(1, min(batch, len(indices)))
    envs = [make_visual_env(settings) for _ in range(b)]
    results = fly_in_batches(envs, indices, lambda chunk: run_visual_episodes(envs, controller, settings, chunk),
                             f"eval {controller.name} {settings.condition}" if progress else None)
    summary = summarize_visual(controller.name, settings, results)
    summary.vehicle_matching = getattr(controller, "vehicle_matching_status", "not needed")
    return summary


def setup_for_model(model) -> VisualSetup:
    """The rates and camera a loaded model was trained for."""
    cfg = model.config
    img = cfg.image_input
    if img is None:
        raise ValueError("this model has no image input: it is not a visual-target policy")
    return replace(VisualSetup(), control_hz=1.0 / cfg.control_period, height=img.shape[0], width=img.shape[1],
                   action_mode=cfg.action.mode)
