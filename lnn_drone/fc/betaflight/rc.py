"""CTBR -> Betaflight RC channels, using the rate curves read from the flight controller.

Betaflight flies rate ("acro") mode from sticks: each stick deflection x in [-1, 1] maps to a
body-rate setpoint through the rate curve of the active rate profile (MSP_RC_TUNING), and the
throttle stick maps to the mixer's throttle through the throttle curve. We invert both exactly
(the curves are monotonic; bisection to 1e-6), so a CTBR command means the same to the firmware
as to our simulated rate loop. Sign conventions (proven by step tests against the SITL):
roll stick right = +p (FLU), pitch stick forward = nose down = +q (FLU), yaw stick right =
clockwise seen from above = -r (FLU).

Collective thrust: the firmware's motor output o is ~ rotor speed (thrust ~ o^2). Measured on
the 4.6 SITL with a linear throttle curve, o = max(idle, throttle) for an untorqued vehicle
(1000/1200/1500/1800/2000 µs -> 0.055/0.203/0.501/0.799/0.999), so a thrust fraction c needs
throttle = sqrt(c); thrust below idle^2 (0.3 %) is out of reach, as on the real vehicle.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from ..base import FcError

RATES_BETAFLIGHT, RATES_RACEFLIGHT, RATES_KISS, RATES_ACTUAL, RATES_QUICK = range(5)
RATES_NAMES = ("BETAFLIGHT", "RACEFLIGHT", "KISS", "ACTUAL", "QUICK")
RC_MID, RC_HALF = 1500.0, 500.0
THROTTLE_MIN, THROTTLE_MAX = 1000.0, 2000.0


@dataclass(frozen=True)
class AxisRates:
    rc_rate: int     # BETAFLIGHT: rcRate*100; ACTUAL: centre sensitivity / 10 (deg/s)
    rate: int        # BETAFLIGHT: super rate*100; ACTUAL: max rate / 10 (deg/s)
    expo: int        # *100
    limit_dps: int   # rate_limit (deg/s)


@dataclass(frozen=True)
class RcTuning:
    """The rate profile as MSP_RC_TUNING reports it (API 1.43+)."""

    rates_type: int
    roll: AxisRates
    pitch: AxisRates
    yaw: AxisRates
    thr_mid: int
    thr_expo: int
    thr_hover: int

    @classmethod
    def from_msp(cls, p: bytes) -> "RcTuning":
        if len(p) < 23:
            raise FcError(f"MSP_RC_TUNING reply too short ({len(p)} bytes): Betaflight >= 4.2 (API 1.43) needed")
        rc_roll, expo_roll, r_roll, r_pitch, r_yaw = p[0], p[1], p[2], p[3], p[4]
        thr_mid, thr_expo = p[6], p[7]
        expo_yaw, rc_yaw, rc_pitch, expo_pitch = p[10], p[11], p[12], p[13]
        lim_r, lim_p, lim_y = struct.unpack_from("<3H", p, 16)
        rates_type = p[22]
        thr_hover = p[23] if len(p) > 23 else thr_mid
        return cls(rates_type, AxisRates(rc_roll, r_roll, expo_roll, lim_r), AxisRates(rc_pitch, r_pitch, expo_pitch, lim_p),
                   AxisRates(rc_yaw, r_yaw, expo_yaw, lim_y), thr_mid, thr_expo, thr_hover)

    @staticmethod
    def linear_payload(max_rate_dps: float, limit_dps: int = 1998) -> bytes:
        """MSP_SET_RC_TUNING for ACTUAL rates with no expo and centre = max (a straight line:
        stick x -> x * max_rate on every axis) and a linear throttle curve."""
        r = int(round(max_rate_dps / 10.0))
        if not 1 <= r <= 200:
            raise FcError(f"linear rate must be 10..2000 deg/s, got {max_rate_dps}")
        return bytes([r, 0, r, r, r, 0, 50, 0, 0, 0, 0, r, r, 0, 0, 100]) + struct.pack(
            "<3H", limit_dps, limit_dps, limit_dps) + bytes([RATES_ACTUAL, 50])


def stick_to_rate_dps(axis: AxisRates, rates_type: int, x: float) -> float:
    """Betaflight's rate curve (deg/s) for stick deflection x in [-1, 1]."""
    ax = abs(x)
    if rates_type == RATES_ACTUAL:
        expof = axis.expo / 100.0
        expof = ax * (x ** 5 * expof + x * (1 - expof))
        centre = axis.rc_rate * 10.0
        stick = max(0.0, axis.rate * 10.0 - centre)
        rate = x * centre + stick * expof
    elif rates_type == RATES_BETAFLIGHT:
        if axis.expo:
            e = axis.expo / 100.0
            x = x * ax ** 3 * e + x * (1 - e)
        rc_rate = axis.rc_rate / 100.0
        if rc_rate > 2.0:
            rc_rate += 14.54 * (rc_rate - 2.0)
        rate = 200.0 * rc_rate * x
        if axis.rate:
            rate /= min(1.0, max(0.01, 1.0 - ax * axis.rate / 100.0))
    else:
        raise FcError(f"rates type {RATES_NAMES[rates_type] if rates_type < 5 else rates_type} is not supported; "
                      "use ACTUAL or BETAFLIGHT rates (or let the bridge set linear rates)")
    return max(-axis.limit_dps, min(axis.limit_dps, rate))


class RcMapper:
    """CTBR (thrust fraction, body rates rad/s FLU) -> RC channel values (µs)."""

    def __init__(self, tuning: RcTuning):
        if tuning.thr_expo != 0 or tuning.thr_mid != tuning.thr_hover:
            raise FcError(f"throttle curve must be linear (thr_expo 0, thr_mid = thr_hover), got expo "
                          f"{tuning.thr_expo}, mid {tuning.thr_mid}, hover {tuning.thr_hover}")
        for a in (tuning.roll, tuning.pitch, tuning.yaw):
            stick_to_rate_dps(a, tuning.rates_type, 1.0)  # raises for unsupported types
        self.tuning = tuning
        self.max_rate_rad_s = tuple(math.radians(stick_to_rate_dps(a, tuning.rates_type, 1.0))
                                    for a in (tuning.roll, tuning.pitch, tuning.yaw))

    def stick_for_rate(self, axis: AxisRates, rate_dps: float) -> float:
        """Inverse of the rate curve (bisection; saturates at full deflection)."""
        lo, hi = -1.0, 1.0
        if rate_dps >= stick_to_rate_dps(axis, self.tuning.rates_type, hi):
            return hi
        if rate_dps <= stick_to_rate_dps(axis, self.tuning.rates_type, lo):
            return lo
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            if stick_to_rate_dps(axis, self.tuning.rates_type, mid) < rate_dps:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    def throttle_for_thrust(self, thrust_fraction: float) -> float:
        c = min(1.0, max(0.0, thrust_fraction)) if math.isfinite(thrust_fraction) else 0.0
        return math.sqrt(c)

    def channels(self, thrust_fraction: float, rates_flu) -> tuple[int, int, int, int]:
        """(roll, pitch, throttle, yaw) in µs - Betaflight's default AETR channel map."""
        p, q, r = (math.degrees(v) if math.isfinite(v) else 0.0 for v in rates_flu)
        t = self.tuning
        roll = RC_MID + RC_HALF * self.stick_for_rate(t.roll, p)
        pitch = RC_MID + RC_HALF * self.stick_for_rate(t.pitch, q)
        yaw = RC_MID + RC_HALF * self.stick_for_rate(t.yaw, -r)
        thr = THROTTLE_MIN + (THROTTLE_MAX - THROTTLE_MIN) * self.throttle_for_thrust(thrust_fraction)
        return int(round(roll)), int(round(pitch)), int(round(thr)), int(round(yaw))
