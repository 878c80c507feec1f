"""A built-in family of analytic shapes for `inr fit collection sdf`: no download, ever.

`shapes` is 16 members, `shapes-N` is N. Member i is a sphere, torus, box or capsule (i mod 4) whose
parameters (size, proportions, rounding, orientation, position) come from a generator seeded by i,
so member i is the same shape in every family size and on every machine. Every member's distance
is exact (Euclidean).

All members share one frame: each fits inside [-0.95, 0.95]^3 of the common box [-1, 1]^3, which is
every member's `bounds`, so the single-shape normalisation (`inr.signals.sdf.Normalisation`) maps
all of them by the same factor (0.9) and they keep their different sizes and positions (normalising
each to its own bounding box would make every sphere the same sphere).

>>> [s.name for s in load_shape_family("shapes-5")]
['sphere-00', 'torus-01', 'box-02', 'capsule-03', 'sphere-04']
>>> round(float(family_shape(0).sdf(torch.zeros(1, 3))[0]), 3) < 0
True
"""
from __future__ import annotations

import random
import re
from functools import partial

import torch

from inr.errors import InputError

from .shapes import AnalyticShape, box_sdf, capsule_sdf, sphere_sdf, torus_sdf

DEFAULT_FAMILY = "shapes"
DEFAULT_COUNT = 16
MAX_COUNT = 4096
KINDS = ("sphere", "torus", "box", "capsule")
BOX = 1.0  # the common frame [-BOX, BOX]^3
MARGIN = 0.95  # every member lies within [-MARGIN, MARGIN]^3
COMMON_BOUNDS = ((-BOX, -BOX, -BOX), (BOX, BOX, BOX))


def is_family_name(name: str) -> bool:
    """Whether `name` names the built-in family ("shapes" or "shapes-N")."""
    return re.fullmatch(r"shapes(-\d+)?", str(name)) is not None


def _centre(rng: random.Random, reach) -> tuple[float, float, float]:
    """A centre that keeps a shape of half extents `reach` (per axis) inside the margin."""
    return tuple(rng.uniform(-(MARGIN - r), MARGIN - r) for r in reach)


def _torus_axis(p: torch.Tensor, axis: int, major: float, minor: float, centre) -> torch.Tensor:
    """A torus around coordinate axis `axis` (0 x, 1 y, 2 z)."""
    order = {0: [1, 0, 2], 1: [0, 1, 2], 2: [0, 2, 1]}[axis]
    return torus_sdf(p[..., order] - p.new_tensor([centre[i] for i in order]), major, minor)


def family_shape(index: int) -> AnalyticShape:
    """Member `index` of the family (deterministic in `index`)."""
    rng = random.Random(7919 * index + 17)
    kind = KINDS[index % len(KINDS)]
    name = f"{kind}-{index:02d}"
    if kind == "sphere":
        r = rng.uniform(0.35, 0.85)
        fn = partial(sphere_sdf, radius=r, centre=_centre(rng, (r, r, r)))
    elif kind == "torus":
        minor = rng.uniform(0.12, 0.25)
        major = rng.uniform(0.4, MARGIN - minor - 0.05)
        axis = rng.randrange(3)
        reach = [major + minor] * 3
        reach[axis] = minor
        fn = partial(_torus_axis, axis=axis, major=major, minor=minor, centre=_centre(rng, reach))
    elif kind == "box":
        half = tuple(rng.uniform(0.25, 0.8) for _ in range(3))
        rounding = rng.uniform(0.0, 0.6) * min(half) * 0.3
        fn = partial(box_sdf, half=half, centre=_centre(rng, half), rounding=rounding)
    else:
        r = rng.uniform(0.15, 0.3)
        lim = MARGIN - r
        while True:  # a segment at least 0.5 long
            a = tuple(rng.uniform(-lim, lim) for _ in range(3))
            b = tuple(rng.uniform(-lim, lim) for _ in range(3))
            if sum((x - y) ** 2 for x, y in zip(a, b)) >= 0.25:
                break
        fn = partial(capsule_sdf, a=a, b=b, radius=r)
    return AnalyticShape(name, fn, COMMON_BOUNDS)


def family_size(name: str) -> int:
    m = re.fullmatch(r"shapes(?:-(\d+))?", str(name))
    if not m:
        raise InputError(f"unknown shape family {name!r}; built-in: shapes, shapes-N")
    count = int(m[1]) if m[1] else DEFAULT_COUNT
    if not 1 <= count <= MAX_COUNT:
        raise InputError(f"{name}: a shape family has 1..{MAX_COUNT} members, got {count}")
    return count


def load_shape_family(name: str = DEFAULT_FAMILY) -> list[AnalyticShape]:
    """The members of the built-in family `name` ("shapes" or "shapes-N")."""
    return [family_shape(i) for i in range(family_size(name))]


__all__ = ["DEFAULT_COUNT", "DEFAULT_FAMILY", "KINDS", "family_shape", "family_size", "is_family_name",
           "load_shape_family"]
