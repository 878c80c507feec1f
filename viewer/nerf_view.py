"""The radiance-field view: the scene rendered through the field from the browser's camera (low
resolution while it moves, refined when it stops), RGB / depth / opacity, the training cameras as
frustums with their images, the occupancy grid as a point cloud, an orbit video export."""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from inr.render.radiance import RadianceRenderer
from inr.render.rays import mean_up
from inr.signals.radiance import background_color, load_radiance
from inr.train.nerf import NerfFitConfig, build_renderer

from .base import View, heat, to_uint8
from .cameras import c2w_to_viser, fov_from_focal, render_pinhole
from .render_loop import CameraState
from .server import background
from .source import grid_density, run_field

OUTPUTS = ("rgb", "depth", "opacity")
MAX_FRUSTUMS = 64
THUMBNAIL = 64  # longer side of a frustum's image, in pixels
MAX_GRID_POINTS = 60_000
COARSE = 3  # a moving camera's frames take steps this many times longer (opacity is kept: alpha uses the length)


def nerf_cfg(config: dict) -> NerfFitConfig:
    from inr.cli.options import build_dataclass

    return build_dataclass(NerfFitConfig, config.get("fit") or {})


class NerfView(View):
    frame_seconds = 0.1
    max_pixels = 480 * 360  # a still frame of the CPU path takes a second or two
    chunk = 1 << 13  # rays per render call: how often a stale frame checks whether to give up

    def setup(self) -> None:
        self.cfg = getattr(self, "cfg", None) or nerf_cfg(self.config)
        self.data = self.live.sampler.data if self.live is not None else \
            load_radiance(self.config["data"]["dataset"], "train", self.cfg.downscale)
        self.background = background_color(self.cfg.eval_background)
        cams = self.data.cameras
        self.center = self._center()
        self.up = mean_up(cams).numpy().astype(np.float64)
        self.server.scene.set_up_direction(self.up)
        self._renderer, self._renderer_version = None, -1
        gui = self.server.gui
        with gui.add_folder("Radiance field"):
            self.output = gui.add_dropdown("Output", OUTPUTS, initial_value="rgb")
            self.show_cameras = gui.add_checkbox("Training cameras", True)
            self.show_grid = gui.add_checkbox("Occupancy grid", False)
            self.stats = gui.add_markdown("")
            self.orbit_button = gui.add_button("Export orbit video")
        self.output.on_update(lambda _: self.redraw())
        self.show_cameras.on_update(lambda _: self._set_cameras_visible())
        self.show_grid.on_update(lambda _: self._draw_grid())
        self.orbit_button.on_click(lambda event: background(self.export_orbit, event.client))
        self._frustums = self._draw_cameras()
        self._grid_handle = None

    # -- weights -------------------------------------------------------------------------------
    def live_module(self, task) -> nn.Module:
        self.march = task.renderer.cfg
        return nn.ModuleDict({"field": task.model, "grid": task.grid})

    def run_module(self, model_state: dict, task_state: dict | None) -> nn.Module:
        if not hasattr(self, "cfg"):
            self.cfg = nerf_cfg(self.config)
        field = run_field(self.run, self.config, model_state)
        data = self.config["data"]
        renderer = build_renderer(field, torch.tensor(data["aabb"]), data["aabb_scale"], self.cfg)
        density = grid_density(self.run, task_state)
        if density.shape != renderer.grid.density.shape:
            from inr.errors import InputError

            raise InputError(f"{self.run.path}: occupancy grid of shape {tuple(density.shape)}, "
                             f"the config implies {tuple(renderer.grid.density.shape)}")
        renderer.grid.density.copy_(density)
        renderer.grid.refresh()
        self.march = renderer.cfg  # with the cone angle build_renderer derives
        return nn.ModuleDict({"field": field, "grid": renderer.grid})

    def weights_changed(self) -> None:
        if self.show_grid.value:
            self._draw_grid()
        self.redraw()

    def renderer(self, coarse: bool = False) -> RadianceRenderer:
        """A renderer of the source's current weights (rebuilt only when they change)."""
        version, module = self.source.version, self.source.module
        if self._renderer_version != version:
            fine = RadianceRenderer(module["field"], module["grid"], self.march)
            quick = RadianceRenderer(module["field"], module["grid"], self.march)
            quick.step_size *= COARSE
            self._renderer, self._renderer_version = (fine, quick), version
        return self._renderer[coarse]

    # -- rendering -----------------------------------------------------------------------------
    def render(self, camera: CameraState, width: int, height: int, abort, still: bool = True) -> np.ndarray | None:
        out = self.render_maps(camera.c2w, camera.fov, width, height, abort, coarse=not still)
        if out is None:
            return None
        return self.colorize(out, self.output.value)

    def render_maps(self, c2w: np.ndarray, fov: float, width: int, height: int, abort=lambda: False,
                    coarse: bool = False) -> dict | None:
        """{"rgb", "depth", "opacity"} [H, W, C] tensors of a pinhole camera, or None when aborted.
        `coarse`: steps COARSE times longer along the rays (a moving camera's quick frames)."""
        renderer, background = self.renderer(coarse), self.background.to(self.device)

        def rays(o, d):
            out = renderer.render(o, d, background)
            return torch.cat([out["rgb"], out["depth"], out["opacity"]], -1)

        img = render_pinhole(c2w, fov, width, height, rays, self.device, self.chunk, abort)
        if img is None:
            return None
        img = img.view(height, width, 5).cpu()
        return {"rgb": img[..., :3], "depth": img[..., 3:4], "opacity": img[..., 4:5]}

    def colorize(self, out: dict, kind: str) -> np.ndarray:
        if kind == "rgb":
            return to_uint8(out["rgb"])
        alpha = out["opacity"].clamp(0, 1)[..., 0].numpy()
        if kind == "opacity":
            return to_uint8(np.repeat(alpha[..., None], 3, -1))
        depth = (out["depth"][..., 0] / out["opacity"][..., 0].clamp_min(1e-6)).numpy()
        seen = alpha > 0.5
        lo, hi = (float(depth[seen].min()), float(depth[seen].max())) if seen.any() else (0.0, 1.0)
        rgb = heat(hi - depth, 0.0, max(hi - lo, 1e-6)).astype(np.float32)  # near: warm, far: cool
        bg = self.background.numpy() * 255
        return (rgb * alpha[..., None] + bg * (1 - alpha[..., None]) + 0.5).astype(np.uint8)

    # -- scene ---------------------------------------------------------------------------------
    def _center(self) -> np.ndarray:
        aabb = np.asarray(self.config["data"]["aabb"], np.float64)
        return (aabb[:3] + aabb[3:]) / 2

    def training_view(self, i: int) -> tuple[np.ndarray, float]:
        """(OpenGL c2w, vertical fov) of training camera i."""
        cams = self.data.cameras
        return cams.c2w[i].numpy().astype(np.float64), fov_from_focal(float(cams.fy[i]), cams.height)

    def on_connect(self, client) -> None:
        c2w, fov = self.training_view(0)
        set_client_camera(client, c2w, fov, self.center)

    def _draw_cameras(self) -> list:
        cams, _images = self.data.cameras, self.data.images
        n = len(cams)
        k = min(n, MAX_FRUSTUMS)  # evenly spread over the cameras
        picks = sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)})
        scale = 0.08 * float(np.linalg.norm(cams.c2w[:, :3, 3].numpy() - self.center, axis=1).mean())
        step = max(1, math.ceil(max(cams.width, cams.height) / THUMBNAIL))
        handles = []
        for i in picks:
            c2w, fov = self.training_view(i)
            wxyz, position = c2w_to_viser(c2w)
            img = self.data.view(i, self.background)[::step, ::step]
            h = self.server.scene.add_camera_frustum(
                f"/cameras/{i}", fov=fov, aspect=cams.width / cams.height, scale=scale, image=to_uint8(img),
                wxyz=wxyz, position=position, color=(60, 60, 200), thickness=scale * 0.02,
                visible=self.show_cameras.value)
            h.on_click(lambda event, c2w=c2w, fov=fov: set_client_camera(event.client, c2w, fov, self.center))
            handles.append(h)
        return handles

    def _set_cameras_visible(self) -> None:
        for h in self._frustums:
            h.visible = self.show_cameras.value

    def _draw_grid(self) -> None:
        if not self.show_grid.value:
            if self._grid_handle is not None:
                self._grid_handle.visible = False
            return
        grid = self.source.module["grid"]
        points = grid.points().cpu().numpy()
        size = float(grid.half_extent.max()) * 2 / grid.resolution
        if len(points) > MAX_GRID_POINTS:
            points = points[np.random.default_rng(0).choice(len(points), MAX_GRID_POINTS, replace=False)]
        self._grid_handle = self.server.scene.add_point_cloud(
            "/occupancy", points=points.astype(np.float32), colors=(230, 120, 20), point_size=size * 0.6)

    def export_orbit(self, client, frames: int = 48, height: int = 240) -> bytes:
        """An orbit around the scene centre through the training cameras' mean distance and
        elevation, as an MP4 (a GIF where imageio-ffmpeg is missing) sent to `client` (also returned)."""
        from inr.render.rays import orbit_like
        from inr.signals.video import encode_video

        cams = self.data.cameras
        poses = orbit_like(cams, self.center, frames).numpy()
        _, fov = self.training_view(0)
        width = round(height * cams.width / cams.height)
        self.stats.content = "rendering the orbit video..."
        images = [self.colorize(self.render_maps(p, fov, width, height), self.output.value) for p in poses]
        data, suffix = encode_video(images, 24, ".mp4")
        self.stats.content = f"orbit video: {frames} frames at {width}x{height}"
        if client is not None:
            client.send_file_download(f"orbit{suffix}", data)
        return data


def set_client_camera(client, c2w: np.ndarray, fov: float, center: np.ndarray) -> None:
    """Point a browser's camera as the OpenGL camera c2w, orbiting about the point in front of it
    nearest to `center`."""
    eye, look = c2w[:3, 3], -c2w[:3, 2]
    distance = max(float((center - eye) @ look), 1e-3)
    with client.atomic():
        client.camera.fov = fov
        client.camera.position = eye
        client.camera.look_at = eye + look * distance
        client.camera.up_direction = c2w[:3, 1]
