"""C++ CPU kernel of the field MLP (kernels/cpu/mlp.cpp): same contract as `torch_mlp.mlp_forward`
for the inputs it supports (see `supports`): float32 weights, either all shared ([out, in], x
[N, d] or [B, N, d]) or all per instance ([B, out, in] with x [B, N, d] or [N, d]).

Forward: chunks of CHUNK points, parallel over chunks, each chunk's activations kept in cache.
When gradients are wanted it also keeps every hidden layer's activations (up to SAVE_MAX_BYTES),
so the backward does not recompute them. Backward: takes those (or recomputes a chunk's forward)
and back-propagates it; weight/bias gradients are summed per
group of chunks (the grouping depends on N only) and the groups added in order, so 1 and 2 threads
give bitwise-identical results. Double backward (create_graph=True): for losses on dL/dx
(eikonal terms) with shared weights and output activation none, a C++ double backward
(`_CpuMLPGrad`); otherwise it recomputes through `mlp_forward` (correct, not fast), as the
blocked PyTorch op does.

Per-instance weights (what hypernetworks produce): each instance's chunks run with its own weight
set and its gradients are accumulated per instance, in 16 / B groups of its chunks added in order
(fixed by B and N: thread-count independent; small B still uses every core). Layers mixing shared and per-instance weights stay on `blocked_mlp`.
Sine layers use the kernel's AVX2 sin/cos (Cody-Waite reduction + Cephes polynomials, within
1e-7 absolute of float64 for |w0 z| up to 1e5; `sincos` exposes it for tests).
The extension builds on first use (`kernels.cpu_loader.load_cpu_mlp`); importing this module
compiles nothing.
"""
from __future__ import annotations

import torch

from .contracts import MLPSpec, Params
from .flat_params import graph_backward, layer_params, params_from_flat, save_flat, saved_flat
from .torch_mlp import mlp_forward

CHUNK = 128  # points per chunk: 64-512 measured equal within 5% at width 64 (2-core EPYC)
# Hidden activations kept by the forward for the backward, at most (bytes; above it the backward
# recomputes). The hash field's 2 x 64 ReLU layers at 2^15 points keep 16 MB, and the backward then
# skips a forward's worth of FLOPs (see kernels/NOTES.md).
SAVE_MAX_BYTES = 256 << 20
MAX_WIDTH = 128
CODES = {"none": 0, "relu": 1, "sine": 2, "sigmoid": 3, "exp": 4}


def _ext():
    from kernels.cpu_loader import load_cpu_mlp

    return load_cpu_mlp()


def _layout(x: torch.Tensor, params: Params, spec: MLPSpec) -> int | None:
    """0: every weight shared; B: every weight per instance [B, out, in] (x [B, N, d] or [N, d]);
    None: anything else (mixed layers, wrong shapes, dtypes or devices)."""
    batch = None
    for i in range(spec.n_layers):
        w = params[f"layers.{i}.weight"]
        if w.device.type != "cpu" or w.dtype != torch.float32 or w.dim() not in (2, 3):
            return None
        if tuple(w.shape[-2:]) != (spec.widths[i + 1], spec.widths[i]):
            return None
        b = w.shape[0] if w.dim() == 3 else 0
        if batch is None:
            batch = b
        if b != batch:  # mixed shared / per-instance layers, or different B
            return None
        if spec.bias:
            bias = params.get(f"layers.{i}.bias")
            if bias is None or bias.device.type != "cpu" or bias.dtype != torch.float32:
                return None
            if bias.dim() != (2 if b else 1) or (b and bias.shape[0] != b) or bias.shape[-1] != spec.widths[i + 1]:
                return None
    if batch and x.dim() == 3 and x.shape[0] != batch:
        return None
    return batch


def supports(x: torch.Tensor, params: Params, spec: MLPSpec, build: bool = True) -> bool:
    """Whether `mlp_cpu` runs these inputs: CPU float32 x [N, d_in] or [B, N, d_in]; weights float32
    on the CPU, all shared ([out, in], biases [out]) or all per instance ([B, out, in], [B, out],
    B matching x's); widths up to MAX_WIDTH; and (with `build`) a working build of the extension."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() not in (2, 3) or x.shape[-1] != spec.d_in:
        return False
    if max(spec.widths) > MAX_WIDTH:
        return False
    if _layout(x, params, spec) is None:
        return False
    return not build or _ext() is not None


# Where the dispatch (`mlp_op`, backend auto/cuda) uses this kernel: where it beat what `mlp_op`
# would run otherwise (`blocked_mlp` above 4096 points per instance, `mlp_forward` below) forward +
# backward in a same-run comparison (2-core EPYC, 1 thread; see kernels/NOTES.md):
# - ReLU/none hidden layers, more than DISPATCH_MIN_POINTS points in all: shared weights 1.7-2.8x
#   at 2^15 points (widths 32-128; 16-wide sigmoid only 1.1x); per-instance 2-64-64-64-3 1.2-1.3x
#   mlp_forward at B x N = 16384. At 4096 points and below the kernel was 0.7-1.1x mlp_forward.
# - Sine hidden layers (SIREN), at least DISPATCH_MIN_POINTS_SINE points: shared 2-64x3-3 1.3x
#   mlp_forward at 64 points, 1.6x at 1024, 2.4x blocked_mlp at 2^16 (2-128x3-3 1.9x); per-instance
#   (hypernetwork) 2-64x3-3, B 16-64, N 256-1024: 1.5-1.9x mlp_forward.
# Output activations: none, relu, sigmoid, exp (a sine output layer is supported but unmeasured).
DISPATCH_HIDDEN = ("relu", "none", "sine")
DISPATCH_OUTPUT = ("none", "relu", "sigmoid", "exp")
DISPATCH_MIN_POINTS = 4096
DISPATCH_MIN_POINTS_SINE = 64


def use_for(x: torch.Tensor, params: Params, spec: MLPSpec) -> bool:
    """Whether the dispatch runs these inputs on the kernel (supported and measured faster)."""
    if spec.activation not in DISPATCH_HIDDEN or spec.output_activation not in DISPATCH_OUTPUT:
        return False
    if x.dim() < 2:
        return False
    points = x.numel() // max(1, x.shape[-1])
    w = params.get("layers.0.weight")
    if w is not None and w.dim() == 3 and x.dim() == 2:  # shared coordinates, per-instance weights
        points *= w.shape[0]
    if spec.activation == "sine" and points < DISPATCH_MIN_POINTS_SINE:
        return False
    if spec.activation != "sine" and points <= DISPATCH_MIN_POINTS:
        return False
    return supports(x, params, spec)


def _codes(spec: MLPSpec) -> tuple[list[int], list[float]]:
    last = spec.n_layers - 1
    acts = [CODES[spec.activation if i < last else spec.output_activation] for i in range(spec.n_layers)]
    return acts, [float(spec.layer_w0(i)) for i in range(spec.n_layers)]


_NONE = torch.empty(0)


def _weights_biases(flat, spec: MLPSpec) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Contiguous per-layer weights and biases (empty without biases) from the flat parameter list."""
    weights = [flat[2 * i].contiguous() for i in range(spec.n_layers)]
    return weights, ([flat[2 * i + 1].contiguous() for i in range(spec.n_layers)] if spec.bias else [])


def _flat_grads(dws, dbs, spec: MLPSpec, need_w: bool) -> list[torch.Tensor | None]:
    """The kernel's weight and bias gradients in the flat parameter order (None where not computed)."""
    grads: list[torch.Tensor | None] = []
    for i in range(spec.n_layers):
        grads.append(dws[i] if need_w else None)
        grads.append(dbs[i] if need_w and spec.bias else None)
    return grads


class _CpuMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spec, chunk, *flat):
        ctx.spec, ctx.chunk = spec, chunk
        save_flat(ctx, x, flat)
        acts, w0s = _codes(spec)
        weights, biases = _weights_biases(flat, spec)
        keep = SAVE_MAX_BYTES if any(ctx.needs_input_grad) else 0
        y, ctx.activations = _ext().mlp_forward(x, weights, biases, acts, w0s, chunk, keep)
        return y

    @staticmethod
    def backward(ctx, gy):
        spec, chunk = ctx.spec, ctx.chunk
        x, flat = saved_flat(ctx)
        if torch.is_grad_enabled():  # double backward wanted
            if ctx.needs_input_grad[0] and _double_ok(x, spec):  # the C++ double backward (eikonal losses)
                need_w = any(ctx.needs_input_grad[3:])
                saved = ctx.activations if ctx.activations is not None else _NONE  # kept for the outer backward
                gx, *grads = _CpuMLPGrad.apply(x, gy.contiguous(), spec, chunk, need_w, saved, *flat)
                grads = [g if need else None for g, need in zip(grads, ctx.needs_input_grad[3:])]
                return (gx, None, None, *grads)
            return graph_backward(x, flat, spec, gy, ctx.needs_input_grad)
        need_x = ctx.needs_input_grad[0]
        need_w = any(ctx.needs_input_grad[3:])
        acts, w0s = _codes(spec)
        weights, biases = _weights_biases(flat, spec)
        saved = ctx.activations if ctx.activations is not None else _NONE
        ctx.activations = None  # freed (back to the kernels' buffer pool) once used
        gx, dws, dbs = _ext().mlp_backward(x, weights, biases, acts, w0s, gy.contiguous(), need_x, need_w, chunk, saved)
        grads = _flat_grads(dws, dbs, spec, need_w)
        grads = [g if need else None for g, need in zip(grads, ctx.needs_input_grad[3:])]
        return (gx if need_x else None, None, None, *grads)


def _double_ok(x: torch.Tensor, spec: MLPSpec) -> bool:
    """Whether `mlp_double_backward` takes this MLP: shared weights (x [N, d]), hidden activation
    relu, sine or none, output activation none."""
    return x.dim() == 2 and spec.output_activation == "none" and spec.activation in ("relu", "sine", "none")


class _CpuMLPGrad(torch.autograd.Function):
    """The C++ backward (dL/dx and the parameter gradients) as a differentiable function of
    (x, gy, parameters): a loss on dL/dx (an eikonal term) then back-propagates through the C++
    double backward (`mlp_double_backward`: forward tangents along the upstream gradient, then a
    reverse pass) instead of a PyTorch graph. Losses on the parameter gradients themselves, and
    third derivatives, go through the differentiable PyTorch op (`_grad_of_grad`)."""

    @staticmethod
    def forward(ctx, x, gy, spec, chunk, need_w, saved, *flat):
        ctx.set_materialize_grads(False)  # unused outputs (the parameter gradients of an eikonal term) arrive as None
        ctx.spec, ctx.chunk = spec, chunk
        ctx.has = [p is not None for p in flat]
        ctx.save_for_backward(x, gy, *[p for p in flat if p is not None])
        acts, w0s = _codes(spec)
        weights, biases = _weights_biases(flat, spec)
        gx, dws, dbs = _ext().mlp_backward(x, weights, biases, acts, w0s, gy, True, need_w, chunk, saved)
        grads = _flat_grads(dws, dbs, spec, need_w)
        return (gx, *grads)

    @staticmethod
    def backward(ctx, ggx, *ggflat):
        spec, chunk = ctx.spec, ctx.chunk
        x, gy, *saved = ctx.saved_tensors
        it = iter(saved)
        flat = [next(it) if has else None for has in ctx.has]
        needs = ctx.needs_input_grad
        nothing = (None,) * (6 + len(flat))
        if ggx is None and all(g is None for g in ggflat):
            return nothing
        if torch.is_grad_enabled() or ggx is None or any(g is not None for g in ggflat):
            return _grad_of_grad(x, gy, flat, spec, ggx, ggflat, needs)
        acts, w0s = _codes(spec)
        weights, biases = _weights_biases(flat, spec)
        need_w = any(needs[6:])
        gx2, dws, dbs, ggy = _ext().mlp_double_backward(x, weights, biases, acts, w0s, gy, ggx.contiguous(), needs[0],
                                                       need_w, needs[1], chunk)
        grads = _flat_grads(dws, dbs, spec, need_w)
        grads = [g if need else None for g, need in zip(grads, needs[6:])]
        return (gx2 if needs[0] else None, ggy if needs[1] else None, None, None, None, None, *grads)


def _grad_of_grad(x, gy, flat, spec, ggx, ggflat, needs):
    """`_CpuMLPGrad.backward` through the differentiable PyTorch op (any order)."""
    params = params_from_flat(flat, spec)
    with torch.enable_grad():
        firsts_of = [(t, g) for t, g in zip([x, *flat], [ggx, *ggflat]) if t is not None and t.requires_grad]
        y = mlp_forward(x, params, spec)
        firsts = torch.autograd.grad(y, [t for t, _ in firsts_of], gy, create_graph=True, allow_unused=True)
        pairs = [(f, g) for f, (_, g) in zip(firsts, firsts_of) if f is not None and g is not None and f.requires_grad]
        wrt = [t for t, need in zip([x, gy, *flat], [needs[0], needs[1], *needs[6:]]) if need]
        got = iter(torch.autograd.grad([f for f, _ in pairs], wrt, [g for _, g in pairs],
                                       create_graph=torch.is_grad_enabled(), allow_unused=True)
                   if pairs else [None] * len(wrt))
    out = [next(got) if need else None for need in [needs[0], needs[1], *needs[6:]]]
    return (out[0], out[1], None, None, None, None, *out[2:])


def mlp_cpu(x: torch.Tensor, params: Params, spec: MLPSpec, chunk: int = CHUNK) -> torch.Tensor:
    """`mlp_forward(x, params, spec)` on the C++ kernel. Raises ValueError for inputs `supports`
    rejects (the build is not re-checked here)."""
    if not supports(x, params, spec, build=False):
        raise ValueError("mlp_cpu: unsupported inputs (see inr.backends.cpu_mlp.supports)")
    if _ext() is None:
        raise RuntimeError("mlp_cpu: the C++ CPU MLP extension is unavailable")
    batch = _layout(x, params, spec)
    flat = layer_params(params, spec)
    if batch:  # per-instance weights: x [B, N, d] (shared coordinates expanded; autograd sums dx back)
        xb = x if x.dim() == 3 else x.unsqueeze(0).expand(batch, -1, -1)
        return _CpuMLP.apply(xb.contiguous(), spec, chunk, *flat)
    lead = x.shape[:-1]
    y = _CpuMLP.apply(x.reshape(-1, spec.d_in).contiguous(), spec, chunk, *flat)
    return y if x.dim() == 2 else y.view(*lead, spec.d_out)


def sincos(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin t, cos t) of a float32 CPU tensor by the kernel's own routine (the one sine layers use)."""
    return _ext().sincos(t)
