"""The image view: the fitted image on a plane, re-queried at the screen's resolution wherever the
browser's camera looks (pan and zoom are continuous super-resolution), beside the ground truth and
an error heat map, with a PSNR readout and a crop export. An HC-INR field's warp can be drawn over
the fitted image as a deformed grid (the warped positions of a regular lattice, `warp_overlay`).

The plane is z = 0 of the scene, y up: image coordinates (u, v) in [-1, 1]^2 (x right, y down,
`inr.signals.image.pixel_coords`) sit at (u * sx, -v * sy) with (sx, sy) the image's aspect, the
longer side spanning [-1, 1]. Every screen pixel's ray meets the plane at one (u, v) - the field is
evaluated there, so any zoom, pan or tilt shows the field at screen resolution.
"""
from __future__ import annotations

import io
import math
import time

import numpy as np
import torch

from inr.signals.image import render_image
from inr.signals.metrics import psnr

from .base import View, heat, to_uint8
from .cameras import pinhole
from .render_loop import CameraState
from .server import background
from .warp_overlay import has_warp, lattice_segments

GAP = 0.1       # between the panels, in scene units
BACKDROP = 0.16  # grey around the fitted image
MAX_EXPORT = 4096
FACING = (0.0, 1.0, 0.0, 0.0)  # viser draws an image's top row at its local -y: turn it about x to face +z, top up
WARP_LINES = 24  # lattice lines per direction of the deformed grid
WARP_COLOR = (255, 220, 60)


class ImageView(View):
    frame_seconds = 0.08
    max_pixels = 1920 * 1080
    chunk = 1 << 16

    def setup(self) -> None:
        data = self.config["data"]
        self.height, self.width = data["height"], data["width"]
        self.target = self.load_target()
        self.clamp = bool(self.target.min() >= 0 and self.target.max() <= 1)
        side = max(self.height, self.width)
        self.sx, self.sy = self.width / side, self.height / side
        self.server.scene.set_up_direction("+y")
        gui = self.server.gui
        with gui.add_folder("Image"):
            self.readout = gui.add_markdown("")
            self.show_target = gui.add_checkbox("Ground truth and error", True)
            self.export = gui.add_button("Export crop (PNG)")
        self.show_target.on_update(lambda _: self._set_panels_visible())
        self.show_warp = self._warp = None
        if has_warp(self.source.module):
            with gui.add_folder("Warp (HC-INR)"):
                self.show_warp = gui.add_checkbox("Deformed grid", False)
                self.warp_gain = gui.add_slider("Exaggeration", 1.0, 50.0, 1.0, 1.0)
                self.warp_info = gui.add_markdown("")
            for handle in (self.show_warp, self.warp_gain):
                handle.on_update(lambda _: self.update_warp())
        self.export.on_click(lambda event: background(self.export_crop, event.client))
        self._target = self._panel("/target", to_uint8(self.target), 1, "ground truth")
        self._error: list = []
        self._error_at = 0.0
        self.update_error()

    def load_target(self) -> torch.Tensor:
        """The ground truth [H, W, C] the fitted image is compared with."""
        from scenes import resolve_image

        if self.live is not None:
            return self.live.image.cpu()
        return resolve_image(self.config["data"]["source"], self.config["fit"].get("size"))

    def _panel(self, name: str, image: np.ndarray, slot: int, label: str) -> list:
        """An image beside the fitted one (slot 1, 2, ...) with its label; returns the handles."""
        scene, visible = self.server.scene, self.show_target.value
        return [scene.add_image(name, image, 2 * self.sx, 2 * self.sy, format="png", visible=visible, wxyz=FACING,
                                position=(slot * (2 * self.sx + GAP), 0.0, 0.0), cast_shadow=False, receive_shadow=False),
                scene.add_label(f"{name}/label", label, position=(0.0, self.sy + 0.06, 0.0), visible=visible)]

    def _set_panels_visible(self) -> None:
        for handle in self._target + self._error:
            handle.visible = self.show_target.value

    def weights_changed(self) -> None:
        if time.monotonic() - self._error_at > 2.0:  # the error map costs a full render: at most every 2 s
            self.update_error()
        self.update_warp()
        self.redraw()

    def update_warp(self) -> None:
        """Draw (or hide) the deformed grid: the lattice's warped positions as line segments just
        in front of the fitted image, displacements times the exaggeration slider."""
        if self.show_warp is None:
            return
        if not self.show_warp.value:
            if self._warp is not None:
                self._warp.visible = False
            return
        gain = float(self.warp_gain.value)
        seg, largest = lattice_segments(self.source.module, WARP_LINES, gain=gain)
        # image (u, v) -> the plane's (u * sx, -v * sy), a hair in front of the fitted image
        points = np.stack([seg[..., 0] * self.sx, -seg[..., 1] * self.sy, np.full(seg.shape[:2], 1e-3)], -1)
        self._warp = self.server.scene.add_line_segments("/warp", points.astype(np.float32), WARP_COLOR,
                                                         thickness=1.5, thickness_units="screen")
        self.warp_segments = seg
        pixels = largest * max(self.width, self.height) / 2  # [-1, 1] spans the longer side
        self.warp_info.content = (f"{WARP_LINES}x{WARP_LINES} lattice, displacements drawn x{gain:g}; "
                                  f"largest |x_L - x| = {largest:.3g} ({pixels:.2f} px)")

    def update_error(self) -> None:
        """The PSNR readout and the error heat map at the fitted resolution."""
        self._error_at = time.monotonic()
        pred = self.field_image(self.height, self.width)
        err = (pred - self.target).abs().mean(-1).numpy()
        value = float(psnr(pred, self.target))
        hi = max(float(np.quantile(err, 0.99)), 1e-6)
        self.readout.content = (f"**PSNR** {value:.2f} dB at {self.width}x{self.height} · "
                                f"error map: mean |error| per pixel, red = {hi:.3g}")
        self._error = self._panel("/error", heat(err, 0.0, hi), 2, "error")
        self.psnr = value

    def field_image(self, height: int, width: int, crop=None) -> torch.Tensor:
        """The field rendered over a pixel grid (the whole image, or crop (x0, y0, x1, y1))."""
        out = render_image(self.source.module, height, width, crop=crop).cpu()
        return out.clamp(0, 1) if self.clamp else out

    # -- rendering -----------------------------------------------------------------------------
    def plane_coords(self, camera: CameraState, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image coordinates (u, v) [H*W, 2] where each screen pixel's ray meets the plane, and
        whether it meets the fitted image there [H*W]."""
        origins, dirs = pinhole(camera.c2w, camera.fov, width, height).view_rays(0)
        dz = torch.where(dirs[:, 2].abs() < 1e-9, torch.full_like(dirs[:, 2], -1e-9), dirs[:, 2])
        t = -origins[:, 2] / dz
        p = origins + t[:, None] * dirs
        uv = torch.stack([p[:, 0] / self.sx, -p[:, 1] / self.sy], -1)
        inside = (t > 0) & (uv.abs() <= 1).all(-1)
        return uv, inside

    def render(self, camera: CameraState, width: int, height: int, abort, still: bool = True) -> np.ndarray | None:
        uv, inside = self.plane_coords(camera, width, height)
        field, device = self.source.module, self.device
        channels = self.target.shape[-1]
        out = torch.full((uv.shape[0], channels), BACKDROP)
        idx = torch.nonzero(inside).squeeze(-1)
        with torch.no_grad():
            for part in idx.split(self.chunk):
                if abort():
                    return None
                y = field(uv[part].float().to(device))
                out[part] = (y.clamp(0, 1) if self.clamp else y).reshape(len(part), -1).float().cpu()
        return to_uint8(out.view(height, width, channels))

    # -- export --------------------------------------------------------------------------------
    def visible_window(self, camera: CameraState) -> tuple[float, float, float, float] | None:
        """The part of the image the screen shows, (x0, y0, x1, y1) in image coordinates."""
        uv, inside = self.plane_coords(camera, 96, max(8, round(96 / camera.aspect)))
        if not bool(inside.any()):
            return None
        # A screen edge that leaves the image clips the window at the image's border.
        lo, hi = uv[inside].amin(0).clamp(-1, 1), uv[inside].amax(0).clamp(-1, 1)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])

    def export_crop(self, client) -> bytes | None:
        """The visible part of the fitted image at the screen's resolution, as a PNG download."""
        import imageio.v3 as iio

        camera = CameraState.of(client.camera)
        window = self.visible_window(camera)
        if window is None:
            client.add_notification("Nothing to export", "The fitted image is not in view.", auto_close_seconds=4.0)
            return None
        x0, y0, x1, y1 = window
        # Screen pixels per image unit where the view is centred: the plane's distance along the look axis.
        distance = abs(float(camera.c2w[2, 3]))
        per_unit = camera.screen_height / (2 * distance * math.tan(camera.fov / 2))
        width = int(min(MAX_EXPORT, max(8, round((x1 - x0) * self.sx * per_unit))))
        height = int(min(MAX_EXPORT, max(8, round((y1 - y0) * self.sy * per_unit))))
        image = to_uint8(self.field_image(height, width, crop=window))
        buf = io.BytesIO()
        iio.imwrite(buf, image, extension=".png")
        data = buf.getvalue()
        client.send_file_download(f"crop_{width}x{height}.png", data)
        return data

    def on_connect(self, client) -> None:
        # Frame the fitted image, the ground truth and the error map, seen straight on.
        half_width = 3 * self.sx + GAP
        distance = 1.08 * half_width / (client.camera.aspect * math.tan(client.camera.fov / 2))
        distance = max(distance, 1.15 * self.sy / math.tan(client.camera.fov / 2))
        center = np.array([2 * self.sx + GAP, 0.0, 0.0])
        with client.atomic():
            client.camera.up_direction = (0.0, 1.0, 0.0)
            client.camera.position = center + (0.0, 0.0, distance)
            client.camera.look_at = center
