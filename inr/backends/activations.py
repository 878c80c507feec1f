"""Activations used by fields, by name, so specs stay plain JSON (the names are in `contracts`)."""
from __future__ import annotations

import torch

from .contracts import OUTPUT_ACTIVATIONS


def apply_activation(x: torch.Tensor, name: str, w0: float = 1.0) -> torch.Tensor:
    """Apply activation `name` to pre-activations `x`.

    `sine` is SIREN's sin(w0 * x): w0 scales the pre-activation, so weights keep unit-scale
    initialisation statistics (Sitzmann et al., 2020, supplement 1.5).

    >>> apply_activation(torch.zeros(2), "sine", 30.0)
    tensor([0., 0.])
    """
    if name == "relu":
        return torch.relu(x)
    if name == "sine":
        return torch.sin(w0 * x)
    if name == "none":
        return x
    if name == "sigmoid":
        return torch.sigmoid(x)
    if name == "exp":
        return torch.exp(x)
    raise ValueError(f"unknown activation {name!r}; expected one of {OUTPUT_ACTIVATIONS}")


def activation_slope(z: torch.Tensor, h: torch.Tensor, name: str, w0: float = 1.0) -> torch.Tensor:
    """d act / d z at pre-activations z, given h = act(z) (reused where the slope is a function of it).

    >>> activation_slope(torch.zeros(1), torch.zeros(1), "sine", 30.0)
    tensor([30.])
    """
    if name == "relu":
        return (z > 0).to(z.dtype)
    if name == "sine":
        return w0 * torch.cos(w0 * z)
    if name == "none":
        return torch.ones_like(z)
    if name == "sigmoid":
        return h * (1 - h)
    if name == "exp":
        return h
    raise ValueError(f"unknown activation {name!r}; expected one of {OUTPUT_ACTIVATIONS}")
