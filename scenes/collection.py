"""Scene collections: many procedural multi-view scenes with captions and a train / held-out split,
for generators that learn across scenes (NeRF from a few views, NeRF from text).

    <out>/collection.json     format, settings, held-out pairs, scenes [{name, path, caption, split, seed, objects}]
    <out>/scene_0000/ ...     one Blender dataset each (`scenes.multiview.generate_scene`)

Each scene holds 1-3 primitives (cube, sphere, cylinder, cone, torus; sometimes stacked) in colours of
the palette (white left out: it vanishes on a white background), with sizes drawn per scene. The
held-out captions are *unseen combinations of seen words*: one colour per kind is held out (a
"held-out pair", e.g. a purple cone); training scenes never show a held-out pair, and each held-out
scene shows exactly one, whose colour and kind each appear in training (when the training scenes
have them at all: a collection of two scenes may not).

Reproducible: the same settings give the same recipes, captions, sizes and cameras. Cached: running
again with the same settings reuses every finished scene (and a run that was killed resumes).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from inr.atomic import atomic_write_text
from inr.errors import InputError

from .multiview import KINDS, PALETTE, describe_scene, generate_scene, stack_towers

__all__ = ["COLLECTION_FORMAT", "COLLECTION_VERSION", "collection_recipes", "make_collection"]

COLLECTION_FORMAT = "inr-scene-collection"
COLLECTION_VERSION = 1  # bump whenever the scenes drawn for given settings change
COLOURS = tuple(c for c in PALETTE if c != "white")
HELDOUT_SHARE = 0.2  # of the scenes, at least one once there are two
VAL_VIEWS = 2


def _scene_name(i: int) -> str:
    return f"scene_{i:04d}"


def _heldout_pairs(rng: np.random.Generator) -> list[tuple[str, str]]:
    """One held-out colour per kind, every kind a different colour: [(colour, kind)]."""
    colours = [str(c) for c in rng.permutation(COLOURS)]
    return [(colours[i % len(colours)], kind) for i, kind in enumerate(KINDS)]


def _towers(objects: list[tuple[str, str]], rng: np.random.Generator) -> list[list[tuple[str, str]]]:
    """(colour, kind) objects into towers of (kind, colour), stacking some on flat-topped ones."""
    return stack_towers([(kind, colour) for colour, kind in objects], rng, max_height=2, p_stack=0.4)


def _draw_objects(rng: np.random.Generator, banned: set[tuple[str, str]], first: tuple[str, str] | None = None):
    n = int(rng.choice([1, 2, 3], p=[0.4, 0.4, 0.2]))
    objects = [first] if first else []
    while len(objects) < n:
        pair = (str(rng.choice(COLOURS)), str(rng.choice(KINDS)))
        if pair not in banned and pair[0] not in {c for c, _ in objects}:  # one colour once per scene
            objects.append(pair)
    return objects


def collection_recipes(count: int, seed: int = 0) -> dict:
    """What `make_collection` renders: {"heldout_pairs", "scenes": [{name, split, seed, towers,
    objects}]} (no rendering, no open3d: cheap to call)."""
    rng = np.random.default_rng([seed, 1001])
    pairs = _heldout_pairs(rng)
    banned = set(pairs)
    n_held = max(1, round(count * HELDOUT_SHARE)) if count >= 2 else 0
    scenes, seen_colours, seen_kinds = [], set(), set()
    for i in range(count):
        split = "train" if i < count - n_held else "heldout"
        if split == "train":
            objects = _draw_objects(rng, banned)
            seen_colours |= {c for c, _ in objects}
            seen_kinds |= {k for _, k in objects}
        else:
            fair = [p for p in pairs if p[0] in seen_colours and p[1] in seen_kinds] or pairs
            held = fair[int(rng.integers(len(fair)))]
            objects = _draw_objects(rng, banned | {(c, k) for c, k in pairs if c == held[0]}, first=held)
        scenes.append({"name": _scene_name(i), "split": split, "seed": int(seed) * 100_003 + i,
                       "objects": [list(o) for o in objects], "towers": _towers(objects, rng)})
    return {"heldout_pairs": [list(p) for p in pairs], "scenes": scenes}


def _check_int(label: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"{label} must be an integer >= {low}, got {value!r}")
    return int(value)


def _scene_done(path: Path, entry: dict, settings: dict) -> bool:
    """Whether `path` holds this very scene, finished (scene.json is written last)."""
    try:
        info = json.loads((path / "scene.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return (info.get("seed") == entry["seed"] and info.get("image_size") == settings["res"]
            and info.get("views") == {"train": settings["views"], "val": VAL_VIEWS, "test": settings["test_views"]}
            and info.get("caption") == entry["caption"])


def _check_out(out: Path, settings: dict) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    index = out / "collection.json"
    if index.is_file():
        try:
            saved = json.loads(index.read_text()).get("settings")
        except (json.JSONDecodeError, AttributeError):
            saved = None
        if saved != settings:
            raise InputError(f"{out}: holds a collection made with other settings ({saved}); choose another -o")
        return
    if out.is_dir():
        strangers = [p.name for p in out.iterdir() if not p.name.startswith((".", "scene_"))]
        if strangers:
            raise InputError(f"{out}: directory is not empty and holds no scene collection ({strangers[0]}); "
                             "refusing to write into it")


def make_collection(out_dir: str | os.PathLike, count: int, views: int = 20, res: int = 64, seed: int = 0,
                    test_views: int = 8, progress=None) -> Path:
    """Render `count` captioned scenes into `out_dir` with `views` training views each (plus 2 val
    and `test_views` test views on a ring) at `res` x `res`, and write collection.json last.
    Finished scenes are reused (same settings: nothing is rendered again). `progress(i, n, caption)`
    is called before each scene is rendered. Returns `out_dir` as a Path.

    >>> path = make_collection("/tmp/coll", 6, views=8, res=32)          # doctest: +SKIP
    >>> [s["split"] for s in json.loads((path / "collection.json").read_text())["scenes"]][-1]  # doctest: +SKIP
    'heldout'
    """
    settings = {"count": _check_int("--count", count, 1), "views": _check_int("--views", views, 1),
                "res": _check_int("--res", res, 8), "seed": _check_int("--seed", seed, 0),
                "test_views": _check_int("test_views", test_views, 1), "version": COLLECTION_VERSION}
    out = Path(out_dir).expanduser().absolute()
    _check_out(out, settings)
    recipes = collection_recipes(settings["count"], settings["seed"])
    entries = []
    for i, r in enumerate(recipes["scenes"]):
        caption = describe_scene(r["seed"], r["towers"])["caption"]
        entry = {"name": r["name"], "path": r["name"], "caption": caption, "split": r["split"], "seed": r["seed"],
                 "objects": r["objects"]}
        path = out / r["name"]
        if not _scene_done(path, entry, settings):
            if progress is not None:
                progress(i, len(recipes["scenes"]), caption)
            generate_scene(path, r["seed"], size=settings["res"], n_train=settings["views"], n_val=VAL_VIEWS,
                           n_test=settings["test_views"], recipe=r["towers"])
        entries.append(entry)
    doc = {"format": COLLECTION_FORMAT, "version": COLLECTION_VERSION, "settings": settings,
           "heldout_pairs": recipes["heldout_pairs"], "scenes": entries}
    atomic_write_text(out / "collection.json", json.dumps(doc, indent=2) + "\n")
    return out
