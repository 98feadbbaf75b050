"""MAVLink backend (PX4, ArduPilot) via pymavlink.

CTBR goes out as ``SET_ATTITUDE_TARGET`` with the attitude ignored (body rates + collective
thrust), the autopilot's own rate loop tracks it. The rules that make an autopilot accept it:

* PX4 offboard: setpoints must already stream (> 2 Hz) before the switch to OFFBOARD (main mode
  6), and keep streaming, or PX4 leaves offboard (its failsafe); then arm.
* ArduPilot: GUIDED mode (copter mode 4) accepts attitude/rate targets; then arm.

Arming and mode changes are ``COMMAND_LONG`` with an acknowledged result; a refusal raises
:class:`FcError` with the ``MAV_RESULT``. Telemetry: ``HIGHRES_IMU`` (or ``SCALED_IMU``) and
``ATTITUDE`` become FLU IMU readings; ``HEARTBEAT`` gives armed state and mode. MAVLink body
axes are FRD, so the FLU <-> FRD conversion is ``_frd`` (its own inverse).

No autopilot binary can be installed here: tests talk to this backend at the message level.
"""
from __future__ import annotations

import time
from typing import Sequence

from .base import FcError, FlightController, ImuReading, LinkStatus, register_backend

try:
    from pymavlink import mavutil
except ImportError as exc:  # pragma: no cover - pymavlink is in the `hil` extra
    raise ImportError("the MAVLink backend needs pymavlink (pip install 'lnn_drone[hil]')") from exc

PX4_MAIN_MODE_OFFBOARD = 6
ARDUCOPTER_MODE_GUIDED = 4
ATTITUDE_IGNORE = 0b1000_0000  # SET_ATTITUDE_TARGET type_mask bit 7: ignore the attitude quaternion
HEARTBEAT_TIMEOUT_S = 3.0


def _frd(v: Sequence[float]) -> tuple[float, float, float]:
    """FLU <-> FRD (body); the map is its own inverse."""
    return float(v[0]), -float(v[1]), -float(v[2])


class MavlinkFlightController(FlightController):
    name = "mavlink"
    command_modes = frozenset({"ctbr"})

    def __init__(self, device: str, autopilot: str = "px4", source_system: int = 255, source_component: int = 191,
                 connect_timeout_s: float = 10.0, ack_timeout_s: float = 2.0, offboard_prestream_s: float = 0.5,
                 setpoint_rate_hz: float = 50.0):
        if autopilot not in ("px4", "ardupilot"):
            raise FcError(f"autopilot must be 'px4' or 'ardupilot', got {autopilot!r}")
        if not device:
            raise FcError("no MAVLink device given (udpin:0.0.0.0:14540, udpout:host:port, tcp:host:port or a serial port)")
        self.device = device
        self.autopilot = autopilot
        self.source_system, self.source_component = source_system, source_component
        self.connect_timeout_s = connect_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.offboard_prestream_s = offboard_prestream_s
        self.setpoint_period = 1.0 / setpoint_rate_hz
        self.conn = None
        self.target = (1, 1)
        self._armed = False
        self._mode = None
        self._last_hb_t: float | None = None
        self._last_rx_t: float | None = None
        self._my_hb_t = 0.0
        self._boot = time.monotonic()
        self._ctbr = (0.0, (0.0, 0.0, 0.0))
        self._last_sp_t = 0.0
        self._acks: dict[int, int] = {}
        self._imu: list[ImuReading] = []
        self._att_rates: tuple | None = None

    # ------------------------------------------------------------------ link
    def open(self) -> None:
        try:
            self.conn = mavutil.mavlink_connection(self.device, source_system=self.source_system,
                                                   source_component=self.source_component, autoreconnect=True)
        except Exception as exc:
            raise FcError(f"cannot open MAVLink link {self.device!r}: {exc}") from exc
        deadline = time.monotonic() + self.connect_timeout_s
        while time.monotonic() < deadline:
            self._heartbeat(time.monotonic())
            self._service(0.1)
            if self._last_hb_t is not None:
                return
        raise FcError(f"no HEARTBEAT from an autopilot on {self.device} within {self.connect_timeout_s} s")

    def close(self) -> None:
        if self.conn is not None:
            try:
                if self._armed:
                    self.disarm()
            except FcError:
                pass
            self.conn.close()
            self.conn = None

    def _c(self):
        if self.conn is None:
            raise FcError("MAVLink link is not open")
        return self.conn

    def _heartbeat(self, now: float) -> None:
        if now - self._my_hb_t >= 0.5:
            self._my_hb_t = now
            self._c().mav.heartbeat_send(mavutil.mavlink.MAV_TYPE_ONBOARD_CONTROLLER,
                                         mavutil.mavlink.MAV_AUTOPILOT_INVALID, 0, 0, mavutil.mavlink.MAV_STATE_ACTIVE)

    def _service(self, timeout_s: float = 0.0) -> None:
        """Read everything waiting (the first message may be waited for ``timeout_s``)."""
        c = self._c()
        msg = c.recv_match(blocking=timeout_s > 0, timeout=timeout_s if timeout_s > 0 else None)
        while msg is not None:
            self._handle(msg)
            msg = c.recv_match(blocking=False)

    def _handle(self, msg) -> None:
        now = time.monotonic()
        t = msg.get_type()
        if t == "BAD_DATA":
            return
        self._last_rx_t = now
        if t == "HEARTBEAT":
            if msg.type in (mavutil.mavlink.MAV_TYPE_GCS, mavutil.mavlink.MAV_TYPE_ONBOARD_CONTROLLER):
                return
            self.target = (msg.get_srcSystem(), msg.get_srcComponent())
            self._last_hb_t = now
            self._armed = bool(msg.base_mode & mavutil.mavlink.MAV_MODE_FLAG_SAFETY_ARMED)
            self._mode = msg.custom_mode
        elif t == "COMMAND_ACK":
            self._acks[msg.command] = msg.result
        elif t == "HIGHRES_IMU":
            self._imu.append(ImuReading(now, _frd((msg.xgyro, msg.ygyro, msg.zgyro)), _frd((msg.xacc, msg.yacc, msg.zacc))))
        elif t == "ATTITUDE":
            self._att_rates = _frd((msg.rollspeed, msg.pitchspeed, msg.yawspeed))

    # ------------------------------------------------------------------ commands
    def _command(self, command: int, *params: float) -> None:
        """COMMAND_LONG and wait for its COMMAND_ACK (setpoints keep streaming meanwhile)."""
        p = list(params) + [0.0] * (7 - len(params))
        self._acks.pop(command, None)
        self._c().mav.command_long_send(self.target[0], self.target[1], command, 0, *p)
        deadline = time.monotonic() + self.ack_timeout_s
        while time.monotonic() < deadline:
            self._stream(time.monotonic())
            self._service(0.01)
            if command in self._acks:
                result = self._acks.pop(command)
                if result != mavutil.mavlink.MAV_RESULT_ACCEPTED:
                    name = mavutil.mavlink.enums["MAV_RESULT"][result].name if result in mavutil.mavlink.enums["MAV_RESULT"] else result
                    raise FcError(f"autopilot refused command {command}: {name}")
                return
        raise FcError(f"no COMMAND_ACK for command {command} within {self.ack_timeout_s} s")

    def _stream(self, now: float) -> None:
        self._heartbeat(now)
        if now - self._last_sp_t >= self.setpoint_period:
            self._last_sp_t = now
            thrust, rates = self._ctbr
            p, q, r = _frd(rates)
            self._c().mav.set_attitude_target_send(int((now - self._boot) * 1000) & 0xFFFFFFFF, self.target[0],
                                                   self.target[1], ATTITUDE_IGNORE, [1.0, 0.0, 0.0, 0.0], p, q, r,
                                                   min(1.0, max(0.0, thrust)))

    def arm(self) -> None:
        """Mode rules first (PX4: stream setpoints, then OFFBOARD; ArduPilot: GUIDED), then arm."""
        if self.autopilot == "px4":
            end = time.monotonic() + self.offboard_prestream_s
            while time.monotonic() < end:  # offboard is refused unless setpoints already stream
                self._stream(time.monotonic())
                self._service(0.01)
            self._command(mavutil.mavlink.MAV_CMD_DO_SET_MODE, mavutil.mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
                          PX4_MAIN_MODE_OFFBOARD)
        else:
            self._command(mavutil.mavlink.MAV_CMD_DO_SET_MODE, mavutil.mavlink.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
                          ARDUCOPTER_MODE_GUIDED)
        self._command(mavutil.mavlink.MAV_CMD_COMPONENT_ARM_DISARM, 1.0)
        self._armed = True

    def disarm(self) -> None:
        self._ctbr = (0.0, (0.0, 0.0, 0.0))
        self._command(mavutil.mavlink.MAV_CMD_COMPONENT_ARM_DISARM, 0.0)
        self._armed = False

    def send_ctbr(self, thrust: float, rates: Sequence[float], now: float | None = None) -> None:
        self._ctbr = (float(thrust), tuple(float(v) for v in rates))
        self._last_sp_t = 0.0  # send this one now
        self._stream(time.monotonic() if now is None else now)

    # ------------------------------------------------------------------ telemetry
    def poll(self, now: float) -> list[ImuReading]:
        self._stream(now)
        self._service(0.0)
        out, self._imu = self._imu, []
        return out

    def status(self, now: float) -> LinkStatus:
        hb_age = now - self._last_hb_t if self._last_hb_t is not None else float("inf")
        rx_age = now - self._last_rx_t if self._last_rx_t is not None else float("inf")
        connected = self.conn is not None and hb_age < HEARTBEAT_TIMEOUT_S
        return LinkStatus(connected, self._armed, rx_age, False, "armed" if self._armed else "disarmed",
                          (("autopilot", self.autopilot), ("custom_mode", self._mode), ("heartbeat_age_s", hb_age)))


def _factory(**kw) -> FlightController:
    return MavlinkFlightController(**kw)


register_backend("mavlink", _factory)
