"""The physics side of a Betaflight SITL: state packets out, motor outputs in (UDP).

Each physics step the simulator sends the firmware a 144-byte ``fdm_packet`` (its "sensors")
and receives one 16-byte packet of four motor outputs in [0, 1] (its "ESCs"). This is the only
place where the simulator's contract frames (ENU world, FLU body, ROS (x, y, z, w) quaternions,
motors FR, BR, BL, FL) meet the firmware's (NED/FRD, (w, x, y, z), its own motor order).

Facts from the 4.6 SITL (src/platform/SIMULATOR), checked by tests against the running binary:

- packet = timestamp (s), gyro (rad/s, FRD), specific force (m/s^2, FRD: (0, 0, -9.80665) at
  rest), attitude quaternion (w, x, y, z; FRD body to NED), velocity, position, pressure (Pa).
  The target defines USE_VIRTUAL_GPS, so velocity is ENU and position is (longitude, latitude,
  altitude); we send both as the firmware's virtual GPS expects.
- sitl.c permutes the motors: ``motor_speed[3] = motor1, [0] = motor2, [1] = motor3, [2] = motor4``. With Betaflight's
  QUADX numbering (1 rear-right, 2 front-right, 3 rear-left, 4 front-left) the contract order
  FR, BR, BL, FL is packet indices (0, 3, 1, 2) - ``SITL_TO_CONTRACT``, proven by step tests.
- Betaflight's output is a throttle-like command ~ rotor speed; thrust ~ speed^2, so the
  vehicle's normalized thrust is u = output^2 (``motor_thrust_command``).
"""
from __future__ import annotations

import math
import socket
import struct
import time
from collections import deque

import numpy as np

from ..frames import GRAVITY, quat_to_rotmat, rotmat_to_quat

STATE_FORMAT = "<d3d3d4d3d3dd"
STATE_SIZE = struct.calcsize(STATE_FORMAT)  # 144
MOTOR_FORMAT = "<4f"
MOTOR_SIZE = struct.calcsize(MOTOR_FORMAT)  # 16
SITL_TO_CONTRACT = (0, 3, 1, 2)  # contract motor i is the SITL packet's motor SITL_TO_CONTRACT[i]

# ENU world -> NED world and FLU body -> FRD body (both their own inverses)
_ENU_TO_NED = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
_FLU_TO_FRD = np.diag([1.0, -1.0, -1.0])
EARTH_RADIUS_M = 6371000.0
SEA_LEVEL_PA = 101325.0


def isa_pressure(altitude_m: float) -> float:
    """International Standard Atmosphere pressure (Pa) below 11 km."""
    return SEA_LEVEL_PA * (1.0 - 2.25577e-5 * altitude_m) ** 5.25588


def fdm_packet(t: float, gyro_flu, accel_flu, quat_xyzw, vel_enu, pos_enu,
               home_lat_lon=(47.3977, 8.5456)) -> bytes:
    """The state packet of one physics step, converted from the contract frames."""
    gx, gy, gz = gyro_flu
    ax, ay, az = accel_flu
    r_ned_frd = _ENU_TO_NED @ quat_to_rotmat(quat_xyzw) @ _FLU_TO_FRD
    qx, qy, qz, qw = rotmat_to_quat(r_ned_frd)
    lat0, lon0 = home_lat_lon
    lat = lat0 + math.degrees(pos_enu[1] / EARTH_RADIUS_M)
    lon = lon0 + math.degrees(pos_enu[0] / (EARTH_RADIUS_M * math.cos(math.radians(lat0))))
    return struct.pack(STATE_FORMAT, t, gx, -gy, -gz, ax, -ay, -az, qw, qx, qy, qz,
                       vel_enu[0], vel_enu[1], vel_enu[2], lon, lat, pos_enu[2], isa_pressure(pos_enu[2]))


def parse_motor_packet(data: bytes) -> tuple[float, float, float, float]:
    """Firmware motor outputs in contract order (FR, BR, BL, FL), clipped to [0, 1]."""
    if len(data) != MOTOR_SIZE:
        raise ValueError(f"SITL motor packet must be {MOTOR_SIZE} bytes, got {len(data)}")
    raw = struct.unpack(MOTOR_FORMAT, data)
    return tuple(min(1.0, max(0.0, raw[k])) if math.isfinite(raw[k]) else 0.0 for k in SITL_TO_CONTRACT)


def motor_thrust_command(outputs) -> list[float]:
    """Firmware outputs (~ rotor speed fraction) -> normalized thrust u = output^2."""
    return [o * o for o in outputs]


class SitlPhysicsLink:
    """UDP endpoint of the simulator: ``exchange(packet)`` sends one state packet and waits
    (up to ``timeout_s``, a hang guard) for the motor packet the firmware answers with."""

    def __init__(self, state_port: int, motor_port: int, host: str = "127.0.0.1"):
        self.state_addr = (host, state_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, motor_port))
        self.sent = 0  # lockstep (flight) exchanges; a held vehicle's are tallied apart
        self.received = 0
        self.missed = 0
        self.held_sent = 0  # exchanges of a vehicle held at rest (short waits: misses are expected)
        self.held_missed = 0
        self.last_outputs: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self.latency_s: deque[float] = deque(maxlen=200000)  # state sent -> motors back (wall clock)

    def close(self) -> None:
        self.sock.close()

    def _drain(self) -> None:
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(64)
                if len(data) == MOTOR_SIZE:
                    self.last_outputs = parse_motor_packet(data)
        except (BlockingIOError, InterruptedError):
            pass

    def exchange(self, packet: bytes, timeout_s: float = 0.05,
                 held: bool = False) -> tuple[float, float, float, float]:
        """Send ``packet``; return the firmware's answer (the previous outputs on a miss).
        ``held``: a vehicle at rest, counted in ``held_sent``/``held_missed`` so that the
        lockstep figures (``sent``, ``received``, ``missed``, ``latency_s``) describe flight."""
        self._drain()
        t0 = time.perf_counter()
        self.sock.sendto(packet, self.state_addr)
        if held:
            self.held_sent += 1
        else:
            self.sent += 1
        self.sock.settimeout(timeout_s)
        try:
            data = self.sock.recv(64)
        except socket.timeout:
            if held:
                self.held_missed += 1
            else:
                self.missed += 1
            return self.last_outputs
        if len(data) == MOTOR_SIZE:
            if not held:
                self.latency_s.append(time.perf_counter() - t0)
                self.received += 1
            self.last_outputs = parse_motor_packet(data)
        return self.last_outputs


def rest_packet(t: float) -> bytes:
    """A vehicle standing level and still at the origin (for boot, calibration and arming)."""
    return fdm_packet(t, (0.0, 0.0, 0.0), (0.0, 0.0, GRAVITY), (0.0, 0.0, 0.0, 1.0), (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
