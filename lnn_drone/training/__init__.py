"""Rollouts, evaluation protocol, imitation learning (DAgger) and reports.

``evaluation`` is torch-free (it runs classical controllers and numpy policies); the training
modules import torch.
"""
