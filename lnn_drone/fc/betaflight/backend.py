"""Betaflight backend: MSP over serial (a real board) or TCP (the SITL).

What it does on ``open``: handshake (API version, FC variant must be BTFL, board), an ARM mode
range on an AUX channel (a fresh configuration has none; AIRMODE on the same switch, so the
rate loop keeps authority at low throttle), linear ACTUAL rates (optional; the mapping then
uses whatever MSP_RC_TUNING reports either way) and the failsafe settings read back.
Commands become RC frames (``MSP_SET_RAW_RC``), the only RX path whose loss Betaflight detects:
stop sending and the firmware's own RX failsafe lands the vehicle (disarm after
``failsafe_delay``). Telemetry (IMU, attitude, motors, status) is requested without blocking
and collected in ``poll``.
"""
from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass
from typing import Sequence

from .. import msp
from ..base import FcError, FlightController, ImuReading, LinkStatus, register_backend
from .rc import RcMapper, RcTuning

BOX_ARM, BOX_AIRMODE = 0, 28          # permanent box ids
ARMING_DISABLE_NAMES = (
    "NO_GYRO", "FAILSAFE", "RX_FAILSAFE", "NOT_DISARMED", "BOXFAILSAFE", "RUNAWAY_TAKEOFF", "CRASH_DETECTED",
    "THROTTLE", "ANGLE", "BOOT_GRACE_TIME", "NOPREARM", "LOAD", "CALIBRATING", "CLI", "CMS_MENU", "BST", "MSP",
    "PARALYZE", "GPS", "RESC", "DSHOT_TELEM", "REBOOT_REQUIRED", "DSHOT_BITBANG", "ACC_CALIBRATION",
    "MOTOR_PROTOCOL", "CRASHFLIP", "ALTHOLD", "POSHOLD", "ARM_SWITCH")
ARM_SWITCH_FLAG = 1 << 28
RX_FAILSAFE_FLAG = 1 << 2
NOT_DISARMED_FLAG = 1 << 3
RC_LOW, RC_HIGH = 1000, 2000
GYRO_LSB_PER_DPS = 16.4
# First contact: a flight controller that is still booting (or a SITL on a starved host) answers
# MSP only after a while; the bridge keeps asking for this long before it gives up. 1.5 s
# (3 tries of 0.5 s) failed a fresh-clone CI run on this 2-core machine
CONNECT_TIMEOUT_S = 15.0


def decode_arming_flags(flags: int) -> list[str]:
    return [n for i, n in enumerate(ARMING_DISABLE_NAMES) if flags >> i & 1]


@dataclass(frozen=True)
class FcStatus:
    """MSP_STATUS_EX, the parts we use."""

    armed: bool
    mode_flags: int
    arming_disable_flags: int

    @classmethod
    def from_msp(cls, p: bytes) -> "FcStatus":
        if len(p) < 16:
            raise FcError(f"MSP_STATUS_EX reply too short ({len(p)} bytes)")
        mode = struct.unpack_from("<I", p, 6)[0]
        extra = p[15]
        off = 16 + extra
        flags = struct.unpack_from("<I", p, off + 1)[0] if len(p) >= off + 5 else 0
        return cls(bool(mode & 1), mode, flags)

    @property
    def reasons(self) -> list[str]:
        return decode_arming_flags(self.arming_disable_flags)


@dataclass(frozen=True)
class FailsafeConfig:
    delay_s: float          # failsafe_delay: RX loss -> stage 2 (landing / drop)
    off_delay_s: float
    procedure: int          # 0 auto-land, 1 drop (disarm), 2 GPS rescue

    @classmethod
    def from_msp(cls, p: bytes) -> "FailsafeConfig":
        if len(p) < 8:
            raise FcError(f"MSP_FAILSAFE_CONFIG reply too short ({len(p)} bytes)")
        return cls(p[0] / 10.0, p[1] / 10.0, p[7])


class BetaflightFlightController(FlightController):
    """A Betaflight FC over MSP. ``command_modes`` = ctbr: Betaflight runs its own rate loop."""

    name = "betaflight"
    command_modes = frozenset({"ctbr"})

    def __init__(self, device: str = "", arm_aux_channel: int = 1, set_linear_rates_dps: float = 600.0,
                 rc_rate_hz: float = 100.0, telemetry_rate_hz: float = 100.0,
                 command_timeout_s: float = 0.1, acc_1g: float | None = None, msp_version: int = 1,
                 arm_timeout_s: float = 5.0):
        if not device:
            raise FcError("Betaflight backend: no device (a serial port such as /dev/ttyACM0[@baud], or tcp://host:port)")
        if not 1 <= arm_aux_channel <= 12:
            raise FcError(f"arm_aux_channel must be AUX1..AUX12, got {arm_aux_channel}")
        self.device = device
        self.arm_aux_channel = arm_aux_channel
        self.set_linear_rates_dps = set_linear_rates_dps
        self.rc_period = 1.0 / rc_rate_hz
        self.telemetry_period = 1.0 / telemetry_rate_hz
        self.command_timeout_s = command_timeout_s
        self.acc_1g = acc_1g
        self.msp_version = msp_version
        self.arm_timeout_s = arm_timeout_s
        self.client: msp.MspClient | None = None
        self.info: dict = {}
        self.mapper: RcMapper | None = None
        self.failsafe: FailsafeConfig | None = None
        self._rc = [1500, 1500, RC_LOW, 1500] + [RC_LOW] * 4
        self._cmd_t: float | None = None
        self._next_rc_t = 0.0
        self._next_tlm_t = 0.0
        self._last_imu_t = -1.0
        self._imu_request_t = 0.0
        self._status: FcStatus | None = None
        self._want_armed = False
        self.rc_frames_sent = 0

    # ------------------------------------------------------------------ link
    def open(self) -> None:
        self.client = msp.MspClient(msp.open_transport(self.device), version=self.msp_version)
        c = self.client
        # the client's own retries, as many as fit in CONNECT_TIMEOUT_S (a rejection still raises at once)
        api = c.request(msp.MSP_API_VERSION, retries=max(c.retries, math.ceil(CONNECT_TIMEOUT_S / c.timeout_s) - 1))
        variant = c.request(msp.MSP_FC_VARIANT)[:4].decode(errors="replace")
        if variant != "BTFL":
            raise FcError(f"{self.device}: flight controller variant is {variant!r}, not Betaflight (BTFL)")
        version = c.request(msp.MSP_FC_VERSION)
        board = c.request(msp.MSP_BOARD_INFO)
        self.info = {"api_version": f"{api[1]}.{api[2]}", "fc_variant": variant,
                     "fc_version": ".".join(str(b) for b in version[:3]), "board": board[:4].decode(errors="replace")}
        if self.acc_1g is None:
            self.acc_1g = 256.0 if self.info["board"] == "SITL" else 2048.0  # virtual accelerometer: 256 per g
        self.configure()

    def configure(self) -> None:
        """ARM (+ AIRMODE) on the AUX switch; rates; read back what the mapping needs."""
        c = self._c()
        aux = self.arm_aux_channel - 1
        start, end = (1700 - 900) // 25, (2100 - 900) // 25  # 25 µs steps from 900 µs
        c.request(msp.MSP_SET_MODE_RANGE, bytes([0, BOX_ARM, aux, start, end]))
        c.request(msp.MSP_SET_MODE_RANGE, bytes([1, BOX_AIRMODE, aux, start, end]))
        if self.set_linear_rates_dps:
            c.request(msp.MSP_SET_RC_TUNING, RcTuning.linear_payload(self.set_linear_rates_dps))
        self.mapper = RcMapper(RcTuning.from_msp(c.request(msp.MSP_RC_TUNING)))
        self.failsafe = FailsafeConfig.from_msp(c.request(msp.MSP_FAILSAFE_CONFIG))

    def close(self) -> None:
        if self.client is not None:
            try:
                self.disarm()
            except FcError:
                pass
            self.client.close()
            self.client = None

    def _c(self) -> msp.MspClient:
        if self.client is None:
            raise FcError("Betaflight link is not open")
        return self.client

    # ------------------------------------------------------------------ arming
    def read_status(self) -> FcStatus:
        self._status = FcStatus.from_msp(self._c().request(msp.MSP_STATUS_EX))
        return self._status

    def _send_rc(self) -> None:
        self._c().send(msp.MSP_SET_RAW_RC, struct.pack(f"<{len(self._rc)}H", *self._rc))
        self.rc_frames_sent += 1

    def _aux_index(self) -> int:
        return 3 + self.arm_aux_channel

    def arm(self) -> None:
        """Throttle low, switch off -> wait for the FC to be armable -> switch on -> confirm.
        Raises FcError naming Betaflight's arming-disable reasons if it refuses. The physics
        (or the real sensors) must keep running meanwhile: the FC's clock and checks need them."""
        c = self._c()
        self._rc[2] = RC_LOW
        self._rc[self._aux_index()] = RC_LOW
        deadline = time.monotonic() + self.arm_timeout_s
        st = self.read_status()
        while time.monotonic() < deadline:
            self._send_rc()
            st = self.read_status()
            if st.armed:
                break
            if not (st.arming_disable_flags & ~(ARM_SWITCH_FLAG | NOT_DISARMED_FLAG)):
                if self._rc[self._aux_index()] == RC_HIGH and st.arming_disable_flags & NOT_DISARMED_FLAG:
                    self._rc[self._aux_index()] = RC_LOW  # switch was on too early: edge again
                else:
                    self._rc[self._aux_index()] = RC_HIGH
            time.sleep(self.rc_period)
            c.drain()
        if not st.armed:
            self._rc[self._aux_index()] = RC_LOW
            self._send_rc()
            raise FcError("Betaflight refuses to arm: " + (", ".join(st.reasons) or "no reason reported"))
        self._want_armed = True
        self._cmd_t = time.monotonic()

    def disarm(self, confirm_timeout_s: float = 1.0) -> None:
        """Switch off (and throttle low) until the FC reports disarmed, or the timeout
        passes (then the FC's own RX failsafe disarms it once the frames stop)."""
        self._want_armed = False
        self._rc[2] = RC_LOW
        self._rc[self._aux_index()] = RC_LOW
        if self.client is None:
            return
        deadline = time.monotonic() + confirm_timeout_s
        while True:
            self._send_rc()
            try:
                if not self.read_status().armed or time.monotonic() > deadline:
                    return
            except FcError:
                return
            time.sleep(self.rc_period)

    def try_arm_with_throttle(self, throttle_us: int) -> FcStatus:
        """Flip the switch with the throttle at ``throttle_us`` and report what the FC says
        (used to show that arming is refused with the throttle up)."""
        self._rc[2] = throttle_us
        self._rc[self._aux_index()] = RC_HIGH
        for _ in range(10):
            self._send_rc()
            time.sleep(self.rc_period)
            self._c().drain()
        st = self.read_status()
        self._rc[self._aux_index()] = RC_LOW
        self._rc[2] = RC_LOW
        self._send_rc()
        return st

    # ------------------------------------------------------------------ commands
    def send_ctbr(self, thrust: float, rates: Sequence[float], now: float | None = None) -> None:
        if self.mapper is None:
            raise FcError("Betaflight link is not open")
        roll, pitch, thr, yaw = self.mapper.channels(float(thrust), rates)
        self._rc[0], self._rc[1], self._rc[3] = roll, pitch, yaw
        self._rc[2] = thr if self._want_armed else RC_LOW
        self._cmd_t = now if now is not None else time.monotonic()
        self._send_rc()
        self._next_rc_t = self._cmd_t + self.rc_period

    def send_rc(self, channels: Sequence[int]) -> None:
        """Raw RC (µs, AETR + AUX) - for step tests and manual use."""
        self._rc[:len(channels)] = [int(v) for v in channels]
        self._send_rc()

    # ------------------------------------------------------------------ telemetry
    def poll(self, now: float) -> list[ImuReading]:
        c = self._c()
        fresh = self._cmd_t is not None and now - self._cmd_t <= self.command_timeout_s
        if self._want_armed and fresh and now >= self._next_rc_t:
            self._send_rc()  # keep the RX link alive between commands
            self._next_rc_t = now + self.rc_period
        # No fresh command -> no RC frame: the firmware's RX failsafe takes over, as on a
        # real vehicle whose companion computer died.
        c.drain()  # replies to the previous requests
        out = []
        got = c.latest.get(msp.MSP_RAW_IMU)
        if got is not None and got[0] != self._last_imu_t:
            self._last_imu_t = got[0]
            # stamped with the request's send time: the FC sampled it no earlier, so a sample
            # is never stamped after the moment it existed (receivers compare it with their clock)
            out.append(self.imu_from_raw(self._imu_request_t, got[1]))
        if now >= self._next_tlm_t:
            for cmd in (msp.MSP_RAW_IMU, msp.MSP_STATUS_EX):
                c.send(cmd)
            self._imu_request_t = time.monotonic()
            self._next_tlm_t = now + self.telemetry_period
        st = c.latest.get(msp.MSP_STATUS_EX)
        if st is not None:
            self._status = FcStatus.from_msp(st[1])
        return out

    def imu_from_raw(self, stamp: float, p: bytes) -> ImuReading:
        """MSP_RAW_IMU -> FLU gyro (rad/s) and specific force (m/s^2). The gyro comes in sensor
        units (16.4 per deg/s, the 2000 deg/s range); its axes read as FLU rates, and the
        accelerometer (``acc_1g`` per g, +1 g on z at rest) with x pointing backwards - both
        established against the SITL by feeding it known rates and tilts (test_hil_betaflight)."""
        ax, ay, az, gx, gy, gz = struct.unpack_from("<6h", p, 0)
        g = 9.80665 / float(self.acc_1g or 2048.0)
        d = math.radians(1.0 / GYRO_LSB_PER_DPS)
        return ImuReading(stamp, (gx * d, gy * d, gz * d), (-ax * g, ay * g, az * g))

    def status(self, now: float) -> LinkStatus:
        c = self.client
        st = self._status
        age = (now - c.last_rx_t) if c is not None and c.last_rx_t is not None else float("inf")
        armed = bool(st and st.armed)
        failsafe = bool(st and st.arming_disable_flags & RX_FAILSAFE_FLAG and self._want_armed)
        msg = "armed" if armed else ("disarmed: " + ", ".join(st.reasons) if st and st.reasons else "disarmed")
        extra = (("rc_frames_sent", self.rc_frames_sent), ("msp_timeouts", c.timeouts if c else 0),
                 ("msp_crc_errors", c.parser.crc_errors if c else 0)) + tuple(self.info.items())
        return LinkStatus(c is not None, armed, age, failsafe, msg, extra)


register_backend("betaflight", lambda **kw: BetaflightFlightController(**kw))
