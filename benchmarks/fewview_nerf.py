"""NeRF from a few views: a trained few-view generator (`inr train generator views`) on the held-out
scenes of its collection, zero shot and fine-tuned, against `inr fit nerf` on the same support views
and against the universal weights alone; generation time; lego_100 from 3 views (out of
distribution). Prints one JSON line:

    {"collection", "model", "scenes", "threads",
     "support": {"3": {"zero_shot": {"psnr", "ssim"}, "universal": {...}, "finetune_10_lr0.01": {...},
                       "finetune_100_lr0.01": {...}, "fit_100": {...}, "fit_1000": {...}}, ...},
     "generation_s": {"mean", "max"}, "generation_100px_3views_s", "write_s", "lego_100": {...}}

Every figure is the mean over the held-out scenes of the mean over each scene's test views
(white background). `fit_N` is `inr fit nerf`'s trainer on the generated run's support views
(one fit, evaluated at step 100 and at its end).

    python benchmarks/fewview_nerf.py --collection C --model RUN --supports 1 3 5 --fit-supports 3
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inr.generate.nerf_run import finetune  # noqa: E402
from inr.generate.views import generate_run, load_generator, pick_views  # noqa: E402
from inr.signals.radiance import background_color, load_for_training, load_radiance  # noqa: E402
from inr.signals.scene_collection import load_scene_collection  # noqa: E402
from inr.train.loop import train  # noqa: E402
from inr.train.nerf import NerfFitConfig, build_nerf_task, evaluate_views, load_renderer  # noqa: E402
from inr.train.rundir import RunDir  # noqa: E402

LEGO = ROOT.parent / "shared" / "data" / "lego_100"


def run_config(run: Path) -> NerfFitConfig:
    from inr.cli.options import build_dataclass

    return build_dataclass(NerfFitConfig, RunDir.open(run).read_config()["fit"])


def evaluate(run: Path, split: str = "test") -> dict:
    cfg = run_config(run)
    config = RunDir.open(run).read_config()
    renderer = load_renderer(RunDir(run), cfg, torch.device("cpu"))
    data = load_radiance(config["data"]["dataset"], split)
    r = evaluate_views(renderer, data, list(range(len(data))), background_color("white"), torch.device("cpu"))
    return {"psnr": r["psnr"], "ssim": r["ssim"]}


def generate(model, data, support: int, out: Path, held, universal: bool = False) -> tuple[Path, float]:
    run, seconds, _ = generate_run(model, data, pick_views(len(data), support), out, held, universal=universal)
    return run.path, seconds


def fit_baseline(views: Path, steps: tuple[int, ...], max_seconds: float | None) -> dict:
    """`inr fit nerf`'s trainer on a support-view dataset; test PSNR at each of `steps`."""
    cfg = NerfFitConfig(target=str(views))
    tr = cfg.resolved_train()
    tr.steps, tr.eval_every, tr.checkpoint_every, tr.max_seconds = max(steps), min(steps), 0, max_seconds
    train_data, held, _ = load_for_training(views)
    task = build_nerf_task(train_data, held, cfg, tr, torch.device("cpu"))
    task.cfg.eval_views = len(held)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(Path(tmp) / "run", {"kind": "benchmark"})
        train(task, run, tr, quiet=True)
        rows = [r for r in run.metrics() if "eval" in r]
    out = {}
    for s in steps:
        row = next((r for r in rows if r["step"] == s), None) or (rows[-1] if s == max(steps) else None)
        if row is not None:
            out[f"fit_{s}"] = {"psnr": row["eval"]["psnr"], "ssim": row["eval"]["ssim"], "step": row["step"],
                               "seconds": row["time"]}
    return out


def mean_of(rows: list[dict]) -> dict:
    keys = [k for k in rows[0] if isinstance(rows[0][k], (int, float))]
    return {k: round(statistics.fmean(r[k] for r in rows), 4) for k in keys} | {"n": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collection", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--scenes", type=int, default=None, help="held-out scenes to use (default: all)")
    ap.add_argument("--supports", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--finetune-supports", type=int, nargs="*", default=[3])
    ap.add_argument("--finetune-lrs", type=float, nargs="+", default=[1e-2, 1e-3])
    ap.add_argument("--finetune-scenes", type=int, default=None, help="scenes fine-tuned (default: --scenes)")
    ap.add_argument("--universal-supports", type=int, nargs="*", default=None,
                    help="support counts also scored with the universal weights alone (default: --supports)")
    ap.add_argument("--fit-supports", type=int, nargs="*", default=[3])
    ap.add_argument("--fit-scenes", type=int, default=None, help="scenes for the fit baselines (default: --scenes)")
    ap.add_argument("--fit-steps", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--fit-max-seconds", type=float, default=None)
    ap.add_argument("--lego", type=Path, default=LEGO, help="lego_100 (skipped when absent)")
    args = ap.parse_args()
    torch.manual_seed(0)
    with torch.no_grad():
        model, config = load_generator(args.model)
    from inr.backends import Backend

    coll = load_scene_collection(args.collection)
    scenes = coll.split("heldout")[: args.scenes]
    results: dict = {str(s): {} for s in args.supports}
    gen_s, write_s = [], []
    with Backend("torch").active(), tempfile.TemporaryDirectory() as tmp:
        for si, scene in enumerate(scenes):
            data = load_radiance(scene.path, "train")
            held = load_radiance(scene.path, "test")
            for support in args.supports:
                key = str(support)
                base = Path(tmp) / f"{scene.name}-{support}"
                t0 = time.perf_counter()
                run, seconds = generate(model, data, support, base, held)
                write_s.append(time.perf_counter() - t0 - seconds)
                gen_s.append(seconds)
                results[key].setdefault("zero_shot", []).append(evaluate(run))
                if args.universal_supports is None or support in args.universal_supports:
                    uni, _ = generate(model, data, support, Path(tmp) / f"{scene.name}-{support}-u", held,
                                      universal=True)
                    results[key].setdefault("universal", []).append(evaluate(uni))
                tune = support in args.finetune_supports and si < (args.finetune_scenes or len(scenes))
                for lr in args.finetune_lrs if tune else ():
                    tuned = Path(tmp) / f"{scene.name}-{support}-lr{lr}"
                    shutil.copytree(run, tuned)
                    cfg = run_config(tuned)
                    finetune(tuned, cfg, 10, device="cpu", quiet=True, lr=lr)
                    results[key].setdefault(f"finetune_10_lr{lr:g}", []).append(evaluate(tuned))
                    finetune(tuned, cfg, 90, device="cpu", quiet=True, seed=1, lr=lr)
                    results[key].setdefault(f"finetune_100_lr{lr:g}", []).append(evaluate(tuned))
                if support in args.fit_supports and si < (args.fit_scenes or len(scenes)):
                    for k, v in fit_baseline(run / "views", tuple(args.fit_steps), args.fit_max_seconds).items():
                        results[key].setdefault(k, []).append(v)
                print(f"{scene.name} support {support}: " + json.dumps({k: round(v[-1]["psnr"], 2)
                                                                          for k, v in results[key].items()}),
                      file=sys.stderr, flush=True)
        lego = None
        if args.lego.is_dir():
            data = load_radiance(args.lego, "train")
            val = load_radiance(args.lego, "val")
            times = []
            for rep in range(3):  # 3 views at 100x100: the generation-time case
                run, seconds = generate(model, data, 3, Path(tmp) / f"lego-{rep}", val)
                times.append(seconds)
            lego = {"zero_shot": evaluate(run), "generation_s": round(min(times), 4),
                    "universal": evaluate(generate(model, data, 3, Path(tmp) / "lego-u", val, universal=True)[0])}
    out = {"collection": str(coll.root), "model": str(Path(args.model).resolve()), "scenes": len(scenes),
           "image_size": model.cfg.image_size, "threads": torch.get_num_threads(),
           "train_steps": next((r["step"] for r in reversed(list(RunDir(args.model).metrics())) if r.get("final")), None),
           "support": {k: {m: mean_of(v) for m, v in d.items()} for k, d in results.items()},
           "generation_s": {"mean": round(statistics.fmean(gen_s), 4), "max": round(max(gen_s), 4)},
           "write_s": round(statistics.fmean(write_s), 4),
           "lego_100": lego}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
