"""scenes: built-in image scenes by name, no download."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import scenes
from inr.errors import InputError
from inr.signals.image import save_image

EXPECTED_SHAPES = {
    "camera": (512, 512, 1),
    "astronaut": (512, 512, 3),
    "coffee": (400, 600, 3),
    "chelsea": (300, 451, 3),
    "checkerboard-zoneplate": (256, 256, 1),
}


def test_list_and_default():
    assert scenes.DEFAULT_IMAGE_SCENE == "camera"
    assert scenes.list_scenes()[0] == "camera"
    assert set(scenes.list_scenes()) == set(EXPECTED_SHAPES) == set(scenes.IMAGE_SCENES)


@pytest.fixture
def no_network(monkeypatch):
    """Fail if anything goes through scikit-image's downloader."""
    from skimage.data import _fetchers

    def refuse(*args, **kwargs):
        raise AssertionError("scikit-image fetcher used: scenes must only read bundled files")

    monkeypatch.setattr(_fetchers, "_fetch", refuse)
    monkeypatch.setattr(_fetchers, "_image_fetcher", None, raising=False)


@pytest.mark.parametrize("name", sorted(EXPECTED_SHAPES))
def test_scene_loads(name, no_network):
    img = scenes.load_image_scene(name)
    assert img.shape == EXPECTED_SHAPES[name]
    assert img.dtype == torch.float32
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
    assert float(img.std()) > 0.05  # not blank


def test_camera_matches_skimage():
    import skimage.data

    cam = scenes.load_image_scene("camera")
    assert np.array_equal(np.round(cam[..., 0].numpy() * 255).astype(np.uint8), skimage.data.camera())


def test_scene_is_a_fresh_copy():
    a = scenes.load_image_scene("camera")
    a.zero_()
    assert float(scenes.load_image_scene("camera").max()) > 0


def test_downscaled_scene():
    small = scenes.load_image_scene("camera", size=256)
    assert small.shape == (256, 256, 1)
    full = scenes.load_image_scene("camera")
    torch.testing.assert_close(small, full.view(256, 2, 256, 2, 1).mean(dim=(1, 3)))  # box filter
    assert scenes.load_image_scene("coffee", size=300).shape == (200, 300, 3)  # longer side
    with pytest.raises(InputError):
        scenes.load_image_scene("camera", size=1024)


def test_procedural_any_size_and_fine_detail():
    img = scenes.load_image_scene("checkerboard-zoneplate", size=128)
    assert img.shape == (128, 128, 1)
    big = scenes.checkerboard_zoneplate(256)
    # fine detail: large differences between horizontal neighbours near the border
    assert float((big[:, 1:] - big[:, :-1]).abs()[:, :16].mean()) > 0.2
    assert torch.equal(big, scenes.load_image_scene("checkerboard-zoneplate"))  # deterministic


def test_unknown_scene_lists_names():
    with pytest.raises(InputError) as e:
        scenes.load_image_scene("no-such-scene")
    msg = str(e.value)
    assert "no-such-scene" in msg and all(n in msg for n in scenes.IMAGE_SCENES)


def test_resolve_image(tmp_path, monkeypatch):
    assert scenes.resolve_image("camera").shape == (512, 512, 1)
    assert scenes.resolve_image("astronaut", size=128).shape == (128, 128, 3)
    path = tmp_path / "mine.png"
    save_image(path, torch.full((4, 6, 3), 0.5))
    assert scenes.resolve_image(path).shape == (4, 6, 3)
    assert scenes.resolve_image(str(path), size=3).shape == (2, 3, 3)
    # a file named like a scene wins over the scene
    monkeypatch.chdir(tmp_path)
    save_image("camera", torch.zeros(2, 2, 1))  # no extension: written as PNG
    assert scenes.resolve_image("camera").shape == (2, 2, 1)
    with pytest.raises(InputError) as e:
        scenes.resolve_image(tmp_path / "missing.png")
    msg = str(e.value)
    assert "missing.png" in msg and "no such file or built-in scene" in msg and "camera" in msg
