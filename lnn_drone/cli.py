"""``lnn-drone`` command line: one subcommand per module in ``lnn_drone.commands``.

Each command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. Modules keep heavy imports (torch, pybullet, rclpy) inside ``run`` so that
``lnn-drone --help`` stays fast and works on a torch-free onboard computer.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module. Add a line here to add a command.
COMMANDS: dict[str, str] = {
    "demo": "lnn_drone.commands.demo",
    "eval": "lnn_drone.commands.eval_cmd",
    "train": "lnn_drone.commands.train_cmd",
    "report": "lnn_drone.commands.report_cmd",
    "export": "lnn_drone.commands.export_cmd",
    "fly": "lnn_drone.commands.fly_cmd",
    "inspect": "lnn_drone.commands.inspect_cmd",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lnn-drone", description="Quadrotor flight with liquid neural networks.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command whose optional deps are missing
            if exc.name and exc.name.startswith("lnn_drone"):
                continue
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
