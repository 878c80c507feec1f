"""`inr fit nerf`, `inr render nerf` and radiance-field evaluation."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from inr.atomic import atomic_write, atomic_write_text
from inr.errors import InputError
from inr.signals.radiance import load_for_training
from inr.signals.video import write_video
from inr.train.loop import resolve_device
from inr.train.nerf import NerfFitConfig, build_nerf_task, evaluate_views, load_renderer, save_grid
from inr.train.rundir import RunDir

from .fitting import add_fit_options, announce, default_out, fit_settings, run_for, train_run
from .options import add_backend_options, backend_option, build_dataclass

TOP_LEVEL = ("target", "downscale", "background", "eval_background", "loss", "eval_views")
VIDEO_SUFFIXES = (".mp4", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def add_fit_parser(kinds) -> None:
    p = kinds.add_parser("nerf", help="fit a radiance field to posed images (Blender/nerfstudio transforms, npz) "
                                      "or a built-in scene", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("target", nargs="?", default=argparse.SUPPRESS, metavar="PATH|SCENE",
                   help="dataset directory, transforms JSON or tiny-NeRF .npz; or a built-in scene "
                        "(blocks, tower, ring, seed-N; default: blocks)")
    p.add_argument("--downscale", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="shrink the images N times (default: 1)")
    p.add_argument("--background", choices=("white", "black", "random"), default=argparse.SUPPRESS,
                   help="training background behind transparent pixels (default: random)")
    p.add_argument("--eval-background", dest="eval_background", choices=("white", "black"),
                   default=argparse.SUPPRESS, help="background for evaluation and renders (default: white)")
    p.add_argument("--loss", choices=("mse", "huber"), default=argparse.SUPPRESS, help="colour loss (default: mse)")
    p.add_argument("--eval-views", dest="eval_views", type=int, default=argparse.SUPPRESS,
                   help="validation views per evaluation during training (default: 10)")
    # HC-INR's settings are the --hcinr.* block (as for images and SDFs), not a --field.hcinr JSON
    add_fit_options(p, "runs/<scene>-nerf", NerfFitConfig(), ("field", "march", "occupancy", "hcinr"),
                    skip=("field.hcinr",))
    p.set_defaults(handler=fit_nerf_command)


def add_render_parser(kinds) -> None:
    p = kinds.add_parser("nerf", help="render a fitted radiance field: a dataset view or an orbit video",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run directory of a nerf fit")
    p.add_argument("-o", "--output", required=True,
                   help="output: an image (.png, .jpg, .tif; .npy for raw values) or, with --orbit, a video (.mp4, .gif)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--view", type=int, default=None, metavar="I", help="render camera I of --split (default: 0)")
    what.add_argument("--orbit", action="store_true", help="render an orbit around the scene as a video")
    p.add_argument("--split", default="test", choices=("train", "val", "test"),
                   help="dataset split for --view (falls back to val where there is no test split)")
    p.add_argument("--frames", type=int, default=60, help="orbit frames")
    p.add_argument("--fps", type=int, default=24, help="orbit frames per second")
    p.add_argument("--elevation", type=float, default=None, help="orbit elevation in degrees (default: the training cameras')")
    p.add_argument("--radius", type=float, default=None, help="orbit radius (default: the training cameras' distance)")
    p.add_argument("--output-kind", dest="output_kind", default="rgb", choices=("rgb", "depth", "opacity"),
                   help="what to render: colour, expected depth or accumulated opacity")
    p.add_argument("--scale", type=float, default=1.0, help="resolution relative to the dataset images")
    p.add_argument("--device", default="auto")
    add_backend_options(p)
    p.set_defaults(handler=render_nerf_command)


def resolve_dataset(target: str) -> Path:
    """A dataset path as given, or the generated dataset of a built-in scene name."""
    from scenes.multiview import multiview_scene

    p = Path(target)
    if p.exists():
        return p
    try:
        return multiview_scene(target)
    except InputError as e:
        raise InputError(f"{target}: no such dataset path, and {e}") from None


def fit_nerf_command(args) -> int:
    run, cfg = fit_settings(args, "nerf", NerfFitConfig, TOP_LEVEL)
    if run is None and "field.aabb" in vars(args):  # derived, not chosen: a flag would be silently replaced
        raise InputError("field.aabb is set from the dataset (its scale, offset and aabb_scale); "
                         "edit those in transforms.json to change the scene box")
    if cfg.field.encoding != "hcinr" and any(k.startswith("hcinr.") for k in vars(args)):
        raise InputError("--hcinr.* options need --field.encoding hcinr")
    try:
        cfg.check()
    except ValueError as e:
        raise InputError(f"invalid nerf config: {e}") from None
    dataset = resolve_dataset(cfg.target)
    train_data, val_data, splits = load_for_training(dataset, cfg.downscale)
    train_cfg = cfg.resolved_train()
    device = resolve_device(train_cfg.device)
    try:
        task = build_nerf_task(train_data, val_data, cfg, train_cfg, device)
    except ValueError as e:  # an invalid field option: reported before anything is written
        raise InputError(f"invalid nerf field config: {e}") from None

    run, created = run_for(args, run, "nerf", cfg, train_cfg, default_out(cfg.target, "nerf"),
                           field=task.model.config(),
                           data={"source": cfg.target, "dataset": str(Path(dataset).resolve()), "splits": splits,
                                 "height": train_data.height, "width": train_data.width,
                                 "train_views": len(train_data), "aabb": train_data.aabb.tolist(),
                                 "aabb_scale": train_data.aabb_scale})
    announce(f"{cfg.target} ({len(train_data)} views, {train_data.width}x{train_data.height}) with a "
             f"{cfg.field.encoding} NeRF field", task.model, run)

    def finish() -> dict:
        save_grid(run, task.grid)
        task.write_preview(run.path / "preview.png")
        return {"occupancy": round(task.grid.occupancy(), 4)}

    return train_run(task, run, train_cfg, args, created, finish)


def _open_run(run_dir: str, device: torch.device):
    run = RunDir.open(run_dir)
    config = run.read_config()
    if config.get("kind") != "nerf":
        raise InputError(f"{run_dir}: not a nerf run (kind {config.get('kind')!r})")
    cfg = build_dataclass(NerfFitConfig, config.get("fit") or {})
    return run, config, cfg, load_renderer(run, cfg, device)


def _split_data(config: dict, split: str, downscale: int):
    from inr.signals.radiance import load_radiance

    splits = config["data"].get("splits", [])
    if split not in splits:
        if split == "test" and "val" in splits:
            split = "val"
        else:
            raise InputError(f"{config['data']['dataset']}: no {split} split (has {', '.join(splits) or 'none'})")
    return split, load_radiance(config["data"]["dataset"], split, downscale)


def evaluate_run(run_dir: RunDir, config: dict, args) -> dict:
    """PSNR and SSIM of every view of a split, their means, saved as eval_<split>.json in the run."""
    from inr.signals.radiance import background_color

    device = resolve_device(args.device)
    run, config, cfg, renderer = _open_run(run_dir.path, device)
    split, data = _split_data(config, args.split, cfg.downscale)
    result = evaluate_views(renderer, data, list(range(len(data))), background_color(cfg.eval_background, device), device)
    out = {"run": str(run.path), "split": split, **result}
    atomic_write_text(run.path / f"eval_{split}.json", json.dumps(out, indent=2))
    return out


def render_nerf_command(args) -> int:
    suffix = Path(args.output).suffix.lower()
    allowed = VIDEO_SUFFIXES if args.orbit else IMAGE_SUFFIXES + (".npy",)
    if suffix not in allowed:
        raise InputError(f"{args.output}: unsupported output format {suffix or '(none)'}; use {', '.join(allowed)}")
    if args.scale <= 0 or args.frames < 1 or args.fps < 1:
        raise InputError("--scale, --frames and --fps must be positive")
    with backend_option(args).active():
        return _render_nerf(args, suffix)


def _render_nerf(args, suffix: str) -> int:
    from inr.render.rays import Cameras, orbit_like
    from inr.signals.radiance import background_color

    device = resolve_device(args.device)
    _, config, cfg, renderer = _open_run(args.run, device)
    bg = background_color(cfg.eval_background, device)
    if args.orbit:
        from inr.signals.radiance import load_radiance

        train = load_radiance(config["data"]["dataset"], "train", cfg.downscale)
        poses = orbit_like(train.cameras, renderer.grid.center, args.frames, args.radius, args.elevation)
        c = train.cameras
        cams = Cameras(poses, c.fx[:1].expand(args.frames), c.fy[:1].expand(args.frames), c.cx[:1].expand(args.frames),
                       c.cy[:1].expand(args.frames), c.width, c.height).scaled(args.scale).to(device)
        frames = [_frame(renderer.render_view(cams, i, bg), args.output_kind) for i in range(args.frames)]
        written = write_video(args.output, frames, args.fps)
        print(json.dumps({"output": written, "frames": args.frames, "height": cams.height, "width": cams.width}))
        return 0
    split, data = _split_data(config, args.split, cfg.downscale)
    view = args.view or 0
    if not 0 <= view < len(data):
        raise InputError(f"--view {view}: the {split} split has views 0..{len(data) - 1}")
    cams = data.cameras.scaled(args.scale).to(device)
    out = renderer.render_view(cams, view, bg)
    if suffix == ".npy":
        array = out[args.output_kind].cpu().numpy()
        atomic_write(args.output, lambda tmp: np.save(tmp, array, allow_pickle=False))
    else:
        from inr.signals.image import save_image

        save_image(args.output, _frame(out, args.output_kind))
    print(json.dumps({"output": args.output, "split": split, "view": view, "height": cams.height, "width": cams.width,
                      "samples_per_ray": round(out["samples_per_ray"], 2)}))
    return 0


def _frame(out: dict, kind: str) -> np.ndarray:
    """An 8-bit frame of a render: colour, opacity, or depth normalised over the opaque pixels
    (near bright, far dark)."""
    if kind == "depth":
        depth, alpha = out["depth"], out["opacity"]
        d = depth / alpha.clamp_min(1e-6)
        seen = alpha > 0.5
        lo, hi = (float(d[seen].min()), float(d[seen].max())) if bool(seen.any()) else (0.0, 1.0)
        img = ((hi - d) / max(hi - lo, 1e-6)).clamp(0, 1) * alpha
    else:
        img = out[kind]
    img = img.cpu().numpy()
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
