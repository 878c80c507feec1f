"""The view of a text-to-NeRF generator run (`inr train generator text`): type a caption, see the
NeRF the generator makes of it, rendered live from the browser's camera.

Two caption boxes and a slider t in [0, 1]: the shown NeRF is generated from
lerp(cond(caption A), cond(caption B), t), where cond is the generator's conditioning token
(`hyper.condition`: the conditioning transformer's output over the caption's token embeddings,
[d_model]), which is what every generated layer reads; the dynamic heads then probe the blended
network as usual. So t = 0 is caption A's generation and t = 1 caption B's, exactly. (HyperFields
interpolates between scenes in its conditioning space too; blending this token linearly, rather
than the token embeddings or the pooled sentence embedding, is our choice: it is the one vector per
caption the generated weights depend on, and captions of different lengths need no alignment.)

Captions are encoded through the run's embedding cache (`text_embeddings.safetensors`): the
training captions never load the text model; a new caption loads it once. The view never writes
into the run directory (each keystroke's partial caption would otherwise land in its cache).
Rendering is dense (stratified samples in the object box, as the generator's training and
evaluation render), fewer samples while the camera moves.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inr.errors import InputError

from .base import DEVICE, View, to_uint8
from .cameras import fov_from_focal, render_pinhole
from .nerf_view import set_client_camera
from .render_loop import CameraState
from .server import background

COARSE = 3  # a moving camera's frames take this many times fewer samples per ray


class GeneratedNerf(nn.Module):
    """The generator with one scene's generated MLP weights: what the view renders."""

    def __init__(self, generator: nn.Module, params: dict[str, torch.Tensor]):
        super().__init__()
        self.generator, self.params = generator, params

    def forward(self, x: torch.Tensor, d: torch.Tensor):
        return self.generator.field(x, d, self.params)


class TextGeneratorView(View):
    frame_seconds = 0.1
    max_pixels = 320 * 240  # dense sampling: a still frame on the CPU takes a second or two
    chunk = 1 << 12  # rays per render call: how often a stale frame checks whether to give up

    def __init__(self, server, run, config: dict, live=None):
        from inr.cli.text_commands import EMBEDDINGS
        from inr.generate.text_encoder import EmbeddingCache, require_text_extra

        require_text_extra()  # one line naming `pip install 'inr[text]'` before anything is served
        self.cache = EmbeddingCache(run.path / EMBEDDINGS)
        self.cache.path = None  # read the run's cache, never write it (see the module docstring)
        scenes = config.get("scenes") or []
        captions = [s["caption"] for s in scenes if s.get("split") == "train"] or [s["caption"] for s in scenes]
        held = [s["caption"] for s in scenes if s.get("split") == "heldout"]
        if not captions:
            raise InputError(f"{run.path}: a text-generator run without scenes in its config.json")
        self.captions = [captions[0], (held or captions[1:] or captions)[0]]
        self.t = 0.0
        self._conds: dict[str, torch.Tensor] = {}
        self._lock, self._dirty, self._busy = threading.Lock(), False, False
        super().__init__(server, run, config, live)

    # -- weights -------------------------------------------------------------------------------
    def run_module(self, model_state: dict, task_state: dict | None) -> nn.Module:
        from inr.cli.text_commands import generator_from_state

        self.cfg, generator = generator_from_state(self.run, self.config, model_state)
        self.generator = generator.to(DEVICE).eval()
        self._conds = {}  # new weights: new conditioning tokens
        return self.generate(*self.captions, self.t)

    def condition(self, caption: str) -> torch.Tensor:
        """The generator's conditioning token [1, d_model] of one caption (cached per caption)."""
        from inr.generate.text_encoder import batch_tokens

        if caption not in self._conds:
            tokens, mask = batch_tokens(self.cache.get([caption]), next(self.generator.parameters()).device)
            with torch.no_grad():
                self._conds[caption] = self.generator.hyper.condition(tokens, mask)
        return self._conds[caption]

    @torch.no_grad()
    def generate(self, caption_a: str, caption_b: str, t: float) -> GeneratedNerf:
        """The NeRF of lerp(cond(a), cond(b), t)."""
        cond = torch.lerp(self.condition(caption_a), self.condition(caption_b), float(t))
        return GeneratedNerf(self.generator, self.generator.params_from_condition(cond))

    def show(self, caption_a: str | None = None, caption_b: str | None = None, t: float | None = None) -> None:
        """Generate and show the NeRF of these captions and t (what the text boxes and slider do)."""
        from inr.generate.text_encoder import check_caption

        a = check_caption(caption_a if caption_a is not None else self.captions[0], "caption A")
        b = check_caption(caption_b if caption_b is not None else self.captions[1], "caption B")
        t = self.t if t is None else min(max(float(t), 0.0), 1.0)
        module = self.generate(a, b, t)
        self.captions, self.t = [a, b], t
        self.source.replace(module)

    # -- GUI -----------------------------------------------------------------------------------
    def setup(self) -> None:
        from inr.train.generator_text import OBJECT_BOX

        self.box = torch.tensor(OBJECT_BOX)
        self.background = torch.ones(3)  # white, as the generator is evaluated
        self.server.scene.set_up_direction((0.0, 0.0, 1.0))  # the collections' scenes are Blender's, +z up
        gui = self.server.gui
        with gui.add_folder("Text to NeRF"):
            self.text_a = gui.add_text("Caption A", initial_value=self.captions[0])
            self.text_b = gui.add_text("Caption B", initial_value=self.captions[1])
            self.slider = gui.add_slider("t (A to B)", min=0.0, max=1.0, step=0.01, initial_value=self.t)
            self.status = gui.add_markdown(self._label())
        for handle in (self.text_a, self.text_b, self.slider):
            handle.on_update(lambda _: self.request())

    def _label(self) -> str:
        a, b = self.captions
        return f"**{a}**" if self.t == 0 else f"**{b}**" if self.t == 1 else f"**{a}** to **{b}** at t = {self.t:.2f}"

    def request(self) -> None:
        """Regenerate from the GUI's current values on a background thread; requests arriving
        meanwhile (a caption typed key by key, a dragged slider) collapse into one more run."""
        with self._lock:
            self._dirty = True
            if self._busy:
                return
            self._busy = True
        background(self._drain)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._dirty:
                    self._busy = False
                    return
                self._dirty = False
            try:
                self.status.content = "generating..."
                self.show(self.text_a.value, self.text_b.value, self.slider.value)
                self.status.content = self._label()
            except InputError as e:  # an empty caption: say so, keep showing the last NeRF
                self.status.content = str(e)

    # -- rendering -----------------------------------------------------------------------------
    def render(self, camera: CameraState, width: int, height: int, abort, still: bool = True) -> np.ndarray | None:
        rgb = self.render_rgb(camera.c2w, camera.fov, width, height, abort, coarse=not still)
        return None if rgb is None else to_uint8(rgb)

    def render_rgb(self, c2w: np.ndarray, fov: float, width: int, height: int, abort=lambda: False,
                   coarse: bool = False) -> torch.Tensor | None:
        """Colour [H, W, 3] of the current NeRF seen by a pinhole camera, or None when aborted."""
        from inr.render.dense import render_dense

        module, device = self.source.module, self.device
        samples = max(8, self.cfg.samples // COARSE) if coarse else self.cfg.samples
        box, bg = self.box.to(device), self.background.to(device)
        rgb = render_pinhole(c2w, fov, width, height,
                             lambda o, d: render_dense(module, o[None], d[None], box, samples, bg)[0][0],
                             device, self.chunk, abort)
        return None if rgb is None else rgb.view(height, width, 3).clamp(0, 1).cpu()

    def home_camera(self) -> tuple[np.ndarray, float]:
        """(OpenGL c2w, vertical fov): the first training scene's first camera, or an orbit view."""
        from inr.cli.text_commands import _scene_path
        from inr.render.rays import orbit_poses
        from inr.signals.radiance import load_radiance

        try:
            scene = _scene_path(self.config, Path(self.config["collection"]) / self.config["scenes"][0]["name"])
            cams = load_radiance(scene, "train").cameras
            return cams.c2w[0].numpy().astype(np.float64), fov_from_focal(float(cams.fy[0]), cams.height)
        except (InputError, OSError, KeyError, ValueError):  # the collection moved: a view from 4 units out
            return orbit_poses(1, 4.0, 30.0)[0].numpy().astype(np.float64), math.radians(40.0)

    def on_connect(self, client) -> None:
        c2w, fov = self.home_camera()
        set_client_camera(client, c2w, fov, np.zeros(3))
