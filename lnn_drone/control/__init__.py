"""Classical control on true state: geometric (SE(3)) position/attitude control producing CTBR,
a body-rate loop and a mixer producing per-rotor commands. Expert teacher and baseline."""
from .geometric import CtbrCommand, GeometricController, GeometricGains
from .mixer import Mixer
from .rate import RateController, RateGains
from .expert import ExpertController

__all__ = ["CtbrCommand", "GeometricController", "GeometricGains", "Mixer", "RateController", "RateGains",
           "ExpertController"]
