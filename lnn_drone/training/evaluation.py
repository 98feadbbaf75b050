"""The evaluation protocol (DESIGN.md §6): seeded, identical for every controller.

Episode ``i`` of a run with seed ``S`` always starts from the same initial state, goal and
disturbance, whatever flies it, so two controllers are compared on the same episodes.
Success = no crash and within 0.5 m of the goal for all of the last 5 s.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

import numpy as np

from ..config import SimConfig
from ..vehicle import VehicleSpec, load_vehicle
from .stats import wilson_interval

SUCCESS_RADIUS_M = 0.5
SETTLE_RADIUS_M = 0.1
TAIL_S = 5.0


class Controller(Protocol):
    """Anything that flies an env: ``reset`` at episode start, ``act`` each control step."""

    name: str

    def reset(self, env) -> None: ...

    def act(self, obs: dict, env) -> np.ndarray: ...


class ExpertAgent:
    """The privileged geometric expert as a :class:`Controller` (reads the true state)."""

    name = "expert"

    def __init__(self, use_true_vehicle: bool = True):
        self.use_true_vehicle = use_true_vehicle
        self._ctrl = None

    def reset(self, env) -> None:
        from ..control import ExpertController

        env = env.unwrapped
        vehicle = env.variation.vehicle if self.use_true_vehicle else env.nominal_vehicle
        self._ctrl = ExpertController(vehicle)
        self._dt = env.control_dt

    def act(self, obs: dict, env) -> np.ndarray:
        env = env.unwrapped
        state = env.sim.state
        if env.action_mode == "ctbr":
            return self._ctrl.ctbr(state, env.goal, self._dt).as_array()
        return self._ctrl.motors(state, env.goal, self._dt)


@dataclass
class EvalSettings:
    tier: str = "A30"
    episodes: int = 100
    seed: int = 0
    vehicle: str = "crazyflie2"
    latency_ms: float = 0.0
    thrust_to_weight: float | None = None
    push_frac: float = 0.0          # constant horizontal push, fraction of weight
    episode_s: float = 10.0
    goal: tuple[float, float, float, float] = (0.0, 0.0, 2.0, 0.0)
    action_mode: str = "motors"
    control_hz: float = 240.0
    physics_hz: float = 240.0

    def check(self) -> None:
        from ..sim.initial_states import get_tier

        get_tier(self.tier)
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if not 0.0 <= self.latency_ms <= 200.0:
            raise ValueError(f"latency_ms must be in [0, 200], got {self.latency_ms}")
        if self.thrust_to_weight is not None and not 1.05 <= self.thrust_to_weight <= 20.0:
            raise ValueError(f"thrust-to-weight must be in [1.05, 20], got {self.thrust_to_weight}")
        if not 0.0 <= self.push_frac <= 2.0:
            raise ValueError(f"push_frac must be in [0, 2], got {self.push_frac}")
        if self.episode_s <= TAIL_S:
            raise ValueError(f"episode_s must exceed the {TAIL_S} s success window, got {self.episode_s}")


@dataclass
class EpisodeResult:
    index: int
    success: bool
    crashed: bool
    rmse_m: float               # over the last 5 s (or what was flown of it)
    settle_s: float             # inf if never settled within 0.1 m
    steady_offset_m: float      # |mean position error| over the last 5 s
    final_error_m: float
    saturation: float           # fraction of motor commands at 0 or 1
    smoothness: float           # mean |Δu| per control step
    duration_s: float
    trajectory: dict | None = field(default=None, repr=False)


@dataclass
class EvalSummary:
    controller: str
    settings: dict
    episodes: int
    success_rate: float
    success_ci_low: float
    success_ci_high: float
    crash_rate: float
    rmse_m_median: float | None
    settle_s_median: float | None
    steady_offset_m: float | None
    saturation_mean: float
    smoothness_mean: float
    results: list[EpisodeResult] = field(default_factory=list, repr=False)

    def to_json_dict(self) -> dict:
        d = asdict(self)
        d.pop("results")
        return d


def make_env(settings: EvalSettings, sim_config: SimConfig | None = None):
    """The env the protocol flies: hover task at the settings' rates, nominal vehicle."""
    from ..sim.envs import HoverEnv, TaskConfig

    cfg = sim_config or SimConfig()
    cfg.physics_hz, cfg.control_hz, cfg.vehicle = settings.physics_hz, settings.control_hz, settings.vehicle
    task = TaskConfig(episode_s=settings.episode_s, goal=tuple(settings.goal), tier=settings.tier)
    return HoverEnv(cfg, task, action_mode=settings.action_mode)


def episode_conditions(settings: EvalSettings, index: int, vehicle: VehicleSpec):
    """Initial state, goal and variation of episode ``index``: a pure function of the seed."""
    from ..sim.initial_states import sample_initial_state
    from ..sim.randomization import EpisodeVariation

    rng = np.random.default_rng([settings.seed, index])
    goal = np.asarray(settings.goal, dtype=float)
    state = sample_initial_state(rng, settings.tier, goal[:3])
    if settings.thrust_to_weight is not None:
        vehicle = vehicle.replace(thrust_to_weight=settings.thrust_to_weight)
    az = rng.uniform(0.0, 2.0 * math.pi)
    push = settings.push_frac * vehicle.weight_n
    variation = EpisodeVariation(vehicle, action_latency_s=settings.latency_ms / 1000.0,
                                 constant_push_n=(push * math.cos(az), push * math.sin(az), 0.0))
    return state, goal, variation, int(rng.integers(2**31))


def run_episode(env, controller: Controller, settings: EvalSettings, index: int, record: bool = False) -> EpisodeResult:
    """Fly one protocol episode and score it."""
    base = env.unwrapped
    state, goal, variation, seed = episode_conditions(settings, index, base.nominal_vehicle)
    obs, _ = env.reset(seed=seed, options={"state": state, "goal": goal, "variation": variation})
    controller.reset(env)
    n = base.max_steps
    dt = base.control_dt
    pos = np.zeros((n + 1, 3))
    motors = np.zeros((n, 4))
    pos[0] = base.sim.position
    crashed = False
    steps = 0
    for k in range(n):
        action = controller.act(obs, env)
        obs, _, terminated, truncated, _ = env.step(action)
        motors[k] = base.sim.applied_command
        pos[k + 1] = base.sim.position
        steps = k + 1
        if terminated:
            crashed = True
            break
        if truncated:
            break
    pos = pos[: steps + 1]
    motors = motors[:steps]
    err_vec = pos - goal[:3]
    err = np.linalg.norm(err_vec, axis=1)
    t = np.arange(steps + 1) * dt
    tail = t >= (settings.episode_s - TAIL_S - 1e-9)
    tail_err = err[tail] if tail.any() else err[-1:]
    success = (not crashed) and steps >= n and bool((tail_err <= SUCCESS_RADIUS_M).all())
    outside = np.nonzero(err > SETTLE_RADIUS_M)[0]
    if crashed or (len(outside) and outside[-1] == len(err) - 1):
        settle = math.inf
    else:
        settle = float(t[outside[-1] + 1]) if len(outside) else 0.0
    sat = float(((motors <= 1e-3) | (motors >= 1 - 1e-3)).mean()) if steps else 0.0
    smooth = float(np.abs(np.diff(motors, axis=0)).mean()) if steps > 1 else 0.0
    traj = {"t": t, "position": pos, "goal": goal, "motors": motors} if record else None
    return EpisodeResult(index, success, crashed, float(np.sqrt(np.mean(tail_err**2))), settle,
                         float(np.linalg.norm(err_vec[tail].mean(axis=0))) if tail.any() else float(err[-1]),
                         float(err[-1]), sat, smooth, steps * dt, traj)


def _median_finite(values: list[float]) -> float | None:
    """Median where inf (never settled) counts as a large value; None if the median is inf."""
    if not values:
        return None
    m = float(np.median(np.asarray(values, dtype=float)))
    return None if not math.isfinite(m) else m


def summarize(name: str, settings: EvalSettings, results: list[EpisodeResult]) -> EvalSummary:
    n = len(results)
    k = sum(r.success for r in results)
    lo, hi = wilson_interval(k, n)
    ok = [r for r in results if not r.crashed]
    return EvalSummary(
        controller=name, settings=asdict(settings), episodes=n, success_rate=k / n if n else 0.0,
        success_ci_low=lo, success_ci_high=hi, crash_rate=sum(r.crashed for r in results) / n if n else 0.0,
        rmse_m_median=_median_finite([r.rmse_m for r in ok]),
        settle_s_median=_median_finite([r.settle_s for r in results]),
        steady_offset_m=_median_finite([r.steady_offset_m for r in ok]),
        saturation_mean=float(np.mean([r.saturation for r in results])) if n else 0.0,
        smoothness_mean=float(np.mean([r.smoothness for r in results])) if n else 0.0,
        results=results)


def evaluate(controller: Controller, settings: EvalSettings, sim_config: SimConfig | None = None,
             progress: bool = False, record: bool = False,
             env_factory: Callable | None = None) -> EvalSummary:
    """Run ``settings.episodes`` protocol episodes and summarize them."""
    settings.check()
    load_vehicle(settings.vehicle)  # fail early with the vehicle file's own message
    env = env_factory(settings) if env_factory else make_env(settings, sim_config)
    iterator = range(settings.episodes)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc=f"eval {controller.name} {settings.tier}", unit="ep", leave=False)
    try:
        results = [run_episode(env, controller, settings, i, record=record) for i in iterator]
    finally:
        env.close()
    return summarize(controller.name, settings, results)
