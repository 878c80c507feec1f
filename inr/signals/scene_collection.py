"""Reading a scene collection (`inr scenes make collection`): collection.json and its scenes, each a
Blender dataset with a caption and a split ("train" or "heldout"). Every scene is checked when the
collection is opened, so a broken one is named in one line before any training starts."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from inr.errors import InputError

from .radiance import _resolve_image

COLLECTION_FORMAT = "inr-scene-collection"
SPLITS = ("train", "heldout")
_REQUIRED = ("name", "path", "caption", "split")


@dataclass(frozen=True)
class CollectionScene:
    name: str
    caption: str
    split: str
    path: Path  # the scene's dataset folder (absolute)


@dataclass
class SceneCollection:
    root: Path
    settings: dict
    scenes: list[CollectionScene]

    def split(self, name: str) -> list[CollectionScene]:
        """The scenes of one split ("train" or "heldout"), in collection order."""
        return [s for s in self.scenes if s.split == name]

    def __len__(self) -> int:
        return len(self.scenes)


def _check_scene(root: Path, i: int, entry) -> CollectionScene:
    if not isinstance(entry, dict) or any(k not in entry for k in _REQUIRED):
        raise InputError(f"{root / 'collection.json'}: scene {i} lacks one of {', '.join(_REQUIRED)}")
    name = str(entry["name"])

    def broken(why: str) -> InputError:
        return InputError(f"{root}: scene {name!r} is broken ({why})")

    if entry["split"] not in SPLITS:
        raise broken(f"split {entry['split']!r}, expected one of {', '.join(SPLITS)}")
    path = (root / str(entry["path"])).resolve()
    transforms = path / "transforms_train.json"
    if not transforms.is_file():
        raise broken(f"no {transforms}")
    try:
        frames = json.loads(transforms.read_text())["frames"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise broken(f"{transforms} is unreadable: {e}") from None
    if not frames:
        raise broken(f"{transforms} lists no frames")
    for frame in frames:
        if _resolve_image(path, str(frame.get("file_path", ""))) is None:
            raise broken(f"image {frame.get('file_path')!r} is missing")
    return CollectionScene(name, str(entry["caption"]), str(entry["split"]), path)


def load_scene_collection(path: str | Path) -> SceneCollection:
    """Open the collection in `path` (a folder holding collection.json, or that file)."""
    p = Path(path)
    root = p.parent if p.name == "collection.json" else p
    index = root / "collection.json"
    if not index.is_file():
        raise InputError(f"{root}: not a scene collection (no collection.json; make one with "
                         "`inr scenes make collection -o DIR --count N`)")
    try:
        doc = json.loads(index.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{index}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != COLLECTION_FORMAT or not isinstance(doc.get("scenes"), list):
        raise InputError(f"{index}: not a scene collection (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    scenes = [_check_scene(root.resolve(), i, e) for i, e in enumerate(doc["scenes"])]
    if not scenes:
        raise InputError(f"{index}: the collection holds no scenes")
    return SceneCollection(root.resolve(), dict(doc.get("settings") or {}), scenes)
