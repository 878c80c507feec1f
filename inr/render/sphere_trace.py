"""Sphere tracing of a signed distance field and simple shading, so a shape can be looked at
without a mesh viewer.

Rays start where they enter the box [-1, 1]^3 and advance by `step_scale` times the field's value
(under 1 because a fitted field is only roughly 1-Lipschitz) until |f| < `eps`, they leave the box
or `max_steps` run out. Normals are the normalised autograd gradient of the field at the hits.
Shading: Lambert from a key light and a fill light plus ambient, on a white background.

Cameras are pinhole, OpenGL convention (looking down -z, +y up), placed on an orbit around the
origin of the field's frame:

>>> cam = orbit_camera(azimuth=30.0, elevation=20.0, distance=3.0)
>>> cam.shape
(4, 4)
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """Camera-to-world 4x4 matrix of a camera at `eye` looking at `target` (OpenGL axes)."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    back = eye - target
    back /= np.linalg.norm(back)
    right = np.cross(up, back)
    if np.linalg.norm(right) < 1e-8:  # looking straight along `up`
        right = np.cross((0.0, 0.0, 1.0), back)
    right /= np.linalg.norm(right)
    true_up = np.cross(back, right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, true_up, back, eye
    return c2w


def orbit_camera(azimuth: float = 35.0, elevation: float = 25.0, distance: float = 2.8) -> np.ndarray:
    """Camera-to-world matrix on a sphere around the origin (degrees; azimuth about +y from +z)."""
    a, e = math.radians(azimuth), math.radians(elevation)
    eye = distance * np.array([math.cos(e) * math.sin(a), math.sin(e), math.cos(e) * math.cos(a)])
    return look_at(eye)


def camera_rays(c2w: np.ndarray, width: int, height: int, fov: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray origins and unit directions [H*W, 3] through pixel centres (vertical field of view in degrees)."""
    focal = 0.5 * height / math.tan(math.radians(fov) / 2)
    j, i = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                          torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
    dirs = torch.stack([(i - width / 2) / focal, -(j - height / 2) / focal, -torch.ones_like(i)], -1).reshape(-1, 3)
    c2w = torch.as_tensor(c2w, dtype=torch.float64)
    d = F.normalize(dirs @ c2w[:3, :3].T, dim=-1)
    o = c2w[:3, 3].expand_as(d)
    return o.float().contiguous(), d.float().contiguous()


def _box_interval(o: torch.Tensor, d: torch.Tensor, bound: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / torch.where(d.abs() < 1e-9, torch.full_like(d, 1e-9), d)
    t0, t1 = (-bound - o) * inv, (bound - o) * inv
    near = torch.minimum(t0, t1).max(-1).values.clamp(min=0)
    far = torch.maximum(t0, t1).min(-1).values
    return near, far


def sphere_trace(fn: Callable[[torch.Tensor], torch.Tensor], origins: torch.Tensor, dirs: torch.Tensor,
                 max_steps: int = 128, eps: float = 5e-4, step_scale: float = 0.9,
                 batch_size: int = 1 << 17) -> tuple[torch.Tensor, torch.Tensor]:
    """Hit distance t [N] and a hit mask [N] for rays against {fn = 0}; fn maps [M, 3] to [M] or [M, 1]."""
    near, far = _box_interval(origins, dirs)
    t = near.clone()
    hit = torch.zeros_like(t, dtype=torch.bool)
    alive = torch.nonzero(near < far).squeeze(-1)
    with torch.no_grad():
        for _ in range(max_steps):
            if alive.numel() == 0:
                break
            p = origins[alive] + t[alive, None] * dirs[alive]
            f = torch.cat([fn(c).reshape(-1) for c in p.split(batch_size)])
            done = f.abs() < eps
            hit[alive[done]] = True
            t[alive] += torch.where(done, torch.zeros_like(f), f * step_scale)
            keep = ~done & (t[alive] < far[alive])
            alive = alive[keep]
    return t, hit


def shade(normals: torch.Tensor, dirs: torch.Tensor, base=(0.72, 0.76, 0.84)) -> torch.Tensor:
    """Lambert shading [N, 3] of unit normals seen along `dirs` (two lights fixed to the camera)."""
    key = F.normalize(-dirs + torch.tensor([0.4, 0.6, 0.0]), dim=-1)
    fill = F.normalize(-dirs + torch.tensor([-0.5, -0.1, 0.0]), dim=-1)
    n = torch.where(((normals * dirs).sum(-1, keepdim=True) > 0), -normals, normals)  # face the viewer
    light = 0.2 + 0.65 * (n * key).sum(-1).clamp(min=0) + 0.25 * (n * fill).sum(-1).clamp(min=0)
    return (torch.tensor(base) * light[:, None]).clamp(0, 1)


def surface_normals(field: Callable[[torch.Tensor], torch.Tensor], points: torch.Tensor) -> torch.Tensor:
    """Unit normals [M, 3] of {field = 0} at `points` [M, 3]: the normalised autograd gradient of
    `field` ([M, 3] -> [M, 1]). Only first derivatives, so any differentiable callable will do."""
    with torch.enable_grad():
        p = points.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(field(p)[..., 0].sum(), p)
    return F.normalize(g, dim=-1)


def render_sdf(field, c2w: np.ndarray, width: int = 512, height: int = 512, fov: float = 40.0,
               device: torch.device | str = "cpu", background=(1.0, 1.0, 1.0)) -> torch.Tensor:
    """Shaded image [H, W, 3] in [0, 1] of the zero level set of `field`, any callable SDF
    ([M, 3] -> [M, 1], differentiable for the normals)."""
    o, d = camera_rays(c2w, width, height, fov)
    o, d = o.to(device), d.to(device)
    t, hit = sphere_trace(lambda p: field(p), o, d)
    image = torch.tensor(background, dtype=torch.float32).repeat(o.shape[0], 1)
    idx = torch.nonzero(hit).squeeze(-1)
    if idx.numel():
        normals = []
        for chunk in idx.split(1 << 16):
            normals.append(surface_normals(field, o[chunk] + t[chunk, None] * d[chunk]))
        image[idx.cpu()] = shade(torch.cat(normals).cpu(), d[idx].cpu())
    return image.reshape(height, width, 3)
