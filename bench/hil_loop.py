"""Hardware-in-the-loop loop through the real Betaflight firmware (SITL): the liquid CTBR
policy hovers the simulated 250 mm quad while every physics step's state packet goes to the
firmware and its motor outputs come back.

Prints ``name=value`` lines: ``fdm_rate_hz`` (state/motor exchanges per wall-clock second,
unpaced), ``sensor_to_motor_latency_ms_p50`` / ``_p99`` (state packet sent -> the firmware's
motor packet received, wall clock: UDP both ways plus the firmware's gyro/PID/mixer pass),
``missed_fraction`` and the hover error. Last line: ``sensor_to_motor_latency_ms_p99=...``.

    python bench/hil_loop.py [--seconds 5] [--model models/hover_ctbr.safetensors]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lnn_drone.hil.rig import BetaflightRig, RigConfig  # noqa: E402
from lnn_drone.policy.policy import Policy  # noqa: E402
from lnn_drone.state import DroneState  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="simulated seconds of hover")
    ap.add_argument("--model", default=str(ROOT / "models" / "hover_ctbr.safetensors"))
    args = ap.parse_args()
    policy = Policy.load(args.model, available_observations=["imu", "odom", "goal"])
    with BetaflightRig(RigConfig(realtime_factor=0.0)) as rig:  # unpaced: how fast can the loop go
        goal = np.array([0.0, 0.0, 2.0, 0.0], np.float32)
        rig.fc.arm()
        rig.release()
        rig.reset(DroneState(position=np.array([0.0, 0.0, 2.0])))
        sim = rig.sim
        per = int(rig.config.physics_hz / 120.0)
        rig.link.latency_s.clear()
        steps = int(args.seconds * rig.config.physics_hz)
        sent0, missed0 = rig.link.sent, rig.link.missed
        t0 = time.perf_counter()
        err = []
        for k in range(steps):
            if k % per == 0:
                obs = {"imu": np.array(sim.imu.gyro + sim.imu.accel, np.float32),
                       "odom": sim.odometry().as_vector(), "goal": goal}
                c = policy.step(obs, 1 / 120)
                rig.fc.send_ctbr(float(c[0]), c[1:])
                rig.fc.poll(time.monotonic())
            rig.step()
            err.append(np.linalg.norm(np.asarray(sim.position) - goal[:3]))
        wall = time.perf_counter() - t0
        lat = np.array(rig.link.latency_s) * 1000.0
        missed = (rig.link.missed - missed0) / max(1, rig.link.sent - sent0)
    print(f"fdm_rate_hz={steps / wall:.1f}")
    print(f"realtime_factor={args.seconds / wall:.2f}")
    print(f"missed_fraction={missed:.4f}")
    print(f"hover_error_m_final={err[-1]:.3f}")
    print(f"sensor_to_motor_latency_ms_p50={np.percentile(lat, 50):.3f}")
    print(f"sensor_to_motor_latency_ms_p99={np.percentile(lat, 99):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
