"""Image-plane features of a few posed views (MultiPlaneNeRF / pixelNeRF): a CNN turns each support
view into a feature map, a 3-D point is projected into every support camera, its feature is read
there (bilinear), and the readings are pooled over the views. Also a pooled scene code (the
CNN's global features averaged over views) for a hypernetwork.

Cameras are pinholes in the OpenGL convention (`inr.render.rays.Cameras`): camera-to-world
matrices, the camera looks down -z with +y up; pixel (row, col) has its centre at (row + 0.5,
col + 0.5). Shapes: B scenes, V views, P points, C channels.

Pooling is ours (IBRNet's and MVSNeRF's choice): the mean and the variance over the views that see
the point, and the share of views that see it. The variance is what finds surfaces: a point on a
surface looks alike from every view, a point in empty space does not.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def project(points: torch.Tensor, c2w: torch.Tensor, intrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel positions of world points in each camera.

    points [B, P, 3]; c2w [B, V, 4, 4] (or [B, V, 3, 4]); intrinsics [B, V, 4] as (fx, fy, cx, cy)
    -> (uv [B, V, P, 2] as continuous (col, row), depth [B, V, P]: distance along the view axis,
    positive in front of the camera)."""
    rot, origin = c2w[..., :3, :3], c2w[..., :3, 3]
    local = torch.einsum("bvji,bvpj->bvpi", rot, points[:, None] - origin[:, :, None])  # R^T (p - o)
    depth = -local[..., 2]
    z = depth.clamp_min(1e-6)
    fx, fy, cx, cy = (intrinsics[..., k, None] for k in range(4))
    col = cx + fx * local[..., 0] / z
    row = cy - fy * local[..., 1] / z
    return torch.stack([col, row], -1), depth


def sample_planes(maps: torch.Tensor, uv: torch.Tensor, depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear readings of feature maps [B, V, C, H, W] at uv [B, V, P, 2] (pixels, (col, row)):
    (features [B, V, P, C], seen [B, V, P]: in front of the camera and inside its image). Points
    outside an image read zeros there."""
    b, v, c, h, w = maps.shape
    grid = torch.stack([uv[..., 0] * (2.0 / w) - 1.0, uv[..., 1] * (2.0 / h) - 1.0], -1)
    out = F.grid_sample(maps.reshape(b * v, c, h, w), grid.reshape(b * v, 1, -1, 2), mode="bilinear",
                        padding_mode="zeros", align_corners=False)
    feats = out.reshape(b, v, c, -1).transpose(-1, -2)
    seen = (depth > 0) & (uv[..., 0] >= 0) & (uv[..., 0] <= w) & (uv[..., 1] >= 0) & (uv[..., 1] <= h)
    return feats, seen


def pool_views(feats: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """[B, V, P, C] readings and [B, V, P] visibility -> [B, P, 3C + 1]: mean, variance and minimum
    over the views that see each point, and the share of views that do. (The minimum of the alpha
    channel is the visual hull: one view that sees background through a point empties it.)"""
    w = seen.to(feats.dtype).unsqueeze(-1)
    n = w.sum(1)
    mean = (feats * w).sum(1) / n.clamp_min(1.0)
    var = (((feats - mean[:, None]) ** 2) * w).sum(1) / n.clamp_min(1.0)
    low = torch.where(w > 0, feats, torch.full_like(feats, 1e4)).amin(1)
    low = torch.where(n > 0, low, torch.zeros_like(low))
    return torch.cat([mean, var, low, n / feats.shape[1]], -1)


class ViewEncoder(nn.Module):
    """Support views [B, V, H, W, 4] (RGBA in [0, 1], straight alpha) -> (feature maps
    [B, V, C, H, W] at the views' own resolution, scene code [B, code_dim]).

    Each map holds the view's premultiplied RGBA beside `features` learned channels: three 3x3
    convolutions at full resolution and two at half resolution (upsampled back) for context.
    The scene code is a linear map of the maps' global mean and max, averaged over the views (so
    any number of views gives a code), squashed into [0, 1] when `bounded` (MIP's input range)."""

    def __init__(self, features: int = 16, width: int = 32, code_dim: int = 64, bounded: bool = True):
        super().__init__()
        self.features, self.code_dim, self.bounded = features, code_dim, bounded
        self.fine = nn.Sequential(nn.Conv2d(4, width, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.coarse = nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(),
                                    nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.out = nn.Conv2d(2 * width, features, 3, padding=1)
        self.code = nn.Linear(2 * (features + 4), code_dim)

    @property
    def channels(self) -> int:
        return self.features + 4

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, v, h, w, _ = views.shape
        rgba = views.reshape(b * v, h, w, 4).permute(0, 3, 1, 2)
        rgba = torch.cat([rgba[:, :3] * rgba[:, 3:], rgba[:, 3:]], 1)  # premultiplied: no colour behind alpha 0
        fine = self.fine(rgba * 2 - 1)
        coarse = F.interpolate(self.coarse(fine), size=(h, w), mode="bilinear", align_corners=False)
        maps = torch.cat([rgba, self.out(torch.cat([fine, coarse], 1))], 1)
        pooled = torch.cat([maps.mean((-2, -1)), maps.amax((-2, -1))], -1).reshape(b, v, -1).mean(1)
        code = self.code(pooled)
        return maps.reshape(b, v, -1, h, w), torch.sigmoid(code) if self.bounded else code
