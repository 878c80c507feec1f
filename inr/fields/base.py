"""What every field shares: y = f(x; theta) with theta optionally supplied from outside."""
from __future__ import annotations

from typing import Mapping

import torch
from torch import nn

Params = Mapping[str, torch.Tensor]


class Field(nn.Module):
    """A batched function x: [N, d_in] or [B, N, d_in] -> [..., d_out].

    `forward(x, params)` takes an optional mapping from parameter names (as in
    `named_parameters()`) to replacement tensors; a replacement may carry a leading instance
    dimension B, giving each of the B instances its own value (DESIGN §1).
    """

    kind: str = "field"
    d_in: int
    d_out: int

    def config(self) -> dict:
        """The plain-JSON constructor arguments; `build_field(**config)` rebuilds the field."""
        raise NotImplementedError

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Unbatched shape of every replaceable parameter, by name."""
        return {name: tuple(p.shape) for name, p in self.named_parameters()}
