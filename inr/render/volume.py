"""Volume rendering of packed samples (nerfacc's layout).

Samples are flat arrays sorted by ray and, within a ray, by distance: `ray_indices` [S] says which
ray each sample belongs to, `t_starts`/`t_ends` [S] its interval. Rays may have any number of
samples, including none.
"""
from __future__ import annotations

import torch


def ray_starts(ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """Index of each ray's first sample (its sample count = the next start minus this one): [n_rays + 1]."""
    counts = torch.bincount(ray_indices, minlength=n_rays)
    starts = torch.zeros(n_rays + 1, dtype=torch.long, device=ray_indices.device)
    torch.cumsum(counts, 0, out=starts[1:])
    return starts


def transmittance(sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
                  ray_indices: torch.Tensor, n_rays: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Transmittance before each sample, T_i = exp(-sum_{j<i} sigma_j delta_j) along its ray, and
    each sample's opacity alpha_i = 1 - exp(-sigma_i delta_i)."""
    tau = sigmas * (t_ends - t_starts)
    # One cumulative sum over all rays (float64: the running total grows over many rays), minus
    # the total at each ray's start, is the exclusive per-ray sum.
    before = torch.cumsum(tau.double(), 0) - tau.double()
    first = ray_starts(ray_indices, n_rays)[:-1]
    base = before[first.clamp_max(max(before.numel() - 1, 0))] if before.numel() else before
    excl = (before - base[ray_indices]).to(tau.dtype)
    return torch.exp(-excl), 1.0 - torch.exp(-tau)


def render_weights(sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
                   ray_indices: torch.Tensor, n_rays: int) -> torch.Tensor:
    """The compositing weight of every sample: w_i = T_i * alpha_i.

    >>> w = render_weights(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]),
    ...                    torch.tensor([0, 0]), 1)
    >>> torch.allclose(w, torch.tensor([1 - torch.exp(torch.tensor(-1.0)),
    ...                                 torch.exp(torch.tensor(-1.0)) * (1 - torch.exp(torch.tensor(-1.0)))]))
    True
    """
    trans, alpha = transmittance(sigmas, t_starts, t_ends, ray_indices, n_rays)
    return trans * alpha


def accumulate(weights: torch.Tensor, values: torch.Tensor | None, ray_indices: torch.Tensor,
               n_rays: int) -> torch.Tensor:
    """Per-ray sum of weights * values ([S, C] -> [n_rays, C]); values None sums the weights."""
    src = weights[:, None] if values is None else weights[:, None] * values
    out = torch.zeros(n_rays, src.shape[-1], dtype=src.dtype, device=src.device)
    return out.index_add(0, ray_indices, src)


def composite(rgbs: torch.Tensor, sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
              ray_indices: torch.Tensor, n_rays: int,
              background: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Colour [n_rays, 3], opacity [n_rays, 1] and expected depth [n_rays, 1] of packed samples;
    the background colour ([3] or [n_rays, 3]) fills what the samples leave transparent.
    Rays with no samples are fully transparent (depth 0)."""
    weights = render_weights(sigmas, t_starts, t_ends, ray_indices, n_rays)
    rgb = accumulate(weights, rgbs, ray_indices, n_rays)
    opacity = accumulate(weights, None, ray_indices, n_rays)
    depth = accumulate(weights, ((t_starts + t_ends) * 0.5)[:, None], ray_indices, n_rays)
    if background is not None:
        rgb = rgb + (1.0 - opacity) * background
    return {"rgb": rgb, "opacity": opacity, "depth": depth, "weights": weights}


def visible_samples(sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
                    ray_indices: torch.Tensor, n_rays: int, early_stop_eps: float = 1e-4,
                    alpha_threshold: float = 0.0) -> torch.Tensor:
    """Mask of the samples that still matter: transmittance above `early_stop_eps` (the ray has not
    yet turned opaque: instant-ngp's early stop) and opacity above `alpha_threshold`."""
    trans, alpha = transmittance(sigmas, t_starts, t_ends, ray_indices, n_rays)
    keep = trans > early_stop_eps
    if alpha_threshold > 0:
        keep &= alpha > alpha_threshold
    return keep
