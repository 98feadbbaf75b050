"""Evaluation episodes flown through the real Betaflight firmware.

Same protocol as the simulated evaluation (``training.evaluation``: seeded initial states,
10 s, success = within 0.5 m for the last 5 s, no crash), but the policy's CTBR command goes to
Betaflight as RC over MSP and the vehicle's motors obey the firmware's outputs. Between
episodes the vehicle is "held" level (the firmware sees a drone on the ground) to disarm and
re-arm, then released at the episode's initial state, as if thrown.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..fc import FcError
from ..policy.policy import Policy
from ..training.evaluation import EvalSettings, EvalSummary, episode_conditions, score_episode, summarize
from .rig import BetaflightRig, SitlVehicle

GROUND_CLEARANCE_M = 0.02
MAX_DISTANCE_M = 15.0
DISARM_WAIT_S = 2.0  # hang guard (firmware time) for the FC to report disarmed between episodes


def hil_settings(tier: str = "A30", episodes: int = 10, seed: int = 0, episode_s: float = 10.0,
                 vehicle: str = "quad250", control_hz: float = 120.0, physics_hz: float = 480.0) -> EvalSettings:
    s = EvalSettings(tier=tier, episodes=episodes, seed=seed, vehicle=vehicle, episode_s=episode_s,
                     action_mode="ctbr", control_hz=control_hz, physics_hz=physics_hz)
    s.check()
    return s


def physics_episode(vehicle: SitlVehicle, settings: EvalSettings, index: int,
                    on_step: Callable[[int], None] | None = None, record: bool = False):
    """Release the vehicle at episode ``index``'s initial state and step the physics (through
    the firmware) for ``episode_s``; ``on_step(k)`` runs before physics step k (controllers,
    publishers). Returns the protocol's EpisodeResult; the vehicle is held again afterwards."""
    sim = vehicle.sim
    state, goal, _variation, seed = episode_conditions(settings, index, sim.nominal_vehicle)
    per = steps_per_control(settings)
    if abs(vehicle.physics_hz - settings.physics_hz) > 1e-9:
        raise ValueError(f"vehicle runs physics at {vehicle.physics_hz} Hz, settings say {settings.physics_hz} Hz")
    vehicle.release()
    vehicle.reset(state, seed=seed)
    floor = sim.body_half_height + GROUND_CLEARANCE_M
    steps = int(round(settings.episode_s * settings.physics_hz))
    ts, pos, motors = [0.0], [np.asarray(sim.position)], []
    crashed = False
    for k in range(steps):
        if on_step is not None:
            on_step(k)
        out = vehicle.step()
        if k % per == per - 1:
            p = np.asarray(sim.position)
            ts.append(sim.t)
            pos.append(p)
            motors.append([o * o for o in out])
            if p[2] < floor or not np.linalg.norm(p - goal[:3]) < MAX_DISTANCE_M:
                crashed = True
                break
    vehicle.hold()
    return score_episode(index, settings, np.array(ts), np.array(pos), goal, np.array(motors), crashed,
                         completed=not crashed, record=record)


def steps_per_control(settings: EvalSettings) -> int:
    ratio = settings.physics_hz / settings.control_hz
    per = int(round(ratio))
    if per < 1 or abs(ratio - per) > 1e-9:
        raise ValueError(f"physics rate {settings.physics_hz} Hz must be a whole multiple of the control rate "
                         f"{settings.control_hz} Hz")
    return per


def fly_episode(rig: BetaflightRig, policy: Policy, settings: EvalSettings, index: int, record: bool = False):
    """Arm (held), release at the episode's start, fly the policy for ``episode_s``, disarm."""
    sim = rig.sim
    _state, goal, _v, _s = episode_conditions(settings, index, sim.nominal_vehicle)
    goal32 = goal.astype(np.float32)
    per = steps_per_control(settings)
    ctrl_dt = 1.0 / settings.control_hz
    rig.hold()
    rig.fc.arm()
    policy.reset()

    def control(k: int) -> None:
        if k % per == 0:
            obs = {"imu": np.array(sim.imu.gyro + sim.imu.accel, dtype=np.float32),
                   "odom": sim.odometry().as_vector().astype(np.float32), "goal": goal32}
            cmd = policy.step(obs, ctrl_dt)
            rig.fc.send_ctbr(float(cmd[0]), cmd[1:])
            rig.fc.poll(time.monotonic())

    result = physics_episode(rig, settings, index, control, record)
    rig.fc.disarm()
    _wait_disarmed(rig)
    return result


def _wait_disarmed(rig: BetaflightRig) -> None:
    end = rig.fdm_t + DISARM_WAIT_S
    while rig.fdm_t < end:
        rig.fc.disarm()
        if not rig.fc.read_status().armed:
            return
        time.sleep(0.02)
    raise FcError("Betaflight did not disarm after the episode")


def fly_hil_episodes(model: str, settings: EvalSettings, rig: BetaflightRig, progress=None) -> EvalSummary:
    """Fly ``settings.episodes`` protocol episodes of a CTBR model through the firmware."""
    policy = Policy.load(model, available_observations=["imu", "odom", "goal"])
    if policy.action_mode != "ctbr":
        raise ValueError(f"{model}: a Betaflight FC runs its own rate loop and takes CTBR; this model outputs "
                         f"{policy.action_mode!r}")
    results = []
    for i in range(settings.episodes):
        results.append(fly_episode(rig, policy, settings, i))
        if progress:
            progress(i, results[-1])
    return summarize(f"{model} via Betaflight SITL", settings, results)
