"""`inr train generator text` and `inr generate nerf --text`: the text-to-NeRF generator (HyperFields).

Training fits (or reuses) one teacher per training scene of a collection with `inr fit nerf`, then
distils the teachers and the images into one generator run (kind "text-generator"). Generation
writes a normal nerf run (`inr.generate.nerf_run`) from a caption.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

from inr.errors import InputError
from inr.train import distributed
from inr.train.rundir import RunDir

from .fitting import add_fit_options, announce, fit_settings, processes, shared_run, train_run

KIND = "text-generator"
EMBEDDINGS = "text_embeddings.safetensors"
TOP_LEVEL = ("target", "teachers", "rays_per_scene", "samples", "distill", "distill_views", "teacher_steps",
             "teacher_batch")


def add_train_text_parser(subparsers) -> None:
    from inr.train.generator_text import TextTrainConfig

    p = subparsers.add_parser("text", help="train a text-to-NeRF generator (HyperFields) on a scene collection",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("target", metavar="COLLECTION_DIR", help="a scene collection (`inr scenes make collection`)")
    p.add_argument("--teachers", default=argparse.SUPPRESS, metavar="auto|RUNS",
                   help="auto: fit one teacher per training scene with `inr fit nerf` into OUT/teachers (reused "
                        "when there); or a folder holding one nerf run per training scene, named as the scene "
                        "(default: auto)")
    p.add_argument("--teacher-steps", dest="teacher_steps", type=int, default=argparse.SUPPRESS,
                   help="steps of each auto teacher (default: 500)")
    p.add_argument("--teacher-batch", dest="teacher_batch", type=int, default=argparse.SUPPRESS,
                   help="samples per step of each auto teacher (default: 8192)")
    p.add_argument("--rays-per-scene", dest="rays_per_scene", type=int, default=argparse.SUPPRESS,
                   help="rays per scene per step (default: 256); --batch-size is the scenes per step (default: 4)")
    p.add_argument("--samples", type=int, default=argparse.SUPPRESS, help="samples per ray (default: 64)")
    p.add_argument("--no-distill", dest="distill", action="store_const", const=False, default=argparse.SUPPRESS,
                   help="train on the images only (the paper's ablation; no teachers)")
    p.add_argument("--distill-views", dest="distill_views", type=int, default=argparse.SUPPRESS,
                   help="teacher-only orbit views per scene (default: 16)")
    add_fit_options(p, "runs/<collection>-text", TextTrainConfig(), ("generator",))
    p.set_defaults(handler=train_text_command)


def _check(cfg) -> None:
    for name in ("rays_per_scene", "samples", "teacher_steps", "teacher_batch", "eval_views"):
        if getattr(cfg, name) < 1:
            raise InputError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    if cfg.distill_views < 0:
        raise InputError(f"distill_views must be >= 0, got {cfg.distill_views}")
    if cfg.generator.probe_points < 1:
        raise InputError("generator.probe_points must be >= 1")


def train_text_command(args) -> int:
    from inr.generate.text import TextNerfGenerator
    from inr.generate.text_encoder import EmbeddingCache, batch_tokens, require_text_extra
    from inr.signals.scene_collection import load_scene_collection
    from inr.train.generator_text import TextGeneratorTask, TextTrainConfig, scene_rays
    from inr.train.loop import resolve_device

    require_text_extra()
    if getattr(args, "view", False):
        raise InputError("--view: the live viewer does not show a generator's training (use `inr view` on a generated run)")
    run, cfg = fit_settings(args, KIND, TextTrainConfig, TOP_LEVEL)
    _check(cfg)
    try:
        gen_check = TextNerfGenerator(cfg.generator)  # an invalid architecture fails before anything is written
    except ValueError as e:
        raise InputError(f"invalid generator config: {e}") from None
    del gen_check
    coll = load_scene_collection(cfg.target)
    train_scenes, heldout = coll.split("train"), coll.split("heldout")
    if not train_scenes:
        raise InputError(f"{cfg.target}: the collection has no training scenes")
    train_cfg = cfg.resolved_train()
    device = resolve_device(train_cfg.device)
    distributed.init(device)
    try:
        device = distributed.local_device(device)
        out = Path(args.out) if args.out else Path("runs") / f"{Path(cfg.target).name}-text"
        # Under torchrun rank 0 fits the missing teachers and renders their distillation targets
        # (cached in the teacher runs) while the others wait, then the others read them.
        teachers = distributed.made_by_main(lambda: _teachers(cfg, train_scenes, out, args),
                                            lambda: _teachers(cfg, train_scenes, out, args, fit=False)) \
            if cfg.distill else {}
        cache = EmbeddingCache(out / EMBEDDINGS if run is not None else None)
        embeddings = cache.get([s.caption for s in train_scenes + heldout])
        tokens, mask = batch_tokens(embeddings)

        def rays():
            return [scene_rays(s.name, s.caption, s.path, teachers.get(s.name), cfg, _open_teacher, device)
                    for s in train_scenes]

        scenes = distributed.made_by_main(rays, lambda: None) or rays()
        from inr.signals.radiance import load_radiance

        held = [(s.name, load_radiance(s.path, "val"), len(train_scenes) + i) for i, s in enumerate(heldout)]
        torch.manual_seed(train_cfg.seed)
        model = TextNerfGenerator(cfg.generator, generator=torch.Generator().manual_seed(train_cfg.seed))
        task = TextGeneratorTask(model, scenes, tokens, mask, cfg, train_cfg.batch_size, device, train_cfg.seed, held)
        run, created = shared_run(args, run, KIND, cfg, train_cfg, out, generator=model.config(),
                                  collection=str(coll.root),
                                  scenes=[{"name": s.name, "caption": s.caption, "split": s.split} for s in coll.scenes],
                                  teachers={k: str(v) for k, v in teachers.items()})
        if distributed.is_main():
            cache.path = run.path / EMBEDDINGS
            cache.save()
            announce(f"a text-to-NeRF generator on {len(train_scenes)} scenes ({len(heldout)} held out) of "
                     f"{coll.root} ({processes()})", model, run)
        return train_run(task, run, train_cfg, args, created, lambda: {})
    finally:
        distributed.shutdown()


def _open_teacher(run_dir, device):
    from .nerf_commands import _open_run

    return _open_run(str(run_dir), device)[3]


def field_flags(cfg) -> list[str]:
    """`inr fit nerf` flags for the generator's own architecture (encoding, grid, MLP widths): teachers,
    and NeRFs trained from scratch for comparison, are the network the generator outputs."""
    f = cfg.generator.field
    return ["--field.encoding", f.encoding, "--field.n-frequencies", str(f.n_frequencies),
            "--field.grid", json.dumps(f.grid), "--field.density-hidden", *map(str, f.density_hidden),
            "--field.color-hidden", *map(str, f.color_hidden)]


def _teachers(cfg, scenes, out: Path, args, fit: bool = True) -> dict[str, Path]:
    """{scene name: teacher nerf run}: given (a folder of runs named as the scenes) or fitted now
    (unless not `fit`: where they will be, for the ranks that wait while rank 0 fits them)."""
    if cfg.teachers != "auto":
        root = Path(cfg.teachers)
        found = {}
        for s in scenes:
            path = root / s.name
            if not RunDir.is_run(path) or RunDir(path).read_config().get("kind") != "nerf":
                raise InputError(f"{root}: no nerf run {s.name!r} for training scene {s.name} (--teachers wants "
                                 f"one `inr fit nerf` run per training scene, named as the scene)")
            found[s.name] = path.resolve()
        return found
    from .main import build_parser

    found = {}
    for i, (s, path) in enumerate(zip(scenes, _teacher_paths(cfg, scenes, out).values())):
        if fit and not (path / "occupancy.safetensors").is_file():
            argv = ["fit", "nerf", str(s.path), "--out", str(path), "--steps", str(cfg.teacher_steps),
                    "--seed", str(cfg.train.seed), "--device", cfg.train.device, "--eval-every", "0",
                    "--batch-size", str(cfg.teacher_batch), "--occupancy.resolution", "32", *field_flags(cfg)]
            if RunDir.is_run(path):
                argv.append("--resume")
            if args.quiet:
                argv.append("--quiet")
            print(f"inr: teacher {i + 1}/{len(scenes)}: {s.caption}", file=sys.stderr, flush=True)
            fit_args = build_parser().parse_args(argv)
            with contextlib.redirect_stdout(sys.stderr):  # stdout keeps one JSON line: the generator's
                fit_args.handler(fit_args)
        found[s.name] = path
    return found


def _teacher_paths(cfg, scenes, out: Path) -> dict[str, Path]:
    """{scene name: where its auto teacher lives}: OUT/teachers/SCENE."""
    return {s.name: (out / "teachers" / s.name).resolve() for s in scenes}


def add_generate_text_options(parser) -> None:
    """`inr generate nerf` options of the --text path."""
    parser.add_argument("--scene", default=None, metavar="DIR",
                        help="text: a Blender dataset whose cameras (and views, for eval and --finetune) the "
                             "generated run uses (default: the collection's first scene's cameras, its own renders)")


def load_generator(model_dir: str, device):
    """(run, its TextTrainConfig, the TextNerfGenerator) of a text-generator run; one line otherwise."""
    run = RunDir.open(model_dir)
    config = run.read_config()
    if config.get("kind") != KIND:
        raise InputError(f"{model_dir}: not a text-to-NeRF generator run (kind {config.get('kind')!r}; "
                         f"train one with `inr train generator text COLLECTION_DIR`)")
    cfg, model = generator_from_state(run, config, run.load_model_state())
    return run, config, cfg, model.to(device).eval()


def generator_from_state(run: RunDir, config: dict, state: dict):
    """(TextTrainConfig, TextNerfGenerator with weights `state`) of a text-generator run's config."""
    from inr.generate.text import TextNerfGenerator
    from inr.train.generator_text import TextTrainConfig

    from .options import build_dataclass

    cfg = build_dataclass(TextTrainConfig, config.get("fit") or {})
    model = TextNerfGenerator(cfg.generator)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(f"{run.path}: cannot rebuild its generator ({str(e).splitlines()[0]})") from None
    return cfg, model


def text_generator_info(run: RunDir, config: dict) -> dict:
    """`inr info` of a text-generator run: parameters per part (the shared hash grid and the seed
    MLPs under "field", the hypernetwork under "hyper"), steps, final metrics, the collection."""
    from .run_info import run_info

    return run_info(run, config, generator=config.get("generator"), collection=config.get("collection"),
                    scenes=config.get("scenes"), teachers=config.get("teachers"))


def generate_text_run(args, device: torch.device):
    """`inr generate nerf --text CAPTION --model RUN -o OUT [--scene DIR]`: (the written nerf run, its
    result line); `generate_nerf_command` fine-tunes and prints."""
    from inr.generate.nerf_run import write_nerf_run
    from inr.generate.rendered_views import stage_rendered_views
    from inr.generate.text_encoder import EmbeddingCache, batch_tokens, check_caption, require_text_extra

    caption = check_caption(args.text)
    require_text_extra()
    run, config, cfg, model = load_generator(args.model, device)
    scene = getattr(args, "scene", None)
    if scene is not None and not (Path(scene) / "transforms_train.json").is_file():
        raise InputError(f"{scene}: not a Blender dataset (no transforms_train.json)")
    embedding = EmbeddingCache(run.path / EMBEDDINGS).get([caption])
    t0 = time.perf_counter()
    tokens, mask = batch_tokens(embedding, device)
    field = model.materialize(tokens, mask)
    seconds = time.perf_counter() - t0
    generated = {"generator": "text", "text": caption, "model": str(run.path), "seconds": round(seconds, 4)}
    if scene is not None:
        out = write_nerf_run(args.out, field, dataset=scene, generated=generated, device=device,
                             metrics={"generation_seconds": round(seconds, 4)})
    else:
        reference = Path(config["collection"]) / config["scenes"][0]["name"]
        reference = _scene_path(config, reference)
        out = write_nerf_run(args.out, field, generated=generated, device=device,
                             stage_dataset=lambda tmp: stage_rendered_views(field, reference, tmp),
                             metrics={"generation_seconds": round(seconds, 4)})
    return out, {"run": str(out.path), "text": caption, "generation_seconds": round(seconds, 4)}


def _scene_path(config: dict, fallback: Path) -> Path:
    """The first scene's dataset folder through the collection's own index (paths may be relative)."""
    from inr.signals.scene_collection import load_scene_collection

    try:
        coll = load_scene_collection(config["collection"])
    except InputError:
        return fallback
    return coll.scenes[0].path
