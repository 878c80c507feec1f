"""Built-in shapes for `inr fit sdf`: analytic signed distance functions, no download, ever.

    sphere      radius 1
    torus       major radius 1, minor radius 0.4, around the y axis
    box         half extents (1, 0.7, 0.5)
    composite   the default: a rounded slab with a hole, a sphere, a torus ring and a capsule
                (unions, a subtraction and a smooth blend of primitives)

Each function maps points [..., 3] (torch) to signed distances [...], negative inside, in the
shape's own units; `bounds` is the shape's axis-aligned bounding box. Sphere, torus and box are
exact Euclidean distances. The composite is built with min/max (the usual CSG bound): exact
outside each primitive's influence, a lower bound on |distance| near creases and inside.

>>> s = load_shape_scene("sphere")
>>> float(s.sdf(torch.tensor([[2.0, 0.0, 0.0]]))[0])
1.0
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from inr.errors import InputError

DEFAULT_SHAPE_SCENE = "composite"


def sphere_sdf(p: torch.Tensor, radius: float = 1.0, centre=(0.0, 0.0, 0.0)) -> torch.Tensor:
    return torch.linalg.vector_norm(p - p.new_tensor(centre), dim=-1) - radius


def torus_sdf(p: torch.Tensor, major: float = 1.0, minor: float = 0.4, centre=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """Torus around the y axis (its ring lies in the xz plane)."""
    q = p - p.new_tensor(centre)
    ring = torch.sqrt(q[..., 0] ** 2 + q[..., 2] ** 2) - major
    return torch.sqrt(ring ** 2 + q[..., 1] ** 2) - minor


def box_sdf(p: torch.Tensor, half=(1.0, 0.7, 0.5), centre=(0.0, 0.0, 0.0), rounding: float = 0.0) -> torch.Tensor:
    """Exact distance to an axis-aligned box (rounded by `rounding`, kept within `half`)."""
    q = (p - p.new_tensor(centre)).abs() - (p.new_tensor(half) - rounding)
    outside = torch.linalg.vector_norm(q.clamp(min=0), dim=-1)
    inside = q.max(dim=-1).values.clamp(max=0)
    return outside + inside - rounding


def capsule_sdf(p: torch.Tensor, a, b, radius: float) -> torch.Tensor:
    """Exact distance to the capsule of `radius` around segment a-b."""
    a, b = p.new_tensor(a), p.new_tensor(b)
    pa, ba = p - a, b - a
    t = ((pa * ba).sum(-1) / (ba * ba).sum()).clamp(0, 1)
    return torch.linalg.vector_norm(pa - t[..., None] * ba, dim=-1) - radius


def smooth_union(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    """Polynomial smooth minimum (Quilez) with blend radius k."""
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b * (1 - h) + a * h - k * h * (1 - h)


def composite_sdf(p: torch.Tensor) -> torch.Tensor:
    """A procedural composite: slab with a cylindrical hole, a sphere blended onto it, a torus ring
    standing on it and a slanted capsule. Genus 2, sharp and smooth features, thin parts."""
    slab = box_sdf(p, half=(1.0, 0.18, 0.7), centre=(0.0, -0.55, 0.0), rounding=0.05)
    hole = torch.sqrt((p[..., 0] + 0.55) ** 2 + (p[..., 2] - 0.25) ** 2) - 0.2
    base = torch.maximum(slab, -hole)
    ball = sphere_sdf(p, 0.42, (0.35, -0.1, -0.1))
    ring = torus_sdf(p[..., [0, 2, 1]], 0.32, 0.09, (-0.45, -0.15, 0.1))  # ring in the xy plane
    rod = capsule_sdf(p, (0.55, -0.4, 0.45), (0.85, 0.55, 0.45), 0.1)
    return torch.minimum(torch.minimum(smooth_union(base, ball, 0.15), ring), rod)


@dataclass(frozen=True)
class AnalyticShape:
    """A named analytic signed distance function and its bounding box (own units)."""

    name: str
    sdf: Callable[[torch.Tensor], torch.Tensor]
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]]
    exact: bool = True  # a true Euclidean distance everywhere (not a CSG bound)


SHAPE_SCENES: dict[str, AnalyticShape] = {
    "sphere": AnalyticShape("sphere", sphere_sdf, ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))),
    "torus": AnalyticShape("torus", torus_sdf, ((-1.4, -0.4, -1.4), (1.4, 0.4, 1.4))),
    "box": AnalyticShape("box", box_sdf, ((-1.0, -0.7, -0.5), (1.0, 0.7, 0.5))),
    "composite": AnalyticShape("composite", composite_sdf, ((-1.0, -0.73, -0.7), (1.0, 0.65, 0.7)), exact=False),
}


def list_shapes() -> list[str]:
    """Names of the built-in shapes, the default first.

    >>> list_shapes()[0]
    'composite'
    """
    return [DEFAULT_SHAPE_SCENE, *(n for n in SHAPE_SCENES if n != DEFAULT_SHAPE_SCENE)]


def load_shape_scene(name: str) -> AnalyticShape:
    if name not in SHAPE_SCENES:
        raise InputError(f"unknown shape {name!r}: not a file, and not a built-in shape ({', '.join(list_shapes())})")
    return SHAPE_SCENES[name]


def resolve_shape(target: str, **mesh_options):
    """The SDF target for `target`: a mesh file (OBJ, PLY, STL, OFF, GLB) or a built-in shape name."""
    import os

    from inr.signals.sdf import AnalyticTarget, MeshTarget

    looks_like_file = os.path.sep in target or os.path.splitext(target)[1] != ""
    if os.path.exists(target) or (looks_like_file and target not in SHAPE_SCENES):
        return MeshTarget.from_file(target, **mesh_options)
    return AnalyticTarget(load_shape_scene(target))
