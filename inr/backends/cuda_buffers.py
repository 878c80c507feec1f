"""Buffers handed to the CUDA kernels, made in one place so tests can poison them."""
from __future__ import annotations

import torch


def alloc(*shape, device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Every buffer a kernel writes (not accumulates) comes from here (tests swap in NaN-filled ones)."""
    return torch.empty(*shape, device=device, dtype=dtype)


def none(device) -> torch.Tensor:
    """An empty tensor: the bindings' "absent" (null pointer)."""
    return torch.empty(0, device=device)


def aligned(t: torch.Tensor) -> torch.Tensor:
    """Contiguous and 16-byte aligned (the kernels load rows and weights as float2/float4)."""
    t = t.contiguous()
    return t if t.data_ptr() % 16 == 0 else t.clone()
