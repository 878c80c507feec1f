"""Multiresolution hash encoding (Müller et al. 2022) with tiny-cuda-nn's exact semantics.

Per level l (tcnn grid.h):

    scale_l = base_resolution * per_level_scale**l - 1        (float32, as tcnn computes it)
    res_l   = ceil(scale_l) + 1
    pos     = x * scale_l + 0.5;  cell = floor(pos);  frac = pos - cell   (smoothstep: f*f*(3-2f))
    rows_l  = min(next_multiple(res_l**d, 8), 2**T)
    index   = dense, x fastest (x + y*res + z*res*res)          if res_l**d <= rows_l
              (x*1) ^ (y*2654435761) ^ (z*805459861) mod 2**32  otherwise (hashed)
    row     = offset_l + index % rows_l

and the output is the d-linear interpolation of the 2**d corner rows, level-major ([..., L*F]).
All levels live in ONE table [total_rows, F] laid out as tcnn's parameter buffer, so weights can
be exchanged with tcnn/instant-ngp.

The fast path (`hashgrid_encode`) is pure PyTorch, built for CPU throughput (numbers in the
comments were measured on a 2-core EPYC VM, 2-D, L=16, F=2):
- samples are processed in chunks, and every per-chunk temporary lives in a reused per-thread
  workspace: a fresh multi-MB tensor per op costs more in page faults than its arithmetic;
- per chunk, tensors are corner-major [2**d, m, L]: broadcasts run over outer dims with long
  inner loops (~10x faster than over a trailing dim of size 2 or 4); index arithmetic is int32;
- F=2 rows are gathered and scattered as single complex64 elements;
- the backward is hand-written: rows and weights are recomputed per chunk (cheaper than storing
  them) and `scatter_add_` accumulates w * grad_out; x-gradients only when x requires grad;
- worker threads each own a contiguous group of levels (disjoint table rows: no locks,
  deterministic results) and run single-threaded ops, instead of intra-op threading;
- large batches are processed in Z-order of the inputs, so nearby samples reuse cached rows;
- dense levels gather from a copy of their rows padded with each level's first rows, so tcnn's
  wraparound `index % rows` at the upper edges needs no per-corner modulo.
Double backward (eikonal losses) goes through a plainly differentiable formulation instead.
`hashgrid_reference.py` is the slow, obviously-correct version the tests compare against.
"""
from __future__ import annotations

import math
import os
import threading
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)
INTERPOLATIONS = ("linear", "smoothstep")
GRID_TYPES = ("hash", "dense")

# tcnn JSON keys that mean something here (others raise): see tcnn's create_grid_encoding.
_TCNN_KEYS = ("otype", "type", "n_levels", "n_features", "n_features_per_level", "log2_hashmap_size",
              "base_resolution", "per_level_scale", "interpolation", "stochastic_interpolation", "hash")


@dataclass(frozen=True)
class HashGridConfig:
    """Hash-grid hyper-parameters, instant-ngp's defaults.

    `finest_resolution`, when given, sets `per_level_scale = exp(ln(finest/base) / (L-1))` as
    instant-ngp/nerfstudio do (the derived value is stored, so `to_dict` round trips exactly).
    `grid_type="dense"` never hashes (tcnn's DenseGrid); "hash" is tcnn's HashGrid.

    >>> HashGridConfig(finest_resolution=512).per_level_scale  # doctest: +ELLIPSIS
    1.2599...
    """

    n_levels: int = 16
    n_features_per_level: int = 2
    log2_hashmap_size: int = 19
    base_resolution: int = 16
    per_level_scale: float = 2.0
    finest_resolution: int | None = None
    interpolation: str = "linear"
    grid_type: str = "hash"

    def __post_init__(self):
        for name in ("n_levels", "n_features_per_level", "log2_hashmap_size", "base_resolution"):
            value = getattr(self, name)
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"HashGridConfig.{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))
        if self.log2_hashmap_size > 30:
            raise ValueError(f"HashGridConfig.log2_hashmap_size must be <= 30, got {self.log2_hashmap_size}")
        interp = str(self.interpolation).lower()
        if interp not in INTERPOLATIONS:
            raise ValueError(f"HashGridConfig.interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        object.__setattr__(self, "interpolation", interp)
        gtype = str(self.grid_type).lower()
        if gtype not in GRID_TYPES:
            raise ValueError(f"HashGridConfig.grid_type must be one of {GRID_TYPES}, got {self.grid_type!r}")
        object.__setattr__(self, "grid_type", gtype)
        if self.finest_resolution is not None:
            finest = self.finest_resolution
            if int(finest) != finest or finest < self.base_resolution:
                raise ValueError(f"HashGridConfig.finest_resolution must be an integer >= base_resolution "
                                 f"({self.base_resolution}), got {finest!r}")
            object.__setattr__(self, "finest_resolution", int(finest))
            derived = (math.exp(math.log(finest / self.base_resolution) / (self.n_levels - 1))
                       if self.n_levels > 1 else 1.0)
            default = HashGridConfig.__dataclass_fields__["per_level_scale"].default
            given = float(self.per_level_scale)
            if given != default and not math.isclose(given, derived, rel_tol=1e-9):
                raise ValueError(f"HashGridConfig: per_level_scale {given} disagrees with finest_resolution "
                                 f"{finest} (which implies {derived}); give one of them")
            object.__setattr__(self, "per_level_scale", derived)
        if not float(self.per_level_scale) >= 1.0:
            raise ValueError(f"HashGridConfig.per_level_scale must be >= 1, got {self.per_level_scale!r}")
        object.__setattr__(self, "per_level_scale", float(self.per_level_scale))

    @property
    def n_output_dims(self) -> int:
        return self.n_levels * self.n_features_per_level

    def to_dict(self) -> dict:
        """Plain-JSON dump; `from_dict(to_dict())` gives an equal config."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "HashGridConfig":
        """Our own field names (as `to_dict` writes them); unknown keys raise ValueError naming the key."""
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise ValueError(f"HashGridConfig: unknown key {key!r}; known keys: {sorted(known)}")
        return cls(**d)

    @classmethod
    def from_tcnn(cls, d: dict) -> "HashGridConfig":
        """A tiny-cuda-nn grid encoding dict, e.g. ``{"otype": "HashGrid", "n_levels": 16, ...}``.

        Accepts otype HashGrid / DenseGrid / Grid (with "type": "Hash" or "Dense"), tcnn's
        defaults for missing keys, "interpolation" Linear/Smoothstep. Unknown keys, and tcnn
        features not implemented here (Nearest, Tiled grids, stochastic interpolation, other hash
        functions), raise ValueError naming the key.
        """
        for key in d:
            if key not in _TCNN_KEYS:
                raise ValueError(f"tcnn grid encoding: unknown key {key!r}; known keys: {list(_TCNN_KEYS)}")
        otype = str(d.get("otype", "Grid"))
        default_type = {"hashgrid": "Hash", "densegrid": "Dense", "grid": "Hash"}.get(otype.lower())
        if default_type is None:
            raise ValueError(f"tcnn grid encoding: key 'otype' must be HashGrid, DenseGrid or Grid, got {otype!r}")
        gtype = str(d.get("type", default_type)).lower()
        if gtype not in GRID_TYPES:
            raise ValueError(f"tcnn grid encoding: key 'type' must be Hash or Dense here, got {d['type']!r}")
        n_feat = int(d.get("n_features_per_level", 2))
        if "n_features" in d:
            if "n_levels" in d:
                raise ValueError("tcnn grid encoding: keys 'n_features' and 'n_levels' are exclusive")
            n_levels = -(-int(d["n_features"]) // n_feat)
        else:
            n_levels = int(d.get("n_levels", 16))
        if d.get("stochastic_interpolation", False):
            raise ValueError("tcnn grid encoding: key 'stochastic_interpolation' = true is not supported")
        if str(d.get("hash", "CoherentPrime")).lower() != "coherentprime":
            raise ValueError(f"tcnn grid encoding: key 'hash' must be CoherentPrime, got {d['hash']!r}")
        interp = str(d.get("interpolation", "Linear"))
        if interp.lower() not in INTERPOLATIONS:
            raise ValueError(f"tcnn grid encoding: key 'interpolation' must be Linear or Smoothstep, got {interp!r}")
        return cls(n_levels=n_levels, n_features_per_level=n_feat,
                   log2_hashmap_size=int(d.get("log2_hashmap_size", 19)),
                   base_resolution=int(d.get("base_resolution", 16)),
                   per_level_scale=float(d.get("per_level_scale", 2.0)),
                   interpolation=interp.lower(), grid_type=gtype)

    def to_tcnn(self) -> dict:
        """The equivalent tiny-cuda-nn encoding dict."""
        return {"otype": "Grid", "type": self.grid_type.capitalize(), "n_levels": self.n_levels,
                "n_features_per_level": self.n_features_per_level,
                "log2_hashmap_size": self.log2_hashmap_size, "base_resolution": self.base_resolution,
                "per_level_scale": self.per_level_scale, "interpolation": self.interpolation.capitalize()}


@dataclass(frozen=True)
class GridLayout:
    """Per-level geometry of a grid for `n_dims` inputs (python numbers, tcnn's values)."""

    n_dims: int
    scales: tuple[float, ...]       # float32 values, as tcnn computes them
    resolutions: tuple[int, ...]
    sizes: tuple[int, ...]          # table rows per level
    offsets: tuple[int, ...]        # first row of each level
    hashed: tuple[bool, ...]
    total_rows: int


@lru_cache(maxsize=64)
def grid_layout(config: HashGridConfig, n_dims: int) -> GridLayout:
    """Level scales, resolutions, table sizes and offsets exactly as tcnn's GridEncoding builds them."""
    if n_dims < 1 or n_dims > len(PRIMES):
        raise ValueError(f"hash grid needs 1 to {len(PRIMES)} input dims, got {n_dims}")
    log2_scale = np.float32(math.log2(config.per_level_scale))
    scales, resolutions, sizes, offsets, hashed = [], [], [], [], []
    offset = 0
    for lvl in range(config.n_levels):
        scale = np.float32(np.exp2(np.float32(lvl) * log2_scale)) * np.float32(config.base_resolution) - np.float32(1)
        res = int(math.ceil(float(scale))) + 1
        dense = res ** n_dims
        size = -(-min(dense, 2**31 - 1) // 8) * 8
        if config.grid_type == "hash":
            size = min(size, 1 << config.log2_hashmap_size)
        scales.append(float(scale))
        resolutions.append(res)
        sizes.append(size)
        offsets.append(offset)
        hashed.append(config.grid_type == "hash" and dense > size)
        offset += size
    if any(hashed[i] and not hashed[i + 1] for i in range(len(hashed) - 1)):
        raise AssertionError("hashed levels must follow dense ones")  # resolution grows with the level
    return GridLayout(n_dims, tuple(scales), tuple(resolutions), tuple(sizes), tuple(offsets), tuple(hashed), offset)


# ------------------------------------------------------------------------------------------------
# fast path. Per chunk every tensor is [2**d (corners) or d (axes), m (samples), Lp (levels)]:
# broadcasts run over the outer dims while every operand is contiguous along the level dim,
# which PyTorch's vectorised CPU loops need (~10x faster than broadcasting over a trailing dim of
# size 2 or 4; putting samples last instead, with per-level constants broadcast along them, was
# measured 3-6x slower). Index arithmetic is int32 where it cannot overflow (int64 multiplies
# are not vectorised on x86; 3-4x slower).

_I32_MAX = 2**31 - 1


def _wrap_i32(v: int) -> int:
    """The int32 with the same bits as uint32 `v` (for the primes > 2**31)."""
    return v - (1 << 32) if v >= 1 << 31 else v


class _Part:
    """A run of levels `lv` of one kind (dense or hashed) handled by one worker."""

    def __init__(self, plan: "_Plan", lv: slice, hashed: bool, worker: int):
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
            self.primes32 = torch.tensor([_wrap_i32(p) for p in PRIMES[:d]], dtype=torch.int32, device=dev).view(d, 1, 1, 1)
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


class _Plan:
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
                    self.parts.append(_Part(self, slice(lo, hi), hashed, k))
        self.groups = [[p for p in self.parts if p.worker == k] for k in range(n_workers)]
        self.groups = [g for g in self.groups if g]
        # int32 index arithmetic is exact if every row index (and hashed offset) fits
        # (log2_hashmap_size <= 30 keeps the mask in int32)
        self.i32_ok = max(self.n_ext, lay.total_rows) <= _I32_MAX and \
            (self.n_hashed << config.log2_hashmap_size) <= _I32_MAX


_PLANS: dict = {}


def _plan(config: HashGridConfig, n_dims: int, device: torch.device, n_workers: int) -> _Plan:
    key = (config, n_dims, str(device), n_workers)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) > 64:
            _PLANS.clear()
        plan = _PLANS[key] = _Plan(config, n_dims, device, n_workers)
    return plan


class _Batch:
    """How samples map onto tables: `n_per` samples per instance, `inst` tables (1 = shared), and
    whether index arithmetic must be the exact int64 emulation of tcnn's uint32 (x outside
    [0, 1], or row indices beyond int32)."""

    perm = None           # processing order of the samples (see _spatial_order), or None
    perm_rows = None      # perm * n_levels: first output row (of L) of each processed sample

    def __init__(self, n_per: int, inst: int, rows: int, exact: bool, wide: bool):
        self.n_per, self.inst, self.rows, self.exact, self.wide = n_per, inst, rows, exact, wide

    def inst_of(self, start: int, stop: int, device, dtype) -> torch.Tensor:
        orig = torch.arange(start, stop, device=device) if self.perm is None else self.perm[start:stop]
        return (orig // self.n_per).to(dtype).view(1, -1, 1)

    def unsorted(self) -> "_Batch":
        return _Batch(self.n_per, self.inst, self.rows, self.exact, self.wide)


def _spread_bits(v: torch.Tensor, d: int) -> torch.Tensor:
    """Insert d-1 zero bits between the low 10 bits of v (Morton / Z-order interleaving)."""
    if d == 2:
        for shift, mask in ((8, 0x00FF00FF), (4, 0x0F0F0F0F), (2, 0x33333333), (1, 0x55555555)):
            v = (v | (v << shift)) & mask
    else:
        for shift, mask in ((16, 0x030000FF), (8, 0x0300F00F), (4, 0x030C30C3), (2, 0x09249249)):
            v = (v | (v << shift)) & mask
    return v


def _spatial_order(x: torch.Tensor, batch: _Batch) -> torch.Tensor:
    """A permutation of the samples in Z-order (10 bits per axis, instances kept apart). Processed
    in this order, consecutive samples hit the same or nearby table rows, so gathers and scatters
    mostly hit L1/L2 instead of L3 (2-D: those ops ~2x faster); after paying for the sort and for
    moving rows back to their own order, 2-D fwd+bwd is ~5-10% faster, 3-D about even."""
    d = x.shape[1]
    q = (x.detach().clamp(0, 1) * 1023).to(torch.int32)
    code = _spread_bits(q[:, 0], d)
    for j in range(1, d):
        code |= _spread_bits(q[:, j], d) << j
    if batch.inst > 1:
        code = code.long() | (torch.arange(x.shape[0], device=x.device) // batch.n_per) << (10 * d)
    return torch.argsort(code)


SORT_MIN_SAMPLES = 1 << 14    # sort larger CPU batches spatially (0 disables)


class _Workspace:
    """Reusable buffers, one set per thread. glibc hands multi-MB blocks back to the OS when they
    are freed, so a fresh temporary per chunk costs more in page faults than its arithmetic;
    every per-chunk temporary of the fast path lives here instead."""

    def __init__(self):
        self.bufs: dict = {}

    def get(self, name: str, shape, dtype: torch.dtype, device) -> torch.Tensor:
        n = math.prod(shape)
        buf = self.bufs.get(name)
        if buf is None or buf.dtype != dtype or buf.device != device or buf.numel() < n:
            buf = self.bufs[name] = torch.empty(n, dtype=dtype, device=device)
        return buf[:n].view(shape)


class _Fresh:
    """The workspace interface with plain allocation: for results autograd keeps (double-backward
    path) and for devices with a caching allocator."""

    @staticmethod
    def get(name: str, shape, dtype: torch.dtype, device) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device=device)


_TLS = threading.local()


def _workspace(device) -> "_Workspace | _Fresh":
    if torch.device(device).type != "cpu":
        return _Fresh
    ws = getattr(_TLS, "ws", None)
    if ws is None:
        ws = _TLS.ws = _Workspace()
    return ws


def _combine(pairs: torch.Tensor, op, ws=_Fresh, name: str = "comb") -> torch.Tensor:
    """Per-axis values [d, 2, m, Lp] -> per-corner [2**d, m, Lp]; bit j of the corner is axis j."""
    d = pairs.shape[0]
    acc = pairs[d - 1]
    for j in range(d - 2, -1, -1):  # over axes (2 or 3), not levels or corners
        a, b = acc.unsqueeze(1), pairs[j].unsqueeze(0)
        if ws is _Fresh:  # differentiable
            acc = op(a, b).flatten(0, 1)
        else:
            acc = op(a, b, out=ws.get(f"{name}{j}", (acc.shape[0], 2, *acc.shape[1:]), acc.dtype, acc.device))
            acc = acc.flatten(0, 1)
    return acc


def _smooth(frac: torch.Tensor, smooth: bool) -> torch.Tensor:
    return frac * frac * (3.0 - 2.0 * frac) if smooth else frac


def _smooth_deriv(frac: torch.Tensor, smooth: bool) -> torch.Tensor:
    return 6.0 * frac * (1.0 - frac) if smooth else torch.ones_like(frac)


def _positions(x: torch.Tensor, scales64: torch.Tensor, ws=_Fresh) -> torch.Tensor:
    """pos = x * scale + 0.5 rounded once, like tcnn's fmaf: for float32 x the float64 result is
    exact and is rounded to float32 once (so floor() agrees with tcnn at cell boundaries).
    x [..., 1] broadcast against scales [Lp] -> [..., Lp]."""
    if ws is _Fresh:  # differentiable
        return x * scales64 + 0.5 if x.dtype == torch.float64 else (x.double() * scales64 + 0.5).to(x.dtype)
    shape = torch.broadcast_shapes(x.shape, scales64.shape)
    if x.dtype == torch.float64:
        pos = torch.mul(x, scales64, out=ws.get("pos", shape, x.dtype, x.device))
        return pos.add_(0.5)
    # exact in float64: x * scale has <= 48 significant bits and adding 0.5 keeps them.
    # (mul + add_ rather than addcmul: addcmul with broadcast operands is 2.5x slower)
    pos64 = torch.mul(x.double(), scales64, out=ws.get("pos64", shape, torch.float64, x.device)).add_(0.5)
    return ws.get("pos", shape, x.dtype, x.device).copy_(pos64)


def _rows_fast(part: _Part, plan: _Plan, cell: torch.Tensor, batch: _Batch, start: int, ws) -> torch.Tensor:
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
        idx = _combine(terms, torch.bitwise_xor, ws, "idx")
        if batch.inst > 1:
            idx += batch.inst_of(start, start + m, cell.device, torch.int32) * batch.rows + plan.dense_rows
    else:
        torch.mul(cell, part.stride32, out=terms[:, 0])
        terms[0, 0] += part.ext_off32
        torch.add(terms[:, 0], part.stride32, out=terms[:, 1])
        if batch.inst > 1:
            terms[0] += batch.inst_of(start, start + m, cell.device, torch.int32) * plan.n_ext
        idx = _combine(terms, torch.add, ws, "idx")
    return idx


def _rows_exact(part: _Part, plan: _Plan, cell: torch.Tensor, batch: _Batch, start: int) -> torch.Tensor:
    """As `_rows_fast`, for any input: int64 emulation of tcnn's uint32 arithmetic and `% rows`."""
    m = cell.shape[2]
    if part.hashed:
        terms = (cell + part.bit) * part.primes & plan.mask
        terms[0] |= part.hash_base
        idx = _combine(terms, torch.bitwise_xor)
        if batch.inst > 1:
            idx += batch.inst_of(start, start + m, cell.device, torch.int64) * batch.rows + plan.dense_rows
    else:
        idx = _combine(cell * part.stride + part.add_exact, torch.add)
        idx = (idx & 0xFFFFFFFF) % part.sizes + part.ext_off
        if batch.inst > 1:
            idx += batch.inst_of(start, start + m, cell.device, torch.int64) * plan.n_ext
    return idx


def _part_chunk(part: _Part, plan: _Plan, xT: torch.Tensor, batch: _Batch, start: int, ws=_Fresh):
    """Rows [C, m, Lp], weights [C, m, Lp], weight pairs (1 - s, s) [d, 2, m, Lp] and frac
    [d, m, Lp] of one part for the chunk xT [d, m]. With a `_Workspace` they are views into
    its buffers, valid until the next call."""
    pos = _positions(xT.unsqueeze(-1), part.scales64, ws)
    if batch.exact or batch.wide:
        cell = torch.floor(pos)
        frac = pos - cell
        idx = _rows_exact(part, plan, cell.long().unsqueeze(1), batch, start)
    else:  # pos >= 0.5 here, so truncation is floor
        frac = torch.frac(pos, out=ws.get("frac", pos.shape, pos.dtype, pos.device))
        cell = ws.get("cell", pos.shape, torch.int32, pos.device).copy_(pos)
        idx = _rows_fast(part, plan, cell, batch, start, ws)
    s = frac
    if plan.smooth:
        s = torch.mul(frac, -2.0, out=ws.get("s", frac.shape, frac.dtype, frac.device)).add_(3.0).mul_(frac).mul_(frac)
    d, m, n_lv = frac.shape
    pairs = ws.get("pairs", (d, 2, m, n_lv), frac.dtype, frac.device)      # (1 - s, s)
    torch.sub(1.0, s, out=pairs[:, 0])
    pairs[:, 1].copy_(s)
    return idx, _combine(pairs, torch.mul, ws, "w"), pairs, frac


def _gather(out: torch.Tensor, src: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, ws=_Fresh) -> None:
    """out[i, l] = sum_c w[c, i, l] * src[idx[c, i, l]]  (out [m, Lp, F] is a view into the result)."""
    rows = _row_view(src)
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


def _row_view(t: torch.Tensor) -> torch.Tensor | None:
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


def _sources(plan: _Plan, table: torch.Tensor, batch: _Batch) -> dict:
    """The tables the parts gather from: padded dense rows, and the hashed rows."""
    if not torch.is_grad_enabled():
        # a view of a tensor that requires grad makes embedding_bag take its (much slower)
        # training path; the fast path's gradients are computed by hand anyway
        table = table.detach()
    out = {}
    if plan.n_dense:
        out["dense"] = table.index_select(0, _ext_rows(plan, batch))
    if plan.n_hashed:
        out["hashed"] = table[plan.dense_rows:] if batch.inst == 1 else table
    return out


def _ext_rows(plan: _Plan, batch: _Batch) -> torch.Tensor:
    rows = plan.ext_rows
    if batch.inst > 1:
        rows = (rows + torch.arange(batch.inst, device=rows.device).unsqueeze(1) * batch.rows).view(-1)
    return rows


CHUNK_CORNERS = 1 << 19


def _chunk_size(plan: _Plan) -> int:
    # samples per chunk: below ~2**18 corner lookups per chunk the per-op overhead dominates
    # (2**16: 2.5x slower), above 2**20 temporaries fall out of cache
    return max(64, CHUNK_CORNERS // (plan.config.n_levels * plan.n_corners))


# Parallelism. PyTorch's intra-op threading is a poor fit here: every chunk runs ~30 small ops,
# each a fork/join of the OpenMP team, and scatter_add_ is serial anyway. Instead each worker
# thread owns a group of levels for all chunks and runs its ops single-threaded (2 cores: about
# 1.2-1.6x faster than intra-op threads, which also spin badly when the machine is shared).

MIN_PARALLEL_CORNERS = 1 << 16   # below this many corner lookups, run inline


def _init_worker(n_threads: int) -> None:
    torch.get_num_threads()          # PyTorch's per-thread lazy init first, or it would undo this
    torch.set_num_threads(n_threads)


class _Workers:
    """One single-thread executor per level group, created lazily and re-created when
    torch.get_num_threads() changes."""

    _key = None
    _pools: list = []

    @staticmethod
    def layout() -> tuple[int, int]:
        """(number of workers, intra-op threads each) for the current torch thread count."""
        n = torch.get_num_threads()
        workers = max(1, min(n, 8))
        return workers, max(1, n // workers)

    @classmethod
    def pools(cls, n_workers: int, each: int) -> list:
        key = (n_workers, each, os.getpid())  # a forked child has none of the parent's threads
        if cls._key != key:
            from concurrent.futures import ThreadPoolExecutor
            for pool in cls._pools:
                pool.shutdown(wait=False)
            main_threads = torch.get_num_threads()
            cls._pools = [ThreadPoolExecutor(1, thread_name_prefix="inr-hashgrid", initializer=_init_worker,
                                             initargs=(each,)) for _ in range(n_workers)]
            for pool in cls._pools:
                pool.submit(lambda: None).result()   # run the initializers now ...
            torch.set_num_threads(main_threads)      # ... then restore the process-wide default
            cls._key = key
        return cls._pools


def _run(plan: _Plan, task, m_total: int) -> list:
    """task(parts) for every worker group; in parallel on CPU for large enough inputs."""
    groups = plan.groups
    if len(groups) == 1 or plan.device.type != "cpu" or \
            m_total * plan.config.n_levels * plan.n_corners < MIN_PARALLEL_CORNERS:
        return [task(parts) for parts in groups]
    pools = _Workers.pools(len(groups), _Workers.layout()[1])
    inference = torch.is_inference_mode_enabled()

    def run(parts):
        # grad and inference modes are per thread: workers start with grad on, inference off
        with torch.inference_mode(inference), torch.no_grad():
            return task(parts)

    futures = [pool.submit(run, parts) for pool, parts in zip(pools, groups)]
    return [f.result() for f in futures]


def _chunks(plan: _Plan, x: torch.Tensor):
    """(start, x[start:stop].T) over chunks of samples (one chunk off the CPU)."""
    step = _chunk_size(plan) if x.device.type == "cpu" else x.shape[0]
    for start in range(0, x.shape[0], step):
        yield start, x[start:start + step].T.contiguous()


class _HashGridFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, plan, batch):
        # x [M, d]; table [inst * R, F] (flattened)
        m_total, n_feat = x.shape[0], table.shape[-1]
        sources = _sources(plan, table, batch)
        # sorted samples write their rows in random order: fault the pages in sequentially first
        # (random first touches from two threads were ~4x slower here)
        alloc = torch.empty if batch.perm is None else torch.zeros
        out = alloc(m_total, plan.config.n_levels, n_feat, dtype=table.dtype, device=x.device)

        xs = x if batch.perm is None else x.index_select(0, batch.perm)

        def task(parts):
            ws = _workspace(x.device)
            for start, xT in _chunks(plan, xs):
                m = xT.shape[1]
                for part in parts:
                    idx, w, _, _ = _part_chunk(part, plan, xT, batch, start, ws)
                    if batch.perm is None:
                        _gather(out[start:start + m, part.lv], sources[part.source], idx, w, ws)
                    else:  # results of sorted samples go back to their own rows
                        res = ws.get("res", (m, part.n_levels, n_feat), out.dtype, out.device)
                        _gather(res, sources[part.source], idx, w, ws)
                        _put_rows(out, _out_rows(batch, part, start, m, ws), res)

        _run(plan, task, m_total)
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
            grad_x, grad_t = _differentiable_backward(x, table, grad_out, plan, batch, need_x, need_t)
        else:
            grad_x, grad_t = _fast_backward(x, table, grad_out, plan, batch, need_x, need_t)
        return grad_x, grad_t, None, None


def _fast_backward(x, table, grad_out, plan, batch, need_x, need_t):
    """Hand-written backward: per chunk, recompute rows and weights (cheaper than storing them),
    scatter w * grad_out into the table gradient, and only if x needs it, the x gradient."""
    m_total, n_feat = x.shape[0], table.shape[-1]
    g3 = grad_out.view(m_total, plan.config.n_levels, n_feat)
    sources = _sources(plan, table, batch) if need_x else {}
    grad_t = bufs = None
    if need_t:
        grad_t = torch.zeros_like(table)
        bufs = {"hashed": grad_t[plan.dense_rows:] if batch.inst == 1 else grad_t}
        if plan.n_dense:
            bufs["dense"] = torch.zeros(plan.n_ext * batch.inst, n_feat, dtype=table.dtype, device=table.device)

    xs = x if batch.perm is None else x.index_select(0, batch.perm)

    def task(parts):
        ws = _workspace(x.device)
        grad_x = torch.zeros(x.shape[1], m_total, dtype=x.dtype, device=x.device) if need_x else None
        for start, xT in _chunks(plan, xs):
            m = xT.shape[1]
            g_chunk = g3[start:start + m] if batch.perm is None else _take_rows(g3, batch, start, m, ws)
            for part in parts:
                idx, w, pairs, frac = _part_chunk(part, plan, xT, batch, start, ws)
                gc = g_chunk[:, part.lv]                                          # [m, Lp, F]
                if need_t:
                    _scatter(bufs[part.source], idx, w, gc, ws)
                if need_x:
                    grad_x[:, start:start + m] += _x_grad(plan, part, idx, pairs, frac, sources[part.source], gc)
        return grad_x

    partial = _run(plan, task, m_total)
    grad_x = None
    if need_x:
        grad_x = torch.stack(partial).sum(0)                                      # [d, M] processed order
        if batch.perm is not None:
            grad_x = torch.empty_like(grad_x).index_copy_(1, batch.perm, grad_x)
        grad_x = grad_x.T.contiguous()
    if need_t and plan.n_dense:  # fold the padded dense rows back onto the table rows
        rows = _ext_rows(plan, batch)
        dst, src = _row_view(grad_t), _row_view(bufs["dense"])
        if dst is not None:
            dst.index_add_(0, rows, src)
        else:
            flat = (rows.unsqueeze(1) * n_feat + torch.arange(n_feat, device=rows.device)).view(-1)
            grad_t.view(-1).index_add_(0, flat, bufs["dense"].view(-1))
    return grad_x, grad_t


def _out_rows(batch: _Batch, part: _Part, start: int, m: int, ws) -> torch.Tensor:
    """Rows of the [M * L] (sample, level) output that the chunk's sorted samples own, [m, Lp]."""
    dst = ws.get("out_rows", (m, part.n_levels), torch.int64, batch.perm.device)
    return torch.add(batch.perm_rows[start:start + m].unsqueeze(1), part.level_ids, out=dst)


def _put_rows(out: torch.Tensor, rows: torch.Tensor, res: torch.Tensor) -> None:
    """out.view(M * L, F)[rows] = res (res [m, Lp, F]); scatter_ is ~2x faster than index_copy_."""
    n_feat = out.shape[-1]
    dst = _row_view(out.view(-1, n_feat))
    if dst is not None:
        dst.scatter_(0, rows.view(-1), _row_view(res.view(-1, n_feat)))
    else:
        flat = rows.unsqueeze(-1) * n_feat + torch.arange(n_feat, device=rows.device)
        out.view(-1).scatter_(0, flat.view(-1), res.reshape(-1))


def _take_rows(g3: torch.Tensor, batch: _Batch, start: int, m: int, ws) -> torch.Tensor:
    """g3[perm[start:start + m]] ([m, L, F]): whole rows, which gather much faster than elements."""
    M, L, n_feat = g3.shape
    dst = ws.get("g_rows", (m, L * n_feat), g3.dtype, g3.device)
    return torch.index_select(g3.view(M, L * n_feat), 0, batch.perm[start:start + m], out=dst).view(m, L, n_feat)


def _scatter(buf: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, gc: torch.Tensor, ws=_Fresh) -> None:
    """buf[idx[c, i, l]] += w[c, i, l] * gc[i, l]  (rows of F features; scatter_add_ wants int64)."""
    rows = _row_view(buf)
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


def _x_grad(plan: _Plan, part: _Part, idx, pairs, frac, src, gc) -> torch.Tensor:
    """x-gradient of <gc, out> for one chunk and part: [d, m]."""
    C, m, n_lv = idx.shape
    d = plan.n_dims
    rows = _row_view(src)
    if rows is not None and rows.is_complex():  # <g, v> = Re(v * conj(g))
        vals = rows.index_select(0, idx.reshape(-1)).view(C, m, n_lv)
        G = (vals * torch.view_as_complex(gc).conj()).real
    else:
        vals = src.index_select(0, idx.reshape(-1)).view(C, m, n_lv, -1)
        G = (vals * gc).sum(-1)
    G = G.reshape(*([2] * d), m, n_lv)                      # corner axes: dim d-1 ... dim 0
    ds = _smooth_deriv(frac, plan.smooth) * part.scales(frac.dtype)   # d s / d x   [d, m, Lp]
    out = []
    for j in range(d):  # over axes only
        pos = d - 1 - j
        diff = G.select(pos, 1) - G.select(pos, 0)
        for k in range(d - 1, -1, -1):
            if k != j:  # the leading remaining corner axis is the highest k != j
                diff = (diff * pairs[k].view(2, *([1] * (diff.dim() - 3)), m, n_lv)).sum(0)
        out.append((diff * ds[j]).sum(-1))
    return torch.stack(out)


# ------------------------------------------------------------------------------------------------
# plainly differentiable formulation (double backward, and a readable statement of the math)


def _plain_forward(x, table, plan: _Plan, batch: _Batch) -> torch.Tensor:
    """Same result as the fast path, from ops autograd can differentiate any number of times."""
    batch = batch.unsorted()
    sources = _sources(plan, table, batch)
    n_feat = table.shape[-1]
    xT = x.T
    outs = []
    for part in plan.parts:
        with torch.no_grad():
            idx = _part_chunk(part, plan, xT.detach().contiguous(), batch, 0)[0]    # [C, M, Lp]
        pos = _positions(xT.unsqueeze(-1), part.scales64)
        s = _smooth(pos - torch.floor(pos).detach(), plan.smooth)
        w = _combine(torch.stack([1 - s, s], 1), torch.mul)                    # [C, M, Lp]
        vals = sources[part.source].index_select(0, idx.reshape(-1))
        outs.append((vals.view(*idx.shape, n_feat) * w.unsqueeze(-1)).sum(0))  # [M, Lp, F]
    out = torch.cat(outs, 1)
    order = [lvl for part in plan.parts for lvl in range(plan.config.n_levels)[part.lv]]
    if order != sorted(order):
        out = out[:, sorted(range(len(order)), key=order.__getitem__)]
    return out.reshape(x.shape[0], -1)


def _differentiable_backward(x, table, grad_out, plan, batch, need_x, need_t):
    inputs = [t for t, need in ((x, need_x), (table, need_t)) if need]
    with torch.enable_grad():
        out = _plain_forward(x, table, plan, batch)
        grads = list(torch.autograd.grad(out, inputs, grad_out, create_graph=True, allow_unused=True))
    grad_x = grads.pop(0) if need_x else None
    grad_t = grads.pop(0) if need_t else None
    return grad_x, grad_t


# ------------------------------------------------------------------------------------------------
# public API


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
        batch = _Batch(x.shape[1], n_inst, layout.total_rows, False, False)
        flat_table = table.reshape(n_inst * layout.total_rows, n_feat)
    else:
        batch = _Batch(max(1, x.numel() // d), 1, layout.total_rows, False, False)
        flat_table = table
    lead = x.shape[:-1]
    x2 = x.reshape(-1, d).to(flat_table.dtype).contiguous()
    if x2.shape[0] == 0:
        return torch.zeros(*lead, config.n_output_dims, dtype=out_dtype, device=x.device)
    flat_table = flat_table.contiguous()
    plan = _plan(config, d, x2.device, _Workers.layout()[0] if x2.device.type == "cpu" else 1)
    lo, hi = (float(v) for v in torch.aminmax(x2.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("hash grid inputs contain NaN or infinity")
    batch.exact = lo < 0 or hi > 1
    batch.wide = not plan.i32_ok or flat_table.shape[0] > _I32_MAX or plan.n_ext * batch.inst > _I32_MAX
    if x2.device.type == "cpu" and d in (2, 3) and SORT_MIN_SAMPLES and x2.shape[0] >= SORT_MIN_SAMPLES:
        batch.perm = _spatial_order(x2, batch)
        batch.perm_rows = batch.perm * config.n_levels
    out = _HashGridFn.apply(x2, flat_table, plan, batch)
    return out.view(*lead, config.n_output_dims).to(out_dtype)


class HashGrid(nn.Module):
    """Multiresolution hash encoding of x in [0, 1]^d with one flat parameter table `params`.

    `params` is [total_rows, F] in tiny-cuda-nn's layout (levels one after another, rows of F
    features), initialised U(-1e-4, 1e-4) as tcnn does. `forward(x, table)` accepts a
    replacement table: [total_rows, F] shared, or [B, total_rows, F] one per instance with x
    [B, N, d] (DESIGN §1). It runs on the selected backend (`inr.backends.hashgrid_op`: the CUDA
    kernels where selected and supported, else `hashgrid_encode`).

    >>> grid = HashGrid(2, HashGridConfig(n_levels=4, log2_hashmap_size=10))
    >>> grid(torch.rand(8, 2)).shape
    torch.Size([8, 8])
    """

    def __init__(self, n_dims: int, config: HashGridConfig | None = None, generator: torch.Generator | None = None,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.config = config or HashGridConfig()
        self.n_dims = n_dims
        self.layout = grid_layout(self.config, n_dims)
        self.n_output_dims = self.config.n_output_dims
        init = torch.rand(self.layout.total_rows, self.config.n_features_per_level, generator=generator, dtype=dtype)
        self.params = nn.Parameter(init.mul_(2e-4).sub_(1e-4))

    @property
    def n_params(self) -> int:
        return self.params.numel()

    def forward(self, x: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[-1] != self.n_dims:
            raise ValueError(f"HashGrid expects {self.n_dims}-D inputs, got shape {tuple(x.shape)}")
        from inr.backends import hashgrid_op  # selected backend: CUDA kernels or `hashgrid_encode`

        return hashgrid_op(x, self.params if table is None else table, self.config)

    def extra_repr(self) -> str:
        c = self.config
        return (f"n_dims={self.n_dims}, n_levels={c.n_levels}, F={c.n_features_per_level}, "
                f"T=2^{c.log2_hashmap_size}, base={c.base_resolution}, per_level_scale={c.per_level_scale:.6g}, "
                f"rows={self.layout.total_rows}, hashed_levels={sum(self.layout.hashed)}")
