"""Per chunk of samples: grid positions, the 2**d corner rows of each level and their
interpolation weights (the index arithmetic of tcnn's grid.h, int32 where exact)."""
from __future__ import annotations

import torch

from .batch import Batch
from .plan import Part, Plan
from .workspace import Fresh

# ------------------------------------------------------------------------------------------------
# fast path. Per chunk every tensor is [2**d (corners) or d (axes), m (samples), Lp (levels)]:
# broadcasts run over the outer dims while every operand is contiguous along the level dim,
# which PyTorch's vectorised CPU loops need (~10x faster than broadcasting over a trailing dim of
# size 2 or 4; putting samples last instead, with per-level constants broadcast along them, was
# measured 3-6x slower). Index arithmetic is int32 where it cannot overflow (int64 multiplies
# are not vectorised on x86; 3-4x slower).


def combine(pairs: torch.Tensor, op, ws=Fresh, name: str = "comb") -> torch.Tensor:
    """Per-axis values [d, 2, m, Lp] -> per-corner [2**d, m, Lp]; bit j of the corner is axis j."""
    d = pairs.shape[0]
    acc = pairs[d - 1]
    for j in range(d - 2, -1, -1):  # over axes (2 or 3), not levels or corners
        a, b = acc.unsqueeze(1), pairs[j].unsqueeze(0)
        if ws is Fresh:  # differentiable
            acc = op(a, b).flatten(0, 1)
        else:
            acc = op(a, b, out=ws.get(f"{name}{j}", (acc.shape[0], 2, *acc.shape[1:]), acc.dtype, acc.device))
            acc = acc.flatten(0, 1)
    return acc


def smooth_frac(frac: torch.Tensor, smooth: bool) -> torch.Tensor:
    return frac * frac * (3.0 - 2.0 * frac) if smooth else frac


def smooth_frac_deriv(frac: torch.Tensor, smooth: bool) -> torch.Tensor:
    return 6.0 * frac * (1.0 - frac) if smooth else torch.ones_like(frac)


def positions(x: torch.Tensor, scales64: torch.Tensor, ws=Fresh) -> torch.Tensor:
    """pos = x * scale + 0.5 rounded once, like tcnn's fmaf: for float32 x the float64 result is
    exact and is rounded to float32 once (so floor() agrees with tcnn at cell boundaries).
    x [..., 1] broadcast against scales [Lp] -> [..., Lp]."""
    if ws is Fresh:  # differentiable
        return x * scales64 + 0.5 if x.dtype == torch.float64 else (x.double() * scales64 + 0.5).to(x.dtype)
    shape = torch.broadcast_shapes(x.shape, scales64.shape)
    if x.dtype == torch.float64:
        pos = torch.mul(x, scales64, out=ws.get("pos", shape, x.dtype, x.device))
        return pos.add_(0.5)
    # exact in float64: x * scale has <= 48 significant bits and adding 0.5 keeps them.
    # (mul + add_ rather than addcmul: addcmul with broadcast operands is 2.5x slower)
    pos64 = torch.mul(x.double(), scales64, out=ws.get("pos64", shape, torch.float64, x.device)).add_(0.5)
    return ws.get("pos", shape, x.dtype, x.device).copy_(pos64)


def rows_fast(part: Part, plan: Plan, cell: torch.Tensor, batch: Batch, start: int, ws) -> torch.Tensor:
    """Corner rows [C, m, Lp] of one part into its source table (the padded dense rows; the hashed
    part of a shared table, or the whole [inst * R] table when per instance), in int32.
    cell: int32 cell coordinates [d, m, Lp] of inputs in [0, 1]. Per axis the two corner
    terms are cell * k and cell * k + k (k = stride or prime)."""
    d, m, n_lv = cell.shape
    terms = ws.get("terms", (d, 2, m, n_lv), torch.int32, cell.device)
    if part.hashed:
        torch.mul(cell, part.primes32_3, out=terms[:, 0])                # int32 wraps like uint32
        torch.add(terms[:, 0], part.primes32_3, out=terms[:, 1])
        terms &= plan.mask
        terms[0] |= part.hash_base32
        idx = combine(terms, torch.bitwise_xor, ws, "idx")
        if batch.inst > 1:
            idx += batch.inst_of(start, start + m, cell.device, torch.int32) * batch.rows + plan.dense_rows
    else:
        torch.mul(cell, part.stride32, out=terms[:, 0])
        terms[0, 0] += part.ext_off32
        torch.add(terms[:, 0], part.stride32, out=terms[:, 1])
        if batch.inst > 1:
            terms[0] += batch.inst_of(start, start + m, cell.device, torch.int32) * plan.n_ext
        idx = combine(terms, torch.add, ws, "idx")
    return idx


def rows_exact(part: Part, plan: Plan, cell: torch.Tensor, batch: Batch, start: int) -> torch.Tensor:
    """As `rows_fast`, for any input: int64 emulation of tcnn's uint32 arithmetic and `% rows`."""
    m = cell.shape[2]
    if part.hashed:
        terms = (cell + part.bit) * part.primes & plan.mask
        terms[0] |= part.hash_base
        idx = combine(terms, torch.bitwise_xor)
        if batch.inst > 1:
            idx += batch.inst_of(start, start + m, cell.device, torch.int64) * batch.rows + plan.dense_rows
    else:
        idx = combine(cell * part.stride + part.add_exact, torch.add)
        idx = (idx & 0xFFFFFFFF) % part.sizes + part.ext_off
        if batch.inst > 1:
            idx += batch.inst_of(start, start + m, cell.device, torch.int64) * plan.n_ext
    return idx


def part_chunk(part: Part, plan: Plan, xT: torch.Tensor, batch: Batch, start: int, ws=Fresh):
    """Rows [C, m, Lp], weights [C, m, Lp], weight pairs (1 - s, s) [d, 2, m, Lp] and frac
    [d, m, Lp] of one part for the chunk xT [d, m]. With a `Workspace` they are views into
    its buffers, valid until the next call."""
    pos = positions(xT.unsqueeze(-1), part.scales64, ws)
    if batch.exact or batch.wide:
        cell = torch.floor(pos)
        frac = pos - cell
        idx = rows_exact(part, plan, cell.long().unsqueeze(1), batch, start)
    else:  # pos >= 0.5 here, so truncation is floor
        frac = torch.frac(pos, out=ws.get("frac", pos.shape, pos.dtype, pos.device))
        cell = ws.get("cell", pos.shape, torch.int32, pos.device).copy_(pos)
        idx = rows_fast(part, plan, cell, batch, start, ws)
    s = frac
    if plan.smooth:
        s = torch.mul(frac, -2.0, out=ws.get("s", frac.shape, frac.dtype, frac.device)).add_(3.0).mul_(frac).mul_(frac)
    d, m, n_lv = frac.shape
    pairs = ws.get("pairs", (d, 2, m, n_lv), frac.dtype, frac.device)      # (1 - s, s)
    torch.sub(1.0, s, out=pairs[:, 0])
    pairs[:, 1].copy_(s)
    return idx, combine(pairs, torch.mul, ws, "w"), pairs, frac
