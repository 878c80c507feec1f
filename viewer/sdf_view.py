"""The SDF view, in the field's frame ([-1, 1]^3, y up): the marching-cubes mesh at a chosen
resolution, a slice plane through the field drawn as a signed-distance heat map with the zero level
set (or, for an HC-INR field, its warp: |x_L - x| as a heat map, `warp_overlay`), and a
sphere-traced shaded render from the browser's camera."""
from __future__ import annotations

import math
import threading

import numpy as np
import torch

from inr.render.marching_cubes import evaluate, extract_mesh
from inr.render.sphere_trace import orbit_camera, render_sdf

from .base import View, heat, to_uint8
from .cameras import matrix_to_quat
from .render_loop import CameraState
from .server import background
from .warp_overlay import displacement, has_warp

DISPLAYS = ("mesh", "sphere-traced")
AXES = {"x": 0, "y": 1, "z": 2}
SLICE_PIXELS = 192
INITIAL_FOV = 40.0  # degrees, as `inr render sdf`
SLICE_SHOWS = ("signed distance", "warp |x_L - x|")  # the second for fields with a warp (HC-INR)


def slice_points(axis: int, offset: float, n: int) -> torch.Tensor:
    """Points [n*n, 3] of an n x n grid on the plane {p[axis] = offset} in [-1, 1]^3, row-major with
    rows going down the plane's second in-plane axis from +1 to -1 (image order)."""
    a, b = [i for i in range(3) if i != axis]
    t = (torch.arange(n, dtype=torch.float32) + 0.5) / n * 2 - 1
    rows, cols = torch.meshgrid(-t, t, indexing="ij")
    p = torch.zeros(n, n, 3)
    p[..., a], p[..., b], p[..., axis] = cols, rows, offset
    return p.reshape(-1, 3)


def sdf_colors(values: np.ndarray, scale: float = 0.5) -> np.ndarray:
    """Signed distances [H, W] as uint8 RGB: blue inside, orange outside, bands every 0.1, the
    zero level set in black (after Inigo Quilez's distance visualisations)."""
    d = np.asarray(values, np.float64)
    base = np.where(d[..., None] > 0, np.array([0.95, 0.6, 0.25]), np.array([0.3, 0.55, 0.95]))
    col = base * (1 - np.exp(-3.0 * np.abs(d)[..., None] / scale))
    col = col * (0.8 + 0.2 * np.cos(2 * np.pi * d / 0.1))[..., None]
    col = col + (1 - col) * 0.25
    # The level set: where the sign changes between neighbours.
    sign = d > 0
    edge = np.zeros_like(sign)
    edge[:-1] |= sign[:-1] != sign[1:]
    edge[1:] |= sign[:-1] != sign[1:]
    edge[:, :-1] |= sign[:, :-1] != sign[:, 1:]
    edge[:, 1:] |= sign[:, :-1] != sign[:, 1:]
    col[edge] = 0.0
    return (np.clip(col, 0, 1) * 255 + 0.5).astype(np.uint8)


class SDFView(View):
    frame_seconds = 0.15
    max_pixels = 400 * 300

    def setup(self) -> None:
        self.server.scene.set_up_direction("+y")
        gui = self.server.gui
        with gui.add_folder("Signed distance field"):
            self.display = gui.add_dropdown("Display", DISPLAYS, initial_value="mesh")
            self.resolution = gui.add_slider("Mesh resolution", 16, 256, 16, 96)
            self.mesh_info = gui.add_markdown("")
            self.slice_axis = gui.add_dropdown("Slice axis", tuple(AXES), initial_value="z")
            self.slice_offset = gui.add_slider("Slice position", -1.0, 1.0, 0.01, 0.0)
            self.show_slice = gui.add_checkbox("Show slice", True)
            warp = has_warp(self.source.module)
            self.slice_shows = gui.add_dropdown("Slice shows", SLICE_SHOWS if warp else SLICE_SHOWS[:1],
                                                initial_value=SLICE_SHOWS[0])
            self.slice_info = gui.add_markdown("")
        self._mesh_lock = threading.Lock()
        self._mesh_stale = False
        self.display.on_update(lambda _: self._set_display())
        self.resolution.on_update(lambda _: background(self.update_mesh))
        for handle in (self.slice_axis, self.slice_offset, self.show_slice, self.slice_shows):
            handle.on_update(lambda _: self.update_slice())
        self._mesh = None
        self.update_mesh()
        self.update_slice()

    def field_fn(self, p: torch.Tensor) -> torch.Tensor:
        return self.source.module(p)[..., 0]

    def weights_changed(self) -> None:
        self.update_slice()
        if self.display.value == "mesh":
            background(self.update_mesh)
        self.redraw()

    # -- mesh and slice ------------------------------------------------------------------------
    def update_mesh(self) -> None:
        """Marching cubes at the slider's resolution; one extraction at a time, repeated while the
        slider or the weights moved on during it."""
        if not self._mesh_lock.acquire(blocking=False):
            self._mesh_stale = True  # the running extraction goes again when it is done
            return
        try:
            self._mesh_stale = True
            while self._mesh_stale and not self.closed:
                self._mesh_stale = False
                n = int(self.resolution.value)
                verts, faces = extract_mesh(self.field_fn, n, device=self.device)
                self.mesh_info.content = f"mesh: {len(verts):,} vertices, {len(faces):,} triangles at {n}^3"
                if len(faces):
                    self._mesh = self.server.scene.add_mesh_simple(
                        "/mesh", verts, faces.astype(np.uint32), color=(180, 190, 215), side="double",
                        visible=not self.draws_background())
        finally:
            self._mesh_lock.release()

    def slice_image(self) -> np.ndarray:
        axis = AXES[self.slice_axis.value]
        points = slice_points(axis, float(self.slice_offset.value), SLICE_PIXELS)
        if self.slice_shows.value != SLICE_SHOWS[0]:  # how far the warp moves each point of the plane
            moved = displacement(self.source.module, points).reshape(SLICE_PIXELS, SLICE_PIXELS).numpy()
            hi = max(float(moved.max()), 1e-9)
            self.slice_info.content = f"warp: |x_L - x| up to {hi:.3g} (dark blue 0, red {hi:.3g})"
            return heat(moved, 0.0, hi)
        self.slice_info.content = ""
        values = evaluate(self.field_fn, points, 1 << 16, self.device)
        return sdf_colors(values.reshape(SLICE_PIXELS, SLICE_PIXELS).numpy())

    def update_slice(self) -> None:
        axis = AXES[self.slice_axis.value]
        position = [0.0, 0.0, 0.0]
        position[axis] = float(self.slice_offset.value)
        # viser draws an image in its local xy plane with the top row at local -y: turn local x to
        # the plane's axis a and local -y to its axis b (slice_points puts b's +1 in the top row).
        a, b = [i for i in range(3) if i != axis]
        rot = np.zeros((3, 3))
        rot[a, 0], rot[b, 1] = 1.0, -1.0
        rot[:, 2] = np.cross(rot[:, 0], rot[:, 1])
        wxyz = matrix_to_quat(rot)
        self.server.scene.add_image("/slice", self.slice_image(), 2.0, 2.0, format="png", wxyz=wxyz,
                                    position=tuple(position), visible=bool(self.show_slice.value),
                                    cast_shadow=False, receive_shadow=False)

    def _set_display(self) -> None:
        if self._mesh is not None:
            self._mesh.visible = not self.draws_background()
        for loop in self.loops.values():
            loop.enabled = self.draws_background()
        self.redraw()

    # -- sphere tracing ------------------------------------------------------------------------
    def render(self, camera: CameraState, width: int, height: int, abort, still: bool = True) -> np.ndarray | None:
        image = render_sdf(self.source.module, camera.c2w, width, height, math.degrees(camera.fov), device=self.device)
        return to_uint8(image)

    def draws_background(self) -> bool:
        return self.display.value == "sphere-traced"

    def on_connect(self, client) -> None:
        c2w = orbit_camera()
        with client.atomic():
            client.camera.fov = math.radians(INITIAL_FOV)
            client.camera.up_direction = (0.0, 1.0, 0.0)
            client.camera.position = c2w[:3, 3]
            client.camera.look_at = (0.0, 0.0, 0.0)
