"""What every `inr fit <signal>` shares: config resolution (defaults < --config < flags), resume
rules, the run directory's creation, and training that leaves nothing half-written."""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from inr.errors import InputError
from inr.train import distributed
from inr.train.loop import SCHEDULES, TrainConfig, train
from inr.train.rundir import FORMAT, RunDir

from .options import (
    BACKEND_FIELDS,
    add_backend_options,
    add_dataclass_options,
    backend_from,
    build_dataclass,
    deep_merge,
    parsed_overrides,
    read_config_file,
)
from .view_command import add_view_flag

# What may change when a run resumes: how long it trains and how often it reports.
RESUMABLE = {"steps", "max_seconds", "eval_every", "log_every", "checkpoint_every", "device", "backend", "mlp_precision"}
# Train options every fit command spells short.
FLAG_ALIASES = {"train.batch_size": "--batch-size", "train.max_seconds": "--max-seconds"}
# Train options the shared backend helper declares instead of the dataclass walk.
TRAIN_BACKEND_DESTS = tuple(f"train.{name}" for name in BACKEND_FIELDS)


def add_run_options(p: argparse.ArgumentParser, default_out: str) -> None:
    """--out, --resume, --config and --quiet, as every fit command has them."""
    p.add_argument("--out", "-o", default=None, help=f"run directory (default: {default_out})")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--config", default=None, metavar="FILE.json",
                   help="JSON config: the keys of a run's config.json 'fit' block, or a run's config.json itself")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_view_flag(p)


def add_fit_options(p: argparse.ArgumentParser, default_out: str, defaults, blocks, skip: tuple[str, ...] = ()) -> None:
    """The run options, the train options of `defaults` and one --BLOCK.* option per leaf of each of
    its config `blocks` but the dotted paths in `skip`."""
    add_run_options(p, default_out)
    add_dataclass_options(p, defaults.train, "train.", "", FLAG_ALIASES, skip=TRAIN_BACKEND_DESTS)
    add_backend_options(p, "train.")
    for block in blocks:
        add_dataclass_options(p, getattr(defaults, block), f"{block}.", f"{block}.", skip=skip)


def check_train(t: TrainConfig) -> None:
    """Reject train settings the loop would only trip over later."""
    backend_from(t.backend, t.mlp_precision)
    if t.schedule is not None and t.schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {t.schedule!r}; expected one of {', '.join(SCHEDULES)}")
    for name in ("steps", "batch_size"):
        if getattr(t, name) is not None and getattr(t, name) < 1:
            raise InputError(f"train.{name} must be >= 1, got {getattr(t, name)}")
    for name in ("lr", "max_seconds"):
        if getattr(t, name) is not None and getattr(t, name) <= 0:
            raise InputError(f"train.{name} must be > 0, got {getattr(t, name)}")


def fit_config(args, cls, top_level: tuple[str, ...]):
    """The fit config from the dataclass defaults, --config and the flags given."""
    values = read_config_file(args.config) if args.config else {}
    if values.get("format") == FORMAT:  # a run's config.json: refit with its settings
        values = values.get("fit") or {}
    values = deep_merge(values, parsed_overrides(args, top_level))
    cfg = build_dataclass(cls, values)
    if Path(cfg.target).exists():  # a file: store where it is, so eval and resume work from anywhere
        cfg.target = str(Path(cfg.target).resolve())
    check_train(cfg.train)
    return cfg


def default_out(target: str, suffix: str) -> Path:
    """runs/<target stem>-<suffix>, numbered so an existing run is never reused."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(target).stem) or "run"
    base = Path("runs") / f"{stem}-{suffix}"
    out, i = base, 2
    while out.exists():
        out, i = base.with_name(f"{base.name}-{i}"), i + 1
    return out


def resumed_config(args, kind: str, cls, top_level: tuple[str, ...]):
    """(run, config) of the run in --out, with only the RESUMABLE train settings changed."""
    if not args.out:
        raise InputError("--resume needs --out RUN (the run directory to continue)")
    run = RunDir.open(args.out)
    saved = run.read_config()
    if saved.get("kind") != kind:
        raise InputError(f"{args.out}: not {'an' if kind[0] in 'aeiou' else 'a'} {kind} run (kind {saved.get('kind')!r})")
    if not isinstance(saved.get("fit"), dict):
        raise InputError(f"{args.out}: config.json has no \"fit\" settings to resume from")
    cfg = build_dataclass(cls, saved["fit"])
    overrides = parsed_overrides(args, top_level)
    fit = saved["fit"]
    changed = {k for k, v in overrides.items() if k != "train" and not _same(v, fit.get(k))}
    changed |= {f"train.{k}" for k, v in overrides.get("train", {}).items()
                if k not in RESUMABLE and not _same(v, fit["train"].get(k))}
    if changed or args.config:
        raise InputError(f"{args.out}: cannot change {', '.join(sorted(changed)) or '--config'} when resuming "
                         f"(only {', '.join(sorted(RESUMABLE))})")
    cfg.train = dataclasses.replace(cfg.train, **overrides.get("train", {}))
    check_train(cfg.train)
    return run, cfg


def _same(given, saved) -> bool:
    """Whether an option repeated on --resume equals the run's saved value (so it changes nothing)."""
    if isinstance(given, dict) and isinstance(saved, dict):
        return all(_same(v, saved.get(k)) for k, v in given.items())
    if isinstance(given, (list, tuple)) and isinstance(saved, (list, tuple)):
        return len(given) == len(saved) and all(_same(a, b) for a, b in zip(given, saved))
    if isinstance(given, str) and isinstance(saved, str) and given != saved and Path(given).exists():
        return str(Path(given).resolve()) == saved  # targets are saved as absolute paths
    return given == saved


def fit_settings(args, kind: str, cls, top_level: tuple[str, ...]):
    """(the run to continue, or None for a new fit; the fit config): resume rules or fresh settings."""
    if args.resume:
        return resumed_config(args, kind, cls, top_level)
    return None, fit_config(args, cls, top_level)


def run_for(args, run: RunDir | None, kind: str, cfg, train_cfg: TrainConfig, default: Path,
            **sections) -> tuple[RunDir, bool | None]:
    """The resumed `run`, or a new one whose config.json holds the kind, the resolved fit settings
    and `sections` (field, data, ...); returns (run, whether this command created its folder)."""
    if run is not None:
        return run, None
    cfg.train = train_cfg
    return new_run(args, default, {"kind": kind, "fit": dataclasses.asdict(cfg), **sections})


def shared_run(args, run: RunDir | None, kind: str, cfg, train_cfg: TrainConfig, default: Path,
               **sections) -> tuple[RunDir, bool | None]:
    """`run_for` on rank 0 under torchrun; the other ranks open the same run once it exists (in
    one process: `run_for`)."""
    out = run.path if run is not None else Path(args.out) if args.out else default
    if run is None:
        refuse_existing(out)  # on every rank: rank 0 alone failing would leave the others waiting
    return distributed.made_by_main(lambda: run_for(args, run, kind, cfg, train_cfg, default, **sections),
                                    lambda: (RunDir(out), None))


def refuse_existing(out: Path) -> None:
    if RunDir.is_run(out):
        raise InputError(f"{out}: run directory exists; add --resume to continue it or choose another --out")


def new_run(args, default: Path, config: dict) -> tuple[RunDir, bool]:
    """Create the run directory (refusing an existing run); returns (run, whether the folder is new)."""
    out = Path(args.out) if args.out else default
    refuse_existing(out)
    created = not out.exists()
    return RunDir.create(out, config), created


def train_run(task, run: RunDir, train_cfg: TrainConfig, args, created: bool | None,
              finish: Callable[[], dict]) -> int:
    """Train, save the model and what `finish` writes; print the result as one JSON line. A failure
    before the first checkpoint removes a run directory this command created. Under torchrun only
    rank 0 writes and prints. The hot ops run on the train config's backend throughout, the
    previews and meshes `finish` writes included."""
    with train_cfg.hot_ops.active():
        return _train_run(task, run, train_cfg, args, created, finish)


def _train_run(task, run: RunDir, train_cfg: TrainConfig, args, created: bool | None,
               finish: Callable[[], dict]) -> int:
    viewer = None
    main = distributed.is_main()
    try:
        hooks = {}
        if getattr(args, "view", False):  # the web viewer beside training, on this task's weights
            from viewer.live import start_live_viewer

            viewer, hooks = start_live_viewer(run, task, args.view_port)
        result = train(task, run, train_cfg, resume=args.resume, quiet=args.quiet, **hooks)
        extra = {}
        if main:
            run.save_model(task.model)
            extra = finish()
    except BaseException:
        if viewer is not None:
            viewer.stop()
        if main and created and not run.checkpoint_paths():  # nothing worth resuming: leave no half-run behind
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    if main:
        print(json.dumps({"run": str(run.path), **result, **extra}), flush=True)
    if viewer is not None:
        print(f"inr: training finished; the viewer stays at {viewer.url} (Ctrl-C to quit)", file=sys.stderr)
        viewer.wait()
    return 0


def processes() -> str:
    """"1 process", "2 processes": how many ranks train (for the announce line)."""
    world = distributed.world_size()
    return f"{world} process{'es' if world > 1 else ''}"


def announce(what: str, model, run: RunDir) -> None:
    n = sum(p.numel() for p in model.parameters())
    print(f"inr: fitting {what} ({n:,} parameters) -> {run.path}", file=sys.stderr)
