"""SIREN (Sitzmann et al. 2020): a sine MLP on raw coordinates."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from inr.nn import MLP, MLPSpec

from .base import Field, OutputAffine, Params


@dataclass
class SirenConfig(OutputAffine):
    """SIREN's shape; the defaults are the paper's image setting, narrower for CPU fitting."""

    hidden: tuple[int, ...] = (256, 256, 256)
    w0: float = 30.0
    w0_hidden: float = 30.0
    output_activation: str = "none"


class SirenField(Field):
    """sin(w0 * (W x + b)) layers with SIREN initialisation and a linear output.

    >>> f = SirenField(2, 3, SirenConfig(hidden=(32, 32)))
    >>> f(torch.zeros(5, 2)).shape
    torch.Size([5, 3])
    """

    kind = "siren"

    def __init__(self, d_in: int, d_out: int, cfg: SirenConfig | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg or SirenConfig()
        self.d_in, self.d_out = d_in, d_out
        self.spec = MLPSpec(d_in, tuple(self.cfg.hidden), d_out, activation="sine",
                            output_activation=self.cfg.output_activation,
                            w0_first=self.cfg.w0, w0_hidden=self.cfg.w0_hidden)
        self.net = MLP(self.spec, init="siren", generator=generator)

    def forward(self, x: torch.Tensor, params: Params | None = None) -> torch.Tensor:
        return self.rescale(self.net(x, params, prefix="net."))

    def value_and_grad(self, x: torch.Tensor, params: Params | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The field and its Jacobian dy/dx [..., d_out, d_in] in one forward pass (forward-mode
        tangents; the fused CUDA kernel where it applies): an eikonal loss then needs no double backward."""
        y, jac = self.net.value_and_grad(x, params, prefix="net.")
        return self.rescale(y), jac * self.cfg.output_scale

    def config(self) -> dict:
        return {"kind": self.kind, "d_in": self.d_in, "d_out": self.d_out, **asdict(self.cfg)}
