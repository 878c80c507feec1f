"""The hot ops' contracts, at the bottom of the stack: what every backend implements and every
caller above passes in. Plain values only (no ops), so `inr.backends.*` and everything above
agree on one definition.

- The field MLP: `MLPSpec` (widths and activations) and its parameter pack `Params`, a flat
  mapping ``{"layers.{i}.weight": [out, in] or [B, out, in], "layers.{i}.bias": [out] or [B, out]}``;
  a leading B gives every instance its own weights (what hypernetworks produce), no B shares them.
- The multiresolution hash grid: `HashGridConfig` (instant-ngp's hyper-parameters, tcnn's JSON)
  and `grid_layout`, the per-level table geometry exactly as tiny-cuda-nn's GridEncoding builds it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from functools import lru_cache
from typing import Mapping

import numpy as np
import torch

HIDDEN_ACTIVATIONS = ("relu", "sine", "none")
OUTPUT_ACTIVATIONS = ("none", "sigmoid", "exp", "relu", "sine")

Params = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class MLPSpec:
    """Shape and activations of a fully connected network.

    d_in -> hidden[0] -> ... -> hidden[-1] -> d_out. Hidden layers use `activation`;
    with `sine`, the first layer uses `w0_first` and later hidden layers `w0_hidden`.
    The output layer is linear followed by `output_activation` (with `w0_hidden` if sine).
    """

    d_in: int
    hidden: tuple[int, ...]
    d_out: int
    activation: str = "relu"
    output_activation: str = "none"
    w0_first: float = 30.0
    w0_hidden: float = 30.0
    bias: bool = True

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"activation must be one of {HIDDEN_ACTIVATIONS}, got {self.activation!r}")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {self.output_activation!r}")
        if self.d_in < 1 or self.d_out < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(f"layer widths must be positive: {self.d_in}, {self.hidden}, {self.d_out}")

    @property
    def widths(self) -> list[int]:
        return [self.d_in, *self.hidden, self.d_out]

    @property
    def n_layers(self) -> int:
        return len(self.hidden) + 1

    def layer_w0(self, i: int) -> float:
        """The sine frequency of layer i (only meaningful for sine)."""
        return self.w0_first if i == 0 else self.w0_hidden

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Unbatched shape of every parameter, in layer order."""
        shapes = {}
        w = self.widths
        for i in range(self.n_layers):
            shapes[f"layers.{i}.weight"] = (w[i + 1], w[i])
            if self.bias:
                shapes[f"layers.{i}.bias"] = (w[i + 1],)
        return shapes

    def n_params(self) -> int:
        return sum(int(torch.Size(s).numel()) for s in self.param_shapes().values())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


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
