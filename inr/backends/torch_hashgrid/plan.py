"""A grid layout's constants on one device, with its levels cut into parts (runs of dense or of
hashed levels) grouped per worker thread; cached per (config, dims, device, workers)."""
from __future__ import annotations

import torch

from ..contracts import PRIMES, HashGridConfig, grid_layout

I32_MAX = 2**31 - 1


def wrap_i32(v: int) -> int:
    """The int32 with the same bits as uint32 `v` (for the primes > 2**31)."""
    return v - (1 << 32) if v >= 1 << 31 else v


class Part:
    """A run of levels `lv` of one kind (dense or hashed) handled by one worker."""

    def __init__(self, plan: "Plan", lv: slice, hashed: bool, worker: int):
        lay, d, dev = plan.layout, plan.n_dims, plan.device
        levels = list(range(plan.config.n_levels))[lv]
        n = len(levels)
        self.lv, self.hashed, self.worker, self.n_levels = lv, hashed, worker, n
        self.level_ids = torch.tensor(levels, dtype=torch.int64, device=dev)
        self.source = "hashed" if hashed else "dense"
        long = dict(dtype=torch.int64, device=dev)
        self.scales64 = torch.tensor([lay.scales[lvl] for lvl in levels], dtype=torch.float64, device=dev)
        bit = torch.tensor([0, 1], **long).view(1, 2, 1, 1)
        if hashed:
            # every hashed level has 2**T rows: `% rows` is a mask, and within the hashed part of
            # the table a level's offset (k << T) has no low bits, so it is OR-ed into the x term
            k = torch.tensor([lvl - plan.n_dense for lvl in levels], **long)
            self.hash_base = (k << plan.config.log2_hashmap_size).view(1, 1, n)
            self.primes = torch.tensor(PRIMES[:d], **long).view(d, 1, 1, 1)
            self.primes32 = torch.tensor([wrap_i32(p) for p in PRIMES[:d]], dtype=torch.int32, device=dev).view(d, 1, 1, 1)
            self.primes32_3 = self.primes32.view(d, 1, 1)
            self.bit = bit
            self.hash_base32 = self.hash_base.int()
        else:
            res = [lay.resolutions[lvl] for lvl in levels]
            stride = torch.tensor([[r ** j for r in res] for j in range(d)], **long).view(d, 1, 1, n)
            ext_off = torch.tensor([plan.ext_offsets[lvl] for lvl in levels], **long).view(1, 1, n)
            self.stride, self.ext_off = stride, ext_off
            self.add_exact = bit * stride
            self.stride32 = stride.int().view(d, 1, n)
            self.ext_off32 = ext_off.int().view(1, n)
            self.sizes = torch.tensor([lay.sizes[lvl] for lvl in levels], **long).view(1, 1, n)
        self._dtypes: dict = {}

    def scales(self, dtype: torch.dtype) -> torch.Tensor:
        s = self._dtypes.get(dtype)
        if s is None:
            s = self._dtypes[dtype] = self.scales64.to(dtype)
        return s


class Plan:
    """A layout's constants on one device, with the levels cut into parts: runs of dense or of
    hashed levels (dense levels are a prefix), grouped per worker thread."""

    def __init__(self, config: HashGridConfig, n_dims: int, device: torch.device, n_workers: int = 1):
        lay = grid_layout(config, n_dims)
        self.config, self.layout, self.n_dims, self.device = config, lay, n_dims, device
        self.n_corners = 1 << n_dims
        self.smooth = config.interpolation == "smoothstep"
        L = config.n_levels
        n_dense = sum(not h for h in lay.hashed)
        self.n_dense, self.n_hashed = n_dense, L - n_dense
        self.dense_rows = lay.offsets[n_dense] if n_dense < L else lay.total_rows
        # Dense levels gather from a copy of their rows where each level is followed by its own
        # first rows again: for x in [0, 1] the cell index is at most res-1 per axis, so
        # cell + corner < rows + pad, and tcnn's `% rows` becomes a plain lookup.
        self.ext_offsets, ext_rows, self.n_ext = [], [], 0
        for lvl in range(n_dense):
            size, res = lay.sizes[lvl], lay.resolutions[lvl]
            pad = sum(res ** j for j in range(n_dims))
            self.ext_offsets.append(self.n_ext)
            ext_rows.append(lay.offsets[lvl] + torch.arange(size + pad, dtype=torch.int64, device=device) % size)
            self.n_ext += size + pad
        self.ext_rows = torch.cat(ext_rows) if ext_rows else None
        self.mask = (1 << config.log2_hashmap_size) - 1
        # levels are split into `n_workers` contiguous groups (the measured cost per level is
        # flat, and interleaving levels would make workers write the same cache lines), each
        # cut again at the dense/hashed boundary: the rows one worker touches are touched by no
        # other, so workers need no locks and results do not depend on scheduling
        self.n_workers = n_workers
        bounds = [round(k * L / n_workers) for k in range(n_workers + 1)]
        self.parts = []
        for k in range(n_workers):
            for a, b, hashed in ((0, n_dense, False), (n_dense, L, True)):
                lo, hi = max(a, bounds[k]), min(b, bounds[k + 1])
                if lo < hi:
                    self.parts.append(Part(self, slice(lo, hi), hashed, k))
        self.groups = [[p for p in self.parts if p.worker == k] for k in range(n_workers)]
        self.groups = [g for g in self.groups if g]
        # int32 index arithmetic is exact if every row index (and hashed offset) fits
        # (log2_hashmap_size <= 30 keeps the mask in int32)
        self.i32_ok = max(self.n_ext, lay.total_rows) <= I32_MAX and \
            (self.n_hashed << config.log2_hashmap_size) <= I32_MAX

    def fits_int32(self, table_rows: int, inst: int) -> bool:
        """Whether int32 index arithmetic is exact for a [table_rows, F] table of `inst` instances."""
        return self.i32_ok and table_rows <= I32_MAX and self.n_ext * inst <= I32_MAX


_PLANS: dict = {}


def plan_for(config: HashGridConfig, n_dims: int, device: torch.device, n_workers: int) -> Plan:
    key = (config, n_dims, str(device), n_workers)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) > 64:
            _PLANS.clear()
        plan = _PLANS[key] = Plan(config, n_dims, device, n_workers)
    return plan
