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

This package is the "torch" backend of the encoding: `hashgrid_encode`, pure PyTorch, built for
CPU throughput (numbers in the comments were measured on a 2-core EPYC VM, 2-D, L=16, F=2):
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
`inr.encodings.hashgrid_reference` is the slow, obviously-correct version the tests compare
against.

Modules, one job each: `encode` (checks and table layout), `function` (the autograd Function),
`backward` (hand-written backward), `plain` (differentiable formulation), `corners` (positions,
corner rows, weights), `rows` (gathers and scatters), `plan` (per-layout constants), `batch`
(sample-to-table mapping, Z-order), `workers` (chunks and threads), `workspace` (buffers).
"""
from .encode import hashgrid_encode

__all__ = ["hashgrid_encode"]
