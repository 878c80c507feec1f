"""`inr fit collection images`, `inr render collection`, collection evaluation, and
`inr fit image PATH --from RUN` (a new image from a trained collection)."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from pathlib import Path

import torch

from inr.errors import InputError
from inr.hyper import SOURCES
from inr.train.collection import (
    CollectionFitConfig,
    ImageCollectionTask,
    build_collection_model,
    evaluation_task,
    fit_new_image,
    model_config,
    rebuild_model,
)
from inr.train.loop import resolve_device
from inr.train.rundir import RunDir

from .builtin_collections import image_collection
from .collection_fitting import add_field_option, add_hyper_option, collection_fit_settings, fit_record, run_collection_fit, seeded_model
from .collection_sdf_commands import (
    add_sdf_collection_parser,
    evaluate_sdf_run,
    render_sdf_member,
)
from .fitting import add_fit_options, default_out, new_run
from .options import build_dataclass

TOP_LEVEL = ("target", "size", "preset", "field", "conditioning", "latent_dim", "latent_lr", "latent_penalty",
             "signals_per_batch", "observed")
IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
NEW_SIGNAL_DEFAULTS = {"steps": 100, "lr": 1e-2}  # `--from`: latent optimisation


def add_fit_parser(kinds) -> None:
    p = kinds.add_parser("collection", help="train one hypernetwork over a collection of signals")
    signals = p.add_subparsers(dest="collection", metavar="SIGNALS", required=True)
    q = signals.add_parser("images", help="a folder of images or a built-in collection (textures, textures-N)",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    q.add_argument("target", nargs="?", default=argparse.SUPPRESS, metavar="DIR|COLLECTION",
                   help="folder of images, or built-in procedural textures (default: textures, 64 of 32x32)")
    add_hyper_option(q)
    add_field_option(q)
    q.add_argument("--conditioning", choices=SOURCES, default=argparse.SUPPRESS,
                   help="latent (auto-decoder), conv (image encoder) or set (encoder of observed pixels) (default: latent)")
    q.add_argument("--size", type=int, default=argparse.SUPPRESS, metavar="PIXELS",
                   help="resize every image to PIXELS x PIXELS (centre crop); without it mixed sizes are rejected")
    for name, tp, help_ in (("latent_dim", int, "width of the conditioning z (default: 64)"),
                            ("latent_lr", float, "learning rate of the auto-decoder's latents (default: 1e-2 with MIP, 1e-3 without)"),
                            ("latent_penalty", float, "weight of the latent-norm penalty (default: 1e-4)"),
                            ("signals_per_batch", int, "signals per step, split over torchrun processes (default: 16)"),
                            ("observed", float, "set encoder: fraction of pixels it sees (default: 0.25)")):
        q.add_argument(f"--{name.replace('_', '-')}", dest=name, type=tp, default=argparse.SUPPRESS, help=help_,
                       metavar=tp.__name__.upper())
    add_fit_options(q, "runs/<collection>-<hyper>", CollectionFitConfig(), ("hyper", "siren", "hcinr"))
    q.set_defaults(handler=fit_collection_command)
    add_sdf_collection_parser(signals)


def add_render_parser(kinds) -> None:
    p = kinds.add_parser("collection", help="render one member of a trained collection",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run directory of a collection")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .tif)")
    p.add_argument("--member", default="0", help="member index or name")
    p.add_argument("--scale", type=float, default=1.0, help="resolution relative to the training images")
    p.add_argument("--device", default="auto")
    p.set_defaults(handler=render_collection_command)


def add_from_option(p: argparse.ArgumentParser) -> None:
    """`inr fit image PATH --from RUN`: fit by conditioning a trained collection, not from scratch."""
    p.add_argument("--from", dest="from_run", default=None, metavar="RUN",
                   help="a collection run: fit only the new image's latent (--steps, default 100, --lr "
                        "default 1e-2) or encode it (conv/set encoders); writes a normal image run")
    p.add_argument("--observed", type=float, default=1.0,
                   help="with --from on a set-encoder collection: fraction of pixels observed")


# -- fit ----------------------------------------------------------------------------------------

def fit_collection_command(args) -> int:
    run, cfg, train_cfg, device = collection_fit_settings(args, CollectionFitConfig, TOP_LEVEL)
    collection = image_collection(cfg.target, cfg.size)
    m, h, w, c = collection.images.shape
    model = seeded_model(lambda g: build_collection_model(cfg, m, c, generator=g), train_cfg.seed)
    task = ImageCollectionTask(collection.images, model, cfg, train_cfg, device)

    config = {"kind": "collection", "fit": fit_record(cfg, train_cfg), "model": model_config(model, m, c),
              "field": model.hyper_field.field.config(),
              "data": {"signal": "images", "source": collection.source, "size": cfg.size, "members": collection.names,
                       "height": h, "width": w, "channels": c}}
    return run_collection_fit(args, run, cfg, train_cfg, task, config, f"{m} images of {collection.source}")


# -- opening a collection run ---------------------------------------------------------------------

def open_collection(path: str, device: torch.device):
    """(model with its parameters, fit config, config.json) of a collection run."""
    run = RunDir.open(path)
    config = run.read_config()
    if config.get("kind") != "collection":
        raise InputError(f"{path}: not a collection run (kind {config.get('kind')!r})")
    if (config.get("data") or {}).get("signal") != "images":
        raise InputError(f"{path}: not an image collection (signal {(config.get('data') or {}).get('signal')!r})")
    try:
        cfg = build_dataclass(CollectionFitConfig, config["fit"])
        model = rebuild_model(config["model"])
        model.load_state_dict(run.load_model_state())
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise InputError(f"{path}: cannot rebuild its hypernetwork ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), cfg, config


def image_collection_task(config: dict, model, device: torch.device, where: str) -> ImageCollectionTask:
    """The evaluation task of an image collection run (its images and conditioning inputs) around
    `model`, its collection reloaded from the source config.json names (a built-in one by name)."""
    data = config["data"]
    collection = image_collection(data["source"], data.get("size"))
    cfg = build_dataclass(CollectionFitConfig, config["fit"])
    return evaluation_task(collection, data, cfg, model, device, where)


def _collection_task(path: str, device: torch.device):
    model, _, config = open_collection(path, device)
    return image_collection_task(config, model, device, path), config


def evaluate_run(run: RunDir, config: dict, args) -> dict:
    """Mean and worst PSNR and mean SSIM over the members, and each member's PSNR."""
    if config["data"]["signal"] == "sdf":
        return evaluate_sdf_run(run, config, args)
    from inr.signals.metrics import psnr

    task, config = _collection_task(str(run.path), resolve_device(args.device))
    recon = task.render_members(torch.arange(task.n))
    members = {name: round(float(psnr(recon[i], task.images[i].cpu())), 3) for i, name in enumerate(config["data"]["members"])}
    return {"run": str(run.path), **task.evaluate(), "members": members}


def render_collection_command(args) -> int:
    from inr.signals.image import render_image, save_image

    config = RunDir.open(args.run).read_config()
    if config.get("data", {}).get("signal") == "sdf":
        return render_sdf_member(args, config)
    if Path(args.output).suffix.lower() not in IMAGE_OUTPUTS:
        raise InputError(f"{args.output}: unsupported output format; use .png, .jpg or .tif")
    if args.scale <= 0:
        raise InputError(f"--scale must be positive, got {args.scale}")
    device = resolve_device(args.device)
    task, config = _collection_task(args.run, device)
    names = config["data"]["members"]
    member = names.index(args.member) if args.member in names else None
    if member is None:
        try:
            member = int(args.member)
        except ValueError:
            raise InputError(f"{args.run}: no member {args.member!r} (members 0..{len(names) - 1} or names)") from None
    if not 0 <= member < len(names):
        raise InputError(f"{args.run}: member {member} out of range (0..{len(names) - 1})")
    with torch.no_grad():
        z = task.model.condition(task.eval_conditions(torch.tensor([member])))[0]
    field = task.model.hyper_field.materialize(z)
    height, width = max(1, round(task.height * args.scale)), max(1, round(task.width * args.scale))
    save_image(args.output, render_image(field, height, width).clamp(0, 1).cpu())
    print(json.dumps({"output": args.output, "member": names[member], "height": height, "width": width}))
    return 0


# -- a new image from a collection --------------------------------------------------------------

def _match_channels(image: torch.Tensor, channels: int, target: str, run: str) -> torch.Tensor:
    c = image.shape[-1]
    if c == 4:
        image, c = image[..., :3] * image[..., 3:] + (1 - image[..., 3:]), 3
    if c == 1 and channels == 3:
        return image.expand(*image.shape[:-1], 3)
    if c != channels:
        raise InputError(f"{target}: a {c}-channel image does not match {run}, whose field outputs {channels} channels")
    return image


def fit_image_from_collection(args) -> int:
    """`inr fit image PATH --from RUN`: condition the collection's hypernetwork on a new image and
    write a normal image run holding the generated field."""
    from inr.signals.image import save_image
    from inr.signals.metrics import SSIM_WIN, psnr, ssim
    from inr.train.image import ImageFitConfig
    from scenes import resolve_image

    from .fitting import fit_config

    if args.resume:
        raise InputError("--from fits in one go; it cannot --resume")
    if not 0 < args.observed <= 1:
        raise InputError(f"--observed must be in (0, 1], got {args.observed}")
    cfg = fit_config(args, ImageFitConfig, ("target", "size"))
    device = resolve_device(cfg.train.device)
    model, ccfg, config = open_collection(args.from_run, device)
    image = _match_channels(resolve_image(cfg.target, cfg.size), config["data"]["channels"], cfg.target, args.from_run)
    steps = cfg.train.steps if cfg.train.steps is not None else (NEW_SIGNAL_DEFAULTS["steps"] if ccfg.conditioning == "latent" else 0)
    lr = cfg.train.lr or NEW_SIGNAL_DEFAULTS["lr"]
    result = fit_new_image(model, image, steps, lr, observed=args.observed, seed=cfg.train.seed)

    h, w, c = image.shape
    fit = ImageFitConfig(target=cfg.target, size=cfg.size, field=result.field.kind,
                         train=dataclasses.replace(cfg.train, steps=steps, lr=lr))
    setattr(fit, result.field.kind, getattr(ccfg, result.field.kind))  # the members' siren or hcinr settings
    out = Path(args.out) if args.out else default_out(cfg.target, "from-collection")
    run, created = new_run(args, out, {"kind": "image", "fit": dataclasses.asdict(fit), "field": result.field.config(),
                                       "data": {"source": cfg.target, "height": h, "width": w, "channels": c},
                                       "from": {"run": str(Path(args.from_run).resolve()), "conditioning": ccfg.conditioning,
                                                "steps": steps, "lr": lr, "observed": args.observed}})
    try:
        from inr.signals.image import render_image

        for row in result.history:
            run.append_metrics(row)
        run.save_model(result.field)
        from inr.train.rundir import save_tensors

        save_tensors(run.path / "latent.safetensors", {"z": result.latent})
        pred = render_image(result.field, h, w).clamp(0, 1).cpu()
        final = {"psnr": float(psnr(pred, image))}
        if min(h, w) >= SSIM_WIN:
            final["ssim"] = float(ssim(pred, image))
        run.append_metrics({"step": steps, "eval": final, "final": True})
        save_image(run.path / "preview.png", pred)
    except BaseException:
        if created:
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    print(f"inr: {cfg.target} from {args.from_run} ({ccfg.conditioning}, {steps} steps) -> {run.path}", file=sys.stderr)
    print(json.dumps({"run": str(run.path), "step": steps, **final, "from": args.from_run}))
    return 0
