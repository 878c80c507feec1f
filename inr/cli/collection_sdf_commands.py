"""`inr fit collection sdf`, a member of a shape collection as a mesh or an image
(`inr render collection RUN --member K -o out.ply|.png`) and shape-collection evaluation
(`inr eval RUN`). `inr.cli.collection_commands` dispatches here when config["data"]["signal"] is "sdf";
what both collection fits share is in `inr.cli.collection_fitting`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from inr.errors import InputError
from inr.optional import require_open3d
from inr.signals.collection_sdf import source_label
from inr.train import distributed
from inr.train.collection import model_config, rebuild_model
from inr.train.collection_sdf import (
    SDFCollectionFitConfig,
    SDFCollectionTask,
    build_sdf_collection_model,
    evaluate_members,
    member_description,
    member_field,
    member_mesh,
    summarise,
)
from inr.train.loop import resolve_device
from inr.train.rundir import RunDir

from .builtin_collections import sdf_collection
from .collection_fitting import (
    add_field_option,
    add_hyper_option,
    collection_fit_settings,
    fit_record,
    run_collection_fit,
    seeded_model,
)
from .fitting import add_fit_options
from .options import build_dataclass

TOP_LEVEL = ("target", "preset", "field", "latent_dim", "latent_lr", "latent_penalty", "signals_per_batch", "sign_rays",
             "eval_resolution", "eval_points")
MESH_OUTPUTS = (".ply", ".obj", ".glb", ".stl", ".off")
IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
MEMBER_MESH_RESOLUTION = 128  # `inr render collection ... -o x.ply`: grid cells per axis at --scale 1
MEMBER_IMAGE_SIZE = 256  # ... -o x.png: pixels per side at --scale 1


def add_sdf_collection_parser(signals) -> None:
    """`inr fit collection sdf DIR|SHAPES` under the `collection` fit command's subparsers."""
    q = signals.add_parser("sdf", help="a folder of meshes or a built-in shape family (shapes, shapes-N)",
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    q.add_argument("target", nargs="?", default=argparse.SUPPRESS, metavar="DIR|SHAPES",
                   help="folder of meshes (OBJ, PLY, STL, OFF, GLB), or the built-in procedural family "
                        "(default: shapes, 16 spheres, tori, boxes and capsules; shapes-N for N)")
    add_hyper_option(q)
    add_field_option(q)
    for name, tp, help_ in (("latent_dim", int, "width of each member's latent z (default: 64)"),
                            ("latent_lr", float, "learning rate of the auto-decoder's latents (default: 1e-2 with MIP, 1e-3 without)"),
                            ("latent_penalty", float, "weight of the latent-norm penalty (default: 1e-4)"),
                            ("signals_per_batch", int, "members per step, split over torchrun processes (default: 8)"),
                            ("sign_rays", int, "rays of the inside/outside parity vote for meshes, odd (default: 5)"),
                            ("eval_resolution", int, "marching-cubes grid per member at evaluation (default: 64)"),
                            ("eval_points", int, "surface and IoU samples per member at evaluation (default: 20000)")):
        q.add_argument(f"--{name.replace('_', '-')}", dest=name, type=tp, default=argparse.SUPPRESS, help=help_,
                       metavar=tp.__name__.upper())
    add_fit_options(q, "runs/<collection>-<hyper>", SDFCollectionFitConfig(), ("hyper", "siren", "hcinr", "samples", "loss"))
    q.set_defaults(handler=fit_sdf_collection_command)


# -- fit ----------------------------------------------------------------------------------------

def fit_sdf_collection_command(args) -> int:
    run, cfg, train_cfg, device = collection_fit_settings(args, SDFCollectionFitConfig, TOP_LEVEL)
    require_open3d()  # ground truth and the final evaluation raycast with it: stop before any run exists
    collection = sdf_collection(cfg.target, cfg.sign_rays)  # bad input raises here: no run yet
    if distributed.is_main():
        for warning in collection.warnings:
            print(f"inr: warning: {warning}", file=sys.stderr)
    m = len(collection.names)
    model = seeded_model(lambda g: build_sdf_collection_model(cfg, m, generator=g), train_cfg.seed)
    task = SDFCollectionTask(collection, model, cfg, train_cfg, device)

    config = {"kind": "collection", "fit": fit_record(cfg, train_cfg), "model": model_config(model, m, 1),
              "field": model.hyper_field.field.config(),
              "data": {"signal": "sdf", "source": collection.source, "members": collection.names,
                       "member_info": [member_description(t) for t in collection.targets]}}
    return run_collection_fit(args, run, cfg, train_cfg, task, config, f"{m} shapes of {source_label(collection)}")


# -- opening a shape collection run -----------------------------------------------------------------

def open_sdf_collection(path: str, device: torch.device, config: dict | None = None):
    """(model with its parameters, fit config, config.json) of a shape-collection run."""
    run = RunDir.open(path)
    config = config or run.read_config()
    if config.get("kind") != "collection" or (config.get("data") or {}).get("signal") != "sdf":
        raise InputError(f"{path}: not a shape collection run")
    try:
        cfg = build_dataclass(SDFCollectionFitConfig, config["fit"])
        model = rebuild_model(config["model"])
        model.load_state_dict(run.load_model_state())
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise InputError(f"{path}: cannot rebuild its hypernetwork ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), cfg, config


def _member_index(run: str, names: list[str], member: str) -> int:
    if member in names:
        return names.index(member)
    try:
        index = int(member)
    except ValueError:
        raise InputError(f"{run}: no member {member!r} (members 0..{len(names) - 1} or names)") from None
    if not 0 <= index < len(names):
        raise InputError(f"{run}: member {index} out of range (0..{len(names) - 1})")
    return index


def evaluate_sdf_run(run: RunDir, config: dict, args) -> dict:
    """Mean shape metrics over the members (and the worst F-score), and each member's Chamfer-L1,
    F-score and IoU, against the collection's meshes or shapes (reloaded from its source)."""
    model, cfg, config = open_sdf_collection(str(run.path), resolve_device(args.device), config)
    collection = sdf_collection(config["data"]["source"], cfg.sign_rays)
    if collection.names != config["data"]["members"]:
        raise InputError(f"{run.path}: its collection {config['data']['source']} changed since training")
    per = evaluate_members(model, collection.targets, cfg.eval_resolution, cfg.eval_points)
    members = {name: {k: m[k] for k in ("chamfer_l1", "fscore", "iou")} for name, m in zip(collection.names, per)}
    return {"run": str(run.path), **summarise(per), "members": members}


def render_sdf_member(args, config: dict) -> int:
    """One member of a shape collection: a mesh (.ply .obj .glb .stl .off; marching cubes at
    128 x --scale cells per axis, in the member's own units) or a sphere-traced image
    (.png .jpg .tif; 256 x --scale pixels per side)."""
    from inr.signals.sdf import Normalisation
    from inr.train.sdf import save_mesh

    suffix = Path(args.output).suffix.lower()
    if suffix not in MESH_OUTPUTS + IMAGE_OUTPUTS:
        raise InputError(f"{args.output}: unsupported output format {suffix or '(none)'}; use a mesh "
                         f"({', '.join(MESH_OUTPUTS)}) or an image ({', '.join(IMAGE_OUTPUTS)})")
    if args.scale <= 0:
        raise InputError(f"--scale must be positive, got {args.scale}")
    device = resolve_device(args.device)
    model, _, config = open_sdf_collection(args.run, device, config)
    names = config["data"]["members"]
    member = _member_index(args.run, names, args.member)
    if suffix in IMAGE_OUTPUTS:
        from inr.render.sphere_trace import orbit_camera, render_sdf
        from inr.signals.image import save_image

        size = max(1, round(MEMBER_IMAGE_SIZE * args.scale))
        save_image(args.output, render_sdf(member_field(model, member), orbit_camera(), size, size, device=device))
        print(json.dumps({"output": args.output, "member": names[member], "height": size, "width": size}))
        return 0
    resolution = min(1024, max(16, round(MEMBER_MESH_RESOLUTION * args.scale)))
    verts, faces = member_mesh(model, member, resolution)
    if len(faces) == 0:
        raise InputError(f"{args.run}: member {names[member]} has no zero level set in [-1, 1]^3; nothing to export")
    info = config["data"].get("member_info") or []
    if member < len(info):
        verts = Normalisation.from_dict(info[member]["normalisation"]).to_input(verts)
    save_mesh(args.output, verts, faces)
    print(json.dumps({"output": args.output, "member": names[member], "resolution": resolution,
                      "vertices": len(verts), "faces": len(faces)}))
    return 0


__all__ = ["add_sdf_collection_parser", "evaluate_sdf_run", "fit_sdf_collection_command", "open_sdf_collection",
           "render_sdf_member"]
