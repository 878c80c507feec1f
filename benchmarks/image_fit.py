"""Fit the 512x512 camera image with each field kind at its default settings; one JSON line.

    python benchmarks/image_fit.py [--max-seconds 60] [--fields hash siren fourier] [--threads 2]
                                   [--device auto] [--backends auto torch]

Each field trains for its default number of steps or --max-seconds of training, whichever comes
first (the same clock as `inr fit image --max-seconds`), then is evaluated on the full image.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr.train.image import ImageFitConfig, build_image_task  # noqa: E402
from inr.train.loop import resolve_device, train  # noqa: E402
from inr.train.rundir import RunDir  # noqa: E402
from scenes import resolve_image  # noqa: E402


def fit_one(image: torch.Tensor, field: str, max_seconds: float | None, steps: int | None,
            device: str = "auto", backend: str = "auto") -> dict:
    cfg = ImageFitConfig(field=field)
    cfg.train.device, cfg.train.backend = device, backend
    cfg.train.max_seconds = max_seconds
    cfg.train.steps = steps
    cfg.train.eval_every = 0  # only the final evaluation: the clock measures training alone
    cfg.train.checkpoint_every = 0
    t = cfg.resolved_train()
    task = build_image_task(image, cfg, t, resolve_device(t.device))
    with tempfile.TemporaryDirectory() as tmp:
        result = train(task, RunDir.create(tmp, {"kind": "image"}), t, quiet=True)
    samples = result["step"] * task.batch_size
    return {"field": field, "device": str(task.device), "backend": backend, "params": sum(p.numel() for p in task.model.parameters()), "steps": result["step"],
            "seconds": result["seconds"], "batch_size": task.batch_size,
            "samples_per_s": round(samples / max(result["seconds"], 1e-9)),
            "psnr": round(result["psnr"], 3), "ssim": round(result["ssim"], 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="camera", help="image path or built-in scene")
    ap.add_argument("--fields", nargs="+", default=["hash", "siren", "fourier"])
    ap.add_argument("--max-seconds", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=None, help="override every field's default step count")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--backends", nargs="+", default=["auto"], help="compare backends in one run (auto torch cuda)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    image = resolve_image(args.image)
    results = [fit_one(image, f, args.max_seconds, args.steps, args.device, b) for f in args.fields for b in args.backends]
    print(json.dumps({"benchmark": "image_fit", "image": args.image, "size": list(image.shape[:2]),
                      "threads": torch.get_num_threads(), "max_seconds": args.max_seconds, "results": results}))


if __name__ == "__main__":
    main()
