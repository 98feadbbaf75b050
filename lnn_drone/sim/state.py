"""Re-export: the drone state is a shared contract (lnn_drone.state)."""
from ..state import DroneState

__all__ = ["DroneState"]
