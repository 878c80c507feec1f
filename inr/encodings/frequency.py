"""Sinusoidal encodings: NeRF's positional (frequency) encoding and random Fourier features."""
from __future__ import annotations

import math

import torch
from torch import nn


class FrequencyEncoding(nn.Module):
    """NeRF positional encoding: sin/cos(2^k * pi * x) for k = 0 .. n_frequencies-1.

    Output layout (tiny-cuda-nn's "Frequency", so weights trained against tcnn carry over): per
    input dim j, per frequency k, the pair [sin, cos]; with `include_input` the raw x comes first.
    n_output_dims = n_dims * (include_input + 2 * n_frequencies).

    >>> enc = FrequencyEncoding(1, 2, include_input=False)
    >>> y = enc(torch.tensor([[0.5]]))  # sin(pi/2), cos(pi/2), sin(pi), cos(pi)
    >>> torch.allclose(y, torch.tensor([[1.0, 0.0, 0.0, -1.0]]), atol=1e-6)
    True
    """

    def __init__(self, n_dims: int, n_frequencies: int, include_input: bool = True):
        super().__init__()
        if n_dims < 1 or n_frequencies < 0:
            raise ValueError(f"FrequencyEncoding needs n_dims >= 1 and n_frequencies >= 0, got {n_dims}, {n_frequencies}")
        self.n_dims, self.n_frequencies, self.include_input = n_dims, n_frequencies, include_input
        self.n_output_dims = n_dims * (int(include_input) + 2 * n_frequencies)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_frequencies, dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_dims:
            raise ValueError(f"FrequencyEncoding expects {self.n_dims}-D inputs, got shape {tuple(x.shape)}")
        arg = x.unsqueeze(-1) * self.freqs.to(x.dtype)                      # [..., d, K]
        enc = torch.stack([torch.sin(arg), torch.cos(arg)], -1).flatten(-3)  # [..., d*K*2]
        return torch.cat([x, enc], -1) if self.include_input else enc

    def extra_repr(self) -> str:
        return f"n_dims={self.n_dims}, n_frequencies={self.n_frequencies}, include_input={self.include_input}"


class GaussianFourierFeatures(nn.Module):
    """Random Fourier features (Tancik et al. 2020): [cos(2 pi B x), sin(2 pi B x)].

    B [n_features, n_dims] ~ N(0, sigma^2) is a buffer, so it is saved and loaded with the
    state_dict (a reloaded field sees the same features). n_output_dims = 2 * n_features.

    >>> enc = GaussianFourierFeatures(2, 4, sigma=10.0, generator=torch.Generator().manual_seed(0))
    >>> enc(torch.zeros(3, 2))[0]
    tensor([1., 1., 1., 1., 0., 0., 0., 0.])
    """

    def __init__(self, n_dims: int, n_features: int, sigma: float, generator: torch.Generator | None = None):
        super().__init__()
        if n_dims < 1 or n_features < 1 or not sigma > 0:
            raise ValueError(f"GaussianFourierFeatures needs n_dims, n_features >= 1 and sigma > 0, "
                             f"got {n_dims}, {n_features}, {sigma}")
        self.n_dims, self.n_features, self.sigma = n_dims, n_features, float(sigma)
        self.n_output_dims = 2 * n_features
        self.register_buffer("B", torch.randn(n_features, n_dims, generator=generator) * self.sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.n_dims:
            raise ValueError(f"GaussianFourierFeatures expects {self.n_dims}-D inputs, got shape {tuple(x.shape)}")
        arg = (2 * math.pi) * (x @ self.B.to(x.dtype).T)
        return torch.cat([torch.cos(arg), torch.sin(arg)], -1)

    def extra_repr(self) -> str:
        return f"n_dims={self.n_dims}, n_features={self.n_features}, sigma={self.sigma}"
