"""MAVLink backend at the message level. No PX4/ArduPilot binary is installable here, so the
other end is a scripted peer speaking real MAVLink 2 over UDP (pymavlink encodes and decodes
both sides): it checks what the backend sends (offboard rule, commands, SET_ATTITUDE_TARGET in
FRD) and answers as PX4 would (COMMAND_ACK, HEARTBEAT, HIGHRES_IMU)."""
import socket
import threading
import time

import pytest

pytest.importorskip("pymavlink")
from pymavlink import mavutil  # noqa: E402

from lnn_drone.fc import FcError, create_backend  # noqa: E402
from lnn_drone.fc.mavlink_backend import ATTITUDE_IGNORE, PX4_MAIN_MODE_OFFBOARD  # noqa: E402

M = mavutil.mavlink


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Px4Peer(threading.Thread):
    """Answers like PX4: heartbeats; OFFBOARD accepted only after setpoints streamed; arming
    accepted (or refused with ``arm_result``)."""

    def __init__(self, port: int, arm_result: int = M.MAV_RESULT_ACCEPTED):
        super().__init__(daemon=True)
        self.conn = mavutil.mavlink_connection(f"udpout:127.0.0.1:{port}", source_system=1, source_component=1)
        self.arm_result = arm_result
        self.stop = threading.Event()
        self.log: list = []
        self.armed = False
        self.mode = 0
        self.setpoints_before_offboard = None

    def run(self) -> None:
        last_hb = 0.0
        while not self.stop.is_set():
            now = time.monotonic()
            if now - last_hb > 0.1:
                last_hb = now
                base = M.MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (M.MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0)
                self.conn.mav.heartbeat_send(M.MAV_TYPE_QUADROTOR, M.MAV_AUTOPILOT_PX4, base, self.mode << 16,
                                             M.MAV_STATE_ACTIVE)
                self.conn.mav.highres_imu_send(int(now * 1e6), 0.1, 0.2, -9.81, 0.01, 0.02, 0.03, 0, 0, 0, 0, 0, 0, 0, 0x3F)
            msg = self.conn.recv_match(blocking=True, timeout=0.02)
            if msg is None or msg.get_type() == "BAD_DATA":
                continue
            self.log.append(msg)
            if msg.get_type() == "COMMAND_LONG":
                if msg.command == M.MAV_CMD_DO_SET_MODE:
                    n = sum(m.get_type() == "SET_ATTITUDE_TARGET" for m in self.log)
                    self.setpoints_before_offboard = n
                    ok = int(msg.param2) == PX4_MAIN_MODE_OFFBOARD and n >= 5  # PX4 needs a stream first
                    if ok:
                        self.mode = PX4_MAIN_MODE_OFFBOARD
                    result = M.MAV_RESULT_ACCEPTED if ok else M.MAV_RESULT_DENIED
                elif msg.command == M.MAV_CMD_COMPONENT_ARM_DISARM:
                    result = self.arm_result
                    if result == M.MAV_RESULT_ACCEPTED:
                        self.armed = msg.param1 == 1.0
                else:
                    result = M.MAV_RESULT_UNSUPPORTED
                self.conn.mav.command_ack_send(msg.command, result)


@pytest.fixture
def link():
    port = _free_udp_port()
    fc = create_backend("mavlink", device=f"udpin:127.0.0.1:{port}", autopilot="px4", connect_timeout_s=10.0)
    yield fc, port
    fc.close()


def _start_peer(port, **kw) -> Px4Peer:
    peer = Px4Peer(port, **kw)
    peer.start()
    return peer


def test_heartbeat_offboard_rule_arming_and_setpoints(link):
    fc, port = link
    peer = _start_peer(port)
    try:
        fc.open()
        assert fc.status(time.monotonic()).connected and fc.target == (1, 1)
        fc.arm()
        assert peer.armed and peer.mode == PX4_MAIN_MODE_OFFBOARD
        assert peer.setpoints_before_offboard >= 5  # streamed before asking for offboard
        fc.send_ctbr(0.4, (1.0, 2.0, 3.0))  # FLU body rates
        deadline = time.monotonic() + 5.0
        sp = None
        while time.monotonic() < deadline and sp is None:
            sp = next((m for m in reversed(peer.log) if m.get_type() == "SET_ATTITUDE_TARGET" and m.thrust > 0.3), None)
            fc.poll(time.monotonic())
            time.sleep(0.01)
        assert sp is not None
        assert sp.type_mask == ATTITUDE_IGNORE
        assert (sp.body_roll_rate, sp.body_pitch_rate, sp.body_yaw_rate) == pytest.approx((1.0, -2.0, -3.0))  # FRD
        assert sp.thrust == pytest.approx(0.4)
        imu = []
        deadline = time.monotonic() + 5.0
        while not imu and time.monotonic() < deadline:
            imu = fc.poll(time.monotonic())
            time.sleep(0.01)
        assert imu[-1].accel == pytest.approx((0.1, -0.2, 9.81))  # FLU specific force, +g up at rest
        assert imu[-1].gyro == pytest.approx((0.01, -0.02, -0.03))
        fc.disarm()
        assert not peer.armed
    finally:
        peer.stop.set()
        peer.join(2.0)


def test_refused_arming_says_why(link):
    fc, port = link
    peer = _start_peer(port, arm_result=M.MAV_RESULT_TEMPORARILY_REJECTED)
    try:
        fc.open()
        with pytest.raises(FcError, match="TEMPORARILY_REJECTED"):
            fc.arm()
    finally:
        peer.stop.set()
        peer.join(2.0)


def test_no_autopilot_is_a_clear_error():
    fc = create_backend("mavlink", device=f"udpin:127.0.0.1:{_free_udp_port()}", connect_timeout_s=0.5)
    with pytest.raises(FcError, match="no HEARTBEAT"):
        fc.open()
    fc.close()
    with pytest.raises(FcError, match="autopilot must be"):
        create_backend("mavlink", device="udpin:127.0.0.1:1", autopilot="inav")
