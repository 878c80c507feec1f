"""Hash-grid signed distance field with geometric initialisation (SAL / IGR, as NeuS2 and
instant-nsr-pl do for hash grids): the ReLU MLP sees [x, hash features] and starts as the signed
distance to a sphere, so training begins from a valid SDF."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from inr.encodings import HashGrid
from inr.nn import MLP, MLPSpec

from .base import Field, OutputAffine, Params
from .hash import grid_config


@dataclass
class HashSDFConfig(OutputAffine):
    """L=16 levels from 16 to 2048 cells over [-1, 1]^3, F=2, T=2^18, one hidden layer of 64.

    `grid` holds HashGridConfig fields or a tiny-cuda-nn encoding dict. With `geometric_init` the
    MLP starts as |x| - `sphere_radius` (the hash features enter with zero weights)."""

    grid: dict = field(default_factory=lambda: {"n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 18,
                                                 "base_resolution": 16, "finest_resolution": 2048})
    hidden: tuple[int, ...] = (64,)
    geometric_init: bool = True
    sphere_radius: float = 0.5
    output_activation: str = "none"


def geometric_init_(mlp: MLP, n_coords: int, radius: float, generator: torch.Generator | None = None) -> None:
    """SAL's geometric initialisation of a ReLU MLP whose first `n_coords` inputs are x:
    hidden weights N(0, 2/out), zero biases, zero weights on the other inputs of the first layer,
    output weights N(sqrt(pi/in), 1e-4) and output bias -radius, so f(x) ~ |x| - radius."""
    layers = list(mlp.layers)
    with torch.no_grad():
        for i, layer in enumerate(layers):
            out_dim, in_dim = layer.weight.shape
            if i == len(layers) - 1:
                layer.weight.normal_(math.sqrt(math.pi / in_dim), 1e-4, generator=generator)
                layer.bias.fill_(-radius)
            else:
                layer.weight.normal_(0.0, math.sqrt(2.0 / out_dim), generator=generator)
                layer.bias.zero_()
                if i == 0:
                    layer.weight[:, n_coords:] = 0.0


class HashSDFField(Field):
    """f(x) = MLP([x, hash(x)]) for x in [-1, 1]^d; the table is parameter `grid.params`.

    >>> f = HashSDFField(3, 1, HashSDFConfig(grid={"n_levels": 2, "log2_hashmap_size": 8}, hidden=(64, 64)))
    >>> float(f(torch.zeros(1, 3)).detach())  # the centre of the initial sphere of radius 0.5
    -0.5
    """

    kind = "hash_sdf"

    def __init__(self, d_in: int, d_out: int, cfg: HashSDFConfig | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg or HashSDFConfig()
        self.d_in, self.d_out = d_in, d_out
        self.grid = HashGrid(d_in, grid_config(self.cfg.grid), generator=generator)
        self.spec = MLPSpec(d_in + self.grid.n_output_dims, tuple(self.cfg.hidden), d_out, activation="relu",
                            output_activation=self.cfg.output_activation)
        self.net = MLP(self.spec, init="he", generator=generator)
        if self.cfg.geometric_init:
            geometric_init_(self.net, d_in, self.cfg.sphere_radius, generator)

    def forward(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        table = params.get("grid.params") if params else None
        features = self.grid(((x + 1) * 0.5).clamp(0, 1), table=table)
        return self.rescale(self.net(torch.cat([x, features], dim=-1), params, prefix="net."))

    def config(self) -> dict:
        cfg = asdict(self.cfg)
        cfg["grid"] = self.grid.config.to_dict()
        return {"kind": self.kind, "d_in": self.d_in, "d_out": self.d_out, **cfg}
