"""The "torch" backend's MLP for large CPU batches: the contract of `torch_mlp.mlp_forward`, faster.

On a CPU the plain op is bound by memory traffic: autograd keeps every layer's activations for
the whole batch ([N, 64] floats per layer, far larger than the caches) and each matmul streams them
through memory. This op runs the layers chunk by chunk of points so activations stay in cache, and
its backward recomputes a chunk's forward and back-propagates it at once, accumulating the weight
gradients. It saves only x and the parameters.

Its backward is itself differentiable: when autograd asks for a graph (double backward, e.g. an
eikonal loss), it recomputes through `mlp_forward` instead.
"""
from __future__ import annotations

import torch

from .activations import activation_slope, apply_activation
from .contracts import MLPSpec, Params
from .flat_params import graph_backward, layer_params, save_flat, saved_flat
from .linear import batched_linear

CHUNK = 4096  # points per block: a 4096 x 64 float block is 1 MiB, within L2


def _act_grad(g: torch.Tensor, z: torch.Tensor, h: torch.Tensor, name: str, w0: float) -> torch.Tensor:
    """dL/dz from dL/dh for h = act(z) (the identity's slope is 1: no product)."""
    return g if name == "none" else g * activation_slope(z, h, name, w0)


def _forward_chunk(x, flat, spec, keep: bool):
    zs, hs = [], [x]
    h = x
    last = spec.n_layers - 1
    for i in range(spec.n_layers):
        z = batched_linear(h, flat[2 * i], flat[2 * i + 1])
        h = apply_activation(z, spec.activation if i < last else spec.output_activation, spec.layer_w0(i))
        if keep:
            zs.append(z)
            hs.append(h)
    return h, zs, hs


def _reduce_to(g: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Sum a per-instance gradient [B, ...] down to a shared parameter's shape."""
    return g.sum(0) if g.dim() > like.dim() else g


class _BlockedMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spec, chunk, *flat):
        ctx.spec, ctx.chunk = spec, chunk
        save_flat(ctx, x, flat)
        return torch.cat([_forward_chunk(xc, flat, spec, keep=False)[0] for xc in x.split(chunk, dim=-2)], dim=-2)

    @staticmethod
    def backward(ctx, gy):
        spec, chunk = ctx.spec, ctx.chunk
        x, flat = saved_flat(ctx)
        if torch.is_grad_enabled():  # double backward wanted: go through the differentiable op
            return graph_backward(x, flat, spec, gy, ctx.needs_input_grad)
        last = spec.n_layers - 1
        need_x = ctx.needs_input_grad[0]
        # Per-instance weight grads accumulate per instance; shared ones over instances as well.
        grads = [None if p is None else torch.zeros_like(p) for p in flat]
        gx_chunks = []
        for xc, gc in zip(x.split(chunk, dim=-2), gy.split(chunk, dim=-2)):
            _, zs, hs = _forward_chunk(xc, flat, spec, keep=True)
            g = gc
            for i in range(last, -1, -1):
                act = spec.activation if i < last else spec.output_activation
                g = _act_grad(g, zs[i], hs[i + 1], act, spec.layer_w0(i))
                w = flat[2 * i]
                h_in = hs[i]
                if h_in.dim() == 2 and g.dim() == 3:  # shared coordinates, per-instance weights
                    h_in = h_in.expand(g.shape[0], -1, -1)
                gw = g.transpose(-1, -2) @ h_in
                grads[2 * i] += _reduce_to(gw, w)
                if flat[2 * i + 1] is not None:
                    grads[2 * i + 1] += _reduce_to(g.sum(-2), flat[2 * i + 1])
                if i > 0 or need_x:
                    g = g @ w if w.dim() == 2 else torch.bmm(g, w)
            if need_x:
                gx_chunks.append(_reduce_to(g, xc) if g.dim() > xc.dim() else g)
        gx = torch.cat(gx_chunks, dim=-2) if need_x else None
        flat_grads = [gr if need else None for gr, need in zip(grads, ctx.needs_input_grad[3:])]
        return (gx, None, None, *flat_grads)


def blocked_mlp(x: torch.Tensor, params: Params, spec: MLPSpec, chunk: int = CHUNK) -> torch.Tensor:
    """`mlp_forward(x, params, spec)` evaluated in blocks of `chunk` points (see module doc).

    >>> from inr.backends.torch_mlp import mlp_forward
    >>> spec = MLPSpec(2, (16,), 1)
    >>> p = {name: torch.randn(shape) for name, shape in spec.param_shapes().items()}
    >>> x = torch.randn(10, 2)
    >>> torch.allclose(blocked_mlp(x, p, spec, chunk=3), mlp_forward(x, p, spec))
    True
    """
    return _BlockedMLP.apply(x, spec, chunk, *layer_params(params, spec))
