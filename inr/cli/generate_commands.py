"""`inr train generator views|text` and `inr generate nerf --views ... | --text ...`: generators that
output normal NeRF run directories. The text path lives in `inr.cli.text_commands` (imported only
when present: without it `train generator text` does not exist and `--text` exits with one line)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from inr.errors import InputError
from inr.generate.nerf_run import finetune
from inr.generate.views import KIND, generate_run, load_generator, pick_views
from inr.signals.radiance import available_splits, load_radiance
from inr.signals.scene_collection import load_scene_collection
from inr.train import distributed
from inr.train.generator_views import ViewsTrainConfig, build_views_task
from inr.train.loop import resolve_device
from inr.train.nerf import NerfFitConfig

from .fitting import add_fit_options, announce, default_out, fit_settings, processes, shared_run, train_run
from .options import add_command_path, build_dataclass

TOP_LEVEL = ("target", "support", "scenes_per_batch", "background", "eval_scenes", "eval_views")


def _text_commands():
    """The text generator's command module, or None where it is not part of this install."""
    import importlib

    name = f"{__package__}.text_commands"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name != name:
            raise  # the module exists but is broken: say so rather than hide it
        return None


def add_generator_parsers(commands) -> None:
    kinds = add_command_path(commands, ("train", "train a generator over a scene collection; writes a run directory",
                                        "train_what", "WHAT"),
                             ("generator", "a generator that outputs NeRF runs", "generator", "FROM"))
    p = kinds.add_parser("views", help="NeRF from a few posed views (HyperPlanes-style: encoder + hypernetwork "
                                       "update of universal weights)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("target", metavar="COLLECTION", help="scene collection folder (inr scenes make collection)")
    p.add_argument("--support", type=int, default=argparse.SUPPRESS, help="support views per scene (default: 3)")
    p.add_argument("--scenes-per-batch", dest="scenes_per_batch", type=int, default=argparse.SUPPRESS,
                   help="scenes per step (default: 4)")
    p.add_argument("--background", choices=("white", "black", "random"), default=argparse.SUPPRESS,
                   help="background behind transparent query pixels (default: random)")
    p.add_argument("--eval-scenes", dest="eval_scenes", type=int, default=argparse.SUPPRESS,
                   help="held-out scenes per evaluation (default: 4)")
    p.add_argument("--eval-views", dest="eval_views", type=int, default=argparse.SUPPRESS,
                   help="test views of each (default: 2)")
    add_fit_options(p, "runs/<collection>-views", ViewsTrainConfig(), ("model", "hyper"))
    p.set_defaults(handler=train_views_command)
    text = _text_commands()
    if text is not None:
        text.add_train_text_parser(kinds)

    outs = add_command_path(commands, ("generate", "generate a NeRF run with a trained generator (no test-time "
                                                   "optimisation; optional fine-tuning)", "generate_what", "WHAT"))
    q = outs.add_parser("nerf", help="a NeRF run from a few posed views (or from text)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = q.add_mutually_exclusive_group(required=True)
    source.add_argument("--views", metavar="DIR_OR_TRANSFORMS",
                        help="posed images: a Blender or nerfstudio dataset folder or transforms JSON "
                             "(its training views are the candidates)")
    source.add_argument("--text", metavar="CAPTION", help="a caption (needs the text generator)")
    q.add_argument("--model", required=True, metavar="RUN", help="the generator run (inr train generator ...)")
    q.add_argument("-o", "--out", required=True, metavar="OUT", help="the NeRF run directory to write")
    q.add_argument("--support", type=int, default=None, help="views: how many (default: as trained)")
    q.add_argument("--support-views", dest="support_views", type=int, nargs="+", default=None, metavar="I",
                   help="views: which training views (default: spread evenly)")
    q.add_argument("--universal", action="store_true", help="views: no hypernetwork update (universal weights)")
    q.add_argument("--finetune", type=int, default=0, metavar="STEPS",
                   help="fine-tune the generated NeRF for STEPS steps on its support views (inr fit nerf's trainer)")
    q.add_argument("--finetune-lr", dest="finetune_lr", type=float, default=None,
                   help="learning rate of --finetune (default: inr fit nerf's, 1e-2)")
    q.add_argument("--device", default="auto")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--quiet", action="store_true", help="no progress bar while fine-tuning")
    if text is not None and hasattr(text, "add_generate_text_options"):
        text.add_generate_text_options(q)
    q.set_defaults(handler=generate_nerf_command)


# ----------------------------------------------------------------------------------------------
# training


def train_views_command(args) -> int:
    """Under torchrun every rank trains on its share of each step's scenes; rank 0 writes the run."""
    run, cfg = fit_settings(args, KIND, ViewsTrainConfig, TOP_LEVEL)
    cfg.check()
    collection = load_scene_collection(cfg.target)
    train_cfg = cfg.resolved_train()
    device = resolve_device(train_cfg.device)
    distributed.init(device)
    try:
        device = distributed.local_device(device)
        task = build_views_task(collection, cfg, train_cfg, device)
        run, created = shared_run(args, run, KIND, cfg, train_cfg, default_out(cfg.target, "views"),
                                  model=task.model.config(),
                                  data={"collection": str(collection.root),
                                        "train_scenes": len(collection.split("train")),
                                        "heldout_scenes": len(collection.split("heldout")),
                                        "image_size": cfg.model.image_size})
        if distributed.is_main():
            announce(f"a few-view generator on {collection.root.name} ({len(collection.split('train'))} training "
                     f"scenes, {cfg.support} support views, {processes()})", task.model, run)

        def finish() -> dict:
            task.write_preview(run.path / "preview.png")
            return {}

        return train_run(task, run, train_cfg, args, created, finish)
    finally:
        distributed.shutdown()


# ----------------------------------------------------------------------------------------------
# generation


def generate_nerf_command(args) -> int:
    """Generate from views or text, then (both alike) fine-tune with the NeRF trainer and print one line."""
    if args.finetune < 0:
        raise InputError(f"--finetune must be >= 0 steps, got {args.finetune}")
    device = resolve_device(args.device)
    if args.text is not None:
        text = _text_commands()
        if text is None:
            raise InputError("--text: this install has no text generator (inr.cli.text_commands); use --views")
        run, result = text.generate_text_run(args, device)
    else:
        run, result = generate_views_run(args, device)
    if args.finetune:
        cfg = build_dataclass(NerfFitConfig, run.read_config()["fit"])
        out = finetune(run.path, cfg, args.finetune, device=str(device), quiet=args.quiet, seed=args.seed,
                       lr=args.finetune_lr)
        result["finetune"] = {k: out[k] for k in ("step", "seconds", "psnr", "ssim") if k in out}
    print(json.dumps(result))
    return 0


def generate_views_run(args, device: torch.device):
    """`inr generate nerf --views DIR --model RUN -o OUT`: (the written nerf run, its result line)."""
    model, config = load_generator(args.model, device)
    support = args.support or (len(args.support_views) if args.support_views else config["fit"]["support"])
    if support < 1 or support > model.cfg.max_support:
        raise InputError(f"--support {support}: this generator takes 1 to {model.cfg.max_support} support views")
    data = load_radiance(args.views, "train")
    indices = args.support_views or pick_views(len(data), support)
    if len(indices) != support or len(set(indices)) != support:
        raise InputError(f"--support-views: need {support} distinct views, got {indices}")
    if support > len(data) or not all(0 <= i < len(data) for i in indices):
        raise InputError(f"{args.views}: has {len(data)} training views; cannot use views {indices}")
    splits = available_splits(args.views)
    held = next((load_radiance(args.views, s) for s in ("test", "val") if s in splits), None)

    t0 = time.perf_counter()
    run, seconds, resized = generate_run(model, data, indices, args.out, held, universal=args.universal, device=device,
                                         generated={"model": str(Path(args.model).resolve()),
                                                    "views": str(Path(args.views).resolve())})
    if resized:
        print(f"inr: warning: {args.views}: views are {data.width}x{data.height}; resized to the generator's "
              f"{model.cfg.image_size}x{model.cfg.image_size}", file=sys.stderr)
    return run, {"run": str(run.path), "support_views": indices, "generation_seconds": round(seconds, 4),
                 "write_seconds": round(time.perf_counter() - t0 - seconds, 4)}
