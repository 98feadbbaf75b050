"""PyBullet quadrotor simulator: world, vehicle physics, sensors, scenes and gymnasium envs.

Importing this package registers ``LnnDrone/Hover-v0`` and ``LnnDrone/VisualTarget-v0``.
"""
import gymnasium as _gym

from .quadsim import ImuSample, QuadSim
from .state import DroneState

for _id, _entry in (("LnnDrone/Hover-v0", "lnn_drone.sim.envs:HoverEnv"),
                    ("LnnDrone/VisualTarget-v0", "lnn_drone.sim.envs:VisualTargetEnv")):
    if _id not in _gym.registry:
        _gym.register(id=_id, entry_point=_entry)

__all__ = ["DroneState", "ImuSample", "QuadSim"]
