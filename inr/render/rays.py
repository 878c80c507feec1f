"""Pinhole cameras in the OpenGL convention, their rays, and ray/box intersection.

A camera-to-world matrix maps camera coordinates (x right, y up, looking down -z; Blender and
nerfstudio's convention) to the world. Pixel (row, col) has its centre at (col + 0.5, row + 0.5).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Cameras:
    """N pinhole cameras sharing one image size.

    c2w: [N, 4, 4] (or [N, 3, 4]) camera-to-world; fx, fy, cx, cy: [N] in pixels.

    >>> cams = Cameras(torch.eye(4)[None], torch.tensor([50.0]), torch.tensor([50.0]),
    ...                torch.tensor([50.0]), torch.tensor([50.0]), 100, 100)
    >>> origins, dirs = cams.rays(torch.tensor([0]), torch.tensor([50.0]), torch.tensor([50.0]))
    >>> dirs
    tensor([[ 0.,  0., -1.]])
    """

    c2w: torch.Tensor
    fx: torch.Tensor
    fy: torch.Tensor
    cx: torch.Tensor
    cy: torch.Tensor
    width: int
    height: int

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def to(self, device) -> Cameras:
        move = lambda t: t.to(device)
        return Cameras(move(self.c2w), move(self.fx), move(self.fy), move(self.cx), move(self.cy),
                       self.width, self.height)

    def subset(self, index) -> Cameras:
        return Cameras(self.c2w[index], self.fx[index], self.fy[index], self.cx[index], self.cy[index],
                       self.width, self.height)

    def scaled(self, factor: float) -> Cameras:
        """The same cameras at `factor` times the resolution (intrinsics scale with it)."""
        return Cameras(self.c2w, self.fx * factor, self.fy * factor, self.cx * factor, self.cy * factor,
                       max(1, round(self.width * factor)), max(1, round(self.height * factor)))

    def rays(self, cam: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Origins and unit directions [M, 3] of the rays through continuous pixel positions
        (row, col) of cameras `cam` (pass integer indices + 0.5 for pixel centres)."""
        x = (col - self.cx[cam]) / self.fx[cam]
        y = -(row - self.cy[cam]) / self.fy[cam]  # image rows go down, camera y goes up
        d_cam = torch.stack([x, y, -torch.ones_like(x)], -1)
        rot = self.c2w[cam, :3, :3]
        dirs = torch.einsum("mij,mj->mi", rot, d_cam)
        dirs = dirs / dirs.norm(dim=-1, keepdim=True)
        return self.c2w[cam, :3, 3].expand_as(dirs).contiguous(), dirs

    def view_rays(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """All rays of camera i, row-major, through pixel centres: [H*W, 3] each."""
        device = self.c2w.device
        rows, cols = torch.meshgrid(torch.arange(self.height, device=device, dtype=torch.float32) + 0.5,
                                    torch.arange(self.width, device=device, dtype=torch.float32) + 0.5,
                                    indexing="ij")
        cam = torch.full((self.height * self.width,), i, device=device, dtype=torch.long)
        return self.rays(cam, rows.reshape(-1), cols.reshape(-1))


def ray_aabb(origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor,
             near: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through the box aabb = (xmin, ymin, zmin, xmax, ymax, zmax),
    with entry clamped to `near`; returns (t_near, t_far, hit) where hit means t_far > t_near.

    >>> ray_aabb(torch.tensor([[0.0, 0.0, -3.0]]), torch.tensor([[0.0, 0.0, 1.0]]),
    ...          torch.tensor([-1.0, -1.0, -1.0, 1.0, 1.0, 1.0]))
    (tensor([2.]), tensor([4.]), tensor([True]))
    """
    inv = 1.0 / torch.where(dirs.abs() < 1e-12, torch.full_like(dirs, 1e-12), dirs)
    t0 = (aabb[:3] - origins) * inv
    t1 = (aabb[3:] - origins) * inv
    t_near = torch.minimum(t0, t1).amax(-1).clamp_min(near)
    t_far = torch.maximum(t0, t1).amin(-1)
    return t_near, t_far, t_far > t_near


def orbit_poses(n: int, radius: float, elevation_deg: float = 30.0, center=(0.0, 0.0, 0.0),
                up=(0.0, 0.0, 1.0)) -> torch.Tensor:
    """n camera-to-world matrices [n, 4, 4] evenly spaced on a circle around `center` at
    `elevation_deg` above the plane normal to `up` (+z: Blender), looking at the centre.

    >>> orbit_poses(4, 2.0, 0.0)[0, :3, 3]
    tensor([2., 0., 0.])
    """
    up_t = torch.as_tensor(up, dtype=torch.float64)
    up_t = up_t / up_t.norm()
    # Two unit vectors spanning the plane normal to up.
    helper = torch.tensor([1.0, 0.0, 0.0] if abs(float(up_t[0])) < 0.9 else [0.0, 1.0, 0.0], dtype=torch.float64)
    a = helper - (helper @ up_t) * up_t
    a = a / a.norm()
    b = torch.linalg.cross(up_t, a)
    angles = torch.arange(n, dtype=torch.float64) * (2 * torch.pi / n)
    elev = torch.deg2rad(torch.tensor(float(elevation_deg), dtype=torch.float64))
    ring = (torch.cos(angles)[:, None] * a + torch.sin(angles)[:, None] * b) * torch.cos(elev) + torch.sin(elev) * up_t
    center_t = torch.as_tensor(center, dtype=torch.float64)
    return look_at(center_t + radius * ring, center_t, up_t).float()


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """Camera-to-world [N, 4, 4] for cameras at `eye` [N, 3] looking at `target`."""
    back = eye - target
    back = back / back.norm(dim=-1, keepdim=True)  # camera +z points away from what it sees
    right = torch.linalg.cross(up.expand_as(back), back)
    right = right / right.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cam_up = torch.linalg.cross(back, right)
    c2w = torch.zeros(eye.shape[0], 4, 4, dtype=eye.dtype)
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, cam_up, back, eye
    c2w[:, 3, 3] = 1.0
    return c2w


def mean_up(cameras: Cameras) -> torch.Tensor:
    """The cameras' mean up direction [3] (unit): a scene's "up" when its poses do not say."""
    up = cameras.c2w[:, :3, 1].mean(0)
    return up / up.norm().clamp_min(1e-12)


def orbit_like(cameras: Cameras, center, n: int, radius: float | None = None,
               elevation_deg: float | None = None) -> torch.Tensor:
    """n poses [n, 4, 4] orbiting `center` about the cameras' mean up direction, at their mean
    distance and mean elevation unless `radius` / `elevation_deg` are given."""
    center_t = torch.as_tensor(center, dtype=torch.float32).cpu()
    up = mean_up(cameras).cpu()
    offsets = cameras.c2w[:, :3, 3].cpu() - center_t
    dist = offsets.norm(dim=-1)
    radius = radius or float(dist.mean())
    if elevation_deg is None:
        elevation_deg = float(torch.rad2deg(torch.asin((offsets @ up / dist.clamp_min(1e-12)).clamp(-1, 1))).mean())
    return orbit_poses(n, radius, elevation_deg, center_t.tolist(), up.tolist())
