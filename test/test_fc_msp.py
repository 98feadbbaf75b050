"""MSP framing, checksums and the Betaflight RC mapping (pure; no firmware needed)."""
import math
import struct

import numpy as np
import pytest

from lnn_drone.fc import msp
from lnn_drone.fc.betaflight.rc import (RATES_ACTUAL, RATES_BETAFLIGHT, RATES_KISS, AxisRates, RcMapper, RcTuning,
                                        stick_to_rate_dps)
from lnn_drone.fc.base import FcError
from lnn_drone.frames import GRAVITY, axis_angle_to_quat
from lnn_drone.sim.sitl_link import (MOTOR_FORMAT, SITL_TO_CONTRACT, STATE_FORMAT, STATE_SIZE, fdm_packet,
                                     parse_motor_packet)


def test_crc8_dvb_s2_check_value():
    assert msp.crc8_dvb_s2(b"123456789") == 0xBC  # the catalogued check value of CRC-8/DVB-S2


def test_v1_frame_layout():
    f = msp.encode_v1(msp.MSP_API_VERSION)
    assert f == b"$M<\x00\x01\x01"  # size 0, command 1, xor(0, 1) = 1
    f = msp.encode_v1(200, b"\x01\x02")
    assert f[:5] == b"$M<\x02\xc8" and f[-1] == (2 ^ 200 ^ 1 ^ 2)


def test_v2_frame_layout():
    f = msp.encode_v2(0x1234, b"\xaa")
    assert f[:3] == b"$X<" and f[3] == 0 and f[4:6] == b"\x34\x12" and f[6:8] == b"\x01\x00" and f[8] == 0xAA
    assert f[9] == msp.crc8_dvb_s2(f[3:9])


@pytest.mark.parametrize("version", [1, 2])
def test_round_trip_split_and_resync(version):
    frames = [msp.encode(c, bytes(range(n)), version, ">") for c, n in ((1, 3), (102, 18), (150, 0))]
    stream = b"\x00garbage$" + b"".join(frames)
    p = msp.MspParser()
    got = []
    for i in range(0, len(stream), 5):  # arbitrary TCP segmentation
        got += p.feed(stream[i:i + 5])
    assert [(f.version, f.direction, f.command, f.payload) for f in got] == [
        (version, ">", 1, bytes(range(3))), (version, ">", 102, bytes(range(18))), (version, ">", 150, b"")]


@pytest.mark.parametrize("version", [1, 2])
def test_bad_checksum_drops_only_that_frame(version):
    good = msp.encode(1, b"\x00\x01\x2f", version, ">")
    bad = bytearray(msp.encode(2, b"BTFL", version, ">"))
    bad[-1] ^= 0xFF
    p = msp.MspParser()
    got = p.feed(bytes(bad) + good)
    assert [f.command for f in got] == [1]
    assert p.crc_errors == 1


def test_error_direction_is_reported():
    f = msp.MspParser().feed(msp.encode_v1(35, b"", "!"))[0]
    assert f.is_error and f.command == 35


def test_bad_input_is_refused_clearly():
    with pytest.raises(msp.MspError, match="v1 command"):
        msp.encode_v1(300)
    with pytest.raises(msp.MspError, match="payload"):
        msp.encode_v1(1, bytes(256))
    with pytest.raises(msp.MspError, match="tcp://host:port"):
        msp.open_transport("tcp://nohostport")
    with pytest.raises(msp.MspError, match="no MSP device"):
        msp.open_transport("")


class _Loopback:
    """A transport that answers like a flight controller would, after ``delay_reads`` empty reads."""

    def __init__(self, replies: dict, drop_first: int = 0):
        self.replies, self.drop_first, self.out, self.sent = replies, drop_first, b"", []

    def write(self, data):
        cmd = msp.MspParser().feed(data)[0].command
        self.sent.append(cmd)
        if self.drop_first:
            self.drop_first -= 1
            return
        if cmd in self.replies:
            self.out += msp.encode_v1(cmd, self.replies[cmd], ">")

    def read(self, timeout_s):
        data, self.out = self.out, b""
        return data

    def close(self):
        pass


def test_client_retries_after_a_lost_reply_and_gives_up_with_a_clear_error():
    t = _Loopback({1: b"\x00\x01\x2f"}, drop_first=1)
    c = msp.MspClient(t, timeout_s=0.01, retries=2)
    assert c.request(1) == b"\x00\x01\x2f"
    assert t.sent == [1, 1] and c.timeouts == 1
    with pytest.raises(msp.MspError, match="no reply to MSP command 2 after 3 tries"):
        c.request(2)


# ---------------------------------------------------------------------------- RC mapping
def test_linear_actual_rates_invert_exactly():
    payload = RcTuning.linear_payload(600.0)
    # what MSP_RC_TUNING reports after MSP_SET_RC_TUNING with this payload
    tuning = RcTuning.from_msp(payload[:16] + payload[16:22] + payload[22:])
    assert tuning.rates_type == RATES_ACTUAL and tuning.roll.rc_rate == tuning.roll.rate == 60
    m = RcMapper(tuning)
    assert m.max_rate_rad_s == pytest.approx((math.radians(600),) * 3)
    roll, pitch, thr, yaw = m.channels(0.25, (math.radians(300), -math.radians(150), math.radians(60)))
    assert (roll, pitch, yaw) == (1750, 1375, 1450)  # yaw stick right = clockwise = -r (FLU)
    assert thr == 1500  # thrust fraction 0.25 -> rotor speed 0.5 -> throttle 50 %


def test_betaflight_rates_round_trip_and_saturate():
    axis = AxisRates(rc_rate=100, rate=70, expo=20, limit_dps=1998)
    m = RcMapper(RcTuning(RATES_BETAFLIGHT, axis, axis, axis, 50, 0, 50))
    for rate in (-650.0, -50.0, 0.0, 3.0, 200.0, 600.0):  # full stick = 666 deg/s
        x = m.stick_for_rate(axis, rate)
        assert stick_to_rate_dps(axis, RATES_BETAFLIGHT, x) == pytest.approx(rate, abs=1e-3)
    top = stick_to_rate_dps(axis, RATES_BETAFLIGHT, 1.0)
    assert m.stick_for_rate(axis, top + 500) == 1.0


def test_unsupported_curves_are_refused():
    axis = AxisRates(7, 67, 0, 1998)
    with pytest.raises(FcError, match="KISS"):
        RcMapper(RcTuning(RATES_KISS, axis, axis, axis, 50, 0, 50))
    with pytest.raises(FcError, match="throttle curve"):
        RcMapper(RcTuning(RATES_ACTUAL, axis, axis, axis, 50, 30, 50))


# ---------------------------------------------------------------------------- SITL packets
def test_state_packet_frames():
    """Level, still, nose north: FRD specific force (0, 0, -g), identity NED attitude."""
    q_north = axis_angle_to_quat((0, 0, 1), math.pi / 2)  # ENU yaw 90 deg = facing north
    pkt = fdm_packet(1.5, (0.1, 0.2, 0.3), (0.0, 0.0, GRAVITY), q_north, (1.0, 2.0, 3.0), (0.0, 0.0, 10.0))
    assert len(pkt) == STATE_SIZE == 144
    v = struct.unpack(STATE_FORMAT, pkt)
    assert v[0] == 1.5
    assert v[1:4] == pytest.approx((0.1, -0.2, -0.3))          # gyro FRD
    assert v[4:7] == pytest.approx((0.0, 0.0, -GRAVITY))       # specific force FRD
    assert np.abs(v[7:11]) == pytest.approx((1, 0, 0, 0), abs=1e-12)  # (w, x, y, z) NED
    assert v[11:14] == pytest.approx((1.0, 2.0, 3.0))           # velocity ENU (virtual GPS)
    assert v[16] == pytest.approx(10.0) and v[17] < 101325.0   # altitude; pressure drops with it


def test_motor_packet_order():
    raw = struct.pack(MOTOR_FORMAT, 0.1, 0.2, 0.3, 0.4)
    out = parse_motor_packet(raw)
    assert out == pytest.approx(tuple((0.1, 0.2, 0.3, 0.4)[k] for k in SITL_TO_CONTRACT))
    with pytest.raises(ValueError, match="16 bytes"):
        parse_motor_packet(raw[:8])


def test_betaflight_backend_needs_a_device():
    from lnn_drone.fc import create_backend

    with pytest.raises(FcError, match="no device"):
        create_backend("betaflight")


def test_fly_hil_retries_a_fresh_sitl_when_the_bridge_got_no_msp_reply_or_the_firmware_never_armed():
    """The retry decision of ``fly --launch hil_betaflight`` reads the bridge's own start-up
    error, so it is fed the message a real client raises against a port that never answers."""
    import socket

    from lnn_drone.ros.fly_hil import _firmware_hang
    from lnn_drone.ros.hil_sim_node import NOT_ARMED_EXIT

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)  # accepts the connection (the kernel's backlog) but never replies
        client = msp.MspClient(msp.open_transport(f"tcp://127.0.0.1:{server.getsockname()[1]}"), timeout_s=0.05,
                               retries=0)
        with pytest.raises(msp.MspError) as exc:
            client.request(msp.MSP_API_VERSION)
        client.close()
    bridge_log = f"fc_bridge_node: cannot start: {exc.value}"
    assert _firmware_hang({"fc_bridge": 1, "hil_sim": -2}, bridge_log) == "the firmware never answered MSP"
    assert _firmware_hang({"fc_bridge": -2, "hil_sim": NOT_ARMED_EXIT}, "") == "the firmware did not arm"
    assert _firmware_hang({"fc_bridge": 0, "hil_sim": 0}, bridge_log) is None  # it did answer in the end
    assert _firmware_hang({"fc_bridge": 1, "hil_sim": -2}, "fc_bridge_node: cannot start: bad device") is None
