"""Table rows in and out: the weighted gathers of the forward, the scatters of the backward, and
the tables the parts read from (padded dense rows, hashed rows)."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .batch import Batch
from .plan import Part, Plan
from .workspace import Fresh

def gather(out: torch.Tensor, src: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, ws=Fresh) -> None:
    """out[i, l] = sum_c w[c, i, l] * src[idx[c, i, l]]  (out [m, Lp, F] is a view into the result)."""
    rows = row_view(src)
    if rows is not None:  # F = 2 (complex) or 1: gather, multiply, sum over the outer corner dim
        vals = torch.index_select(rows, 0, idx.reshape(-1), out=ws.get("vals", (idx.numel(),), rows.dtype, rows.device))
        vals = vals.view(idx.shape)
        if vals.is_complex():  # real * complex would cast element by element: convert once
            vals *= ws.get("wc", idx.shape, rows.dtype, rows.device).copy_(w)
            torch.sum(vals, 0, out=torch.view_as_complex(out))
        else:
            vals *= w
            torch.sum(vals, 0, out=out.squeeze(-1))
    else:  # F = 4, 8: embedding_bag (gather + weighted sum in one kernel) wants [bags, corners]
        out.copy_(F.embedding_bag(_bags(idx), src, mode="sum", per_sample_weights=_bags(w)).view(out.shape))


def row_view(t: torch.Tensor) -> torch.Tensor | None:
    """A [R, F] table as a 1-D tensor with one element per row: complex view for F = 2, the plain
    view for F = 1, None otherwise."""
    if t.shape[-1] == 2 and t.dtype in (torch.float32, torch.float64) and t.stride(-1) == 1:
        return torch.view_as_complex(t)
    if t.shape[-1] == 1:
        return t.view(-1)
    return None


def _bags(t: torch.Tensor) -> torch.Tensor:
    """[C, m, Lp] -> contiguous [m * Lp, C]. A copy into a fresh [m, Lp, C] tensor is ~5x faster
    than letting embedding_bag make its (2-D transposed) input contiguous."""
    C, m, n_lv = t.shape
    return torch.empty(m, n_lv, C, dtype=t.dtype, device=t.device).copy_(t.permute(1, 2, 0)).view(-1, C)


def gather_sources(plan: Plan, table: torch.Tensor, batch: Batch) -> dict:
    """The tables the parts gather from: padded dense rows, and the hashed rows."""
    if not torch.is_grad_enabled():
        # a view of a tensor that requires grad makes embedding_bag take its (much slower)
        # training path; the fast path's gradients are computed by hand anyway
        table = table.detach()
    out = {}
    if plan.n_dense:
        out["dense"] = table.index_select(0, padded_rows(plan, batch))
    if plan.n_hashed:
        out["hashed"] = table[plan.dense_rows:] if batch.inst == 1 else table
    return out


def padded_rows(plan: Plan, batch: Batch) -> torch.Tensor:
    rows = plan.ext_rows
    if batch.inst > 1:
        rows = (rows + torch.arange(batch.inst, device=rows.device).unsqueeze(1) * batch.rows).view(-1)
    return rows


def out_rows(batch: Batch, part: Part, start: int, m: int, ws) -> torch.Tensor:
    """Rows of the [M * L] (sample, level) output that the chunk's sorted samples own, [m, Lp]."""
    dst = ws.get("out_rows", (m, part.n_levels), torch.int64, batch.perm.device)
    return torch.add(batch.perm_rows[start:start + m].unsqueeze(1), part.level_ids, out=dst)


def put_rows(out: torch.Tensor, rows: torch.Tensor, res: torch.Tensor) -> None:
    """out.view(M * L, F)[rows] = res (res [m, Lp, F]); scatter_ is ~2x faster than index_copy_."""
    n_feat = out.shape[-1]
    dst = row_view(out.view(-1, n_feat))
    if dst is not None:
        dst.scatter_(0, rows.view(-1), row_view(res.view(-1, n_feat)))
    else:
        flat = rows.unsqueeze(-1) * n_feat + torch.arange(n_feat, device=rows.device)
        out.view(-1).scatter_(0, flat.view(-1), res.reshape(-1))


def take_rows(g3: torch.Tensor, batch: Batch, start: int, m: int, ws) -> torch.Tensor:
    """g3[perm[start:start + m]] ([m, L, F]): whole rows, which gather much faster than elements."""
    M, L, n_feat = g3.shape
    dst = ws.get("g_rows", (m, L * n_feat), g3.dtype, g3.device)
    return torch.index_select(g3.view(M, L * n_feat), 0, batch.perm[start:start + m], out=dst).view(m, L, n_feat)


def scatter(buf: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, gc: torch.Tensor, ws=Fresh) -> None:
    """buf[idx[c, i, l]] += w[c, i, l] * gc[i, l]  (rows of F features; scatter_add_ wants int64)."""
    rows = row_view(buf)
    if rows is not None:  # one element per row
        index = ws.get("index", idx.shape, torch.int64, idx.device).copy_(idx)
        vals = ws.get("src", idx.shape, rows.dtype, idx.device)
        if rows.is_complex():  # real -> complex once, then a complex multiply: much faster than mixed
            torch.mul(vals.copy_(w), torch.view_as_complex(gc), out=vals)
        else:
            torch.mul(w, gc.squeeze(-1), out=vals)
        rows.scatter_add_(0, index.view(-1), vals.view(-1))
    else:
        n_feat = buf.shape[-1]
        flat = idx.long().unsqueeze(-1) * n_feat + torch.arange(n_feat, device=idx.device)
        buf.view(-1).scatter_add_(0, flat.reshape(-1), (w.unsqueeze(-1) * gc).reshape(-1))
