"""`inr fit image`, `inr render image` and image evaluation."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from inr.errors import InputError
from inr.train.image import IMAGE_FIELDS, ImageFitConfig, build_image_task
from inr.train.loop import resolve_device
from inr.train.rundir import RunDir

from .collection_commands import add_from_option, fit_image_from_collection
from .fitting import (
    add_fit_options,
    announce,
    default_out,
    fit_settings,
    run_for,
    train_run,
)
from .options import add_backend_options, backend_option

TOP_LEVEL = ("target", "size", "field")  # ImageFitConfig fields given as plain options


def add_fit_parser(kinds) -> None:
    p = kinds.add_parser("image", help="fit a field to an image (PNG, JPEG, TIFF, EXR) or a built-in scene",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("target", nargs="?", default=argparse.SUPPRESS, metavar="PATH|SCENE",
                   help="image file or built-in scene name (default: camera)")
    p.add_argument("--field", choices=list(IMAGE_FIELDS), default=argparse.SUPPRESS, help="field kind (default: hash)")
    p.add_argument("--size", type=int, dest="size", default=argparse.SUPPRESS, metavar="PIXELS",
                   help="downscale the target so its longer side is PIXELS (default: as is)")
    add_fit_options(p, "runs/<target>-<field>", ImageFitConfig(), IMAGE_FIELDS)
    add_from_option(p)
    p.set_defaults(handler=fit_image_command)


def add_render_parser(kinds) -> None:
    p = kinds.add_parser("image", help="render a fitted image at any resolution or crop",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run directory of an image fit")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .tif)")
    p.add_argument("--scale", type=float, default=1.0, help="resolution relative to the fitted image")
    p.add_argument("--width", type=int, default=None, help="output width in pixels (overrides --scale)")
    p.add_argument("--height", type=int, default=None, help="output height in pixels (overrides --scale)")
    p.add_argument("--crop", type=float, nargs=4, default=None, metavar=("X0", "Y0", "X1", "Y1"),
                   help="window in [-1, 1] image coordinates (x right, y down)")
    p.add_argument("--device", default="auto")
    add_backend_options(p)
    p.set_defaults(handler=render_image_command)


def fit_image_command(args) -> int:
    from scenes import resolve_image

    if args.from_run:  # condition a trained collection instead of fitting from scratch
        return fit_image_from_collection(args)
    run, cfg = fit_settings(args, "image", ImageFitConfig, TOP_LEVEL)
    if run is None and cfg.field not in IMAGE_FIELDS:
        raise InputError(f"unknown field {cfg.field!r}; expected one of {', '.join(IMAGE_FIELDS)}")
    image = resolve_image(cfg.target, cfg.size)
    train_cfg = cfg.resolved_train()
    device = resolve_device(train_cfg.device)
    try:
        task = build_image_task(image, cfg, train_cfg, device)
    except ValueError as e:  # an invalid field option: reported before anything is written
        raise InputError(f"invalid {cfg.field} field config: {e}") from None

    h, w, c = image.shape
    run, created = run_for(args, run, "image", cfg, train_cfg, default_out(cfg.target, cfg.field),
                           field=task.model.config(),
                           data={"source": cfg.target, "height": h, "width": w, "channels": c})
    announce(f"{cfg.target} with a {cfg.field} field", task.model, run)

    def finish() -> dict:
        task.write_preview(run.path / "preview.png")
        return {"field": cfg.field}

    return train_run(task, run, train_cfg, args, created, finish)


def render_image_command(args) -> int:
    from inr.signals.image import render_image, save_image
    from inr.train import load

    run = RunDir.open(args.run)
    config = run.read_config()
    if config.get("kind") != "image":
        raise InputError(f"{args.run}: not an image run (kind {config.get('kind')!r})")
    suffix = Path(args.output).suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        raise InputError(f"{args.output}: unsupported output format {suffix or '(none)'}; use .png, .jpg or .tif")
    if args.scale <= 0:
        raise InputError(f"--scale must be positive, got {args.scale}")
    h, w = config["data"]["height"], config["data"]["width"]
    height = args.height or max(1, round(h * args.scale))
    width = args.width or max(1, round(w * args.scale))
    with backend_option(args).active():
        field = load(run.path, resolve_device(args.device))
        image = render_image(field, height, width, crop=args.crop).clamp(0, 1).cpu()
    save_image(args.output, image)
    print(json.dumps({"output": args.output, "height": height, "width": width}))
    return 0


def evaluate_run(run: RunDir, config: dict, args) -> dict:
    """PSNR and SSIM of the run's field against its target at the fitted resolution."""
    from inr.signals.image import render_image
    from inr.signals.metrics import psnr, ssim
    from inr.train import load
    from scenes import resolve_image

    target = resolve_image(config["data"]["source"], config["fit"].get("size"))
    field = load(run.path, resolve_device(args.device))
    pred = render_image(field, target.shape[0], target.shape[1]).cpu()
    if target.min() >= 0 and target.max() <= 1:
        pred = pred.clamp(0, 1)
    return {"run": str(run.path), "psnr": float(psnr(pred, target)), "ssim": float(ssim(pred, target))}
