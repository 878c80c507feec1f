"""Build an encoding from a small JSON dict: tiny-cuda-nn's schema or our own names."""
from __future__ import annotations

import torch
from torch import nn

from .frequency import FrequencyEncoding, GaussianFourierFeatures
from .hashgrid import HashGrid, HashGridConfig
from .spherical_harmonics import SphericalHarmonics


class Identity(nn.Module):
    """tiny-cuda-nn's Identity encoding: y = scale * x + offset (defaults: x unchanged)."""

    def __init__(self, n_dims: int, scale: float = 1.0, offset: float = 0.0):
        super().__init__()
        self.n_dims, self.n_output_dims = n_dims, n_dims
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0 and self.offset == 0.0:
            return x
        return x * self.scale + self.offset

    def extra_repr(self) -> str:
        return f"n_dims={self.n_dims}, scale={self.scale}, offset={self.offset}"


def _check_keys(config: dict, allowed: tuple[str, ...], what: str) -> None:
    for key in config:
        if key not in allowed:
            raise ValueError(f"{what} encoding: unknown key {key!r}; known keys: {list(allowed)}")


def encoding_from_config(config: dict, n_dims: int, generator: torch.Generator | None = None) -> nn.Module:
    """An encoding module (with `.n_output_dims`) for `n_dims` inputs from a JSON dict.

    tiny-cuda-nn otypes (case-insensitive, tcnn semantics and defaults):
      HashGrid / Grid / DenseGrid  (see `HashGridConfig.from_tcnn`),
      Frequency {n_frequencies=12}  (tcnn layout, no raw input),
      SphericalHarmonics {degree=4}  (NOTE: our module takes unit vectors in [-1, 1], tcnn (d+1)/2),
      Identity {scale=1, offset=0}.
    Our own names (keys = constructor arguments):
      hash_grid {HashGridConfig fields}, frequency {n_frequencies, include_input=False},
      gaussian_fourier {n_features, sigma}, spherical_harmonics {degree}, identity.
    Unknown otypes or keys raise ValueError naming them.

    >>> encoding_from_config({"otype": "Frequency", "n_frequencies": 4}, 3).n_output_dims
    24
    """
    if not isinstance(config, dict) or "otype" not in config:
        raise ValueError(f"encoding config must be a dict with an 'otype' key, got {config!r}")
    otype = str(config["otype"])
    name = otype.lower()
    rest = {k: v for k, v in config.items() if k != "otype"}
    if name in ("hashgrid", "grid", "densegrid"):
        return HashGrid(n_dims, HashGridConfig.from_tcnn(config), generator=generator)
    if name == "hash_grid":
        return HashGrid(n_dims, HashGridConfig.from_dict(rest), generator=generator)
    if name == "frequency":
        _check_keys(config, ("otype", "n_frequencies", "include_input"), otype)
        return FrequencyEncoding(n_dims, int(rest.get("n_frequencies", 12)), bool(rest.get("include_input", False)))
    if name in ("sphericalharmonics", "spherical_harmonics"):
        _check_keys(config, ("otype", "degree"), otype)
        if n_dims != 3:
            raise ValueError(f"{otype} encoding needs 3-D directions, got n_dims={n_dims}")
        return SphericalHarmonics(int(rest.get("degree", 4)))
    if name == "identity":
        _check_keys(config, ("otype", "scale", "offset"), otype)
        return Identity(n_dims, float(rest.get("scale", 1.0)), float(rest.get("offset", 0.0)))
    if name == "gaussian_fourier":
        _check_keys(config, ("otype", "n_features", "sigma"), otype)
        if "n_features" not in rest or "sigma" not in rest:
            raise ValueError(f"{otype} encoding needs keys 'n_features' and 'sigma'")
        return GaussianFourierFeatures(n_dims, int(rest["n_features"]), float(rest["sigma"]), generator=generator)
    raise ValueError(f"unknown encoding otype {otype!r}; expected one of HashGrid, Grid, DenseGrid, Frequency, "
                     "SphericalHarmonics, Identity, hash_grid, gaussian_fourier")
