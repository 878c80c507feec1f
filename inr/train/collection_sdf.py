"""Training one hypernetwork over a collection of shapes (`inr fit collection sdf`).

The collection (`inr.signals.collection_sdf`) is a folder of meshes (each normalised into
[-0.9, 0.9]^3 exactly as a single `inr fit sdf` normalises its mesh) or a built-in family the CLI
passes in (one shared frame).
Each member gets a small pool of training points with ground-truth signed distances (surface,
near-surface and uniform points, `inr.signals.sdf.sample_pool`). The model is a
`CollectionModel`: an auto-decoder latent per member conditioning a hypernetwork that generates a
3-D SIREN (d_out 1), the same HyperField/HyperConfig/PRESETS as image collections.

Every step draws a global batch (which members, which pool points) from a generator seeded by the
step, identical in every process; under DDP each rank takes its slice of members and
DistributedDataParallel averages the gradients, as `inr.train.collection` does for images.
Loss: mean |f - sdf| over the batch (surface points have sdf 0), plus the latent-norm penalty, plus
(optionally) the eikonal term (|grad f| - 1)^2 and a normal term on surface points, with the
gradient taken through the batched hyper-conditioned field (`inr.signals.sdf.sdf_gradient`).

Evaluation: each member's field is materialised, meshed by marching cubes at `eval_resolution`
(64) and measured with the Occupancy Networks metrics of `inr.signals.shape_metrics` on
`eval_points` samples per member; the result is the mean over members (and the worst F-score).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from dataclasses import field as dc_field

import numpy as np
import torch

from inr.errors import InputError
from inr.fields import SirenConfig
from inr.hyper import AutoDecoder, HCINRConfig, HyperConfig, HyperField
from inr.signals.collection_sdf import SDFCollection
from inr.signals.sdf import (
    METRIC_SCALE,
    SampleConfig,
    SDFTarget,
    sample_pool,
    sdf_gradient,
    supervised_sdf_loss,
)

from . import distributed
from .collection import LR_DEFAULTS, CollectionModel, collection_field, data_parallel, draw_members, hyper_param_groups, local_slice
from .loop import TrainConfig

# Points per member per step 2048, 8 members per step; lr as image collections (by HyperConfig.mip).
SDF_COLLECTION_TRAIN_DEFAULTS = {"steps": 1000, "batch_size": 2048, "schedule": "constant", "beta2": 0.999, "eps": 1e-8}
METRIC_NAMES = ("chamfer_l1", "chamfer_l2", "normal_consistency", "fscore", "iou")


@dataclass
class SDFCollectionLossConfig:
    """`surface_fraction` of each member's points lie on the surface (target 0), the rest near it or
    uniform in the box (ground-truth distances). `eikonal_weight` and `normal_weight` > 0 add
    gradient terms (one double backward through the hypernetwork per step: about 3x the step)."""

    surface_fraction: float = 0.25
    eikonal_weight: float = 0.0
    normal_weight: float = 0.0


@dataclass
class SDFCollectionFitConfig:
    """Everything `inr fit collection sdf` needs; config.json stores its resolved form."""

    target: str = "shapes"
    preset: str = "mip"
    latent_dim: int = 64
    latent_lr: float | None = None  # None: 1e-2 with MIP, 1e-3 without
    latent_penalty: float = 1e-4
    signals_per_batch: int = 8
    sign_rays: int = 5  # inside/outside parity vote for meshes (odd)
    eval_resolution: int = 64  # marching-cubes grid per member at evaluation
    eval_points: int = 20_000  # surface samples (and IoU points) per member at evaluation
    samples: SampleConfig = dc_field(default_factory=lambda: SampleConfig(surface_points=5_000, near_points=12_000,
                                                                          uniform_points=3_000))
    loss: SDFCollectionLossConfig = dc_field(default_factory=SDFCollectionLossConfig)
    hyper: HyperConfig = dc_field(default_factory=HyperConfig)
    siren: SirenConfig = dc_field(default_factory=lambda: SirenConfig(hidden=(64, 64, 64)))
    field: str = "siren"  # siren | hcinr (inr.train.collection.COLLECTION_FIELDS)
    hcinr: HCINRConfig = dc_field(default_factory=lambda: HCINRConfig(levels=2, dense_levels=2, base_resolution=8,
                                                                      compact_hidden=(64, 64, 64)))
    train: TrainConfig = dc_field(default_factory=lambda: TrainConfig(eval_every=0))

    def resolved_train(self) -> TrainConfig:
        t = dataclasses.replace(self.train)
        for k, v in {**SDF_COLLECTION_TRAIN_DEFAULTS, "lr": LR_DEFAULTS[self.hyper.mip]}.items():
            if getattr(t, k) is None:
                setattr(t, k, v)
        return t

    def check(self) -> None:
        """Reject settings that would only fail later (InputError, one line)."""
        if self.latent_dim < 1 or self.signals_per_batch < 1:
            raise InputError("latent_dim and signals_per_batch must be >= 1")
        if not 2 <= self.eval_resolution <= 1024:
            raise InputError(f"eval_resolution must be in 2..1024, got {self.eval_resolution}")
        if self.eval_points < 100:
            raise InputError(f"eval_points must be >= 100, got {self.eval_points}")
        if self.sign_rays < 1:
            raise InputError(f"sign_rays must be >= 1, got {self.sign_rays}")
        s = self.samples
        if s.surface_points < 1 or s.near_points < 1 or s.uniform_points < 0 or s.sigma_near <= 0 or s.sigma_far <= 0:
            raise InputError("samples: surface_points and near_points must be >= 1, uniform_points >= 0, sigmas > 0")
        if not 0 < self.loss.surface_fraction < 1:
            raise InputError(f"loss.surface_fraction must be in (0, 1), got {self.loss.surface_fraction}")
        if self.loss.eikonal_weight < 0 or self.loss.normal_weight < 0:
            raise InputError("loss weights must be >= 0")
        distributed.check_signals_per_batch(self.signals_per_batch)


# -- the members' training points -------------------------------------------------------------------

def stacked_pools(targets: list[SDFTarget], cfg: SampleConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every member's sample pool stacked: surface/normals [M, S, 3], off [M, O, 3], off_sdf [M, O]."""
    pools = [sample_pool(t, cfg, seed + 7 * i) for i, t in enumerate(targets)]
    return {name: torch.stack([getattr(p, name) for p in pools]) for name in ("surface", "normals", "off", "off_sdf")}


# -- the model ------------------------------------------------------------------------------------

def build_sdf_collection_model(cfg: SDFCollectionFitConfig, n_members: int,
                               generator: torch.Generator | None = None) -> CollectionModel:
    """Auto-decoder latents (bounded for MIP) -> hypernetwork -> a 3-D SIREN (or HC-INR) with one output."""
    field = collection_field(cfg, 3, 1, generator)
    source = AutoDecoder(n_members, cfg.latent_dim, bounded=cfg.hyper.mip, generator=generator)
    return CollectionModel(HyperField(field, cfg.latent_dim, cfg.hyper, generator=generator), source)


def member_field(model: CollectionModel, member: int):
    """The plain SIREN of one member (parameters generated from its latent)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        z = model.condition(torch.tensor([member], device=device))[0]
    return model.hyper_field.materialize(z).eval()


def member_mesh(model: CollectionModel, member: int, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Marching cubes of member `member`'s zero level set in the field's frame."""
    from inr.render.marching_cubes import extract_mesh

    field = member_field(model, member)
    device = next(field.parameters()).device
    return extract_mesh(lambda p: field(p)[..., 0], resolution, device=device)


def evaluate_members(model: CollectionModel, targets: list[SDFTarget], resolution: int = 64,
                     points: int = 20_000) -> list[dict]:
    """Shape metrics (Occupancy Networks conventions, `points` samples) of each member's mesh."""
    from inr.render.marching_cubes import evaluate
    from inr.signals.shape_metrics import shape_metrics

    out = []
    for i, target in enumerate(targets):
        field = member_field(model, i)
        device = next(field.parameters()).device
        verts, faces = member_mesh(model, i, resolution)

        def occupancy(p: np.ndarray, field=field, device=device) -> np.ndarray:
            return (evaluate(lambda x: field(x)[..., 0], torch.from_numpy(p), 1 << 17, device) < 0).numpy()

        out.append(shape_metrics(verts, faces, target, occupancy, METRIC_SCALE, n_surface=points, n_iou=points))
    return out


def summarise(per_member: list[dict]) -> dict:
    """Means over members of the shape metrics, and the worst member's F-score."""
    from inr.signals.shape_metrics import round_sig

    out = {k: round_sig(sum(m[k] for m in per_member) / len(per_member)) for k in METRIC_NAMES}
    out["fscore_min"] = min(m["fscore"] for m in per_member)
    return out


# -- the task -------------------------------------------------------------------------------------

class SDFCollectionTask:
    """Supervised SDF regression on a batch of members, their latents' penalty and (optionally)
    eikonal and normal terms. `pools=False` skips drawing training points (evaluation only)."""

    def __init__(self, collection: SDFCollection, model: CollectionModel, cfg: SDFCollectionFitConfig,
                 train: TrainConfig, device: torch.device, pools: bool = True):
        self.collection, self.targets = collection, collection.targets
        self.n = len(collection.targets)
        self.cfg, self.device, self.seed = cfg, device, train.seed
        self.model = model.to(device)
        self.points = train.batch_size or SDF_COLLECTION_TRAIN_DEFAULTS["batch_size"]
        self.n_surface = max(1, min(self.points - 1, round(self.points * cfg.loss.surface_fraction)))
        self.batch = cfg.signals_per_batch
        world = distributed.world_size()
        if self.batch % world:
            raise ValueError(f"signals_per_batch ({self.batch}) must be a multiple of the number of processes ({world})")
        self.pools = {k: v.to(device) for k, v in stacked_pools(self.targets, cfg.samples, train.seed).items()} \
            if pools else None
        self.ddp = data_parallel(model, device)

    def param_groups(self, lr: float) -> list[dict]:
        return hyper_param_groups(self.model, lr, self.cfg.hyper.mip, self.cfg.latent_lr)

    def _draw(self, step: int):
        """The global batch of `step` (members, surface and off-surface pool indices): the same on every rank."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        idx = draw_members(g, self.n, self.batch)
        si = torch.randint(self.pools["surface"].shape[1], (self.batch, self.n_surface), generator=g)
        oi = torch.randint(self.pools["off"].shape[1], (self.batch, self.points - self.n_surface), generator=g)
        return idx, si, oi

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        idx, si, oi = self._draw(step)
        local = local_slice(self.batch)
        idx, si, oi = (t[local].to(self.device) for t in (idx, si, oi))
        rows = idx[:, None]
        surface, normals = self.pools["surface"][rows, si], self.pools["normals"][rows, si]
        x = torch.cat([surface, self.pools["off"][rows, oi]], dim=1)  # [b, N, 3]
        y = torch.cat([torch.zeros_like(si, dtype=x.dtype), self.pools["off_sdf"][rows, oi]], dim=1)
        lc = self.cfg.loss
        if lc.eikonal_weight or lc.normal_weight:
            f, g = sdf_gradient(lambda p: self.ddp(p, idx), x)
            loss, logs = supervised_sdf_loss(f, y, g, normals, g[:, : self.n_surface], lc.eikonal_weight, lc.normal_weight)
        else:
            f = self.ddp(x, idx)[..., 0]
            loss = (f - y).abs().mean()
            logs = {"sdf": loss.detach()}
        if self.cfg.latent_penalty:
            loss = loss + self.cfg.latent_penalty * self.model.source.penalty(idx)
        names = list(logs)
        values = distributed.mean(torch.stack([loss.detach(), *(logs[k] for k in names)]))
        return loss, {"loss": values[0], **{k: values[i + 1] for i, k in enumerate(names)}}

    def evaluate(self) -> dict:
        return summarise(self.evaluate_members())

    def evaluate_members(self) -> list[dict]:
        return evaluate_members(self.model, self.targets, self.cfg.eval_resolution, self.cfg.eval_points)

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass

    def write_preview(self, path, count: int = 4, size: int = 128) -> None:
        """Sphere-traced renders of up to `count` members side by side."""
        from inr.render.sphere_trace import orbit_camera, render_sdf
        from inr.signals.image import save_image

        images = [render_sdf(member_field(self.model, i), orbit_camera(), size, size, device=self.device)
                  for i in range(min(count, self.n))]
        save_image(path, torch.cat(images, dim=1))


def member_description(target: SDFTarget) -> dict:
    """What config.json keeps of each member: its normalisation (to export in its own units)."""
    d = {"normalisation": target.normalisation.to_dict()}
    if not target.watertight:
        d["watertight"] = False
    return d


__all__ = ["SDFCollectionFitConfig", "SDFCollectionLossConfig", "SDFCollectionTask", "build_sdf_collection_model",
           "evaluate_members", "member_description", "member_field", "member_mesh", "stacked_pools", "summarise"]
