"""Uniform scalar quantisation of a tensor at 4-16 bits with one step size per tensor.

Symbols are integers in [-(2^(b-1) - 1), 2^(b-1) - 1]; the step covers the tensor's largest
magnitude, and is rounded to float32 first because the bitstream stores it as float32 (so the
encoder measures exactly what the decoder will rebuild). `fake_quantise` is the straight-through
version used for quantisation-aware training: the forward pass sees the quantised values, the
gradient passes through unchanged.
"""
from __future__ import annotations

import numpy as np
import torch

BITS = range(4, 17)


def check_bits(bits: int) -> int:
    if bits not in BITS:
        raise ValueError(f"bit depth must be between {BITS.start} and {BITS.stop - 1}, got {bits}")
    return bits


def levels(bits: int) -> int:
    """Largest symbol magnitude at `bits` bits (symmetric, so 0 is exact)."""
    return (1 << (check_bits(bits) - 1)) - 1


def step_for(x: torch.Tensor, bits: int) -> float:
    """The step that maps max |x| to the largest symbol, as a float32 value."""
    peak = float(x.detach().abs().max()) if x.numel() else 0.0
    return float(np.float32(peak / levels(bits) if peak > 0 else 1.0))


def quantise(x: torch.Tensor, step: float, bits: int) -> torch.Tensor:
    """Integer symbols (int64) of x at `step`, clipped to the bit depth's range."""
    n = levels(bits)
    return torch.round(x.detach().double() / step).clamp(-n, n).long()


def dequantise(q: torch.Tensor, step: float) -> torch.Tensor:
    return (q.double() * step).float()


def fake_quantise(x: torch.Tensor, bits: int) -> torch.Tensor:
    """x rounded to its own step in the forward pass, identity in the backward pass (STE)."""
    step = step_for(x, bits)
    n = levels(bits)
    q = torch.round(x / step).clamp(-n, n) * step
    return x + (q - x).detach()
