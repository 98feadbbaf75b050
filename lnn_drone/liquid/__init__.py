"""Liquid neural networks: NCP wirings (numpy), CfC and LTC cells and a sequence wrapper (torch).

This package is imported on the torch-free deployment path (for :mod:`.wiring`), so it must not
import torch itself: the torch classes are loaded lazily on first attribute access.
"""
from __future__ import annotations

from .wiring import FullyConnected, NCP, Wiring, WiringError, fully_connected_wiring, ncp_wiring

__all__ = [
    "Wiring",
    "WiringError",
    "ncp_wiring",
    "fully_connected_wiring",
    "NCP",
    "FullyConnected",
    "CfCCell",
    "LTCCell",
    "LiquidRNN",
    "SequenceOutput",
]

_LAZY = {
    "CfCCell": ".cfc",
    "LTCCell": ".ltc",
    "LiquidRNN": ".rnn",
    "SequenceOutput": ".rnn",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
