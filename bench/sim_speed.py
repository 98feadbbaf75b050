"""Simulator speed: bare PyBullet loop vs the gymnasium env, reset time, camera cost.

Prints one ``name=value`` per line; the last line is the headline ``env_overhead_ratio``.
The bare loop is the minimum any PyBullet quadrotor sim must do per step (4 forces, 1 torque,
stepSimulation, state read) in the same world (ground plane, same body), measured in the same
run so that the ratio is independent of the machine's speed and load.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pybullet_data

from lnn_drone.config import SimConfig
from lnn_drone.sim._pybullet import pb  # quiet import: pybullet's banner would follow the last line
from lnn_drone.sim.envs import HoverEnv, TaskConfig, VisualTargetEnv, VisualTaskConfig
from lnn_drone.state import DroneState


def best_rate(fn, n: int, repeats: int) -> float:
    """Steps per second of ``fn(n)``, best of ``repeats`` (least disturbed by other load)."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def bare_loop_factory():
    c = pb.connect(pb.DIRECT)
    pb.setGravity(0, 0, -9.80665, physicsClientId=c)
    pb.setTimeStep(1 / 240, physicsClientId=c)
    pb.loadURDF(pybullet_data.getDataPath() + "/plane.urdf", physicsClientId=c)
    col = pb.createCollisionShape(pb.GEOM_BOX, halfExtents=[0.046, 0.046, 0.015], physicsClientId=c)
    body = pb.createMultiBody(0.027, col, -1, [0, 0, 2], physicsClientId=c)
    pb.changeDynamics(body, -1, linearDamping=0, angularDamping=0, physicsClientId=c)
    f = 0.027 * 9.80665 / 4
    offsets = ([0.028, -0.028, 0], [-0.028, -0.028, 0], [-0.028, 0.028, 0], [0.028, 0.028, 0])

    def run(n: int) -> None:
        pb.resetBasePositionAndOrientation(body, [0, 0, 2], [0, 0, 0, 1], physicsClientId=c)
        pb.resetBaseVelocity(body, [0, 0, 0], [0, 0, 0], physicsClientId=c)
        for _ in range(n):
            for off in offsets:
                pb.applyExternalForce(body, -1, (0.0, 0.0, f), off, pb.LINK_FRAME, physicsClientId=c)
            pb.applyExternalTorque(body, -1, (0.0, 0.0, 0.0), pb.LINK_FRAME, physicsClientId=c)
            pb.stepSimulation(physicsClientId=c)
            pb.getBasePositionAndOrientation(body, physicsClientId=c)
            pb.getBaseVelocity(body, physicsClientId=c)

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    bare_run = bare_loop_factory()

    cfg = SimConfig(physics_hz=240.0, control_hz=240.0)
    cfg.imu.rate_hz = 240.0
    env = HoverEnv(cfg, TaskConfig(episode_s=1e6))
    env.reset(seed=0, options={"state": DroneState(position=np.array([0.0, 0.0, 2.0]))})
    hover = np.full(4, env.sim.vehicle.hover_command, dtype=np.float32)

    def env_run(n: int) -> None:
        step = env.step
        for _ in range(n):
            step(hover)

    # interleave the two loops so that a burst of load on this shared machine hits both alike
    bare = env_rate = 0.0
    for _ in range(args.repeats):
        bare = max(bare, best_rate(bare_run, args.steps, 1))
        env_rate = max(env_rate, best_rate(env_run, args.steps, 1))

    resets = []
    for i in range(200):
        t0 = time.perf_counter()
        env.reset(seed=i)
        resets.append(time.perf_counter() - t0)
    reset_ms = 1e3 * float(np.median(resets))

    # camera figures in the visual-target scene (target, textured ground, distractors), not an
    # empty world: that is what a camera policy trains and flies in
    cam_cfg = SimConfig(physics_hz=240.0, control_hz=240.0)
    cam_cfg.camera.width = cam_cfg.camera.height = 64
    cam_cfg.camera.rate_hz = 30.0
    cam_env = VisualTargetEnv(cam_cfg, VisualTaskConfig(episode_s=1e6))
    cam_env.reset(seed=0)
    cam_sim = cam_env.sim
    frames = []
    for _ in range(50):
        t0 = time.perf_counter()
        cam_sim.camera.render(cam_sim.position, cam_sim.rotation_matrix)
        frames.append(time.perf_counter() - t0)
    frame_ms = 1e3 * float(np.median(frames))
    hover_cam = np.full(4, cam_sim.vehicle.hover_command, dtype=np.float32)
    sim_seconds = 5.0
    t0 = time.perf_counter()
    for _ in range(int(sim_seconds * 240)):
        cam_env.step(hover_cam)
    cam_rtf = sim_seconds / (time.perf_counter() - t0)

    print(f"bare_pybullet_steps_per_s={bare:.0f}")
    print(f"env_steps_per_s={env_rate:.0f}")
    print(f"reset_ms={reset_ms:.3f}")
    print(f"camera_frame_ms_64x64={frame_ms:.2f}")
    print(f"camera_env_realtime_factor={cam_rtf:.1f}")
    print(f"env_overhead_ratio={bare / env_rate:.2f}")


if __name__ == "__main__":
    main()
