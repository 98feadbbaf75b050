"""DAgger for the visual-target task: the student sees the IMU and the camera, never odometry.

Same loop as :class:`~lnn_drone.training.dagger.DaggerTrainer` (expert iteration, student
rollouts labelled by the privileged expert, aggregation, truncated BPTT); what differs is the
world (``VisualTargetEnv`` under randomization of scene, lighting, target shade, camera latency
and vehicle; a fraction of episodes with a moving target), the image input of the network, and
the checks, which use the visual-target protocol (:mod:`lnn_drone.training.vision`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .dagger import DaggerTrainer, TrainConfig
from .vision import (VisualEvalSettings, VisualExpert, VisualSetup, episode_start, evaluate_visual, make_visual_env,
                     train_scene)


@dataclass
class VisualTrainConfig(TrainConfig):
    """TrainConfig plus the visual task's knobs (``task: visual_target`` in the YAML selects it)."""

    task: str = "visual_target"
    image_width: int = 64
    image_height: int = 48
    camera_latency_s: list = field(default_factory=lambda: [0.0, 0.033])  # [min, max] when an episode has latency
    camera_latency_fraction: float = 0.5   # share of episodes with camera latency (the others: none)
    moving_fraction: float = 0.3        # share of episodes whose target drifts
    target_speed_mps: float = 0.5
    walls_fraction: float = 0.0         # share of training scenes with walls (training texture styles)
    # a curriculum: walls_fraction applies from this DAgger iteration on (0 = from the expert's
    # episodes); walls from the start kept the student from ever learning the task
    walls_from_iteration: int = 0
    sky_fraction: float = 0.0           # share of training scenes with a random plain background colour
    # behaviour cloning on a finished run's aggregated dataset for updates_first gradient steps
    # instead of flying rollouts (an ablation; the shipped baselines fly their own DAgger runs);
    # empty = DAgger
    dataset: str = ""
    # the teacher slows its loops down for slow motors or actuation latency (False: nominal gains on every
    # vehicle; the student cannot observe the lag and learns the average of the slowed gains)
    expert_slows_for_lag: bool = True
    # the teacher leads a moving target by the lag of its slowed loop, v kv / (kp s), not the nominal
    # v kv / kp (VisualExpert.lead_matches_loop); False is the shipped model's teacher
    expert_lead_matches_loop: bool = False
    # the teacher's integral action on the position error (VisualExpert.integral_gain, 1/s; 0 = off), within
    # expert_integral_gate_m of the standoff point, bounded to expert_integral_limit_m
    expert_integral_gain: float = 0.0
    expert_integral_limit_m: float = 0.6
    expert_integral_gate_m: float = 0.8
    # > 0: weight of an auxiliary loss: a linear head on the camera features regresses where the target is in
    # the view (azimuth, elevation, log range; lnn_drone.training.target_view), from privileged labels, on the
    # steps with the target in view. Training only: the head is not saved, the model file is unchanged. Why:
    # imitation alone never taught the encoder to find the target in walls scenes, direct labels do (README)
    target_view_weight: float = 0.0
    # > 0: weight of an auxiliary loss: a linear head on the recurrent core's state regresses the target's
    # velocity relative to the drone in its heading frame (lnn_drone.training.relative_velocity), from privileged
    # labels. Training only, like the target-view head. Why: a moving target asks for the velocity relative to it,
    # which the camera shows but imitation rewards only indirectly (README, "Tried and dropped")
    relative_velocity_weight: float = 0.0
    check_conditions: list = field(default_factory=lambda: ["nominal"])
    final_conditions: list = field(default_factory=lambda: ["nominal", "moving_target"])

    def check(self) -> None:
        super().check()
        if self.task != "visual_target":
            raise ValueError(f"VisualTrainConfig is for task visual_target, got {self.task!r}")
        if "image" not in self.inputs:
            raise ValueError("a visual-target policy needs the 'image' input")
        # hover_thrust reads the odometry's velocity (its rotor-drag term)
        if any(n in ("odom", "goal", "goal_error", "goal_error_integral", "hover_thrust") for n in self.inputs):
            raise ValueError(f"the visual-target policy must not read odometry or the goal, got inputs {self.inputs}")
        for share in ("walls_fraction", "sky_fraction", "moving_fraction", "camera_latency_fraction"):
            if not 0.0 <= getattr(self, share) <= 1.0:
                raise ValueError(f"{share} must be in [0, 1], got {getattr(self, share)}")
        if not 0 <= self.walls_from_iteration <= self.iterations:
            raise ValueError(f"walls_from_iteration must be in [0, iterations = {self.iterations}], got {self.walls_from_iteration}")
        for weight in ("target_view_weight", "relative_velocity_weight"):
            if not (math.isfinite(getattr(self, weight)) and getattr(self, weight) >= 0):
                raise ValueError(f"{weight} must be >= 0 (0: off), got {getattr(self, weight)}")
        if self.expert_integral_gain < 0 or self.expert_integral_limit_m <= 0 or self.expert_integral_gate_m <= 0:
            raise ValueError("expert_integral_gain must be >= 0 and expert_integral_limit_m, expert_integral_gate_m > 0")


class VisualDaggerTrainer(DaggerTrainer):
    cfg: VisualTrainConfig

    @property
    def setup(self) -> VisualSetup:
        c = self.cfg
        return VisualSetup(control_hz=c.control_hz, physics_hz=c.physics_hz, width=c.image_width,
                           height=c.image_height, episode_s=c.episode_s, action_mode=c.action_mode)

    def __init__(self, config: VisualTrainConfig, run_dir, progress: bool = True):
        super().__init__(config, run_dir, progress)
        self.expert = VisualExpert(slows_for_lag=config.expert_slows_for_lag,
                                   lead_matches_loop=config.expert_lead_matches_loop,
                                   integral_gain=config.expert_integral_gain,
                                   integral_limit_m=config.expert_integral_limit_m,
                                   integral_gate_m=config.expert_integral_gate_m)
        self.view_head = self.velocity_head = None   # the auxiliary losses' heads, made with the network

    # ------------------------------------------------------------------ the auxiliary losses (target view, relative velocity)
    def extra_labels(self, envs: list) -> np.ndarray | None:
        """Per env, the labels of the auxiliary losses that are on, in this order: where the target
        is in the camera's view (``target_view_labels``), the target's velocity relative to the drone
        (``relative_velocity_label``)."""
        parts = []
        bases = [e.unwrapped for e in envs]
        if self.cfg.target_view_weight > 0:
            from .target_view import target_view_labels

            s = self.setup
            parts.append(np.stack([target_view_labels(b.sim.rotation_matrix, b.sim.position, b.target_position,
                                                      s.width, s.height, s.fov_deg) for b in bases]))
        if self.cfg.relative_velocity_weight > 0:
            from .relative_velocity import relative_velocity_label

            parts.append(np.stack([relative_velocity_label(b.sim.rotation_matrix, b.sim._vel, b.target_velocity)
                                   for b in bases]))
        return np.concatenate(parts, 1) if parts else None

    def build_network(self):
        net = super().build_network()
        self._add_auxiliary_heads()
        return net

    def _init_from(self, model):
        net = super()._init_from(model)
        self._add_auxiliary_heads()   # a fresh head: the model file holds the policy alone
        return net

    def _resume(self):
        out = super()._resume()
        if self.net is not None:
            self._add_auxiliary_heads()   # a fresh head: like Adam's moments, it is not kept between sessions
        return out

    def _add_auxiliary_heads(self) -> None:
        """The training-only heads of the auxiliary losses that are on (never in the model file):
        target view from the camera features, relative velocity from the core's whole state."""
        from .relative_velocity import RELATIVE_VELOCITY_LABELS

        # in this order (each nn.Linear draws from torch's global generator before its seeded init):
        # the run of config/experiments/visual_relative_velocity.yaml made them so
        self.velocity_head = (self._new_head(self.net.state_size, RELATIVE_VELOCITY_LABELS, seed_offset=8)
                              if self.cfg.relative_velocity_weight > 0 else None)
        has_camera = getattr(self.net, "image_encoder", None) is not None
        self.view_head = (self._new_head(self.net.config.image_features, 3, seed_offset=7)
                          if self.cfg.target_view_weight > 0 and has_camera else None)

    def _new_head(self, inputs: int, outputs: int, seed_offset: int):
        """A seeded linear head (uniform ±1/sqrt(inputs), zero bias), added to the optimizer."""
        torch = self.torch
        gen = torch.Generator().manual_seed(self.cfg.seed + seed_offset)
        head = torch.nn.Linear(inputs, outputs)
        with torch.no_grad():
            bound = 1.0 / math.sqrt(inputs)
            head.weight.uniform_(-bound, bound, generator=gen)
            head.bias.zero_()
        self.optimizer.add_param_group({"params": list(head.parameters())})
        return head

    def train(self, iteration: int, updates: int) -> float:
        hooks = []
        self._view_features, self._core_states = None, []
        if self.view_head is not None:
            def keep(_module, _inputs, out):
                self._view_features = out

            hooks.append(self.net.image_encoder.register_forward_hook(keep))
        if self.velocity_head is not None:
            def keep_state(_module, _inputs, out):   # the core runs once per step: (output, new state, aux)
                self._core_states.append(out[1])

            hooks.append(self.net.core.register_forward_hook(keep_state))
        try:
            return super().train(iteration, updates)
        finally:
            for hook in hooks:
                hook.remove()

    def auxiliary_loss(self, extra_labels, mask):
        from .relative_velocity import RELATIVE_VELOCITY_LABELS, relative_velocity_loss
        from .target_view import VIEW_LABELS, target_view_loss

        want = VIEW_LABELS * (self.view_head is not None) + RELATIVE_VELOCITY_LABELS * (self.velocity_head is not None)
        if extra_labels.shape[-1] != want:
            raise ValueError(f"the auxiliary losses that are on (target_view_weight, relative_velocity_weight) need {want} "
                             f"labels per step, the dataset holds {extra_labels.shape[-1]} (recorded with other losses?)")
        loss, used = None, 0
        if self.view_head is not None:
            pred = self.view_head(self._view_features).reshape(*mask.shape, 3)
            loss = self.cfg.target_view_weight * target_view_loss(pred, extra_labels[..., :VIEW_LABELS], mask)
            used = VIEW_LABELS
        if self.velocity_head is not None:
            states = self.torch.stack(self._core_states, 1)     # (B, T, S), this forward pass's steps
            self._core_states.clear()
            v = self.cfg.relative_velocity_weight * relative_velocity_loss(self.velocity_head(states),
                                                                          extra_labels[..., used:], mask)
            loss = v if loss is None else loss + v
        return loss

    def run(self, resume: bool = False) -> dict:
        if not self.cfg.dataset:
            return super().run(resume)
        import time

        from .dataset import Dataset

        t0 = time.perf_counter()
        self.dataset = Dataset.load(self.cfg.dataset)
        if list(self.dataset.input_names) != list(self.cfg.inputs):
            raise ValueError(f"{self.cfg.dataset} holds inputs {self.dataset.input_names}, the config wants {self.cfg.inputs}")
        self.build_network()
        loss = self.train(0, self.cfg.updates_first)
        check = self.quick_check()
        elapsed = time.perf_counter() - t0
        self._log({"iteration": 0, "episodes": len(self.dataset.episodes), "steps": self.dataset.steps,
                   "rollout_crashes": 0, "student_episodes": 0, "loss": f"{loss:.6g}",
                   "check_success": check["success_rate"], "check_rmse_m": check["rmse_m_median"],
                   "check_settle_s": None, "lr": f"{self._lr(0):.3g}", "elapsed_s": f"{elapsed:.1f}"})
        return {"train_wall_s": elapsed}

    def _make_envs(self) -> list:
        c = self.cfg
        s = VisualEvalSettings(vehicle=c.vehicle, setup=self.setup)
        scene = replace(train_scene(), walls_fraction=c.walls_fraction, sky_fraction=c.sky_fraction)
        return [make_visual_env(s, randomization=c.randomization, scene=scene, camera_latency_range=tuple(c.camera_latency_s))
                for _ in range(c.rollout_batch)]

    def _episode_reset(self, iteration: int, episode: int) -> tuple[int, dict]:
        state, seed = episode_start(self.cfg.seed + 100_000 * (iteration + 1), episode)
        moving = np.random.default_rng([self.cfg.seed, 811, iteration, episode]).random() < self.cfg.moving_fraction
        # each env owns its task config; the target speed is read at reset
        env = self.envs[episode % len(self.envs)].unwrapped
        env.task.target_speed_mps = self.cfg.target_speed_mps if moving else 0.0
        # a latency below one frame period still delays by a whole frame: without latency-free
        # episodes the student would never see the frame of its own tick, as it does in nominal flight
        late = np.random.default_rng([self.cfg.seed, 812, iteration, episode]).random() < self.cfg.camera_latency_fraction
        env.task.camera_latency_s = tuple(self.cfg.camera_latency_s) if late else (0.0, 0.0)
        walls = self.cfg.walls_fraction if iteration >= self.cfg.walls_from_iteration else 0.0
        if env.task.scene.walls_fraction != walls:  # the scene draws no walls variable at 0: earlier runs keep their scenes
            env.task.scene = replace(env.task.scene, walls_fraction=walls)
        return seed, {"state": state}

    def input_spec(self, name: str, norm: tuple):
        """The camera input at the recipe's resolution; the others as the base trainer has them."""
        if name != "image":
            return super().input_spec(name, norm)
        from ..policy import InputSpec

        return InputSpec.image(name, self.cfg.image_height, self.cfg.image_width, mean=norm[0], std=norm[1])

    NOMINAL_CHECK = "nominal"

    def check(self) -> dict[str, dict]:
        return {"nominal": self.quick_check()}

    def quick_check(self) -> dict:
        from .agents import TorchPolicyAgent

        s = VisualEvalSettings(condition=self.cfg.check_conditions[0], episodes=self.cfg.check_episodes, seed=1000,
                               vehicle=self.cfg.vehicle, setup=self.setup)
        d = evaluate_visual(TorchPolicyAgent(self.net), s, batch=self.cfg.rollout_batch).to_json_dict()
        # the names the trainer's log expects
        d["rmse_m_median"] = d["final_distance_error_m_median"]
        d["settle_s_median"] = None
        return d

    def final_evaluation(self, model_path, episodes: int | None = None) -> dict:
        from .agents import PolicyAgent

        n = episodes or self.cfg.final_eval_episodes
        out = {}
        for cond in self.cfg.final_conditions:
            s = VisualEvalSettings(condition=cond, episodes=n, seed=0, vehicle=self.cfg.vehicle, setup=self.setup)
            out[cond] = evaluate_visual(PolicyAgent(model_path), s, batch=self.cfg.rollout_batch).to_json_dict()
        return out
