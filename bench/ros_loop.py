"""ROS 2 control loop in real time, separate processes (sim_node + policy_node over DDS).

Prints one ``name=value`` line per figure: at 250 Hz and 500 Hz the control rate achieved (fraction
of sim ticks that got their own command) and the IMU-to-command latency (sim publishes a tick ->
the policy's command stamped with that IMU sample arrives back), p50/p99 in µs. The last line is
the headline: the 250 Hz p99 (the 500 Hz lines carry a _500hz suffix). Goals (issue 5): achieved fraction >= 0.99, p99 <= 2000 µs.

    python bench/ros_loop.py [--seconds 8] [--model M] [--realtime-priority 80]

``--realtime-priority`` runs both nodes under SCHED_FIFO (their ``realtime_priority`` parameter,
as an onboard deployment would); without it they run under the normal scheduler.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lnn_drone.ros.testing import RosHarness, random_model  # noqa: E402


def run_rate(rate_hz: float, seconds: float, model: Path, work: Path, priority: int = 0) -> dict:
    results = work / f"results_{int(rate_hz)}.json"
    with RosHarness(work / f"logs_{int(rate_hz)}") as h:
        h.start("policy_node", "policy", {"model": str(model), "use_sim_time": True, "control_rate_hz": rate_hz,
                                          "sync": "latest", "input_timeout_periods": 5.0, "realtime_priority": priority})
        sim = h.start("sim_node", "sim", {"lockstep": False, "sim.control_hz": rate_hz, "sim.physics_hz": rate_hz,
                                          "episode.count": 0, "episode.duration_s": 30.0, "results_file": str(results),
                                          "realtime_priority": priority})
        h.spin_until(lambda: sim.poll() is not None or "episode" in h.graph.log_tail("sim", 3) or _started(h), 120)
        time.sleep(seconds)
        codes = h.graph.stop()
    if not results.exists():
        raise SystemExit(f"sim wrote no results (exit codes {codes}):\n{h.graph.log_tail('sim')}")
    return json.loads(results.read_text())["link"]


def _started(h: RosHarness) -> bool:
    return "real-time sim" in h.graph.log_tail("sim", 5) and h.node.count_publishers("motor_commands") > 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0, help="wall seconds per rate")
    ap.add_argument("--model", default=None, help="model file (default: models/hover.safetensors, else a random CfC)")
    ap.add_argument("--realtime-priority", type=int, default=0,
                    help="SCHED_FIFO priority of both nodes (their realtime_priority parameter); 0 = normal scheduling")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lnn_ros_loop_"))
    shipped = Path(__file__).resolve().parents[1] / "models" / "hover.safetensors"
    model = Path(args.model) if args.model else (shipped if shipped.exists() else random_model(work / "random.safetensors"))
    print(f"model={model.name}")
    print(f"realtime_priority={args.realtime_priority}")
    fmt = lambda v: "nan" if v is None else f"{v:.0f}"  # noqa: E731
    for rate, tag in ((500.0, "_500hz"), (250.0, "")):  # 250 Hz last: its p99 is the headline
        link = run_rate(rate, args.seconds, model, work, args.realtime_priority)
        print(f"control_rate_hz_target{tag}={rate:g}")
        print(f"control_rate_achieved_frac{tag}={link['control_rate_achieved_frac']:.4f}")
        print(f"ticks{tag}={link['ticks']}")
        for q in ("p10", "p50", "p90"):
            print(f"imu_to_command_latency_us_{q}{tag}={fmt(link['latency_us_' + q])}")
        print(f"imu_to_command_latency_us_p999{tag}={fmt(link['latency_us_p999'])}")
        print(f"imu_to_command_latency_us_p99{tag}={fmt(link['latency_us_p99'])}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
