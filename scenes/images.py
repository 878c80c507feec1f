"""Built-in image scenes: no download, ever.

Photographs are read straight from the files that ship inside the scikit-image wheel
(``skimage/data/*.png``), never through ``skimage.data.<name>()``, whose fetcher may reach for the
network (pooch) for images that are not bundled. The procedural scene is computed in code.

    camera                  512 x 512 gray, the default scene (skimage "cameraman")
    astronaut               512 x 512 RGB (Eileen Collins, NASA; public domain)
    coffee                  400 x 600 RGB
    chelsea                 300 x 451 RGB (a cat)
    checkerboard-zoneplate  256 x 256 gray by default (any size): zone plate whose sign flips on
                            a 8 x 8 checkerboard: sharp edges and frequencies up to 0.7 Nyquist
"""
from __future__ import annotations

import functools
import math
import os

import numpy as np
import torch

from inr.errors import InputError
from inr.signals.image import downscale_image, load_image

DEFAULT_IMAGE_SCENE = "camera"

# name -> file inside skimage/data, for the photographs
_SKIMAGE_FILES = {
    "camera": "camera.png",
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
}
_PROCEDURAL_SIZE = 256

IMAGE_SCENES: tuple[str, ...] = (*_SKIMAGE_FILES, "checkerboard-zoneplate")


def list_scenes() -> list[str]:
    """Names of the built-in image scenes, default first.

    >>> list_scenes()[0]
    'camera'
    """
    return list(IMAGE_SCENES)


def _skimage_data_path(filename: str) -> str:
    import skimage

    return os.path.join(os.path.dirname(skimage.__file__), "data", filename)


@functools.lru_cache(maxsize=None)
def _load_bundled(name: str) -> torch.Tensor:
    path = _skimage_data_path(_SKIMAGE_FILES[name])
    if not os.path.isfile(path):  # a trimmed scikit-image install
        raise InputError(f"built-in scene {name!r}: {path} is missing from the scikit-image install")
    return load_image(path)


def checkerboard_zoneplate(size: int = _PROCEDURAL_SIZE, squares: int = 8) -> torch.Tensor:
    """A size x size gray test image [size, size, 1] in [0, 1].

    A zone plate 0.5 + 0.5 cos(a r^2), whose local frequency grows linearly with the radius to
    0.7 of the Nyquist rate in the corners, is inverted on alternate squares of a `squares` x
    `squares` checkerboard. It has fine detail everywhere and sharp edges aligned to pixel borders
    (when `squares` divides `size`), so it is defined exactly at every resolution, unaliased.

    >>> checkerboard_zoneplate(64).shape
    torch.Size([64, 64, 1])
    """
    if size < 2:
        raise InputError(f"checkerboard-zoneplate size must be at least 2, got {size}")
    c = (np.arange(size, dtype=np.float64) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    x, y = np.meshgrid(c, c, indexing="xy")
    r2 = x * x + y * y
    # Local frequency of cos(a r^2) is a r / pi cycles per unit; Nyquist is size / 4 per unit.
    a = 0.7 * (size / 4) * math.pi / math.sqrt(2)
    zone = 0.5 + 0.5 * np.cos(a * r2)
    cell = np.floor((c + 1) / 2 * squares).astype(np.int64)
    checker = (cell[None, :] + cell[:, None]) % 2 == 1
    img = np.where(checker, 1.0 - zone, zone)
    return torch.from_numpy(img.astype(np.float32))[:, :, None]


def load_image_scene(name: str, size: int | None = None) -> torch.Tensor:
    """A built-in image [H, W, C] (float32 in [0, 1]) by name.

    `size` downscales so the longer side is `size` pixels (area filter, anti-aliased; aspect kept);
    the procedural scene is instead computed at size x size. Unknown names raise `InputError`
    listing the available ones.

    >>> load_image_scene("camera", size=256).shape
    torch.Size([256, 256, 1])
    """
    if name == "checkerboard-zoneplate":
        return checkerboard_zoneplate(_PROCEDURAL_SIZE if size is None else int(size))
    if name not in _SKIMAGE_FILES:
        raise InputError(f"unknown image scene {name!r} (available: {', '.join(IMAGE_SCENES)})")
    img = _load_bundled(name)
    if size is None:
        return img.clone()
    return downscale_image(img, int(size))


def resolve_image(arg: str | os.PathLike, size: int | None = None) -> torch.Tensor:
    """An image from a file path or a built-in scene name (a path wins when both exist).

    `size`, if given, downscales either kind so the longer side is `size` pixels.

    >>> resolve_image("camera").shape
    torch.Size([512, 512, 1])
    """
    s = os.fspath(arg)
    if os.path.exists(s):
        img = load_image(s)
        return img if size is None else downscale_image(img, int(size))
    if s in IMAGE_SCENES:
        return load_image_scene(s, size)
    raise InputError(f"{s}: no such file or built-in scene (available: {', '.join(IMAGE_SCENES)})")
