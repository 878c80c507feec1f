"""`inr scenes make collection`: render a captioned scene collection (package `scenes`) to a folder."""
from __future__ import annotations

import argparse
import json
import sys

from inr.signals.scene_collection import load_scene_collection

from .options import add_command_path


def add_scenes_parser(commands) -> None:
    what = add_command_path(commands, ("scenes", "built-in procedural scenes: make scene collections", "scenes_action",
                                       "ACTION"),
                            ("make", "render built-in scenes to a folder", "scenes_what", "WHAT"))
    c = what.add_parser("collection", help="N captioned multi-view scenes with a train / held-out split "
                                           "(held-out captions: unseen combinations of seen words)",
                        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    c.add_argument("-o", "--out", required=True, metavar="DIR", help="collection folder (re-running with the "
                                                                      "same settings reuses it)")
    c.add_argument("--count", type=int, required=True, metavar="N", help="number of scenes")
    c.add_argument("--views", type=int, default=20, metavar="V", help="training views per scene (plus 2 val, "
                                                                       "and --test-views on a ring)")
    c.add_argument("--test-views", dest="test_views", type=int, default=8, help="test views per scene")
    c.add_argument("--res", type=int, default=64, metavar="R", help="image size in pixels (R x R)")
    c.add_argument("--seed", type=int, default=0, help="seed of the recipes, sizes and cameras")
    c.add_argument("--quiet", action="store_true", help="no progress")
    c.set_defaults(handler=make_collection_command)


def make_collection_command(args) -> int:
    from scenes.collection import make_collection

    def progress(i: int, n: int, caption: str) -> None:
        if not args.quiet:
            print(f"inr: scene {i + 1}/{n}: {caption}", file=sys.stderr, flush=True)

    rendered = []
    out = make_collection(args.out, args.count, views=args.views, res=args.res, seed=args.seed,
                          test_views=args.test_views, progress=lambda *a: (rendered.append(a[0]), progress(*a)))
    coll = load_scene_collection(out)
    print(json.dumps({"collection": str(out), "scenes": len(coll), "train": len(coll.split("train")),
                      "heldout": len(coll.split("heldout")), "rendered": len(rendered),
                      "cached": len(coll) - len(rendered)}))
    return 0
