"""Where a hypernetwork's conditioning z comes from.

- `AutoDecoder`: one learned latent per signal (DeepSDF), trained with its own learning rate and a
  latent-norm penalty; a new signal is fitted by optimising a fresh latent alone.
- `ConvEncoder`: a small CNN from a whole image to z (one pass fits a new image).
- `SetEncoder`: a permutation-invariant encoder (DeepSets) over (coordinate, value) observations, so
  a field can be conditioned on a partial observation: any subset of an image's pixels.

With `bounded=True` (used with MIP, whose inputs live in [0, 1]) each source ends in a sigmoid.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SOURCES = ("latent", "conv", "set")


def _squash(z: torch.Tensor, bounded: bool) -> torch.Tensor:
    return torch.sigmoid(z) if bounded else z


class AutoDecoder(nn.Module):
    """`forward(indices [B]) -> z [B, dim]`: one learned latent per signal.

    Unbounded latents start N(0, 1/dim) as DeepSDF's. With `bounded` (MIP) the latents are MIP's
    gammas themselves, drawn U(0, 1) so that signals start spread over the encoding's quarter circle
    (a sigmoid of small latents would start every signal at the same encoding); the cos/sin
    encoding keeps a constant norm wherever they move.
    """

    kind = "latent"

    def __init__(self, n_signals: int, dim: int, bounded: bool = False, generator: torch.Generator | None = None):
        super().__init__()
        self.dim, self.bounded = dim, bounded
        self.centre = 0.5 if bounded else 0.0
        init = torch.rand(n_signals, dim, generator=generator) if bounded else \
            torch.randn(n_signals, dim, generator=generator) / math.sqrt(dim)
        self.latents = nn.Parameter(init)

    def forward(self, indices: torch.Tensor) -> torch.Tensor:
        return self.latents[indices]

    def initial_latent(self) -> torch.Tensor:
        """Where a new signal's latent starts: the mean of the trained ones."""
        return self.latents.detach().mean(0)

    def penalty(self, indices: torch.Tensor) -> torch.Tensor:
        """Mean squared distance of the batch's latents from the prior's centre (DeepSDF's code
        regulariser; the centre is 0.5 for MIP's gammas)."""
        return (self.latents[indices] - self.centre).pow(2).sum(-1).mean()


class ConvEncoder(nn.Module):
    """Images [B, C, H, W] (any size; resized to `size`) -> z [B, dim]: strided 3x3 convolutions,
    global average pooling and a linear layer."""

    kind = "conv"

    def __init__(self, channels: int, dim: int, width: int = 64, size: int = 64, bounded: bool = False):
        super().__init__()
        self.dim, self.bounded, self.size = dim, bounded, size
        layers, c = [], channels
        for i in range(4):
            out = width * min(2 ** i, 4)
            layers += [nn.Conv2d(c, out, 3, stride=2 if i else 1, padding=1), nn.ReLU()]
            c = out
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(c, dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.size, self.size):
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False,
                                   antialias=True)
        h = self.convs(images * 2 - 1).mean(dim=(-2, -1))
        return _squash(self.out(h), self.bounded)


class SetEncoder(nn.Module):
    """Observations (coords [B, M, d], values [B, M, c]) -> z [B, dim], invariant to their order and
    defined for any M: phi on each (Fourier-encoded coordinate, value) pair, a mean, then rho."""

    kind = "set"

    def __init__(self, d_coord: int, d_value: int, dim: int, width: int = 128, n_frequencies: int = 6,
                 bounded: bool = False):
        super().__init__()
        self.dim, self.bounded = dim, bounded
        self.register_buffer("frequencies", math.pi * 2.0 ** torch.arange(n_frequencies, dtype=torch.float32),
                             persistent=False)
        d = d_coord * (1 + 2 * n_frequencies) + d_value
        self.phi = nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, width))
        self.rho = nn.Sequential(nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, dim))

    def forward(self, coords: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        angles = coords.unsqueeze(-1) * self.frequencies
        enc = torch.cat([coords, torch.sin(angles).flatten(-2), torch.cos(angles).flatten(-2), values * 2 - 1], dim=-1)
        return _squash(self.rho(self.phi(enc).mean(dim=-2)), self.bounded)
