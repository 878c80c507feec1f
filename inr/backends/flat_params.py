"""An MLP's parameters as the flat [W0, b0, W1, b1, ...] list autograd Functions take (biases may
be None), and back; saving that list on a Function's ctx; and the differentiable recompute every
MLP Function's backward falls back to when autograd asks for a graph (double backward)."""
from __future__ import annotations

import torch

from .contracts import MLPSpec, Params
from .torch_mlp import mlp_forward, weight_and_bias


def layer_params(params: Params, spec: MLPSpec) -> list[torch.Tensor | None]:
    """The flat [W0, b0, W1, b1, ...] list of `params` (None for absent biases)."""
    return [t for i in range(spec.n_layers) for t in weight_and_bias(params, i, spec)]


def params_from_flat(flat, spec: MLPSpec) -> Params:
    """The parameter mapping of a flat [W0, b0, W1, b1, ...] list (biases may be None): the inverse of
    `layer_params`."""
    params = {}
    for i in range(spec.n_layers):
        params[f"layers.{i}.weight"] = flat[2 * i]
        if flat[2 * i + 1] is not None:
            params[f"layers.{i}.bias"] = flat[2 * i + 1]
    return params


def save_flat(ctx, x: torch.Tensor, flat) -> None:
    """Save x and the flat list for the backward (save_for_backward takes no None: the absent
    biases are remembered in `ctx.has_bias`)."""
    ctx.save_for_backward(x, *[p for p in flat if p is not None])
    ctx.has_bias = [p is not None for p in flat]


def saved_flat(ctx) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """(x, flat list) as `save_flat` stored them."""
    x, *saved = ctx.saved_tensors
    it = iter(saved)
    return x, [next(it) if has else None for has in ctx.has_bias]


def graph_backward(x, flat, spec, gy, needs, forward=mlp_forward):
    """Gradients as a differentiable function of the saved inputs (for create_graph=True).

    For autograd Functions applied as f(x, <2 non-tensor args>, *flat): `needs` is their
    ctx.needs_input_grad, and the result is their backward's return tuple. `forward(x, params,
    spec)` is the op they compute; where it returns a tuple, `gy` is a tuple of the outputs'
    incoming gradients (None for an output no loss used)."""
    inputs = [x, *flat]
    wanted = [t is not None and n and t.requires_grad for t, n in zip(inputs, (needs[0], *needs[3:]))]
    outs = forward(x, params_from_flat(flat, spec), spec)
    pairs = [(o, g) for o, g in (zip(outs, gy) if isinstance(outs, tuple) else [(outs, gy)]) if g is not None]
    got = iter(torch.autograd.grad([o for o, _ in pairs], [t for t, w in zip(inputs, wanted) if w],
                                   [g for _, g in pairs], create_graph=True, allow_unused=True))
    out = [next(got) if w else None for w in wanted]
    return (out[0], None, None, *out[1:])
