"""Radiance field (instant-ngp's NeRF network): position -> density and geometric features,
(features, view direction) -> colour.

    x --encoding--> density MLP (64 wide, 1 hidden) --> 16 outputs: [0] -> density = trunc_exp(o - 1),
                                                         all 16 --+
    d --spherical harmonics (degree 4)--------------------------+--> colour MLP (64, 64) --> sigmoid RGB

The encoding is a multiresolution hash grid ("hash", the default), or for comparison a frequency
encoding ("frequency", as the original NeRF) or a SIREN trunk ("siren": sine activations on x), or
HC-INR ("hcinr", `inr.hyper.hcinr`): its hierarchical warp maps the point x -> x_L, and its compact
field on [x_L, code] is the density MLP (the `hcinr` settings replace `density_hidden`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from inr.encodings import FrequencyEncoding, HashGrid, SphericalHarmonics
from inr.nn import MLP, MLPSpec

from .base import Field, Params
from .hash import grid_config

ENCODINGS = ("hash", "frequency", "siren", "hcinr")


class TruncExp(torch.autograd.Function):
    """exp(x) whose gradient uses exp(min(x, 15)): instant-ngp's density activation, which cannot
    overflow its gradient where a sample lands in a very dense region."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp_max(15))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return TruncExp.apply(x)


@dataclass
class NerfFieldConfig:
    """A radiance field's architecture. `aabb` is the scene box the encoding covers; positions
    outside it have zero density. `grid` takes HashGridConfig keys or a tiny-cuda-nn encoding dict."""

    encoding: str = "hash"
    aabb: tuple[float, ...] = (-1.5, -1.5, -1.5, 1.5, 1.5, 1.5)
    # 2^17 rows per level rather than instant-ngp's 2^19: on a CPU the smaller table trained lego_100
    # to 27.4 dB in 60 s against 24.5 dB (more steps per second; 100-800 px scenes do not fill 2^19).
    grid: dict = field(default_factory=lambda: {"n_levels": 16, "n_features_per_level": 2, "log2_hashmap_size": 17,
                                                 "base_resolution": 16, "finest_resolution": 512})
    n_frequencies: int = 10  # frequency encoding only
    w0: float = 30.0  # siren only: first-layer frequency
    density_hidden: tuple[int, ...] = (64,)
    geo_features: int = 16  # density MLP outputs: [0] is density, all feed the colour MLP
    color_hidden: tuple[int, ...] = (64, 64)
    sh_degree: int = 4
    density_bias: float = -1.0  # density = trunc_exp(output + density_bias)
    hcinr: dict = field(default_factory=dict)  # hcinr only: HCINRConfig keys (inr fit nerf's --hcinr.* block)


class NerfField(Field):
    """Density and colour of a scene. `forward(x, dirs)` -> (rgb [..., 3], density [...]).

    >>> f = NerfField(3, 4, NerfFieldConfig(grid={"n_levels": 2, "log2_hashmap_size": 8}))
    >>> rgb, density = f(torch.zeros(5, 3), torch.tensor([[0.0, 0.0, 1.0]]).expand(5, 3))
    >>> rgb.shape, density.shape
    (torch.Size([5, 3]), torch.Size([5]))
    """

    kind = "nerf"

    def __init__(self, d_in: int = 3, d_out: int = 4, cfg: NerfFieldConfig | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg or NerfFieldConfig()
        if (d_in, d_out) != (3, 4):
            raise ValueError(f"a NeRF field maps 3-D positions to RGB + density (3 -> 4), got {d_in} -> {d_out}")
        if self.cfg.encoding not in ENCODINGS:
            raise ValueError(f"NeRF encoding must be one of {ENCODINGS}, got {self.cfg.encoding!r}")
        if len(self.cfg.aabb) != 6:
            raise ValueError(f"aabb needs 6 numbers (min xyz, max xyz), got {list(self.cfg.aabb)}")
        self.d_in, self.d_out = d_in, d_out
        aabb = torch.tensor(self.cfg.aabb, dtype=torch.float32)
        if not bool((aabb[3:] > aabb[:3]).all()):
            raise ValueError(f"aabb max must exceed min, got {list(self.cfg.aabb)}")
        self.register_buffer("aabb", aabb, persistent=False)
        activation, init = "relu", "he"
        if self.cfg.encoding == "hcinr":  # the warp and the density MLP are one HC-INR field
            self.encoding, self.density_net = hcinr_density(self.cfg, generator), None
        else:
            if self.cfg.encoding == "hash":
                self.encoding = HashGrid(3, grid_config(self.cfg.grid), generator=generator)
                n_enc = self.encoding.n_output_dims
            elif self.cfg.encoding == "frequency":
                self.encoding = FrequencyEncoding(3, self.cfg.n_frequencies)
                n_enc = self.encoding.n_output_dims
            else:
                self.encoding, n_enc, activation, init = None, 3, "sine", "siren"
            self.density_net = MLP(MLPSpec(n_enc, tuple(self.cfg.density_hidden), self.cfg.geo_features,
                                           activation=activation, w0_first=self.cfg.w0, w0_hidden=self.cfg.w0),
                                   init=init, generator=generator)
        self.directions = SphericalHarmonics(self.cfg.sh_degree)
        self.color_net = MLP(MLPSpec(self.cfg.geo_features + self.directions.n_output_dims,
                                     tuple(self.cfg.color_hidden), 3, output_activation="sigmoid"),
                             init="he", generator=generator)

    def _unit(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Positions in the box as [0, 1]^3, and whether they lie inside it."""
        u = (x - self.aabb[:3]) / (self.aabb[3:] - self.aabb[:3])
        return u.clamp(0.0, 1.0), ((u >= 0) & (u <= 1)).all(-1)

    def geometry(self, x: torch.Tensor, params: Params | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(density [...], geometric features [..., geo_features]) at world positions x."""
        u, inside = self._unit(x)
        if self.cfg.encoding == "hcinr":
            sub = {k[len("encoding."):]: v for k, v in params.items() if k.startswith("encoding.")} if params else None
            h = self.encoding(u * 2 - 1, sub)
        else:
            if self.cfg.encoding == "hash":
                enc = self.encoding(u, table=params.get("encoding.params") if params else None)
            elif self.cfg.encoding == "frequency":
                enc = self.encoding(u * 2 - 1)
            else:
                enc = u * 2 - 1
            h = self.density_net(enc, params, prefix="density_net.")
        density = trunc_exp(h[..., 0] + self.cfg.density_bias) * inside
        return density, h

    def density(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        return self.geometry(x, params)[0]

    def color(self, features: torch.Tensor, dirs: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        """RGB [..., 3] from geometric features and unit view directions."""
        return self.color_net(torch.cat([features, self.directions(dirs)], -1), params, prefix="color_net.")

    def forward(self, x: torch.Tensor, dirs: torch.Tensor, params: Params | None = None):
        density, h = self.geometry(x, params)
        return self.color(h, dirs, params), density

    def param_groups(self, lr: float) -> list[dict]:
        """One group at `lr`; with HC-INR, its own groups scaled so that the warp (grids and
        hypernetworks) trains at the run's `lr` (instant-ngp's 1e-2, as the hash tables) and its
        compact field (the density MLP) `warp_lr_scale` times slower; the colour MLP at `lr`."""
        if self.cfg.encoding != "hcinr":
            return [{"params": list(self.parameters()), "lr": lr}]
        groups = self.encoding.param_groups(lr / self.encoding.cfg.warp_lr_scale)
        return groups + [{"params": list(self.color_net.parameters()), "lr": lr}]

    def config(self) -> dict:
        cfg = asdict(self.cfg)
        cfg["aabb"] = list(cfg["aabb"])
        if self.cfg.encoding == "hash":
            cfg["grid"] = self.encoding.config.to_dict()
        if self.cfg.encoding == "hcinr":
            cfg["hcinr"] = {k: v for k, v in self.encoding.config().items() if k not in ("kind", "d_in", "d_out")}
        return {"kind": self.kind, "d_in": self.d_in, "d_out": self.d_out, **cfg}


def hcinr_density(cfg: NerfFieldConfig, generator: torch.Generator | None) -> Field:
    """HC-INR on [-1, 1]^3 with `geo_features` outputs: the warp, then its compact field as the
    density MLP. Imported here, not at the top: `inr.hyper` builds on `inr.fields`."""
    from inr.hyper.hcinr import HCINRConfig, HCINRField

    names = {f.name for f in fields(HCINRConfig)}
    unknown = sorted(set(cfg.hcinr) - names)
    if unknown:
        raise ValueError(f"unknown hcinr option(s): {', '.join(unknown)}")
    return HCINRField(3, cfg.geo_features, HCINRConfig(**cfg.hcinr), generator=generator)
