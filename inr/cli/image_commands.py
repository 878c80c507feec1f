"""`inr fit image`, `inr render image` and image evaluation."""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import sys
from pathlib import Path


from inr.errors import InputError
from inr.fields import FIELDS
from inr.train.image import ImageFitConfig, build_image_task
from inr.backends import BACKENDS, set_backend
from inr.train.loop import SCHEDULES, TrainConfig, resolve_device, train
from inr.train.rundir import FORMAT, RunDir

from .options import add_dataclass_options, build_dataclass, deep_merge, parsed_overrides, read_config_file

TOP_LEVEL = ("target", "size", "field")  # ImageFitConfig fields given as plain options
FLAG_ALIASES = {"train.batch_size": "--batch-size", "train.max_seconds": "--max-seconds"}
# What may change when a run resumes: how long it trains and how often it reports.
RESUMABLE = {"steps", "max_seconds", "eval_every", "log_every", "checkpoint_every", "device", "backend"}


def add_fit_parser(kinds) -> None:
    p = kinds.add_parser("image", help="fit a field to an image (PNG, JPEG, TIFF, EXR) or a built-in scene",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("target", nargs="?", default=argparse.SUPPRESS, metavar="PATH|SCENE",
                   help="image file or built-in scene name (default: camera)")
    p.add_argument("--field", choices=list(FIELDS), default=argparse.SUPPRESS, help="field kind (default: hash)")
    p.add_argument("--size", type=int, dest="size", default=argparse.SUPPRESS, metavar="PIXELS",
                   help="downscale the target so its longer side is PIXELS (default: as is)")
    p.add_argument("--out", "-o", default=None, help="run directory (default: runs/<target>-<field>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help="JSON config: the keys of a run's config.json 'fit' block, or a run's config.json itself")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    defaults = ImageFitConfig()
    add_dataclass_options(p, defaults.train, "train.", "", FLAG_ALIASES)
    for kind in FIELDS:
        add_dataclass_options(p, getattr(defaults, kind), f"{kind}.", f"{kind}.")
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
    p.add_argument("--backend", choices=BACKENDS, default="auto", help="backend of the hot ops")
    p.set_defaults(handler=render_image_command)


def _fit_config(args) -> ImageFitConfig:
    values = read_config_file(args.config) if args.config else {}
    if values.get("format") == FORMAT:  # a run's config.json: refit with its settings
        values = values.get("fit") or {}
    values = deep_merge(values, parsed_overrides(args, TOP_LEVEL))
    cfg = build_dataclass(ImageFitConfig, values)
    if Path(cfg.target).exists():  # a file: store where it is, so eval and resume work from anywhere
        cfg.target = str(Path(cfg.target).resolve())
    if cfg.field not in FIELDS:
        raise InputError(f"unknown field {cfg.field!r}; expected one of {', '.join(FIELDS)}")
    _check_train(cfg.train)
    return cfg


def _check_train(t: TrainConfig) -> None:
    """Reject train settings the loop would only trip over later."""
    if t.backend not in BACKENDS:
        raise InputError(f"unknown backend {t.backend!r}; expected one of {', '.join(BACKENDS)}")
    if t.schedule is not None and t.schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {t.schedule!r}; expected one of {', '.join(SCHEDULES)}")
    for name in ("steps", "batch_size"):
        if getattr(t, name) is not None and getattr(t, name) < 1:
            raise InputError(f"train.{name} must be >= 1, got {getattr(t, name)}")
    for name in ("lr", "max_seconds"):
        if getattr(t, name) is not None and getattr(t, name) <= 0:
            raise InputError(f"train.{name} must be > 0, got {getattr(t, name)}")


def _default_out(target: str, field: str) -> Path:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(target).stem) or "image"
    base = Path("runs") / f"{stem}-{field}"
    out, i = base, 2
    while out.exists():
        out, i = base.with_name(f"{base.name}-{i}"), i + 1
    return out


def _resumed_config(args) -> tuple[RunDir, ImageFitConfig]:
    if not args.out:
        raise InputError("--resume needs --out RUN (the run directory to continue)")
    run = RunDir.open(args.out)
    saved = run.read_config()
    if saved.get("kind") != "image":
        raise InputError(f"{args.out}: not an image run (kind {saved.get('kind')!r})")
    if not isinstance(saved.get("fit"), dict):
        raise InputError(f"{args.out}: config.json has no \"fit\" settings to resume from")
    cfg = build_dataclass(ImageFitConfig, saved["fit"])
    overrides = parsed_overrides(args, TOP_LEVEL)
    changed = {k for k in overrides if k != "train"} | {f"train.{k}" for k in overrides.get("train", {}) if k not in RESUMABLE}
    if changed or args.config:
        raise InputError(f"{args.out}: cannot change {', '.join(sorted(changed)) or '--config'} when resuming "
                         f"(only {', '.join(sorted(RESUMABLE))})")
    cfg.train = dataclasses.replace(cfg.train, **overrides.get("train", {}))
    _check_train(cfg.train)
    return run, cfg


def fit_image_command(args) -> int:
    from scenes import resolve_image

    if args.resume:
        run, cfg = _resumed_config(args)
    else:
        cfg = _fit_config(args)
        run = None
    image = resolve_image(cfg.target, cfg.size)
    train_cfg = cfg.resolved_train()
    device = resolve_device(train_cfg.device)
    try:
        task = build_image_task(image, cfg, train_cfg, device)
    except ValueError as e:  # an invalid field option: reported before anything is written
        raise InputError(f"invalid {cfg.field} field config: {e}") from None

    created = None
    if run is None:
        out = Path(args.out) if args.out else _default_out(cfg.target, cfg.field)
        if RunDir.is_run(out):
            raise InputError(f"{out}: run directory exists; add --resume to continue it or choose another --out")
        created = not out.exists()
        cfg.train = train_cfg
        h, w, c = image.shape
        run = RunDir.create(out, {
            "kind": "image", "fit": dataclasses.asdict(cfg), "field": task.model.config(),
            "data": {"source": cfg.target, "height": h, "width": w, "channels": c},
        })
    print(f"inr: fitting {cfg.target} with a {cfg.field} field "
          f"({sum(p.numel() for p in task.model.parameters()):,} parameters) -> {run.path}", file=sys.stderr)
    try:
        result = train(task, run, train_cfg, resume=args.resume, quiet=args.quiet)
    except BaseException:
        if created and not run.checkpoint_paths():  # nothing worth resuming: leave no half-run behind
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    run.save_model(task.model)
    task.write_preview(run.path / "preview.png")
    print(json.dumps({"run": str(run.path), "field": cfg.field, **result}))
    return 0


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
    set_backend(args.backend)
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
