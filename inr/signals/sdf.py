"""Signed distance fields as signals: mesh loading, normalisation, ground truth, training samples
and the SDF losses.

Coordinates (DESIGN.md §6): a shape is centred on its bounding box and scaled uniformly so its
longest half-extent is `EXTENT` (0.9): it lies in [-0.9, 0.9]^3 within the field's [-1, 1]^3, with
room around it for near-surface samples. `Normalisation` stores the map, so exported meshes come
back in the input's units. The metrics box of Occupancy Networks, [-0.5, 0.5]^3 with the longest
side of the bounding box 1, is the field's frame scaled by `METRIC_SCALE` = 0.5 / 0.9.

Ground truth for meshes comes from open3d's `RaycastingScene`: exact unsigned distance to the
triangles (BVH, C++) and the sign by **ray parity voting**: `sign_rays` rays (odd) are cast from
each point and the point is inside when the majority cross the surface an odd number of times.
A ray that slips through a small hole (or grazes an edge) is outvoted, so the sign survives small
holes in non-watertight meshes. Built-in analytic shapes (`scenes.shapes`) use their formulas.

>>> target = AnalyticTarget(__import__("scenes").load_shape_scene("sphere"))
>>> round(float(target.sdf(np.array([[0.0, 0.0, 0.0]], np.float32))[0]), 3)
-0.9
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from inr.errors import InputError
from inr.optional import require_open3d

EXTENT = 0.9  # the shape's longest half-extent in the field's frame
METRIC_SCALE = 0.5 / EXTENT  # field frame -> Occupancy Networks' [-0.5, 0.5]^3 box
MESH_SUFFIXES = (".obj", ".ply", ".stl", ".off", ".glb", ".gltf")


@dataclass(frozen=True)
class Normalisation:
    """x_field = (x_input - centre) * scale; distances scale by `scale` too."""

    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0

    @classmethod
    def from_bounds(cls, lo, hi, extent: float = EXTENT) -> Normalisation:
        lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        half = float((hi - lo).max()) / 2
        if not half > 0 or not math.isfinite(half):
            raise InputError("the shape has an empty bounding box (all its vertices coincide)")
        return cls(tuple(float(c) for c in (lo + hi) / 2), extent / half)

    def to_field(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, np.float64) - self.centre) * self.scale

    def to_input(self, points: np.ndarray) -> np.ndarray:
        return np.asarray(points, np.float64) / self.scale + self.centre

    def to_dict(self) -> dict:
        return {"centre": list(self.centre), "scale": self.scale}

    @classmethod
    def from_dict(cls, d: dict) -> Normalisation:
        return cls(tuple(float(c) for c in d["centre"]), float(d["scale"]))


# ----------------------------------------------------------------------------------------------
# Targets: what a field is fitted to and measured against, in the field's frame


class SDFTarget:
    """A shape in the field's frame: signed distance, occupancy, closest surface normals and
    surface samples. Arrays are float32 numpy [N, 3] in, [N] or [N, 3] out."""

    normalisation: Normalisation
    source: str
    watertight: bool = True
    warnings: tuple[str, ...] = ()

    def sdf(self, points: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def occupancy(self, points: np.ndarray) -> np.ndarray:
        return self.sdf(points) < 0

    def closest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unsigned distance to the surface and the surface's unit normal there."""
        raise NotImplementedError

    def sample_surface(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """n points uniformly (by area) on the surface and their outward unit normals."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"source": self.source, "normalisation": self.normalisation.to_dict(), "watertight": self.watertight}


class AnalyticTarget(SDFTarget):
    """A built-in analytic shape (`scenes.shapes.AnalyticShape`)."""

    def __init__(self, shape):
        self.shape = shape
        self.source = shape.name
        self.normalisation = Normalisation.from_bounds(*shape.bounds)
        self._mesh = None

    def _sdf_torch(self, p: torch.Tensor) -> torch.Tensor:
        n = self.normalisation
        return self.shape.sdf(p / n.scale + p.new_tensor(n.centre)) * n.scale

    def sdf(self, points: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self._sdf_torch(torch.from_numpy(np.asarray(points, np.float32))).numpy()

    def _value_and_normal(self, p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = p.detach().requires_grad_(True)
        with torch.enable_grad():
            d = self._sdf_torch(p)
            (g,) = torch.autograd.grad(d.sum(), p)
        return d.detach(), F.normalize(g, dim=-1)

    def closest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d, n = self._value_and_normal(torch.from_numpy(np.asarray(points, np.float32)))
        return d.abs().numpy(), n.numpy()

    def mesh(self):
        """A marching-cubes mesh of the shape (resolution 128), cached: seeds surface samples."""
        if self._mesh is None:
            import trimesh

            from inr.render.marching_cubes import extract_mesh

            verts, faces = extract_mesh(lambda p: self._sdf_torch(p), resolution=128)
            self._mesh = trimesh.Trimesh(verts, faces, process=False)
        return self._mesh

    def sample_surface(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Samples on the marching-cubes mesh projected onto the exact surface with Newton steps
        p <- p - f(p) grad f(p); normals are the normalised gradient there."""
        import trimesh

        pts, _ = trimesh.sample.sample_surface(self.mesh(), n, seed=seed)
        p = torch.from_numpy(pts.astype(np.float32))
        for _ in range(3):
            d, normal = self._value_and_normal(p)
            p = p - d[:, None] * normal
        _, normal = self._value_and_normal(p)
        return p.numpy(), normal.numpy()


class MeshTarget(SDFTarget):
    """A triangle mesh: ground truth through open3d's RaycastingScene (see the module docstring).

    `sign_rays` (odd) is the number of rays of the parity vote."""

    def __init__(self, mesh, source: str = "mesh", sign_rays: int = 5, warnings: tuple[str, ...] = ()):
        o3d = require_open3d()
        import trimesh

        check_mesh(mesh, source)
        self.source = source
        self.sign_rays = sign_rays if sign_rays % 2 else sign_rays + 1
        self.watertight = bool(mesh.is_watertight)
        self.warnings = tuple(warnings)
        if not self.watertight:
            self.warnings += (f"{source}: the mesh is not watertight; inside/outside is decided by a vote of "
                              f"{self.sign_rays} rays per point (ray parity), robust to small holes",)
        self.original = mesh
        self.normalisation = Normalisation.from_bounds(*mesh.bounds)
        self.mesh = trimesh.Trimesh(self.normalisation.to_field(mesh.vertices), mesh.faces, process=False)
        self.face_normals = np.asarray(self.mesh.face_normals, np.float32)
        self.scene = o3d.t.geometry.RaycastingScene()
        self.scene.add_triangles(o3d.core.Tensor(np.ascontiguousarray(self.mesh.vertices, np.float32)),
                                 o3d.core.Tensor(np.ascontiguousarray(self.mesh.faces, np.uint32)))

    @classmethod
    def from_file(cls, path: str, sign_rays: int = 5) -> MeshTarget:
        mesh, warnings = load_mesh(path)
        return cls(mesh, os.path.abspath(path), sign_rays, warnings)

    def _query(self, points):
        o3d = require_open3d()

        return o3d.core.Tensor(np.ascontiguousarray(points, np.float32))

    def sdf(self, points: np.ndarray) -> np.ndarray:
        if len(points) == 0:
            return np.zeros(0, np.float32)
        return self.scene.compute_signed_distance(self._query(points), nsamples=self.sign_rays).numpy()

    def occupancy(self, points: np.ndarray) -> np.ndarray:
        if len(points) == 0:
            return np.zeros(0, bool)
        return self.scene.compute_occupancy(self._query(points), nsamples=self.sign_rays).numpy() > 0.5

    def closest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return closest_on_scene(self.scene, self.face_normals, points)

    def sample_surface(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        import trimesh

        pts, face = trimesh.sample.sample_surface(self.mesh, n, seed=seed)
        return pts.astype(np.float32), self.face_normals[face]


def closest_on_scene(scene, face_normals: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance from `points` to the triangles of an open3d scene and the normal of the closest face."""
    o3d = require_open3d()

    points = np.ascontiguousarray(points, np.float32)
    hit = scene.compute_closest_points(o3d.core.Tensor(points))
    dist = np.linalg.norm(hit["points"].numpy() - points, axis=-1)
    return dist, face_normals[hit["primitive_ids"].numpy().astype(np.int64)]


# ----------------------------------------------------------------------------------------------
# Mesh files


def load_mesh(path: str):
    """Read a triangle mesh with trimesh; returns (mesh, warnings).

    Raises InputError (one line naming the file) for a missing, empty or unreadable file, a point
    cloud or a mesh without faces, non-finite vertices, or faces indexing missing vertices.
    Scenes (GLB, multi-object OBJ) are flattened into one mesh in world coordinates.
    """
    import trimesh

    if not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if os.path.isdir(path):
        raise InputError(f"{path}: is a directory, not a mesh file")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in MESH_SUFFIXES:
        raise InputError(f"{path}: unsupported mesh format {suffix or '(none)'}; "
                         f"use {', '.join(s.lstrip('.').upper() for s in MESH_SUFFIXES)}")
    try:
        loaded = trimesh.load(path, process=False)
    except Exception as e:  # trimesh raises many types for a bad file
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path}: cannot read mesh, corrupt or unsupported ({msg})") from None
    if isinstance(loaded, trimesh.Scene):
        geoms = [g for g in loaded.dump() if isinstance(g, trimesh.Trimesh)] if loaded.geometry else []
        if not geoms:
            kinds = {type(g).__name__ for g in loaded.geometry.values()}
            what = "a point cloud" if "PointCloud" in kinds else "no triangle mesh"
            raise InputError(f"{path}: holds {what}, not a triangle mesh with faces")
        loaded = trimesh.util.concatenate(geoms) if len(geoms) > 1 else geoms[0]
    if isinstance(loaded, trimesh.PointCloud):
        raise InputError(f"{path}: is a point cloud ({len(loaded.vertices)} points, no faces); an SDF needs a "
                         "triangle mesh (reconstruct a surface first, e.g. Poisson)")
    if not isinstance(loaded, trimesh.Trimesh):
        raise InputError(f"{path}: holds a {type(loaded).__name__}, not a triangle mesh")
    check_mesh(loaded, path)
    mesh = loaded.copy()
    mesh.merge_vertices()
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.remove_unreferenced_vertices()
    if len(mesh.faces) == 0 or mesh.area <= 0:
        raise InputError(f"{path}: every face is degenerate (zero area)")
    return mesh, ()


def check_mesh(mesh, source: str) -> None:
    """One-line InputError for a mesh an SDF cannot be fitted to."""
    verts = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.faces)
    if len(verts) == 0:
        raise InputError(f"{source}: the mesh is empty (no vertices)")
    if len(faces) == 0:
        raise InputError(f"{source}: the mesh has no faces ({len(verts)} vertices): a point cloud, not a surface")
    if not np.isfinite(verts).all():
        bad = int((~np.isfinite(verts)).any(axis=1).sum())
        raise InputError(f"{source}: {bad} vertices have NaN or infinite coordinates")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise InputError(f"{source}: faces refer to vertices that do not exist")


# ----------------------------------------------------------------------------------------------
# Training samples


@dataclass
class SampleConfig:
    """The pool of training points drawn once per fit (field frame, [-1, 1]^3).

    Surface points carry normals; near-surface points are surface points moved by Gaussian
    noise of std `sigma_near` and `sigma_far` (half each); uniform points fill the box."""

    surface_points: int = 250_000
    near_points: int = 500_000
    uniform_points: int = 50_000
    sigma_near: float = 0.005
    sigma_far: float = 0.05


@dataclass
class SamplePool:
    surface: torch.Tensor  # [S, 3]
    normals: torch.Tensor  # [S, 3]
    off: torch.Tensor  # [M, 3] near-surface then uniform points
    off_sdf: torch.Tensor  # [M]
    n_near: int

    def to(self, device) -> SamplePool:
        return SamplePool(*(t.to(device) for t in (self.surface, self.normals, self.off, self.off_sdf)), self.n_near)


def sample_pool(target: SDFTarget, cfg: SampleConfig, seed: int = 0) -> SamplePool:
    """Surface points with normals, near-surface points at two scales and uniform points in the box,
    with ground-truth signed distances for the off-surface ones."""
    rng = np.random.default_rng(seed)
    surface, normals = target.sample_surface(cfg.surface_points, seed=seed)
    base, _ = target.sample_surface(cfg.near_points, seed=seed + 1)
    half = cfg.near_points // 2
    sigma = np.where(np.arange(cfg.near_points) < half, cfg.sigma_near, cfg.sigma_far).astype(np.float32)
    near = base + rng.standard_normal(base.shape).astype(np.float32) * sigma[:, None]
    uniform = rng.uniform(-1, 1, (cfg.uniform_points, 3)).astype(np.float32)
    off = np.clip(np.concatenate([near, uniform]), -1, 1).astype(np.float32)
    off_sdf = target.sdf(off).astype(np.float32)
    return SamplePool(torch.from_numpy(np.ascontiguousarray(surface)), torch.from_numpy(np.ascontiguousarray(normals)),
                      torch.from_numpy(off), torch.from_numpy(off_sdf), len(near))


# ----------------------------------------------------------------------------------------------
# Gradients and losses


def sdf_gradient(field, x: torch.Tensor, create_graph: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """f(x) [N] and grad_x f [N, 3] by autograd; with `create_graph` the gradient is itself
    differentiable (second derivatives through the MLP and the hash grid, for eikonal losses).
    On a GPU, a field with `value_and_grad` (SIREN) gives both in one forward pass instead, whose
    backward is one fused kernel rather than a double backward."""
    from inr.backends import active_backend

    if create_graph and x.is_cuda and hasattr(field, "value_and_grad") and active_backend().compiled:
        f, jac = field.value_and_grad(x)
        return f[..., 0], jac[..., 0, :]
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = field(x)[..., 0]
        (g,) = torch.autograd.grad(f.sum(), x, create_graph=create_graph)
    return f, g


# SIREN's reference code (loss_functions.sdf): on-surface |f|, inter exp(-100|f|), normal, eikonal.
SIREN_WEIGHTS = {"sdf": 3e3, "inter": 1e2, "normal": 1e2, "eikonal": 5e1}


def siren_sdf_loss(f_surface: torch.Tensor, g_surface: torch.Tensor, normals: torch.Tensor,
                   f_off: torch.Tensor, g_off: torch.Tensor, weights: dict | None = None) -> tuple[torch.Tensor, dict]:
    """SIREN's SDF loss (Sitzmann et al. 2020), terms averaged over all points as their code does:
    3e3 |f| on the surface, 1e2 (1 - cos(grad f, n)) on the surface, 1e2 exp(-100 |f|) off it and
    5e1 | |grad f| - 1 | everywhere."""
    w = {**SIREN_WEIGHTS, **(weights or {})}
    n_all = f_surface.numel() + f_off.numel()
    sdf = f_surface.abs().sum() / n_all
    normal = (1 - F.cosine_similarity(g_surface, normals, dim=-1)).sum() / n_all
    inter = torch.exp(-100 * f_off.abs()).sum() / n_all
    grad_norm = torch.cat([g_surface, g_off]).norm(dim=-1)
    eikonal = (grad_norm - 1).abs().mean()
    loss = w["sdf"] * sdf + w["inter"] * inter + w["normal"] * normal + w["eikonal"] * eikonal
    return loss, {"sdf": sdf.detach(), "normal": normal.detach(), "eikonal": eikonal.detach()}


def supervised_sdf_loss(f: torch.Tensor, sdf: torch.Tensor, g: torch.Tensor, g_normals: torch.Tensor | None = None,
                        g_surface: torch.Tensor | None = None, eikonal_weight: float = 0.1,
                        normal_weight: float = 0.1) -> tuple[torch.Tensor, dict]:
    """Regression on ground-truth distances: mean |f - sdf| + eikonal_weight * mean (|g| - 1)^2
    over the points with gradients g, + normal_weight * mean (1 - cos(g_surface, n)) where surface
    normals are given."""
    l1 = (f - sdf).abs().mean()
    eikonal = ((g.norm(dim=-1) - 1) ** 2).mean()
    loss = l1 + eikonal_weight * eikonal
    logs = {"sdf": l1.detach(), "eikonal": eikonal.detach()}
    if g_normals is not None and g_surface is not None and normal_weight:
        normal = (1 - F.cosine_similarity(g_surface, g_normals, dim=-1)).mean()
        loss = loss + normal_weight * normal
        logs["normal"] = normal.detach()
    return loss, logs


__all__ = ["EXTENT", "METRIC_SCALE", "AnalyticTarget", "MeshTarget", "Normalisation", "SDFTarget", "SampleConfig",
           "SamplePool", "check_mesh", "load_mesh", "sample_pool", "sdf_gradient", "siren_sdf_loss",
           "supervised_sdf_loss"]
