"""`inr fit sdf`, `inr render sdf`, `inr export mesh` and shape evaluation."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inr.errors import InputError
from inr.optional import require_open3d
from inr.train.loop import resolve_device
from inr.train.rundir import RunDir
from inr.train.sdf import SDF_FIELDS, SDFFitConfig, build_sdf_task, evaluate_field, save_mesh

from .fitting import add_fit_options, announce, default_out, fit_settings, run_for, train_run
from .options import add_backend_options, backend_option

TOP_LEVEL = ("target", "field", "sign_rays", "eval_resolution")
MESH_OUTPUTS = (".ply", ".obj", ".glb", ".stl", ".off")
IMAGE_OUTPUTS = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
PREVIEW_SIZE = 256


def add_fit_parser(kinds) -> None:
    from scenes.shapes import list_shapes

    p = kinds.add_parser("sdf", help="fit a signed distance field to a mesh (OBJ, PLY, STL, OFF, GLB) or a built-in shape",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("target", nargs="?", default=argparse.SUPPRESS, metavar="MESH|SCENE",
                   help=f"mesh file or built-in shape ({', '.join(list_shapes())}; default: {list_shapes()[0]})")
    p.add_argument("--field", choices=list(SDF_FIELDS), default=argparse.SUPPRESS, help="field kind (default: hash)")
    p.add_argument("--sign-rays", dest="sign_rays", type=int, default=argparse.SUPPRESS, metavar="N",
                   help="rays of the inside/outside parity vote for meshes, odd (default: 5)")
    p.add_argument("--eval-resolution", dest="eval_resolution", type=int, default=argparse.SUPPRESS, metavar="R",
                   help="marching-cubes grid of the evaluation mesh and mesh.ply (default: 256)")
    add_fit_options(p, "runs/<shape>-<field>", SDFFitConfig(), ("samples", "loss", *SDF_FIELDS))
    p.set_defaults(handler=fit_sdf_command)


def _add_device_options(p) -> None:
    p.add_argument("--device", default="auto")
    add_backend_options(p)


def add_render_parser(kinds) -> None:
    p = kinds.add_parser("sdf", help="sphere-trace a fitted SDF to a shaded image",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run directory of an sdf fit")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .tif)")
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--height", type=int, default=512)
    p.add_argument("--azimuth", type=float, default=35.0, help="camera azimuth in degrees about +y")
    p.add_argument("--elevation", type=float, default=25.0, help="camera elevation in degrees")
    p.add_argument("--distance", type=float, default=2.8,
                   help="camera distance from the centre (the shape spans [-0.9, 0.9] along its longest side)")
    p.add_argument("--fov", type=float, default=40.0, help="vertical field of view in degrees")
    _add_device_options(p)
    p.set_defaults(handler=render_sdf_command)


def add_export_parser(kinds) -> None:
    p = kinds.add_parser("mesh", help="extract the zero level set of a fitted SDF as a mesh (marching cubes)",
                         formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("run", metavar="RUN", help="run directory of an sdf fit")
    p.add_argument("-o", "--output", required=True, help="output mesh (.ply, .obj, .glb, .stl, .off)")
    p.add_argument("--resolution", type=int, default=512, help="grid cells per axis (64..1024)")
    p.add_argument("--dense", action="store_true", help="evaluate every grid point (default: only near the surface)")
    p.add_argument("--normalised", action="store_true",
                   help="keep the field's [-1, 1]^3 frame (default: the input mesh's units)")
    _add_device_options(p)
    p.set_defaults(handler=export_mesh_command)


def fit_sdf_command(args) -> int:
    from scenes.shapes import resolve_shape

    run, cfg = fit_settings(args, "sdf", SDFFitConfig, TOP_LEVEL)
    cfg.check()
    require_open3d()  # ground truth and the final evaluation raycast with it: stop before any run exists
    target = resolve_shape(cfg.target, sign_rays=cfg.sign_rays)
    for warning in target.warnings:
        print(f"inr: warning: {warning}", file=sys.stderr)
    train_cfg = cfg.resolved_train()
    device = resolve_device(train_cfg.device)
    try:
        task = build_sdf_task(target, cfg, train_cfg, device)
    except ValueError as e:  # an invalid field option: reported before anything is written
        raise InputError(f"invalid {cfg.field} field config: {e}") from None

    run, created = run_for(args, run, "sdf", cfg, train_cfg, default_out(cfg.target, cfg.field),
                           field=task.model.config(), data=target.describe())
    announce(f"{cfg.target} with a {cfg.field} SDF field", task.model, run)

    def finish() -> dict:
        verts, faces = task.last_mesh if task.last_mesh is not None else task.extract()
        save_mesh(run.path / "mesh.ply", target.normalisation.to_input(verts), faces)
        _render_preview(task.model, run.path / "preview.png", device)
        return {"field": cfg.field}

    return train_run(task, run, train_cfg, args, created, finish)


def _render_preview(field, path: Path, device) -> None:
    from inr.render.sphere_trace import orbit_camera, render_sdf
    from inr.signals.image import save_image

    save_image(path, render_sdf(field, orbit_camera(), PREVIEW_SIZE, PREVIEW_SIZE, device=device))


def _open_run(run_dir: str, device: str):
    """The run, its config and its field (on `device`); InputError when it is not an sdf run."""
    from inr.train import load

    run = RunDir.open(run_dir)
    config = run.read_config()
    if config.get("kind") != "sdf":
        raise InputError(f"{run_dir}: not an sdf run (kind {config.get('kind')!r})")
    dev = resolve_device(device)
    return run, config, load(run.path, dev), dev


def render_sdf_command(args) -> int:
    from inr.render.sphere_trace import orbit_camera, render_sdf
    from inr.signals.image import save_image

    suffix = Path(args.output).suffix.lower()
    if suffix not in IMAGE_OUTPUTS:
        raise InputError(f"{args.output}: unsupported output format {suffix or '(none)'}; use .png, .jpg or .tif")
    if args.width < 1 or args.height < 1 or not 0 < args.fov < 180 or args.distance <= 0:
        raise InputError("--width and --height must be >= 1, --fov in (0, 180) and --distance > 0")
    with backend_option(args).active():
        _, _, field, device = _open_run(args.run, args.device)
        camera = orbit_camera(args.azimuth, args.elevation, args.distance)
        image = render_sdf(field, camera, args.width, args.height, args.fov, device=device)
    save_image(args.output, image)
    print(json.dumps({"output": args.output, "width": args.width, "height": args.height}))
    return 0


def export_mesh_command(args) -> int:
    from inr.render.marching_cubes import extract_mesh
    from inr.signals.sdf import Normalisation

    suffix = Path(args.output).suffix.lower()
    if suffix not in MESH_OUTPUTS:
        raise InputError(f"{args.output}: unsupported mesh format {suffix or '(none)'}; use {', '.join(MESH_OUTPUTS)}")
    if not 64 <= args.resolution <= 1024:
        raise InputError(f"--resolution must be in 64..1024, got {args.resolution}")
    with backend_option(args).active():
        _, config, field, device = _open_run(args.run, args.device)
        verts, faces = extract_mesh(lambda p: field(p)[..., 0], args.resolution, sparse=not args.dense, device=device)
    if len(faces) == 0:
        raise InputError(f"{args.run}: the field has no zero level set in [-1, 1]^3; nothing to export")
    if not args.normalised:
        verts = Normalisation.from_dict(config["data"]["normalisation"]).to_input(verts)
    save_mesh(args.output, verts, faces)
    print(json.dumps({"output": args.output, "resolution": args.resolution, "vertices": len(verts),
                      "faces": len(faces)}))
    return 0


def evaluate_run(run: RunDir, config: dict, args) -> dict:
    """Chamfer-L1/L2, normal consistency, F-score@1% and IoU of the run's field against its target."""
    from inr.render.marching_cubes import extract_mesh
    from scenes.shapes import resolve_shape

    fit = config.get("fit") or {}
    target = resolve_shape(config["data"]["source"], sign_rays=fit.get("sign_rays", 5))
    _, _, field, device = _open_run(str(run.path), args.device)

    def fn(p):
        return field(p)[..., 0]

    verts, faces = extract_mesh(fn, fit.get("eval_resolution", 256), device=device)
    return {"run": str(run.path), **evaluate_field(fn, target, verts, faces, device)}
