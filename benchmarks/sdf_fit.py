"""Fit signed distance fields and measure them; one JSON line.

    python benchmarks/sdf_fit.py [--shapes dragon bunny composite] [--threads 2]
                                 [--hash-seconds 180] [--siren-seconds 300] [--extract-resolution 512]

Runs, each at the field's default settings within a training-time budget (the clock of
`inr fit sdf --max-seconds`, which excludes evaluation):

- the hash-grid SDF on the Stanford dragon (`../shared/data/meshes/dragon.obj`), target:
  F-score@1% >= 0.95 and normal consistency >= 0.95 within 180 s;
- SIREN on the bunny (`bunny_watertight.obj`), target: Chamfer-L1 <= 1e-3 within 300 s;
- both fields on a built-in shape (no download).

Meshes that are absent are skipped (reported under "skipped"). Each run reports field kind,
parameters, seconds, steps and the shape metrics (Occupancy Networks conventions, see
`inr.signals.shape_metrics`) of the mesh extracted at `--eval-resolution`, and the time to
extract a `--extract-resolution`^3 mesh from the fitted field (sparse evaluation near the surface).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inr.render.marching_cubes import extract_mesh  # noqa: E402
from inr.train.loop import resolve_device, train  # noqa: E402
from inr.train.rundir import RunDir  # noqa: E402
from inr.train.sdf import SDFFitConfig, build_sdf_task  # noqa: E402
from scenes.shapes import resolve_shape  # noqa: E402

MESHES = ROOT.parent / "shared" / "data" / "meshes"
MESH_FILES = {"dragon": "dragon.obj", "bunny": "bunny_watertight.obj"}
FIELD_FOR = {"dragon": "hash", "bunny": "siren"}


def fit_one(shape: str, target_path: str, field: str, max_seconds: float, eval_resolution: int,
            extract_resolution: int, device: str, options: dict | None = None) -> dict:
    """One fit within `max_seconds` of training; `options` replace settings of the field's block."""
    cfg = SDFFitConfig(target=target_path, field=field, eval_resolution=eval_resolution)
    if options:
        setattr(cfg, field, dataclasses.replace(getattr(cfg, field), **options))
    cfg.train.max_seconds, cfg.train.steps = max_seconds, 1_000_000
    cfg.train.eval_every, cfg.train.checkpoint_every, cfg.train.device = 0, 0, device
    t = cfg.resolved_train()
    t0 = time.perf_counter()
    target = resolve_shape(target_path, sign_rays=cfg.sign_rays)
    task = build_sdf_task(target, cfg, t, resolve_device(t.device))
    prep = time.perf_counter() - t0
    print(f"sdf_fit: {shape} {field}: samples drawn in {prep:.1f} s; training for {max_seconds:g} s", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(task, RunDir.create(tmp, {"kind": "sdf"}), t, quiet=True)
        total = time.perf_counter() - t0
    print(f"sdf_fit: {shape} {field}: {result['step']} steps, evaluated in {total - result['seconds']:.1f} s", file=sys.stderr)
    t0 = time.perf_counter()
    _, faces = extract_mesh(task.field_fn, extract_resolution, device=task.device)
    extract = time.perf_counter() - t0
    return {"shape": shape, "field": field, "loss": cfg.resolved_loss().kind,
            "params": sum(p.numel() for p in task.model.parameters()), "steps": result["step"],
            "seconds": result["seconds"], "batch_size": t.batch_size, "sampling_seconds": round(prep, 2),
            "eval_seconds": round(total - result["seconds"], 2), "eval_resolution": eval_resolution,
            **{k: result[k] for k in ("chamfer_l1", "chamfer_l2", "normal_consistency", "fscore", "iou")},
            f"extract_{extract_resolution}_seconds": round(extract, 2), "extract_faces": len(faces)}


def parse_run_options(ap: argparse.ArgumentParser, eval_resolution: int) -> argparse.Namespace:
    """Add --eval-resolution, --threads and --device, parse, and apply the thread count."""
    ap.add_argument("--eval-resolution", type=int, default=eval_resolution)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def mesh_path(shape: str, meshes: Path) -> tuple[Path, str | None]:
    """The mesh file of a shared shape (dragon, bunny) in `meshes`, and why it is skipped if absent."""
    path = meshes / MESH_FILES[shape]
    return path, None if path.is_file() else f"{shape}: {path} is absent"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["dragon", "bunny", "composite"],
                    help="dragon, bunny (from ../shared/data/meshes) or built-in shapes")
    ap.add_argument("--fields", nargs="+", default=None,
                    help="fields for built-in shapes (default: hash siren); dragon uses hash, bunny siren")
    ap.add_argument("--hash-seconds", type=float, default=180.0)
    ap.add_argument("--siren-seconds", type=float, default=300.0)
    ap.add_argument("--extract-resolution", type=int, default=512)
    args = parse_run_options(ap, 512)
    runs, skipped = [], []
    for shape in args.shapes:
        if shape in MESH_FILES:
            path, absent = mesh_path(shape, MESHES)
            if absent:
                skipped.append(absent)
                continue
            jobs = [(str(path), FIELD_FOR[shape])]
        else:
            jobs = [(shape, f) for f in (args.fields or ["hash", "siren"])]
        for target, field in jobs:
            budget = args.hash_seconds if field == "hash" else args.siren_seconds
            runs.append(fit_one(shape, target, field, budget, args.eval_resolution, args.extract_resolution,
                                args.device))
            print(f"sdf_fit: {json.dumps(runs[-1])}", file=sys.stderr)
    print(json.dumps({"benchmark": "sdf_fit", "threads": torch.get_num_threads(), "runs": runs, "skipped": skipped}))


if __name__ == "__main__":
    main()
