"""``lnn-drone fly``: the ROS 2 node graph of a launch file, started where ``ros2 launch`` is
unavailable (the pip path). Same executables, same parameter files; records every topic to
MCAP and writes a report (trajectory, commands, inputs' ages, neuron activity)."""
from __future__ import annotations

import argparse

HELP = "fly the ROS 2 node graph (sim or onboard) without ros2 launch; record MCAP and write a report"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--launch", choices=["sim", "onboard", "hil_betaflight"], default="sim",
                   help="sim = sim_node + policy_node (launch/sim.launch.py); onboard = policy_node + fc_bridge_node (sim backend); "
                        "hil_betaflight = the real Betaflight firmware (SITL) + hil_sim_node + fc_bridge_node + policy_node "
                        "(launch/hil_betaflight.launch.py, default model models/hover_ctbr.safetensors)")
    p.add_argument("--model", default=None, help="model file (.safetensors); default: models/hover.safetensors")
    p.add_argument("--controller", choices=["policy", "expert"], default="policy",
                   help="policy = the model file; expert = the classical controller through the same graph")
    p.add_argument("--duration", type=float, default=10.0, help="flight length in s (sim: one protocol episode, > 5 s)")
    p.add_argument("--record", default=None, help="MCAP output path (default: <out>/flight.mcap)")
    p.add_argument("--out", default=None, help="report directory (default: out/fly-<time>)")
    p.add_argument("--real-time", action="store_true", help="sim: real-time mode instead of lockstep")
    p.add_argument("--tier", default="A30", help="initial-state tier (A30, A45, A90)")
    p.add_argument("--seed", type=int, default=0, help="protocol seed (which initial state)")
    p.add_argument("--namespace", default="", help="namespace of the drone's nodes and topics")
    p.add_argument("--config-dir", default=None, help="directory with sim_node.yaml, policy_node.yaml, fc_bridge_node.yaml")
    p.add_argument("--vehicle", default=None,
                   help="sim / onboard: fly this vehicle (shipped name or YAML path) instead of the parameter files' one; "
                        "the policy node is told it too, and flies a model trained on another through vehicle matching")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    from ..ros.fly import fly  # rclpy lives in lnn_drone.ros only

    return fly(args)
