"""C++ CPU kernel of the hash-grid encoding (kernels/cpu/hashgrid.cpp), same contract and
results as `inr.backends.torch_hashgrid.hashgrid_encode` for the inputs it supports (see `supports`).

Forward: parallel over points. Backward to the table: parallel over levels (disjoint rows: no
races, and every row sums its points in a fixed order, so results are deterministic for a given
thread count); to x only when x requires grad. Double backward (create_graph=True, e.g. eikonal
losses): the backward is itself a Function whose backward is the C++ backward-of-backward (d dout,
d table, d x, the interpolation weights' Hessian included). A third derivative recomputes through
the differentiable PyTorch path: correct, not fast.

The extension is built on first use (`kernels.cpu_loader.load_cpu`); importing this module
compiles nothing.

>>> import torch
>>> from inr.backends.contracts import HashGridConfig, grid_layout
>>> cfg = HashGridConfig(n_levels=2, log2_hashmap_size=8)
>>> supports(torch.rand(5, 2, dtype=torch.float64), torch.zeros(grid_layout(cfg, 2).total_rows, 2), cfg)
False
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from .contracts import HashGridConfig, grid_layout

DIMS = (2, 3)
FEATURES = (1, 2, 4, 8)
# Large batches on large tables are processed in Z-order (consecutive points reuse cached rows).
# Sorting pays only where the table is far beyond the caches: 2-D, L=16, T=2^19 (5.7 MB, all dense)
# ran 10-20% slower in Z-order than unsorted on a 2-core EPYC (the random output and gradient rows
# then cost more than the table misses saved), 3-D (48 MB, 11 hashed levels) 5-10% faster.
SORT_MIN_SAMPLES = 1 << 14  # 0 disables
SORT_MIN_TABLE_BYTES = 16 << 20


def _ext():
    from kernels.cpu_loader import load_cpu

    return load_cpu()


@lru_cache(maxsize=64)
def _levels(config: HashGridConfig, n_dims: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level scales (float64 [L], tcnn's float32 values) and (res, size, offset, hashed) [L, 4]."""
    lay = grid_layout(config, n_dims)
    scales = torch.tensor(lay.scales, dtype=torch.float64)
    meta = torch.tensor([[lay.resolutions[i], lay.sizes[i], lay.offsets[i], int(lay.hashed[i])]
                         for i in range(config.n_levels)], dtype=torch.int64)
    return scales, meta


def supports(x: torch.Tensor, table: torch.Tensor, config: HashGridConfig, build: bool = True) -> bool:
    """Whether `hashgrid_cpu` can encode these inputs: CPU float32 x [..., d] with d in (2, 3) and
    1 to 2**31 - 1 points, a shared float32 table [total_rows, F] with F in (1, 2, 4, 8), finite x
    within [0, 1] (outside inputs wrap as in tcnn on the PyTorch path; non-finite ones raise
    there), and (with `build`) a working build of the extension."""
    if x.device.type != "cpu" or table.device.type != "cpu":
        return False
    if x.dtype != torch.float32 or table.dtype != torch.float32 or x.dim() < 1 or table.dim() != 2:
        return False
    d = x.shape[-1]
    if d not in DIMS or config.n_features_per_level not in FEATURES or not 0 < x.numel() // d < 2**31:
        return False
    if tuple(table.shape) != (grid_layout(config, d).total_rows, config.n_features_per_level):
        return False
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi) and lo >= 0.0 and hi <= 1.0):
        return False
    return not build or _ext() is not None


_NO_PERM = torch.empty(0, dtype=torch.int32)


class _HashGridCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, config):
        ext = _ext()
        scales, meta = _levels(config, x.shape[-1])
        smooth = config.interpolation == "smoothstep"
        big = table.numel() * table.element_size() >= SORT_MIN_TABLE_BYTES
        perm = ext.hashgrid_order(x) if SORT_MIN_SAMPLES and big and x.shape[0] >= SORT_MIN_SAMPLES else _NO_PERM
        ctx.save_for_backward(x, table)
        ctx.config, ctx.smooth, ctx.perm = config, smooth, perm
        return ext.hashgrid_forward(x, table, scales, meta, smooth, perm)

    @staticmethod
    def backward(ctx, grad_out):
        x, table = ctx.saved_tensors
        need_x, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if torch.is_grad_enabled():  # create_graph=True: a Function, so its own backward is recorded
            gx, gt = _HashGridCPUBackward.apply(x, table, grad_out.contiguous(), ctx.config, ctx.perm, need_x, need_t)
            return gx, gt, None
        scales, meta = _levels(ctx.config, x.shape[-1])
        gt, gx = _ext().hashgrid_backward(x, table, grad_out.contiguous(), scales, meta, ctx.smooth, need_t, need_x,
                                            ctx.perm)
        return gx, gt, None


class _HashGridCPUBackward(torch.autograd.Function):
    """(dL/dx, dL/dtable) of the encoding as a differentiable function of (x, table, dout)."""

    @staticmethod
    def forward(ctx, x, table, grad_out, config, perm, need_x, need_t):
        ctx.save_for_backward(x, table, grad_out)
        ctx.config = config
        scales, meta = _levels(config, x.shape[-1])
        gt, gx = _ext().hashgrid_backward(x, table, grad_out, scales, meta, config.interpolation == "smoothstep",
                                            need_t, need_x, perm)
        return (gx if need_x else None), (gt if need_t else None)

    @staticmethod
    def backward(ctx, ggx, ggt):
        x, table, grad_out = ctx.saved_tensors
        need_x, need_t, need_dout = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():  # a third derivative: the differentiable PyTorch path
            return _third_order(x, table, grad_out, ctx.config, ggx, ggt, ctx.needs_input_grad[:3])
        if ggx is None and ggt is None:
            return None, None, None, None, None, None, None
        scales, meta = _levels(ctx.config, x.shape[-1])
        d_dout, dt, dx = _ext().hashgrid_backward_backward(
            x, table, grad_out, ggx if ggx is not None else _NO_TENSOR, ggt if ggt is not None else _NO_TENSOR,
            scales, meta, ctx.config.interpolation == "smoothstep", need_dout, need_t and ggx is not None, need_x)
        return (dx if need_x else None), (dt if need_t and ggx is not None else None), \
            (d_dout if need_dout else None), None, None, None, None


_NO_TENSOR = torch.empty(0)


def _third_order(x, table, grad_out, config, ggx, ggt, needs):
    """The double backward's input gradients through the PyTorch path, differentiable again."""
    from .torch_hashgrid import hashgrid_encode

    with torch.enable_grad():
        firsts = [(t, g) for t, g in ((x, ggx), (table, ggt)) if g is not None]
        grads = torch.autograd.grad(hashgrid_encode(x, table, config), [t for t, _ in firsts], grad_out,
                                    create_graph=True)
        wrt = [t for t, need in zip((x, table, grad_out), needs) if need]
        got = iter(torch.autograd.grad(grads, wrt, [g for _, g in firsts], create_graph=True, allow_unused=True))
    return (*[next(got) if need else None for need in needs], None, None, None, None)


def hashgrid_cpu(x: torch.Tensor, table: torch.Tensor, config: HashGridConfig) -> torch.Tensor:
    """`hashgrid_encode(x, table, config)` on the C++ kernel: x [..., d] -> [..., L*F].
    Raises ValueError for inputs `supports` rejects (the build is not re-checked here)."""
    if not supports(x, table, config, build=False):
        raise ValueError("hashgrid_cpu: unsupported inputs (see inr.backends.cpu_hashgrid.supports)")
    if _ext() is None:
        raise RuntimeError("hashgrid_cpu: the C++ CPU extension is unavailable")
    lead, d = x.shape[:-1], x.shape[-1]
    out = _HashGridCPU.apply(x.reshape(-1, d).contiguous(), table.contiguous(), config)
    return out.view(*lead, config.n_output_dims)
