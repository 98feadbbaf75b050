"""The interface every flight-controller backend implements (DESIGN.md §7, §8).

A backend speaks the FC's protocol; the bridge node speaks ROS. Everything crossing this
interface is in the contract frames and units: body FLU, world ENU, motor commands u ∈ [0, 1]
in contract order, CTBR as (collective thrust fraction, body rates rad/s FLU). Conversions to
NED/FRD and to the FC's motor order happen inside a backend, in one function each.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable, Sequence

from ..state import DroneState


class FcError(RuntimeError):
    """The FC link failed (port gone, protocol error, refused arming…)."""


class BackendUnavailable(FcError):
    """The backend is not implemented or its dependency (pyserial, pymavlink…) is missing."""


@dataclass(frozen=True)
class ImuReading:
    """One IMU sample from the FC: stamp (s, the FC's clock mapped to the host's), gyro rad/s
    and specific force m/s², body FLU."""

    stamp: float
    gyro: tuple[float, float, float]
    accel: tuple[float, float, float]


@dataclass(frozen=True)
class LinkStatus:
    connected: bool
    armed: bool
    last_rx_age_s: float          # time since the FC last said anything
    failsafe: bool                # the FC's own failsafe is active (e.g. command timeout)
    message: str = ""
    extra: tuple = ()             # (key, value) pairs for /diagnostics


class FlightController(abc.ABC):
    """A flight controller link. Not thread-safe: the bridge calls it from one thread."""

    name: str = "?"
    command_modes: frozenset[str] = frozenset()  # subset of {"motors", "ctbr"}

    @abc.abstractmethod
    def open(self) -> None:
        """Connect (serial port, socket, simulator)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Disarm if possible and release the link."""

    @abc.abstractmethod
    def arm(self) -> None:
        """Arm, or raise :class:`FcError` saying why the FC refuses."""

    @abc.abstractmethod
    def disarm(self) -> None: ...

    def send_motors(self, u: Sequence[float]) -> None:
        """Per-rotor normalized thrust, contract order (FR, BR, BL, FL)."""
        raise FcError(f"backend {self.name!r} does not accept motor commands")

    def send_ctbr(self, thrust: float, rates: Sequence[float]) -> None:
        """Collective thrust fraction [0, 1] and body rates (rad/s, FLU)."""
        raise FcError(f"backend {self.name!r} does not accept CTBR commands")

    @abc.abstractmethod
    def poll(self, now: float) -> list[ImuReading]:
        """Service the link up to host time ``now`` (s); return IMU samples received since."""

    def odometry(self) -> DroneState | None:
        """The FC's state estimate in world ENU, if it has one (None for a bare rate FC)."""
        return None

    @abc.abstractmethod
    def status(self, now: float) -> LinkStatus: ...


_BACKENDS: dict[str, Callable[..., FlightController]] = {}


def register_backend(name: str, factory: Callable[..., FlightController]) -> None:
    _BACKENDS[name] = factory


def available_backends() -> list[str]:
    _load_builtin()
    return sorted(_BACKENDS)


def _load_builtin() -> None:
    if "sim" not in _BACKENDS:
        from . import sim_backend  # noqa: F401  (registers itself)
    if "betaflight" not in _BACKENDS:
        from .betaflight import backend  # noqa: F401  (registers itself; needs nothing beyond the core)
    if "mavlink" not in _BACKENDS:
        try:
            from . import mavlink_backend  # noqa: F401  (registers itself)
        except ImportError:
            pass  # pymavlink missing: create_backend says so


def create_backend(name: str, **kwargs) -> FlightController:
    _load_builtin()
    if name not in _BACKENDS:
        raise BackendUnavailable(f"flight-controller backend {name!r} is not available here "
                                 f"(available: {available_backends()}; mavlink needs pymavlink: pip install 'lnn_drone[hil]')")
    return _BACKENDS[name](**kwargs)
