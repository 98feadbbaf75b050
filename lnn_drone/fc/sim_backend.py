"""A simulated flight controller: the PyBullet vehicle behind the FC interface.

It behaves like a rate-mode FC with passthrough motors: accepts motor commands or CTBR (its own
rate loop + mixer), publishes IMU telemetry, keeps motors off while disarmed, and enforces a
command timeout (its own failsafe: motors off and disarm). It advances its physics to the host
clock in ``poll``, so it runs in real time next to the bridge node. Frames are the contract's
already, so its frame conversion is the identity.
"""
from __future__ import annotations

import numpy as np

from ..config import SimConfig
from ..state import DroneState
from .base import FcError, FlightController, ImuReading, LinkStatus, register_backend

MAX_CATCH_UP_STEPS = 50  # never sprint more than this many control periods after a stall


class SimFlightController(FlightController):
    name = "sim"
    command_modes = frozenset({"motors", "ctbr"})

    def __init__(self, sim_config: SimConfig | None = None, initial_position=(0.0, 0.0, 2.0),
                 command_timeout_s: float = 0.1, seed: int = 0):
        self.config = sim_config or SimConfig()
        self.initial_position = np.asarray(initial_position, dtype=float)
        self.command_timeout_s = command_timeout_s
        self.seed = seed
        self.sim = None
        self._armed = False
        self._failsafe = False
        self._u = np.zeros(4)
        self._last_cmd_t: float | None = None
        self._t0: float | None = None
        self._last_imu_stamp = -1.0

    # ------------------------------------------------------------------ link
    def open(self) -> None:
        from ..control import Mixer, RateController
        from ..sim.quadsim import QuadSim

        self.sim = QuadSim(self.config, seed=self.seed)
        self.sim.reset(DroneState(position=self.initial_position.copy()), motor_speed=0.0)
        v = self.sim.vehicle
        self._rate, self._mixer, self._tmax = RateController(v), Mixer(v), v.max_thrust_per_rotor_n

    def close(self) -> None:
        self.disarm()
        if self.sim is not None:
            self.sim.close()
            self.sim = None

    def arm(self) -> None:
        if self.sim is None:
            raise FcError("sim FC is not open")
        self._armed, self._failsafe = True, False

    def disarm(self) -> None:
        self._armed = False
        self._u = np.zeros(4)

    # ------------------------------------------------------------------ commands
    def _accept(self, now: float | None) -> None:
        self._last_cmd_t = now if now is not None else self.sim_time_host()

    def send_motors(self, u, now: float | None = None) -> None:
        u = np.asarray(u, dtype=float)
        self._u = np.clip(np.where(np.isfinite(u), u, 0.0), 0.0, 1.0) if self._armed else np.zeros(4)
        self._mode = "motors"
        self._accept(now)

    def send_ctbr(self, thrust, rates, now: float | None = None) -> None:
        self._ctbr = (float(thrust) if np.isfinite(thrust) else 0.0, np.nan_to_num(np.asarray(rates, dtype=float)))
        self._mode = "ctbr"
        self._accept(now)

    def sim_time_host(self) -> float:
        return (self._t0 or 0.0) + (self.sim.t if self.sim is not None else 0.0)

    # ------------------------------------------------------------------ time
    def poll(self, now: float) -> list[ImuReading]:
        if self.sim is None:
            raise FcError("sim FC is not open")
        if self._t0 is None:
            self._t0 = now
        out = []
        dt = 1.0 / self.config.control_hz
        steps = 0
        while self._t0 + self.sim.t + dt <= now and steps < MAX_CATCH_UP_STEPS:
            self._check_timeout(self._t0 + self.sim.t)
            self.sim.step(self._motor_output())
            steps += 1
            imu = self.sim.imu
            if imu.stamp != self._last_imu_stamp:
                self._last_imu_stamp = imu.stamp
                out.append(ImuReading(self._t0 + imu.stamp, imu.gyro, imu.accel))
        if steps == MAX_CATCH_UP_STEPS:
            self._t0 = now - self.sim.t  # fell behind: slip the clock rather than sprint
        return out

    def _check_timeout(self, t: float) -> None:
        if self._armed and self._last_cmd_t is not None and t - self._last_cmd_t > self.command_timeout_s:
            self._failsafe = True
            self.disarm()

    def _motor_output(self) -> list[float]:
        if not self._armed:
            return [0.0] * 4
        if getattr(self, "_mode", "motors") == "ctbr":
            thrust, rates = self._ctbr
            torque = self._rate(rates, self.sim.imu.gyro)
            return self._mixer(thrust * 4.0 * self._tmax, torque).tolist()
        return self._u.tolist()

    def odometry(self) -> DroneState | None:
        return self.sim.odometry() if self.sim is not None else None

    def status(self, now: float) -> LinkStatus:
        age = now - self._last_cmd_t if self._last_cmd_t is not None else float("inf")
        return LinkStatus(self.sim is not None, self._armed, 0.0, self._failsafe,
                          "command timeout: disarmed" if self._failsafe else ("armed" if self._armed else "disarmed"),
                          (("command_age_s", age), ("sim_time_s", self.sim.t if self.sim else 0.0)))


register_backend("sim", lambda **kw: SimFlightController(**kw))
