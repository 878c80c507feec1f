"""NeRF from a few posed views in one forward pass (HyperPlanes-style): no gradient step at inference.

    support views [B, V, H, W, 4] + cameras
        --ViewEncoder (CNN)--> feature maps per view, pooled scene code z
        feature maps --project every vertex of the field's grid into each view, read, pool over
                       views, a small MLP--> the field's grid table (image-plane features, baked)
        z --hypernetwork--> delta on the chosen layers: theta = theta_univ + delta (--hyper.targets,
                            default the last layer of each head)
    -> per scene, a plain NerfField (kind "nerf", a dense grid encoding): a normal nerf run.

The paper's parts (HyperPlanes, gmum 2024): an encoder of the posed support views, a hypernetwork
that turns it into an update of universal NeRF weights (by default the last layer of each head),
a target net that reads image-plane features (MultiPlaneNeRF), trained jointly on random
support / query splits of many scenes with a photometric loss, optional fine-tuning after.

Ours: the image-plane features are read at the vertices of the NeRF's own feature grid (a
tiny-cuda-nn style dense grid) and pooled over views by mean, variance and visibility, so the
generated NeRF is a self-contained instant-ngp style field that every nerf tool renders, evaluates
and fine-tunes with no support images at hand; the same baked grid is what training renders, so
what is trained is what is written. Rays are sampled uniformly (`samples_per_ray`) while training.
With `zero_update` (default) the hypernetwork's head starts at zero: the generated NeRF then equals
the universal one until training moves it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from inr.errors import InputError
from inr.backends.contracts import HashGridConfig, grid_layout
from inr.fields.nerf import NerfField, NerfFieldConfig, trunc_exp
from inr.hyper import HyperConfig, HyperField
from inr.hyper.image_planes import ViewEncoder, pool_views, project, sample_planes
from inr.render.dense import render_dense
from inr.render.rays import Cameras
from inr.signals.radiance import RadianceData

KIND = "generator-views"
# Samples start this far from the camera: support cameras can sit inside the scene box.
NEAR = 0.05


@dataclass
class FewViewModelConfig:
    """The few-view generator's architecture (`--model.*`)."""

    max_support: int = 5          # the most support views a generated NeRF may be given
    image_size: int = 64          # support images are resized to this (set from the collection)
    features: int = 8             # learned channels of each view's feature map
    cnn_width: int = 32
    code_dim: int = 64            # the pooled scene code the hypernetwork reads
    grid_levels: int = 2          # the generated field's dense feature grid
    grid_base: int = 12
    grid_finest: int = 24
    grid_features: int = 4        # features per level and vertex
    fuse_hidden: int = 32         # the MLP from pooled view features to a vertex's features
    density_hidden: tuple[int, ...] = (64,)
    geo_features: int = 16
    color_hidden: tuple[int, ...] = (64,)
    sh_degree: int = 2
    samples_per_ray: int = 48     # uniform samples per ray while training and evaluating the generator
    zero_update: bool = True      # hypernetwork head starts at zero (generated == universal at init)

    def check(self) -> None:
        for name in ("max_support", "image_size", "features", "cnn_width", "code_dim", "grid_levels", "grid_base",
                     "grid_features", "fuse_hidden", "geo_features", "samples_per_ray"):
            if getattr(self, name) < 1:
                raise ValueError(f"model.{name} must be >= 1, got {getattr(self, name)}")
        if self.grid_finest < self.grid_base:
            raise ValueError("model.grid_finest must be >= model.grid_base")

    @classmethod
    def from_dict(cls, d: dict) -> "FewViewModelConfig":
        d = dict(d)
        for k in ("density_hidden", "color_hidden"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def default_hyper() -> HyperConfig:
    """HyperPlanes' choice: full weights of the last layer of each head, theta = theta_univ + h(z) (MIP)."""
    return HyperConfig(mode="full", mip=True, targets=("all",), last_k=1, hidden=(128,))


def field_config(cfg: FewViewModelConfig, aabb) -> NerfFieldConfig:
    grid = {"n_levels": cfg.grid_levels, "n_features_per_level": cfg.grid_features, "base_resolution": cfg.grid_base,
            "finest_resolution": cfg.grid_finest, "grid_type": "dense", "log2_hashmap_size": 24}
    return NerfFieldConfig(encoding="hash", aabb=tuple(float(v) for v in aabb), grid=grid,
                           density_hidden=tuple(cfg.density_hidden), geo_features=cfg.geo_features,
                           color_hidden=tuple(cfg.color_hidden), sh_degree=cfg.sh_degree)


def _grid_vertices(config: HashGridConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Every vertex of a dense grid, level by level, x fastest (tcnn's dense order): (unit
    positions [P, 3], level [P]). Vertex i of a level sits where the encoding's x * scale + 0.5 = i."""
    lay = grid_layout(config, 3)
    units, levels = [], []
    for lvl, (scale, res) in enumerate(zip(lay.scales, lay.resolutions)):
        i = torch.arange(res, dtype=torch.float32)
        z, y, x = torch.meshgrid(i, i, i, indexing="ij")  # x fastest in the flattened order
        units.append((torch.stack([x, y, z], -1).reshape(-1, 3) - 0.5) / scale)
        levels.append(torch.full((res ** 3,), lvl, dtype=torch.long))
    return torch.cat(units), torch.cat(levels)


class FewViewGenerator(nn.Module):
    """`generate(views, c2w, intrinsics)` -> per-scene field parameters [B, ...] in one batched call;
    `render(params, origins, dirs, background)` volume-renders them; `materialize(params, b)` is
    scene b as a plain NerfField."""

    def __init__(self, cfg: FewViewModelConfig, hyper: HyperConfig, aabb, generator: torch.Generator | None = None):
        super().__init__()
        cfg.check()
        self.cfg, self.hyper_cfg = cfg, hyper
        field = NerfField(3, 4, field_config(cfg, aabb), generator=generator)
        self.encoder = ViewEncoder(cfg.features, cfg.cnn_width, cfg.code_dim, bounded=hyper.mip)
        self.hyper = HyperField(field, cfg.code_dim, hyper, generator=generator)
        if cfg.zero_update:
            with torch.no_grad():
                self.hyper.hyper.head.weight.zero_()
        field.encoding.params.requires_grad_(False)  # the table is generated, never the field's own
        units, levels = _grid_vertices(field.encoding.config)
        self.register_buffer("units", units, persistent=False)
        self.register_buffer("level_code", F.one_hot(levels, cfg.grid_levels).float(), persistent=False)
        c = self.encoder.channels
        self.fuse = nn.Sequential(nn.Linear(3 * c + 1 + cfg.grid_levels, cfg.fuse_hidden), nn.ReLU(),
                                  nn.Linear(cfg.fuse_hidden, cfg.fuse_hidden), nn.ReLU(),
                                  nn.Linear(cfg.fuse_hidden, cfg.grid_features))

    @property
    def field(self) -> NerfField:
        return self.hyper.field

    def config(self) -> dict:
        d = dataclasses.asdict(self.cfg)
        return {"model": d, "hyper": self.hyper.config()["hyper"], "aabb": list(self.field.cfg.aabb)}

    # -- generation ----------------------------------------------------------------------------
    def grid_volumes(self, maps: torch.Tensor, c2w: torch.Tensor, intrinsics: torch.Tensor) -> list[torch.Tensor]:
        """The field's grid, one volume [B, F, R, R, R] (z, y, x) per level, from the views' feature
        maps: each vertex's pooled image-plane features through the fuse MLP."""
        b = maps.shape[0]
        aabb = self.field.aabb
        world = aabb[:3] + self.units * (aabb[3:] - aabb[:3])
        uv, depth = project(world.expand(b, -1, -1), c2w, intrinsics)
        feats, seen = sample_planes(maps, uv, depth)
        pooled = pool_views(feats, seen)
        vertex = self.fuse(torch.cat([pooled, self.level_code.expand(b, -1, -1)], -1))
        lay = self.field.encoding.layout
        sizes = [r ** 3 for r in lay.resolutions]
        return [v.reshape(b, r, r, r, -1).permute(0, 4, 1, 2, 3)
                for v, r in zip(vertex.split(sizes, 1), lay.resolutions)]

    def encode(self, volumes: list[torch.Tensor], u: torch.Tensor) -> torch.Tensor:
        """The dense grid encoding of unit positions u [B, N, 3] from per-level volumes: what
        HashGrid computes from the same values as a table (trilinear between vertices, vertex i
        where u * scale + 0.5 = i), by one grid_sample per level (much faster per scene on a CPU).
        The two differ only past the last vertex of a level (the box's outer half cell, or
        (1.5 - scale % 1) / scale of it: empty space around the scenes): tcnn's dense index wraps
        there, this clamps to the border."""
        b, n, _ = u.shape
        out = []
        for vol, scale in zip(volumes, self.field.encoding.layout.scales):
            r = vol.shape[-1]
            g = (u * scale + 0.5) * (2.0 / (r - 1)) - 1.0
            out.append(F.grid_sample(vol, g.reshape(b, n, 1, 1, 3), mode="bilinear", padding_mode="border",
                                     align_corners=True).reshape(b, -1, n).transpose(1, 2))
        return torch.cat(out, -1)

    def table(self, volumes: list[torch.Tensor]) -> torch.Tensor:
        """The grid table [B, rows, F] (tcnn's dense layout, x fastest) of per-level volumes."""
        b = volumes[0].shape[0]
        lay = self.field.encoding.layout
        table = volumes[0].new_zeros(b, lay.total_rows, self.cfg.grid_features)
        for vol, off, r in zip(volumes, lay.offsets, lay.resolutions):
            table[:, off:off + r ** 3] = vol.permute(0, 2, 3, 4, 1).reshape(b, r ** 3, -1)
        return table

    def generate(self, views: torch.Tensor, c2w: torch.Tensor, intrinsics: torch.Tensor,
                 update: bool = True) -> dict[str, torch.Tensor]:
        """Parameters of B generated fields {name: [B, ...]}: the hypernetwork's layers and the
        grid's volumes ("grid.<level>"). views [B, V, H, W, 4] RGBA in [0, 1]; c2w [B, V, 4, 4];
        intrinsics [B, V, 4] in pixels of these views. `update=False` keeps the universal weights."""
        if views.shape[1] > self.cfg.max_support:
            raise InputError(f"{views.shape[1]} support views; this generator takes at most {self.cfg.max_support}")
        maps, code = self.encoder(views)
        params = self.hyper.params(code) if update else self.universal(views.shape[0])
        for level, vol in enumerate(self.grid_volumes(maps, c2w, intrinsics)):
            params[f"grid.{level}"] = vol
        return params

    def universal(self, batch: int) -> dict[str, torch.Tensor]:
        """The universal weights of the generated layers, [B, ...] each (no scene's delta)."""
        if self.hyper_cfg.mode == "full":  # theta_univ lives in the head's output bias
            return {n: v.expand(batch, *v.shape) for n, v in self.hyper.hyper.initial_outputs().items()}
        return {}  # the other modes' identity update leaves the field's own (universal) weights

    def field_outputs(self, params: dict[str, torch.Tensor], x: torch.Tensor, dirs: torch.Tensor):
        """(rgb [B, N, 3], density [B, N]) of the generated fields at world positions x [B, N, 3]:
        NerfField's forward with the grid encoding read from the volumes."""
        f = self.field
        u, inside = f._unit(x)
        volumes = [params[f"grid.{i}"] for i in range(self.cfg.grid_levels)]
        mlp = {k: v for k, v in params.items() if not k.startswith("grid.")}
        h = f.density_net(self.encode(volumes, u), mlp, prefix="density_net.")
        density = trunc_exp(h[..., 0] + f.cfg.density_bias) * inside
        return f.color(h, dirs, mlp), density

    @torch.no_grad()
    def materialize(self, params: dict[str, torch.Tensor], b: int = 0) -> NerfField:
        """Scene b of `params` as a plain NerfField (its own config, all weights filled in)."""
        field = NerfField(3, 4, dataclasses.replace(self.field.cfg))
        state = {k: v.detach().clone() for k, v in self.field.state_dict().items()}
        for name, value in params.items():
            if not name.startswith("grid."):
                state[name] = value[b].detach().clone()
        volumes = [params[f"grid.{i}"][b:b + 1] for i in range(self.cfg.grid_levels)]
        state["encoding.params"] = self.table(volumes)[0].detach().clone()
        field.load_state_dict(state)
        return field.to(self.units.device).eval()

    # -- rendering (training and the generator's own evaluation) ------------------------------
    def render(self, params: dict[str, torch.Tensor], origins: torch.Tensor, dirs: torch.Tensor,
               background: torch.Tensor, jitter: bool | torch.Tensor = False,
               generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Volume-render rays [B, R, 3] of B generated fields with `samples_per_ray` uniform samples
        in the scene box (stratified when `jitter`: drawn from `generator`, or given as the offsets
        [B, R, samples_per_ray] in [0, 1)): {"rgb" [B, R, 3], "opacity" [B, R, 1]}."""
        b, r, _ = origins.shape
        s = self.cfg.samples_per_ray
        if isinstance(jitter, torch.Tensor):
            u = jitter.reshape(b, r, s)
        elif jitter:
            u = torch.rand(b, r, s, device=origins.device, generator=generator)
        else:
            u = None
        bg = background.reshape(b, r, 3) if background.dim() > 1 else background
        rgb, opacity = render_dense(lambda x, d: self.field_outputs(params, x, d), origins, dirs, self.field.aabb,
                                    s, bg, u, near=NEAR)
        return {"rgb": rgb, "opacity": opacity[..., None]}

    @torch.no_grad()
    def render_view(self, params: dict[str, torch.Tensor], cameras: Cameras, i: int, background: torch.Tensor,
                    b: int = 0, chunk: int = 4096) -> torch.Tensor:
        """Image [H, W, 3] of camera i for generated scene b."""
        origins, dirs = cameras.view_rays(i)
        one = {k: v[b:b + 1] for k, v in params.items()}
        parts = [self.render(one, o[None], d[None], background)["rgb"][0]
                 for o, d in zip(origins.split(chunk), dirs.split(chunk))]
        return torch.cat(parts).reshape(cameras.height, cameras.width, 3).clamp(0, 1)


# ----------------------------------------------------------------------------------------------
# Support views from a dataset


def pick_views(n_available: int, support: int) -> list[int]:
    """`support` view indices spread evenly over `n_available` (0 first)."""
    return sorted({(i * n_available) // support for i in range(support)})


def support_tensors(data: RadianceData, indices: list[int], image_size: int
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """(views [V, S, S, 4] RGBA float, c2w [V, 4, 4], intrinsics [V, 4] at S x S, whether the images
    were resized) of views `indices`, at the generator's image size S. Square images of another size
    are resized (area / bilinear); images of another aspect ratio are refused."""
    h, w = data.height, data.width
    if h != w:
        raise InputError(f"{data.source}: images are {w}x{h}; the generator was trained on square "
                         f"{image_size}x{image_size} views")
    views = data.rgba_views(indices)
    cams = data.cameras.subset(torch.tensor(indices))
    resized = h != image_size
    if resized:
        x = views.permute(0, 3, 1, 2)
        x = F.interpolate(x, size=(image_size, image_size), mode="area" if h > image_size else "bilinear",
                          **({} if h > image_size else {"align_corners": False}))
        views = x.permute(0, 2, 3, 1).clamp(0, 1)
        cams = cams.scaled(image_size / w)
    intr = torch.stack([cams.fx, cams.fy, cams.cx, cams.cy], -1)
    return views, cams.c2w[:, :4, :4].float(), intr.float(), resized


def load_generator(run_dir, device: str | torch.device = "cpu") -> tuple[FewViewGenerator, dict]:
    """The trained few-view generator of a `inr train generator views` run, and the run's config."""
    from inr.train.rundir import RunDir

    run = RunDir.open(run_dir)
    config = run.read_config()
    if config.get("kind") != KIND:
        raise InputError(f"{run_dir}: not a few-view generator run (kind {config.get('kind')!r}; "
                         f"train one with `inr train generator views`)")
    fit = config["fit"]
    try:
        model = FewViewGenerator(FewViewModelConfig.from_dict(fit["model"]), HyperConfig(**fit["hyper"]),
                                 config["model"]["aabb"])
        model.load_state_dict(run.load_model_state())
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise InputError(f"{run_dir}: cannot rebuild its generator ({str(e).splitlines()[0]})") from None
    return model.to(device).eval(), config


def write_support_dataset(folder, data: RadianceData, support: list[int], held_out: RadianceData | None,
                          aabb: list[float]) -> None:
    """A Blender-style dataset in `folder`: the support views as its train split and `held_out`
    (the source's test or val views; else its other training views) as its test split, with the
    generator's scene box, so a generated run is self-contained (render, eval, fine-tune)."""
    import json
    from pathlib import Path

    from inr.atomic import atomic_write_text
    from inr.signals.image import save_image

    folder = Path(folder)
    lo, hi = torch.tensor(aabb[:3]), torch.tensor(aabb[3:])
    scale = float(1.0 / (hi - lo).max())
    offset = (-lo * scale).tolist()
    if held_out is None:
        rest = [i for i in range(len(data)) if i not in support]
        held_out, test_idx = data, rest
    else:
        test_idx = list(range(len(held_out)))
    for split, d, idx in (("train", data, support), ("test", held_out, test_idx)):
        frames = []
        for k, i in enumerate(idx):
            img = d.images[i]
            img = img.float() / 255.0 if img.dtype == torch.uint8 else img
            save_image(folder / split / f"r_{k}.png", img)
            c = d.cameras
            frames.append({"file_path": f"./{split}/r_{k}", "transform_matrix": c.c2w[i, :4, :4].tolist(),
                           "fl_x": float(c.fx[i]), "fl_y": float(c.fy[i]), "cx": float(c.cx[i]), "cy": float(c.cy[i])})
        if frames:
            atomic_write_text(folder / f"transforms_{split}.json", json.dumps(
                {"w": d.width, "h": d.height, "scale": scale, "offset": offset, "aabb_scale": 1, "frames": frames},
                indent=1) + "\n")


def generate_run(model: FewViewGenerator, data: RadianceData, indices: list[int], out, held_out: RadianceData | None,
                 universal: bool = False, generated: dict | None = None, device: str | torch.device = "cpu"):
    """One forward pass from views `indices` of `data`, written as the nerf run `out` (its dataset:
    those support views, and `held_out` as its test views). Returns (run, seconds of the forward
    pass: reading the views at the model's size, generating, materialising; whether they were resized)."""
    import time

    from .nerf_run import write_nerf_run

    t0 = time.perf_counter()
    views, c2w, intr, resized = support_tensors(data, indices, model.cfg.image_size)
    with torch.no_grad():
        params = model.generate(views[None].to(device), c2w[None].to(device), intr[None].to(device),
                                update=not universal)
        field = model.materialize(params, 0)
    seconds = time.perf_counter() - t0

    def stage(folder) -> str:
        write_support_dataset(folder / "views", data, indices, held_out, list(model.field.cfg.aabb))
        return "views"

    run = write_nerf_run(out, field, stage_dataset=stage, device=device,
                         generated={"by": KIND, "support_views": list(indices), "universal": universal,
                                    **(generated or {})},
                         metrics={"generation_seconds": round(seconds, 4)})
    return run, seconds, resized
