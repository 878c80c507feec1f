"""The `inr` command: fit, render, eval and inspect implicit neural representations."""
from __future__ import annotations

import argparse
import json
import sys

from inr.errors import InputError

from . import (
    codec_commands,
    collection_commands,
    generate_commands,
    image_commands,
    nerf_commands,
    scenes_commands,
    sdf_commands,
    view_command,
)
from .run_info import run_info

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
    codec_commands.add_parsers(commands)
    scenes_commands.add_scenes_parser(commands)
    generate_commands.add_generator_parsers(commands)
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
    from inr.train import RunDir

    from . import text_commands

    run = RunDir.open(args.run)
    config = run.read_config()
    if config.get("kind") == text_commands.KIND:  # a generator: no field, data or eval of its own
        print(json.dumps(text_commands.text_generator_info(run, config), indent=2))
        return 0
    if config.get("kind") == generate_commands.KIND:  # a few-view generator: what it was trained on and takes
        fit = config["fit"]
        print(json.dumps(run_info(run, config, collection=config["data"]["collection"], support=fit["support"],
                                  max_support=fit["model"]["max_support"]), indent=2))
        return 0
    run, config, _ = _run_kind(args.run)
    print(json.dumps(run_info(run, config, field=config["field"]), indent=2))
    return 0


def _option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every option of `parser` and of its subcommands."""
    found = set()
    for action in parser._actions:
        found.update(action.option_strings)
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= _option_strings(sub)
    return found


def unknown_options(parser: argparse.ArgumentParser, extra: list[str]) -> str:
    """One line for arguments no command takes; an unknown --BLOCK.key lists that block's keys."""
    option = next((a for a in extra if a.startswith("--")), extra[0])
    message = f"unknown option {option}" if option.startswith("--") else f"unexpected argument(s) {' '.join(extra)}"
    if option.startswith("--") and "." in option:
        block = option.split("=", 1)[0].rsplit(".", 1)[0] + "."
        known = sorted(o for o in _option_strings(parser) if o.startswith(block))
        if known:
            message += f" (known {block}* options: {', '.join(known)})"
    return message


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # one line and exit code 2, as every other bad input (argparse would print its usage)
        print(f"inr: error: {unknown_options(parser, extra)}", file=sys.stderr)
        return 2
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
