"""The HC-INR field: the composed warp x_0 -> x_L (levels coarse to fine), then a compact field."""
from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from inr.fields import Field, FourierConfig, SirenConfig, build_field
from inr.fields.base import Params

from .config import HCINRConfig
from .level import LevelHypernetwork, level_grid, warp_step

# Names of the field's three parts (its top-level modules); `inr info` counts parameters per part.
PARTS = ("grids", "hypernetworks", "compact")


def compact_field(d_in: int, d_out: int, cfg: HCINRConfig, generator: torch.Generator | None = None) -> Field:
    """The compact field on the warped coordinates (its own output map is the identity: HC-INR's applies)."""
    if cfg.compact == "siren":
        sub = SirenConfig(hidden=tuple(cfg.compact_hidden), w0=cfg.compact_w0, w0_hidden=cfg.compact_w0,
                          output_activation=cfg.output_activation)
    else:
        sub = FourierConfig(hidden=tuple(cfg.compact_hidden), n_features=cfg.fourier_features,
                            sigma=cfg.fourier_sigma, output_activation=cfg.output_activation)
    return build_field(cfg.compact, d_in, d_out, generator=generator, **asdict(sub))


class HCINRField(Field):
    """y = compact([x_L, c_{L-1}]), x_{l+1} = T_l(x_l); see `inr.hyper.hcinr`. Without
    `compact_code` y = compact(x_L); with `concat_intermediate` x_0, ..., x_L all enter.

    Parameters: `grids.{l}.params` (level l's feature table), `hypernetworks.{l}.{body,head}.*`,
    `compact.*`; `forward(x, params)` accepts replacements for any of them (batched or not).

    >>> f = HCINRField(2, 3, HCINRConfig(levels=2, compact_hidden=(16,)))
    >>> f(torch.zeros(5, 2)).shape
    torch.Size([5, 3])
    """

    kind = "hcinr"

    def __init__(self, d_in: int, d_out: int, cfg: HCINRConfig | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg or HCINRConfig()
        self.cfg.validate(d_in)  # before any table is allocated
        self.d_in, self.d_out = d_in, d_out
        levels = range(self.cfg.levels)
        self.grids = nn.ModuleList(level_grid(lvl, d_in, self.cfg, generator) for lvl in levels)
        self.hypernetworks = nn.ModuleList(
            LevelHypernetwork(d_in, self.cfg.n_features, 0 if lvl == 0 else self.cfg.code_dim, self.cfg, generator)
            for lvl in levels)
        self.bounds = [self.cfg.displacement_scale * self.cfg.cell_size(lvl) for lvl in levels]
        d_compact = d_in * (self.cfg.levels + 1) if self.cfg.concat_intermediate else d_in
        d_compact += self.cfg.code_dim if self.cfg.compact_code else 0
        self.compact = compact_field(d_compact, d_out, self.cfg, generator)

    def warp(self, x: torch.Tensor, params: Params | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """([x_0, x_1, ..., x_L], c_{L-1}): the coordinate after each level's transform, the finest code."""
        coords, code = [x], None
        for lvl, (grid, hyper) in enumerate(zip(self.grids, self.hypernetworks)):
            table = params.get(f"grids.{lvl}.params") if params else None
            x, code = warp_step(x, code, grid, hyper, self.bounds[lvl], table, params, f"hypernetworks.{lvl}.")
            coords.append(x)
        return coords, code

    def forward(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        coords, code = self.warp(x, params)
        inp = torch.cat(coords, dim=-1) if self.cfg.concat_intermediate else coords[-1]
        if self.cfg.compact_code:
            inp = torch.cat([inp, code], dim=-1)
        sub = {k[len("compact."):]: v for k, v in params.items() if k.startswith("compact.")} if params else None
        return self.rescale(self.compact(inp, sub))

    def param_groups(self, lr: float) -> list[dict]:
        """Optimiser groups: the compact field at `lr` with the run's Adam settings; the grids and
        hypernetworks at `lr * warp_lr_scale` with instant-ngp's Adam (beta2 0.99, eps 1e-15), as the
        hash field trains its table and ReLU MLP (a SIREN wants ~1e-4, those ~1e-2)."""
        warp = [*self.grids.parameters(), *self.hypernetworks.parameters()]
        return [{"params": list(self.compact.parameters()), "lr": lr},
                {"params": warp, "lr": lr * self.cfg.warp_lr_scale, "betas": (0.9, 0.99), "eps": 1e-15}]

    def part_params(self) -> dict[str, int]:
        """Parameter count per part: grids, hypernetworks, compact field."""
        return {part: sum(p.numel() for p in getattr(self, part).parameters()) for part in PARTS}

    def config(self) -> dict:
        cfg = asdict(self.cfg)
        cfg["hyper_hidden"], cfg["compact_hidden"] = list(self.cfg.hyper_hidden), list(self.cfg.compact_hidden)
        return {"kind": self.kind, "d_in": self.d_in, "d_out": self.d_out, **cfg}
