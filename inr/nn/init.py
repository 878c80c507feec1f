"""Initialisers: SIREN (Sitzmann et al. 2020), He/Kaiming for ReLU, and PyTorch's default.

MIP (Ortiz et al.) reuses these: its theta_0 is an independent draw from the target's own scheme.
"""
from __future__ import annotations

import math

import torch

from inr.backends.contracts import MLPSpec

SCHEMES = ("siren", "he", "torch")


def _uniform(shape, bound, generator, dtype):
    return (torch.rand(shape, generator=generator, dtype=dtype) * 2 - 1) * bound


def siren_bounds(fan_in: int, first: bool, w0: float) -> float:
    """SIREN weight bound: U(-1/n, 1/n) for the first layer, U(-sqrt(6/n)/w0, sqrt(6/n)/w0) after."""
    return 1.0 / fan_in if first else math.sqrt(6.0 / fan_in) / w0


def init_layer(spec: MLPSpec, i: int, scheme: str, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight [out, in] and bias [out] of layer i of `spec` under `scheme`.

    - siren: weights as above (w0 = spec.w0_hidden for later layers); biases like PyTorch's
      Linear default U(-1/sqrt(n), 1/sqrt(n)), as SIREN's reference code leaves them.
    - he: Kaiming-normal weights for ReLU (std sqrt(2/n)), zero biases; the output layer
      uses std sqrt(1/n) since no ReLU follows it.
    - torch: nn.Linear's default (Kaiming-uniform with a = sqrt(5)).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown init scheme {scheme!r}; expected one of {SCHEMES}")
    fan_in, fan_out = spec.widths[i], spec.widths[i + 1]
    shape = (fan_out, fan_in)
    if scheme == "siren":
        w = _uniform(shape, siren_bounds(fan_in, i == 0, spec.w0_hidden), generator, dtype)
        b = _uniform((fan_out,), 1.0 / math.sqrt(fan_in), generator, dtype)
    elif scheme == "he":
        gain = 2.0 if i < spec.n_layers - 1 else 1.0
        w = torch.randn(shape, generator=generator, dtype=dtype) * math.sqrt(gain / fan_in)
        b = torch.zeros(fan_out, dtype=dtype)
    else:
        bound = 1.0 / math.sqrt(fan_in)
        w = _uniform(shape, bound, generator, dtype)
        b = _uniform((fan_out,), bound, generator, dtype)
    return w, b
