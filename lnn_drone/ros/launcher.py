"""Start a node graph as separate processes where ``ros2 launch`` is unavailable (pip path).

Spawns the same executables a launch file names, with the same parameter files, and stops them
cleanly (SIGINT -> rclpy shuts down -> exit; SIGTERM, then SIGKILL only as a hang guard).
rclpy-free.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "lnn_drone"
_MODULES = {"sim_node": "lnn_drone.ros.sim_node", "policy_node": "lnn_drone.ros.policy_node",
            "policy_lifecycle_node": "lnn_drone.ros.policy_lifecycle_node", "fc_bridge_node": "lnn_drone.ros.fc_bridge_node",
            "hil_sim_node": "lnn_drone.ros.hil_sim_node"}


def source_root() -> Path:
    return Path(__file__).resolve().parents[2]


def config_dir() -> Path:
    """``config/`` of the installed package (share/lnn_drone/config), else of the source tree."""
    for prefix in [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]:
        d = Path(prefix) / "share" / PACKAGE / "config"
        if d.is_dir():
            return d
    return source_root() / "config"


def executable_command(name: str) -> list[str]:
    """How to run executable ``name``: ``<prefix>/lib/lnn_drone/<name>`` (where ``ros2 run`` looks),
    else this environment's console script of that name (a pip editable install skips the
    data_files wrappers), else this interpreter with the node's module (a bare source checkout)."""
    for prefix in [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]:
        exe = Path(prefix) / "lib" / PACKAGE / name
        if exe.is_file() and os.access(exe, os.X_OK):
            return [str(exe)]
    script = Path(sys.prefix) / "bin" / name
    if name in _MODULES and script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    if name in _MODULES:
        return [sys.executable, "-m", _MODULES[name]]
    found = shutil.which(name)
    if found:
        return [found]
    raise FileNotFoundError(f"executable {name!r} of package {PACKAGE} not found")


def _param_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_param_value(float(x) if isinstance(x, int) else x) for x in v) + "]"
    return str(v)


@dataclass
class NodeSpec:
    executable: str
    name: str
    params_files: list[str] = field(default_factory=list)
    params: dict = field(default_factory=dict)
    namespace: str = ""

    def command(self) -> list[str]:
        cmd = executable_command(self.executable) + ["--ros-args", "-r", f"__node:={self.name}"]
        if self.namespace:
            cmd += ["-r", f"__ns:=/{self.namespace.strip('/')}"]
        for f in self.params_files:
            cmd += ["--params-file", str(f)]
        for k, v in self.params.items():
            cmd += ["-p", f"{k}:={_param_value(v)}"]
        return cmd


class Graph:
    """Processes of one node graph; logs go to ``log_dir/<name>.log``."""

    def __init__(self, env: dict, log_dir: str | Path):
        self.env = env
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, spec: NodeSpec) -> subprocess.Popen:
        log = open(self.log_dir / f"{spec.name}.log", "w")
        p = subprocess.Popen(spec.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True)  # a terminal's Ctrl-C reaches only us; we stop them in order
        log.close()
        self.procs[spec.name] = p
        return p

    def wait(self, name: str, timeout: float | None) -> int | None:
        try:
            return self.procs[name].wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def failed(self) -> dict[str, int]:
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None and p.returncode != 0}

    def stop(self, grace_s: float = 10.0) -> dict[str, int]:
        """SIGINT everything still running, then escalate; returns the exit codes."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for p in self.procs.values():
                try:
                    p.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    p.send_signal(sig)
            deadline = time.monotonic() + 3.0
        for p in self.procs.values():
            p.wait()
        return {n: p.returncode for n, p in self.procs.items()}

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            return "\n".join((self.log_dir / f"{name}.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""
