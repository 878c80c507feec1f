"""Built-in image collections: procedural textures, computed in code (no download), for training
hypernetworks over many signals.

    textures        64 textures, 32 x 32 RGB: stripes, rings, plaids and blobs in two colours
    textures-N      N of them (textures-256); `--size` changes the resolution

Each texture is a smooth pattern p(x, y) in [0, 1] blended between two colours: a low-dimensional
family (kind, frequency, angle, phase, colours), so a hypernetwork can learn its manifold, while
frequencies up to ~0.3 cycles per pixel at 32 x 32 keep a small SIREN busy. Texture i of a given
seed is always the same image, and a larger N extends a smaller one.
"""
from __future__ import annotations

import math
import re

import torch

from inr.errors import InputError

DEFAULT_COLLECTION = "textures"
DEFAULT_COUNT = 64
DEFAULT_SIZE = 32
KINDS = ("stripes", "rings", "plaid", "blobs")


def _pattern(kind: str, x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    def u(lo, hi):
        return lo + (hi - lo) * float(torch.rand((), generator=g))

    if kind == "stripes":
        angle, freq, phase = u(0, math.pi), u(1.5, 5.0), u(0, 2 * math.pi)
        p = torch.sin(math.pi * freq * (x * math.cos(angle) + y * math.sin(angle)) + phase)
    elif kind == "rings":
        cx, cy, freq, phase = u(-0.5, 0.5), u(-0.5, 0.5), u(1.5, 4.5), u(0, 2 * math.pi)
        p = torch.sin(math.pi * freq * torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) + phase)
    elif kind == "plaid":
        fx, fy, px, py = u(1.0, 4.0), u(1.0, 4.0), u(0, 2 * math.pi), u(0, 2 * math.pi)
        p = torch.sin(math.pi * fx * x + px) * torch.sin(math.pi * fy * y + py)
    else:  # blobs: three Gaussians of either sign
        p = torch.zeros_like(x)
        for _ in range(3):
            cx, cy, s, a = u(-0.8, 0.8), u(-0.8, 0.8), u(0.15, 0.5), u(-1.5, 1.5)
            p = p + a * torch.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * s * s))
        p = torch.tanh(p)
    return 0.5 * (p + 1)


def procedural_texture(index: int, size: int = DEFAULT_SIZE, seed: int = 0) -> torch.Tensor:
    """Texture `index` as [size, size, 3] float32 in [0, 1]."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + index)
    kind = KINDS[index % len(KINDS)]
    c = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    y, x = torch.meshgrid(c, c, indexing="ij")
    p = _pattern(kind, x, y, g)
    c0, c1 = torch.rand(3, generator=g), torch.rand(3, generator=g)
    return (c0 + (c1 - c0) * p.unsqueeze(-1)).clamp(0, 1)


def is_collection_name(name: str) -> bool:
    return re.fullmatch(r"textures(-\d+)?", str(name)) is not None


def load_textures(name: str = DEFAULT_COLLECTION, size: int | None = None, seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """(images [N, size, size, 3], names) of the built-in collection `name` ("textures" or "textures-N").

    >>> images, names = load_textures("textures-8", 16)
    >>> tuple(images.shape), names[:2]
    ((8, 16, 16, 3), ['stripes-000', 'rings-001'])
    """
    m = re.fullmatch(r"textures(?:-(\d+))?", str(name))
    if not m:
        raise InputError(f"unknown image collection {name!r}; built-in: textures, textures-N")
    count = int(m[1]) if m[1] else DEFAULT_COUNT
    size = size or DEFAULT_SIZE
    if count < 1 or size < 2:
        raise InputError(f"{name}: a collection needs at least 1 texture of at least 2 x 2 pixels")
    images = torch.stack([procedural_texture(i, size, seed) for i in range(count)])
    return images, [f"{KINDS[i % len(KINDS)]}-{i:03d}" for i in range(count)]
