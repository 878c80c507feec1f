"""Hash-grid field (Müller et al. 2022): multiresolution hash encoding + a small ReLU MLP."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from inr.encodings import HashGrid, HashGridConfig
from inr.nn import MLP, MLPSpec

from .base import Field, OutputAffine, Params


@dataclass
class HashFieldConfig(OutputAffine):
    """instant-ngp's image setting: L=16, F=2, T=2^19, base 16, two hidden layers of 64.

    Without `per_level_scale` or `finest_resolution` the scale is 2 (HashGridConfig's default);
    `inr fit image` instead sets the finest level to the image's resolution.

    `grid` holds HashGridConfig fields or a tiny-cuda-nn encoding dict ({"otype": "HashGrid", ...}).
    Coordinates in [-1, 1]^d are mapped to the grid's [0, 1]^d.
    """

    grid: dict = field(default_factory=lambda: {"n_levels": 16, "n_features_per_level": 2,
                                                 "log2_hashmap_size": 19, "base_resolution": 16})
    hidden: tuple[int, ...] = (64, 64)
    output_activation: str = "none"


def grid_config(grid: dict) -> HashGridConfig:
    return HashGridConfig.from_tcnn(grid) if "otype" in grid else HashGridConfig.from_dict(grid)


class HashField(Field):
    """Hash-grid features of x in [-1, 1]^d fed to a ReLU MLP; the table is parameter `grid.params`.

    >>> HashField(2, 3, HashFieldConfig(grid={"n_levels": 2, "log2_hashmap_size": 8}))(torch.zeros(4, 2)).shape
    torch.Size([4, 3])
    """

    kind = "hash"

    def __init__(self, d_in: int, d_out: int, cfg: HashFieldConfig | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg or HashFieldConfig()
        self.d_in, self.d_out = d_in, d_out
        self.grid = HashGrid(d_in, grid_config(self.cfg.grid), generator=generator)
        self.spec = MLPSpec(self.grid.n_output_dims, tuple(self.cfg.hidden), d_out, activation="relu",
                            output_activation=self.cfg.output_activation)
        self.net = MLP(self.spec, init="he", generator=generator)

    def forward(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        table = params.get("grid.params") if params else None
        features = self.grid((x + 1) * 0.5, table=table)
        return self.rescale(self.net(features, params, prefix="net."))

    def config(self) -> dict:
        cfg = asdict(self.cfg)
        cfg["grid"] = self.grid.config.to_dict()  # resolved, so a reload never re-derives it
        return {"kind": self.kind, "d_in": self.d_in, "d_out": self.d_out, **cfg}
