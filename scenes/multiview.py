"""Built-in multi-view scenes for radiance fields: procedural, captioned, no download, ever.

A scene is a seeded composition of 2-4 coloured primitives (cube, sphere, cylinder, cone, torus)
standing on an invisible ground, some stacked on others ("a red cube on a blue cylinder beside a
yellow sphere"). It is rendered with open3d's raycaster into a Blender / NeRF-synthetic dataset:

    <out>/transforms_train.json   camera_angle_x, aabb_scale, w, h, frames[{file_path, transform_matrix}]
    <out>/transforms_val.json     (file_path has no extension, as Blender writes it: "./train/r_0")
    <out>/transforms_test.json
    <out>/train/r_<i>.png ...     RGBA, straight alpha; alpha 0 (and RGB 0) where no object is hit
    <out>/scene.json              caption, seed, primitives, cameras, generator version

Conventions (the same as the Blender scenes): world +Z is up; `transform_matrix` is camera-to-world
in the OpenGL camera convention (the camera looks down its -Z axis, +Y up, +X right). Cameras sit
on a sphere of radius 4 around the origin and look at it; train and val views are random on the
upper hemisphere, test views a ring at 30 degrees elevation. The object fits in [-1, 1]^3.
Shading is Lambertian with two world-fixed lights, ambient light and a cast shadow from the key
light, so the colour of a surface point is the same from every view (no view-dependent effects).

Built-in names (`multiview_scene`): ``blocks`` (the default), ``tower``, ``ring``, and
``seed-<N>`` for the random composition with seed N.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from inr.errors import InputError
from inr.optional import require_open3d
from inr.signals.image import save_image

__all__ = ["DEFAULT_MULTIVIEW_SCENE", "GENERATOR_VERSION", "MULTIVIEW_SCENES", "PALETTE",
           "describe_scene", "generate_scene", "list_multiview_scenes", "multiview_scene"]

# Bump whenever the output for a given seed changes: cached datasets are keyed by it.
GENERATOR_VERSION = 1

CAMERA_ANGLE_X = 0.6911112070083618  # NeRF-synthetic's horizontal field of view (~39.6 degrees)
CAMERA_RADIUS = 4.0  # Blender's lego cameras sit at ~4.03
TEST_ELEVATION = math.radians(30.0)

# Named colours, distinct in hue or lightness so a caption names each object unambiguously.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.10),
    "green": (0.15, 0.65, 0.20),
    "blue": (0.12, 0.28, 0.85),
    "yellow": (0.95, 0.82, 0.10),
    "orange": (0.98, 0.48, 0.05),
    "purple": (0.52, 0.18, 0.72),
    "pink": (0.95, 0.45, 0.68),
    "cyan": (0.10, 0.72, 0.82),
    "white": (0.92, 0.92, 0.92),
    "gray": (0.48, 0.48, 0.48),
}
KINDS = ("cube", "sphere", "cylinder", "cone", "torus")
_SUPPORTS = ("cube", "cylinder")  # flat tops: what a random composition stacks things on

# Lights fixed in the world, so shading is multi-view consistent: (direction towards the light, weight).
_AMBIENT = 0.28
_KEY = (np.array([-0.45, -0.55, 0.70]), 0.62)  # casts shadows
_FILL = (np.array([0.60, 0.35, 0.25]), 0.20)

# name -> (seed for sizes/spacing/cameras, towers listed bottom to top as (kind, colour))
_NAMED: dict[str, tuple[int, list[list[tuple[str, str]]]]] = {
    "blocks": (0, [[("cylinder", "blue"), ("cube", "red")], [("sphere", "yellow")]]),
    "tower": (1, [[("cube", "green"), ("cylinder", "orange"), ("cone", "purple")]]),
    "ring": (2, [[("torus", "purple"), ("sphere", "orange")], [("cone", "green")], [("cube", "white")]]),
}
DEFAULT_MULTIVIEW_SCENE = "blocks"
MULTIVIEW_SCENES: tuple[str, ...] = tuple(_NAMED)


def list_multiview_scenes() -> list[str]:
    """Names of the built-in multi-view scenes, default first (``seed-<N>`` also works for any N).

    >>> list_multiview_scenes()[0]
    'blocks'
    """
    return list(MULTIVIEW_SCENES)


# ----------------------------------------------------------------------------------------------
# Composition: which primitives, where, and the caption


def _resolve(scene: int | str) -> tuple[str, int, list | None]:
    """A seed or name -> (name, seed, recipe or None for a random composition)."""
    if isinstance(scene, (int, np.integer)) and not isinstance(scene, bool):
        seed = int(scene)
    elif isinstance(scene, str) and scene in _NAMED:
        return scene, _NAMED[scene][0], _NAMED[scene][1]
    elif isinstance(scene, str) and re.fullmatch(r"(seed-)?\d+", scene):
        seed = int(scene.rsplit("-", 1)[-1])
    else:
        raise InputError(f"unknown multi-view scene {scene!r} (available: {', '.join(MULTIVIEW_SCENES)}, "
                         "or seed-<N> for a random composition)")
    if seed < 0:
        raise InputError(f"scene seed must be non-negative, got {seed}")
    return f"seed-{seed}", seed, None


def _random_towers(rng: np.random.Generator) -> list[list[tuple[str, str]]]:
    n = int(rng.choice([2, 3, 4], p=[0.35, 0.4, 0.25]))
    kinds = [str(k) for k in rng.choice(KINDS, size=n)]
    colours = [str(c) for c in rng.choice(list(PALETTE), size=n, replace=False)]
    return stack_towers(list(zip(kinds, colours)), rng, max_height=3, p_stack=0.5)


def stack_towers(objects: list[tuple[str, str]], rng: np.random.Generator, max_height: int,
                 p_stack: float) -> list[list[tuple[str, str]]]:
    """(kind, colour) objects, in order, into towers: each goes on top of the previous tower with
    probability `p_stack` when that tower's top is flat and it is lower than `max_height`."""
    towers: list[list[tuple[str, str]]] = []
    for kind, colour in objects:
        top = towers[-1][-1][0] if towers else None
        if top in _SUPPORTS and len(towers[-1]) < max_height and rng.random() < p_stack:
            towers[-1].append((kind, colour))
        else:
            towers.append([(kind, colour)])
    return towers


def _random_size(kind: str, rng: np.random.Generator) -> dict[str, float]:
    u = rng.uniform
    if kind == "cube":
        return {"edge": u(0.5, 0.8)}
    if kind == "sphere":
        return {"radius": u(0.25, 0.4)}
    if kind in ("cylinder", "cone"):
        return {"radius": u(0.25, 0.4), "height": u(0.45, 0.9) if kind == "cylinder" else u(0.55, 0.9)}
    return {"radius": u(0.3, 0.4), "tube_radius": u(0.1, 0.14)}  # torus, lying flat


def _height(kind: str, size: dict) -> float:
    if kind == "cube":
        return size["edge"]
    if kind == "sphere":
        return 2 * size["radius"]
    if kind == "torus":
        return 2 * size["tube_radius"]
    return size["height"]


def _footprint(kind: str, size: dict) -> float:
    """Radius of the circle around the z axis that holds the primitive, for any yaw."""
    if kind == "cube":
        return size["edge"] / math.sqrt(2)
    return size["radius"] + size.get("tube_radius", 0.0)


def _rest_height(support: dict, kind: str, size: dict) -> float:
    """z of the bottom of a `kind` resting on `support` (a sphere sinks into a torus's hole)."""
    top = support["position"][2] + _height(support["kind"], support["size"]) / 2
    if support["kind"] == "torus" and kind == "sphere":
        ring, tube, r = support["size"]["radius"], support["size"]["tube_radius"], size["radius"]
        if r + tube > ring:  # touches the tube all round: |centre - ring circle| = r + tube
            return support["position"][2] + math.sqrt((r + tube) ** 2 - ring ** 2) - r
    return top


def _fit_on(support: dict, kind: str, size: dict) -> dict:
    """Shrink `size` so the primitive does not overhang its support much."""
    s = support["size"]
    room = {"cube": s.get("edge", 0) / 2 * 1.15, "cylinder": s.get("radius", 0) * 1.15,
            "torus": s.get("radius", 0) * 1.3}.get(support["kind"], _footprint(support["kind"], s))
    scale = min(1.0, room / _footprint(kind, size))
    return {k: v * scale for k, v in size.items()}


def _compose(seed: int, recipe: list | None) -> list[dict]:
    """Primitives with kind, colour, size, yaw, position (bounding-box centre) and support index."""
    rng = np.random.default_rng([seed, 0])  # its own stream: camera counts never change the layout
    towers = [list(t) for t in recipe] if recipe is not None else _random_towers(rng)
    prims: list[dict] = []
    tower_members: list[list[int]] = []
    for tower in towers:  # build each tower on the axis x = y = 0, standing on z = 0
        members: list[int] = []
        for kind, colour in tower:
            size = _random_size(kind, rng)
            support = prims[members[-1]] if members else None
            if support is not None:
                size = _fit_on(support, kind, size)
            bottom = _rest_height(support, kind, size) if support is not None else 0.0
            prims.append({"kind": kind, "colour": colour, "size": size,
                          "yaw": float(rng.uniform(0, math.pi / 2)) if kind == "cube" else 0.0,
                          "position": [0.0, 0.0, bottom + _height(kind, size) / 2],
                          "support": members[-1] if members else None})
            members.append(len(prims) - 1)
        tower_members.append(members)

    # Towers on a circle, evenly spaced, every pair at least `gap` apart: chord(i, j) = 2 R sin(pi d / k).
    k = len(towers)
    radii = [max(_footprint(prims[i]["kind"], prims[i]["size"]) for i in m) for m in tower_members]
    gap = float(rng.uniform(0.04, 0.15))
    ring = max([(radii[i] + radii[j] + gap) / (2 * math.sin(math.pi * (j - i) / k))
                for i in range(k) for j in range(i + 1, k)], default=0.0)
    phase = float(rng.uniform(0, 2 * math.pi))
    for t, members in enumerate(tower_members):
        a = phase + 2 * math.pi * t / k
        for i in members:
            prims[i]["position"][:2] = [ring * math.cos(a), ring * math.sin(a)]
    return _normalise(prims)


def _normalise(prims: list[dict]) -> list[dict]:
    """Centre the composition's bounding box on the origin and scale it into [-0.95, 0.95]^3 and a
    ball of radius 1.25, so every camera on the radius-4 sphere sees all of it."""
    verts = np.concatenate([np.asarray(_mesh(p).vertices) for p in prims])
    centre = (verts.min(0) + verts.max(0)) / 2
    verts = verts - centre
    scale = min(0.95 / np.abs(verts).max(), 1.25 / np.linalg.norm(verts, axis=1).max())
    out = []
    for p in prims:
        q = dict(p)
        q["position"] = [round(float(v), 6) for v in (np.asarray(p["position"]) - centre) * scale]
        q["size"] = {k: round(float(v * scale), 6) for k, v in p["size"].items()}
        q["yaw"] = round(p["yaw"], 6)
        q["rgb"] = list(PALETTE[p["colour"]])
        out.append(q)
    return out


def _mesh(p: dict):
    """The open3d TriangleMesh of a primitive, centred on its bounding box at `position`."""
    o3d = require_open3d()

    T, s = o3d.geometry.TriangleMesh, p["size"]
    kind = p["kind"]
    if kind == "cube":
        m = T.create_box(s["edge"], s["edge"], s["edge"])
    elif kind == "sphere":
        m = T.create_sphere(s["radius"], resolution=40)
    elif kind == "cylinder":
        m = T.create_cylinder(s["radius"], s["height"], resolution=64)
    elif kind == "cone":
        m = T.create_cone(s["radius"], s["height"], resolution=64)
    elif kind == "torus":
        m = T.create_torus(s["radius"], s["tube_radius"], radial_resolution=64, tubular_resolution=24)
    else:
        raise InputError(f"unknown primitive kind {kind!r} (available: {', '.join(KINDS)})")
    m.translate(-m.get_axis_aligned_bounding_box().get_center())
    m.rotate(m.get_rotation_matrix_from_xyz((0.0, 0.0, p["yaw"])), center=(0.0, 0.0, 0.0))
    m.translate(np.asarray(p["position"], dtype=np.float64))
    return m


def _phrase(p: dict) -> str:
    article = "an" if p["colour"][0] in "aeiou" else "a"
    return f"{article} {p['colour']} {p['kind']}"


def _caption(prims: list[dict]) -> str:
    """'a red cube on a blue cylinder beside a yellow sphere': stacks first, then the rest."""
    tops = [i for i in range(len(prims)) if not any(q["support"] == i for q in prims)]
    stacks = []
    for i in tops:  # walk each tower from its top down to the ground
        chain = [i]
        while prims[chain[-1]]["support"] is not None:
            chain.append(prims[chain[-1]]["support"])
        stacks.append(" on ".join(_phrase(prims[j]) for j in chain))
    stacks.sort(key=lambda s: -s.count(" on "))  # stable: ties keep the layout order
    head, rest = stacks[0], stacks[1:]
    if not rest:
        return head
    others = rest[0] if len(rest) == 1 else ", ".join(rest[:-1]) + " and " + rest[-1]
    return f"{head} beside {others}"


def describe_scene(scene: int | str = DEFAULT_MULTIVIEW_SCENE, recipe: list | None = None) -> dict:
    """The composition of a scene (a seed or built-in name) without rendering it.

    `recipe` (towers listed bottom to top as (kind, colour) pairs) replaces the seed's random
    choice of objects; the seed still draws sizes, spacing and cameras (scene collections use it).

    Returns ``{"name", "seed", "caption", "primitives"}``; each primitive has ``kind``, ``colour``
    (a `PALETTE` name), ``rgb``, ``position`` (centre of its bounding box), ``size`` (edge, radius,
    height or tube_radius by kind), ``yaw`` (radians about +Z) and ``support`` (index of the
    primitive it rests on, or None when it stands on the ground).

    >>> describe_scene("blocks")["caption"]
    'a red cube on a blue cylinder beside a yellow sphere'
    """
    name, seed, named = _resolve(scene)
    if recipe is not None:
        _check_recipe(recipe)
    prims = _compose(seed, recipe if recipe is not None else named)
    return {"name": name, "seed": seed, "caption": _caption(prims), "primitives": prims}


def _check_recipe(recipe: list) -> None:
    if not recipe or not all(tower for tower in recipe):
        raise InputError("a scene recipe needs at least one tower of at least one primitive")
    for tower in recipe:
        for kind, colour in tower:
            if kind not in KINDS or colour not in PALETTE:
                raise InputError(f"scene recipe: unknown primitive {kind!r} or colour {colour!r}")


# ----------------------------------------------------------------------------------------------
# Cameras


def _look_at(position: np.ndarray, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Camera-to-world 4x4 (OpenGL: looks down -Z, +Y up, no roll) at `position`, facing `target`."""
    position = np.asarray(position, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - position
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, np.cross(right, forward), -forward, position
    return c2w + 0.0  # no -0.0 in the JSON


def _sphere_point(azimuth: float, elevation: float) -> np.ndarray:
    return CAMERA_RADIUS * np.array([math.cos(elevation) * math.cos(azimuth),
                                     math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])


def _cameras(seed: int, n_train: int, n_val: int, n_test: int) -> dict[str, list[np.ndarray]]:
    def hemisphere(n: int, stream: int) -> list[np.ndarray]:
        rng = np.random.default_rng([seed, stream])
        # z uniform gives area-uniform points on the cap; stop short of the pole (look_at's up).
        z = rng.uniform(0.05, 0.95, size=n)
        az = rng.uniform(0, 2 * math.pi, size=n)
        return [_look_at(_sphere_point(a, math.asin(e))) for a, e in zip(az, z)]

    ring = [_look_at(_sphere_point(2 * math.pi * i / n_test, TEST_ELEVATION)) for i in range(n_test)]
    return {"train": hemisphere(n_train, 1), "val": hemisphere(n_val, 2), "test": ring}


# ----------------------------------------------------------------------------------------------
# Rendering


class _Renderer:
    """Ray casts one scene's meshes; `render(c2w)` gives a straight-alpha RGBA image [H, W, 4]."""

    def __init__(self, prims: list[dict], size: int, supersample: int):
        o3d = require_open3d()

        self.o3d = o3d
        self.size, self.ss = size, supersample
        self.focal = 0.5 * size / math.tan(0.5 * CAMERA_ANGLE_X)
        self.scene = o3d.t.geometry.RaycastingScene()
        self.rgb, self.smooth, self.vnormals, self.triangles = [], [], [], []
        for p in prims:
            m = _mesh(p)
            m.compute_vertex_normals()
            gid = self.scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(m))
            assert gid == len(self.rgb)  # ids count from 0 in insertion order
            self.rgb.append(p["rgb"])
            # Curved surfaces get interpolated normals; cubes, cylinders and cones keep their crisp
            # edges (their meshes share vertices across the edges, which would blur them).
            self.smooth.append(p["kind"] in ("sphere", "torus"))
            self.vnormals.append(np.asarray(m.vertex_normals))
            self.triangles.append(np.asarray(m.triangles))
        self.rgb = np.asarray(self.rgb, dtype=np.float64)

    def _rays(self, c2w: np.ndarray) -> np.ndarray:
        n = self.size * self.ss
        c = (np.arange(n) + 0.5) / self.ss  # sub-pixel centres in pixel units
        u, v = np.meshgrid(c, c, indexing="xy")
        half = self.size / 2
        d_cam = np.stack([(u - half) / self.focal, -(v - half) / self.focal, -np.ones_like(u)], -1)
        d = d_cam @ c2w[:3, :3].T
        o = np.broadcast_to(c2w[:3, 3], d.shape)
        return np.concatenate([o, d], -1).reshape(-1, 6).astype(np.float32)

    def render(self, c2w: np.ndarray) -> np.ndarray:
        rays = self._rays(c2w)
        hit = self.scene.cast_rays(self.o3d.core.Tensor(rays))
        t = hit["t_hit"].numpy()
        mask = np.isfinite(t)
        gid = hit["geometry_ids"].numpy()[mask].astype(np.int64)
        pid = hit["primitive_ids"].numpy()[mask].astype(np.int64)
        normals = hit["primitive_normals"].numpy()[mask].astype(np.float64)
        uv = hit["primitive_uvs"].numpy()[mask].astype(np.float64)
        for g in np.flatnonzero(self.smooth):
            sel = gid == g
            vn = self.vnormals[g][self.triangles[g][pid[sel]]]  # [n, 3 corners, 3]
            w = np.stack([1 - uv[sel].sum(1), uv[sel, 0], uv[sel, 1]], -1)
            normals[sel] = np.einsum("nc,ncd->nd", w, vn)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        d = rays[mask, 3:].astype(np.float64)
        normals *= -np.sign(np.einsum("nd,nd->n", normals, d))[:, None]  # face the camera
        points = rays[mask, :3] + t[mask, None] * d
        rgb_hit = self.rgb[gid] * self._light(points, normals)[:, None]

        n = self.size * self.ss
        rgb = np.zeros((n * n, 3))
        rgb[mask] = np.clip(rgb_hit, 0, 1)
        # Box-filter the ss x ss samples of each pixel: alpha = coverage; colour = the mean over
        # covered samples (straight alpha), so compositing over a background is exact.
        def pool(a):
            return a.reshape(self.size, self.ss, self.size, self.ss, -1).mean((1, 3))
        alpha = pool(mask.astype(np.float64))
        colour = pool(rgb) / np.maximum(alpha, 1e-12)
        return np.concatenate([np.where(alpha > 0, colour, 0.0), alpha], -1).astype(np.float32)

    def _light(self, points: np.ndarray, normals: np.ndarray) -> np.ndarray:
        (key, k_w), (fill, f_w) = _KEY, _FILL
        key, fill = key / np.linalg.norm(key), fill / np.linalg.norm(fill)
        k_dot = np.clip(normals @ key, 0, None)
        # Shadow rays start a little off the surface so they do not hit their own triangle.
        origins = points + 1e-3 * normals
        rays = np.concatenate([origins, np.broadcast_to(key, origins.shape)], 1).astype(np.float32)
        lit = ~self.scene.test_occlusions(self.o3d.core.Tensor(rays)).numpy() if len(rays) else np.ones(0, bool)
        return _AMBIENT + k_w * k_dot * lit + f_w * np.clip(normals @ fill, 0, None)


# ----------------------------------------------------------------------------------------------
# Datasets on disk


def _check_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "scene.json").is_file():
        raise InputError(f"{out}: directory is not empty and holds no generated scene; refusing to replace it")


def _umask_modes(tmp: Path) -> None:
    """mkdtemp and save_image's temporary files are private (0700 / 0600); a dataset is not."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [tmp, *tmp.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _publish(tmp: Path, out: Path) -> None:
    """Move the finished dataset `tmp` to `out`, replacing an older generated scene there."""
    _umask_modes(tmp)
    try:
        os.rename(tmp, out)  # atomic; also fine onto an empty directory
        return
    except OSError:
        if not (out / "scene.json").is_file():
            raise
    trash = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
    os.rename(out, trash / "old")
    os.rename(tmp, out)
    shutil.rmtree(trash, ignore_errors=True)


def _write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def generate_scene(out_dir: str | os.PathLike, seed: int | str = 0, size: int = 100, n_train: int = 50,
                   n_val: int = 5, n_test: int = 10, supersample: int = 2, recipe: list | None = None) -> Path:
    """Render the scene `seed` (an int, or a built-in name such as "blocks") into a Blender dataset.

    Writes `out_dir` atomically: everything is built in a temporary folder beside it and renamed
    into place at the end, so `out_dir` is either absent or complete. An existing generated scene
    there is replaced; any other non-empty folder is refused (`InputError`). Images are `size` x
    `size` RGBA PNGs, each pixel the box-filtered mean of `supersample` x `supersample` rays (soft,
    anti-aliased edges, as Blender renders them). `recipe` chooses the objects (`describe_scene`).
    Returns `out_dir` as a Path.

    >>> path = generate_scene("/tmp/blocks", "blocks", size=64, n_train=20)   # doctest: +SKIP
    >>> json.loads((path / "scene.json").read_text())["caption"]              # doctest: +SKIP
    'a red cube on a blue cylinder beside a yellow sphere'
    """
    for label, value, low in (("size", size, 1), ("n_train", n_train, 1), ("n_val", n_val, 0),
                              ("n_test", n_test, 0), ("supersample", supersample, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
            raise InputError(f"{label} must be an integer >= {low}, got {value!r}")
    info = describe_scene(seed, recipe)
    out = Path(out_dir).expanduser().absolute()
    _check_out_dir(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    except OSError as e:
        raise InputError(f"{out}: cannot create the scene directory ({e.strerror or e})") from e
    try:
        renderer = _Renderer(info["primitives"], int(size), int(supersample))
        cameras = _cameras(info["seed"], int(n_train), int(n_val), int(n_test))
        for split, poses in cameras.items():
            frames = []
            for i, c2w in enumerate(poses):
                save_image(tmp / split / f"r_{i}.png", renderer.render(c2w))
                frames.append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w.tolist()})
            (tmp / split).mkdir(exist_ok=True)  # present even for an empty split
            _write_json(tmp / f"transforms_{split}.json", {
                "camera_angle_x": CAMERA_ANGLE_X, "aabb_scale": 1, "w": size, "h": size, "frames": frames})
        _write_json(tmp / "scene.json", {
            "generator": "scenes.multiview", "version": GENERATOR_VERSION, **info,
            "image_size": size, "supersample": supersample,
            "views": {"train": n_train, "val": n_val, "test": n_test},
            "camera_radius": CAMERA_RADIUS, "camera_angle_x": CAMERA_ANGLE_X, "up": [0, 0, 1],
            "bounds": [[-1, -1, -1], [1, 1, 1]]})
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _cache_root() -> Path:
    env = os.environ.get("INR_CACHE")
    return Path(env).expanduser() / "scenes" if env else Path.home() / ".cache" / "inr" / "scenes"


def multiview_scene(name_or_seed: int | str = DEFAULT_MULTIVIEW_SCENE, size: int = 100,
                    cache_dir: str | os.PathLike | None = None) -> Path:
    """The dataset folder of a built-in multi-view scene, generated on first use and then cached.

    `name_or_seed` is a name from `MULTIVIEW_SCENES`, ``"seed-<N>"`` or an int N. The dataset has
    the default view counts (50 train, 5 val, 10 test) at `size` x `size` and lives in
    ``<cache_dir>/<name>-<size>-v<GENERATOR_VERSION>``; `cache_dir` defaults to ``$INR_CACHE/scenes``
    or else ``~/.cache/inr/scenes``. A complete cached copy is returned without rendering.

    >>> path = multiview_scene("blocks")                      # doctest: +SKIP
    >>> sorted(p.name for p in path.glob("transforms_*.json"))  # doctest: +SKIP
    ['transforms_test.json', 'transforms_train.json', 'transforms_val.json']
    """
    name, _, _ = _resolve(name_or_seed)
    root = Path(cache_dir).expanduser() if cache_dir is not None else _cache_root()
    out = root / f"{name}-{int(size)}-v{GENERATOR_VERSION}"
    if (out / "scene.json").is_file():  # the rename that publishes a scene makes it complete
        return out
    try:
        return generate_scene(out, name, size=size)
    except OSError:
        if (out / "scene.json").is_file():  # another process published it first
            return out
        raise
