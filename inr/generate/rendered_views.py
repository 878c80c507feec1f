"""A Blender dataset of a field's own renders: the cameras a generated run needs (render, view,
orbit) when the caption has no real views. The cameras are those of a reference dataset (one scene
of the generator's collection); the images are the generated field seen through them (RGBA, straight
alpha), so `inr eval` on such a run measures the run against itself and says nothing about quality:
give real views (`--scene DIR`) for that."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from inr.atomic import atomic_write_text
from inr.errors import InputError
from inr.fields.nerf import NerfField
from inr.signals.image import save_image
from inr.signals.radiance import SPLITS, load_radiance
from inr.train.nerf import NerfFitConfig, build_renderer

FOLDER = "views"


@torch.no_grad()
def _rgba(renderer, cams, i: int) -> torch.Tensor:
    """View i as straight-alpha RGBA [H, W, 4] in [0, 1] (rendered on black: premultiplied colour)."""
    out = renderer.render_view(cams, i, torch.zeros(3))
    rgb, alpha = out["rgb"], out["opacity"]
    return torch.cat([rgb / alpha.clamp_min(1e-6), alpha], -1).clamp(0, 1)


def stage_rendered_views(field: NerfField, reference: Path, folder: Path) -> str:
    """Write `folder`/views: `reference`'s transforms with the field's renders as images (through
    an occupancy grid from its density, as `inr render nerf` renders the run); returns "views" (the
    dataset's path relative to `folder`)."""
    from .nerf_run import occupancy_from_density

    reference = Path(reference)
    if not (reference / "transforms_train.json").is_file():
        raise InputError(f"{reference}: reference cameras missing (the generator's collection moved?); "
                         "give the views to render with --scene DIR")
    field = field.cpu().eval()
    out = folder / FOLDER
    renderer = None
    for split in SPLITS:
        src = reference / f"transforms_{split}.json"
        if not src.is_file():
            continue
        meta = json.loads(src.read_text())
        data = load_radiance(reference, split)
        if renderer is None:
            renderer = build_renderer(field, data.aabb, data.aabb_scale, NerfFitConfig())
            occupancy_from_density(field, renderer.grid, renderer.step_size)
        cams = data.cameras
        frames = []
        for i, frame in enumerate(meta["frames"]):
            name = f"{split}/r_{i}"
            save_image(out / f"{name}.png", _rgba(renderer, cams, i))
            frames.append({"file_path": f"./{name}", "transform_matrix": frame["transform_matrix"]})
        atomic_write_text(out / f"transforms_{split}.json", json.dumps({**meta, "frames": frames}, indent=1))
    return FOLDER
