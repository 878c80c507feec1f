"""The autograd Function of the fast path: threaded chunked forward; the hand-written backward,
or the plainly differentiable one when autograd asks for a graph (double backward)."""
from __future__ import annotations

import torch

from .backward import fast_backward
from .corners import part_chunk
from .plain import differentiable_backward
from .rows import gather, gather_sources, out_rows, put_rows
from .workers import run_groups, sample_chunks
from .workspace import workspace

class HashGridFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, plan, batch):
        # x [M, d]; table [inst * R, F] (flattened)
        m_total, n_feat = x.shape[0], table.shape[-1]
        sources = gather_sources(plan, table, batch)
        # sorted samples write their rows in random order: fault the pages in sequentially first
        # (random first touches from two threads were ~4x slower here)
        alloc = torch.empty if batch.perm is None else torch.zeros
        out = alloc(m_total, plan.config.n_levels, n_feat, dtype=table.dtype, device=x.device)

        xs = x if batch.perm is None else x.index_select(0, batch.perm)

        def task(parts):
            ws = workspace(x.device)
            for start, xT in sample_chunks(plan, xs):
                m = xT.shape[1]
                for part in parts:
                    idx, w, _, _ = part_chunk(part, plan, xT, batch, start, ws)
                    if batch.perm is None:
                        gather(out[start:start + m, part.lv], sources[part.source], idx, w, ws)
                    else:  # results of sorted samples go back to their own rows
                        res = ws.get("res", (m, part.n_levels, n_feat), out.dtype, out.device)
                        gather(res, sources[part.source], idx, w, ws)
                        put_rows(out, out_rows(batch, part, start, m, ws), res)

        run_groups(plan, task, m_total)
        ctx.save_for_backward(x, table)
        ctx.plan, ctx.batch = plan, batch
        return out.view(m_total, -1)

    @staticmethod
    def backward(ctx, grad_out):
        x, table = ctx.saved_tensors
        plan, batch = ctx.plan, ctx.batch
        grad_out = grad_out.contiguous()  # e.g. expanded by .sum()
        need_x, need_t = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if torch.is_grad_enabled():  # create_graph: a plainly differentiable formulation
            grad_x, grad_t = differentiable_backward(x, table, grad_out, plan, batch, need_x, need_t)
        else:
            grad_x, grad_t = fast_backward(x, table, grad_out, plan, batch, need_x, need_t)
        return grad_x, grad_t, None, None
