"""Slow, obviously-correct hash grid: a Python loop over levels and corners.

This is the naive PyTorch formulation the fast path (`inr.backends.torch_hashgrid`) is checked
against (tests) and measured against (benchmarks/hashgrid.py). It follows tiny-cuda-nn's grid.h line by line:
uint32 arithmetic is emulated in int64 with an explicit mask, so inputs outside [0, 1] wrap
exactly as they do in tcnn. Differentiable (twice) by plain autograd.
"""
from __future__ import annotations

import torch

from inr.backends.contracts import PRIMES, HashGridConfig, grid_layout
from inr.backends.torch_hashgrid.corners import positions

_U32 = 0xFFFFFFFF


def hashgrid_reference(x: torch.Tensor, table: torch.Tensor, config: HashGridConfig) -> torch.Tensor:
    """Encode x [N, d] in [0, 1]^d with one table [total_rows, F]; returns [N, L * F]."""
    n_dims = x.shape[-1]
    layout = grid_layout(config, n_dims)
    outs = []
    for lvl in range(config.n_levels):
        scale, res = layout.scales[lvl], layout.resolutions[lvl]
        size, off, hashed = layout.sizes[lvl], layout.offsets[lvl], layout.hashed[lvl]
        pos = positions(x, torch.tensor(scale, dtype=torch.float64))  # x * scale + 0.5, one rounding
        grid = torch.floor(pos)
        frac = pos - grid
        if config.interpolation == "smoothstep":
            frac = frac * frac * (3.0 - 2.0 * frac)
        grid = grid.long()
        acc = 0.0
        for corner in range(1 << n_dims):
            weight = torch.ones_like(x[:, 0])
            index = torch.zeros_like(grid[:, 0])
            stride = 1
            for dim in range(n_dims):
                bit = (corner >> dim) & 1
                g = grid[:, dim] + bit
                weight = weight * (frac[:, dim] if bit else 1 - frac[:, dim])
                if hashed:
                    index = index ^ ((g * PRIMES[dim]) & _U32)
                else:
                    index = (index + g * stride) & _U32
                    stride *= res
            index = index % size + off
            acc = acc + weight[:, None] * table[index]
        outs.append(acc)
    return torch.cat(outs, dim=-1)
