"""Scene collections: `inr scenes make collection` (scenes.collection) and their loader
(inr.signals.scene_collection)."""
from __future__ import annotations

import json
import shutil

import pytest

from inr.cli.main import main
from inr.errors import InputError
from inr.signals.scene_collection import load_scene_collection
from scenes.collection import collection_recipes, make_collection
from test_cli_image import _fails

SMALL = dict(count=5, views=3, res=16, test_views=2)


def test_recipes_split_held_out_pairs_and_are_reproducible():
    a = collection_recipes(30, seed=3)
    assert a == collection_recipes(30, seed=3)
    assert a != collection_recipes(30, seed=4)
    pairs = {tuple(p) for p in a["heldout_pairs"]}
    train = [s for s in a["scenes"] if s["split"] == "train"]
    held = [s for s in a["scenes"] if s["split"] == "heldout"]
    assert len(held) == 6 and len(train) == 24
    seen = {tuple(o) for s in train for o in s["objects"]}
    assert not seen & pairs  # training never shows a held-out (colour, kind) pair
    colours, kinds = {c for c, _ in seen}, {k for _, k in seen}
    for s in held:  # exactly one held-out pair, made of words seen in training
        hits = [tuple(o) for o in s["objects"] if tuple(o) in pairs]
        assert len(hits) == 1 and hits[0][0] in colours and hits[0][1] in kinds
    assert {len(s["objects"]) for s in a["scenes"]} == {1, 2, 3}


@pytest.mark.open3d
def test_make_collection_is_cached_and_loads(tmp_path):
    calls = []
    out = make_collection(tmp_path / "c", seed=1, progress=lambda *a: calls.append(a), **SMALL)
    assert len(calls) == 5
    doc = json.loads((out / "collection.json").read_text())
    assert [s["split"] for s in doc["scenes"]] == ["train"] * 4 + ["heldout"]
    coll = load_scene_collection(out)
    assert len(coll) == 5 and len(coll.split("heldout")) == 1
    scene = coll.split("train")[0]
    info = json.loads((scene.path / "scene.json").read_text())
    assert info["caption"] == scene.caption and info["image_size"] == 16
    assert info["views"] == {"train": 3, "val": 2, "test": 2}
    calls.clear()
    make_collection(tmp_path / "c", seed=1, progress=lambda *a: calls.append(a), **SMALL)
    assert calls == []  # cached: nothing rendered again
    shutil.rmtree(scene.path)  # a killed run: only the missing scene is rendered
    make_collection(tmp_path / "c", seed=1, progress=lambda *a: calls.append(a), **SMALL)
    assert [c[0] for c in calls] == [0]
    with pytest.raises(InputError, match="other settings"):
        make_collection(tmp_path / "c", seed=2, **SMALL)


@pytest.mark.open3d
def test_cli_and_broken_scenes(tmp_path, capsys):
    out = tmp_path / "c"
    args = ["scenes", "make", "collection", "-o", str(out), "--count", "2", "--views", "2", "--res", "16",
            "--test-views", "1", "--quiet"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["rendered"] == 2
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["cached"] == 2
    (out / "scene_0001" / "train" / "r_1.png").unlink()
    with pytest.raises(InputError, match="scene 'scene_0001' is broken"):
        load_scene_collection(out)
    _fails(["train", "generator", "views", str(out)], capsys, "scene_0001", "missing")
    _fails(["train", "generator", "views", str(tmp_path)], capsys, "not a scene collection")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    _fails(["scenes", "make", "collection", "-o", str(tmp_path / "other"), "--count", "1"], capsys, "not empty")
    _fails(["scenes", "make", "collection", "-o", str(tmp_path / "x"), "--count", "0"], capsys, "--count")
    assert not (tmp_path / "x").exists()
