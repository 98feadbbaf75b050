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
    """Flies a batch of envs: ``reset(envs)`` at episode start, ``act`` each control step.

    ``act`` gets one observation dict per env and returns a (B, 4) array of actions in the
    envs' action mode. Privileged controllers may read ``env.unwrapped.sim.state``.
    """

    name: str

    def reset(self, envs: list) -> None: ...

    def act(self, observations: list[dict], envs: list) -> np.ndarray: ...


class ExpertAgent:
    """The privileged geometric expert as a batched :class:`Controller` (reads the true state)."""

    name = "expert"
    REFERENCE_LAG_S = 0.045  # motor lag + latency the nominal gains are tuned for
    TEACHERS = ("privileged", "integral", "adaptive")
    ADAPTIVE_KI_Z = 3.0  # 1/s^3, see gains()

    def __init__(self, use_true_vehicle: bool = True, teacher: str = "privileged", vertical_speed_min: float = 0.0):
        """``teacher="privileged"``: true mass and thrust, its own integral (the classical
        baseline). ``teacher="integral"``: the *nominal* vehicle's hover thrust, and the integral
        term applied is the env's observed ``error_integral``. Its labels are then a function of
        what a student with ``goal_error_integral`` sees, so a student can learn the integral
        action that removes steady offsets, instead of the average of hover thrusts it cannot
        see. ``teacher="adaptive"``: as ``integral``, but the hover thrust is the env's observed
        estimate (``hover_thrust``, from the accelerometer, odometry and commands) instead of the
        nominal one, so the teacher flies any thrust-to-weight and its labels stay a function of
        the student's inputs. The rate loop and mixer still use the true vehicle.
        ``vertical_speed_min``: the floor of the vertical loop's slow-down for slow motors or
        latency (``GeometricGains.vertical_speed_min``; 1 keeps its nominal gains everywhere)."""
        if teacher not in self.TEACHERS:
            raise ValueError(f"teacher must be one of {self.TEACHERS}, got {teacher!r}")
        if not 0.0 <= vertical_speed_min <= 1.0:
            raise ValueError(f"vertical_speed_min must be in [0, 1], got {vertical_speed_min}")
        self.vertical_speed_min = float(vertical_speed_min)
        self.use_true_vehicle = use_true_vehicle
        self.teacher = teacher

    @classmethod
    def loop_speed(cls, motor_tau_s: float, latency_s: float) -> float:
        """Bandwidth scale for a vehicle's actuator lag: the cascade is tuned for ~45 ms; slower
        motors or added latency would make it oscillate, so the privileged expert slows down."""
        return min(1.0, cls.REFERENCE_LAG_S / max(motor_tau_s + latency_s, 1e-3))

    def gains(self):
        """The position loop's gains. The adaptive teacher's vertical integral gain is the
        horizontal one: with the hover thrust estimated, the integral only has pushes and the
        estimate's residual left to absorb (the ``integral`` teacher needs 6 to find a wrong
        hover thrust). The teacher was validated on the robustness grid with it."""
        from ..control.geometric import GeometricGains

        if self.teacher == "adaptive":
            return GeometricGains(ki_z=self.ADAPTIVE_KI_Z, vertical_speed_min=self.vertical_speed_min)
        return GeometricGains(vertical_speed_min=self.vertical_speed_min)

    def reset(self, envs: list) -> None:
        from ..control.geometric import BatchGeometricController
        from ..control.mixer import Mixer
        from ..control.rate import RateController

        bases = [e.unwrapped for e in envs]
        vehicles = [b.variation.vehicle if self.use_true_vehicle else b.nominal_vehicle for b in bases]
        speed = np.array([self.loop_speed(b.sim.motor_tau_down_s, b.sim.action_latency_s) if self.use_true_vehicle
                          else 1.0 for b in bases])
        thrust_model = [b.nominal_vehicle for b in bases] if self.teacher != "privileged" else vehicles
        self._geo = BatchGeometricController.for_vehicles(thrust_model, self.gains(), speed=speed)
        self._rate = RateController(vehicles, speed=speed)
        if self.use_true_vehicle:
            self._mixer = Mixer(vehicles, [b.variation.kf_scale for b in bases], [b.variation.km_scale for b in bases])
        else:
            self._mixer = Mixer(vehicles)
        self._total = np.array([4.0 * v.max_thrust_per_rotor_n for v in vehicles])
        self._dt = bases[0].control_dt

    def ctbr(self, envs: list) -> np.ndarray:
        """(B, 4) CTBR commands [thrust fraction, p, q, r] for the envs' true states."""
        bases = [e.unwrapped for e in envs]
        pos = np.array([b.sim.position for b in bases])
        quat = np.array([b.sim._quat for b in bases])
        vel = np.array([b.sim._vel for b in bases])
        goal = np.array([b.goal for b in bases])
        integral = np.array([b.error_integral for b in bases]) if self.teacher != "privileged" else None
        hover = np.array([b.hover_thrust for b in bases]) if self.teacher == "adaptive" else None
        thrust, rates = self._geo(pos, quat, vel, goal, self._dt, integral=integral, hover_fraction=hover)
        return np.column_stack([thrust, rates])

    def motors(self, envs: list, ctbr: np.ndarray | None = None) -> np.ndarray:
        """(B, 4) motor commands: CTBR -> rate loop (true body rates) -> mixer."""
        ctbr = self.ctbr(envs) if ctbr is None else ctbr
        gyro = np.array([e.unwrapped.sim.body_rates for e in envs])
        torque = self._rate(ctbr[:, 1:], gyro, self._dt)
        return self._mixer(ctbr[:, 0] * self._total, torque)

    def act(self, observations: list[dict], envs: list) -> np.ndarray:
        if envs[0].unwrapped.action_mode == "ctbr":
            return self.ctbr(envs)
        return self.motors(envs)


def physics_rate_for(control_hz: float, preferred_hz: float = 240.0) -> float:
    """A physics rate that is a whole multiple of ``control_hz`` (the preferred one if it is)."""
    return preferred_hz if preferred_hz % control_hz == 0 else 2.0 * control_hz


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


def score_episode(index: int, settings: EvalSettings, t: np.ndarray, pos: np.ndarray, goal: np.ndarray,
                  motors: np.ndarray, crashed: bool, completed: bool, record: bool = False) -> EpisodeResult:
    """Protocol metrics of one flown episode (positions include the initial state)."""
    steps = len(motors)
    dt = t[1] - t[0] if len(t) > 1 else 0.0
    err_vec = pos - goal[:3]
    err = np.linalg.norm(err_vec, axis=1)
    tail = t >= (settings.episode_s - TAIL_S - 1e-9)
    tail_err = err[tail] if tail.any() else err[-1:]
    success = (not crashed) and completed and bool((tail_err <= SUCCESS_RADIUS_M).all())
    outside = np.nonzero(err > SETTLE_RADIUS_M)[0]
    if crashed or (len(outside) and outside[-1] == len(err) - 1):
        settle = math.inf
    else:
        settle = float(t[outside[-1] + 1]) if len(outside) else 0.0
    sat = float(((motors <= 1e-3) | (motors >= 1 - 1e-3)).mean()) if steps else 0.0
    smooth = float(np.abs(np.diff(motors, axis=0)).mean()) if steps > 1 else 0.0
    traj = {"t": t, "position": pos, "goal": goal, "motors": motors} if record else None
    offset = float(np.linalg.norm(err_vec[tail].mean(axis=0))) if tail.any() else float(err[-1])
    return EpisodeResult(index, success, crashed, float(np.sqrt(np.mean(tail_err**2))), settle, offset,
                         float(err[-1]), sat, smooth, steps * dt, traj)


@dataclass
class BatchFlight:
    """What :func:`fly_batch` recorded: per env, positions (n+1, 3), applied motors (n, 4), the
    number of control steps flown and whether it crashed."""

    position: np.ndarray
    motors: np.ndarray
    steps: np.ndarray
    crashed: np.ndarray


def fly_batch(envs: list, controller: Controller, resets: list[tuple[int, dict]]) -> BatchFlight:
    """Reset env ``i`` with ``resets[i]`` = (seed, options) and fly all of them side by side
    until each crashes or reaches its time limit. The one stepping loop of evaluation and of
    DAgger rollouts. A crashed env stops; the others fly on."""
    envs = envs[: len(resets)]
    bases = [e.unwrapped for e in envs]
    obs = [env.reset(seed=seed, options=options)[0] for env, (seed, options) in zip(envs, resets)]
    controller.reset(envs)
    b, n = len(envs), bases[0].max_steps
    pos = np.zeros((b, n + 1, 3))
    motors = np.zeros((b, n, 4))
    steps = np.zeros(b, dtype=int)
    crashed = np.zeros(b, dtype=bool)
    active = np.ones(b, dtype=bool)
    for i, base in enumerate(bases):
        pos[i, 0] = base.sim.position
    for k in range(n):
        actions = np.asarray(controller.act(obs, envs))
        for i in np.nonzero(active)[0]:
            o, _, terminated, truncated, _ = envs[i].step(actions[i])
            obs[i] = o
            motors[i, k] = bases[i].sim.applied_command
            pos[i, k + 1] = bases[i].sim.position
            steps[i] = k + 1
            if terminated:
                crashed[i] = True
            if terminated or truncated:
                active[i] = False
        if not active.any():
            break
    return BatchFlight(pos, motors, steps, crashed)


def run_episodes(envs: list, controller: Controller, settings: EvalSettings, indices: list[int],
                 record: bool = False) -> list[EpisodeResult]:
    """Fly protocol episodes ``indices`` side by side, one per env (len(indices) <= len(envs))."""
    bases = [e.unwrapped for e in envs[: len(indices)]]
    resets = []
    for base, index in zip(bases, indices):
        state, goal, variation, seed = episode_conditions(settings, index, base.nominal_vehicle)
        resets.append((seed, {"state": state, "goal": goal, "variation": variation}))
    flight = fly_batch(envs, controller, resets)
    n, dt = bases[0].max_steps, bases[0].control_dt
    results = []
    for i, index in enumerate(indices):
        m = flight.steps[i]
        t = np.arange(m + 1) * dt
        results.append(score_episode(index, settings, t, flight.position[i, : m + 1], bases[i].goal.copy(),
                                     flight.motors[i, :m], bool(flight.crashed[i]), m >= n, record))
    return results


def run_episode(env, controller: Controller, settings: EvalSettings, index: int, record: bool = False) -> EpisodeResult:
    """Fly one protocol episode and score it."""
    return run_episodes([env], controller, settings, [index], record=record)[0]


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


def fly_in_batches(envs: list, indices: list[int], fly_chunk: Callable[[list[int]], list],
                   progress_label: str | None = None) -> list:
    """Fly episodes ``indices`` in chunks of ``len(envs)`` (``fly_chunk`` flies one chunk), with an
    optional progress bar; the envs are closed at the end whatever happens."""
    bar = None
    if progress_label is not None:
        from tqdm import tqdm

        bar = tqdm(total=len(indices), desc=progress_label, unit="ep", leave=False)
    results: list = []
    try:
        for start in range(0, len(indices), len(envs)):
            chunk = indices[start : start + len(envs)]
            results += fly_chunk(chunk)
            if bar is not None:
                bar.update(len(chunk))
    finally:
        for env in envs:
            env.close()
        if bar is not None:
            bar.close()
    return results


def evaluate(controller: Controller, settings: EvalSettings, sim_config: SimConfig | None = None,
             progress: bool = False, record: bool = False, batch: int = 16,
             env_factory: Callable | None = None) -> EvalSummary:
    """Run ``settings.episodes`` protocol episodes (``batch`` side by side) and summarize them."""
    settings.check()
    load_vehicle(settings.vehicle)  # fail early with the vehicle file's own message
    b = max(1, min(batch, settings.episodes))
    envs = [env_factory(settings) if env_factory else make_env(settings, sim_config) for _ in range(b)]
    results = fly_in_batches(envs, list(range(settings.episodes)),
                             lambda chunk: run_episodes(envs, controller, settings, chunk, record=record),
                             f"eval {controller.name} {settings.tier}" if progress else None)
    return summarize(controller.name, settings, results)
