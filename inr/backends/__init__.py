"""Dispatch of the hot ops to a backend.

- "torch": pure PyTorch, runs anywhere, differentiable to any order: on a CPU, batches larger
  than one block run blocked (`blocked.blocked_mlp`, cache-sized chunks); otherwise the reference
  `inr.nn.mlp_forward`.
- "cuda": the fused kernels in `kernels/` (built on first use); inputs they do not support
  (CPU tensors, other widths or dtypes) run on "torch". A double backward through the fused MLP
  recomputes through the reference op (correct, not fused).
- "auto": "cuda" where it supports the inputs, "torch" otherwise.
"""
from __future__ import annotations

import torch

from inr.nn.mlp import MLPSpec, Params, mlp_forward

from .blocked import CHUNK, blocked_mlp

BACKENDS = ("auto", "torch", "cuda")
_current = "auto"


def set_backend(name: str) -> None:
    """Select the backend for the hot ops: one of BACKENDS."""
    global _current
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    _current = name


def get_backend() -> str:
    return _current


def mlp_op(x: torch.Tensor, params: Params, spec: MLPSpec) -> torch.Tensor:
    """The field MLP (contract of `mlp_forward`), on the selected backend."""
    if _current != "torch" and x.is_cuda:
        from . import cuda

        if cuda.supports(x, params, spec):
            return cuda.fused_mlp(x, params, spec)
    if not x.is_cuda and x.shape[-2] > CHUNK:
        return blocked_mlp(x, params, spec)
    return mlp_forward(x, params, spec)


def hashgrid_op(x: torch.Tensor, table: torch.Tensor, config) -> torch.Tensor:
    """The hash-grid encoding (contract of `inr.encodings.hashgrid.hashgrid_encode`), on the
    selected backend. The CUDA kernels differentiate twice, so `auto` uses them for any input
    they support. Imports are lazy: the encodings module itself calls this."""
    if _current != "torch" and x.is_cuda:
        from . import cuda_hashgrid

        if cuda_hashgrid.supports(x, table, config):
            return cuda_hashgrid.hashgrid_cuda(x, table, config)
    if _current != "torch" and not x.is_cuda:
        from . import cpu_hashgrid  # C++ CPU kernel (built on first use), where it supports the inputs

        if cpu_hashgrid.supports(x, table, config):
            return cpu_hashgrid.hashgrid_cpu(x, table, config)
    from inr.encodings.hashgrid import hashgrid_encode

    return hashgrid_encode(x, table, config)
