"""Batched linear layer: one weight set per instance, or one shared by all."""
from __future__ import annotations

import torch


def batched_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """y = x W^T + b with optional per-instance parameters.

    Shapes:
        x:      [N, in] or [B, N, in]
        weight: [out, in] (shared) or [B, out, in] (one per instance; needs x with B)
        bias:   [out] or [B, out]
    returns [N, out] or [B, N, out].

    >>> x = torch.randn(3, 5, 2); w = torch.randn(3, 4, 2); b = torch.randn(3, 4)
    >>> batched_linear(x, w, b).shape
    torch.Size([3, 5, 4])
    """
    if weight.dim() == 2:
        y = x @ weight.transpose(-1, -2)
        if bias is not None:
            y = y + (bias if bias.dim() == 1 else bias.unsqueeze(-2))
        return y
    if weight.dim() != 3:
        raise ValueError(f"weight must be [out, in] or [B, out, in], got {tuple(weight.shape)}")
    if x.dim() == 2:  # shared coordinates for every instance
        x = x.unsqueeze(0).expand(weight.shape[0], -1, -1)
    if x.shape[0] != weight.shape[0]:
        raise ValueError(f"x has {x.shape[0]} instances but weight has {weight.shape[0]}")
    if bias is None:
        return torch.bmm(x, weight.transpose(1, 2))
    b = bias.unsqueeze(1) if bias.dim() == 2 else bias.view(1, 1, -1).expand(x.shape[0], 1, -1)
    return torch.baddbmm(b, x, weight.transpose(1, 2))
