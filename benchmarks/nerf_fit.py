"""NeRF fitting on the CPU (or a GPU): validation PSNR/SSIM reached within fixed time budgets.

Each budget is its own run with `--max-seconds` set to it (the learning-rate schedule follows the
clock), on ../shared/data/lego_100 (skipped when absent) and a generated scene. Prints one JSON line:

    {"device": ..., "threads": ..., "runs": [{"scene", "budget_s", "steps", "seconds", "samples_per_s",
      "samples_per_ray_train", "samples_per_ray_eval", "occupancy", "psnr", "ssim", "render_100px_s"}, ...]}

    python benchmarks/nerf_fit.py --budgets 60 300 --scenes lego_100 blocks [--encodings hash hcinr]

`--encodings` compares position encoders at each budget (`--field.encoding`: the hash grid by
default; hcinr is HC-INR's warp with `inr fit nerf`'s --hcinr.* defaults); each run reports its
encoding and parameter count.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inr.signals.radiance import background_color, load_for_training  # noqa: E402
from inr.train.loop import resolve_device, train  # noqa: E402
from inr.train.nerf import NerfFitConfig, build_nerf_task  # noqa: E402
from inr.train.rundir import RunDir  # noqa: E402

LEGO = ROOT.parent / "shared" / "data" / "lego_100"


def dataset(name: str, lego: Path = LEGO) -> Path | None:
    if name == "lego_100":
        return lego if lego.is_dir() else None
    from scenes.multiview import multiview_scene

    return multiview_scene(name)


def one_run(path: Path, budget: float, device: str, encoding: str = "hash") -> dict:
    cfg = NerfFitConfig(target=str(path))
    cfg.field.encoding = encoding
    tr = cfg.resolved_train()
    tr.max_seconds, tr.steps, tr.eval_every, tr.checkpoint_every, tr.device = budget, 10**9, 0, 0, device
    train_data, val, _ = load_for_training(path, cfg.downscale)
    task = build_nerf_task(train_data, val, cfg, tr, resolve_device(device))
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(Path(tmp) / "run", {"kind": "benchmark"})
        result = train(task, run, tr, quiet=True)
        rows = [r for r in run.metrics() if "samples_per_ray" in r and "loss" in r]
    cams = (val or train_data).cameras.to(task.device)
    t0 = time.perf_counter()
    task.renderer.render_view(cams, 0, background_color("white", task.device))
    render_s = time.perf_counter() - t0
    return {"encoding": encoding, "params": sum(p.numel() for p in task.model.parameters()),
            "steps": result["step"], "seconds": result["seconds"],
            "samples_per_s": round(task.samples_seen / max(result["seconds"], 1e-9)),
            "samples_per_ray_train": round(rows[-1]["samples_per_ray"], 1) if rows else None,
            "samples_per_ray_eval": round(result["samples_per_ray"], 1), "occupancy": round(task.grid.occupancy(), 4),
            "psnr": round(result["psnr"], 3), "ssim": round(result["ssim"], 4),
            "render_s": round(render_s, 3), "render_size": [cams.height, cams.width]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--budgets", type=float, nargs="+", default=[60.0, 300.0], help="training seconds per run")
    p.add_argument("--scenes", nargs="+", default=["lego_100", "blocks"], help="lego_100 and/or built-in scenes")
    p.add_argument("--lego", type=Path, default=LEGO, help="the lego_100 folder (default: ../shared/data/lego_100)")
    p.add_argument("--encodings", nargs="+", default=["hash"], help="position encoders: hash, hcinr, frequency, siren")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    runs = []
    for name in args.scenes:
        path = dataset(name, args.lego)
        if path is None:
            runs.append({"scene": name, "skipped": "dataset not found"})
            continue
        for budget in args.budgets:
            for encoding in args.encodings:
                runs.append({"scene": name, "budget_s": budget, **one_run(path, budget, args.device, encoding)})
            print(json.dumps(runs[-1]), file=sys.stderr)
    print(json.dumps({"device": str(resolve_device(args.device)), "threads": torch.get_num_threads(), "runs": runs}))


if __name__ == "__main__":
    main()
