"""Plain hypernetwork vs MIP on the built-in texture collection; one JSON line.

    python benchmarks/hyper_mip.py [--collection textures] [--steps 1000] [--seeds 0 1 2] [--threads 2]

For each seed, three hypernetworks generate every weight of the same SIREN (3 x 64, w0 30) from
an auto-decoded latent, with the same data order and Adam; only the hypernetwork differs:

- plain: raw latent input, nn.Linear's default initialisation (the MIP paper's baseline);
- siren: the SIREN paper's hypernetwork initialisation (last layer Kaiming / 100), for comparison;
- mip:   MIP (cos/sin input encoding, theta_0 + h(z), small head).

Each arm trains with `inr fit collection`'s defaults for it: cosine decay to 0.1x over the run;
without MIP 1e-4 (latents 1e-3); with MIP body and head 2e-3, theta_0 1e-4, latents 1e-2.
The collection's mean PSNR is evaluated every `--eval-every` steps. Reported per arm: final PSNR
and its spread over seeds, PSNR at fixed steps, steps to reach `--target-psnr`. Top-level:

- mip_steps_ratio: MIP's steps to reach the plain run's final PSNR over the plain run's steps
  (median over seeds); mip_steps_ratio_vs_siren_init the same against the SIREN-paper init
  (null when MIP never reaches it);
- step_seconds for B = 1, 8, 64 signals per step, and b64_speedup_vs_64_separate_steps
  (64 x the B = 1 step time over the B = 64 step time: what the batched MLP op buys);
- new_image: a trained MIP collection (seed 0) fits unseen textures by optimising only their
  latent for 100 steps vs the same SIREN trained from scratch for 1000 (and 100) steps (mean PSNR).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inr.cli.builtin_collections import image_collection  # noqa: E402
from inr.fields import SirenField  # noqa: E402
from inr.hyper import HyperConfig  # noqa: E402
from inr.signals.image import pixel_coords  # noqa: E402
from inr.signals.metrics import psnr  # noqa: E402
from inr.train.loop import lr_factor  # noqa: E402
from inr.train.collection import (PRESETS, CollectionFitConfig, ImageCollectionTask, build_collection_model,  # noqa: E402
                                  fit_new_image)
from scenes.textures import procedural_texture  # noqa: E402

ARMS = ("plain", "siren", "mip")


def make_task(images, preset: str, seed: int, batch: int = 16):
    cfg = CollectionFitConfig(hyper=HyperConfig(**PRESETS[preset]), signals_per_batch=batch)
    train = cfg.resolved_train()
    train.seed = seed
    torch.manual_seed(seed)
    model = build_collection_model(cfg, images.shape[0], images.shape[-1], torch.Generator().manual_seed(seed))
    task = ImageCollectionTask(images, model, cfg, train, torch.device("cpu"))
    task.train = train
    opt = torch.optim.Adam([{**g, "base_lr": g["lr"]} for g in task.param_groups(train.lr)])
    return task, opt


def step(task, opt, i: int, steps: int | None = None) -> None:
    """One optimisation step, with the collection's lr schedule (as `inr fit collection` runs it)."""
    if steps:
        factor = lr_factor(task.train, i / steps)
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * factor
    opt.zero_grad(set_to_none=True)
    loss, _ = task.loss(i)
    loss.backward()
    opt.step()


def train_arm(images, preset: str, seed: int, steps: int, eval_every: int):
    task, opt = make_task(images, preset, seed)
    curve = []
    t0 = time.perf_counter()
    for i in range(steps):
        step(task, opt, i, steps)
        if (i + 1) % eval_every == 0 or i + 1 == steps:
            with torch.no_grad():
                curve.append((i + 1, round(task.evaluate()["psnr"], 3)))
    return task, curve, time.perf_counter() - t0


def first_step_at(curve, level: float):
    return next((s for s, p in curve if p >= level), None)


def step_seconds(images, b: int, repeats: int = 20, rounds: int = 3) -> float:
    """Seconds per MIP training step with `b` signals per step: the best of `rounds` timings of
    `repeats` steps (the first steps of a process pay for thread pools and allocations)."""
    task, opt = make_task(images, "mip", 0, batch=b)
    for i in range(3):
        step(task, opt, i)
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for i in range(repeats):
            step(task, opt, i)
        best = min(best, (time.perf_counter() - t0) / repeats)
    return best


def scratch_psnr(image: torch.Tensor, steps: int, seed: int, cfg: CollectionFitConfig) -> float:
    """The collection's SIREN trained alone on `image`, full batch, Adam at SIREN's lr 1e-4."""
    field = SirenField(2, image.shape[-1], cfg.siren, generator=torch.Generator().manual_seed(seed))
    h, w, c = image.shape
    x, y = pixel_coords(h, w), image.reshape(-1, c)
    opt = torch.optim.Adam(field.parameters(), lr=1e-4)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        torch.mean((field(x) - y) ** 2).backward()
        opt.step()
    with torch.no_grad():
        return float(psnr(field(x).clamp(0, 1).reshape(h, w, c), image))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", default="textures")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--target-psnr", type=float, default=30.0)
    ap.add_argument("--new-images", type=int, default=4, help="unseen textures for the new-image comparison")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    images = image_collection(args.collection).images

    arms, trained_mip = {}, None
    for arm in ARMS:
        runs = []
        for seed in args.seeds:
            task, curve, seconds = train_arm(images, arm, seed, args.steps, args.eval_every)
            runs.append({"seed": seed, "final_psnr": curve[-1][1], "seconds": round(seconds, 1), "curve": curve,
                         "steps_to_target": first_step_at(curve, args.target_psnr)})
            if arm == "mip" and seed == args.seeds[0]:
                trained_mip = task
        finals = [r["final_psnr"] for r in runs]
        at = {str(s): [dict(r["curve"]).get(s) for r in runs] for s in (100, 250, 500, args.steps)}
        arms[arm] = {"final_psnr_mean": round(statistics.mean(finals), 3),
                     "final_psnr_spread": round(max(finals) - min(finals), 3), "psnr_at_steps": at,
                     "steps_to_target": [r["steps_to_target"] for r in runs], "runs": runs}

    def ratios(baseline: str):
        out = []
        for mip_run, base_run in zip(arms["mip"]["runs"], arms[baseline]["runs"]):
            reached = first_step_at(mip_run["curve"], base_run["final_psnr"])
            out.append(None if reached is None else reached / args.steps)
        return out

    def median_or_none(values):
        return statistics.median(values) if all(v is not None for v in values) else None

    timing = {str(b): round(step_seconds(images, b), 5) for b in (1, 8, 64)}

    unseen = [procedural_texture(i, images.shape[1], seed=1) for i in range(args.new_images)]
    cfg = trained_mip.cfg
    latent, scratch, scratch_short = [], [], []
    for i, image in enumerate(unseen):
        fit = fit_new_image(trained_mip.model, image, steps=100, lr=1e-2, seed=i)
        with torch.no_grad():
            pred = fit.field(pixel_coords(*image.shape[:2])).clamp(0, 1).reshape(image.shape)
        latent.append(float(psnr(pred, image)))
        scratch.append(scratch_psnr(image, 1000, i, cfg))
        scratch_short.append(scratch_psnr(image, 100, i, cfg))

    print(json.dumps({
        "collection": args.collection, "members": images.shape[0], "size": list(images.shape[1:]), "steps": args.steps,
        "seeds": args.seeds, "threads": args.threads, "target_psnr": args.target_psnr,
        "mip_steps_ratio": median_or_none(ratios("plain")), "mip_steps_ratio_per_seed": ratios("plain"),
        "mip_steps_ratio_vs_siren_init": median_or_none(ratios("siren")),
        "mip_steps_ratio_vs_siren_init_per_seed": ratios("siren"),
        "step_seconds": timing, "b64_speedup_vs_64_separate_steps": round(64 * timing["1"] / timing["64"], 2),
        "new_image": {"textures": args.new_images, "latent_steps": 100, "scratch_steps": 1000,
                      "latent_psnr_100": round(statistics.mean(latent), 3),
                      "scratch_psnr_1000": round(statistics.mean(scratch), 3),
                      "scratch_psnr_100": round(statistics.mean(scratch_short), 3),
                      "latent_per_image": [round(v, 2) for v in latent], "scratch_per_image": [round(v, 2) for v in scratch]},
        "arms": arms,
    }))


if __name__ == "__main__":
    main()
