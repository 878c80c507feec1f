"""Training progress in the viewer: step, loss and PSNR, a PSNR curve, and pause/resume.

`Progress` draws the panel from metric rows (those `inr.train.loop.train` logs); `TrainingHook`
is what a fit started with `--view` hands to the loop: it is called with each logged row (it
updates the panel and the rendered weights) and owns the event the loop waits on while paused.
"""
from __future__ import annotations

import threading

import numpy as np


class Progress:
    """A "Training" folder in the GUI: a readout, a PSNR curve and (when `pausable`) a button."""

    def __init__(self, gui, pausable: bool = False, max_points: int = 2000):
        self.max_points = max_points
        self.rows: list[dict] = []
        self.running = threading.Event()
        self.running.set()
        self._val_shown = False
        with gui.add_folder("Training"):
            self.readout = gui.add_markdown("no steps logged yet")
            self.curve = gui.add_uplot(
                data=(np.zeros(1), np.zeros(1), np.zeros(1)),
                series=self._series(False),
                title="PSNR (dB)", aspect=1.6, visible=False,
                scales={"x": {"time": False}})
            self.button = gui.add_button("Pause training", icon=None, visible=pausable)
        self.button.on_click(lambda _: self.toggle())

    @staticmethod
    def _series(val: bool) -> tuple:
        return ({"label": "step"}, {"label": "train PSNR", "stroke": "#1f77b4", "width": 2},
                {"label": "val PSNR", "stroke": "#d62728", "width": 2, "show": val})

    def toggle(self) -> None:
        """Pause a running fit, or resume a paused one."""
        if self.running.is_set():
            self.running.clear()
            self.button.label = "Resume training"
        else:
            self.running.set()
            self.button.label = "Pause training"
        self._show()

    def set_rows(self, rows: list[dict]) -> None:
        self.rows = list(rows)
        self._show()

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self._show()

    def _show(self) -> None:
        train = [r for r in self.rows if "loss" in r]
        evals = [r for r in self.rows if isinstance(r.get("eval"), dict)]
        if not train and not evals:
            return
        last = train[-1] if train else {}
        parts = [f"**step** {self.rows[-1].get('step', 0)}"]
        if "loss" in last:
            parts.append(f"**loss** {last['loss']:.4g}")
        if "psnr" in last:
            parts.append(f"**PSNR** {last['psnr']:.2f} dB")
        if evals and "psnr" in evals[-1]["eval"]:
            parts.append(f"**val PSNR** {evals[-1]['eval']['psnr']:.2f} dB")
        if "time" in self.rows[-1]:
            parts.append(f"{self.rows[-1]['time']:.0f} s")
        if any(r.get("final") for r in self.rows):
            parts.append("(finished)")
        elif not self.running.is_set():
            parts.append("(paused)")
        self.readout.content = " · ".join(parts)
        has_val = any("psnr" in r["eval"] for r in evals)
        if any("psnr" in r for r in train) or has_val:
            if has_val != self._val_shown:  # the validation series appears with the first evaluation
                self._val_shown = has_val
                self.curve.series = self._series(has_val)
            self.curve.data = self.curve_data(train, evals, self.max_points)
            self.curve.visible = True

    @staticmethod
    def curve_data(train: list[dict], evals: list[dict], max_points: int) -> tuple[np.ndarray, ...]:
        """(steps, train PSNR, val PSNR) on one step axis; a series without a value at a step holds
        its previous one (the validation PSNR changes only at evaluations)."""
        points: dict[int, list[float]] = {}
        for r in train:
            if "psnr" in r:
                points.setdefault(int(r["step"]), [np.nan, np.nan])[0] = float(r["psnr"])
        for r in evals:
            if "psnr" in r["eval"]:
                points.setdefault(int(r["step"]), [np.nan, np.nan])[1] = float(r["eval"]["psnr"])
        steps = sorted(points)[-max_points:] or [0]
        values = np.array([points.get(s, [np.nan, np.nan]) for s in steps], dtype=np.float64)
        return np.array(steps, dtype=np.float64), _hold(values[:, 0]), _hold(values[:, 1])


def _hold(values: np.ndarray) -> np.ndarray:
    """Gaps (NaN) filled with the previous value, leading ones with the first (uPlot draws no NaN)."""
    out = values.copy()
    seen = np.flatnonzero(~np.isnan(out))
    if seen.size == 0:
        return np.zeros_like(out)
    index = np.maximum.accumulate(np.where(~np.isnan(out), np.arange(len(out)), 0))
    out = out[index]
    out[: seen[0]] = values[seen[0]]
    return out


class TrainingHook:
    """Connects the training loop to a live view: `hook(row)` after each logged row, and
    `wait_if_paused()` at each step (blocks while the viewer's pause button holds)."""

    def __init__(self, view):
        self.view = view

    def __call__(self, row: dict) -> None:
        self.view.progress.add(row)
        self.view.source.pull(force=bool(row.get("final")))

    @property
    def running(self) -> threading.Event:
        return self.view.progress.running


def start_live_viewer(run, task, port: int = 8080, host: str = "127.0.0.1"):
    """A viewer of `task` (being trained into `run`) and the keyword arguments that connect
    `inr.train.loop.train` to it (on_log, running)."""
    import sys

    from .server import Viewer

    viewer = Viewer(run.path, host, port, live=task)
    print(f"inr: viewer at {viewer.url} (live during training)", file=sys.stderr, flush=True)
    hook = TrainingHook(viewer.view)
    return viewer, {"on_log": hook, "running": hook.running}
