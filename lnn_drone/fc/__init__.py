"""Flight-controller backends behind one interface (:class:`FlightController`).

``create_backend(name, ...)`` returns the backend a bridge node selects by parameter. ``sim``
is a simulated flight controller (PyBullet vehicle, own rate loop and command timeout);
Betaflight (MSP), MAVLink and Crazyflie come with the hardware-in-the-loop work. No rclpy here.
"""
from .base import (BackendUnavailable, FcError, FlightController, ImuReading, LinkStatus, available_backends,
                   create_backend, register_backend)

__all__ = ["BackendUnavailable", "FcError", "FlightController", "ImuReading", "LinkStatus", "available_backends",
           "create_backend", "register_backend"]
