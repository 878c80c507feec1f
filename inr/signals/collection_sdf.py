"""Collections of shapes for hypernetworks: a folder of meshes or a built-in family that the caller
supplies (`inr` knows no built-in names; the CLI passes `scenes`' procedural shape family).

Each mesh is normalised into [-0.9, 0.9]^3 exactly as a single `inr fit sdf` normalises its mesh
(`inr.signals.sdf.MeshTarget`); the members of a built-in family share one frame.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inr.errors import InputError

from .sdf import MESH_SUFFIXES, AnalyticTarget, MeshTarget, SDFTarget

# A built-in family by name: builtin(name) -> its shapes (each with a .name, as AnalyticTarget
# takes them), or None when `name` is not one. Passed in from above (the CLI), so that `inr` never
# imports `scenes`.
BuiltinShapes = Callable[[str], Sequence | None]


@dataclass
class SDFCollection:
    targets: list[SDFTarget]  # each in the field's frame
    names: list[str]
    source: str

    @property
    def warnings(self) -> list[str]:
        return [w for t in self.targets for w in t.warnings]


def load_mesh_folder(folder: str | Path, sign_rays: int = 5) -> SDFCollection:
    """Every mesh file of `folder` (sorted by name), each normalised as a single SDF fit normalises
    its mesh. InputError (one line naming the file) for an empty folder or a bad mesh."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no meshes in this folder (expected {', '.join(MESH_SUFFIXES)})")
    targets = [MeshTarget.from_file(str(p), sign_rays) for p in files]  # a bad mesh raises, naming its file
    stems = [p.stem for p in files]
    names = [p.name if stems.count(p.stem) > 1 else p.stem for p in files]
    return SDFCollection(targets, names, str(folder.resolve()))


def load_sdf_collection(source: str, sign_rays: int = 5, builtin: BuiltinShapes | None = None) -> SDFCollection:
    """A folder of meshes, or the shape family `builtin` knows by the name `source`."""
    path = Path(source)
    if path.is_dir():
        return load_mesh_folder(path, sign_rays)
    shapes = builtin(source) if builtin is not None else None
    if shapes is not None:
        return SDFCollection([AnalyticTarget(s) for s in shapes], [s.name for s in shapes], source)
    if path.exists():
        raise InputError(f"{source}: not a folder (a shape collection is a folder of meshes, or 'shapes'; "
                         "fit one mesh with 'inr fit sdf')")
    raise InputError(f"{source}: no such folder or built-in shape family (built-in: shapes, shapes-N)")


def source_label(collection: SDFCollection) -> str:
    """The collection's folder name (or built-in name), for messages."""
    return os.path.basename(collection.source.rstrip("/")) or collection.source


__all__ = ["BuiltinShapes", "SDFCollection", "load_mesh_folder", "load_sdf_collection", "source_label"]
