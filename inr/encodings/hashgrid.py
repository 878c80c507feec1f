"""The multiresolution hash encoding as a module: `HashGrid` owns one flat table and runs on the
selected backend.

The grid's contract (`HashGridConfig`, `GridLayout`, `grid_layout`, tcnn's semantics) lives at the
bottom of the stack in `inr.backends.contracts`, and the pure-PyTorch op `hashgrid_encode` is the
"torch" backend (`inr.backends.torch_hashgrid`); both are re-exported here, where callers have
always found them.
"""
from __future__ import annotations

import torch
from torch import nn

from inr.backends import hashgrid_op
from inr.backends.contracts import GRID_TYPES, INTERPOLATIONS, PRIMES, GridLayout, HashGridConfig, grid_layout
from inr.backends.torch_hashgrid import hashgrid_encode

__all__ = ["GRID_TYPES", "INTERPOLATIONS", "PRIMES", "GridLayout", "HashGrid", "HashGridConfig", "grid_layout",
           "hashgrid_encode"]


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
        return hashgrid_op(x, self.params if table is None else table, self.config)

    def extra_repr(self) -> str:
        c = self.config
        return (f"n_dims={self.n_dims}, n_levels={c.n_levels}, F={c.n_features_per_level}, "
                f"T=2^{c.log2_hashmap_size}, base={c.base_resolution}, per_level_scale={c.per_level_scale:.6g}, "
                f"rows={self.layout.total_rows}, hashed_levels={sum(self.layout.hashed)}")
