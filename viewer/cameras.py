"""Browser cameras to our cameras, and how large a frame to render.

viser reports a client's camera as `wxyz` and `position`, the rotation R and translation t of
P_world = [R | t] p_camera in the OpenCV convention (x right, y down, looking down +z), a vertical
field of view `fov` in radians and the canvas `aspect` (width / height). Our cameras are OpenGL's
(x right, y up, looking down -z; `inr.render.rays`), so the camera-to-world rotation is
R @ diag(1, -1, -1).

>>> c2w = viser_to_c2w((1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
>>> c2w[:3, 2].tolist()  # OpenGL's back axis: the browser camera looks down world +z
[0.0, 0.0, -1.0]
"""
from __future__ import annotations

import math

import numpy as np
import torch

FLIP = np.diag([1.0, -1.0, -1.0])  # OpenCV <-> OpenGL camera axes (an involution)


def quat_to_matrix(wxyz) -> np.ndarray:
    """Rotation matrix [3, 3] of a unit quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(wxyz, np.float64) / np.linalg.norm(wxyz)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, of a rotation matrix [3, 3] (Shepperd's method)."""
    m = np.asarray(m, np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2 * math.sqrt(trace + 1)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax([m[0, 0], m[1, 1], m[2, 2]]))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2 * math.sqrt(max(1 + m[i, i] - m[j, j] - m[k, k], 1e-12))
        q = [0.0] * 4
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def viser_to_c2w(wxyz, position) -> np.ndarray:
    """OpenGL camera-to-world [4, 4] of a viser camera (OpenCV rotation `wxyz`, `position`)."""
    c2w = np.eye(4)
    c2w[:3, :3] = quat_to_matrix(wxyz) @ FLIP
    c2w[:3, 3] = np.asarray(position, np.float64)
    return c2w


def c2w_to_viser(c2w) -> tuple[np.ndarray, np.ndarray]:
    """(wxyz, position) of an OpenGL camera-to-world matrix, as viser's cameras and frustums take them."""
    c2w = np.asarray(c2w, np.float64)
    return matrix_to_quat(c2w[:3, :3] @ FLIP), c2w[:3, 3].copy()


def focal_from_fov(fov: float, height: int) -> float:
    """Focal length in pixels of a vertical field of view (radians) over `height` pixels."""
    return 0.5 * height / math.tan(0.5 * fov)


def fov_from_focal(focal: float, height: int) -> float:
    return 2 * math.atan(0.5 * height / focal)


def pinhole(c2w: np.ndarray, fov: float, width: int, height: int):
    """An `inr.render.rays.Cameras` of one camera: OpenGL `c2w`, vertical `fov` in radians, square
    pixels, principal point at the image centre."""
    from inr.render.rays import Cameras

    f = torch.tensor([focal_from_fov(fov, height)], dtype=torch.float32)
    return Cameras(torch.as_tensor(c2w, dtype=torch.float32)[None], f, f.clone(),
                   torch.tensor([width / 2.0]), torch.tensor([height / 2.0]), width, height)


def render_pinhole(c2w: np.ndarray, fov: float, width: int, height: int, render, device, chunk: int,
                   abort=lambda: False) -> torch.Tensor | None:
    """render(origins [n, 3], dirs [n, 3]) -> [n, C] over the rays of a pinhole camera, `chunk` rays
    at a time (checking `abort()` between chunks, so a stale frame gives up early): [H * W, C], or
    None when aborted."""
    origins, dirs = (t.to(device) for t in pinhole(c2w, fov, width, height).view_rays(0))
    parts = []
    with torch.no_grad():
        for o, d in zip(origins.split(chunk), dirs.split(chunk)):
            if abort():
                return None
            parts.append(render(o, d))
    return torch.cat(parts)


def frame_size(aspect: float, pixels: float, max_height: int | None = None) -> tuple[int, int]:
    """(width, height) of a frame with `aspect` (width / height) and about `pixels` pixels."""
    height = max(8, round(math.sqrt(max(pixels, 1.0) / max(aspect, 1e-3))))
    if max_height is not None:
        height = min(height, max_height)
    return max(8, round(height * aspect)), height


class AdaptiveResolution:
    """How many pixels to render: a moving camera gets what fits in `frame_seconds` at the measured
    rate (at least `min_pixels`), a still camera the screen's resolution up to `max_pixels`.

    The rate (pixels per second) is an exponential moving average over finished renders.

    >>> res = AdaptiveResolution(frame_seconds=0.1, initial_rate=1e5)
    >>> res.moving_size(aspect=1.0, screen_height=800)
    (100, 100)
    """

    def __init__(self, frame_seconds: float = 0.12, max_pixels: int = 1 << 20, min_pixels: int = 32 * 32,
                 initial_rate: float = 1e5, smoothing: float = 0.5):
        self.frame_seconds, self.max_pixels, self.min_pixels = frame_seconds, max_pixels, min_pixels
        self.rate, self.smoothing = initial_rate, smoothing

    def record(self, pixels: int, seconds: float) -> None:
        """Fold a finished render of `pixels` that took `seconds` into the rate estimate."""
        if seconds > 0 and pixels > 0:
            self.rate = self.smoothing * self.rate + (1 - self.smoothing) * pixels / seconds

    def moving_size(self, aspect: float, screen_height: int) -> tuple[int, int]:
        pixels = min(max(self.rate * self.frame_seconds, self.min_pixels), self.max_pixels)
        return frame_size(aspect, pixels, max_height=screen_height)

    def still_size(self, aspect: float, screen_height: int) -> tuple[int, int]:
        return frame_size(aspect, min(screen_height ** 2 * aspect, self.max_pixels), max_height=screen_height)

