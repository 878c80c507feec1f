"""The built-in collections by name, from `scenes`: the CLI resolves them here and passes them into
`inr` as arguments, so that `inr` below the CLI never imports `scenes`.

Each `builtin_*` answers None for a name that is not built in, as `inr.signals.collection` and
`inr.signals.collection_sdf` expect.
"""
from __future__ import annotations

import torch

from inr.signals.collection import ImageCollection, load_image_collection
from inr.signals.collection_sdf import SDFCollection, load_sdf_collection


def builtin_textures(name: str, size: int | None) -> tuple[torch.Tensor, list[str]] | None:
    """(images, names) of the procedural textures `textures` / `textures-N`, else None."""
    from scenes.textures import is_collection_name, load_textures

    return load_textures(name, size) if is_collection_name(name) else None


def builtin_shapes(name: str) -> list | None:
    """The analytic shapes of the family `shapes` / `shapes-N`, else None."""
    from scenes.shape_family import is_family_name, load_shape_family

    return load_shape_family(name) if is_family_name(name) else None


def image_collection(source: str, size: int | None = None) -> ImageCollection:
    """A folder of images or a built-in texture collection."""
    return load_image_collection(source, size, builtin_textures)


def sdf_collection(source: str, sign_rays: int = 5) -> SDFCollection:
    """A folder of meshes or the built-in shape family."""
    return load_sdf_collection(source, sign_rays, builtin_shapes)
