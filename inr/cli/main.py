"""The `inr` command: fit, render, eval and inspect implicit neural representations."""
from __future__ import annotations

import argparse
import json
import sys

from inr.errors import InputError

from . import (
    collection_commands,
    image_commands,
    nerf_commands,
    sdf_commands,
    view_command,
)

# One module per signal kind. Each provides add_fit_parser(kinds), add_render_parser(kinds) and
# evaluate_run(run, config, args) -> dict; optionally add_export_parser(kinds).
KINDS = {"image": image_commands, "nerf": nerf_commands, "sdf": sdf_commands, "collection": collection_commands}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="inr", description=__doc__)
    parser.add_argument("--version", action="version", version=_version())
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    fit = commands.add_parser("fit", help="fit a field to a signal; writes a run directory")
    fit_kinds = fit.add_subparsers(dest="signal", metavar="SIGNAL", required=True)
    render = commands.add_parser("render", help="render a fitted run to a file")
    render_kinds = render.add_subparsers(dest="signal", metavar="SIGNAL", required=True)
    exporters = [m for m in KINDS.values() if hasattr(m, "add_export_parser")]
    if exporters:
        export = commands.add_parser("export", help="export a fitted run to another format (a mesh, ...)")
        export_kinds = export.add_subparsers(dest="what", metavar="WHAT", required=True)
        for module in exporters:
            module.add_export_parser(export_kinds)
    for module in KINDS.values():
        module.add_fit_parser(fit_kinds)
        module.add_render_parser(render_kinds)

    ev = commands.add_parser("eval", help="evaluate a run against its target; prints one JSON object")
    ev.add_argument("run", metavar="RUN", help="run directory")
    ev.add_argument("--device", default="auto", help="where to evaluate (auto: cuda if available)")
    ev.add_argument("--split", default="test", choices=("test", "val", "train"),
                    help="radiance fields: which dataset split to evaluate (falls back to val without a test split)")
    ev.set_defaults(handler=eval_command)

    info = commands.add_parser("info", help="describe a run directory; prints one JSON object")
    info.add_argument("run", metavar="RUN", help="run directory")
    info.set_defaults(handler=info_command)
    view_command.add_view_parser(commands)
    return parser


def _version() -> str:
    from inr import __version__

    return f"inr {__version__}"


def _run_kind(run_dir: str):
    """The run, its config and the command module of its kind."""
    from inr.train import RunDir

    run = RunDir.open(run_dir)
    config = run.read_config()
    if config.get("kind") not in KINDS:
        raise InputError(f"{run_dir}: unknown run kind {config.get('kind')!r}; expected one of {', '.join(KINDS)}")
    return run, config, KINDS[config["kind"]]


def eval_command(args) -> int:
    run, config, module = _run_kind(args.run)
    print(json.dumps(module.evaluate_run(run, config, args)))
    return 0


def info_command(args) -> int:
    run, config, _ = _run_kind(args.run)
    rows = list(run.metrics())
    final = next((r for r in reversed(rows) if r.get("final")), None)
    print(json.dumps({
        "run": str(run.path), "kind": config["kind"], "version": config["version"],
        "field": config["field"], "params": sum(t.numel() for t in run.load_model_state().values()),
        "data": config.get("data"), "train": config.get("fit", {}).get("train"),
        "steps": final["step"] if final else (rows[-1]["step"] if rows else 0),
        "seconds": final["time"] if final else None, "final": final["eval"] if final else None,
        "files": sorted(p.name for p in run.path.iterdir()),
    }, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except InputError as e:
        print(f"inr: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("inr: interrupted (the last checkpoint is kept; continue with --resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
