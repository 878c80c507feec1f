"""The hot ops, each sent to the active backend (`choice.active_backend()`) where it supports the
inputs, and to the "torch" reference otherwise."""
from __future__ import annotations

import torch

from .choice import active_backend
from .contracts import HashGridConfig, MLPSpec, Params
from .torch_blocked_mlp import CHUNK, blocked_mlp
from .torch_hashgrid import hashgrid_encode
from .torch_mlp import mlp_forward, mlp_value_and_grad


def mlp_op(x: torch.Tensor, params: Params, spec: MLPSpec) -> torch.Tensor:
    """The field MLP (contract of `torch_mlp.mlp_forward`), on the active backend."""
    backend = active_backend()
    if backend.name == "tcnn" and x.is_cuda:
        from . import tcnn

        if tcnn.mlp_supports(x, params, spec):
            return tcnn.tcnn_mlp(x, params, spec)
    if backend.compiled and x.is_cuda:
        from . import cuda

        if cuda.supports(x, params, spec, precision=backend.mlp_precision):
            return cuda.fused_mlp(x, params, spec, precision=backend.mlp_precision)
    if backend.compiled and not x.is_cuda:
        from . import cpu_mlp  # C++ CPU kernel (built on first use), where it measured faster

        if cpu_mlp.use_for(x, params, spec):
            return cpu_mlp.mlp_cpu(x, params, spec)
    if not x.is_cuda and x.shape[-2] > CHUNK:
        return blocked_mlp(x, params, spec)
    return mlp_forward(x, params, spec)


def mlp_value_and_grad_op(x: torch.Tensor, params: Params, spec: MLPSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP's value y [..., d_out] and Jacobian dy/dx [..., d_out, d_in] in one forward pass
    (contract of `torch_mlp.mlp_value_and_grad`), on the active backend. Differentiable once,
    which is what an eikonal loss on dy/dx needs to train."""
    if active_backend().compiled and x.is_cuda:
        from . import cuda_jvp

        if cuda_jvp.supports_value_and_grad(x, params, spec):
            return cuda_jvp.fused_value_and_grad(x, params, spec)
    return mlp_value_and_grad(x, params, spec)


def hashgrid_op(x: torch.Tensor, table: torch.Tensor, config: HashGridConfig) -> torch.Tensor:
    """The hash-grid encoding (contract of `torch_hashgrid.hashgrid_encode`), on the active
    backend. The CUDA kernels differentiate twice, so `auto` uses them for any input they
    support."""
    backend = active_backend()
    if backend.name == "tcnn" and x.is_cuda:
        from . import tcnn

        if tcnn.hashgrid_supports(x, table, config):
            return tcnn.tcnn_hashgrid(x, table, config)
    if backend.compiled and x.is_cuda:
        from . import cuda_hashgrid

        if cuda_hashgrid.supports(x, table, config):
            return cuda_hashgrid.hashgrid_cuda(x, table, config)
    if backend.compiled and not x.is_cuda:
        from . import cpu_hashgrid  # C++ CPU kernel (built on first use), where it supports the inputs

        if cpu_hashgrid.supports(x, table, config):
            return cpu_hashgrid.hashgrid_cpu(x, table, config)
    return hashgrid_encode(x, table, config)
