"""The one-way stack (docs/DESIGN.md, "Layout"): every import inside `inr` goes down the layers,
never up; only the command line imports the built-in `scenes` and the `viewer`; `kernels` imports
nothing of `inr`. Checked on the source (AST), lazy imports inside functions included."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Bottom to top. A module may import its own layer and the layers below it. The package's root
# modules (errors, atomic, optional) sit below everything; `inr/__init__.py` is the public API on top.
LAYERS = [
    ("errors", "atomic", "optional"),
    ("backends",),
    ("nn", "encodings"),
    ("fields", "hyper"),
    ("render",),
    ("signals",),
    ("train", "generate", "codec"),
    ("cli",),
]
LEVEL = {name: i for i, names in enumerate(LAYERS) for name in names}
TOP = len(LAYERS)
OUTSIDE = ("scenes", "viewer")  # packages on top of inr: only inr.cli may reach them


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, source: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source` (the file at `path`), relative
    ones resolved."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.count(".") or not module.startswith("inr"):
                found.append((node.lineno, module))
            else:  # `from inr import fields` imports subpackages: their layers count
                found += [(node.lineno, f"{module}.{a.name}") for a in node.names]
    return found


def _level(module: str) -> int | None:
    """The layer of an `inr` module (None for modules outside inr)."""
    parts = module.split(".")
    if parts[0] != "inr":
        return None
    if len(parts) == 1:
        return TOP
    return LEVEL.get(parts[1])


def _violations(path: Path, source: str | None = None) -> list[str]:
    here = _module_name(path)
    own = _level(here)
    out = []
    for line, target in _imports(path, path.read_text() if source is None else source):
        where = f"{path.relative_to(ROOT)}:{line}"
        root = target.split(".")[0]
        if here.startswith("kernels") and root == "inr":
            out.append(f"{where}: kernels imports {target}")
        if not here.startswith("inr"):
            continue
        if root in OUTSIDE and not here.startswith("inr.cli"):
            out.append(f"{where}: {here} imports {target} (only inr.cli may import {root})")
        level = _level(target)
        if level is not None and own is not None and level > own and target != "inr":
            out.append(f"{where}: {here} (layer {own}) imports {target} (layer {level}), up the stack")
    return out


def _sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (ROOT / f).rglob("*.py"))


def test_every_inr_folder_has_a_layer():
    folders = {p.name for p in (ROOT / "inr").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in (ROOT / "inr").glob("*.py") if p.name != "__init__.py"}
    assert folders | modules <= set(LEVEL), f"give these a layer here and in docs/DESIGN.md: {(folders | modules) - set(LEVEL)}"


def test_imports_only_go_down_the_stack():
    problems = [v for path in _sources("inr", "kernels") for v in _violations(path)]
    assert not problems, "imports against the stack:\n" + "\n".join(problems)


@pytest.mark.parametrize("source, expected", [
    ("from inr.cli.main import main\n", "up the stack"),
    ("from ..train import loop\n", "up the stack"),
    ("def f():\n    import scenes\n", "only inr.cli may import scenes"),
])
def test_the_check_catches_an_upward_import(source, expected):
    probe = ROOT / "inr" / "render" / "probe.py"  # a name in the tree (the file need not exist)
    assert any(expected in v for v in _violations(probe, source))
