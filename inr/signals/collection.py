"""Collections of images for hypernetworks: a folder of image files or a built-in set that the
caller supplies (`inr` knows no built-in names; the CLI passes `scenes`' procedural textures).

All members share one size and channel count, so a batch of them is one tensor [M, H, W, C]:
- a folder whose images differ in size is rejected (naming two files and their sizes) unless
  `size` is given, in which case every image is centre-cropped to a square and resized to
  size x size (area filter when shrinking, bilinear when growing);
- gray images join a colour collection as RGB; alpha is dropped (composited on white).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from inr.errors import InputError

from .image import load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".exr")

# A built-in collection by name: builtin(name, size) -> (images [M, H, W, C], names), or None when
# `name` is not one. Passed in from above (the CLI), so that `inr` never imports `scenes`.
BuiltinImages = Callable[[str, int | None], tuple[torch.Tensor, list[str]] | None]


@dataclass
class ImageCollection:
    images: torch.Tensor  # [M, H, W, C] float32 in [0, 1]
    names: list[str]
    source: str

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])


def _square_resize(image: torch.Tensor, size: int) -> torch.Tensor:
    h, w, _ = image.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = image[top:top + s, left:left + s].permute(2, 0, 1).unsqueeze(0)
    mode = "area" if s >= size else "bilinear"
    y = F.interpolate(x, size=(size, size), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return y[0].permute(1, 2, 0).clamp(0, 1)


def _to_rgb(image: torch.Tensor) -> torch.Tensor:
    c = image.shape[-1]
    if c == 1:
        return image.expand(*image.shape[:-1], 3)
    if c == 4:
        return image[..., :3] * image[..., 3:] + (1 - image[..., 3:])
    return image


def load_image_folder(folder: str | Path, size: int | None = None) -> ImageCollection:
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no images in this folder (expected {', '.join(IMAGE_SUFFIXES)})")
    images = [load_image(p) for p in files]  # a corrupt file raises, naming it
    if size is None:
        first = images[0].shape[:2]
        for p, im in zip(files, images):
            if im.shape[:2] != first:
                raise InputError(f"{folder}: images differ in size ({files[0].name} is {first[0]}x{first[1]}, "
                                 f"{p.name} is {im.shape[0]}x{im.shape[1]}); pass --size S to resize all to S x S")
    else:
        if size < 2:
            raise InputError(f"--size must be >= 2, got {size}")
        images = [_square_resize(im, size) for im in images]
    channels = {im.shape[-1] for im in images}
    if channels != {1}:
        images = [_to_rgb(im) for im in images]
    for p, im in zip(files, images):
        if im.min() < 0 or im.max() > 1:
            raise InputError(f"{p}: pixel values outside [0, 1] (HDR images cannot join a collection)")
    return ImageCollection(torch.stack(images).float().contiguous(), [p.stem for p in files], str(folder.resolve()))


def load_image_collection(source: str, size: int | None = None,
                          builtin: BuiltinImages | None = None) -> ImageCollection:
    """A folder of images, or the collection `builtin` knows by the name `source`."""
    path = Path(source)
    if path.is_dir():
        return load_image_folder(path, size)
    found = builtin(source, size) if builtin is not None else None
    if found is not None:
        images, names = found
        return ImageCollection(images, names, source)
    if path.exists():
        raise InputError(f"{source}: not a folder (an image collection is a folder of images or 'textures')")
    raise InputError(f"{source}: no such folder or built-in collection (built-in: textures, textures-N)")
