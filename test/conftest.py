"""Fixtures shared by test modules."""
from __future__ import annotations

import pytest


@pytest.fixture
def fly_visual_expert():
    """``fly(vehicle, record)``: the visual expert flies four seeded episodes (seeds 100-103, at most
    240 steps each, real physics and IMU noise); ``record(obs, env)`` sees every step. The IMU-integrated
    observations are judged against the truth along these flights."""
    from lnn_drone.training.vision import VisualEvalSettings, VisualExpert, make_visual_env

    def fly(vehicle: str, record) -> None:
        env = make_visual_env(VisualEvalSettings(vehicle=vehicle))
        try:
            expert = VisualExpert()
            for seed in range(100, 104):
                obs, _ = env.reset(seed=seed)
                expert.reset([env])
                for _ in range(240):
                    obs, _, terminated, truncated, _ = env.step(expert.act([obs], [env])[0])
                    record(obs, env)
                    if terminated or truncated:
                        break
        finally:
            env.close()

    return fly


@pytest.fixture
def random_ctbr_model(tmp_path):
    """``make(inputs)``: a small ctbr policy over the vector ``inputs`` (InputSpecs), its weights
    perturbed so every input moves the command, saved and loaded as a model file: the plumbing
    tests of the derived inputs compare two ways of feeding the same model."""
    import torch

    from lnn_drone.policy.config import NetworkConfig
    from lnn_drone.policy.model_file import load_model, save_network
    from lnn_drone.policy.network import build_policy_network
    from lnn_drone.policy.spec import ActionSpec

    def make(inputs: tuple):
        net = build_policy_network(NetworkConfig(inputs=tuple(inputs), action=ActionSpec("ctbr", max_rate=6.0),
                                                 vector_encoder_units=8), seed=0)
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            for p in net.parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=g))
        return load_model(save_network(tmp_path / "m.safetensors", net.eval()))

    return make
