"""The Betaflight SITL rig: QuadSim <-> firmware (UDP, every physics step) and controller ->
firmware (MSP RC, every control tick).

While the vehicle is "held" (boot, calibration, arming, between episodes) a background thread
feeds the firmware a level vehicle at rest, as a drone standing on the ground would; in flight
the main thread steps physics and exchanges packets in lockstep (one state packet, one motor
answer per physics step), so the firmware's scaled clock follows simulated time.
"""
from __future__ import annotations

import os
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..config import SimConfig
from ..fc.betaflight.backend import BetaflightFlightController
from ..fc.betaflight.sitl import DEFAULT_CLI, BetaflightSitl
from ..fc.msp import MspError
from ..sim.sitl_link import SitlPhysicsLink, fdm_packet, motor_thrust_command, rest_packet
from ..state import DroneState

EXCHANGE_TIMEOUT_S = 0.1  # hang guard per packet; a miss keeps the previous motor outputs
HELD_EXCHANGE_TIMEOUT_S = 0.005  # while held: a late answer is picked up by the next exchange
HELD_STAMP_STEP_MAX_S = 0.015  # under the SITL's 20 ms limit for updating its clock rate
BOOT_GRACE_S = 5.5  # Betaflight refuses to arm for 5 s (firmware time) after boot
BRINGUP_ATTEMPTS = 2  # fresh SITL instances tried when the firmware never answers MSP


@dataclass
class RigConfig:
    vehicle: str = "quad250"
    physics_hz: float = 480.0
    imu_noise: bool = True
    set_linear_rates_dps: float = 600.0
    rc_rate_hz: float = 120.0
    # simulated seconds per wall-clock second in flight. The SITL scales its clock to the
    # packet timestamps, but its filters and PID assume the configured 8 kHz loop; a loaded
    # host that cannot run that many loops per firmware second would silently detune it, so
    # the physics is paced slower than real time when needed (<= 1; 0 = as fast as possible)
    realtime_factor: float = 0.5
    cli: list = field(default_factory=lambda: list(DEFAULT_CLI))


class SitlVehicle:
    """The physics side alone: QuadSim + the UDP link to a running SITL (the ROS HIL sim node
    uses this; the MSP side then belongs to the fc bridge node)."""

    def __init__(self, state_port: int, motor_port: int, vehicle: str = "quad250", physics_hz: float = 480.0,
                 realtime_factor: float = 0.5, imu_noise: bool = True, seed: int = 0):
        from ..sim.quadsim import QuadSim

        sim_cfg = SimConfig(vehicle=vehicle, physics_hz=physics_hz, control_hz=physics_hz)
        sim_cfg.imu.rate_hz = physics_hz
        if not imu_noise:
            sim_cfg.imu.gyro_noise_density = sim_cfg.imu.accel_noise_density = 0.0
            sim_cfg.imu.gyro_bias_random_walk = sim_cfg.imu.accel_bias_random_walk = 0.0
        if not 0.0 <= realtime_factor <= 1.0:
            raise ValueError(f"realtime_factor must be in [0, 1] (0 = unpaced), got {realtime_factor}")
        self.physics_hz = physics_hz
        self.realtime_factor = realtime_factor
        self.dt = 1.0 / physics_hz
        self.fdm_t = 0.0
        self.outputs = (0.0, 0.0, 0.0, 0.0)
        self._hold_stop: threading.Event | None = None
        self._hold_thread: threading.Thread | None = None
        self._pace_t: float | None = None
        self.link = SitlPhysicsLink(state_port, motor_port)
        try:
            self.sim = QuadSim(sim_cfg, seed=seed)
        except BaseException:
            self.link.close()
            raise

    # ------------------------------------------------------------------ holding
    def hold(self) -> None:
        """Feed the firmware a level vehicle at rest from a background thread."""
        if self._hold_thread is not None:
            return
        stop = threading.Event()

        def run() -> None:
            # The SITL sets its clock rate from each packet: (stamp delta) / (arrival delta), and
            # only when the stamp delta is under 20 ms (else the old rate stays). Counting one
            # physics step per answer made a starved host's firmware crawl (every late answer
            # cost a 0.1 s wait for 2 ms of stamp: boot grace never ended, "arming refused:
            # BOOT_GRACE_TIME" for a minute). So a held vehicle stamps packets with the wall
            # clock, advancing at most HELD_STAMP_STEP_MAX_S a packet (the firmware then catches
            # up over a few packets after a stall), and waits only briefly for each answer, so
            # packets keep flowing at the physics rate however late the firmware is.
            t0, fdm0 = time.monotonic(), self.fdm_t
            next_send = t0
            while not stop.is_set():
                wall_stamp = fdm0 + (time.monotonic() - t0)
                self.fdm_t = min(self.fdm_t + HELD_STAMP_STEP_MAX_S, max(self.fdm_t + 1e-6, wall_stamp))
                self.outputs = self.link.exchange(rest_packet(self.fdm_t), HELD_EXCHANGE_TIMEOUT_S, held=True)
                next_send = max(next_send + self.dt, time.monotonic() - self.dt)  # no bursts after a stall
                lag = next_send - time.monotonic()
                if lag > 0:
                    time.sleep(lag)

        self._hold_stop = stop
        self._hold_thread = threading.Thread(target=run, name="sitl-hold", daemon=True)
        self._hold_thread.start()

    def release(self) -> None:
        """Stop holding; the caller steps the physics from now on."""
        if self._hold_thread is None:
            return
        self._hold_stop.set()
        self._hold_thread.join()
        self._hold_thread = None

    def wait_held(self, sim_seconds: float) -> None:
        """Let ``sim_seconds`` of firmware time pass while held (boot grace, calibration)."""
        end = self.fdm_t + sim_seconds
        while self.fdm_t < end:
            time.sleep(0.01)

    # ------------------------------------------------------------------ flight
    def reset(self, state: DroneState, seed: int | None = None) -> None:
        self.sim.reset(state, seed=seed)

    def step(self) -> tuple[float, float, float, float]:
        """One physics step: state packet -> firmware -> motor outputs -> physics."""
        s = self.sim
        imu = s.imu
        pkt = fdm_packet(self.fdm_t, imu.gyro, imu.accel, s._quat, s._vel, s._pos)
        self._pace()
        self.outputs = self.link.exchange(pkt, EXCHANGE_TIMEOUT_S)
        s.step(motor_thrust_command(self.outputs))
        self.fdm_t += self.dt
        return self.outputs

    def _pace(self) -> None:
        rtf = self.realtime_factor
        if rtf <= 0:
            return
        now = time.monotonic()
        if self._pace_t is None or now - self._pace_t > 0.1:  # (re)start after a pause
            self._pace_t = now
        self._pace_t += self.dt / rtf
        if self._pace_t > now:
            time.sleep(self._pace_t - now)

    def close(self) -> None:
        self.release()
        self.link.close()
        self.sim.close()


class BetaflightRig(SitlVehicle):
    """A whole rig in one process: a provisioned SITL instance, the physics and the MSP
    backend (tests, benchmarks, in-process evaluation).

    A firmware that never answers MSP at bring-up (a known SITL defect under load, see the
    README's Hardware-in-the-loop section) is replaced by a fresh instance once, with a
    warning that carries the first instance's log; ``attempts`` says how many were needed."""

    def __init__(self, config: RigConfig | None = None, seed: int = 0):
        self.config = config or RigConfig()
        self.sitl: BetaflightSitl | None = None
        self.fc: BetaflightFlightController | None = None
        self._vehicle_open = False
        self.attempts = 0
        self.failed_attempts: list[str] = []  # why each discarded instance was given up
        for attempt in range(1, BRINGUP_ATTEMPTS + 1):
            self.attempts = attempt
            try:
                self._bring_up(seed)
                return
            except MspError as exc:  # the firmware never answered: a fresh instance may
                why = f"attempt {attempt}: {exc}; {self._firmware_diagnosis()}"
                self.close()
                self.failed_attempts.append(why)
                if attempt == BRINGUP_ATTEMPTS:
                    raise MspError("Betaflight SITL never answered MSP at bring-up, "
                                   f"{BRINGUP_ATTEMPTS} fresh instances tried:\n" + "\n".join(self.failed_attempts)) from exc
                warnings.warn(f"Betaflight SITL did not answer MSP; trying a fresh instance ({why})", RuntimeWarning,
                              stacklevel=2)
            except BaseException:
                self.close()
                raise

    def _bring_up(self, seed: int) -> None:
        c = self.config
        self.sitl = BetaflightSitl()
        self.sitl.start()
        if c.cli:
            self.sitl.provision(list(c.cli))
        super().__init__(self.sitl.ports.state, self.sitl.ports.motors, c.vehicle, c.physics_hz,
                         c.realtime_factor, c.imu_noise, seed)
        self._vehicle_open = True
        self.hold()
        self.fc = BetaflightFlightController(self.sitl.msp_device, set_linear_rates_dps=c.set_linear_rates_dps,
                                             rc_rate_hz=c.rc_rate_hz)
        self.fc.open()
        self.wait_held(BOOT_GRACE_S)

    def _firmware_diagnosis(self) -> str:
        """What a failed bring-up leaves to go on: is the firmware alive, did it use the CPU,
        did it answer the held packets, what did it print (its flash dump left out)."""
        parts = [f"firmware {'running' if self.sitl.running() else 'exited'}"]
        cpu = _process_cpu_s(self.sitl.proc.pid) if self.sitl.running() else None
        if cpu is not None:
            parts.append(f"{cpu:.1f} s CPU")
        if self._vehicle_open:
            link = self.link
            parts.append(f"held packets answered {link.held_sent - link.held_missed} of {link.held_sent}")
        lines = [ln for ln in self.sitl.log_tail(20000).splitlines() if ln and not ln.startswith("[FLASH")]
        parts.append("log: " + " | ".join(lines[-8:]))
        return ", ".join(parts)

    def close(self) -> None:
        if self.fc is not None:
            try:
                self.fc.close()
            except Exception:
                pass
            self.fc = None
        if self._vehicle_open:
            super().close()
            self._vehicle_open = False
        if self.sitl is not None:
            self.sitl.stop()

    def __enter__(self) -> "BetaflightRig":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux /proc), None where unreadable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # after the name: state, ...
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None
