"""Imitation learning with DAgger under domain randomization (Ross et al., AISTATS 2011).

Iteration 0 flies the privileged expert and records (inputs, expert action) pairs; every later
iteration flies the student (a fraction β of episodes still flown by the expert), labels every
visited state with the expert, aggregates, and retrains with backpropagation through time over
whole episodes. Runs are seeded and resumable: the conditions of episode ``e`` of iteration
``i`` depend only on (seed, i, e), and a run directory holds the dataset, the latest weights
and a CSV log.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..config import RandomizationConfig, SimConfig
from ..sim.envs import HoverEnv, TaskConfig
from ..sim.initial_states import get_tier, sample_initial_state
from .agents import batch_inputs
from .dataset import Dataset, Episode
from .evaluation import EvalSettings, ExpertAgent, evaluate, fly_batch

DEFAULT_INPUTS = ["imu", "goal_error", "last_action"]


def default_randomization() -> RandomizationConfig:
    return RandomizationConfig(
        enabled=True, mass_frac=0.2, inertia_frac=0.2, kf_frac=0.05, km_frac=0.1,
        thrust_to_weight=[1.3, 3.0], motor_tau_s=[0.02, 0.08], action_latency_s=[0.0, 0.02],
        imu_noise_scale=[0.5, 3.0], push_prob=0.5, push_frac_of_weight=0.25, gust_std_mps=[0.0, 0.3])


def class_randomization(base: RandomizationConfig, main_vehicle: str, vehicle: str) -> RandomizationConfig:
    """The randomization of another vehicle class: the thrust-to-weight range is scaled by the
    ratio of the two classes' nominal T/W, so a 4.6 T/W racing quad varies as much *relative to
    its nominal* as the main vehicle does (an absolute 1.3-3 would cut its thrust to 28-65 %)."""
    import copy

    from ..vehicle import load_vehicle

    if vehicle == main_vehicle:
        return base
    ratio = load_vehicle(vehicle).thrust_to_weight / load_vehicle(main_vehicle).thrust_to_weight
    out = copy.deepcopy(base)
    out.thrust_to_weight = [float(v) * ratio for v in base.thrust_to_weight]
    return out


@dataclass
class TrainConfig:
    name: str = "hover"
    core: str = "cfc"                  # cfc | ltc | gru | mlp
    inputs: list = field(default_factory=lambda: list(DEFAULT_INPUTS))  # model inputs (feature names)
    network: dict = field(default_factory=dict)   # extra NetworkConfig fields
    action_mode: str = "motors"
    max_rate: float = 8.0              # ctbr head: bound of |p|, |q|, |r| (rad/s; the expert clips at 8)
    # "none" or an input ("hover_thrust", "hover_thrust_config"): thrust outputs relative to it (policy/spec.py)
    thrust_reference: str = "none"
    # scaled / linear: 1 output unit = 1 g at any T/W (sigmoid / clipped line); offset: only centred on h; mixer
    thrust_reference_form: str = "scaled"
    vehicle: str = "crazyflie2"
    # vehicle classes flown in training, rollout env i flies vehicles[i % len] (randomization across
    # classes); empty: only ``vehicle``
    vehicles: list = field(default_factory=list)
    teacher: str = "privileged"        # privileged | integral | adaptive (see ExpertAgent)
    # the teacher's vertical loop slows down for slow motors / latency only to this floor (1: never);
    # the student cannot see the motor lag and would learn the average, slow, vertical gain
    teacher_vertical_speed_min: float = 0.0
    physics_hz: float = 240.0
    control_hz: float = 120.0
    episode_s: float = 8.0
    iterations: int = 6                # DAgger iterations after the expert iteration
    expert_episodes: int = 96
    episodes_per_iteration: int = 64
    updates_first: int = 1500         # gradient steps after the expert iteration
    updates_per_iteration: int = 600
    batch_size: int = 64               # windows per gradient step
    window_steps: int = 180            # scored steps per window (truncated BPTT)
    burn_in_steps: int = 60            # steps that warm the state up before scoring
    # loss weights in the mixer's coordinates (collective, roll, pitch, yaw differential): the
    # differential parts that fly the attitude are ~10x smaller than the collective and would be
    # drowned by it in a plain per-motor MSE
    loss_weights: list = field(default_factory=lambda: [1.0, 30.0, 30.0, 10.0])
    # > 0: Huber loss on the weighted errors (sqrt(weight) x error), quadratic below this and linear
    # above, instead of the squared error. Why: DAgger data holds the student's failures (far from the
    # goal, tumbling, about to crash) whose labels are bang-bang and barely learnable; squared, they
    # dominate the loss and the small network spends itself on them instead of on precision near hover
    loss_huber_delta: float = 0.0
    # > 0: weight of a penalty on the camera encoder's feature pre-activations beyond
    # +-IMAGE_SATURATION_BOUND (mean of the squared excess). Why: Adam moves every weight by ~lr per
    # step even where the gradient is faint noise, as it is on the image path at initialisation; in
    # two runs of three the fc before the features' tanh drifted until every feature sat at +-1 for
    # every frame, its gradient vanished and the student flew blind (BC loss 0.18-0.20 against 0.04-0.09)
    image_saturation_penalty: float = 0.0
    lr: float = 3e-3
    lr_final: float = 5e-4
    beta0: float = 0.3                 # fraction of expert-flown episodes at iteration 1, halved after
    action_noise: float = 0.05         # DART: std of noise on the expert's executed motor commands
    tiers: dict = field(default_factory=lambda: {"A30": 0.3, "A45": 0.3, "A90": 0.4})
    randomization: RandomizationConfig = field(default_factory=default_randomization)
    odom_position_noise_m: float = 0.003
    odom_velocity_noise_mps: float = 0.01
    rollout_batch: int = 16
    check_episodes: int = 16           # episodes per check cell after each iteration (protocol seed 1000)
    # held-out check cells (name -> EvalSettings overrides, e.g. {vehicle: quad250} or
    # {thrust_to_weight: 1.3, latency_ms: 20}); "A30" (nominal) is always one of them
    check_cells: dict = field(default_factory=lambda: {"A30": {}})
    # ship the iteration that scores best on the check (mean success - 5 x A30 RMSE in m) rather
    # than the last one: a DAgger run's quality swings from one iteration to the next
    select_best: bool = True
    # > 0: ship the element-wise mean of the weights of the last ``average_last`` iterations
    # instead (stochastic weight averaging, Izmailov et al. 2018): the iterates of a DAgger run
    # scatter around a good solution, and their mean flies better than any one of them; it
    # overrides select_best
    average_last: int = 0
    final_eval_episodes: int = 50      # per tier, written into the model file
    # a model file to fine-tune: after the expert iteration the network is this file's (its architecture and
    # input normalisation, which must agree with ``inputs``, ``core`` and ``action_mode``) instead of a fresh
    # one built on the expert data; empty: train from scratch. Why: a new randomization can be taught to a
    # model that already flies, in a third of a from-scratch run's time
    init_weights: str = ""
    seed: int = 0
    threads: int = 2

    def check(self) -> None:
        if not (math.isfinite(self.image_saturation_penalty) and self.image_saturation_penalty >= 0):
            raise ValueError(f"image_saturation_penalty must be >= 0, got {self.image_saturation_penalty}")
        if not (math.isfinite(self.loss_huber_delta) and self.loss_huber_delta >= 0):
            raise ValueError(f"loss_huber_delta must be >= 0 (0: the squared error), got {self.loss_huber_delta}")
        if not 0 <= self.average_last <= self.iterations + 1:
            raise ValueError(f"average_last must be in [0, iterations + 1 = {self.iterations + 1}], got {self.average_last}")


IMAGE_SATURATION_BOUND = 2.0   # |pre-activation| of a camera feature below which tanh still passes gradient (0.07 at 2)


def saturation_penalty(preactivation):
    """Mean over features and frames of the squared excess of ``|preactivation|`` over
    :data:`IMAGE_SATURATION_BOUND` (zero while every feature stays in tanh's working range)."""
    import torch

    return torch.relu(preactivation.abs() - IMAGE_SATURATION_BOUND).square().mean()


def imitation_loss(pred, labels, mask, mix, weights, huber_delta: float = 0.0):
    """Masked mean over steps of the weighted error in the loss coordinates (``mix`` maps
    per-output errors to them): ``sum_k w_k e_k^2``, or with ``huber_delta > 0`` the Huber loss of
    ``sqrt(w_k) e_k`` scaled to equal that below ``huber_delta`` (and grow linearly above it)."""
    import torch

    r = ((pred - labels) @ mix) * weights.sqrt()
    if huber_delta > 0:
        per = 2.0 * torch.nn.functional.huber_loss(r, torch.zeros_like(r), reduction="none", delta=huber_delta)
    else:
        per = r ** 2
    return (per.sum(-1) * mask).sum() / mask.sum().clamp(min=1.0)


class DaggerTrainer:
    NOMINAL_CHECK = "A30"     # the check cell whose RMSE enters the check score and fills the log's check_* columns
    RMSE_WEIGHT_PER_M = 5.0   # check score: 1 cm of nominal RMSE costs as much as 5 % of success

    def __init__(self, config: TrainConfig, run_dir: str | Path, progress: bool = True):
        import torch

        self.torch = torch
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.progress = progress
        torch.set_num_threads(config.threads)
        # first: a bad teacher name fails before the envs open
        self.expert = ExpertAgent(teacher=config.teacher, vertical_speed_min=config.teacher_vertical_speed_min)
        self.envs = self._make_envs()
        self.dataset = Dataset(list(config.inputs))
        self.net = None
        self.optimizer = None
        self.log_path = self.run_dir / "train_log.csv"
        self.best: dict | None = None   # {"iteration", "score"} of the best checked iteration so far
        self.last_auxiliary_loss: float | None = None

    def _make_envs(self) -> list:
        """The rollout envs (one per episode flown side by side)."""
        config = self.cfg
        sim_cfg = SimConfig(physics_hz=config.physics_hz, control_hz=config.control_hz, vehicle=config.vehicle)
        sim_cfg.odom.position_noise_std = config.odom_position_noise_m
        sim_cfg.odom.velocity_noise_std = config.odom_velocity_noise_mps
        task = TaskConfig(episode_s=config.episode_s)
        classes = list(config.vehicles) or [config.vehicle]
        rand = {name: class_randomization(config.randomization, config.vehicle, name) for name in classes}
        return [HoverEnv(sim_cfg, task, rand[classes[i % len(classes)]], vehicle=classes[i % len(classes)],
                         action_mode=config.action_mode) for i in range(config.rollout_batch)]

    # ------------------------------------------------------------------ rollouts
    def _conditions(self, iteration: int, episode: int):
        rng = np.random.default_rng([self.cfg.seed, 7919, iteration, episode])
        names = list(self.cfg.tiers)
        tier = names[rng.choice(len(names), p=np.array(list(self.cfg.tiers.values())) / sum(self.cfg.tiers.values()))]
        goal = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(2.0, 3.0), rng.uniform(-math.pi, math.pi)])
        state = sample_initial_state(rng, get_tier(tier), goal[:3])
        return state, goal, int(rng.integers(2**31))

    def _episode_reset(self, iteration: int, episode: int) -> tuple[int, dict]:
        """(env seed, reset options) of one rollout episode."""
        state, goal, seed = self._conditions(iteration, episode)
        return seed, {"state": state, "goal": goal}

    def collect(self, iteration: int, episodes: int, student_fraction: float) -> dict:
        """Fly ``episodes`` episodes, label every step with the expert, add them to the dataset."""
        stats = {"episodes": 0, "crashes": 0, "student_episodes": 0}
        bar = self._bar(episodes, f"rollouts it{iteration}")
        for start in range(0, episodes, len(self.envs)):
            idx = list(range(start, min(start + len(self.envs), episodes)))
            resets = [self._episode_reset(iteration, e) for e in idx]
            rng = np.random.default_rng([self.cfg.seed, 104729, iteration, start])
            student = rng.random(len(idx)) < student_fraction if self.net is not None else np.zeros(len(idx), bool)
            pilot = _DaggerPilot(self, student, np.random.default_rng([self.cfg.seed, 15485863, iteration, start]))
            flight = fly_batch(self.envs, pilot, resets)
            inputs, labels = pilot.recorded
            for i, m in enumerate(flight.steps):
                self.dataset.add(Episode({n: v[:m, i].copy() for n, v in inputs.items()}, labels[:m, i].copy(),
                                         "student" if student[i] else "expert"))
            stats["episodes"] += len(idx)
            stats["crashes"] += int(flight.crashed.sum())
            stats["student_episodes"] += int(student.sum())
            if bar:
                bar.update(len(idx))
        if bar:
            bar.close()
        return stats

    # ------------------------------------------------------------------ network and training
    def action_spec(self):
        """The head the recipe asks for (mode, rate bound, thrust reference)."""
        from ..policy import ActionSpec

        c = self.cfg
        return ActionSpec(c.action_mode, c.max_rate if c.action_mode == "ctbr" else 0.0,
                          thrust_reference=c.thrust_reference, thrust_reference_form=c.thrust_reference_form)

    def input_spec(self, name: str, norm: tuple):
        """The model-file spec of input ``name``, with the training set's statistics ``norm``
        (mean, std); a thrust reference is never normalised."""
        from ..policy import InputSpec
        from ..policy.spec import REFERENCE_INPUTS

        if name in REFERENCE_INPUTS:
            return InputSpec.reference(name)
        return InputSpec.vector(name, len(norm[0]), mean=norm[0], std=norm[1])

    def build_network(self):
        from ..policy import NetworkConfig
        from ..policy.network import build_policy_network

        norm = self.dataset.normalization()
        inputs = tuple(self.input_spec(n, norm[n]) for n in self.cfg.inputs)
        net_cfg = NetworkConfig(inputs=inputs, action=self.action_spec(),
                                control_period=1.0 / self.cfg.control_hz, core=self.cfg.core, **dict(self.cfg.network))
        self.net = build_policy_network(net_cfg, seed=self.cfg.seed)
        self.optimizer = self.torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr)
        return self.net

    def _lr(self, iteration: int) -> float:
        frac = iteration / max(1, self.cfg.iterations)
        return self.cfg.lr * (self.cfg.lr_final / self.cfg.lr) ** frac

    def train(self, iteration: int, updates: int) -> float:
        """``updates`` Adam steps on random windows of the aggregated data; returns the mean
        loss of the last 10 % of them."""
        torch = self.torch
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(iteration)
        rng = np.random.default_rng([cfg.seed, 3571, iteration])
        dt = 1.0 / cfg.control_hz
        bar = self._bar(updates, f"train it{iteration}")
        losses, aux_losses = [], []
        mix, w = self._loss_space()
        captured: list = []
        hook = self._capture_image_preactivation(captured)
        try:
            for _ in range(updates):
                inputs, labels, mask = self.dataset.chunks(cfg.batch_size, cfg.window_steps, cfg.burn_in_steps, rng)
                x = {n: torch.from_numpy(v) for n, v in inputs.items()}
                y = torch.from_numpy(labels)
                m = torch.from_numpy(mask)
                captured.clear()
                pred, _ = self.net(x, torch.full(m.shape, dt))
                n_act = pred.shape[-1]
                loss = imitation_loss(pred, y[..., :n_act], m, mix, w, cfg.loss_huber_delta)
                losses.append(float(loss.detach()))   # the imitation loss alone: comparable across recipes
                aux = self.auxiliary_loss(y[..., n_act:], m)
                if aux is not None:
                    aux_losses.append(float(aux.detach()))
                    loss = loss + aux
                if captured:
                    loss = loss + cfg.image_saturation_penalty * saturation_penalty(captured[0])
                self.optimizer.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
                self.optimizer.step()
                if bar:
                    bar.update(1)
                    if len(losses) % 20 == 0:
                        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.2e}")
        finally:
            if hook is not None:
                hook.remove()
        if bar:
            bar.close()
        tail = max(1, updates // 10)
        self.last_auxiliary_loss = float(np.mean(aux_losses[-tail:])) if aux_losses else None
        return float(np.mean(losses[-tail:]))

    # ------------------------------------------------------------------ auxiliary supervision (none here)
    def extra_labels(self, envs: list) -> np.ndarray | None:
        """Per-env privileged labels (B, k) recorded after the expert's commands, or None (the
        default: the dataset holds the commands alone). Subclasses add auxiliary targets here."""
        return None

    def auxiliary_loss(self, extra_labels, mask):
        """The loss on ``extra_labels`` (B, T, k) of the last forward pass, or None (the default)."""
        return None

    def _capture_image_preactivation(self, captured: list):
        """With ``image_saturation_penalty`` > 0 and a camera encoder: a forward hook that puts the
        pre-activations of its features (the output of its last linear layer) into ``captured``."""
        encoder = getattr(self.net, "image_encoder", None)
        if self.cfg.image_saturation_penalty <= 0 or encoder is None:
            return None
        return encoder.fc.register_forward_hook(lambda _module, _inputs, out: captured.append(out))

    def _loss_space(self):
        """(4x4 map from per-motor errors to mixer coordinates, weights)."""
        torch = self.torch
        if self.cfg.action_mode == "motors":
            from ..policy.spec import MIXER_SIGNS

            # columns: collective, roll (left minus right), pitch (back minus front), yaw
            mix = MIXER_SIGNS.astype(np.float32) / 4
        else:
            mix = np.eye(4, dtype=np.float32)
        return torch.from_numpy(mix), torch.tensor(self.cfg.loss_weights, dtype=torch.float32)

    def quick_check(self, overrides: dict | None = None) -> dict:
        """One held-out check cell: A30 from protocol seed 1000 (never a final-evaluation seed)."""
        from .agents import TorchPolicyAgent

        settings = {"tier": "A30", "vehicle": self.cfg.vehicle, **(overrides or {})}
        s = EvalSettings(episodes=self.cfg.check_episodes, seed=1000, action_mode=self.cfg.action_mode,
                         control_hz=self.cfg.control_hz, physics_hz=self.cfg.physics_hz, **settings)
        return evaluate(TorchPolicyAgent(self.net), s).to_json_dict()

    def check(self) -> dict[str, dict]:
        """Every check cell ({name: summary}); the nominal "A30" cell first."""
        cells = {"A30": {}, **{k: v for k, v in self.cfg.check_cells.items() if k != "A30"}}
        return {name: self.quick_check(over) for name, over in cells.items()}

    def check_score(self, check: dict[str, dict]) -> float:
        """Higher is better: mean success over the cells minus 5 x the nominal cell's RMSE (m).

        Success alone is too coarse on 16 episodes a cell (and one cell's swing would pick an
        imprecise iteration); RMSE alone ignores the hard cells. A cell with no RMSE (every
        episode crashed) counts as 1 m."""
        success = float(np.mean([c["success_rate"] for c in check.values()]))
        rmse = check[self.NOMINAL_CHECK]["rmse_m_median"]
        return round(success - self.RMSE_WEIGHT_PER_M * (1.0 if rmse is None else min(float(rmse), 1.0)), 6)

    # ------------------------------------------------------------------ bookkeeping
    def _bar(self, total: int, desc: str):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, leave=False)

    def _log(self, row: dict) -> None:
        new = not self.log_path.exists()
        with self.log_path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    def _iteration_file(self, iteration: int) -> Path:
        """Where the weights an iteration ended with are kept."""
        return self.run_dir / "iterations" / f"it{iteration:02d}.safetensors"

    def _trim_log(self, last_iteration: int) -> None:
        """Drop log rows of iterations after the saved one (logged, then stopped before its checkpoint)."""
        if not self.log_path.exists():
            return
        lines = self.log_path.read_text().splitlines(keepends=True)
        keep = lines[:1] + [ln for ln in lines[1:] if int(ln.split(",", 1)[0]) <= last_iteration]
        if len(keep) != len(lines):
            self.log_path.write_text("".join(keep))

    def _save_checkpoint(self, iteration: int, elapsed: float, score: float) -> None:
        import shutil

        from ..policy.model_file import save_network

        # each file is replaced atomically and state.json last, with the number of episodes the iteration
        # ended with: a run stopped while saving resumes from the previous iteration (the dataset is trimmed
        # back to that count and the weights come from iterations/, never from a newer checkpoint)
        self.dataset.save(self.run_dir / "dataset.npz")
        save_network(self.run_dir / "checkpoint.safetensors", self.net, provenance={"iteration": iteration})
        # every iteration's weights are kept (12 kB each), so another selection rule can be
        # applied to a finished run
        (self.run_dir / "iterations").mkdir(exist_ok=True)
        shutil.copyfile(self.run_dir / "checkpoint.safetensors", self._iteration_file(iteration))
        if self.best is None or score > self.best["score"]:
            shutil.copyfile(self.run_dir / "checkpoint.safetensors", self.run_dir / "best.safetensors")
            self.best = {"iteration": iteration, "score": score}
        state = json.dumps({"iteration": iteration, "elapsed_s": elapsed, "best": self.best,
                            "dataset_episodes": len(self.dataset.episodes), "config": _jsonable(asdict(self.cfg))})
        tmp = self.run_dir / "state.json.partial"
        tmp.write_text(state)
        os.replace(tmp, self.run_dir / "state.json")

    def _load_weights(self, path: Path) -> None:
        from ..policy.model_file import load_model

        self._load_tensors(load_model(path).tensors)

    def _load_tensors(self, tensors: dict) -> None:
        self.net.load_state_dict({k: self.torch.from_numpy(np.ascontiguousarray(v)) for k, v in tensors.items()})

    def _init_model(self):
        """The model file of ``init_weights``, checked against this recipe before anything is flown."""
        from ..policy.model_file import load_model

        path = self.cfg.init_weights
        model = load_model(path)
        names = [s.name for s in model.config.inputs]
        if names != list(self.cfg.inputs):
            raise ValueError(f"init_weights {path} reads inputs {names}, this recipe {list(self.cfg.inputs)}")
        if model.config.core != self.cfg.core or model.config.action.mode != self.cfg.action_mode:
            raise ValueError(f"init_weights {path} is a {model.config.core} core in {model.config.action.mode} mode, "
                             f"this recipe a {self.cfg.core} core in {self.cfg.action_mode} mode")
        return model

    def _init_from(self, model):
        """The network of a loaded model file, with its weights and input normalisation, to fine-tune."""
        from ..policy.network import build_policy_network

        self.net = build_policy_network(model.config, seed=self.cfg.seed)
        self._load_tensors(model.tensors)
        self.optimizer = self.torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr)
        return self.net

    def _resume(self) -> tuple[int, float]:
        state_path = self.run_dir / "state.json"
        if not state_path.exists():
            return -1, 0.0
        from ..policy.model_file import load_model
        from ..policy.network import build_policy_network

        state = json.loads(state_path.read_text())
        # a run may be extended (more iterations, another final evaluation size) or finish with
        # another selection rule (select_best and average_last read the kept iterations, they train nothing);
        # anything else would mix two recipes in one model
        extendable = {"iterations", "final_eval_episodes", "select_best", "average_last"}
        # a field added to TrainConfig after the run was saved ran with its default
        saved_config = with_defaults(state["config"], _jsonable(asdict(type(self.cfg)())))
        saved = {k: v for k, v in saved_config.items() if k not in extendable}
        now = {k: v for k, v in _jsonable(asdict(self.cfg)).items() if k not in extendable}
        if saved != now:
            changed = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            raise ValueError(f"{self.run_dir} holds a run with another configuration (differs in {changed}); "
                             "use a new --run-dir")
        if self.cfg.iterations < state["config"]["iterations"]:
            raise ValueError(f"cannot shorten a run: it was planned for {state['config']['iterations']} iterations")
        self.dataset = Dataset.load(self.run_dir / "dataset.npz")
        kept = state.get("dataset_episodes")
        if isinstance(kept, int):
            if kept > len(self.dataset.episodes):
                raise ValueError(f"{self.run_dir}/dataset.npz holds {len(self.dataset.episodes)} episodes but the "
                                 f"run saved {kept} at iteration {state['iteration']}; use a new --run-dir")
            self.dataset.truncate(kept)   # episodes of an iteration that was stopped while saving
        self._trim_log(int(state["iteration"]))
        weights = self._iteration_file(int(state["iteration"]))
        if not weights.exists():          # a run saved before every iteration was kept
            weights = self.run_dir / "checkpoint.safetensors"
        model = load_model(weights)
        self.net = build_policy_network(model.config, seed=self.cfg.seed)
        self._load_weights(weights)
        best = state.get("best")
        self.best = best if isinstance(best, dict) and isinstance(best.get("score"), (int, float)) else None
        # Adam moments are not carried over (the model file holds weights only): documented
        self.optimizer = self.torch.optim.Adam(self.net.parameters(), lr=self.cfg.lr)
        return int(state["iteration"]), float(state["elapsed_s"])

    # ------------------------------------------------------------------ the run
    def run(self, resume: bool = False) -> dict:
        t0 = time.perf_counter()
        done, elapsed_before = self._resume() if resume else (-1, 0.0)
        if not resume and (self.run_dir / "state.json").exists():
            raise ValueError(f"{self.run_dir} already holds a run; pass --resume or use a new --run-dir")
        init = self._init_model() if self.cfg.init_weights and done < 0 else None
        for it in range(done + 1, self.cfg.iterations + 1):
            if it == 0:
                stats = self.collect(0, self.cfg.expert_episodes, 0.0)
                self.build_network() if init is None else self._init_from(init)
                loss = self.train(0, self.cfg.updates_first)
            else:
                beta = self.cfg.beta0 * 0.5 ** (it - 1)
                stats = self.collect(it, self.cfg.episodes_per_iteration, 1.0 - beta)
                loss = self.train(it, self.cfg.updates_per_iteration)
            checks = self.check()
            check, score = checks[self.NOMINAL_CHECK], self.check_score(checks)
            elapsed = elapsed_before + time.perf_counter() - t0
            self._log({"iteration": it, "episodes": len(self.dataset.episodes), "steps": self.dataset.steps,
                       "rollout_crashes": stats["crashes"], "student_episodes": stats["student_episodes"],
                       "loss": f"{loss:.6g}",
                       **({} if self.last_auxiliary_loss is None else {"aux_loss": f"{self.last_auxiliary_loss:.6g}"}),
                       "check_success": check["success_rate"],
                       "check_rmse_m": check["rmse_m_median"], "check_settle_s": check["settle_s_median"],
                       **{f"check_{name}_success": c["success_rate"] for name, c in checks.items() if name != self.NOMINAL_CHECK},
                       "check_score": score, "lr": f"{self._lr(it):.3g}", "elapsed_s": f"{elapsed:.1f}"})
            self._save_checkpoint(it, elapsed, score)
            if self.progress:
                others = "".join(f", {name} {c['success_rate']:.0%}" for name, c in checks.items() if name != self.NOMINAL_CHECK)
                print(f"iteration {it}: loss {loss:.3e}, {self.NOMINAL_CHECK} check success {check['success_rate']:.0%} "
                      f"rmse {check['rmse_m_median']}{others}, {elapsed:.0f} s", flush=True)
        selected = self.cfg.iterations
        result: dict = {}
        if self.cfg.average_last > 0:
            first = max(0, self.cfg.iterations - self.cfg.average_last + 1)
            self._average_weights([self._iteration_file(i) for i in range(first, self.cfg.iterations + 1)])
            result["averaged_iterations"] = [first, self.cfg.iterations]
            if self.progress:
                print(f"shipping the mean of the weights of iterations {first}-{self.cfg.iterations}", flush=True)
        elif self.cfg.select_best and self.best is not None:
            selected = int(self.best["iteration"])
            # the kept iterate, not best.safetensors: that copy may be newer than state.json in a resumed run
            kept = self._iteration_file(selected)
            self._load_weights(kept if kept.exists() else self.run_dir / "best.safetensors")
            if self.progress:
                print(f"selected iteration {selected} (best check score {self.best['score']})", flush=True)
        return {"train_wall_s": elapsed_before + time.perf_counter() - t0, "selected_iteration": selected, **result}

    def _average_weights(self, paths: list[Path]) -> None:
        """Load the element-wise mean of the weights in ``paths`` (same architecture and input
        normalisation, or a clear error)."""
        from ..policy.model_file import load_model

        models = [load_model(p) for p in paths]
        for m, p in zip(models[1:], paths[1:]):
            if m.config != models[0].config:
                raise ValueError(f"cannot average {p} with {paths[0]}: another network configuration or normalisation")
        mean = {k: np.mean([m.tensors[k] for m in models], axis=0) for k in models[0].tensors}
        self._load_tensors({k: v.astype(np.float32) for k, v in mean.items()})

    def final_evaluation(self, model_path: str | Path, episodes: int | None = None) -> dict:
        from .agents import PolicyAgent

        n = episodes or self.cfg.final_eval_episodes
        out = {}
        for tier in ("A30", "A45", "A90"):
            s = EvalSettings(tier=tier, episodes=n, seed=0, vehicle=self.cfg.vehicle, action_mode=self.cfg.action_mode,
                             control_hz=self.cfg.control_hz, physics_hz=self.cfg.physics_hz)
            out[tier] = evaluate(PolicyAgent(model_path), s).to_json_dict()
        return out

    def close(self) -> None:
        for env in self.envs:
            env.close()


class _DaggerPilot:
    """The controller of a DAgger rollout: labels every visited state with the expert and flies
    the student (where ``student[i]``) or the noisy expert, recording inputs and labels per step."""

    def __init__(self, trainer: DaggerTrainer, student: np.ndarray, noise_rng: np.random.Generator):
        self.trainer, self.student, self.noise_rng = trainer, student, noise_rng
        self.names = list(trainer.cfg.inputs)
        self.inputs: dict[str, list] = {}
        self.labels: list = []

    def reset(self, envs: list) -> None:
        t = self.trainer
        t.expert.reset(envs)
        if t.net is not None:
            self.h = t.net.initial_state(len(envs))
            self.dt = t.torch.full((len(envs),), envs[0].unwrapped.control_dt)

    def act(self, observations: list[dict], envs: list) -> np.ndarray:
        t, torch = self.trainer, self.trainer.torch
        inputs = batch_inputs(self.names, observations)
        for n, v in inputs.items():
            self.inputs.setdefault(n, []).append(v)
        labels = t.expert.act(observations, envs)
        extra = t.extra_labels(envs)
        self.labels.append((labels if extra is None else np.concatenate([labels, extra], 1)).astype(np.float32))
        # DART (Laskey et al., CoRL 2017): the expert flies with noise on its commands, so the data
        # shows how to recover from the small mistakes a student will make, and a fed-back
        # ``last_action`` no longer predicts the label by itself
        noise = t.cfg.action_noise * self.noise_rng.standard_normal(labels.shape)
        actions = np.clip(labels + noise, 0.0, 1.0) if t.cfg.action_mode == "motors" else labels + noise
        if t.net is not None:
            with torch.no_grad():
                a, self.h = t.net.step({n: torch.from_numpy(v) for n, v in inputs.items()}, self.h, self.dt)
            actions = np.where(self.student[:, None], a.numpy().astype(np.float64), labels)
        return actions

    @property
    def recorded(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Inputs {name: (T, B, d)} and labels (T, B, 4 + extra labels) of every step flown."""
        # camera frames stay uint8 (a quarter of the memory); everything else float32
        return ({n: np.asarray(v) if v[0].dtype == np.uint8 else np.asarray(v, dtype=np.float32)
                 for n, v in self.inputs.items()}, np.asarray(self.labels))


def with_defaults(saved: dict, defaults: dict) -> dict:
    """A training configuration saved by an older version, with every field added since (at any
    depth, e.g. a new randomization knob) at its default: the value it ran with."""
    out = dict(saved)
    for key, default in defaults.items():
        if key not in out:
            out[key] = default
        elif isinstance(default, dict) and isinstance(out[key], dict):
            out[key] = with_defaults(out[key], default)
    return out


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=os.path.dirname(__file__)).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
