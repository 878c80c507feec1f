"""What both `inr fit collection images|sdf` commands share: the --hyper preset, the settings
preamble (preset, train defaults, this process's device under torchrun, checks), the seeded model,
config.json's fit block, and the run's creation and training (rank 0 writes)."""
from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from inr.errors import InputError
from inr.train import distributed
from inr.train.collection import COLLECTION_FIELDS, HCINR_TARGETS, PRESETS
from inr.train.loop import resolve_device
from inr.train.rundir import RunDir

from .fitting import announce, default_out, fit_settings, new_run, processes, train_run
from .options import read_config_file


def add_hyper_option(p: argparse.ArgumentParser) -> None:
    """--hyper PRESET (refined by the --hyper.* options)."""
    p.add_argument("--hyper", dest="preset", choices=list(PRESETS), default=argparse.SUPPRESS,
                   help="hypernetwork: mip (full weights, MIP), plain (full, default init), siren (full, SIREN "
                        "paper init), film, shift (Functa) or lowrank; --hyper.* options refine it (default: mip)")


def add_field_option(p: argparse.ArgumentParser) -> None:
    """--field siren|hcinr: the members' shared field (refined by --siren.* or --hcinr.*)."""
    p.add_argument("--field", choices=list(COLLECTION_FIELDS), default=argparse.SUPPRESS,
                   help="the field the hypernetwork conditions: siren, or hcinr (HC-INR: per-member warps "
                        "over shared feature grids and a shared compact field; --hyper.targets 'compact.*' "
                        "for per-member compact weights instead) (default: siren)")


def apply_preset(cfg, args):
    """--hyper PRESET sets mode/mip/init unless --hyper.* flags or --config set them; an HC-INR
    field's hypernetwork generates its warp hypernetworks unless --hyper.targets says otherwise."""
    if cfg.preset not in PRESETS:
        raise InputError(f"unknown --hyper {cfg.preset!r}; expected one of {', '.join(PRESETS)}")
    explicit = {dest.split(".", 1)[1] for dest in vars(args) if dest.startswith("hyper.")}
    if args.config:
        explicit |= set(read_config_file(args.config).get("hyper") or {})
    preset = {**PRESETS[cfg.preset], **({"targets": HCINR_TARGETS} if cfg.field == "hcinr" else {})}
    values = {k: v for k, v in preset.items() if k not in explicit}
    return dataclasses.replace(cfg, hyper=dataclasses.replace(cfg.hyper, **values))


def collection_fit_settings(args, cls, top_level: tuple[str, ...]):
    """(the run to continue or None, the fit config `cls` with its preset applied to a new fit,
    the resolved train settings, this process's device): joins torchrun's process group first,
    so the checks see the number of processes."""
    run, cfg = fit_settings(args, "collection", cls, top_level)
    if run is None:
        cfg = apply_preset(cfg, args)
    train_cfg = cfg.resolved_train()
    device = resolve_device(train_cfg.device)
    distributed.init(device)
    device = distributed.local_device(device)
    cfg.check()
    return run, cfg, train_cfg, device


def seeded_model(build: Callable[[torch.Generator], torch.nn.Module], seed: int) -> torch.nn.Module:
    """build(generator) at `seed`; an invalid hypernetwork option is an InputError."""
    torch.manual_seed(seed)
    try:
        return build(torch.Generator().manual_seed(seed))
    except ValueError as e:
        raise InputError(f"invalid hypernetwork config: {e}") from None


def fit_record(cfg, train_cfg) -> dict:
    """config.json's "fit" block: the fit config with its resolved train settings, as plain JSON."""
    cfg = dataclasses.replace(cfg, train=train_cfg)
    d = dataclasses.asdict(cfg)
    d["hyper"]["targets"] = list(cfg.hyper.targets)
    return d


def run_collection_fit(args, run: RunDir | None, cfg, train_cfg, task, config: dict, what: str) -> int:
    """What every `inr fit collection` does once its task is built: create the run directory (rank
    0 only, after every rank chose the same path) unless resuming, train, write the preview."""
    created = None
    if run is None:
        out = Path(args.out) if args.out else default_out(cfg.target, cfg.preset)

        def make() -> tuple[RunDir, bool]:
            args.out = str(out)
            return new_run(args, out, config)

        run, created = distributed.made_by_main(make, lambda: (RunDir(out), None))
    if distributed.is_main():
        announce(f"{what} with a {cfg.preset} hypernetwork ({processes()})", task.model, run)

    def finish() -> dict:
        task.write_preview(run.path / "preview.png")
        return {"members": len(config["data"]["members"]), "preset": cfg.preset}

    try:
        return train_run(task, run, train_cfg, args, created, finish)
    finally:
        distributed.shutdown()
