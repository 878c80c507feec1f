"""C++ CPU kernel of the field MLP (kernels/cpu/mlp.cpp): same contract as `inr.nn.mlp_forward`
for the inputs it supports (see `supports`): shared float32 weights, x [N, d] or [B, N, d].

Forward: chunks of CHUNK points, parallel over chunks, each chunk's activations kept in cache.
Backward: recomputes a chunk's forward and back-propagates it; weight/bias gradients are summed per
group of chunks (the grouping depends on N only) and the groups added in order, so 1 and 2 threads
give bitwise-identical results. Double backward (create_graph=True) recomputes through
`mlp_forward` (correct, not fast), as the blocked PyTorch op does.

Per-instance weights [B, out, in] are not supported here: they stay on `blocked_mlp`.
The extension builds on first use (`kernels.cpu_loader.load_cpu_mlp`); importing this module
compiles nothing.
"""
from __future__ import annotations

import torch

from inr.nn.mlp import MLPSpec, Params

from .blocked import _layer_params, graph_backward

CHUNK = 128  # points per chunk: 64-512 measured equal within 5% at width 64 (2-core EPYC)
MAX_WIDTH = 128
CODES = {"none": 0, "relu": 1, "sine": 2, "sigmoid": 3, "exp": 4}


def _ext():
    from kernels.cpu_loader import load_cpu_mlp

    return load_cpu_mlp()


def supports(x: torch.Tensor, params: Params, spec: MLPSpec, build: bool = True) -> bool:
    """Whether `mlp_cpu` runs these inputs: CPU float32 x [N, d_in] or [B, N, d_in]; every weight
    shared [out, in] and bias [out], float32 on the CPU; widths up to MAX_WIDTH; and (with `build`)
    a working build of the extension."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() not in (2, 3) or x.shape[-1] != spec.d_in:
        return False
    if max(spec.widths) > MAX_WIDTH:
        return False
    for i in range(spec.n_layers):
        w = params[f"layers.{i}.weight"]
        if w.dim() != 2 or w.device.type != "cpu" or w.dtype != torch.float32:
            return False
        if tuple(w.shape) != (spec.widths[i + 1], spec.widths[i]):
            return False
        if spec.bias:
            b = params.get(f"layers.{i}.bias")
            if b is None or b.dim() != 1 or b.device.type != "cpu" or b.dtype != torch.float32:
                return False
    return not build or _ext() is not None


# Where the dispatch (`mlp_op`, backend auto/cuda) uses this kernel: where it beat `blocked_mlp`
# forward + backward in a same-run comparison (2-core EPYC, 1 thread, 2^15 points; see
# kernels/NOTES.md): ReLU/none hidden layers 1.7-2.8x (widths 32-128, outputs none/relu/exp/
# sigmoid; 16-wide sigmoid only 1.1x). Sine is NOT dispatched: sin/cos run as scalar libm calls
# here and the kernel measured 0.3-0.5x the PyTorch op (vectorised Sleef sin). Batches of at most
# DISPATCH_MIN_POINTS points stay on `mlp_forward` (at 1000 points the kernel was 0.8-1.1x).
DISPATCH_HIDDEN = ("relu", "none")
DISPATCH_OUTPUT = ("none", "relu", "sigmoid", "exp")
DISPATCH_MIN_POINTS = 4096


def use_for(x: torch.Tensor, params: Params, spec: MLPSpec) -> bool:
    """Whether the dispatch runs these inputs on the kernel (supported and measured faster)."""
    if spec.activation not in DISPATCH_HIDDEN or spec.output_activation not in DISPATCH_OUTPUT:
        return False
    if x.dim() < 2 or x.numel() // max(1, x.shape[-1]) <= DISPATCH_MIN_POINTS:
        return False
    return supports(x, params, spec)


def _codes(spec: MLPSpec) -> tuple[list[int], list[float]]:
    last = spec.n_layers - 1
    acts = [CODES[spec.activation if i < last else spec.output_activation] for i in range(spec.n_layers)]
    return acts, [float(spec.layer_w0(i)) for i in range(spec.n_layers)]


class _CpuMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spec, chunk, *flat):
        ctx.spec, ctx.chunk = spec, chunk
        ctx.has_bias = [p is not None for p in flat]
        ctx.save_for_backward(x, *[p for p in flat if p is not None])
        acts, w0s = _codes(spec)
        weights = [flat[2 * i].contiguous() for i in range(spec.n_layers)]
        biases = [flat[2 * i + 1].contiguous() for i in range(spec.n_layers)] if spec.bias else []
        return _ext().mlp_forward(x, weights, biases, acts, w0s, chunk)

    @staticmethod
    def backward(ctx, gy):
        spec, chunk = ctx.spec, ctx.chunk
        x, *saved = ctx.saved_tensors
        it = iter(saved)
        flat = [next(it) if has else None for has in ctx.has_bias]
        if torch.is_grad_enabled():  # double backward wanted: go through the differentiable op
            return graph_backward(x, flat, spec, gy, ctx.needs_input_grad)
        need_x = ctx.needs_input_grad[0]
        need_w = any(ctx.needs_input_grad[3:])
        acts, w0s = _codes(spec)
        weights = [flat[2 * i].contiguous() for i in range(spec.n_layers)]
        biases = [flat[2 * i + 1].contiguous() for i in range(spec.n_layers)] if spec.bias else []
        gx, dws, dbs = _ext().mlp_backward(x, weights, biases, acts, w0s, gy.contiguous(), need_x, need_w, chunk)
        grads: list[torch.Tensor | None] = []
        for i in range(spec.n_layers):
            grads.append(dws[i] if need_w else None)
            grads.append(dbs[i] if need_w and spec.bias else None)
        grads = [g if need else None for g, need in zip(grads, ctx.needs_input_grad[3:])]
        return (gx if need_x else None, None, None, *grads)


def mlp_cpu(x: torch.Tensor, params: Params, spec: MLPSpec, chunk: int = CHUNK) -> torch.Tensor:
    """`mlp_forward(x, params, spec)` on the C++ kernel. Raises ValueError for inputs `supports`
    rejects (the build is not re-checked here)."""
    if not supports(x, params, spec, build=False):
        raise ValueError("mlp_cpu: unsupported inputs (see inr.backends.cpu_mlp.supports)")
    if _ext() is None:
        raise RuntimeError("mlp_cpu: the C++ CPU MLP extension is unavailable")
    lead = x.shape[:-1]
    y = _CpuMLP.apply(x.reshape(-1, spec.d_in).contiguous(), spec, chunk, *_layer_params(params, spec))
    return y if x.dim() == 2 else y.view(*lead, spec.d_out)
