"""A generated radiance field as a normal nerf run directory: config.json (kind "nerf", the same
sections `inr fit nerf` writes), model.safetensors, the occupancy grid computed from the generated
density, metrics.jsonl and a preview; so `inr render nerf`, `inr eval`, `inr view`, `inr info` and
`inr fit nerf --resume` take it as they take a fitted run. `finetune` continues it with the normal
NeRF trainer (`inr.train.nerf`) on its dataset's training views.

The run is built in a hidden folder beside `out` and renamed into place at the end: a failure
leaves nothing behind.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from inr.errors import InputError
from inr.fields.nerf import NerfField
from inr.render.occupancy import OccupancyGrid
from inr.signals.radiance import load_for_training
from inr.train.load import load
from inr.train.loop import resolve_device, train
from inr.train.nerf import (
    GRID_FILE,
    NerfFitConfig,
    NerfTask,
    build_renderer,
    default_grid_resolution,
    save_grid,
)
from inr.train.rundir import RunDir, load_tensors

GRID_PASSES = 2  # density probes per occupancy cell (a random point each): thin parts are not missed


def _data_section(dataset: Path, train_data, splits: list[str], source: str) -> dict:
    return {"source": source, "dataset": str(dataset), "splits": splits, "height": train_data.height,
            "width": train_data.width, "train_views": len(train_data), "aabb": train_data.aabb.tolist(),
            "aabb_scale": train_data.aabb_scale}


@torch.no_grad()
def occupancy_from_density(field: NerfField, grid: OccupancyGrid, step_size: float) -> OccupancyGrid:
    """Every cell's occupancy from the field's density at GRID_PASSES random points in it (the max)."""
    for _ in range(GRID_PASSES):
        grid.update(field.density, 0, step_size, fraction=1.0)
    return grid


def _stage(out: Path) -> Path:
    if RunDir.is_run(out):
        raise InputError(f"{out}: run directory exists; choose another -o")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: exists and is not an empty directory; choose another -o")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    except OSError as e:
        raise InputError(f"{out}: cannot create the run directory ({e.strerror or e})") from None


def _publish(tmp: Path, out: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for path in [tmp, *tmp.rglob("*")]:  # mkdtemp's folder is private; a run is not
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
    if out.is_dir():
        out.rmdir()  # empty (checked by _stage): the rename needs it gone
    os.rename(tmp, out)


def write_nerf_run(out: str | os.PathLike, field: NerfField, *, dataset: str | os.PathLike | None = None,
                   stage_dataset: Callable[[Path], str] | None = None, generated: dict | None = None,
                   fit: NerfFitConfig | None = None, device: str | torch.device = "cpu",
                   metrics: dict | None = None) -> RunDir:
    """Write `field` (a NerfField with its generated weights materialised) as the nerf run `out`.

    The run needs a dataset for its cameras (render, eval, fine-tuning): `dataset`, an existing
    Blender / nerfstudio dataset, or `stage_dataset(run_folder)`, which writes one inside the run and
    returns its path relative to the run (the few-view generator writes the support views there).
    `generated` is stored under config.json's "generated" key (what made the field); `metrics`
    (generation time, ...) becomes the run's first metrics row. Returns the published run.
    """
    if (dataset is None) == (stage_dataset is None):
        raise ValueError("give exactly one of dataset and stage_dataset")
    out = Path(out).expanduser().absolute()
    tmp = _stage(out)
    try:
        if stage_dataset is not None:
            rel = stage_dataset(tmp)
            local, final = tmp / rel, out / rel
        else:
            local = final = Path(dataset).resolve()
        train_data, val_data, splits = load_for_training(local)
        cfg = dataclasses.replace(fit) if fit is not None else NerfFitConfig()
        cfg.target, cfg.field = str(final), dataclasses.replace(field.cfg)
        device = torch.device(device)
        if cfg.occupancy.resolution is None:
            cfg.occupancy.resolution = default_grid_resolution(device)
        grid_aabb = OccupancyGrid(train_data.aabb, 1, OccupancyGrid.cascades_for(train_data.aabb_scale)).outer_aabb
        if not torch.allclose(torch.tensor(field.cfg.aabb, dtype=torch.float32), grid_aabb, atol=1e-5):
            raise InputError(f"{final}: the dataset's scene box {grid_aabb.tolist()} differs from the generated "
                             f"field's {list(field.cfg.aabb)}")
        cfg.train = cfg.resolved_train()
        field = field.to(device).eval()
        renderer = build_renderer(field, train_data.aabb.to(device), train_data.aabb_scale, cfg)
        occupancy_from_density(field, renderer.grid, renderer.step_size)
        run = RunDir.create(tmp, {"kind": "nerf", "fit": dataclasses.asdict(cfg), "field": field.config(),
                                  "data": _data_section(final, train_data, splits, str(final)),
                                  "generated": generated or {}})
        run.save_model(field)
        save_grid(run, renderer.grid)
        run.append_metrics({"step": 0, "time": 0.0, "generated": True, **(metrics or {})})
        _write_preview(run, renderer, val_data or train_data, cfg, device)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return RunDir(out)


def _write_preview(run: RunDir, renderer, data, cfg: NerfFitConfig, device) -> None:
    from inr.signals.image import save_image
    from inr.signals.radiance import background_color

    bg = background_color(cfg.eval_background, device)
    save_image(run.path / "preview.png", renderer.render_view(data.cameras.to(device), 0, bg)["rgb"].cpu())


def finetune(run_dir: str | os.PathLike, cfg: NerfFitConfig, steps: int, *, max_seconds: float | None = None,
             device: str = "auto", quiet: bool = False, seed: int = 0, lr: float | None = None) -> dict:
    """Fine-tune the nerf run `run_dir` (whose "fit" settings are `cfg`) for `steps` steps on its
    dataset's training views with the normal NeRF trainer, starting from its weights and occupancy
    grid (at learning rate `lr`, default the run's: `inr fit nerf`'s 1e-2); saves the model and grid
    back and returns the trainer's result (the final evaluation)."""
    if steps < 1:
        raise InputError(f"--finetune must be >= 1 steps, got {steps}")
    run = RunDir.open(run_dir)
    config = run.read_config()
    if config.get("kind") != "nerf":
        raise InputError(f"{run_dir}: not a nerf run (kind {config.get('kind')!r})")
    dev = resolve_device(device)
    train_data, val_data, _ = load_for_training(config["data"]["dataset"], cfg.downscale)
    base = cfg.resolved_train()
    train_cfg = dataclasses.replace(base, steps=int(steps), max_seconds=max_seconds, seed=seed, lr=lr or base.lr,
                                    device=str(dev), eval_every=0, checkpoint_every=0)
    task = NerfTask(train_data, val_data, load(run.path, dev), cfg, train_cfg.batch_size, dev, seed=seed)
    density = load_tensors(run.path / GRID_FILE)[0]["density"]
    task.grid.density.copy_(density.to(dev))
    task.grid.refresh()
    # The generated grid is already right: skip the trainer's warm-up refreshes (a share of the
    # cells each step), keep its periodic ones.
    task.cfg = dataclasses.replace(cfg, occupancy=dataclasses.replace(cfg.occupancy, warmup=0))
    for p in task.model.parameters():
        p.requires_grad_(True)
    t0 = time.perf_counter()
    with train_cfg.hot_ops.active():
        result = train(task, run, train_cfg, resume=False, quiet=quiet)
        run.save_model(task.model)
        save_grid(run, task.grid)
        task.write_preview(run.path / "preview.png")
    config["finetuned_steps"] = int(config.get("finetuned_steps", 0)) + result["step"]
    run.write_config({k: v for k, v in config.items() if k not in ("format", "version")})
    return {**result, "wall_seconds": round(time.perf_counter() - t0, 3)}
