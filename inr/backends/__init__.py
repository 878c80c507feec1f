"""Dispatch of the hot ops to a backend.

"torch" is the reference and runs anywhere. Faster backends ("cuda", "tcnn", CPU kernels) register
here as they land; `auto` picks the fastest one that works for the inputs at hand.
"""
from __future__ import annotations

import torch

from inr.nn.mlp import MLPSpec, Params, mlp_forward

BACKENDS = ("auto", "torch")
_current = "auto"


def set_backend(name: str) -> None:
    """Select the backend for the hot ops (`auto` or `torch` today)."""
    global _current
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    _current = name


def get_backend() -> str:
    return _current


def mlp_op(x: torch.Tensor, params: Params, spec: MLPSpec) -> torch.Tensor:
    """The field MLP, on the selected backend."""
    return mlp_forward(x, params, spec)
