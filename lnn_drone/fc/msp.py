"""MultiWii Serial Protocol (MSP) v1 and v2: framing, checksums and a request/response client.

Betaflight (and iNav) speak MSP on a UART - over USB serial on a real board, over TCP on the
SITL. Frames (written from the protocol description, not copied):

    v1:  '$' 'M' dir  size:u8  cmd:u8  payload  xor(size, cmd, payload)
    v2:  '$' 'X' dir  flag:u8  cmd:u16le  size:u16le  payload  crc8_dvb_s2(flag .. payload)

``dir`` is '<' to the FC, '>' from it, '!' when the FC rejects a command. Commands above 254
need v2 (v1 can tunnel them, we do not). The parser is a byte-at-a-time state machine so a
stream that starts mid-frame, or a frame with a bad checksum, costs only that frame.
"""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Protocol

from .base import FcError

# Command ids used here (Betaflight msp_protocol.h numbering).
MSP_API_VERSION = 1
MSP_FC_VARIANT = 2
MSP_FC_VERSION = 3
MSP_BOARD_INFO = 4
MSP_MODE_RANGES = 34
MSP_SET_MODE_RANGE = 35
MSP_FAILSAFE_CONFIG = 75
MSP_STATUS = 101
MSP_RAW_IMU = 102
MSP_MOTOR = 104
MSP_RC = 105
MSP_ATTITUDE = 108
MSP_RC_TUNING = 111
MSP_STATUS_EX = 150
MSP_SET_RAW_RC = 200
MSP_SET_RC_TUNING = 204
MSP_EEPROM_WRITE = 250

V1_MAX_PAYLOAD = 255
V2_MAX_PAYLOAD = 0xFFFF


class MspError(FcError):
    """MSP framing, checksum, timeout or a command the FC rejected."""


@dataclass(frozen=True)
class MspFrame:
    """One decoded frame: version (1 or 2), direction ('<', '>' or '!'), command, payload."""

    version: int
    direction: str
    command: int
    payload: bytes

    @property
    def is_error(self) -> bool:
        return self.direction == "!"


def crc8_dvb_s2(data: bytes, crc: int = 0) -> int:
    """CRC-8/DVB-S2 (polynomial 0xD5, init 0), the checksum of MSP v2."""
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0xD5) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def xor_checksum(data: bytes) -> int:
    """The v1 checksum: XOR of size, command and payload bytes."""
    c = 0
    for b in data:
        c ^= b
    return c


def encode_v1(command: int, payload: bytes = b"", direction: str = "<") -> bytes:
    if not 0 <= command <= 254:
        raise MspError(f"MSP v1 command must be 0..254, got {command} (use v2)")
    if len(payload) > V1_MAX_PAYLOAD:
        raise MspError(f"MSP v1 payload is at most {V1_MAX_PAYLOAD} bytes, got {len(payload)}")
    body = bytes([len(payload), command]) + payload
    return b"$M" + direction.encode() + body + bytes([xor_checksum(body)])


def encode_v2(command: int, payload: bytes = b"", direction: str = "<", flag: int = 0) -> bytes:
    if not 0 <= command <= 0xFFFF:
        raise MspError(f"MSP v2 command must be 0..65535, got {command}")
    if len(payload) > V2_MAX_PAYLOAD:
        raise MspError(f"MSP v2 payload is at most {V2_MAX_PAYLOAD} bytes, got {len(payload)}")
    body = bytes([flag & 0xFF]) + command.to_bytes(2, "little") + len(payload).to_bytes(2, "little") + payload
    return b"$X" + direction.encode() + body + bytes([crc8_dvb_s2(body)])


def encode(command: int, payload: bytes = b"", version: int = 1, direction: str = "<") -> bytes:
    if version == 1:
        return encode_v1(command, payload, direction)
    if version == 2:
        return encode_v2(command, payload, direction)
    raise MspError(f"MSP version must be 1 or 2, got {version}")


class MspParser:
    """Incremental decoder: ``feed(bytes)`` returns the complete frames; bad ones are counted
    in ``crc_errors`` / ``framing_errors`` and skipped."""

    def __init__(self):
        self.crc_errors = 0
        self.framing_errors = 0
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[MspFrame]:
        self._buf += data
        out: list[MspFrame] = []
        buf = self._buf
        while True:
            start = buf.find(b"$")
            if start < 0:
                buf.clear()
                break
            if start:
                del buf[:start]
            if len(buf) < 3:
                break
            if buf[1:2] not in (b"M", b"X") or buf[2:3] not in (b"<", b">", b"!"):
                self.framing_errors += 1
                del buf[:1]
                continue
            frame, used = (self._v1(buf) if buf[1:2] == b"M" else self._v2(buf))
            if used == 0:
                break  # incomplete
            del buf[:used]
            if frame is not None:
                out.append(frame)
        return out

    def _v1(self, buf: bytearray) -> tuple[MspFrame | None, int]:
        if len(buf) < 5:
            return None, 0
        size = buf[3]
        total = 6 + size
        if len(buf) < total:
            return None, 0
        body = bytes(buf[3:5 + size])
        if xor_checksum(body) != buf[5 + size]:
            self.crc_errors += 1
            return None, 1  # resynchronise on the next '$'
        return MspFrame(1, chr(buf[2]), body[1], body[2:]), total

    def _v2(self, buf: bytearray) -> tuple[MspFrame | None, int]:
        if len(buf) < 8:
            return None, 0
        size = int.from_bytes(buf[6:8], "little")
        total = 9 + size
        if len(buf) < total:
            return None, 0
        body = bytes(buf[3:8 + size])
        if crc8_dvb_s2(body) != buf[8 + size]:
            self.crc_errors += 1
            return None, 1
        return MspFrame(2, chr(buf[2]), int.from_bytes(body[1:3], "little"), body[5:]), total


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...
    def read(self, timeout_s: float) -> bytes: ...
    def close(self) -> None: ...


class TcpTransport:
    """MSP over TCP (the SITL's UARTs are TCP servers)."""

    def __init__(self, host: str, port: int, connect_timeout_s: float = 5.0):
        deadline = time.monotonic() + connect_timeout_s
        last: Exception | None = None
        while True:  # the SITL opens its port a moment after start
            try:
                self.sock = socket.create_connection((host, port), timeout=max(0.1, deadline - time.monotonic()))
                break
            except OSError as exc:
                last = exc
                if time.monotonic() >= deadline:
                    raise MspError(f"cannot connect to MSP at tcp://{host}:{port}: {last}") from exc
                time.sleep(0.05)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def write(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise MspError(f"MSP link write failed: {exc}") from exc

    def read(self, timeout_s: float) -> bytes:
        self.sock.settimeout(max(timeout_s, 1e-4))
        try:
            data = self.sock.recv(4096)
        except (socket.timeout, BlockingIOError):
            return b""
        except OSError as exc:
            raise MspError(f"MSP link read failed: {exc}") from exc
        if not data:
            raise MspError("MSP link closed by the flight controller")
        return data

    def close(self) -> None:
        self.sock.close()


class SerialTransport:
    """MSP over a serial port (a real flight controller's USB VCP or UART)."""

    def __init__(self, port: str, baudrate: int = 115200):
        try:
            import serial
        except ImportError as exc:  # pragma: no cover - pyserial is in the `hil` extra
            from .base import BackendUnavailable

            raise BackendUnavailable("MSP over serial needs pyserial (pip install 'lnn_drone[hil]')") from exc
        try:
            self.ser = serial.Serial(port, baudrate, timeout=0)
        except (serial.SerialException, OSError) as exc:
            raise MspError(f"cannot open serial port {port!r}: {exc}") from exc

    def write(self, data: bytes) -> None:
        self.ser.write(data)

    def read(self, timeout_s: float) -> bytes:
        self.ser.timeout = max(timeout_s, 1e-4)
        first = self.ser.read(1)
        return first + self.ser.read(self.ser.in_waiting) if first else b""

    def close(self) -> None:
        self.ser.close()


def open_transport(device: str) -> Transport:
    """``tcp://host:port`` or a serial device path (optionally ``path@baud``)."""
    if not device:
        raise MspError("no MSP device given (tcp://host:port or a serial port such as /dev/ttyACM0)")
    if device.startswith("tcp://"):
        host, _, port = device[6:].rpartition(":")
        if not host or not port.isdigit():
            raise MspError(f"MSP device {device!r}: expected tcp://host:port")
        return TcpTransport(host, int(port))
    path, _, baud = device.partition("@")
    if baud and not baud.isdigit():
        raise MspError(f"MSP device {device!r}: baud rate after '@' must be a number")
    return SerialTransport(path, int(baud) if baud else 115200)


class MspClient:
    """Request/response over one transport, plus fire-and-forget sends whose replies are
    collected later. Replies to commands nobody waits for are kept in ``latest`` (command ->
    (host time, payload)), so telemetry can be requested without blocking the control loop."""

    def __init__(self, transport: Transport, version: int = 1, timeout_s: float = 0.5, retries: int = 2):
        if version not in (1, 2):
            raise MspError(f"MSP version must be 1 or 2, got {version}")
        self.transport = transport
        self.version = version
        self.timeout_s = timeout_s
        self.retries = retries
        self.parser = MspParser()
        self.latest: dict[int, tuple[float, bytes]] = {}
        self.rejected: dict[int, int] = {}
        self.last_rx_t: float | None = None
        self.timeouts = 0

    def close(self) -> None:
        self.transport.close()

    def send(self, command: int, payload: bytes = b"") -> None:
        """Send without waiting (the reply lands in ``latest`` at the next ``drain``)."""
        self.transport.write(encode(command, payload, 2 if command > 254 else self.version))

    def drain(self, timeout_s: float = 0.0) -> list[MspFrame]:
        """Read what has arrived (waiting up to ``timeout_s`` for the first bytes)."""
        frames = self.parser.feed(self.transport.read(timeout_s))
        while True:
            more = self.transport.read(0.0)
            if not more:
                break
            frames += self.parser.feed(more)
        now = time.monotonic()
        for f in frames:
            self.last_rx_t = now
            if f.is_error:
                self.rejected[f.command] = self.rejected.get(f.command, 0) + 1
            else:
                self.latest[f.command] = (now, f.payload)
        return frames

    def request(self, command: int, payload: bytes = b"", timeout_s: float | None = None,
                retries: int | None = None) -> bytes:
        """Send and wait for the reply; retry on timeout; raise on rejection."""
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        retries = self.retries if retries is None else retries
        for _attempt in range(retries + 1):
            self.send(command, payload)
            deadline = time.monotonic() + timeout_s
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.timeouts += 1
                    break
                for f in self.drain(left):
                    if f.command == command:
                        if f.is_error:
                            raise MspError(f"flight controller rejected MSP command {command}")
                        return f.payload
        raise MspError(f"no reply to MSP command {command} after {retries + 1} tries of {timeout_s:.2f} s")
