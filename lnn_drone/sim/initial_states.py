"""Initial-state tiers of the evaluation protocol (DESIGN.md §6), relative to the target.

Position uniform in a ball, velocity uniform in a ball, attitude a rotation about a uniformly
random axis by an angle uniform in [0, θmax], body rates uniform in a ball.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..frames import axis_angle_to_quat
from ..state import DroneState


@dataclass(frozen=True)
class Tier:
    name: str
    max_angle_deg: float
    position_radius_m: float = 1.0
    velocity_radius_mps: float = 1.0
    rate_radius_rad_s: float = 1.0


TIERS: dict[str, Tier] = {
    "A30": Tier("A30", 30.0),
    "A45": Tier("A45", 45.0),
    "A90": Tier("A90", 90.0, 1.0, 2.0, 2.0),
}


def _in_ball(rng: np.random.Generator, radius: float) -> np.ndarray:
    d = rng.standard_normal(3)
    d /= np.linalg.norm(d)
    return d * radius * rng.random() ** (1.0 / 3.0)


def get_tier(name: str) -> Tier:
    try:
        return TIERS[name.upper()]
    except KeyError:
        raise ValueError(f"unknown tier {name!r}; known tiers: {sorted(TIERS)}") from None


def sample_initial_state(rng: np.random.Generator, tier: Tier | str, goal_position) -> DroneState:
    tier = get_tier(tier) if isinstance(tier, str) else tier
    pos = np.asarray(goal_position, dtype=float) + _in_ball(rng, tier.position_radius_m)
    vel = _in_ball(rng, tier.velocity_radius_mps)
    axis = rng.standard_normal(3)
    angle = np.radians(rng.uniform(0.0, tier.max_angle_deg))
    quat = axis_angle_to_quat(axis, angle)
    rates = _in_ball(rng, tier.rate_radius_rad_s)
    return DroneState(pos, quat, vel, rates)
