"""What every field shares: y = f(x; theta) with theta optionally supplied from outside."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

Params = Mapping[str, torch.Tensor]


@dataclass
class OutputAffine:
    """y = output_scale * net(x) + output_offset: lets the network work on a centred, unit-scale
    target (an image's [0, 1] as [-1, 1], as SIREN does) while the field returns the signal's values."""

    output_scale: float = 1.0
    output_offset: float = 0.0


class Field(nn.Module):
    """A batched function x: [N, d_in] or [B, N, d_in] -> [..., d_out].

    `forward(x, params)` takes an optional mapping from parameter names (as in
    `named_parameters()`) to replacement tensors; a replacement may carry a leading instance
    dimension B, giving each of the B instances its own value (DESIGN §1).
    """

    kind: str = "field"
    d_in: int
    d_out: int

    def rescale(self, y: torch.Tensor) -> torch.Tensor:
        """Apply the config's output affine map (identity by default)."""
        scale, offset = self.cfg.output_scale, self.cfg.output_offset
        return y if (scale, offset) == (1.0, 0.0) else y * scale + offset

    def config(self) -> dict:
        """The plain-JSON constructor arguments; `build_field(**config)` rebuilds the field."""
        raise NotImplementedError

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Unbatched shape of every replaceable parameter, by name."""
        return {name: tuple(p.shape) for name, p in self.named_parameters()}
