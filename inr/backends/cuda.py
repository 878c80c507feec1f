"""The "cuda" backend of the field MLP: fused kernels from `kernels/`, same contract as
`inr.backends.torch_mlp.mlp_forward`.

`supports(x, params, spec)` says whether the fused path can run these inputs; `fused_mlp` runs
it (and raises ValueError when it cannot). Forward is one kernel launch. Backward is one kernel
that carries dL/dz back through every layer (giving dL/dx and the bias gradients), then one
cuBLAS product per layer for the weight gradients (dz^T h, per instance or summed over all points
for shared weights), the split tiny-cuda-nn uses.

Double backward (create_graph=True, e.g. an eikonal loss on dy/dx) has no kernel: the backward
then recomputes through the differentiable `mlp_forward`, so it is correct but not fused.

>>> import torch
>>> from inr.backends.contracts import MLPSpec
>>> spec = MLPSpec(2, (64, 64), 3)
>>> p = {name: torch.zeros(shape) for name, shape in spec.param_shapes().items()}
>>> supports(torch.zeros(5, 2), p, spec)  # CPU tensors: not for this backend
False
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import cuda_buffers as buf
from .contracts import MLPSpec, Params
from .flat_params import graph_backward, layer_params

WIDTHS = (16, 32, 64, 128)
MAX_D_IN = 64
MAX_D_OUT = 16
MAX_LAYERS = 16
_ACT = {"none": 0, "relu": 1, "sine": 2, "sigmoid": 3, "exp": 4}
HIDDEN_ACTIVATIONS = ("relu", "sine", "none")
PRECISIONS = ("fp32", "fp16", "bf16")
OUTPUT_ACTIVATIONS = ("none", "sigmoid", "exp", "relu")


def _ext():
    from kernels import load

    return load()


def _on_kernel_device(t: torch.Tensor) -> bool:
    """Whether the kernels take tensors on t's device (tests run them on the CPU in an emulation)."""
    return t.is_cuda


def supports(x: torch.Tensor, params: Params, spec: MLPSpec, build: bool = True, precision: str = "fp32") -> bool:
    """Whether `fused_mlp` can evaluate these inputs: CUDA float32 tensors, 1 to 15 hidden layers
    of one width in {16, 32, 64, 128}, d_in <= 64, d_out <= 16, supported activations, parameter
    shapes that agree, a known precision and (with `build`) a working kernel build."""
    if precision not in PRECISIONS or _layout(x, params, spec) is None:
        return False
    return not build or _ext() is not None


def _layout(x, params, spec) -> tuple[int, bool] | None:
    """(B, batched): the instances the kernels run and whether any parameter has an instance
    dimension (when none has, every point is one instance: B = 1). None if unsupported."""
    h = spec.hidden
    if not (1 <= len(h) < MAX_LAYERS and h[0] in WIDTHS and all(w == h[0] for w in h)):
        return None
    if spec.d_in > MAX_D_IN or spec.d_out > MAX_D_OUT:
        return None
    if spec.activation not in HIDDEN_ACTIVATIONS or spec.output_activation not in OUTPUT_ACTIVATIONS:
        return None
    if not (isinstance(x, torch.Tensor) and _on_kernel_device(x) and x.dtype == torch.float32 and x.dim() in (2, 3)
            and x.shape[-1] == spec.d_in and x.numel() > 0):
        return None
    batches = set()
    for name, shape in spec.param_shapes().items():
        p = params.get(name)
        if p is None:
            return None
        if not (p.device == x.device and p.dtype == torch.float32):
            return None
        if tuple(p.shape) == shape:
            continue
        if p.dim() == len(shape) + 1 and tuple(p.shape[1:]) == shape and p.shape[0] > 0:
            batches.add(int(p.shape[0]))
        else:
            return None
    if len(batches) > 1:
        return None
    if not batches:
        return 1, False
    b = batches.pop()
    if x.dim() == 3 and x.shape[0] != b:
        return None
    return b, True


def fused_mlp(x: torch.Tensor, params: Params, spec: MLPSpec, precision: str = "fp32") -> torch.Tensor:
    """`mlp_forward(x, params, spec)` on the fused CUDA kernels (see `supports`). precision: "fp32",
    or "fp16" / "bf16" tensor-core operands with fp32 accumulation (`inr.backends.cuda_tc`)."""
    layout = _layout(x, params, spec)
    ext = _ext() if layout is not None and precision in PRECISIONS else None
    if ext is None:
        raise ValueError("fused_mlp cannot run these inputs (check inr.backends.cuda.supports)")
    tensors = layer_params(params, spec)
    if precision != "fp32":
        from .cuda_tc import fused_mlp_tc

        return fused_mlp_tc(x, layout, spec, tensors, precision)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(t is not None and t.requires_grad
                                                                      for t in tensors))
    if not needs_grad:
        return _forward(ext, x, layout, spec, tensors, train=False)[0]
    return _FusedMLP.apply(x, spec, layout, *tensors)


class _FusedMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spec, layout, *tensors):
        y, x_c, save_h, save_z, dims = _forward(_ext(), x, layout, spec, tensors, train=True)
        ctx.spec, ctx.dims, ctx.x_shape = spec, dims, x.shape
        ctx.save_for_backward(x, x_c, y, save_h, save_z, *tensors)
        return y

    @staticmethod
    def backward(ctx, dy):
        spec, (B, N, x_stride) = ctx.spec, ctx.dims
        x, x_c, y, save_h, save_z, *tensors = ctx.saved_tensors
        if torch.is_grad_enabled():  # a graph of the gradient is wanted: differentiable recompute
            return graph_backward(x, tensors, spec, dy, ctx.needs_input_grad)
        weights, biases = tensors[0::2], tensors[1::2]
        W, L, rows = spec.hidden[0], spec.n_layers, B * N
        dev = y.device

        dz = [buf.alloc(rows, W, device=dev) for _ in range(L - 1)] + [buf.alloc(rows, spec.d_out, device=dev)]
        need_dx = ctx.needs_input_grad[0]
        dx = buf.alloc(rows, spec.d_in, device=dev) if need_dx else buf.none(dev)
        # The kernel accumulates bias gradients (atomics), so these start at zero.
        db = [torch.zeros(b.shape, device=dev) if ctx.needs_input_grad[4 + 2 * i] else buf.none(dev)
              for i, b in enumerate(biases)]
        ext = _ext()
        ext.mlp_backward(dy.reshape(rows, spec.d_out).contiguous(), y.reshape(rows, spec.d_out), save_h, save_z,
                         _bwd_mats(ext, weights, spec), dz, dx, db, B, N, spec.d_in, spec.d_out, W,
                         _ACT[spec.activation], _ACT[spec.output_activation], spec.w0_first, spec.w0_hidden)

        grads = []
        broadcast_x = x_stride == 0 and B > 1  # one point set shared by every instance
        for i in range(L):
            h_in = x_c.reshape(-1, spec.d_in) if i == 0 else save_h[i - 1]
            grads.append(_weight_grad(dz[i], h_in, weights[i], B, N, broadcast_x and i == 0)
                         if ctx.needs_input_grad[3 + 2 * i] else None)
            grads.append(db[i] if ctx.needs_input_grad[4 + 2 * i] else None)
        dx = _fold_dx(dx, B, N, x_stride, ctx.x_shape) if need_dx else None
        return (dx, None, None, *grads)


def _points(x, layout, d_in):
    """How the kernels read x: (x contiguous, N points per instance, x_stride (0: one point set for
    every instance), the outputs' leading shape)."""
    B, batched = layout
    x_c = x.contiguous()
    if not batched:  # everything shared: all points form one instance
        return x_c, x_c.numel() // d_in, 0, tuple(x.shape[:-1])
    N = x_c.shape[-2]
    return x_c, N, N * d_in if x_c.dim() == 3 else 0, (B, N)


def _fold_dx(dx, B, N, x_stride, x_shape):
    """dL/dx from the kernels' per-row dx: summed over instances where they share one point set."""
    dx = dx.view(B, N, -1)
    return (dx.sum(0) if x_stride == 0 and B > 1 else dx).reshape(x_shape)


def _forward(ext, x, layout, spec, tensors, train):
    """Run the forward kernel. Returns (y, x as the kernel read it, save_h, save_z, (B, N, x_stride))."""
    W, L = spec.hidden[0], spec.n_layers
    B = layout[0]
    x_c, N, x_stride, lead = _points(x, layout, spec.d_in)
    rows, dev = B * N, x.device
    y = buf.alloc(*lead, spec.d_out, device=dev)
    save_h = buf.alloc(L - 1, rows, W, device=dev) if train else buf.none(dev)
    save_z = buf.alloc(L - 1, rows, W, device=dev) if train and spec.activation == "sine" else buf.none(dev)
    mats, biases = _fwd_mats(ext, tensors[0::2], tensors[1::2], spec)
    ext.mlp_forward(x_c, x_stride, mats, biases, y, save_h, save_z, B, N, spec.d_in, spec.d_out, W,
                    _ACT[spec.activation], _ACT[spec.output_activation], spec.w0_first, spec.w0_hidden)
    return y, x_c, save_h, save_z, (B, N, x_stride)


def _fwd_mats(ext, weights, biases, spec):
    """Forward layout (kernels/csrc/mlp.h): W^T per layer, layer 0 rows padded to a multiple
    of 4, the last layer's columns (and bias) padded to ext.dout_pad(d_out)."""
    L, kin, pad = spec.n_layers, _round4(spec.d_in), ext.dout_pad(spec.d_out) - spec.d_out
    mats, bs = [], []
    for i, (w, b) in enumerate(zip(weights, biases)):
        wt = w.transpose(-1, -2)
        if i == 0:
            wt = F.pad(wt, (0, 0, 0, kin - spec.d_in))
        if i == L - 1:
            wt = F.pad(wt, (0, pad))
            b = F.pad(b, (0, pad)) if b is not None else None
        mats.append(buf.aligned(wt))
        bs.append(b.contiguous() if b is not None and b.numel() else buf.none(w.device))
    return mats, bs


def _bwd_mats(ext, weights, spec):
    """Backward layout: torch's [out, in] per layer, layer 0 columns padded to ext.din_pad(d_in),
    the last layer's rows padded to a multiple of 4."""
    L = spec.n_layers
    mats = []
    for i, w in enumerate(weights):
        if i == 0:
            w = F.pad(w, (0, ext.din_pad(spec.d_in) - spec.d_in))
        elif i == L - 1:
            w = F.pad(w, (0, 0, 0, _round4(spec.d_out) - spec.d_out))
        mats.append(buf.aligned(w))
    return mats


def _weight_grad(dz, h_in, w, B, N, broadcast_x):
    """dL/dW = dz^T h_in: per instance for [B, out, in] weights, over every point when shared."""
    out = dz.shape[-1]
    if broadcast_x:  # h_in is [N, in], the same points for every instance
        if w.dim() == 3:
            return torch.matmul(dz.view(B, N, out).transpose(1, 2), h_in)
        return dz.view(B, N, out).sum(0).t() @ h_in
    if w.dim() == 3:
        return torch.bmm(dz.view(B, N, out).transpose(1, 2), h_in.view(B, N, -1))
    return _sum_outer(dz, h_in)


_CHUNK = 512  # rows per product in _sum_outer


def _sum_outer(dz, h):
    """dz^T h over very many rows. For small layers cuBLAS's one split-K product is slow at this
    shape; a batch of 512-row products, summed, was 1.5-3x faster on an H100 (at 64x64 and up,
    the plain product was as fast or faster)."""
    rows, o, i = dz.shape[0], dz.shape[1], h.shape[1]
    if o * i >= 64 * 64 or rows < 2 * _CHUNK:
        return dz.t() @ h
    c = rows // _CHUNK
    m = c * _CHUNK
    g = torch.bmm(dz[:m].view(c, _CHUNK, o).transpose(1, 2), h[:m].view(c, _CHUNK, i)).sum(0)
    return g + dz[m:].t() @ h[m:] if m < rows else g


def _round4(v: int) -> int:
    return (v + 3) // 4 * 4
