"""Real spherical harmonics of a direction, with tiny-cuda-nn's constants and sign convention."""
from __future__ import annotations

import torch
from torch import nn

MAX_DEGREE = 4


class SphericalHarmonics(nn.Module):
    """Real SH basis up to `degree` (1..4), giving degree**2 outputs per direction.

    Input: unit direction vectors [..., 3] with components in [-1, 1], used as they are.
    tiny-cuda-nn's SphericalHarmonics instead expects (d + 1) / 2 in [0, 1] and maps it back with
    x*2-1; feed tcnn (d+1)/2 and this module d to get identical outputs. Constants and signs are
    tcnn's (from Sloan's "Stupid SH tricks": Y_1^{-1} = -0.4886 y, Y_1^0 = 0.4886 z, ...).

    >>> SphericalHarmonics(2)(torch.tensor([[0.0, 0.0, 1.0]]))
    tensor([[0.2821, -0.0000, 0.4886, -0.0000]])
    """

    def __init__(self, degree: int):
        super().__init__()
        if not 1 <= degree <= MAX_DEGREE:
            raise ValueError(f"SphericalHarmonics degree must be in 1..{MAX_DEGREE}, got {degree}")
        self.degree = degree
        self.n_dims = 3
        self.n_output_dims = degree * degree

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        if d.shape[-1] != 3:
            raise ValueError(f"SphericalHarmonics expects [..., 3] directions, got shape {tuple(d.shape)}")
        x, y, z = d.unbind(-1)
        out = [torch.full_like(x, 0.28209479177387814)]                      # 1/(2 sqrt(pi))
        if self.degree > 1:
            out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
        if self.degree > 2:
            xy, yz, xz, x2, y2, z2 = x * y, y * z, x * z, x * x, y * y, z * z
            out += [1.0925484305920792 * xy, -1.0925484305920792 * yz,
                    0.94617469575755997 * z2 - 0.31539156525251999, -1.0925484305920792 * xz,
                    0.54627421529603959 * x2 - 0.54627421529603959 * y2]
        if self.degree > 3:
            out += [0.59004358992664352 * y * (-3.0 * x2 + y2), 2.8906114426405538 * xy * z,
                    0.45704579946446572 * y * (1.0 - 5.0 * z2), 0.3731763325901154 * z * (5.0 * z2 - 3.0),
                    0.45704579946446572 * x * (1.0 - 5.0 * z2), 1.4453057213202769 * z * (x2 - y2),
                    0.59004358992664352 * x * (-x2 + 3.0 * y2)]
        return torch.stack(out, -1)

    def extra_repr(self) -> str:
        return f"degree={self.degree}"
