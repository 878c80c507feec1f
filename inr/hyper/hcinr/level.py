"""One level of the HC-INR warp: local features at the current coordinate, a hypernetwork that
turns them (and the coarser level's code) into a local transform, and the bounded step it takes.

    f_l    = grid_l(x_l)                             local features, sampled where the point now is
    c_l    = body_l([f_l, c_{l-1}])                  the level's code (ReLU MLP), passed down the hierarchy
    M_l, t_l = head_l(c_l)                           a d x d matrix and a d-vector per point
    x_{l+1} = x_l + r_l * tanh(M_l x_l + t_l)        r_l = displacement_scale * cell size of level l

For small outputs tanh is the identity, so T_l is the near-identity affine map
(I + r_l M_l) x + r_l t_l; tanh bounds every coordinate's step by r_l, so the composed warp moves a
point at most sum_l r_l. The head starts at zero: every T_l starts as the identity.
"""
from __future__ import annotations

import torch
from torch import nn

from inr.encodings import HashGrid
from inr.nn import MLP, MLPSpec

from .config import HCINRConfig

# Grid features start U(-FEATURE_INIT, FEATURE_INIT) rather than tcnn's U(-1e-4, 1e-4), so the first
# codes differ from point to point: 35.7 against 32.9 dB on the camera at 128 px, 200 steps (kodim05:
# 26.8 against 26.9 dB).
FEATURE_INIT = 0.1


class LevelHypernetwork(nn.Module):
    """H_l: [f_l, c_{l-1}] -> (c_l, M_l, t_l), both parts through the batched MLP op."""

    def __init__(self, d_in: int, d_features: int, d_code_in: int, cfg: HCINRConfig,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.d_in = d_in
        self.body_spec = MLPSpec(d_features + d_code_in, tuple(cfg.hyper_hidden), cfg.code_dim, activation="relu",
                                 output_activation="relu")
        self.head_spec = MLPSpec(cfg.code_dim, (), d_in * d_in + d_in, activation="none")
        self.body = MLP(self.body_spec, init="he", generator=generator)
        self.head = MLP(self.head_spec, init="he", generator=generator)
        with torch.no_grad():  # zero last layer: the transform starts as the identity
            self.head.layers[0].weight.zero_()
            self.head.layers[0].bias.zero_()

    def forward(self, features: torch.Tensor, code: torch.Tensor | None, params=None,
                prefix: str = "") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        inp = features if code is None else torch.cat([features, code], dim=-1)
        code = self.body(inp, params, prefix=prefix + "body.")
        out = self.head(code, params, prefix=prefix + "head.")
        d = self.d_in
        matrix = out[..., : d * d].unflatten(-1, (d, d))
        return code, matrix, out[..., d * d:]


def level_grid(level: int, d_in: int, cfg: HCINRConfig, generator: torch.Generator | None = None) -> HashGrid:
    """Level l's table of local features (dense or hashed, one resolution)."""
    grid = HashGrid(d_in, cfg.level_grid(level), generator=generator)
    with torch.no_grad():
        grid.params.uniform_(-FEATURE_INIT, FEATURE_INIT, generator=generator)
    return grid


def warp_step(x: torch.Tensor, code: torch.Tensor | None, grid: HashGrid, hyper: LevelHypernetwork, bound: float,
              table: torch.Tensor | None = None, params=None, prefix: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """T_l: x_l -> x_{l+1}, and the level's code c_l. `table` and `params` (under `prefix`) replace
    the grid's table and the hypernetwork's parameters."""
    # the grid spans [-1, 1]; a point the coarser levels pushed past the edge reads the edge's features
    features = grid(((x + 1) * 0.5).clamp(0, 1), table=table)
    code, matrix, shift = hyper(features, code, params, prefix=prefix)
    step = (matrix @ x.unsqueeze(-1)).squeeze(-1) + shift
    return x + bound * torch.tanh(step), code
