"""HC-INR's settings, their validation, and the feature grids' memory estimate (checked before
anything is allocated, so a grid that cannot fit is one line of error, not an out-of-memory kill)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

from inr.backends.contracts import INTERPOLATIONS, HashGridConfig
from inr.fields.base import OutputAffine

COMPACT_FIELDS = ("siren", "fourier")
# Training keeps four float32 copies of every grid entry: the value, its gradient, Adam's two moments.
BYTES_PER_ENTRY = 4 * 4
# Share of the available memory the grids may claim (the batch, the MLPs and Python need the rest).
MEMORY_SHARE = 0.5


@dataclass
class HCINRConfig(OutputAffine):
    """Levels coarse to fine; level l has a grid of `n_features` local features at
    `base_resolution * per_level_scale**l` cells per side (dense for the first `dense_levels`
    levels, hashed into 2^`log2_hashmap_size` rows after), a hypernetwork of `hyper_hidden` ReLU
    layers emitting a `code_dim` code and the level's transform, and a displacement bound of
    `displacement_scale` cells. The compact field (`compact`: siren or fourier) has `compact_hidden`
    layers and reads x_L, or [x_0, ..., x_L] with `concat_intermediate`, and with `compact_code`
    also the finest level's code c_{L-1} (a local latent beside the warped coordinate). `warp_lr_scale`
    multiplies the learning rate of the grids and hypernetworks (the compact field trains at
    the run's lr)."""

    levels: int = 3
    dense_levels: int = 2
    base_resolution: int = 16
    per_level_scale: float = 2.0
    n_features: int = 4
    log2_hashmap_size: int = 12
    interpolation: str = "linear"
    code_dim: int = 16
    hyper_hidden: tuple[int, ...] = (32,)
    displacement_scale: float = 1.0
    compact: str = "siren"
    compact_hidden: tuple[int, ...] = (64, 64, 64)
    compact_w0: float = 30.0
    fourier_features: int = 64
    fourier_sigma: float = 10.0
    concat_intermediate: bool = False
    compact_code: bool = True
    warp_lr_scale: float = 100.0
    output_activation: str = "none"

    def __post_init__(self):  # config.json holds lists; the widths are tuples everywhere else
        self.hyper_hidden = tuple(self.hyper_hidden)
        self.compact_hidden = tuple(self.compact_hidden)

    def level_resolution(self, level: int) -> int:
        """Grid points per side of level `level` (tcnn's semantics: that many points span [0, 1])."""
        return max(2, int(round(self.base_resolution * self.per_level_scale ** level)))

    def level_is_dense(self, level: int) -> bool:
        return level < self.dense_levels

    def level_grid(self, level: int) -> HashGridConfig:
        """The one-resolution grid of level `level`."""
        return HashGridConfig(n_levels=1, n_features_per_level=self.n_features, log2_hashmap_size=self.log2_hashmap_size,
                              base_resolution=self.level_resolution(level), interpolation=self.interpolation,
                              grid_type="dense" if self.level_is_dense(level) else "hash")

    def cell_size(self, level: int) -> float:
        """The width of one cell of level `level` in the field's [-1, 1] coordinates."""
        return 2.0 / (self.level_resolution(level) - 1)

    def level_rows(self, level: int, d_in: int) -> int:
        """Table rows of level `level`: every grid point when dense, at most 2^T when hashed."""
        rows = self.level_resolution(level) ** d_in
        return rows if self.level_is_dense(level) else min(rows, 1 << self.log2_hashmap_size)

    def grid_bytes(self, d_in: int) -> int:
        """Memory the feature grids need while training (value, gradient and Adam's two moments)."""
        return sum(self.level_rows(lvl, d_in) for lvl in range(self.levels)) * self.n_features * BYTES_PER_ENTRY

    def validate(self, d_in: int) -> None:
        """ValueError (one line, naming the option) for settings that cannot build or cannot fit."""
        def positive_int(name: str, value, minimum: int = 1) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"hcinr.{name} must be an integer >= {minimum}, got {value!r}")

        positive_int("levels", self.levels)
        positive_int("base_resolution", self.base_resolution, 2)
        positive_int("n_features", self.n_features)
        positive_int("code_dim", self.code_dim)
        positive_int("log2_hashmap_size", self.log2_hashmap_size)
        if self.log2_hashmap_size > 30:
            raise ValueError(f"hcinr.log2_hashmap_size must be <= 30, got {self.log2_hashmap_size}")
        if isinstance(self.dense_levels, bool) or not 0 <= self.dense_levels <= self.levels:
            raise ValueError(f"hcinr.dense_levels must be in 0..levels ({self.levels}), got {self.dense_levels!r}")
        if not math.isfinite(self.per_level_scale) or self.per_level_scale < 1:
            raise ValueError(f"hcinr.per_level_scale must be >= 1, got {self.per_level_scale}")
        for name in ("displacement_scale", "warp_lr_scale", "compact_w0", "fourier_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"hcinr.{name} must be > 0, got {getattr(self, name)}")
        for name in ("hyper_hidden", "compact_hidden"):
            widths = getattr(self, name)
            if not widths or min(widths) < 1:
                raise ValueError(f"hcinr.{name} needs at least one layer of width >= 1, got {list(widths)}")
        if self.compact not in COMPACT_FIELDS:
            raise ValueError(f"hcinr.compact must be one of {', '.join(COMPACT_FIELDS)}, got {self.compact!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"hcinr.interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        for lvl in range(self.levels):
            if self.level_is_dense(lvl) and self.level_resolution(lvl) ** d_in > 2**31 - 1:
                raise ValueError(f"hcinr: dense level {lvl} has {self.level_resolution(lvl)}^{d_in} points, "
                                 "more than a grid can index (2^31 - 1); lower dense_levels or base_resolution")
        need, have = self.grid_bytes(d_in), available_memory()
        if have is not None and need > MEMORY_SHARE * have:
            raise ValueError(f"hcinr: the feature grids need about {_gib(need)} to train but "
                             f"{_gib(have)} of memory is available; lower dense_levels, base_resolution, "
                             "per_level_scale, n_features or log2_hashmap_size")


def available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable; physical memory elsewhere), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: int) -> str:
    return f"{n / 2**30:.3g} GiB"
