"""``betaflight_sitl``: run one provisioned Betaflight SITL until stopped (what the HIL launch
file starts next to the nodes). Prints one JSON line with its ports and MSP device.

    betaflight_sitl [--port-base 0] [--workdir DIR] [--no-provision]
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading


def main(argv=None) -> int:
    from .sitl import DEFAULT_CLI, BetaflightSitl, SitlPorts

    ap = argparse.ArgumentParser(prog="betaflight_sitl", description=__doc__.split("\n\n")[0])
    ap.add_argument("--port-base", type=int, default=0,
                    help="0 = the firmware's own ports (UDP 9002/9003, MSP tcp 5761); N = N+2, N+3, MSP N+11")
    ap.add_argument("--workdir", default=None, help="working directory (eeprom.bin); default: a fresh temporary one")
    ap.add_argument("--no-provision", action="store_true", help="skip the CLI settings of DEFAULT_CLI (sitl.py)")
    args, _ros_args = ap.parse_known_args(argv)  # tolerate --ros-args when started by a launch file
    if args.port_base and not 1024 <= args.port_base <= 65000:
        print("betaflight_sitl: --port-base must be 0 or 1024..65000", file=sys.stderr)
        return 2
    from ..base import FcError

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        sitl = BetaflightSitl(args.workdir, SitlPorts(args.port_base), keep_workdir=args.workdir is not None).start()
    except FcError as exc:
        print(f"betaflight_sitl: {exc}", file=sys.stderr)
        return 1
    try:
        if not args.no_provision:
            sitl.provision(list(DEFAULT_CLI))
        print(json.dumps({"msp_device": sitl.msp_device, "state_port": sitl.ports.state,
                          "motor_port": sitl.ports.motors, "workdir": str(sitl.workdir)}), flush=True)
        while not stop.wait(0.5):
            if not sitl.running():
                print(f"betaflight_sitl: firmware exited: {sitl.log_tail(500)}", file=sys.stderr)
                return 1
    finally:
        sitl.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
