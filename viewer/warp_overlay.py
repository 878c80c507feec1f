"""What the views draw of an HC-INR field's warp (`inr.hyper.hcinr`): where a regular lattice goes
(the image view's deformed grid) and how far each point of a slice moves (the SDF view's warp
slice). Any field with a `warp(x)` method returning ([x_0, ..., x_L], code) qualifies."""
from __future__ import annotations

import numpy as np
import torch


def has_warp(field) -> bool:
    return callable(getattr(field, "warp", None))


@torch.no_grad()
def warped(field, points: torch.Tensor, chunk: int = 1 << 16) -> torch.Tensor:
    """x_L for every point [N, d] (the composed warp of all levels), on the CPU."""
    device = next(field.parameters()).device
    out = [field.warp(part.to(device))[0][-1].float().cpu() for part in points.split(chunk)]
    return torch.cat(out) if out else points.clone()


def lattice_segments(field, lines: int = 24, per_cell: int = 4, gain: float = 1.0) -> tuple[np.ndarray, float]:
    """The deformed grid: `lines` horizontal and `lines` vertical lines of the image's [-1, 1]^2
    lattice, each cut into `per_cell` segments between crossings, with every point drawn at
    x + gain * (x_L - x). Returns segment end points [M, 2, 2] in image coordinates (x right, y down)
    and the largest displacement |x_L - x| (undrawn: without the gain).
    `gain` > 1 exaggerates displacements that are a fraction of a cell (each level's step is bounded
    by its cell size)."""
    t = torch.linspace(-1, 1, lines)
    s = torch.linspace(-1, 1, (lines - 1) * per_cell + 1)
    across, along = torch.meshgrid(t, s, indexing="ij")  # [lines, samples]: fixed coordinate, running one
    rows = torch.stack([along, across], -1)   # horizontal lines: y fixed
    cols = torch.stack([across, along], -1)   # vertical lines: x fixed
    polylines = torch.cat([rows, cols])       # [2 * lines, samples, 2]
    flat = polylines.reshape(-1, 2)
    shift = warped(field, flat) - flat
    moved = (flat + gain * shift).reshape(polylines.shape)
    segments = torch.stack([moved[:, :-1], moved[:, 1:]], 2).reshape(-1, 2, 2).numpy()
    return segments, float(shift.norm(dim=-1).max())


def displacement(field, points: torch.Tensor) -> torch.Tensor:
    """|x_L - x| for every point [N, d]."""
    return (warped(field, points) - points).norm(dim=-1)
