"""`hashgrid_encode`: checks the inputs, lays out shared or per-instance tables, and runs the
fast path's autograd Function."""
from __future__ import annotations

import math

import torch

from ..contracts import HashGridConfig, grid_layout
from .batch import Batch, order_spatially
from .function import HashGridFn
from .plan import plan_for
from .workers import Workers

def hashgrid_encode(x: torch.Tensor, table: torch.Tensor, config: HashGridConfig) -> torch.Tensor:
    """Encode x in [0, 1]^d with grid `config` and parameters `table`.

    Shapes:
        x:     [..., d] with a shared table [total_rows, F];
               [B, N, d] (or [N, d], shared by all instances) with per-instance tables [B, total_rows, F]
    returns [..., L*F] (resp. [B, N, L*F]), level-major: level 0's F features first.

    Differentiable once w.r.t. `table` and twice w.r.t. `x`. Positions are computed in the
    table's dtype (float32 as in tcnn; float64 for gradchecks). Inputs outside [0, 1] wrap
    exactly as in tcnn (a slower path); non-finite inputs raise ValueError.

    >>> cfg = HashGridConfig(n_levels=2, log2_hashmap_size=8)
    >>> t = torch.zeros(grid_layout(cfg, 2).total_rows, 2)
    >>> hashgrid_encode(torch.rand(5, 2), t, cfg).shape
    torch.Size([5, 4])
    """
    if x.dim() < 1 or not x.dtype.is_floating_point:
        raise ValueError(f"x must be a floating point [..., d] tensor, got {x.dtype} {tuple(x.shape)}")
    d = x.shape[-1]
    layout = grid_layout(config, d)
    n_feat = config.n_features_per_level
    if table.dim() not in (2, 3) or tuple(table.shape[-2:]) != (layout.total_rows, n_feat):
        raise ValueError(f"table must be [{layout.total_rows}, {n_feat}] or [B, {layout.total_rows}, {n_feat}] "
                         f"for this grid with {d}-D inputs, got {tuple(table.shape)}")
    out_dtype = table.dtype
    if table.dtype not in (torch.float32, torch.float64):
        table = table.float()  # half/bfloat16 tables: compute in float32
    if table.dim() == 3:
        n_inst = table.shape[0]
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(n_inst, -1, -1)
        if x.dim() != 3 or x.shape[0] != n_inst:
            raise ValueError(f"per-instance tables [{n_inst}, R, F] need x [{n_inst}, N, d] or [N, d], "
                             f"got {tuple(x.shape)}")
        batch = Batch(x.shape[1], n_inst, layout.total_rows, False, False)
        flat_table = table.reshape(n_inst * layout.total_rows, n_feat)
    else:
        batch = Batch(max(1, x.numel() // d), 1, layout.total_rows, False, False)
        flat_table = table
    lead = x.shape[:-1]
    x2 = x.reshape(-1, d).to(flat_table.dtype).contiguous()
    if x2.shape[0] == 0:
        return torch.zeros(*lead, config.n_output_dims, dtype=out_dtype, device=x.device)
    flat_table = flat_table.contiguous()
    plan = plan_for(config, d, x2.device, Workers.layout()[0] if x2.device.type == "cpu" else 1)
    lo, hi = (float(v) for v in torch.aminmax(x2.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("hash grid inputs contain NaN or infinity")
    batch.exact = lo < 0 or hi > 1
    batch.wide = not plan.fits_int32(flat_table.shape[0], batch.inst)
    order_spatially(batch, x2, config.n_levels)
    out = HashGridFn.apply(x2, flat_table, plan, batch)
    return out.view(*lead, config.n_output_dims).to(out_dtype)
