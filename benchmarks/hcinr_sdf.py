"""HC-INR against SIREN on signed distance fields (issue 16's SDF target); one JSON line.

    python benchmarks/hcinr_sdf.py [--shapes bunny dragon] [--meshes ../shared/data/meshes] [--seconds 180] [--share 0.7]
                                   [--eval-resolution 256] [--threads 2] [--fields siren hcinr] [--hcinr JSON]

For each mesh of ../shared/data/meshes (bunny_watertight.obj, dragon.obj; skipped where absent) or
built-in shape: `inr fit sdf`'s SIREN at its defaults, and HC-INR sized to at most `--share` of
SIREN's parameters (the largest of its hash-table sizes and compact widths that fits), each for
`--seconds` of training (the loop's clock; sampling and evaluation excluded), through
`benchmarks/sdf_fit.py`'s fit_one. Reports per run params, steps, seconds, Chamfer-L1/L2, normal
consistency, F-score and IoU of the mesh at `--eval-resolution`, and `targets`: whether HC-INR at
<= `--share` of SIREN's parameters reached a lower Chamfer-L1 than SIREN, per shape.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdf_fit import MESH_FILES, MESHES, fit_one, mesh_path, parse_run_options  # noqa: E402

from inr.fields import build_field  # noqa: E402
from inr.train.sdf import SDFFitConfig  # noqa: E402


def params_of(kind: str, cfg) -> int:
    options = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}
    with torch.random.fork_rng():
        return sum(p.numel() for p in build_field(kind, 3, 1, **options).parameters())


def hcinr_within(budget: int, extra: dict) -> dict:
    """HC-INR options (`extra`, then the hash-table size and compact width) with the most
    parameters <= budget."""
    base = dataclasses.replace(SDFFitConfig().hcinr, **extra)
    best, best_n = None, -1
    for log2 in (12, 11, 10, 9, 8):
        for width in (64, 56, 48, 40, 32, 24):
            options = {**extra, "log2_hashmap_size": log2, "compact_hidden": (width,) * len(base.compact_hidden)}
            n = params_of("hcinr", dataclasses.replace(base, **options))
            if best_n < n <= budget:
                best, best_n = options, n
    if best is None:
        raise SystemExit(f"hcinr_sdf: no HC-INR setting within {budget} parameters")
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="+", default=["bunny", "dragon"], help="bunny, dragon or built-in shapes")
    ap.add_argument("--meshes", type=Path, default=MESHES, help="folder of bunny_watertight.obj and dragon.obj")
    ap.add_argument("--seconds", type=float, default=180.0, help="training seconds per fit")
    ap.add_argument("--hcinr", type=json.loads, default={}, metavar="JSON",
                    help='HC-INR settings to try before sizing, e.g. \'{"levels": 2, "warp_lr_scale": 10}\'')
    ap.add_argument("--fields", nargs="+", default=["siren", "hcinr"], help="siren and/or hcinr")
    ap.add_argument("--share", type=float, default=0.7, help="HC-INR's parameters as a share of SIREN's at most")
    args = parse_run_options(ap, 256)
    siren_params = params_of("siren", SDFFitConfig().siren)
    hcinr = hcinr_within(int(args.share * siren_params), args.hcinr)
    runs, skipped, targets = [], [], {}
    for shape in args.shapes:
        target = shape
        if shape in MESH_FILES:
            path, absent = mesh_path(shape, args.meshes)
            if absent:
                skipped.append(absent)
                continue
            target = str(path)
        pair = {}
        for field, options in (("siren", None), ("hcinr", hcinr)):
            if field not in args.fields:
                continue
            pair[field] = fit_one(shape, target, field, args.seconds, args.eval_resolution, 64, args.device, options)
            runs.append(pair[field])
            print(f"hcinr_sdf: {json.dumps(runs[-1])}", file=sys.stderr)
        if len(pair) < 2:
            continue
        s, h = pair["siren"], pair["hcinr"]
        targets[shape] = {"met": h["params"] <= args.share * s["params"] and h["chamfer_l1"] < s["chamfer_l1"],
                          "hcinr_chamfer_l1": h["chamfer_l1"], "siren_chamfer_l1": s["chamfer_l1"],
                          "param_share": round(h["params"] / s["params"], 3)}
    print(json.dumps({"benchmark": "hcinr_sdf", "threads": torch.get_num_threads(), "seconds": args.seconds,
                      "hcinr_options": {k: list(v) if isinstance(v, tuple) else v for k, v in hcinr.items()},
                      "runs": runs, "skipped": skipped, "targets": targets}))


if __name__ == "__main__":
    main()
