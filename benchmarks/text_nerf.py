"""Text-to-NeRF (issue 18): generator quality on training and held-out captions (zero shot), fine-tuning
from generated weights against NeRFs trained from scratch, generation and training time, and the
paper's two ablations (a static hypernetwork; no distillation). Prints one JSON line.

    python benchmarks/text_nerf.py --count 20 --res 32 --steps 1000 --out /tmp/text_nerf_bench

Everything lands in --out and is reused when present (the collection, the teachers, each trained
generator), so a rerun only measures what is missing. PSNR/SSIM: zero shot on each scene's test
ring (white background, the normal occupancy-grid renderer of a generated run); fine-tuning and
from-scratch on the held-out scenes' val views (the trainer's evaluation), at the same architecture
(the generator's grid and MLPs) and the same samples per step.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inr.cli.main import main as inr_main  # noqa: E402
from inr.cli.options import build_dataclass  # noqa: E402
from inr.cli.text_commands import EMBEDDINGS, add_train_text_parser, field_flags, load_generator  # noqa: E402
from inr.generate.text_encoder import EmbeddingCache, batch_tokens  # noqa: E402
from inr.signals.radiance import background_color, load_radiance  # noqa: E402
from inr.signals.scene_collection import load_scene_collection  # noqa: E402
from inr.train.nerf import NerfFitConfig, build_renderer, evaluate_views  # noqa: E402
from inr.train.rundir import RunDir  # noqa: E402

VARIANTS = {"dynamic": [], "static": ["--no-generator.hyper.dynamic"], "images_only": ["--no-distill"]}


def cli(argv: list[str]) -> None:
    with contextlib.redirect_stdout(sys.stderr):  # stdout: the one JSON line
        if inr_main(argv) != 0:
            raise SystemExit(f"inr {' '.join(argv)} failed")


def train_generator(argv: list[str]) -> None:
    """`inr train generator text ARGV` (through its own parser: the training stage runs without the
    generate commands)."""
    parser = argparse.ArgumentParser(prog="inr train generator")
    add_train_text_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):
        args.handler(args)


def train_variant(name: str, args, coll: Path, teachers: Path | None) -> Path:
    out = args.out / f"gen_{name}"
    if (out / "model.safetensors").is_file():
        return out
    argv = ["text", str(coll), "--out", str(out), "--steps", str(args.steps), "--rays-per-scene",
            str(args.rays_per_scene), "--samples", str(args.samples),
            "--teacher-steps", str(args.teacher_steps), "--eval-every", "0", "--checkpoint-every", "100", "--seed", str(args.seed), "--quiet",
            *VARIANTS[name]]
    if args.max_seconds:
        argv += ["--max-seconds", str(args.max_seconds)]
    if teachers is not None and name != "images_only":
        argv += ["--teachers", str(teachers)]
    if RunDir.is_run(out):
        argv.append("--resume")
    train_generator(argv)
    return out


def final_row(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return next(r for r in reversed(rows) if r.get("final"))


def zero_shot(gen_run: Path, scenes, device) -> dict:
    """Each scene's caption -> generated field -> occupancy grid -> its test views: PSNR/SSIM."""
    from inr.generate.nerf_run import occupancy_from_density

    run, config, cfg, model = load_generator(str(gen_run), device)
    cache = EmbeddingCache(run.path / EMBEDDINGS)
    fit = NerfFitConfig()
    fit.field = dataclasses.replace(cfg.generator.field)
    white = background_color("white", device)
    rows, times = [], []
    for s in scenes:
        test = load_radiance(s.path, "test")
        t0 = time.perf_counter()
        tokens, mask = batch_tokens(cache.get([s.caption]), device)
        field = model.materialize(tokens, mask)
        renderer = build_renderer(field, test.aabb.to(device), test.aabb_scale, fit)
        occupancy_from_density(field, renderer.grid, renderer.step_size)
        times.append(time.perf_counter() - t0)
        ev = evaluate_views(renderer, test, list(range(len(test))), white, device)
        rows.append({"name": s.name, "caption": s.caption, "psnr": round(ev["psnr"], 3), "ssim": round(ev["ssim"], 4)})
    mean = lambda k: round(sum(r[k] for r in rows) / max(len(rows), 1), 4)  # noqa: E731
    return {"psnr": mean("psnr"), "ssim": mean("ssim"), "generation_seconds": round(sum(times) / len(times), 4),
            "scenes": rows}


def finetune_vs_scratch(gen_run: Path, scenes, args, device) -> dict:
    """Per held-out scene: generated weights fine-tuned for each --finetune step count, and a NeRF of
    the same architecture from scratch; PSNR on the val views."""
    from inr.generate.nerf_run import finetune

    _, _, cfg, _ = load_generator(str(gen_run), device)
    out = {"finetune": {}, "scratch": {}}
    for s in scenes:
        scratch_fit(s, cfg, args)
        for steps in args.finetune_steps:
            run = args.out / "finetune" / f"{s.name}_{steps}"
            if not (run / "finetuned.json").is_file():
                if run.exists():
                    shutil.rmtree(run)
                cli(["generate", "nerf", "--text", s.caption, "--model", str(gen_run), "-o", str(run),
                     "--scene", str(s.path)])
                fit = build_dataclass(NerfFitConfig, RunDir(run).read_config()["fit"])
                fit.train.batch_size = args.batch_size
                with contextlib.redirect_stdout(sys.stderr):
                    result = finetune(run, fit, steps, device=str(device), quiet=True, seed=args.seed)
                (run / "finetuned.json").write_text(json.dumps(result))
            result = json.loads((run / "finetuned.json").read_text())
            out["finetune"].setdefault(str(steps), []).append(round(result["psnr"], 3))
        scratch = args.out / "scratch" / s.name
        rows = [json.loads(line) for line in (scratch / "metrics.jsonl").read_text().splitlines() if line.strip()]
        evals = {r["step"]: r["eval"]["psnr"] for r in rows if "eval" in r}
        for steps in args.scratch_steps:
            out["scratch"].setdefault(str(steps), []).append(round(evals[steps], 3))
    mean = lambda v: round(sum(v) / len(v), 3)  # noqa: E731
    return {"finetune_psnr": {k: mean(v) for k, v in out["finetune"].items()},
            "scratch_psnr": {k: mean(v) for k, v in out["scratch"].items()}, "per_scene": out}


def scratch_fit(scene, cfg, args) -> None:
    """A NeRF of the generator's architecture fitted from scratch to `scene`, evaluated on the way."""
    scratch = args.out / "scratch" / scene.name
    if not (scratch / "model.safetensors").is_file():
        cli(["fit", "nerf", str(scene.path), "--out", str(scratch), "--steps", str(max(args.scratch_steps)),
             "--batch-size", str(args.batch_size), "--eval-every", str(min(args.scratch_steps)),
             "--seed", str(args.seed), "--occupancy.resolution", "32", "--quiet", *field_flags(cfg),
             *(["--resume"] if RunDir.is_run(scratch) else [])])


def training_seconds(gen_run: Path) -> dict:
    gen = final_row(gen_run)["time"]
    paths = json.loads((gen_run / "config.json").read_text()).get("teachers") or {}
    teachers = sum(final_row(Path(p))["time"] for p in paths.values())
    return {"generator": round(gen, 1), "teachers": round(teachers, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/text_nerf_bench"))
    p.add_argument("--collection", type=Path, default=None, help="an existing collection (default: make one in --out)")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--views", type=int, default=20)
    p.add_argument("--test-views", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=1000, help="generator steps (every variant)")
    p.add_argument("--max-seconds", type=float, default=None, help="generator training seconds (every variant)")
    p.add_argument("--teacher-steps", type=int, default=300)
    p.add_argument("--teachers", type=Path, default=None, help="a folder of teacher runs to reuse")
    p.add_argument("--variants", default="dynamic,static,images_only")
    p.add_argument("--ft-scenes", type=int, default=2, help="held-out scenes for fine-tuning vs scratch")
    p.add_argument("--finetune-steps", type=int, nargs="+", default=[10, 100])
    p.add_argument("--scratch-steps", type=int, nargs="+", default=[100, 500, 1000])
    p.add_argument("--batch-size", type=int, default=8192, help="samples per fine-tuning / scratch step")
    p.add_argument("--rays-per-scene", type=int, default=128)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--train-eval-scenes", type=int, default=1000, help="training captions evaluated (the first N)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--train-only", action="store_true",
                   help="only train the generators and the from-scratch NeRFs (no generation needed)")
    args = p.parse_args()
    from scenes.collection import make_collection

    torch.set_num_threads(max(1, torch.get_num_threads()))
    device = torch.device(args.device)
    coll_dir = args.collection or make_collection(args.out / "collection", args.count, views=args.views, res=args.res,
                                                  seed=args.seed, test_views=args.test_views)
    coll = load_scene_collection(coll_dir)
    train, held = coll.split("train"), coll.split("heldout")
    result = {"scale": {"train_scenes": len(train), "heldout_scenes": len(held),
                        "train_captions_evaluated": min(len(train), args.train_eval_scenes), "res": args.res, "views": args.views,
                        "generator_steps": args.steps, "teacher_steps": args.teacher_steps}, "variants": {}}
    teachers = args.teachers
    runs = {}
    for name in filter(None, args.variants.split(",")):
        runs[name] = train_variant(name, args, coll_dir, teachers)
        if name == "dynamic" and teachers is None:
            teachers = runs[name] / "teachers"
    if args.train_only:
        from inr.train.generator_text import TextTrainConfig

        for s in held[: args.ft_scenes]:
            scratch_fit(s, TextTrainConfig(), args)
        print(json.dumps({"trained": {k: str(v) for k, v in runs.items()}}))
        return
    for name, run in runs.items():
        v = {"train_captions": zero_shot(run, train[: args.train_eval_scenes], device), "heldout_captions": zero_shot(run, held, device),
             "training_seconds": training_seconds(run)}
        for k in ("train_captions", "heldout_captions"):
            v[k + "_per_scene"] = v[k].pop("scenes")
        result["variants"][name] = v
    if "dynamic" in result["variants"] and args.ft_scenes > 0:
        result["finetune_vs_scratch"] = finetune_vs_scratch(args.out / "gen_dynamic", held[: args.ft_scenes], args, device)
    d = result["variants"].get("dynamic")
    if d:
        result["summary"] = {
            "heldout_zero_shot_psnr": d["heldout_captions"]["psnr"], "train_caption_psnr": d["train_captions"]["psnr"],
            "static_heldout_psnr": result["variants"].get("static", {}).get("heldout_captions", {}).get("psnr"),
            "images_only_heldout_psnr": result["variants"].get("images_only", {}).get("heldout_captions", {}).get("psnr"),
            "generation_seconds": d["heldout_captions"]["generation_seconds"],
            "training_seconds": d["training_seconds"]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
