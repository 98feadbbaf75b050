"""Flight-controller backends behind one interface (:class:`FlightController`).

``create_backend(name, ...)`` returns the backend a bridge node selects by parameter. ``sim``
is a simulated flight controller (PyBullet vehicle, own rate loop and command timeout);
``betaflight`` speaks MSP (``msp.py``, ``betaflight/``: serial or the SITL's TCP), ``mavlink``
PX4/ArduPilot via pymavlink. No rclpy here.
"""
from .base import (BackendUnavailable, FcError, FlightController, ImuReading, LinkStatus, available_backends,
                   create_backend, register_backend)

__all__ = ["BackendUnavailable", "FcError", "FlightController", "ImuReading", "LinkStatus", "available_backends",
           "create_backend", "register_backend"]
