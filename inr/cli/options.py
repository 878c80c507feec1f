"""Typed dataclasses -> command-line options and back, with config files merged in between.

Precedence: dataclass defaults < --config FILE.json < flags on the command line.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from inr.backends import BACKENDS, PRECISIONS, Backend
from inr.errors import InputError
from inr.train.rundir import check_finite

# TrainConfig fields that `add_backend_options` declares (so the dataclass walk skips them)
BACKEND_FIELDS = ("backend", "mlp_precision")


def _unwrap_optional(tp):
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def add_backend_options(parser: argparse.ArgumentParser, dest_prefix: str = "") -> None:
    """--backend and --mlp-precision, declared here once for every command that runs the hot ops;
    `backend_from` validates them. Fit commands pass dest_prefix "train." so the values join the
    train config (defaults < --config < flags); other commands get the defaults of `Backend()`."""
    default = Backend()
    options = (("--backend", "backend", default.name, BACKENDS, "backend of the hot ops"),
               ("--mlp-precision", "mlp_precision", default.mlp_precision, PRECISIONS,
                "operand precision of the fused CUDA MLP, fp32 accumulation"))
    for flag, dest, value, choices, what in options:
        # fit commands keep the value out of the namespace unless it is typed (a --config may set it);
        # "%(default)s" stops ArgumentDefaultsHelpFormatter from adding the default a second time
        parser.add_argument(flag, dest=dest_prefix + dest, default=argparse.SUPPRESS if dest_prefix else value,
                            metavar="{" + ",".join(choices) + "}",
                            help=f"{what} (default: {value if dest_prefix else '%(default)s'})")


def backend_from(name: str, mlp_precision: str) -> Backend:
    """The backend value, validated once: InputError (one line) for an unknown name or precision,
    or for "tcnn" where tinycudann does not import."""
    try:
        return Backend(name, mlp_precision)
    except ValueError as e:
        raise InputError(str(e)) from None


def backend_option(args: argparse.Namespace) -> Backend:
    """The backend of a command that declared `add_backend_options(parser)`."""
    return backend_from(args.backend, args.mlp_precision)


def add_dataclass_options(parser: argparse.ArgumentParser, defaults, path: str = "", flag_prefix: str = "",
                          aliases: dict[str, str] | None = None, skip: tuple[str, ...] = ()) -> None:
    """Add one option per leaf field of the dataclass instance `defaults` (its values are the
    documented defaults); dest is the dotted path ("train.lr").

    `aliases` maps a dotted path to the flag to use for it (e.g. "train.batch_size" -> "--batch-size");
    dotted paths in `skip` get no option (another helper declares them).
    Defaults are suppressed in the namespace, so it holds only what the user typed.
    """
    aliases = aliases or {}
    hints = typing.get_type_hints(type(defaults))
    for f in dataclasses.fields(defaults):
        dest = f"{path}{f.name}"
        if dest in skip:
            continue
        tp = _unwrap_optional(hints[f.name])
        default = getattr(defaults, f.name)
        if dataclasses.is_dataclass(tp):
            add_dataclass_options(parser, default, dest + ".", f"{flag_prefix}{f.name}.", aliases, skip)
            continue
        flag = aliases.get(dest, f"--{flag_prefix}{f.name.replace('_', '-')}")
        kwargs: dict[str, Any] = dict(dest=dest, default=argparse.SUPPRESS)
        help_default = " ".join(map(str, default)) if isinstance(default, tuple) else json.dumps(default)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is tuple:
            kwargs.update(nargs="+", type=typing.get_args(tp)[0], metavar="N")
        elif tp is dict or typing.get_origin(tp) is dict:
            kwargs.update(type=_json_object, metavar="JSON")
        else:
            kwargs.update(type=tp, metavar=tp.__name__.upper())
        parser.add_argument(flag, help=f"(default: {help_default})", **kwargs)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def parsed_overrides(ns: argparse.Namespace, top_level: tuple[str, ...] = ()) -> dict:
    """The config options the user gave (dotted dests, plus the names in `top_level`), nested."""
    nested: dict = {}
    for dest, value in vars(ns).items():
        if "." not in dest and dest not in top_level:
            continue
        *parents, leaf = dest.split(".")
        node = nested
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return nested


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "grid" else v
    return out


def read_config_file(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{path}: no such config file")
    try:
        doc = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: a config file must hold a JSON object")
    check_finite(doc, "")
    return doc


def build_dataclass(cls, values: dict, where: str = "", base=None):
    """`base` (default: cls()) with plain JSON `values` applied, recursively for nested dataclasses,
    so a partial override keeps the other defaults. Unknown keys and wrong types raise InputError."""
    check_finite(values, where)
    base = cls() if base is None else base
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise InputError(f"unknown config key {key!r} (known: {', '.join(sorted(names))})")
    kwargs = {}
    for name, value in values.items():
        tp = _unwrap_optional(hints[name])
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise InputError(f"config key {key!r} must be an object")
            kwargs[name] = build_dataclass(tp, value, key, getattr(base, name))
        else:
            kwargs[name] = _coerce(value, tp, key)
    return dataclasses.replace(base, **kwargs)


def _coerce(value, tp, key):
    if value is None:
        return None
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        numbers = {float: (int, float), str: (str,)}.get(item, (int,))
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, numbers) and not isinstance(v, bool) for v in value):
            what = {float: "numbers", str: "strings"}.get(item, "integers")
            raise InputError(f"config key {key!r} must be a list of {what}, got {value!r}")
        return tuple(item(v) for v in value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = dict if typing.get_origin(tp) is dict else tp
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise InputError(f"config key {key!r} must be {getattr(expected, '__name__', expected)}, got {value!r}")
    return value


def add_command_path(commands, *steps: tuple[str, str, str, str]):
    """Nested subcommands ("inr scenes make ..."): each step (name, help, dest, metavar) adds a
    parser and its required subcommands; returns the last subparsers, where the leaves go."""
    for name, help_, dest, metavar in steps:
        commands = commands.add_parser(name, help=help_).add_subparsers(dest=dest, metavar=metavar, required=True)
    return commands
