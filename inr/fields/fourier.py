"""Fourier-feature baseline (Tancik et al. 2020): a ReLU MLP on Gaussian or NeRF frequency features."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from inr.encodings import FrequencyEncoding, GaussianFourierFeatures
from inr.nn import MLP, MLPSpec

from .base import Field, OutputAffine, Params

FOURIER_ENCODINGS = ("gaussian", "frequency")


@dataclass
class FourierConfig(OutputAffine):
    """Gaussian features with sigma 10 and a 4-layer ReLU MLP, Tancik et al.'s image setting."""

    hidden: tuple[int, ...] = (256, 256, 256)
    encoding: str = "gaussian"
    n_features: int = 256
    sigma: float = 10.0
    n_frequencies: int = 10
    output_activation: str = "none"


class FourierField(Field):
    """ReLU MLP on Fourier features of the coordinates.

    >>> FourierField(2, 1, FourierConfig(hidden=(16,), n_features=8))(torch.zeros(3, 2)).shape
    torch.Size([3, 1])
    """

    kind = "fourier"

    def __init__(self, d_in: int, d_out: int, cfg: FourierConfig | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg or FourierConfig()
        self.d_in, self.d_out = d_in, d_out
        if self.cfg.encoding == "gaussian":
            self.encoding = GaussianFourierFeatures(d_in, self.cfg.n_features, self.cfg.sigma, generator=generator)
        elif self.cfg.encoding == "frequency":
            self.encoding = FrequencyEncoding(d_in, self.cfg.n_frequencies, include_input=True)
        else:
            raise ValueError(f"fourier encoding must be one of {FOURIER_ENCODINGS}, got {self.cfg.encoding!r}")
        self.spec = MLPSpec(self.encoding.n_output_dims, tuple(self.cfg.hidden), d_out, activation="relu",
                            output_activation=self.cfg.output_activation)
        self.net = MLP(self.spec, init="he", generator=generator)

    def forward(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        return self.rescale(self.net(self.encoding(x), params, prefix="net."))

    def config(self) -> dict:
        return {"kind": self.kind, "d_in": self.d_in, "d_out": self.d_out, **asdict(self.cfg)}
