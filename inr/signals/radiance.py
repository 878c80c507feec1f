"""Multi-view datasets for radiance fields, and the ray batches a NeRF trains on.

Formats:
- Blender / NeRF-synthetic: `transforms_{train,val,test}.json` beside the images.
- nerfstudio / instant-ngp: one `transforms.json` (every 8th frame is held out as val and test,
  as nerfstudio and Mip-NeRF 360 do).
- NeRF's "tiny" npz: `images` [N, H, W, 3], `poses` [N, 4, 4], `focal` (every 8th frame held out).

Poses are camera-to-world in the OpenGL convention (the camera looks down -z, y up). Intrinsics
come from `fl_x`/`fl_y` or `camera_angle_x`/`camera_angle_y`, and `cx`, `cy` (default: the image
centre), at the file or frame level. The scene box is instant-ngp's: the unit cube after its
`scale` (default 1/3) and `offset` (default 0.5), i.e. [-1.5, 1.5]^3 for Blender scenes, and
`aabb_scale` (a power of two) nests larger cascades around it for unbounded scenes.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inr.errors import InputError
from inr.render.rays import Cameras

from .image import downscale_image, load_image

SPLITS = ("train", "val", "test")
BACKGROUNDS = ("white", "black", "random")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".exr", ".tif", ".tiff", ".webp", ".bmp")
HOLDOUT_EVERY = 8  # single-file datasets: frames 0, 8, 16, ... are held out


@dataclass
class RadianceData:
    """One split of a multi-view dataset: images [N, H, W, C] (C = 3, or 4 with alpha) as uint8 or
    float32, their cameras, and the scene box."""

    images: torch.Tensor
    cameras: Cameras
    names: list[str]
    aabb: torch.Tensor      # cascade-0 box (xmin, ymin, zmin, xmax, ymax, zmax)
    aabb_scale: float
    source: str

    @property
    def height(self) -> int:
        return self.cameras.height

    @property
    def width(self) -> int:
        return self.cameras.width

    def __len__(self) -> int:
        return self.images.shape[0]

    def pixels(self, cam: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
        """RGBA float values [M, 4] of integer pixels (opaque alpha where the images have none)."""
        return _rgba_float(self.images[cam, row, col])

    def rgba_views(self, indices) -> torch.Tensor:
        """Images `indices` as RGBA float [V, H, W, 4] (opaque alpha where the images have none)."""
        channels = self.images.shape[-1]
        return torch.stack([_rgba_float(self.images[i].reshape(-1, channels)).reshape(self.height, self.width, 4)
                            for i in indices])

    def view(self, i: int, background: torch.Tensor) -> torch.Tensor:
        """Image i [H, W, 3] composited on `background` [3]."""
        img = self.images[i].float() / (255.0 if self.images.dtype == torch.uint8 else 1.0)
        if img.shape[-1] == 4:
            img = img[..., :3] * img[..., 3:] + background * (1 - img[..., 3:])
        return img


def background_color(name: str, device=None) -> torch.Tensor:
    """The RGB of a fixed background: white or black ("random" draws one per ray while training
    and evaluates on white)."""
    if name not in BACKGROUNDS:
        raise InputError(f"unknown background {name!r}; expected one of {', '.join(BACKGROUNDS)}")
    return torch.zeros(3, device=device) if name == "black" else torch.ones(3, device=device)


def load_radiance(path: str | Path, split: str = "train", downscale: int = 1) -> RadianceData:
    """Load `split` of the dataset at `path` (a directory, a transforms JSON file or a tiny-NeRF npz).

    A split that a Blender dataset lacks (say `test`) raises InputError; `available_splits` says
    which exist.

    >>> data = load_radiance("../shared/data/lego_100", "val")   # doctest: +SKIP
    >>> data.images.shape                                          # doctest: +SKIP
    torch.Size([10, 100, 100, 4])
    """
    if split not in SPLITS:
        raise InputError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if not isinstance(downscale, int) or downscale < 1:
        raise InputError(f"downscale must be a positive integer, got {downscale!r}")
    p = Path(path)
    if p.suffix == ".npz":
        return _load_npz(p, split, downscale)
    json_path, frames_filter = _transforms_file(p, split)
    meta = _read_json(json_path)
    return _load_transforms(json_path, meta, split, frames_filter, downscale)


def available_splits(path: str | Path) -> list[str]:
    """The splits `load_radiance` can load from `path`."""
    p = Path(path)
    if p.suffix == ".npz" or (p.is_dir() and not (p / "transforms_train.json").exists()
                              and (p / "transforms.json").exists()) or p.is_file():
        return list(SPLITS)
    return [s for s in SPLITS if (p / f"transforms_{s}.json").exists()]


def load_for_training(path: str | Path, downscale: int = 1) -> tuple[RadianceData, RadianceData | None, list[str]]:
    """(train split, the split evaluated during training: val, else test, else None, the splits there are)."""
    train = load_radiance(path, "train", downscale)
    splits = available_splits(path)
    held_out = "val" if "val" in splits else ("test" if "test" in splits else None)
    return train, load_radiance(path, held_out, downscale) if held_out else None, splits


def _transforms_file(p: Path, split: str) -> tuple[Path, bool]:
    """(the JSON file holding `split`, whether its frames must be filtered by the holdout rule)."""
    if p.is_file():
        return p, True
    if not p.is_dir():
        raise InputError(f"{p}: no such dataset (expected a directory with transforms*.json, a .json or an .npz)")
    if (p / f"transforms_{split}.json").exists():
        return p / f"transforms_{split}.json", False
    if (p / "transforms.json").exists() and not (p / "transforms_train.json").exists():
        return p / "transforms.json", True
    if any(p.glob("transforms*.json")):
        raise InputError(f"{p}: no transforms_{split}.json in this dataset")
    raise InputError(f"{p}: no transforms.json or transforms_{{train,val,test}}.json found")


def _read_json(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: malformed JSON ({e})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{path}: expected a JSON object with \"frames\"")
    return meta


def _holdout(n: int, split: str) -> list[int]:
    """Frames of `split` in a single-file dataset: every 8th is held out for val and test."""
    held = set(range(0, n, HOLDOUT_EVERY))
    return [i for i in range(n) if (i in held) != (split == "train")]


def _scene_box(meta: dict, where: Path) -> tuple[torch.Tensor, float]:
    """instant-ngp's unit cube mapped back into the dataset's coordinates, and aabb_scale."""
    try:
        scale = float(meta.get("scale", 1.0 / 3.0))
        offset = np.broadcast_to(np.asarray(meta.get("offset", 0.5), dtype=np.float64), (3,))
        aabb_scale = float(meta.get("aabb_scale", 1))
    except (TypeError, ValueError):
        raise InputError(f"{where}: scale, offset and aabb_scale must be numbers") from None
    if not (scale > 0 and math.isfinite(scale) and aabb_scale >= 1 and math.isfinite(aabb_scale)):
        raise InputError(f"{where}: need scale > 0 and aabb_scale >= 1, got {scale} and {aabb_scale}")
    lo, hi = (0.0 - offset) / scale, (1.0 - offset) / scale
    return torch.tensor(np.concatenate([lo, hi]), dtype=torch.float32), aabb_scale


def _resolve_image(root: Path, file_path: str) -> Path | None:
    """The image a frame names; a missing extension is resolved by trying the usual ones."""
    p = root / file_path
    if p.is_file():
        return p
    for suffix in IMAGE_SUFFIXES:
        for s in (suffix, suffix.upper()):
            q = p.with_name(p.name + s)
            if q.is_file():
                return q
    return None


def _frame_intrinsics(meta: dict, frame: dict, w: int, h: int, where: str) -> tuple[float, float, float, float]:
    def get(key):
        return frame.get(key, meta.get(key))

    if all(get(k) is None for k in ("fl_x", "fl_y", "camera_angle_x", "camera_angle_y")):
        raise InputError(f"{where}: no focal length (fl_x/fl_y or camera_angle_x/camera_angle_y)")
    try:
        fx = get("fl_x")
        fy = get("fl_y")
        if fx is None and get("camera_angle_x") is not None:
            fx = 0.5 * w / math.tan(0.5 * float(get("camera_angle_x")))
        if fy is None and get("camera_angle_y") is not None:
            fy = 0.5 * h / math.tan(0.5 * float(get("camera_angle_y")))
        fx = float(fx if fx is not None else fy)
        fy = float(fy if fy is not None else fx)
        cx = float(get("cx")) if get("cx") is not None else 0.5 * w
        cy = float(get("cy")) if get("cy") is not None else 0.5 * h
    except (TypeError, ValueError):
        raise InputError(f"{where}: intrinsics must be numbers") from None
    if not all(math.isfinite(v) for v in (fx, fy, cx, cy)) or fx <= 0 or fy <= 0:
        raise InputError(f"{where}: invalid intrinsics fx={fx} fy={fy} cx={cx} cy={cy}")
    return fx, fy, cx, cy


def _check_pose(m, where: str) -> torch.Tensor:
    try:
        pose = torch.tensor(m, dtype=torch.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: transform_matrix is not a 4x4 (or 3x4) matrix of numbers") from None
    if pose.shape not in ((4, 4), (3, 4)):
        raise InputError(f"{where}: transform_matrix must be 4x4 or 3x4, got shape {tuple(pose.shape)}")
    if not bool(torch.isfinite(pose).all()):
        raise InputError(f"{where}: transform_matrix has NaN or infinite entries")
    if pose.shape == (3, 4):
        pose = torch.cat([pose, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
    if abs(float(torch.linalg.det(pose[:3, :3]))) < 1e-8:
        raise InputError(f"{where}: transform_matrix is not invertible (its rotation is singular)")
    return pose.float()


def _load_transforms(json_path: Path, meta: dict, split: str, holdout: bool, downscale: int) -> RadianceData:
    frames = meta.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InputError(f"{json_path}: no frames")
    index = _holdout(len(frames), split) if holdout else list(range(len(frames)))
    root = json_path.parent
    images, poses, intr, names = [], [], [], []
    size = None
    for i in index:
        frame = frames[i]
        if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
            raise InputError(f"{json_path}: frame {i} needs file_path and transform_matrix")
        where = f"{json_path}: frame {i} ({frame['file_path']})"
        pose = _check_pose(frame["transform_matrix"], where)
        image_path = _resolve_image(root, str(frame["file_path"]))
        if image_path is None:
            warnings.warn(f"{where}: image not found; skipping this frame", stacklevel=2)
            continue
        img = _read_frame(image_path)
        if size is None:
            size = img.shape[:2]
        elif img.shape[:2] != size:
            raise InputError(f"{where}: image is {img.shape[1]}x{img.shape[0]}, other frames are {size[1]}x{size[0]}")
        h, w = img.shape[:2]
        if meta.get("w") is not None and meta.get("h") is not None and (int(meta["w"]), int(meta["h"])) != (w, h):
            raise InputError(f"{where}: image is {w}x{h} but the file says w={meta['w']} h={meta['h']}")
        intr.append(_frame_intrinsics(meta, frame, w, h, where))
        images.append(img)
        poses.append(pose)
        names.append(str(frame["file_path"]))
    if not images:
        raise InputError(f"{json_path}: none of the {len(index)} {split} frames has an image")
    aabb, aabb_scale = _scene_box(meta, json_path)
    return _assemble(images, poses, intr, names, aabb, aabb_scale, str(json_path), downscale)


def _read_frame(path: Path) -> torch.Tensor:
    """An image as uint8 (8-bit files; keeps big datasets small in memory) or float32, RGB or RGBA."""
    img = load_image(path)
    if img.shape[-1] == 1:
        img = img.expand(-1, -1, 3)
    exact8 = torch.equal(torch.round(img * 255) / 255, img) if img.numel() < (1 << 26) else False
    return torch.round(img * 255).to(torch.uint8) if exact8 and img.max() <= 1 else img


def _assemble(images, poses, intr, names, aabb, aabb_scale, source, downscale) -> RadianceData:
    if len({im.shape[-1] for im in images}) > 1:  # mixed RGB and RGBA: give every frame alpha
        images = [im if im.shape[-1] == 4 else torch.cat(
            [im, torch.full_like(im[..., :1], 255 if im.dtype == torch.uint8 else 1)], -1) for im in images]
    if len({im.dtype for im in images}) > 1:
        images = [im.float() / 255 if im.dtype == torch.uint8 else im for im in images]
    stack = torch.stack(images)
    i = torch.tensor(intr, dtype=torch.float32)
    h, w = stack.shape[1:3]
    cams = Cameras(torch.stack(poses), i[:, 0], i[:, 1], i[:, 2], i[:, 3], w, h)
    if downscale > 1:
        stack, cams = _downscale(stack, cams, downscale)
    return RadianceData(stack, cams, names, aabb, aabb_scale, source)


def _downscale(images: torch.Tensor, cams: Cameras, factor: int) -> tuple[torch.Tensor, Cameras]:
    h, w = images.shape[1:3]
    new_h, new_w = max(1, h // factor), max(1, w // factor)
    was8 = images.dtype == torch.uint8
    out = torch.stack([downscale_image(im.float() / (255 if was8 else 1), (new_h, new_w)) for im in images])
    out = torch.round(out * 255).to(torch.uint8) if was8 else out
    return out, cams.scaled(new_w / w) if new_w / w == new_h / h else Cameras(
        cams.c2w, cams.fx * new_w / w, cams.fy * new_h / h, cams.cx * new_w / w, cams.cy * new_h / h, new_w, new_h)


def _load_npz(path: Path, split: str, downscale: int) -> RadianceData:
    try:
        with np.load(path) as z:
            images, poses, focal = z["images"], z["poses"], float(np.asarray(z["focal"]).reshape(-1)[0])
    except KeyError as e:
        raise InputError(f"{path}: tiny-NeRF npz needs images, poses and focal (missing {e})") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read npz ({e})") from None
    if images.ndim != 4 or images.shape[-1] not in (3, 4) or len(images) != len(poses) or len(images) == 0:
        raise InputError(f"{path}: images must be [N, H, W, 3|4] with one pose each, got {images.shape}, {poses.shape}")
    index = _holdout(len(images), split)
    h, w = images.shape[1:3]
    imgs = torch.from_numpy(np.ascontiguousarray(images[index]))
    imgs = imgs if imgs.dtype == torch.uint8 else imgs.float()
    pose_list = [_check_pose(poses[i].tolist(), f"{path}: frame {i}") for i in index]
    intr = [(focal, focal, 0.5 * w, 0.5 * h)] * len(index)
    # tiny-NeRF scenes sit within about [-2, 2]^3 around the origin (the cameras at radius ~4).
    aabb = torch.tensor([-2.0, -2.0, -2.0, 2.0, 2.0, 2.0])
    return _assemble(list(imgs), pose_list, intr, [f"{path.name}:{i}" for i in index], aabb, 1.0, str(path), downscale)


class RaySampler:
    """Random training rays over all pixels of all views, with their target RGBA.

    `sample(n)` -> (origins [n, 3], dirs [n, 3], rgba [n, 4]); pixels are drawn uniformly from the
    whole dataset, as instant-ngp does.
    """

    def __init__(self, data: RadianceData, device: torch.device, generator: torch.Generator):
        self.data = data
        self.device = device
        self.generator = generator
        self.images = data.images.to(device)
        self.cameras = data.cameras.to(device)

    def sample(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d, g = self.data, self.generator
        flat = torch.randint(0, len(d) * d.height * d.width, (n,), device=self.device, generator=g)
        cam = flat // (d.height * d.width)
        pix = flat % (d.height * d.width)
        row, col = pix // d.width, pix % d.width
        origins, dirs = self.cameras.rays(cam, row.float() + 0.5, col.float() + 0.5)
        return origins, dirs, _rgba_float(self.images[cam, row, col])


def _rgba_float(px: torch.Tensor) -> torch.Tensor:
    """Pixels [M, 3|4] (uint8 or float) as float RGBA, opaque where there is no alpha."""
    px = px.float() / 255.0 if px.dtype == torch.uint8 else px.float()
    if px.shape[-1] == 3:
        px = torch.cat([px, torch.ones_like(px[:, :1])], -1)
    return px
