"""The plainly differentiable formulation: what double backward (eikonal losses) runs through,
and a readable statement of the math."""
from __future__ import annotations

import torch

from .batch import Batch
from .corners import combine, part_chunk, positions, smooth_frac
from .plan import Plan
from .rows import gather_sources

def plain_forward(x, table, plan: Plan, batch: Batch) -> torch.Tensor:
    """Same result as the fast path, from ops autograd can differentiate any number of times."""
    batch = batch.unsorted()
    sources = gather_sources(plan, table, batch)
    n_feat = table.shape[-1]
    xT = x.T
    outs = []
    for part in plan.parts:
        with torch.no_grad():
            idx = part_chunk(part, plan, xT.detach().contiguous(), batch, 0)[0]    # [C, M, Lp]
        pos = positions(xT.unsqueeze(-1), part.scales64)
        s = smooth_frac(pos - torch.floor(pos).detach(), plan.smooth)
        w = combine(torch.stack([1 - s, s], 1), torch.mul)                    # [C, M, Lp]
        vals = sources[part.source].index_select(0, idx.reshape(-1))
        outs.append((vals.view(*idx.shape, n_feat) * w.unsqueeze(-1)).sum(0))  # [M, Lp, F]
    out = torch.cat(outs, 1)
    order = [lvl for part in plan.parts for lvl in range(plan.config.n_levels)[part.lv]]
    if order != sorted(order):
        out = out[:, sorted(range(len(order)), key=order.__getitem__)]
    return out.reshape(x.shape[0], -1)


def differentiable_backward(x, table, grad_out, plan, batch, need_x, need_t):
    inputs = [t for t, need in ((x, need_x), (table, need_t)) if need]
    with torch.enable_grad():
        out = plain_forward(x, table, plan, batch)
        grads = list(torch.autograd.grad(out, inputs, grad_out, create_graph=True, allow_unused=True))
    grad_x = grads.pop(0) if need_x else None
    grad_t = grads.pop(0) if need_t else None
    return grad_x, grad_t
