"""scenes.multiview: procedural multi-view scenes written as Blender (NeRF-synthetic) datasets."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

import scenes
from inr.errors import InputError
from scenes import multiview as mv

pytestmark = pytest.mark.open3d  # mesh raycasting or multi-view scene rendering

SMALL = dict(size=48, n_train=6, n_val=2, n_test=8)


@pytest.fixture(scope="module")
def blocks(tmp_path_factory) -> Path:
    return scenes.generate_scene(tmp_path_factory.mktemp("mv") / "blocks", "blocks", **SMALL)


def _transforms(path: Path, split: str) -> dict:
    return json.loads((path / f"transforms_{split}.json").read_text())


def _frames(path: Path):
    """(split, c2w [4, 4], RGBA uint8 image) for every view."""
    for split in ("train", "val", "test"):
        for f in _transforms(path, split)["frames"]:
            yield split, np.array(f["transform_matrix"]), iio.imread(path / (f["file_path"] + ".png"))


def _project(point, c2w: np.ndarray, size: int, angle_x: float) -> tuple[int, int]:
    """Pixel (row, col) of a world point: pinhole camera, OpenGL axes (looks down -Z, +Y up)."""
    x, y, z = c2w[:3, :3].T @ (np.asarray(point) - c2w[:3, 3])
    focal = 0.5 * size / math.tan(0.5 * angle_x)
    u, v = size / 2 + focal * x / -z, size / 2 - focal * y / -z
    return int(v), int(u)


def _chroma(rgb) -> np.ndarray:
    rgb = np.asarray(rgb, dtype=np.float64)
    return rgb / np.linalg.norm(rgb)


def test_names():
    assert scenes.DEFAULT_MULTIVIEW_SCENE == "blocks"
    assert scenes.list_multiview_scenes()[0] == "blocks"
    assert set(scenes.list_multiview_scenes()) == set(scenes.MULTIVIEW_SCENES)
    assert scenes.describe_scene("seed-7") == scenes.describe_scene(7)
    with pytest.raises(InputError, match="blocks"):
        scenes.describe_scene("no-such-scene")


def test_dataset_files_and_json(blocks):
    counts = {"train": SMALL["n_train"], "val": SMALL["n_val"], "test": SMALL["n_test"]}
    for split, n in counts.items():
        t = _transforms(blocks, split)
        assert t["camera_angle_x"] == pytest.approx(0.6911, abs=1e-3)
        assert t["aabb_scale"] == 1
        assert [f["file_path"] for f in t["frames"]] == [f"./{split}/r_{i}" for i in range(n)]
        assert sorted(p.name for p in (blocks / split).iterdir()) == sorted(f"r_{i}.png" for i in range(n))
    info = json.loads((blocks / "scene.json").read_text())
    assert info["caption"] == "a red cube on a blue cylinder beside a yellow sphere"
    assert info["version"] == mv.GENERATOR_VERSION and info["name"] == "blocks"
    assert [(p["kind"], p["colour"]) for p in info["primitives"]] == [
        ("cylinder", "blue"), ("cube", "red"), ("sphere", "yellow")]
    for _, _, img in _frames(blocks):
        assert img.shape == (SMALL["size"], SMALL["size"], 4) and img.dtype == np.uint8
    umask = os.umask(0)
    os.umask(umask)
    assert (blocks / "train" / "r_0.png").stat().st_mode & 0o777 == 0o666 & ~umask


def test_poses_are_rigid_and_look_at_origin(blocks):
    for split, c2w, _ in _frames(blocks):
        r, t = c2w[:3, :3], c2w[:3, 3]
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-9)
        assert np.linalg.det(r) == pytest.approx(1.0)
        np.testing.assert_array_equal(c2w[3], [0, 0, 0, 1])
        assert np.linalg.norm(t) == pytest.approx(4.0)
        np.testing.assert_allclose(-r[:, 2], -t / np.linalg.norm(t), atol=1e-9)  # views the origin
        assert r[2, 0] == pytest.approx(0.0, abs=1e-9)  # no roll: camera +X stays horizontal
        assert t[2] > 0  # upper hemisphere
        if split == "test":  # a ring at 30 degrees elevation
            assert t[2] == pytest.approx(4.0 * math.sin(math.radians(30)))


def test_alpha_is_nonempty_centred_and_antialiased(blocks):
    size = SMALL["size"]
    for _, _, img in _frames(blocks):
        alpha = img[..., 3].astype(np.float64) / 255
        assert 0.03 < alpha.mean() < 0.6
        rows, cols = np.indices(alpha.shape) + 0.5
        centroid = np.array([(alpha * rows).sum(), (alpha * cols).sum()]) / alpha.sum()
        assert np.all(np.abs(centroid - size / 2) < 0.2 * size), centroid
        assert ((alpha > 0) & (alpha < 1)).any()  # soft, supersampled edges
        assert (img[..., :3][alpha == 0] == 0).all()


def _first_hit(origin: np.ndarray, direction: np.ndarray, meshes) -> int | None:
    """Index of the first mesh a ray hits (Moller-Trumbore over every triangle), or None."""
    best, best_t = None, np.inf
    for k, (verts, tris) in enumerate(meshes):
        v0, v1, v2 = (verts[tris[:, c]] for c in range(3))
        e1, e2, s = v1 - v0, v2 - v0, origin - v0
        p = np.cross(direction, e2)
        det = np.einsum("nd,nd->n", e1, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.einsum("nd,nd->n", s, p) / det
            q = np.cross(s, e1)
            v = q @ direction / det
            t = np.einsum("nd,nd->n", e2, q) / det
        t = t[(np.abs(det) > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)]
        if t.size and t.min() < best_t:
            best, best_t = k, t.min()
    return best


def test_primitive_centres_project_onto_their_colour(blocks):
    """Each primitive's centre, projected with a pinhole camera written here (not the renderer's
    rays), lands on an opaque pixel. Where the pixel lies wholly on one primitive (rays through its
    four corners, cast here against the meshes, hit the same one), its colour is that primitive's."""
    info = json.loads((blocks / "scene.json").read_text())
    prims = info["primitives"]
    meshes = [(np.asarray(m.vertices), np.asarray(m.triangles)) for m in map(mv._mesh, prims)]
    names = list(mv.PALETTE)
    palette = np.stack([_chroma(mv.PALETTE[n]) for n in names])
    size, focal = SMALL["size"], 0.5 * SMALL["size"] / math.tan(0.5 * mv.CAMERA_ANGLE_X)
    checked = 0
    for _, c2w, img in _frames(blocks):
        for prim in prims:
            i, j = _project(prim["position"], c2w, size, mv.CAMERA_ANGLE_X)
            assert img[i, j, 3] == 255
            corners = [(j + a, i + b) for a in (0.02, 0.98) for b in (0.02, 0.98)]
            dirs = [c2w[:3, :3] @ [(u - size / 2) / focal, -(v - size / 2) / focal, -1] for u, v in corners]
            hits = {_first_hit(c2w[:3, 3], d, meshes) for d in dirs}
            if len(hits) == 1 and None not in hits:
                checked += 1
                colour = names[int(np.argmax(palette @ _chroma(img[i, j, :3])))]
                assert colour == prims[hits.pop()]["colour"]
    assert checked >= 0.8 * 3 * 16  # most (view, primitive) pairs are unambiguous


def test_same_seed_same_bytes_different_seeds_differ(tmp_path):
    small = dict(size=24, n_train=3, n_val=1, n_test=2)
    a = scenes.generate_scene(tmp_path / "a", 5, **small)
    b = scenes.generate_scene(tmp_path / "b", 5, **small)
    c = scenes.generate_scene(tmp_path / "c", 6, **small)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 3 + 1 + 2 + 4
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    assert (a / "train" / "r_0.png").read_bytes() != (c / "train" / "r_0.png").read_bytes()
    captions = {scenes.describe_scene(s)["caption"] for s in range(10)}
    assert len(captions) >= 8


@pytest.mark.parametrize("seed", range(25))
def test_compositions_are_sensible(seed):
    info = scenes.describe_scene(seed)
    prims, caption = info["primitives"], info["caption"]
    assert 2 <= len(prims) <= 4
    assert len({p["colour"] for p in prims}) == len(prims)  # each object named unambiguously
    assert caption.count(" a ") + caption.count(" an ") + 1 == len(prims)
    for p in prims:
        assert f"{p['colour']} {p['kind']}" in caption
        verts = np.asarray(mv._mesh(p).vertices)
        assert np.abs(verts).max() <= 1.0 + 1e-6
        if p["support"] is not None and prims[p["support"]]["kind"] != "torus":
            below = prims[p["support"]]
            bottom = np.asarray(mv._mesh(p).vertices)[:, 2].min()
            assert bottom == pytest.approx(np.asarray(mv._mesh(below).vertices)[:, 2].max(), abs=1e-4)


def test_failed_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_save(path, image):
        calls.append(path)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return mv.__dict__["_real_save"](path, image)

    monkeypatch.setitem(mv.__dict__, "_real_save", mv.save_image)
    monkeypatch.setattr(mv, "save_image", failing_save)
    with pytest.raises(RuntimeError, match="disk on fire"):
        scenes.generate_scene(tmp_path / "out", 1, size=16, n_train=4)
    assert list(tmp_path.iterdir()) == []  # neither the dataset nor its temporary folder


def test_bad_output_paths_are_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot create"):
        scenes.generate_scene(tmp_path / "file" / "out", 1, size=16)
    with pytest.raises(InputError, match="not a directory"):
        scenes.generate_scene(tmp_path / "file", 1, size=16)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="refusing"):
        scenes.generate_scene(tmp_path / "mine", 1, size=16)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "mine"]
    with pytest.raises(InputError, match="size"):
        scenes.generate_scene(tmp_path / "out", 1, size=0)


def test_regenerating_replaces_a_scene_and_empty_splits(tmp_path):
    out = tmp_path / "scene"
    scenes.generate_scene(out, 1, size=16, n_train=3)
    scenes.generate_scene(out, 2, size=16, n_train=2, n_val=0, n_test=1)
    assert json.loads((out / "scene.json").read_text())["seed"] == 2
    assert len(list((out / "train").iterdir())) == 2
    assert _transforms(out, "val")["frames"] == [] and (out / "val").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["scene"]


def test_cache_is_reused(tmp_path, monkeypatch):
    first = scenes.multiview_scene("seed-3", size=16, cache_dir=tmp_path)
    assert first == tmp_path / f"seed-3-16-v{mv.GENERATOR_VERSION}"
    assert len(_transforms(first, "train")["frames"]) == 50

    def refuse(*args, **kwargs):
        raise AssertionError("regenerated a cached scene")

    monkeypatch.setattr(mv, "generate_scene", refuse)
    assert scenes.multiview_scene(3, size=16, cache_dir=tmp_path) == first
    monkeypatch.setenv("INR_CACHE", str(tmp_path / "env"))
    assert mv._cache_root() == tmp_path / "env" / "scenes"
