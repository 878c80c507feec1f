"""Dense volume rendering of many scenes at once: the same number of stratified samples on every ray
inside a box, composited per ray with a cumulative product. No occupancy grid, so B scenes with
their own weights share one [B, N, 3] batch (one batched MLP call) — what a generator trains on.

    rgb, opacity = render_dense(field_fn, origins, dirs, box, n_samples=64, background=bg)
    # field_fn(x [B, N, 3], d [B, N, 3]) -> (rgb [B, N, 3], density [B, N]); origins, dirs [B, R, 3]
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .rays import ray_aabb

FieldFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def dense_samples(origins: torch.Tensor, dirs: torch.Tensor, box: torch.Tensor, n_samples: int,
                  jitter: torch.Tensor | None = None, near: float = 0.0
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample positions t [..., S] and lengths delta [..., S] along each ray's chord through `box`
    beyond `near` (zero length where a ray misses it), and the hit mask [...]. `jitter` in [0, 1)
    shifts the samples within their bins (stratified sampling): [..., 1] moves a ray's samples
    together, [..., S] each on its own; None puts them at the bin centres."""
    near, far, hit = ray_aabb(origins, dirs, box, near=near)
    far = torch.where(hit, far, near)
    u = torch.arange(n_samples, device=origins.device, dtype=origins.dtype)
    u = (u + (0.5 if jitter is None else jitter)) / n_samples
    length = (far - near)[..., None]
    t = near[..., None] + u * length
    delta = (length / n_samples).expand_as(t)
    return t, delta, hit


def composite_dense(rgb: torch.Tensor, density: torch.Tensor, delta: torch.Tensor,
                    background: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """rgb [..., S, 3], density and delta [..., S] -> (colour [..., 3] over `background`, opacity [...])."""
    alpha = 1.0 - torch.exp(-density * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[..., :1]), 1.0 - alpha[..., :-1] + 1e-10], -1), -1)
    w = alpha * trans
    opacity = w.sum(-1)
    color = (w[..., None] * rgb).sum(-2) + (1.0 - opacity[..., None]) * background
    return color, opacity


def render_dense(field_fn: FieldFn, origins: torch.Tensor, dirs: torch.Tensor, box: torch.Tensor,
                 n_samples: int, background: torch.Tensor, jitter: torch.Tensor | None = None,
                 near: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Colour [B, R, 3] and opacity [B, R] of rays [B, R, 3] through B scenes (field_fn's batch).
    `background` broadcasts to [B, R, 3]; `jitter` and `near` as in `dense_samples`."""
    b, r = origins.shape[:2]
    t, delta, _ = dense_samples(origins, dirs, box, n_samples, jitter, near)
    points = origins[:, :, None] + dirs[:, :, None] * t[..., None]  # [B, R, S, 3]
    d = dirs[:, :, None].expand_as(points)
    rgb, density = field_fn(points.reshape(b, -1, 3), d.reshape(b, -1, 3))
    return composite_dense(rgb.view(b, r, n_samples, 3), density.view(b, r, n_samples), delta, background)
