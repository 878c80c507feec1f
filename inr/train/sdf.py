"""Fitting a signed distance field: the task the training loop optimises, its defaults per field
kind, mesh extraction, metrics and the files a fit leaves in its run directory."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import numpy as np
import torch

from inr.atomic import atomic_write_bytes
from inr.errors import InputError
from inr.fields import Field, HashSDFConfig, SirenConfig, build_field
from inr.hyper.hcinr import HCINRConfig
from inr.signals.sdf import (METRIC_SCALE, SampleConfig, SDFTarget, sample_pool, sdf_gradient, siren_sdf_loss,
                             supervised_sdf_loss)

from .loop import TrainConfig
from .optim import model_param_groups

# `--field` choices -> the field kind that is built (and stored in config.json).
SDF_FIELDS = {"hash": "hash_sdf", "siren": "siren", "hcinr": "hcinr"}
LOSSES = ("supervised", "siren")

# Settings measured on 2 CPU cores (benchmarks/sdf_fit.py): the default hash fit of the composite shape
# reaches F-score 0.9999 and normal consistency 0.997 in about 110 steps.
FIELD_TRAIN_DEFAULTS = {
    # instant-ngp's Adam for hash tables (beta2 0.99, eps 1e-15).
    "hash": {"steps": 150, "lr": 1e-2, "batch_size": 1 << 15, "beta2": 0.99, "eps": 1e-15, "schedule": "exp"},
    "siren": {"steps": 1000, "lr": 1e-4, "batch_size": 1 << 13, "beta2": 0.999, "eps": 1e-8, "schedule": "constant"},
    # HC-INR: its compact SIREN as SIREN (the warp's lr and Adam are HCINRField.param_groups').
    "hcinr": {"steps": 1000, "lr": 1e-4, "batch_size": 1 << 13, "beta2": 0.999, "eps": 1e-8, "schedule": "constant"},
}
FIELD_LOSS_DEFAULTS = {"hash": "supervised", "siren": "supervised", "hcinr": "supervised"}


@dataclass
class SDFLossConfig:
    """`kind`: "supervised" (|f - sdf| on all samples + eikonal + normal terms on a subset) or
    "siren" (SIREN's loss: surface, normal, exp(-100|f|) off-surface and eikonal, weights 3e3,
    1e2, 1e2, 5e1); None picks the field's default. `gradient_points` (supervised): points per step
    whose gradient enters the loss (half on the surface); each costs a double backward."""

    kind: str | None = None
    eikonal_weight: float = 0.1
    normal_weight: float = 0.1
    surface_fraction: float = 0.25
    gradient_points: int = 4096


@dataclass
class SDFFitConfig:
    """Everything `inr fit sdf` needs; config.json stores its resolved form."""

    target: str = "composite"
    field: str = "hash"
    sign_rays: int = 5  # rays of the inside/outside parity vote for meshes (odd)
    eval_resolution: int = 256  # marching-cubes grid of the evaluation mesh (and mesh.ply)
    train: TrainConfig = dc_field(default_factory=lambda: TrainConfig(eval_every=0))
    samples: SampleConfig = dc_field(default_factory=SampleConfig)
    loss: SDFLossConfig = dc_field(default_factory=SDFLossConfig)
    siren: SirenConfig = dc_field(default_factory=lambda: SirenConfig(hidden=(128, 128, 128)))
    hash: HashSDFConfig = dc_field(default_factory=HashSDFConfig)
    # In 3-D a dense 32^3 level alone holds 131k features: one dense level of 8^3, then hashed ones.
    hcinr: HCINRConfig = dc_field(default_factory=lambda: HCINRConfig(base_resolution=8, dense_levels=1))

    def resolved_train(self) -> TrainConfig:
        """Train settings with the field's defaults filled in where the user gave none."""
        t = dataclasses.replace(self.train)
        for k, v in FIELD_TRAIN_DEFAULTS[self.field].items():
            if getattr(t, k) is None:
                setattr(t, k, v)
        return t

    def resolved_loss(self) -> SDFLossConfig:
        return dataclasses.replace(self.loss, kind=self.loss.kind or FIELD_LOSS_DEFAULTS[self.field])

    def check(self) -> None:
        """Reject settings that would only fail later (InputError, one line)."""
        if self.field not in SDF_FIELDS:
            raise InputError(f"unknown field {self.field!r}; expected one of {', '.join(SDF_FIELDS)}")
        if self.loss.kind is not None and self.loss.kind not in LOSSES:
            raise InputError(f"unknown loss {self.loss.kind!r}; expected one of {', '.join(LOSSES)}")
        if not 2 <= self.eval_resolution <= 1024:
            raise InputError(f"eval_resolution must be in 2..1024, got {self.eval_resolution}")
        if self.field == "hcinr":  # before the ground truth is computed: a bad warp is reported at once
            try:
                self.hcinr.validate(3)
            except ValueError as e:
                raise InputError(f"invalid hcinr field config: {e}") from None
        if self.sign_rays < 1:
            raise InputError(f"sign_rays must be >= 1, got {self.sign_rays}")
        s = self.samples
        for name in ("surface_points", "near_points"):
            if getattr(s, name) < 1:
                raise InputError(f"samples.{name} must be >= 1, got {getattr(s, name)}")
        if s.uniform_points < 0 or s.sigma_near <= 0 or s.sigma_far <= 0:
            raise InputError("samples: uniform_points must be >= 0 and the sigmas > 0")
        if not 0 < self.loss.surface_fraction < 1 or self.loss.gradient_points < 2:
            raise InputError("loss: surface_fraction must be in (0, 1) and gradient_points >= 2")


class SDFTask:
    """Fit `model` to `target` (an SDFTarget in the field's frame) with the configured loss."""

    def __init__(self, target: SDFTarget, model: Field, cfg: SDFFitConfig, batch_size: int, device: torch.device,
                 seed: int = 0):
        self.target = target
        self.model = model.to(device)
        self.cfg = cfg
        self.loss_cfg = cfg.resolved_loss()
        self.device = device
        self.batch_size = batch_size
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.pool = sample_pool(target, cfg.samples, seed).to(device)
        self.last_mesh: tuple[np.ndarray, np.ndarray] | None = None

    def param_groups(self, lr: float) -> list[dict]:
        return model_param_groups(self.model, lr)

    def _draw(self, n: int, size: int) -> torch.Tensor:
        return torch.randint(0, size, (n,), generator=self.generator, device=self.device)

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        pool = self.pool
        n_surface = max(1, int(self.batch_size * self.loss_cfg.surface_fraction))
        n_off = max(1, self.batch_size - n_surface)
        si = self._draw(n_surface, len(pool.surface))
        surface, normals = pool.surface[si], pool.normals[si]
        if self.loss_cfg.kind == "siren":  # SIREN: off-surface points uniform in the box, gradients everywhere
            off = torch.rand(n_off, 3, generator=self.generator, device=self.device) * 2 - 1
            f, g = sdf_gradient(self.model, torch.cat([surface, off]))
            return siren_sdf_loss(f[:n_surface], g[:n_surface], normals, f[n_surface:], g[n_surface:])
        oi = self._draw(n_off, len(pool.off))
        off, off_sdf = pool.off[oi], pool.off_sdf[oi]
        k = min(self.loss_cfg.gradient_points // 2, n_surface, n_off)
        x_grad = torch.cat([surface[:k], off[:k]])
        f_grad, g = sdf_gradient(self.model, x_grad)
        f_rest = self.model(torch.cat([surface[k:], off[k:]]))[..., 0]
        f = torch.cat([f_grad[:k], f_rest[:n_surface - k], f_grad[k:], f_rest[n_surface - k:]])
        sdf = torch.cat([torch.zeros(n_surface, device=self.device), off_sdf])
        lc = self.loss_cfg
        return supervised_sdf_loss(f, sdf, g, normals[:k], g[:k], lc.eikonal_weight, lc.normal_weight)

    def field_fn(self, p: torch.Tensor) -> torch.Tensor:
        return self.model(p)[..., 0]

    def extract(self, resolution: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        from inr.render.marching_cubes import extract_mesh

        return extract_mesh(self.field_fn, resolution or self.cfg.eval_resolution, device=self.device)

    def evaluate(self) -> dict:
        self.last_mesh = self.extract()
        return evaluate_field(self.field_fn, self.target, *self.last_mesh, self.device)

    def state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def evaluate_field(fn, target: SDFTarget, verts: np.ndarray, faces: np.ndarray, device="cpu") -> dict:
    """Shape metrics (`inr.signals.shape_metrics`) of the mesh (verts, faces) extracted from `fn`
    against `target`; IoU uses the sign of `fn` itself."""
    from inr.render.marching_cubes import evaluate
    from inr.signals.shape_metrics import shape_metrics

    def occupancy(points: np.ndarray) -> np.ndarray:
        return (evaluate(fn, torch.from_numpy(points), 1 << 17, device) < 0).numpy()

    return shape_metrics(verts, faces, target, occupancy, METRIC_SCALE)


def build_sdf_task(target: SDFTarget, cfg: SDFFitConfig, train: TrainConfig, device: torch.device) -> SDFTask:
    torch.manual_seed(train.seed)
    gen = torch.Generator().manual_seed(train.seed)
    options = dataclasses.asdict(getattr(cfg, cfg.field))
    model = build_field(SDF_FIELDS[cfg.field], 3, 1, generator=gen, **options)
    return SDFTask(target, model, cfg, train.batch_size, device, seed=train.seed)


def save_mesh(path: str | Path, verts: np.ndarray, faces: np.ndarray) -> None:
    """Write a mesh atomically through trimesh; the format follows the suffix (.ply, .obj, .glb, .stl, .off)."""
    import trimesh

    path = Path(path)
    data = trimesh.Trimesh(verts, faces, process=False).export(file_type=path.suffix.lower().lstrip("."))
    atomic_write_bytes(path, data.encode() if isinstance(data, str) else data)
