"""Learned policies as evaluation controllers (see :class:`~lnn_drone.training.evaluation.Controller`).

``PolicyAgent`` flies a model file with the deployment runtime (numpy, one :class:`Policy` per
env): what is evaluated is what flies on the drone. ``TorchPolicyAgent`` runs a training-time
torch network batched over the envs (DAgger rollouts, quick checks during training).
"""
from __future__ import annotations

import os

import numpy as np

from ..policy import drone_features  # noqa: F401  (registers the drone inputs)
from ..policy.features import get_feature


def stack_observations(observations: list[dict]) -> dict[str, np.ndarray]:
    """List of per-env observation dicts -> dict of (B, ...) arrays."""
    keys = observations[0].keys()
    return {k: np.stack([o[k] for o in observations]) for k in keys}


def batch_inputs(names: list[str], observations: list[dict]) -> dict[str, np.ndarray]:
    """Model inputs for a batch of observations, computed with the deployment extractors."""
    batch = stack_observations(observations)
    out = {}
    for n in names:
        v = np.asarray(get_feature(n).fn(batch))
        # camera frames stay uint8 (4x less memory in a dataset; the encoder scales them)
        out[n] = v if v.dtype == np.uint8 else v.astype(np.float32)
    return out


class PolicyAgent:
    """A model file flown by the numpy runtime, one recurrent state per env.

    ``vehicle_matching``: on an env whose vehicle differs from the model's training vehicle, fly
    it through :mod:`lnn_drone.policy.vehicle_matching` (as the policy node does, told its
    vehicle) where the model allows it; :attr:`vehicle_matching_status` says what was done."""

    def __init__(self, path: str | os.PathLike, vehicle_matching: bool = True):
        from ..policy.model_file import load_model

        self.model = load_model(path)
        self.path = str(path)
        self.name = os.path.basename(self.path)
        self.vehicle_matching = bool(vehicle_matching)
        self.vehicle_matching_status = "off" if not vehicle_matching else "not needed"
        self._policies: list = []

    @classmethod
    def from_file(cls, path: str | os.PathLike, vehicle_matching: bool = True) -> "PolicyAgent":
        return cls(path, vehicle_matching)

    def matching_for(self, vehicle):
        """``(matching or None, status)`` for flying this model on ``vehicle`` (a VehicleSpec)."""
        from ..policy.vehicle_matching import VehicleMatchingError, matching_for_model

        if not self.vehicle_matching:
            return None, "off"
        try:
            m = matching_for_model(self.model, vehicle)
        except VehicleMatchingError as exc:
            return None, f"not applicable: {exc}"
        return m, ("not needed" if m is None else f"on ({m.description})")

    @property
    def action_mode(self) -> str:
        return self.model.config.action.mode

    @property
    def control_hz(self) -> float:
        return 1.0 / self.model.config.control_period

    def reset(self, envs: list) -> None:
        from ..policy.policy import Policy

        available = set(envs[0].unwrapped.observation_space.spaces)
        while len(self._policies) < len(envs):
            self._policies.append(Policy(self.model, available_observations=available))
        for p, env in zip(self._policies, envs):
            p.vehicle_matching, self.vehicle_matching_status = self.matching_for(env.unwrapped.nominal_vehicle)
        for p in self._policies:
            p.reset()
        self._dt = envs[0].unwrapped.control_dt

    def act(self, observations: list[dict], envs: list) -> np.ndarray:
        return np.stack([p.step(o, self._dt) for p, o in zip(self._policies, observations)])


class TorchPolicyAgent:
    """A torch :class:`~lnn_drone.policy.network.PolicyNetwork`, batched over envs, no grad."""

    def __init__(self, network, name: str = "student"):
        import torch

        self.torch = torch
        self.net = network
        self.name = name
        self.input_names = [s.name for s in network.config.inputs]

    def reset(self, envs: list) -> None:
        self._state = self.net.initial_state(len(envs))
        self._dt = self.torch.full((len(envs),), envs[0].unwrapped.control_dt)

    def act(self, observations: list[dict], envs: list) -> np.ndarray:
        torch = self.torch
        inputs = {k: torch.from_numpy(v) for k, v in batch_inputs(self.input_names, observations).items()}
        b = len(observations)
        with torch.no_grad():
            action, self._state = self.net.step(inputs, self._state[:b], self._dt[:b])
        return action.numpy().astype(np.float64)
