"""The run directory (DESIGN §3): config.json, model.safetensors, metrics.jsonl, checkpoints/.

Every file is written atomically (temporary file in the same folder, then os.replace), so a
kill never leaves a torn file behind.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from inr.atomic import atomic_write, atomic_write_text
from inr.errors import InputError

FORMAT = "inr-run"
FORMAT_VERSION = 1
CONFIG = "config.json"
MODEL = "model.safetensors"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
KEEP_CHECKPOINTS = 2


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> None:
    """safetensors file with an optional JSON metadata blob under key "json"."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = {"json": json.dumps(metadata)} if metadata is not None else None
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable safetensors file ({e})") from None
    return tensors, json.loads(meta.get("json", "null")) or {}


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested dict/list of tensors and plain values into {path: tensor} and a JSON skeleton
    in which each tensor is replaced by {"$tensor": path} (optimizer state without pickle)."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj, path):
        if isinstance(obj, torch.Tensor):
            tensors[path] = obj
            return {"$tensor": path}
        if isinstance(obj, dict):
            return {"$dict": [[walk(k, f"{path}.k{i}"), walk(v, f"{path}.{i}")] for i, (k, v) in enumerate(obj.items())]}
        if isinstance(obj, (list, tuple)):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(obj)]
        return obj

    return tensors, walk(state, prefix)


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "$tensor" in skeleton:
            return tensors[skeleton["$tensor"]]
        return {unflatten_state(k, tensors): unflatten_state(v, tensors) for k, v in skeleton["$dict"]}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


def check_finite(obj: Any, where: str) -> None:
    """Reject NaN/inf anywhere in a plain-JSON config (one line naming the key)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            check_finite(v, f"{where}.{k}" if where else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_finite(v, f"{where}[{i}]")
    elif isinstance(obj, float) and not math.isfinite(obj):
        raise InputError(f"config value {where} is {obj}: values must be finite")


class RunDir:
    """A run directory on disk. `RunDir.create` starts one; `RunDir.open` checks an existing one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- creating and opening -------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: dict) -> "RunDir":
        run = cls(path)
        run.path.mkdir(parents=True, exist_ok=True)
        (run.path / CHECKPOINTS).mkdir(exist_ok=True)
        run.write_config(config)
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunDir":
        run = cls(path)
        run.read_config()  # validates
        return run

    @staticmethod
    def is_run(path: str | Path) -> bool:
        return (Path(path) / CONFIG).is_file()

    # -- config ---------------------------------------------------------------------------
    def write_config(self, config: dict) -> None:
        doc = {"format": FORMAT, "version": FORMAT_VERSION, **config}
        atomic_write_text(self.path / CONFIG, json.dumps(doc, indent=2, allow_nan=False) + "\n")

    def read_config(self) -> dict:
        if not self.path.exists():
            raise InputError(f"{self.path}: no such run directory")
        if not self.path.is_dir() or not (self.path / CONFIG).is_file():
            raise InputError(f"{self.path}: not a run directory (no {CONFIG})")
        try:
            doc = json.loads((self.path / CONFIG).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"{self.path / CONFIG}: not valid JSON ({e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise InputError(f"{self.path}: not an inr run directory ({CONFIG} has no \"format\": \"{FORMAT}\")")
        if doc.get("version") != FORMAT_VERSION:
            raise InputError(f"{self.path}: run directory format version {doc.get('version')!r} "
                             f"is not supported by this inr (expects version {FORMAT_VERSION})")
        return doc

    # -- model ----------------------------------------------------------------------------
    def save_model(self, module: torch.nn.Module) -> None:
        save_tensors(self.path / MODEL, module.state_dict(), {"format": FORMAT, "version": FORMAT_VERSION})

    def load_model_state(self) -> dict[str, torch.Tensor]:
        if not (self.path / MODEL).is_file():
            raise InputError(f"{self.path}: run has no {MODEL} (did the fit finish?)")
        return load_tensors(self.path / MODEL)[0]

    # -- metrics --------------------------------------------------------------------------
    def append_metrics(self, row: dict) -> None:
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(row) + "\n")

    def metrics(self) -> Iterator[dict]:
        p = self.path / METRICS
        if not p.exists():
            return
        for line in p.read_text().splitlines():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:  # a line torn by a kill: skip it
                continue

    def truncate_metrics(self, max_step: int) -> None:
        """Keep the rows up to `max_step` (on resume, drop what the lost steps logged)."""
        rows = [r for r in self.metrics() if r.get("step", 0) <= max_step]
        atomic_write_text(self.path / METRICS, "".join(json.dumps(r) + "\n" for r in rows))

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint_paths(self) -> list[Path]:
        return sorted((self.path / CHECKPOINTS).glob("step_*.safetensors"))

    def save_checkpoint(self, step: int, state: dict) -> None:
        tensors, skeleton = flatten_state(state, "s")
        save_tensors(self.path / CHECKPOINTS / f"step_{step:09d}.safetensors", tensors, {"step": step, "state": skeleton})
        for old in self.checkpoint_paths()[:-KEEP_CHECKPOINTS]:
            old.unlink(missing_ok=True)

    def load_checkpoint(self) -> dict | None:
        """The newest readable checkpoint's state, or None when there is none."""
        for path in reversed(self.checkpoint_paths()):
            try:
                tensors, meta = load_tensors(path)
            except InputError:
                continue
            return unflatten_state(meta["state"], tensors)
        return None
