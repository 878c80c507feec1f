"""Loading multi-view datasets: Blender and nerfstudio transforms, tiny-NeRF npz, and bad input."""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from inr.errors import InputError
from inr.signals.radiance import RaySampler, available_splits, load_radiance
from scenes.multiview import generate_scene

pytestmark = pytest.mark.open3d  # mesh raycasting or multi-view scene rendering


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_scene(tmp_path_factory.mktemp("mv") / "scene", 3, size=24, n_train=6, n_val=2, n_test=2)


@pytest.fixture
def copy(dataset, tmp_path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(dataset, out)
    return out


def _edit(path: Path, fn) -> None:
    meta = json.loads(path.read_text())
    fn(meta)
    path.write_text(json.dumps(meta))


def test_blender_splits_intrinsics_and_alpha(dataset):
    assert available_splits(dataset) == ["train", "val", "test"]
    train = load_radiance(dataset, "train")
    meta = json.loads((dataset / "transforms_train.json").read_text())
    assert train.images.shape == (6, 24, 24, 4) and train.images.dtype == torch.uint8
    focal = 0.5 * 24 / math.tan(0.5 * meta["camera_angle_x"])
    assert torch.allclose(train.cameras.fx, torch.full((6,), focal)) and torch.allclose(train.cameras.cx, torch.full((6,), 12.0))
    assert torch.allclose(train.cameras.c2w[0], torch.tensor(meta["frames"][0]["transform_matrix"]))
    assert torch.allclose(train.aabb, torch.tensor([-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]))
    assert len(load_radiance(dataset, "test")) == 2
    # Compositing on a background uses the alpha channel.
    img = train.view(0, torch.tensor([1.0, 0.0, 1.0]))
    a = train.images[0, ..., 3:].float() / 255
    assert torch.allclose(img, train.images[0, ..., :3].float() / 255 * a + torch.tensor([1.0, 0.0, 1.0]) * (1 - a))


def test_downscale_scales_images_and_intrinsics(dataset):
    full, half = load_radiance(dataset, "train"), load_radiance(dataset, "train", downscale=2)
    assert half.images.shape == (6, 12, 12, 4)
    assert torch.allclose(half.cameras.fx, full.cameras.fx / 2) and torch.allclose(half.cameras.cx, full.cameras.cx / 2)


def test_focal_lengths_and_extensions_in_nerfstudio_layout(copy):
    # One transforms.json with fl_x / cx and explicit extensions: every 8th frame is held out.
    meta = json.loads((copy / "transforms_train.json").read_text())
    frames = [dict(f, file_path=f["file_path"] + ".png") for f in meta["frames"] * 2]  # 12 frames
    (copy / "transforms.json").write_text(json.dumps({"fl_x": 30.0, "fl_y": 31.0, "cx": 11.0, "cy": 12.5, "w": 24, "h": 24,
                                                       "aabb_scale": 4, "frames": frames}))
    for s in ("train", "val", "test"):
        (copy / f"transforms_{s}.json").unlink()
    train, val = load_radiance(copy, "train"), load_radiance(copy, "val")
    assert len(train) == 10 and len(val) == 2  # frames 0 and 8 held out
    assert train.cameras.fy[0].item() == 31.0 and train.cameras.cx[0].item() == 11.0 and train.aabb_scale == 4


def test_tiny_nerf_npz(tmp_path, dataset):
    data = load_radiance(dataset, "train")
    path = tmp_path / "tiny.npz"
    np.savez(path, images=(data.images[..., :3].float() / 255).numpy(), poses=data.cameras.c2w.numpy(), focal=np.float32(25.0))
    train, val = load_radiance(path, "train"), load_radiance(path, "val")
    assert len(train) == 5 and len(val) == 1 and train.cameras.fx[0].item() == 25.0
    rgba = train.pixels(torch.tensor([0]), torch.tensor([3]), torch.tensor([4]))
    assert rgba.shape == (1, 4) and rgba[0, 3].item() == 1.0


def test_ray_sampler_returns_the_pixels_of_its_rays(dataset):
    data = load_radiance(dataset, "train")
    sampler = RaySampler(data, torch.device("cpu"), torch.Generator().manual_seed(0))
    origins, dirs, rgba = sampler.sample(256)
    assert origins.shape == dirs.shape == (256, 3) and rgba.shape == (256, 4)
    assert torch.allclose(dirs.norm(dim=-1), torch.ones(256), atol=1e-5)
    # Every origin is one of the cameras' centres.
    centres = data.cameras.c2w[:, :3, 3]
    assert (origins[:, None] - centres[None]).norm(dim=-1).min(-1).values.max() < 1e-5


def test_missing_image_is_skipped_with_a_warning(copy):
    (copy / "train" / "r_1.png").unlink()
    with pytest.warns(UserWarning, match=r"frame 1 .*image not found"):
        data = load_radiance(copy, "train")
    assert len(data) == 5


@pytest.mark.parametrize("case, message", [
    ("no_transforms", "no transforms"),
    ("malformed", "malformed JSON"),
    ("no_frames", "no frames"),
    ("mismatched", "other frames are"),
    ("singular", "not invertible"),
    ("nan_pose", "NaN or infinite"),
    ("corrupt_image", "cannot read image"),
    ("no_focal", "no focal length"),
    ("all_missing", "none of the"),
])
def test_bad_datasets_raise_one_line_errors_naming_the_problem(copy, case, message):
    train_json = copy / "transforms_train.json"
    if case == "no_transforms":
        for p in copy.glob("transforms*.json"):
            p.unlink()
    elif case == "malformed":
        train_json.write_text('{"frames": [')
    elif case == "no_frames":
        _edit(train_json, lambda m: m.update(frames=[]))
    elif case == "mismatched":
        import imageio.v3 as iio

        iio.imwrite(copy / "train" / "r_2.png", np.zeros((12, 24, 4), np.uint8))
    elif case == "singular":
        _edit(train_json, lambda m: m["frames"][1].update(transform_matrix=[[0.0] * 4] * 3 + [[0, 0, 0, 1]]))
    elif case == "nan_pose":
        _edit(train_json, lambda m: m["frames"][0]["transform_matrix"][0].__setitem__(3, float("nan")))
    elif case == "corrupt_image":
        (copy / "train" / "r_0.png").write_bytes(b"not a png at all")
    elif case == "no_focal":
        _edit(train_json, lambda m: m.pop("camera_angle_x"))
    elif case == "all_missing":
        shutil.rmtree(copy / "train")
    with pytest.warns(UserWarning) if case == "all_missing" else _nothing():
        with pytest.raises(InputError, match=message) as e:
            load_radiance(copy, "train")
    assert "\n" not in str(e.value)
    if case not in ("no_transforms",):
        assert str(copy) in str(e.value)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
