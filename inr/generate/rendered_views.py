"""A Blender dataset of a field's own renders: the cameras a generated run needs (render, view,
orbit) when the caption has no real views. The cameras are those of a reference dataset (one scene
of the generator's collection); the images are the generated field seen through them (RGBA, straight
alpha), so `inr eval` on such a run measures the run against itself and says nothing about quality:
give real views (`--scene DIR`) for that."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from inr.atomic import atomic_write_text
from inr.errors import InputError
from inr.fields.nerf import NerfField
from inr.render.dense import render_dense
from inr.signals.image import save_image
from inr.signals.radiance import SPLITS, load_radiance

FOLDER = "views"


@torch.no_grad()
def render_rgba(field: NerfField, cams, i: int, box: torch.Tensor, samples: int, chunk: int = 8192) -> np.ndarray:
    """View i as straight-alpha RGBA uint8 [H, W, 4], densely rendered inside `box`."""
    origins, dirs = cams.view_rays(i)
    black = torch.zeros(3)
    parts = []
    for o, d in zip(origins.split(chunk), dirs.split(chunk)):
        rgb, alpha = render_dense(lambda x, v: field(x, v), o[None], d[None], box, samples, black)
        parts.append(torch.cat([rgb[0] / alpha[0, :, None].clamp_min(1e-6), alpha[0, :, None]], -1))
    img = torch.cat(parts).clamp(0, 1).view(cams.height, cams.width, 4).numpy()
    return (img * 255 + 0.5).astype(np.uint8)


def stage_rendered_views(field: NerfField, reference: Path, folder: Path, box, samples: int = 64) -> str:
    """Write `folder`/views: `reference`'s transforms with the field's renders as images; returns
    "views" (the dataset's path relative to `folder`)."""
    reference = Path(reference)
    if not (reference / "transforms_train.json").is_file():
        raise InputError(f"{reference}: reference cameras missing (the generator's collection moved?); "
                         "give the views to render with --scene DIR")
    field = field.cpu().eval()
    box = torch.as_tensor(box, dtype=torch.float32)
    out = folder / FOLDER
    for split in SPLITS:
        src = reference / f"transforms_{split}.json"
        if not src.is_file():
            continue
        meta = json.loads(src.read_text())
        cams = load_radiance(reference, split).cameras
        frames = []
        for i, frame in enumerate(meta["frames"]):
            name = f"{split}/r_{i}"
            save_image(out / f"{name}.png", render_rgba(field, cams, i, box, samples))
            frames.append({"file_path": f"./{name}", "transform_matrix": frame["transform_matrix"]})
        atomic_write_text(out / f"transforms_{split}.json", json.dumps({**meta, "frames": frames}, indent=1))
    return FOLDER
