"""The "cuda" backend of the hash-grid encoding: kernels from `kernels/` (csrc/hashgrid*), same
contract as `inr.backends.torch_hashgrid.hashgrid_encode` (tiny-cuda-nn semantics, one flat
table, level-major output, shared [R, F] or per-instance [B, R, F] tables).

`supports(x, table, config)` says whether the kernels can run these inputs; `hashgrid_cuda` runs
them (and raises ValueError when it cannot). Forward: one launch, one thread per (point, level).
Backward: one launch giving the table gradient (float32 atomics, so summation order, and the last
bits, vary between runs) and dL/dx (summed over levels in a fixed order). Backward of the
backward (create_graph=True, e.g. an eikonal loss on d features / d x): one launch giving the
gradients of dout, the table and x (second derivatives of the interpolation weights included).
A third derivative raises RuntimeError.

Differences from the PyTorch path: non-finite x are not checked (that would need a device sync):
they give NaN features instead of a ValueError (indices stay in bounds). x and the table must both
be float32 (the PyTorch path computes in the table's dtype, so it also runs float64).

>>> import torch
>>> from inr.backends.contracts import HashGridConfig, grid_layout
>>> cfg = HashGridConfig(n_levels=2, log2_hashmap_size=8)
>>> supports(torch.rand(5, 2), torch.zeros(grid_layout(cfg, 2).total_rows, 2), cfg)  # CPU: not here
False
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

from . import cuda
from . import cuda_buffers as buf
from .contracts import HashGridConfig, grid_layout

DIMS = (1, 2, 3, 4)
FEATURES = (1, 2, 4, 8)
MAX_LEVELS = 32
_INTERP = {"linear": 0, "smoothstep": 1}


@dataclass(frozen=True)
class _Meta:
    """One call's geometry: the binding's argument lists and the shapes to restore."""

    dims: tuple          # (n_dims, F, interpolation, n_inst, n_per, x_stride, table_stride)
    scales: tuple
    ints: tuple
    x_shared: bool       # one point set [N, d] read by every instance's table

    @property
    def args(self):
        return list(self.dims), list(self.scales), list(self.ints)

    @property
    def points(self) -> int:
        return self.dims[3] * self.dims[4]


@lru_cache(maxsize=64)
def _levels(config: HashGridConfig, n_dims: int) -> tuple[tuple, tuple]:
    """Per-level (scales, flat (res, size, hashed, offset) ints) of the layout the torch path uses."""
    lay = grid_layout(config, n_dims)
    ints = []
    for lvl in range(config.n_levels):
        ints += [lay.resolutions[lvl], lay.sizes[lvl], int(lay.hashed[lvl]), lay.offsets[lvl]]
    return tuple(lay.scales), tuple(ints)


def supports(x: torch.Tensor, table: torch.Tensor, config: HashGridConfig, build: bool = True) -> bool:
    """Whether `hashgrid_cuda` can encode these inputs: float32 CUDA x and table on one device,
    1 to 4 input dims, F in {1, 2, 4, 8}, at most 32 levels, a table of the layout's shape (shared
    [R, F], or [B, R, F] with x [B, N, d] or [N, d]), at least one point, and (with `build`) a
    working kernel build."""
    if _shape(x, table, config) is None:
        return False
    return not build or cuda._ext() is not None


def _shape(x, table, config) -> tuple[int, int, bool] | None:
    """(n_inst, n_per, x_shared) for the kernels, or None if unsupported."""
    if not (isinstance(x, torch.Tensor) and isinstance(table, torch.Tensor) and isinstance(config, HashGridConfig)):
        return None
    if not (cuda._on_kernel_device(x) and table.device == x.device and x.dtype == table.dtype == torch.float32):
        return None
    if x.dim() < 1 or x.numel() == 0:
        return None
    d, n_feat = x.shape[-1], config.n_features_per_level
    if d not in DIMS or n_feat not in FEATURES or config.n_levels > MAX_LEVELS:
        return None
    rows = grid_layout(config, d).total_rows
    if table.dim() == 2:
        return (1, x.numel() // d, False) if tuple(table.shape) == (rows, n_feat) else None
    if table.dim() != 3 or tuple(table.shape[1:]) != (rows, n_feat) or table.shape[0] < 1:
        return None
    B = table.shape[0]
    if x.dim() == 3 and x.shape[0] == B:
        return B, x.shape[1], False
    if x.dim() == 2:
        return B, x.shape[0], B > 1
    return None


def hashgrid_cuda(x: torch.Tensor, table: torch.Tensor, config: HashGridConfig) -> torch.Tensor:
    """`hashgrid_encode(x, table, config)` on the CUDA kernels (see `supports`).

    Shapes: x [..., d] with a shared table [R, F] -> [..., L*F]; x [B, N, d] or [N, d] with
    per-instance tables [B, R, F] -> [B, N, L*F]."""
    shape = _shape(x, table, config)
    ext = cuda._ext() if shape is not None else None
    if ext is None:
        raise ValueError("hashgrid_cuda cannot run these inputs (check inr.backends.cuda_hashgrid.supports)")
    B, N, x_shared = shape
    d, n_feat = x.shape[-1], config.n_features_per_level
    rows = grid_layout(config, d).total_rows
    scales, ints = _levels(config, d)
    x_stride = N * d if B > 1 and not x_shared else 0
    table_stride = rows * n_feat if B > 1 else 0
    meta = _Meta((d, n_feat, _INTERP[config.interpolation], B, N, x_stride, table_stride), scales, ints, x_shared)
    if table.dim() == 2:
        x_in, out_shape = x.reshape(-1, d), (*x.shape[:-1], config.n_output_dims)
    else:
        x_in, out_shape = x, (B, N, config.n_output_dims)
    if torch.is_grad_enabled() and (x.requires_grad or table.requires_grad):
        out = _Encode.apply(x_in, table, meta)
    else:
        out = _forward(ext, x_in, table, meta)
    return out.view(out_shape)


class _Encode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, meta):
        ctx.meta = meta
        ctx.save_for_backward(x, table)
        return _forward(cuda._ext(), x, table, meta)

    @staticmethod
    def backward(ctx, dout):
        x, table = ctx.saved_tensors
        need_x, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        # a Function of its own, so that create_graph=True records it for the double backward
        dx, dtable = _EncodeBackward.apply(x, table, dout, ctx.meta, need_x, need_t)
        return dx, dtable, None


class _EncodeBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, dout, meta, need_x, need_t):
        ctx.meta = meta
        ctx.save_for_backward(x, table, dout)
        ext, dev = cuda._ext(), x.device
        d = meta.dims[0]
        dtable = torch.zeros(table.shape, device=dev) if need_t else buf.none(dev)  # accumulated into
        dx = buf.alloc(meta.points, d, device=dev) if need_x else buf.none(dev)
        ext.hashgrid_backward(x.contiguous(), buf.aligned(table), buf.aligned(dout), dtable, dx, *meta.args)
        return (_fold_dx(dx, x, meta) if need_x else None), (dtable if need_t else None)

    @staticmethod
    def backward(ctx, ggx, ggtable):
        if torch.is_grad_enabled():
            raise RuntimeError("inr cuda backend: the hash grid has no third derivative (create_graph=True in a "
                               "second backward); use the 'torch' backend")
        x, table, dout = ctx.saved_tensors
        meta, dev = ctx.meta, x.device
        need_x, need_t, need_dout = ctx.needs_input_grad[:3]
        if ggx is None and ggtable is None:
            return None, None, None, None, None, None
        d = meta.dims[0]
        d_dout = buf.alloc(*dout.shape, device=dev) if need_dout else buf.none(dev)
        dtable = torch.zeros(table.shape, device=dev) if need_t and ggx is not None else buf.none(dev)
        dx = buf.alloc(meta.points, d, device=dev) if need_x else buf.none(dev)
        cuda._ext().hashgrid_backward_backward(
            x.contiguous(), buf.aligned(table), buf.aligned(dout),
            ggx.contiguous() if ggx is not None else buf.none(dev),
            buf.aligned(ggtable) if ggtable is not None else buf.none(dev),
            d_dout, dtable, dx, *meta.args)
        return (_fold_dx(dx, x, meta) if need_x else None, dtable if dtable.numel() else None,
                d_dout if need_dout else None, None, None, None)


def _forward(ext, x, table, meta: _Meta) -> torch.Tensor:
    out = buf.alloc(meta.points, meta.dims[1] * len(meta.scales), device=x.device)  # [points, L*F]
    ext.hashgrid_forward(x.contiguous(), buf.aligned(table), out, *meta.args)
    return out


def _fold_dx(dx: torch.Tensor, x: torch.Tensor, meta: _Meta) -> torch.Tensor:
    """Per-point dx [points, d] to x's shape; a point set shared by B instances sums theirs."""
    if meta.x_shared:
        dx = dx.view(meta.dims[3], meta.dims[4], -1).sum(0)
    return dx.view(x.shape)

