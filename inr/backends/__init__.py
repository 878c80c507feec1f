"""Dispatch of the hot ops to a backend.

- "torch": pure PyTorch, runs anywhere, differentiable to any order: on a CPU, batches larger
  than one block run blocked (`blocked.blocked_mlp`, cache-sized chunks); otherwise the reference
  `inr.nn.mlp_forward`. The hash grid is `inr.encodings.hashgrid_encode`.
- "cuda": the compiled kernels (built on first use, cached): on a GPU the fused MLP and hash grid
  in `kernels/csrc`, on a CPU the C++ hash grid and, where `cpu_mlp.use_for` says it measured
  faster, the C++ MLP in `kernels/cpu`. Inputs they do not support (other widths, dtypes,
  layouts) run on "torch". Double backward recomputes through the torch op
  (correct, not fused).
- "tcnn": tiny-cuda-nn (`tinycudann`, optional, not on PyPI) for the MLPs and hash grids it can
  express (`inr.backends.tcnn`); everything else runs as under "cuda".
- "auto": the same as "cuda" (compiled kernels where they support the inputs, "torch" otherwise).

The fused MLP's operand precision on a GPU (`set_precision`): "fp32" (default; exact to float32
rounding), or "fp16" / "bf16" tensor-core operands with fp32 accumulation.
`mlp_value_and_grad_op` gives an MLP's value and its Jacobian with respect to x in one pass
(forward-mode tangents), differentiable once: the eikonal path without double backward.
"""
from __future__ import annotations

import torch

from inr.nn.mlp import MLPSpec, Params, mlp_forward, mlp_value_and_grad

from .blocked import CHUNK, blocked_mlp

BACKENDS = ("auto", "torch", "cuda", "tcnn")
PRECISIONS = ("fp32", "fp16", "bf16")
_current = "auto"
_precision = "fp32"


def set_backend(name: str) -> None:
    """Select the backend for the hot ops: one of BACKENDS ("tcnn" only where tinycudann imports)."""
    global _current
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(BACKENDS)}")
    if name == "tcnn":
        from . import tcnn

        tcnn.require()  # ValueError naming the import failure
    _current = name


def get_backend() -> str:
    return _current


def set_precision(name: str) -> None:
    """Operand precision of the fused CUDA MLP: one of PRECISIONS (accumulation is always fp32)."""
    global _precision
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; available: {', '.join(PRECISIONS)}")
    _precision = name


def get_precision() -> str:
    return _precision


def prepare(device: torch.device) -> None:
    """Build the kernels the selected backend will use on `device` now (first use only; cached),
    so a training clock started afterwards does not count the compiler."""
    if _current == "torch":
        return
    if device.type == "cuda":
        from kernels import load

        load()
    else:
        from kernels.cpu_loader import load_cpu, load_cpu_mlp, load_cpu_render

        load_cpu()
        load_cpu_mlp()
        load_cpu_render()


def mlp_op(x: torch.Tensor, params: Params, spec: MLPSpec) -> torch.Tensor:
    """The field MLP (contract of `mlp_forward`), on the selected backend."""
    if _current == "tcnn" and x.is_cuda:
        from . import tcnn

        if tcnn.mlp_supports(x, params, spec):
            return tcnn.tcnn_mlp(x, params, spec)
    if _current != "torch" and x.is_cuda:
        from . import cuda

        if cuda.supports(x, params, spec, precision=_precision):
            return cuda.fused_mlp(x, params, spec, precision=_precision)
    if _current != "torch" and not x.is_cuda:
        from . import cpu_mlp  # C++ CPU kernel (built on first use), where it measured faster

        if cpu_mlp.use_for(x, params, spec):
            return cpu_mlp.mlp_cpu(x, params, spec)
    if not x.is_cuda and x.shape[-2] > CHUNK:
        return blocked_mlp(x, params, spec)
    return mlp_forward(x, params, spec)


def mlp_value_and_grad_op(x: torch.Tensor, params: Params, spec: MLPSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP's value y [..., d_out] and Jacobian dy/dx [..., d_out, d_in] in one forward pass
    (contract of `inr.nn.mlp.mlp_value_and_grad`), on the selected backend. Differentiable once,
    which is what an eikonal loss on dy/dx needs to train."""
    if _current != "torch" and x.is_cuda:
        from . import cuda_jvp

        if cuda_jvp.supports_value_and_grad(x, params, spec):
            return cuda_jvp.fused_value_and_grad(x, params, spec)
    return mlp_value_and_grad(x, params, spec)


def hashgrid_op(x: torch.Tensor, table: torch.Tensor, config) -> torch.Tensor:
    """The hash-grid encoding (contract of `inr.encodings.hashgrid.hashgrid_encode`), on the
    selected backend. The CUDA kernels differentiate twice, so `auto` uses them for any input
    they support. Imports are lazy: the encodings module itself calls this."""
    if _current == "tcnn" and x.is_cuda:
        from . import tcnn

        if tcnn.hashgrid_supports(x, table, config):
            return tcnn.tcnn_hashgrid(x, table, config)
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
