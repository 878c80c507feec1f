"""The weights a view renders: a frozen copy of the field, swapped for a newer one when training in
this process logs a step or a fit in another process writes a checkpoint.

Render threads take `source.module` once per frame, so a swap never tears a frame and training
never waits for a render.
"""
from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable

import torch
from torch import nn

from inr.errors import InputError
from inr.fields import build_field
from inr.train.rundir import MODEL, RunDir, load_tensors


def frozen_copy(module: nn.Module) -> nn.Module:
    """A detached eval-mode copy of `module` (its parameters need no gradients)."""
    out = copy.deepcopy(module).eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out


class FieldSource:
    """The current module and a version counter; listeners run after each swap."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.version = 0
        self.listeners: list[Callable[[], None]] = []

    def replace(self, module: nn.Module) -> None:
        self.module = module
        self.version += 1
        for fn in self.listeners:
            fn()


class LiveSource(FieldSource):
    """A source that follows a module being trained: `pull()` (from the training thread, between
    steps) copies its weights at most every `min_seconds`."""

    def __init__(self, live: nn.Module, min_seconds: float = 0.5):
        super().__init__(frozen_copy(live))
        self.live, self.min_seconds, self._last = live, min_seconds, time.monotonic()

    def pull(self, force: bool = False) -> None:
        if force or time.monotonic() - self._last >= self.min_seconds:
            self._last = time.monotonic()
            self.replace(frozen_copy(self.live))


def run_state(run: RunDir) -> tuple[dict, dict | None]:
    """(model state, task state or None) of a run: its saved model, or while it is still being
    fitted its newest checkpoint."""
    if (run.path / MODEL).is_file():
        return run.load_model_state(), None
    state = run.load_checkpoint()
    if state is None:
        raise InputError(f"{run.path}: no model and no checkpoint yet (a fit in progress writes its first "
                         "checkpoint after train.checkpoint_every steps)")
    return state["model"], state.get("task")


def run_field(run: RunDir, config: dict, state: dict) -> nn.Module:
    """The run's field (see `inr.train.load`) with weights `state`, frozen."""
    spec = dict(config.get("field") or {})
    try:
        field = build_field(spec.pop("kind", None), spec.pop("d_in"), spec.pop("d_out"), **spec)
        field.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise InputError(f"{run.path}: cannot rebuild its field ({str(e).splitlines()[0]})") from None
    return frozen_copy(field)


def grid_density(run: RunDir, task_state: dict | None) -> torch.Tensor:
    """A nerf run's occupancy densities: the saved grid, or the checkpoint's."""
    from inr.train.nerf import GRID_FILE

    if task_state is not None and "grid_density" in task_state:
        return task_state["grid_density"]
    if not (run.path / GRID_FILE).is_file():
        raise InputError(f"{run.path / GRID_FILE}: missing (the run did not finish; --resume it)")
    return load_tensors(run.path / GRID_FILE)[0]["density"]


class RunWatcher:
    """Polls a run directory every `seconds`: new metric rows go to `on_rows`, a newer model or
    checkpoint to `on_weights` (a fit in another process shows up live)."""

    def __init__(self, run: RunDir, on_rows: Callable[[list[dict]], None], on_weights: Callable[[], None],
                 seconds: float = 2.0):
        self.run, self.on_rows, self.on_weights, self.seconds = run, on_rows, on_weights, seconds
        self._stop = threading.Event()
        self._weights_stamp = self._stamp()
        self._rows_stamp = None
        self.poll_rows()
        self._thread = threading.Thread(target=self._loop, name="inr-view-watch", daemon=True)
        self._thread.start()

    def _stamp(self):
        paths = [self.run.path / MODEL, *self.run.checkpoint_paths()[-1:]]
        return tuple((p.name, p.stat().st_mtime_ns) for p in paths if p.exists())

    def poll_rows(self) -> None:
        p = self.run.path / "metrics.jsonl"
        stamp = p.stat().st_mtime_ns if p.exists() else None
        if stamp != self._rows_stamp:
            self._rows_stamp = stamp
            self.on_rows(list(self.run.metrics()))

    def _loop(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                self.poll_rows()
                stamp = self._stamp()
                if stamp != self._weights_stamp:
                    self._weights_stamp = stamp
                    self.on_weights()
            except (OSError, InputError):  # a file replaced mid-read: try again next time
                continue

    def stop(self) -> None:
        """Stop polling; returns once a reload in progress has finished."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(30)
