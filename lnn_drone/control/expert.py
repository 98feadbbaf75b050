"""The privileged expert: geometric controller -> rate loop -> mixer, on true state.

It is the classical baseline and the imitation teacher. ``ctbr()`` gives the intermediate
command (for ``ctbr`` policies and real flight controllers), ``motors()`` the full chain.
"""
from __future__ import annotations

import numpy as np

from ..state import DroneState
from ..vehicle import VehicleSpec
from .geometric import CtbrCommand, GeometricController, GeometricGains
from .mixer import Mixer
from .rate import RateController, RateGains


class ExpertController:
    def __init__(self, vehicle: VehicleSpec, gains: GeometricGains | None = None, rate_gains: RateGains | None = None):
        self.vehicle = vehicle
        self.position = GeometricController(vehicle, gains)
        self.rate = RateController(vehicle, rate_gains)
        self.mixer = Mixer(vehicle)

    def reset(self) -> None:
        self.position.reset()
        self.rate.reset()

    def ctbr(self, state: DroneState, goal, dt: float) -> CtbrCommand:
        goal = np.asarray(goal, dtype=float)
        return self.position(state, goal[:3], float(goal[3]) if goal.size > 3 else 0.0, dt)

    def motors_from_ctbr(self, cmd: CtbrCommand, gyro, dt: float = 0.0) -> np.ndarray:
        torque = self.rate(cmd.rates, gyro, dt)
        thrust_n = cmd.thrust * 4.0 * self.vehicle.max_thrust_per_rotor_n
        return self.mixer(thrust_n, torque)

    def motors(self, state: DroneState, goal, dt: float) -> np.ndarray:
        """Per-rotor u ∈ [0,1]^4 for the true state and goal (x, y, z, yaw)."""
        return self.motors_from_ctbr(self.ctbr(state, goal, dt), state.angular_velocity, dt)
