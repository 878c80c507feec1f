"""The view of a few-view generator run (`inr train generator views`): pick a scene of a collection
(the one the generator was trained on, or `inr view RUN --collection DIR`) and its support views;
the generator makes that scene's NeRF in one forward pass (`generate_for`, as training evaluates
it) and the generated field renders live from the browser's camera. The panel shows a chosen test
view's ground truth beside the generated render of the same camera, with its PSNR; the support and
test cameras are frustums (click one to look through it).

Frames are rendered as the generator renders while training (`FewViewGenerator.render`: uniform
samples in the scene box, no occupancy grid), so what is shown is what was trained and evaluated;
a scene written with `inr generate nerf` is the same field, rendered by the NeRF view."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from inr.errors import InputError
from inr.generate.views import load_generator, pick_views
from inr.render.rays import mean_up
from inr.signals.metrics import psnr
from inr.signals.scene_collection import load_scene_collection
from inr.train.generator_views import generate_for, load_scenes

from .base import View, to_uint8
from .cameras import c2w_to_viser, fov_from_focal, render_pinhole
from .nerf_view import set_client_camera
from .render_loop import CameraState
from .server import background

PANEL = 160  # displayed height of the ground truth | generated panel, in pixels (nearest upscaling)


def parse_indices(text: str) -> list[int]:
    """View indices from "0, 2 4" (commas or spaces); ValueError on anything else."""
    return [int(t) for t in text.replace(",", " ").split()]


class GeneratorViewsView(View):
    frame_seconds = 0.1
    max_pixels = 320 * 240  # every pixel takes samples_per_ray field evaluations (no empty-space skipping)
    chunk = 1 << 12  # rays per render call: how often a stale frame checks whether to give up

    def __init__(self, server, run, config: dict, live=None, collection: str | None = None):
        if live is not None:
            raise InputError(f"{run.path}: a few-view generator has no live view; open its run with `inr view`")
        path = collection or (config.get("data") or {}).get("collection")
        if collection is not None and not Path(collection).is_dir():
            raise InputError(f"{collection}: no such collection (--collection)")
        if not path or not Path(path).is_dir():
            raise InputError(f"{run.path}: the collection it was trained on ({path}) is missing; pass --collection DIR")
        self.collection = load_scene_collection(path)
        # held-out scenes first: the ones the generator never saw
        self.scenes = self.collection.split("heldout") + self.collection.split("train")
        self._loaded: dict[str, object] = {}
        self.params, self.generated = None, 0  # the generated fields, and how many times they were made
        self._made: tuple | None = None  # (scene, supports, weights version) of the params
        self._lock = threading.RLock()  # GUI callbacks run on their own threads
        super().__init__(server, run, config, live)

    # -- weights -------------------------------------------------------------------------------
    def run_module(self, model_state: dict, task_state: dict | None) -> nn.Module:
        model, _ = load_generator(self.run.path)
        return model

    @property
    def model(self):
        return self.source.module

    def weights_changed(self) -> None:
        background(self.regenerate)  # a newer checkpoint: the same scene and supports through the new weights

    # -- GUI -----------------------------------------------------------------------------------
    def setup(self) -> None:
        self.background = torch.ones(3)  # white, as the generator is evaluated
        aabb = np.asarray(self.config["model"]["aabb"], np.float64)
        self.center = (aabb[:3] + aabb[3:]) / 2
        labels = [self._label(s) for s in self.scenes]
        gui = self.server.gui
        with gui.add_folder("Few-view generator"):
            self.scene_choice = gui.add_dropdown("Scene", labels, initial_value=labels[0])
            self.support_text = gui.add_text("Support views", "", hint=f"training view indices, at most "
                                                                       f"{self.model.cfg.max_support}")
            self.test_choice = gui.add_dropdown("Test view", ["0"], initial_value="0")
            self.to_test = gui.add_button("Look through the test view")
            self.stats = gui.add_markdown("")
            self.panel = gui.add_image(np.zeros((PANEL, 2 * PANEL, 3), np.uint8), label="ground truth | generated")
        self._frustums: list = []
        self.select_scene(0)
        self.scene_choice.on_update(lambda _: background(self.select_scene, labels.index(self.scene_choice.value)))
        self.support_text.on_update(lambda _: background(self.regenerate))
        self.test_choice.on_update(lambda _: background(self._locked, self.show_test_view))
        self.to_test.on_click(lambda _: [set_client_camera(c, *self.test_camera(), self.center)
                                         for c in self.server.get_clients().values()])

    def _locked(self, fn) -> None:
        with self._lock:
            fn()

    def _label(self, scene) -> str:
        return f"{scene.name} (held out)" if scene.split == "heldout" else scene.name

    def scene_views(self, index: int):
        """The SceneViews (training views, test split) of scene `index`, loaded once."""
        scene = self.scenes[index]
        if scene.name not in self._loaded:
            views = load_scenes(_One(scene), scene.split, with_test=True)[0]
            self._loaded[scene.name] = views
        return self._loaded[scene.name]

    def select_scene(self, index: int, support: list[int] | None = None) -> None:
        """Show scene `index` (what the Scene dropdown does): its test views, supports spread evenly
        over its training views (the generator's training count) unless `support` is given."""
        with self._lock:
            self._select_scene(index, support)

    def _select_scene(self, index: int, support: list[int] | None) -> None:
        self.scene = index
        views = self.scene_views(index)
        self.server.scene.set_up_direction(mean_up(views.train.cameras).numpy().astype(np.float64))
        n_test = len(views.test) if views.test is not None else len(views.train)
        self.test_choice.options = [str(i) for i in range(n_test)]
        self.test_choice.value = "0"
        if support is None:
            support = pick_views(len(views.train), min(self.config["fit"]["support"], len(views.train)))
        text = ", ".join(map(str, support))
        if self.support_text.value != text:
            self.support_text.value = text  # its callback finds the fields made by this call
        self.regenerate()

    def support(self) -> list[int] | str:
        """The support view indices in the text field, or why they cannot be used."""
        n = len(self.scene_views(self.scene).train)
        try:
            idx = parse_indices(self.support_text.value)
        except ValueError:
            return f"support views {self.support_text.value!r}: not a list of view indices"
        if not 1 <= len(idx) <= self.model.cfg.max_support:
            return f"{len(idx)} support views; this generator takes 1 to {self.model.cfg.max_support}"
        if not all(0 <= i < n for i in idx):
            return f"the scene has {n} training views (0..{n - 1}); cannot use views {idx}"
        return idx

    def regenerate(self) -> None:
        """One forward pass of the generator from the chosen scene's support views (none when the
        fields of this scene, supports and weights are on view already)."""
        with self._lock:
            self._regenerate()

    def _regenerate(self) -> None:
        idx = self.support()
        if isinstance(idx, str):
            self.stats.content = f"**not generated:** {idx}"
            return
        made = (self.scene, tuple(idx), self.source.version)
        if made == self._made:
            return
        self._made = made
        views = self.scene_views(self.scene)
        t0 = time.perf_counter()
        with self.backend.active():
            params = generate_for(self.model, views.train, len(idx), self.device, indices=idx)
        self.params, self.support_views, self.generated = params, idx, self.generated + 1
        self.generation_seconds = time.perf_counter() - t0
        self._draw_cameras()
        self.show_test_view()
        self.redraw()

    # -- the test view ---------------------------------------------------------------------------
    def test_data(self):
        """The scene's test split (its training views where it has none)."""
        views = self.scene_views(self.scene)
        return views.test if views.test is not None else views.train

    def test_camera(self) -> tuple[np.ndarray, float]:
        """(OpenGL c2w, vertical fov) of the chosen test view."""
        data, i = self.test_data(), int(self.test_choice.value)
        return data.cameras.c2w[i].numpy().astype(np.float64), fov_from_focal(float(data.cameras.fy[i]),
                                                                              data.cameras.height)

    def show_test_view(self) -> None:
        """Ground truth | generated render of the test view in the panel, and its PSNR."""
        data, i = self.test_data(), int(self.test_choice.value)
        truth = data.view(i, self.background)
        with self.backend.active():
            pred = self.model.render_view(self.params, data.cameras, i, self.background.to(self.device)).cpu()
        self.test_psnr = psnr(pred, truth)
        step = max(1, PANEL // data.height)
        pair = torch.cat([truth, pred], 1).repeat_interleave(step, 0).repeat_interleave(step, 1)
        self.panel.image = to_uint8(pair)
        scene = self.scenes[self.scene]
        split = "test" if self.scene_views(self.scene).test is not None else "train"
        self.stats.content = (f"**{self._label(scene)}**: {scene.caption}  \n"
                              f"support views {self.support_views} generated in {self.generation_seconds:.3f} s  \n"
                              f"{split} view {i}: PSNR {self.test_psnr:.2f} dB")

    def _draw_cameras(self) -> None:
        """The support views (blue, with their images) and the test views (orange) as frustums."""
        for h in self._frustums:
            h.remove()
        views, test = self.scene_views(self.scene), self.test_data()
        cams = views.train.cameras
        scale = 0.08 * float(np.linalg.norm(cams.c2w[:, :3, 3].numpy() - self.center, axis=1).mean())
        shown = [("support", views.train, i, (60, 60, 200)) for i in self.support_views]
        shown += [("test", test, i, (230, 120, 20)) for i in range(len(test))]
        self._frustums = []
        for kind, data, i, color in shown:
            c2w = data.cameras.c2w[i].numpy().astype(np.float64)
            fov = fov_from_focal(float(data.cameras.fy[i]), data.cameras.height)
            wxyz, position = c2w_to_viser(c2w)
            h = self.server.scene.add_camera_frustum(
                f"/{kind}/{i}", fov=fov, aspect=data.cameras.width / data.cameras.height, scale=scale,
                image=to_uint8(data.view(i, self.background)), wxyz=wxyz, position=position, color=color,
                thickness=scale * 0.02)
            h.on_click(lambda event, c2w=c2w, fov=fov: set_client_camera(event.client, c2w, fov, self.center))
            self._frustums.append(h)

    # -- rendering -----------------------------------------------------------------------------
    def on_connect(self, client) -> None:
        set_client_camera(client, *self.test_camera(), self.center)

    def render(self, camera: CameraState, width: int, height: int, abort, still: bool = True) -> np.ndarray | None:
        rgb = self.render_rgb(camera.c2w, camera.fov, width, height, abort)
        return None if rgb is None else to_uint8(rgb)

    def render_rgb(self, c2w: np.ndarray, fov: float, width: int, height: int, abort=lambda: False):
        """The generated field's image [H, W, 3] of a pinhole camera, or None when aborted."""
        params, bg = self.params, self.background.to(self.device)
        rgb = render_pinhole(c2w, fov, width, height,
                             lambda o, d: self.model.render(params, o[None], d[None], bg)["rgb"][0],
                             self.device, self.chunk, abort)
        return None if rgb is None else rgb.view(height, width, 3).clamp(0, 1).cpu()


class _One:
    """A one-scene stand-in for a SceneCollection (what `load_scenes` reads)."""

    def __init__(self, scene):
        self.scene = scene

    def split(self, name: str) -> list:
        return [self.scene] if self.scene.split == name else []
