"""The fast path's hand-written backward: per chunk, recompute rows and weights, scatter into the
table gradient and, only where x needs it, form the x gradient."""
from __future__ import annotations

import torch

from .corners import part_chunk, smooth_frac_deriv
from .plan import Part, Plan
from .rows import gather_sources, padded_rows, row_view, scatter, take_rows
from .workers import run_groups, sample_chunks
from .workspace import workspace

def fast_backward(x, table, grad_out, plan, batch, need_x, need_t):
    """Hand-written backward: per chunk, recompute rows and weights (cheaper than storing them),
    scatter w * grad_out into the table gradient, and only if x needs it, the x gradient."""
    m_total, n_feat = x.shape[0], table.shape[-1]
    g3 = grad_out.view(m_total, plan.config.n_levels, n_feat)
    sources = gather_sources(plan, table, batch) if need_x else {}
    grad_t = bufs = None
    if need_t:
        grad_t = torch.zeros_like(table)
        bufs = {"hashed": grad_t[plan.dense_rows:] if batch.inst == 1 else grad_t}
        if plan.n_dense:
            bufs["dense"] = torch.zeros(plan.n_ext * batch.inst, n_feat, dtype=table.dtype, device=table.device)

    xs = x if batch.perm is None else x.index_select(0, batch.perm)

    def task(parts):
        ws = workspace(x.device)
        grad_x = torch.zeros(x.shape[1], m_total, dtype=x.dtype, device=x.device) if need_x else None
        for start, xT in sample_chunks(plan, xs):
            m = xT.shape[1]
            g_chunk = g3[start:start + m] if batch.perm is None else take_rows(g3, batch, start, m, ws)
            for part in parts:
                idx, w, pairs, frac = part_chunk(part, plan, xT, batch, start, ws)
                gc = g_chunk[:, part.lv]                                          # [m, Lp, F]
                if need_t:
                    scatter(bufs[part.source], idx, w, gc, ws)
                if need_x:
                    grad_x[:, start:start + m] += x_grad(plan, part, idx, pairs, frac, sources[part.source], gc)
        return grad_x

    partial = run_groups(plan, task, m_total)
    grad_x = None
    if need_x:
        grad_x = torch.stack(partial).sum(0)                                      # [d, M] processed order
        if batch.perm is not None:
            grad_x = torch.empty_like(grad_x).index_copy_(1, batch.perm, grad_x)
        grad_x = grad_x.T.contiguous()
    if need_t and plan.n_dense:  # fold the padded dense rows back onto the table rows
        rows = padded_rows(plan, batch)
        dst, src = row_view(grad_t), row_view(bufs["dense"])
        if dst is not None:
            dst.index_add_(0, rows, src)
        else:
            flat = (rows.unsqueeze(1) * n_feat + torch.arange(n_feat, device=rows.device)).view(-1)
            grad_t.view(-1).index_add_(0, flat, bufs["dense"].view(-1))
    return grad_x, grad_t


def x_grad(plan: Plan, part: Part, idx, pairs, frac, src, gc) -> torch.Tensor:
    """x-gradient of <gc, out> for one chunk and part: [d, m]."""
    C, m, n_lv = idx.shape
    d = plan.n_dims
    rows = row_view(src)
    if rows is not None and rows.is_complex():  # <g, v> = Re(v * conj(g))
        vals = rows.index_select(0, idx.reshape(-1)).view(C, m, n_lv)
        G = (vals * torch.view_as_complex(gc).conj()).real
    else:
        vals = src.index_select(0, idx.reshape(-1)).view(C, m, n_lv, -1)
        G = (vals * gc).sum(-1)
    G = G.reshape(*([2] * d), m, n_lv)                      # corner axes: dim d-1 ... dim 0
    ds = smooth_frac_deriv(frac, plan.smooth) * part.scales(frac.dtype)   # d s / d x   [d, m, Lp]
    out = []
    for j in range(d):  # over axes only
        pos = d - 1 - j
        diff = G.select(pos, 1) - G.select(pos, 0)
        for k in range(d - 1, -1, -1):
            if k != j:  # the leading remaining corner axis is the highest k != j
                diff = (diff * pairs[k].view(2, *([1] * (diff.dim() - 3)), m, n_lv)).sum(0)
        out.append((diff * ds[j]).sum(-1))
    return torch.stack(out)
