"""What the policy node decides, without ROS: input bookkeeping, the failsafe, the command.

The node feeds samples (``on_sample``) and clock ticks (``watchdog``) in; commands come out.
Kept rclpy-free so every rule here (stale, missing, non-finite input -> failsafe; recovery;
episode reset when time jumps back; exact stamp sync for lockstep) is unit-testable and the
node stays a thin adapter.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Mapping, Protocol

import numpy as np

from .node_config import PolicyNodeConfig

PER_TICK_INPUTS = ("imu", "odom", "attitude")   # published every control tick by a simulator or FC
# (``attitude`` is the orientation estimate inside the ``imu`` message)
HELD_INPUTS = ("goal",)             # a setpoint holds until replaced: never stale


class Controller(Protocol):
    """A policy or baseline the node runs: what it reads and what it outputs."""

    required: set[str]
    mode: str  # "motors" | "ctbr"

    def reset(self) -> None: ...

    def compute(self, obs: Mapping[str, np.ndarray], dt: float) -> np.ndarray: ...


class PolicyController:
    """A model file on the numpy runtime (no torch)."""

    def __init__(self, policy, image_shape: tuple[int, ...] | None = None):
        self.policy = policy
        self.required = set(policy.required_observations)
        self.mode = policy.action_mode
        self.image_shape = image_shape
        self.control_period = policy.control_period

    def reset(self) -> None:
        self.policy.reset()

    def compute(self, obs, dt: float) -> np.ndarray:
        return self.policy.step(obs, dt)

    @property
    def neurons(self) -> np.ndarray | None:
        return np.asarray(self.policy.state, dtype=np.float32).reshape(-1)


class ExpertAdapter:
    """The geometric expert on the odom topic (privileged in sim): a classical baseline that
    flies through exactly the same node graph as a model."""

    required = {"odom", "goal"}
    mode = "motors"
    neurons = None
    control_period = None

    def __init__(self, vehicle):
        from ..control import ExpertController

        self._ctrl = ExpertController(vehicle)

    def reset(self) -> None:
        self._ctrl.reset()

    def compute(self, obs, dt: float) -> np.ndarray:
        from ..state import DroneState

        o = np.asarray(obs["odom"], dtype=float)
        state = DroneState(o[0:3].copy(), o[3:7].copy(), o[7:10].copy(), o[10:13].copy())
        return self._ctrl.motors(state, obs["goal"], dt)


@dataclass
class Command:
    stamp_ns: int
    mode: str
    values: np.ndarray
    failsafe: bool
    reason: str = ""


@dataclass
class _Input:
    stamp_ns: int = -1
    value: np.ndarray | None = None
    bad_stamp_ns: int = -1
    error: str = ""
    received: int = 0
    rejected: int = 0


@dataclass
class Stats:
    computed: int = 0
    failsafe_commands: int = 0
    failsafe_events: int = 0
    resets: int = 0
    duplicates: int = 0   # re-sent samples of a tick already computed (a lockstep sim re-sends on loss)
    inference_s: list = field(default_factory=list)   # since the last diagnostics
    input_age_s: dict = field(default_factory=dict)   # name -> ages at compute time
    command_wall: list = field(default_factory=list)  # wall times of commands (rate)


class PolicyCore:
    def __init__(self, config: PolicyNodeConfig, controller: Controller, hover_command: float, period_s: float):
        unknown = controller.required - {"imu", "odom", "goal", "image", "attitude"}
        if unknown:
            raise ValueError(f"the model needs observations {sorted(unknown)} that no topic provides "
                             f"(known: imu, odom, goal, image, attitude)")
        self.config = config
        self.controller = controller
        self.hover_command = float(hover_command)
        self.period_ns = int(round(period_s * 1e9))
        self.inputs = {name: _Input() for name in sorted(controller.required)}
        self.trigger = self._trigger_set()
        self.failsafe_reason: str | None = "waiting for inputs"
        self.stats = Stats()
        self._last_computed = -1
        self._last_command_stamp = -1
        self._origin_ns: int | None = None  # time of start / last reset: ages of missing inputs count from here
        self._fresh: set[str] = set()       # trigger inputs received since the last computation
        self._skip_until = -1               # samples of a tick that already got its failsafe
        self.last_command: Command | None = None

    # ------------------------------------------------------------------ configuration
    def _trigger_set(self) -> tuple[str, ...]:
        req = self.controller.required
        per_tick = [n for n in PER_TICK_INPUTS if n in req]
        if self.config.sync == "exact" and per_tick:
            return tuple(per_tick)
        for n in PER_TICK_INPUTS + ("image",):
            if n in req:
                return (n,)
        return tuple(sorted(req))[:1]

    def swap_controller(self, controller: Controller) -> str | None:
        """Atomic swap; refused (reason returned) when the new one needs other inputs or outputs."""
        if controller.required != self.controller.required:
            return (f"the new model reads {sorted(controller.required)}, the running one "
                    f"{sorted(self.controller.required)}; restart the node to change inputs")
        if controller.mode != self.controller.mode:
            return f"the new model outputs {controller.mode!r}, the running one {self.controller.mode!r}; restart the node"
        self.controller = controller
        controller.reset()
        self.stats.resets += 1
        return None

    # ------------------------------------------------------------------ inputs
    def on_sample(self, name: str, stamp_ns: int, value: np.ndarray | None, now_ns: int, error: str = "") -> Command | None:
        """A new sample of input ``name`` (``value`` None with ``error`` if it was unusable)."""
        slot = self.inputs.get(name)
        if slot is None:
            return None
        if self._origin_ns is None:
            self._origin_ns = now_ns
        if name not in HELD_INPUTS and stamp_ns < slot.stamp_ns:
            self._episode_reset(now_ns)
            slot = self.inputs[name]
        if value is not None and value.dtype.kind == "f" and not np.isfinite(value).all():
            value, error = None, f"non-finite values in {name}"
        if value is None:
            slot.rejected += 1
            slot.error = error or f"unusable {name} sample"
            slot.bad_stamp_ns = stamp_ns
            if name in self.trigger or name in PER_TICK_INPUTS:
                stamp = max(stamp_ns, self._newest_stamp())
                self._skip_until = stamp
                self._fresh.clear()
                return self._failsafe(stamp, slot.error)
            return None
        if name in self.trigger and stamp_ns <= self._last_computed:
            # A re-sent sample of a tick already answered: computing again would step the network
            # with dt = 0. Its command may have been the sample lost (best-effort commands), so
            # the newest tick's re-send is answered with the same command again, once per re-send.
            self.stats.duplicates += 1
            if (stamp_ns == self._last_computed and name == self.trigger[0] and self.last_command is not None
                    and self.last_command.stamp_ns == stamp_ns):
                return self.last_command
            return None
        slot.received += 1
        slot.stamp_ns, slot.value = stamp_ns, value
        if slot.error and name == "image":
            slot.error = ""
        if name in self.trigger and stamp_ns > self._skip_until:
            self._fresh.add(name)
            return self._maybe_compute(now_ns)
        if name in HELD_INPUTS and self._fresh:
            return self._maybe_compute(now_ns)  # the tick that waited for this setpoint
        return None

    def _newest_stamp(self) -> int:
        return max([s.stamp_ns for n, s in self.inputs.items() if n not in HELD_INPUTS] + [0])

    def _episode_reset(self, now_ns: int) -> None:
        """Time went backwards (a simulator reset, a looped log): start a new episode."""
        for n, s in self.inputs.items():
            if n not in HELD_INPUTS:
                self.inputs[n] = _Input(received=s.received, rejected=s.rejected)
        self.controller.reset()
        self.stats.resets += 1
        self._last_computed = -1
        self._last_command_stamp = -1
        self._origin_ns = now_ns
        self._fresh.clear()
        self._skip_until = -1

    def _maybe_compute(self, now_ns: int) -> Command | None:
        if not self._fresh.issuperset(self.trigger):
            return None  # exact sync: wait for the other per-tick inputs of this tick
        if any(self.inputs[n].value is None for n in HELD_INPUTS if n in self.inputs):
            return None  # a setpoint not yet received: this tick waits for it (the watchdog bounds the wait)
        self._fresh.clear()
        stamp = max(self.inputs[n].stamp_ns for n in self.trigger)
        for name, slot in self.inputs.items():
            if slot.value is None:
                return self._failsafe(stamp, f"missing input {name}")
            if name == "image" and (stamp - slot.stamp_ns) > self.config.image_timeout_s * 1e9:
                return self._failsafe(stamp, f"stale input image ({(stamp - slot.stamp_ns) / 1e9:.3f} s)")
        recovering = self.failsafe_reason is not None
        if recovering:
            self.controller.reset()  # state integrated over missing data means nothing
            dt = self.period_ns / 1e9
        else:
            dt_ns = stamp - self._last_computed if self._last_computed >= 0 else self.period_ns
            # stamps are integer ns: a tick of the nominal period may read 1 ns off
            dt = self.period_ns / 1e9 if abs(dt_ns - self.period_ns) <= 1000 else min(dt_ns, 10 * self.period_ns) / 1e9
        obs = {name: slot.value for name, slot in self.inputs.items()}
        t0 = time.perf_counter()
        try:
            values = np.asarray(self.controller.compute(obs, dt), dtype=float)
        except Exception as exc:  # a feature/shape error must end in the failsafe, not a crash
            self.controller.reset()
            return self._failsafe(stamp, f"controller error: {exc}")
        self.stats.inference_s.append(time.perf_counter() - t0)
        self._last_computed = stamp
        if values.shape != (4,) or not np.isfinite(values).all():
            self.controller.reset()
            return self._failsafe(stamp, "non-finite or malformed controller output")
        if self.controller.mode == "motors":
            values = np.clip(values, 0.0, 1.0)
        for name, slot in self.inputs.items():
            if name not in HELD_INPUTS:
                self.stats.input_age_s.setdefault(name, []).append((now_ns - slot.stamp_ns) / 1e9)
        self.stats.computed += 1
        reason = ""
        if recovering:
            reason = f"recovered from failsafe ({self.failsafe_reason})"
            self.failsafe_reason = None
        return self._emit(Command(stamp, self.controller.mode, values, False, reason))

    # ------------------------------------------------------------------ watchdog and failsafe
    def watchdog(self, now_ns: int) -> Command | None:
        """Called at the control rate on the node clock: stale or missing input -> failsafe."""
        if self._origin_ns is None or now_ns < self._origin_ns:
            self._origin_ns = now_ns
        if now_ns < self._newest_stamp():
            self._episode_reset(now_ns)
        limit = self.config.input_timeout_periods * self.period_ns
        for name, slot in self.inputs.items():
            if name in HELD_INPUTS and slot.value is not None:
                continue
            since = slot.stamp_ns if slot.value is not None else self._origin_ns
            lim = self.config.image_timeout_s * 1e9 if name == "image" else limit
            if now_ns - since > lim:
                what = "stale" if slot.value is not None else "missing"
                stamp = max(self._newest_stamp(), 0) or now_ns
                self._fresh.clear()  # a tick that was waiting has now had its (failsafe) command
                self._skip_until = max(self._skip_until, self._newest_stamp())
                return self._failsafe(stamp, f"{what} input {name} ({(now_ns - since) / 1e9:.3f} s)")
        return None

    def failsafe_values(self) -> np.ndarray:
        action = self.config.failsafe_action
        thrust = 0.0 if action == "motors_off" else self.hover_command
        if action == "descend":
            thrust *= self.config.descend_thrust_frac
        if self.controller.mode == "ctbr":
            return np.array([thrust, 0.0, 0.0, 0.0])
        return np.full(4, thrust)

    def _failsafe(self, stamp_ns: int, reason: str) -> Command:
        if self.failsafe_reason is None:
            self.stats.failsafe_events += 1
        self.failsafe_reason = reason
        self.stats.failsafe_commands += 1
        return self._emit(Command(stamp_ns, self.controller.mode, self.failsafe_values(), True, reason))

    def _emit(self, cmd: Command) -> Command:
        self.last_command = cmd
        self._last_command_stamp = cmd.stamp_ns
        self.stats.command_wall.append(time.monotonic())
        return cmd

    # ------------------------------------------------------------------ reporting
    def input_ages(self, now_ns: int) -> dict[str, float]:
        return {n: ((now_ns - s.stamp_ns) / 1e9 if s.value is not None else math.inf) for n, s in self.inputs.items()}

    def input_errors(self) -> dict[str, str]:
        return {n: s.error for n, s in self.inputs.items() if s.error}
