"""What every view shares: a render loop per browser, the weights source, the training panel."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from inr.backends import active_backend

from .cameras import AdaptiveResolution
from .live import Progress
from .render_loop import CameraState, ClientRenderLoop
from .source import FieldSource, LiveSource, RunWatcher, run_field, run_state

# Where a run directory's field is rendered (a live view renders where training runs).
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


class View:
    """Subclasses give `live_module(task)`, `run_module(model_state, task_state)` and
    `render(camera, width, height, abort)`, and may add GUI in `setup()` and per client in
    `on_connect(client)`."""

    frame_seconds = 0.12  # target render time of a frame while the camera moves
    max_pixels = 1 << 20   # cap of a still frame

    def __init__(self, server, run, config: dict, live=None):
        self.server, self.run, self.config, self.live = server, run, config, live
        # the command's backend (a live view is built inside the fit's scope); the render threads
        # are not, so each frame enters it again
        self.backend = active_backend()
        self.loops: dict[int, ClientRenderLoop] = {}
        self.closed = False
        self.progress = Progress(server.gui, pausable=live is not None)
        self.watcher = None
        if live is not None:
            self.source: FieldSource = LiveSource(self.live_module(live))
        else:
            self.source = FieldSource(self.run_module(*run_state(run)).to(DEVICE))
        self.setup()
        self.source.listeners.append(self.weights_changed)
        if live is None:
            self.watcher = RunWatcher(run, self.progress.set_rows, self.reload)

    # -- to override ---------------------------------------------------------------------------
    def live_module(self, task) -> nn.Module:
        return task.model

    def run_module(self, model_state: dict, task_state: dict | None) -> nn.Module:
        return run_field(self.run, self.config, model_state)

    def setup(self) -> None:
        pass

    def on_connect(self, client) -> None:
        pass

    def weights_changed(self) -> None:
        self.redraw()

    @property
    def device(self) -> torch.device:
        """Where the current weights are (rays and coordinates go there)."""
        return next(self.source.module.parameters()).device

    def draws_background(self) -> bool:
        """Whether frames are rendered now (a view may show only scene objects)."""
        return True

    def render(self, camera: CameraState, width: int, height: int, abort, still: bool = True) -> np.ndarray | None:
        raise NotImplementedError

    # -- shared --------------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the run directory's newest weights (a fit in another process moved on)."""
        module = self.run_module(*run_state(self.run)).to(DEVICE)
        if not self.closed:
            self.source.replace(module)

    def connect(self, client) -> None:
        resolution = AdaptiveResolution(frame_seconds=self.frame_seconds, max_pixels=self.max_pixels)
        self.on_connect(client)
        loop = ClientRenderLoop(client, self._render_on_backend, resolution, enabled=self.draws_background())
        self.loops[client.client_id] = loop
        loop.request()

    def _render_on_backend(self, *args) -> np.ndarray | None:
        with self.backend.active():
            return self.render(*args)

    def disconnect(self, client) -> None:
        loop = self.loops.pop(client.client_id, None)
        if loop is not None:
            loop.stop()

    def redraw(self) -> None:
        for loop in list(self.loops.values()):
            loop.request()

    def close(self) -> None:
        self.closed = True
        if self.watcher is not None:
            self.watcher.stop()
        for loop in list(self.loops.values()):
            loop.stop()


def to_uint8(image) -> np.ndarray:
    """[H, W, C] floats in [0, 1] (a tensor or an array) to uint8 RGB."""
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, -1)
    return (np.clip(a[..., :3], 0, 1) * 255 + 0.5).astype(np.uint8)


def heat(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """A perceptual-ish colour map (dark blue - cyan - yellow - red) of values in [lo, hi], uint8 [..., 3]."""
    t = np.clip((np.asarray(values, np.float64) - lo) / max(hi - lo, 1e-12), 0, 1)[..., None]
    stops = np.array([[0.05, 0.03, 0.3], [0.1, 0.5, 0.9], [0.3, 0.85, 0.6], [0.98, 0.9, 0.2], [0.85, 0.1, 0.1]])
    x = t * (len(stops) - 1)
    i = np.clip(np.floor(x).astype(int), 0, len(stops) - 2)[..., 0]
    f = x - i[..., None]
    rgb = stops[i] * (1 - f) + stops[i + 1] * f
    return (rgb * 255 + 0.5).astype(np.uint8)
