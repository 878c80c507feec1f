"""instant-ngp's occupancy grid: which cells of the scene can hold density, so ray marching skips
empty space.

Cascade k covers the scene box scaled by 2^k about its centre (cascades = 1 + log2(aabb_scale), as
instant-ngp). Each cascade has resolution^3 cells storing a density estimate times the march step
(an optical thickness); a cell is occupied when that exceeds min(0.01, mean). Cells never
evaluated count as occupied, so nothing is skipped before the field has been asked.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

DensityFn = Callable[[torch.Tensor], torch.Tensor]  # points [M, 3] -> density [M]


class OccupancyGrid(nn.Module):
    """Occupancy of `cascades` nested grids over `aabb` (xmin, ymin, zmin, xmax, ymax, zmax).

    >>> grid = OccupancyGrid(torch.tensor([-1.0, -1, -1, 1, 1, 1]), resolution=8)
    >>> grid.update(lambda p: (p.norm(dim=-1) < 0.5).float() * 100, step=0, step_size=0.01, fraction=1.0)
    >>> grid.occupied(torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.9, 0.9]])).tolist()
    [True, False]
    """

    def __init__(self, aabb: torch.Tensor, resolution: int = 128, cascades: int = 1, decay: float = 0.95,
                 threshold: float = 0.01):
        super().__init__()
        aabb = torch.as_tensor(aabb, dtype=torch.float32)
        self.resolution, self.cascades, self.decay, self.threshold = resolution, cascades, decay, threshold
        self.register_buffer("center", (aabb[:3] + aabb[3:]) * 0.5)
        self.register_buffer("half_extent", (aabb[3:] - aabb[:3]) * 0.5)  # half extent of cascade 0
        # -1 marks a cell not yet evaluated (occupied until it is).
        self.register_buffer("density", torch.full((cascades, resolution ** 3), -1.0))
        self.register_buffer("binary", torch.ones(cascades, resolution ** 3, dtype=torch.bool))

    @staticmethod
    def cascades_for(aabb_scale: float) -> int:
        """instant-ngp's number of cascades for a scene's `aabb_scale` (a power of two)."""
        return 1 + max(0, math.ceil(math.log2(max(aabb_scale, 1.0)) - 1e-9))

    @property
    def outer_aabb(self) -> torch.Tensor:
        """The box the largest cascade covers: nothing outside it is ever sampled."""
        h = self.half_extent * 2 ** (self.cascades - 1)
        return torch.cat([self.center - h, self.center + h])

    def _cells(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(cascade, flat cell index, inside) of world points: the finest cascade containing each."""
        u = (points - self.center) / self.half_extent  # in [-1, 1] inside cascade 0
        extent = u.abs().amax(-1)
        if self.cascades == 1:  # the common bounded scene: no level to find (this runs per march sample)
            level = torch.zeros_like(extent)
            inside = extent <= 1
        else:
            # level = ceil(log2(extent)) exactly, from the float's exponent (extent = m 2^e with m in
            # [0.5, 1)), and an exact power-of-two rescale: no log2 rounding, so the C++ march
            # (kernels/cpu/march.cpp) computes the same cells
            m, e = torch.frexp(extent.clamp_min(1e-12))
            level = torch.where(m == 0.5, e - 1, e).clamp_min(0)
            inside = extent <= 2.0 ** (self.cascades - 1)
            level = level.clamp_max(self.cascades - 1)
            u = torch.ldexp(u, -level[:, None])
        ijk = ((u + 1) * (0.5 * self.resolution)).long().clamp_(0, self.resolution - 1)
        r = self.resolution
        return level.long(), (ijk[:, 0] * r + ijk[:, 1]) * r + ijk[:, 2], inside

    def occupied(self, points: torch.Tensor) -> torch.Tensor:
        """Whether each world point [M, 3] lies in an occupied cell (False outside every cascade)."""
        level, idx, inside = self._cells(points)
        flat = self.binary.view(-1)  # one flat gather: much cheaper than [level, idx] indexing
        return flat[idx if self.cascades == 1 else level * self.resolution ** 3 + idx] & inside

    def cell_points(self, level: int, idx: torch.Tensor, jitter: bool = True) -> torch.Tensor:
        """World positions of cells `idx` of cascade `level`: a random point inside each, or the centre."""
        r = self.resolution
        ijk = torch.stack([idx // (r * r), (idx // r) % r, idx % r], -1).float()
        offset = torch.rand_like(ijk) if jitter else torch.full_like(ijk, 0.5)
        u = (ijk + offset) / r * 2 - 1
        return self.center + u * self.half_extent * 2 ** level

    @torch.no_grad()
    def update(self, density_fn: DensityFn, step: int, step_size: float, fraction: float = 0.25,
               occupied_fraction: float = 0.25, chunk: int = 1 << 18) -> None:
        """Re-estimate some cells: `fraction` of all cells chosen uniformly plus up to
        `occupied_fraction` from the occupied ones, each at a random point inside the cell;
        new = max(decay * old, density * step_size); then recompute the occupancy threshold."""
        n = self.resolution ** 3
        for level in range(self.cascades):
            if fraction >= 1.0:
                idx = torch.arange(n, device=self.density.device)
            else:
                idx = torch.randint(0, n, (max(1, int(n * fraction)),), device=self.density.device)
                occ = torch.nonzero(self.binary[level]).squeeze(-1)
                if occupied_fraction > 0 and occ.numel():
                    k = min(occ.numel(), int(n * occupied_fraction))
                    idx = torch.cat([idx, occ[torch.randint(0, occ.numel(), (k,), device=occ.device)]])
            points = self.cell_points(level, idx)
            new = torch.cat([density_fn(p).reshape(-1) for p in points.split(chunk)]) * step_size
            old = self.density[level, idx]
            self.density[level, idx] = torch.where(old < 0, new, torch.maximum(old * self.decay, new))
        self.refresh()

    def refresh(self) -> None:
        """Recompute the occupied bits from the densities (threshold min(threshold, mean))."""
        known = self.density >= 0
        mean = float(self.density[known].mean()) if known.any() else 0.0
        self.binary = (self.density > min(self.threshold, mean)) | ~known

    def occupancy(self) -> float:
        """Fraction of occupied cells."""
        return float(self.binary.float().mean())

    def points(self) -> torch.Tensor:
        """Centres of the occupied cells (for a viewer's point cloud)."""
        return torch.cat([self.cell_points(level, torch.nonzero(self.binary[level]).squeeze(-1), jitter=False)
                          for level in range(self.cascades)])


def step_schedule(t_max: float, step_size: float, cone_angle: float = 0.0, max_step: float | None = None,
                  device=None) -> torch.Tensor:
    """Sample boundaries t_0 = 0 < t_1 < ... >= t_max shared by all rays: constant `step_size`, or
    with `cone_angle` > 0 instant-ngp's cone stepping dt = clamp(t * cone_angle, step_size, max_step)
    (steps grow with distance, for large scenes). Each ray uses the part of it inside its [near, far]."""
    if cone_angle <= 0:
        n = math.ceil(t_max / step_size) + 1
        return torch.arange(n + 1, device=device, dtype=torch.float32) * step_size
    max_step = max_step or 1e10
    ts, t = [0.0], 0.0
    while t < t_max:
        t += min(max(t * cone_angle, step_size), max_step)
        ts.append(t)
    return torch.tensor(ts, device=device, dtype=torch.float32)


def march(grid: OccupancyGrid | None, origins: torch.Tensor, dirs: torch.Tensor, t_near: torch.Tensor,
          t_far: torch.Tensor, schedule: torch.Tensor, jitter: torch.Tensor | None = None,
          max_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Packed samples (ray_indices, t_starts, t_ends) of rays marched through [t_near, t_far] with
    the boundaries of `schedule`, keeping those whose midpoint lies in an occupied cell.

    `jitter` [n_rays] in [0, 1) shifts each ray's boundaries by that fraction of a step (stratified
    sampling during training). Rays with t_far <= t_near get no samples.

    On the CPU (backend auto/cuda) the C++ kernel (kernels/cpu/march.cpp) gives the same samples without this path's tensor of every candidate step: about 30% of a lego_100
    training step here before.
    """
    fast = _march_cpu(grid, origins, dirs, t_near, t_far, schedule, jitter, max_samples)
    if fast is not None:
        return fast
    device = origins.device
    n_steps = schedule.numel() - 1
    jit = torch.zeros_like(t_near) if jitter is None else jitter
    step0 = torch.searchsorted(schedule, t_near.contiguous(), right=True) - 1
    step1 = torch.searchsorted(schedule, t_far.contiguous(), right=False)
    step0 = step0.clamp(0, n_steps - 1)
    counts = (step1.clamp(max=n_steps) - step0).clamp_min(0) * (t_far > t_near)
    if max_samples is not None:
        counts = counts.clamp_max(max_samples)
    ray_indices = torch.repeat_interleave(torch.arange(origins.shape[0], device=device), counts)
    # Everything a candidate needs from its ray in one gather (separate gathers cost more here
    # than the occupancy test): origin, direction, jitter, near, far, first step - offset.
    first = (step0 - (torch.cumsum(counts, 0) - counts)).to(origins.dtype)
    per_ray = torch.cat([origins, dirs, jit[:, None], t_near[:, None], t_far[:, None], first[:, None]], 1)[ray_indices]
    k = torch.arange(ray_indices.numel(), device=device) + per_ray[:, 9].long()
    # Each step's (start, end, next end) in one table, so one gather serves all three.
    bounds = torch.stack([schedule[:-1], schedule[1:], torch.cat([schedule[2:], schedule[-1:]])], 1)
    lo, hi, nxt = bounds[k].unbind(1)
    j = per_ray[:, 6]
    t0 = torch.maximum(lo + j * (hi - lo), per_ray[:, 7])
    t1 = torch.minimum(hi + j * (nxt - hi), per_ray[:, 8])
    keep = t1 > t0
    if grid is not None:
        keep &= grid.occupied(per_ray[:, :3] + per_ray[:, 3:6] * ((t0 + t1) * 0.5)[:, None])
    kept = torch.nonzero(keep).squeeze(1)  # once, rather than once per masked tensor
    return ray_indices.index_select(0, kept), t0.index_select(0, kept), t1.index_select(0, kept)


def _march_cpu(grid, origins, dirs, t_near, t_far, schedule, jitter, max_samples):
    """`march` by the C++ kernel where it applies (else None): float32 CPU tensors, a backend other
    than "torch", and a working build."""
    from inr.backends import active_backend

    tensors = [origins, dirs, t_near, t_far, schedule] + ([] if jitter is None else [jitter])
    if not active_backend().compiled or any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
        return None
    if grid is not None and grid.binary.device.type != "cpu":
        return None
    from kernels.cpu_loader import load_cpu_render

    ext = load_cpu_render()
    if ext is None:
        return None
    empty = torch.empty(0)
    if grid is None:
        occ, center, half, res, cascades = empty, empty, empty, 0, 0
    else:
        occ, center, half, res, cascades = grid.binary, grid.center, grid.half_extent, grid.resolution, grid.cascades
    ray_indices, t0, t1 = ext.march(origins, dirs, t_near.reshape(-1), t_far.reshape(-1), schedule,
                                    empty if jitter is None else jitter.reshape(-1),
                                    -1 if max_samples is None else int(max_samples), occ, center, half, res,
                                    cascades)
    return ray_indices, t0, t1
