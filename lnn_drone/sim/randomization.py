"""Domain randomization: one seeded draw of everything that differs between vehicles and days.

A draw is a plain :class:`EpisodeVariation` so it can be logged, replayed and reported.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import RandomizationConfig
from ..vehicle import VehicleSpec


@dataclass
class EpisodeVariation:
    vehicle: VehicleSpec
    kf_scale: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    km_scale: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    motor_tau_up_s: float | None = None
    motor_tau_down_s: float | None = None
    action_latency_s: float | None = None
    imu_noise_scale: float = 1.0
    constant_push_n: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gust_std_mps: float | None = None
    wind_mps: tuple[float, float, float] | None = None   # steady wind, world ENU; None: the sim config's

    def summary(self) -> dict:
        v = self.vehicle
        return {"mass_kg": v.mass_kg, "thrust_to_weight": v.thrust_to_weight, "inertia_kg_m2": list(v.inertia_kg_m2),
                "motor_tau_up_s": self.motor_tau_up_s, "action_latency_s": self.action_latency_s,
                "imu_noise_scale": self.imu_noise_scale, "constant_push_n": list(self.constant_push_n),
                "rotor_drag_n_per_rpm_mps": list(v.rotor_drag_n_per_rpm_mps),
                "wind_mps": None if self.wind_mps is None else list(self.wind_mps)}


def sample_variation(nominal: VehicleSpec, cfg: RandomizationConfig, rng: np.random.Generator) -> EpisodeVariation:
    """Draw one variation. With ``cfg.enabled`` false, returns the nominal vehicle unchanged."""
    if not cfg.enabled:
        return EpisodeVariation(nominal)
    u = rng.uniform
    mass = nominal.mass_kg * u(1 - cfg.mass_frac, 1 + cfg.mass_frac)
    inertia = tuple(i * u(1 - cfg.inertia_frac, 1 + cfg.inertia_frac) for i in nominal.inertia_kg_m2)
    if cfg.thrust_to_weight_sampling == "hover_uniform":
        tw = 1.0 / u(1.0 / cfg.thrust_to_weight[1], 1.0 / cfg.thrust_to_weight[0])
    else:
        tw = u(*cfg.thrust_to_weight)
    vehicle = nominal.replace(mass_kg=mass, inertia_kg_m2=inertia, thrust_to_weight=tw)
    kf = tuple(float(u(1 - cfg.kf_frac, 1 + cfg.kf_frac)) for _ in range(4))
    km = tuple(float(u(1 - cfg.km_frac, 1 + cfg.km_frac)) for _ in range(4))
    tau = u(*cfg.motor_tau_s)
    tau_down = tau * u(1.0, 1.5)
    latency = u(*cfg.action_latency_s)
    noise = u(*cfg.imu_noise_scale)
    push = (0.0, 0.0, 0.0)
    if rng.random() < cfg.push_prob:
        mag = u(0.0, cfg.push_frac_of_weight) * vehicle.weight_n
        az = u(0, 2 * math.pi)
        push = (mag * math.cos(az), mag * math.sin(az), 0.0)
    gust = u(*cfg.gust_std_mps)
    # drawn last and only when asked for, so the draws above stay those of earlier configurations
    if list(cfg.rotor_drag_scale) != [1.0, 1.0]:
        k = u(*cfg.rotor_drag_scale)
        vehicle = vehicle.replace(rotor_drag_n_per_rpm_mps=tuple(d * k for d in nominal.rotor_drag_n_per_rpm_mps))
    wind = None
    if cfg.wind_prob > 0 and rng.random() < cfg.wind_prob:
        speed, az = u(*cfg.wind_speed_mps), u(0, 2 * math.pi)
        wind = (speed * math.cos(az), speed * math.sin(az), 0.0)
    return EpisodeVariation(vehicle, kf, km, tau, tau_down, latency, noise, push, gust, wind)


def apply_variation(sim, var: EpisodeVariation) -> None:
    """Configure a :class:`~lnn_drone.sim.quadsim.QuadSim` for one episode (no world reload)."""
    sim.set_vehicle(var.vehicle, var.kf_scale, var.km_scale)
    if var.motor_tau_up_s is not None:
        sim.set_motor_time_constants(var.motor_tau_up_s, var.motor_tau_down_s or var.motor_tau_up_s)
    sim.action_latency_s = sim.config.action_latency_s if var.action_latency_s is None else var.action_latency_s
    sim.imu_noise_scale = var.imu_noise_scale
    sim.set_constant_push(var.constant_push_n)
    sim.gust_std_mps = sim.config.wind.gust_std_mps if var.gust_std_mps is None else var.gust_std_mps
    sim.set_wind(sim.config.wind.constant_mps if var.wind_mps is None else var.wind_mps)
