"""Magnitude Invariant Parametrization (Ortiz, Guttag and Dalca, "Magnitude Invariant
Parametrizations Improve Hypernetwork Learning", ICLR 2024).

Two changes to a plain hypernetwork theta = h(gamma):
1. The input gamma in [0, 1]^k is encoded as [cos(pi gamma / 2), sin(pi gamma / 2)]: every encoded
   pair has unit norm, so the input's magnitude no longer scales the generated weights.
2. The output is additive, theta = theta_0 + h(gamma), with theta_0 learnable and drawn from the
   target's own initialisation (SIREN or He), while the output layer is initialised so that h
   starts small (Kaiming-normal over the fan-out, as the authors' hyperlight does).
"""
from __future__ import annotations

import math

import torch


def mip_encode(gamma: torch.Tensor) -> torch.Tensor:
    """[..., k] in [0, 1] -> [..., 2k]: cosines then sines of pi * gamma / 2 (norm sqrt(k) always).

    >>> mip_encode(torch.tensor([[0.0, 1.0]])).norm().item()
    1.4142135381698608
    """
    angle = gamma * (math.pi / 2)
    return torch.cat([torch.cos(angle), torch.sin(angle)], dim=-1)
