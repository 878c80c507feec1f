"""Fitting a radiance field to posed images: the task the training loop optimises (instant-ngp's
recipe: occupancy-grid marching, a ray batch sized to a sample budget, random backgrounds)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from dataclasses import field as dc_field

import torch

from inr.errors import InputError
from inr.fields.nerf import NerfField, NerfFieldConfig
from inr.hyper.hcinr import HCINRConfig
from inr.render.occupancy import OccupancyGrid
from inr.render.radiance import MarchConfig, RadianceRenderer
from inr.signals.metrics import psnr, ssim
from inr.signals.radiance import BACKGROUNDS, RadianceData, RaySampler, background_color

from .load import load
from .loop import TrainConfig
from .optim import model_param_groups
from .rundir import load_tensors, save_tensors

LOSSES = ("mse", "huber")

# instant-ngp's optimiser (Adam, lr 1e-2, betas 0.9/0.99, eps 1e-15) with decay; `batch_size` is the
# number of samples per step (rays are added or dropped each step to meet it). On 2 cores lego_100
# ran 1444 steps in 300 s to 32.3 dB (benchmarks/nerf_fit.py), so the default 1000 take about 3.5 min.
NERF_TRAIN_DEFAULTS = {"steps": 1000, "lr": 1e-2, "batch_size": 1 << 16, "beta2": 0.99, "eps": 1e-15,
                       "schedule": "exp"}

# `--field.encoding hcinr`: HC-INR's warp in front of a density MLP as wide as the hash field's
# (compact_hidden 64), one dense level then hashed ones finer than the image default (a scene
# needs more cells than a 96-px image); the warp trains at the run's lr, the compact SIREN at
# lr / warp_lr_scale (NerfField.param_groups). warp_lr_scale 3, not the images' 100: on the blocks
# scene (32 px, 200 steps) 24.2 dB (the hash field 24.7 dB), 20.5 dB at 10, 13.9 dB at 100 (a SIREN
# at 1e-4 barely moves in 200 steps); a ReLU Fourier compact field at 1e-2 gave 10.4 dB.
NERF_HCINR_DEFAULTS = dict(levels=4, dense_levels=1, base_resolution=16, per_level_scale=2.0, log2_hashmap_size=16,
                           compact_hidden=(64,), warp_lr_scale=3.0)


@dataclass
class OccupancyConfig:
    """instant-ngp's occupancy grid: `resolution`^3 cells per cascade, refreshed every
    `update_every` steps (every step during the first `warmup` steps, a `warmup_fraction` share of
    the cells each time) with max(decay * old, new).

    `resolution` None means 128 on a GPU (instant-ngp) and 64 on a CPU, where refreshing 128^3 cells
    costs as much as training: on lego_100 (1 thread, 60 s) 64^3 reached 26.5-27.4 dB against
    24.6-24.7 dB for 128^3."""

    resolution: int | None = None
    update_every: int = 16
    warmup: int = 256
    warmup_fraction: float = 1 / 16  # share of the cells refreshed at each warmup step
    decay: float = 0.95
    threshold: float = 0.01


@dataclass
class NerfFitConfig:
    """Everything `inr fit nerf` needs; config.json stores its resolved form."""

    target: str = "blocks"
    downscale: int = 1
    background: str = "random"  # training background: white, black or random (learns transparency)
    eval_background: str = "white"
    loss: str = "mse"
    eval_views: int = 10  # validation views rendered at each evaluation (spread over the split)
    field: NerfFieldConfig = dc_field(default_factory=NerfFieldConfig)
    march: MarchConfig = dc_field(default_factory=MarchConfig)
    occupancy: OccupancyConfig = dc_field(default_factory=OccupancyConfig)
    hcinr: HCINRConfig = dc_field(default_factory=lambda: HCINRConfig(**NERF_HCINR_DEFAULTS))
    train: TrainConfig = dc_field(default_factory=TrainConfig)

    def resolved_train(self) -> TrainConfig:
        return self.train.with_defaults(NERF_TRAIN_DEFAULTS)

    def check(self) -> None:
        """Raise ValueError for settings that cannot work."""
        if self.background not in BACKGROUNDS or self.eval_background not in ("white", "black"):
            raise ValueError(f"background must be one of {BACKGROUNDS} (eval_background white or black)")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.downscale < 1 or self.eval_views < 1:
            raise ValueError("downscale and eval_views must be >= 1")
        if self.march.steps_per_diagonal < 1 or (self.march.step_size is not None and self.march.step_size <= 0):
            raise ValueError("march.steps_per_diagonal must be >= 1 and march.step_size > 0")
        if (self.occupancy.resolution is not None and self.occupancy.resolution < 1) or self.occupancy.update_every < 1:
            raise ValueError("occupancy.resolution and occupancy.update_every must be >= 1")
        if not 0 < self.occupancy.warmup_fraction <= 1:
            raise ValueError("occupancy.warmup_fraction must be in (0, 1]")


def default_grid_resolution(device: torch.device) -> int:
    return 128 if torch.device(device).type == "cuda" else 64


def build_renderer(field: NerfField, aabb: torch.Tensor, aabb_scale: float, cfg: NerfFitConfig) -> RadianceRenderer:
    occ = cfg.occupancy
    grid = OccupancyGrid(aabb, occ.resolution or default_grid_resolution(aabb.device), OccupancyGrid.cascades_for(aabb_scale), occ.decay, occ.threshold)
    march_cfg = dataclasses.replace(cfg.march)
    if aabb_scale > 1 and march_cfg.cone_angle == 0:
        march_cfg.cone_angle = 1 / 256  # unbounded scenes: instant-ngp's cone stepping
    return RadianceRenderer(field, grid.to(aabb.device), march_cfg)


class NerfTask:
    """Volume-render random training rays and regress their colours."""

    def __init__(self, data: RadianceData, val: RadianceData | None, model: NerfField, cfg: NerfFitConfig,
                 batch_samples: int, device: torch.device, seed: int = 0):
        self.cfg = cfg
        self.device = device
        self.model = model.to(device)
        self.renderer = build_renderer(self.model, data.aabb.to(device), data.aabb_scale, cfg)
        self.grid = self.renderer.grid
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.sampler = RaySampler(data, device, self.generator)
        self.val = val
        self.batch_samples = batch_samples
        self.n_rays = 1024  # adapted every step so that the samples meet batch_samples
        self.samples_seen = 0  # field evaluations trained on (for throughput figures)
        self.eval_bg = background_color(cfg.eval_background, device)

    def param_groups(self, lr: float) -> list[dict]:
        return model_param_groups(self.model, lr)

    def update_grid(self, step: int) -> None:
        occ = self.cfg.occupancy
        warm = step < occ.warmup
        if warm or step % occ.update_every == 0:
            # During warmup each step refreshes a random share of the cells (1/16: the same work as
            # all cells every 16 steps); afterwards, instant-ngp's quarter uniformly plus a quarter
            # of the occupied cells.
            share = occ.warmup_fraction if warm else 0.25
            self.grid.update(self.model.density, step, self.renderer.step_size, fraction=share,
                             occupied_fraction=0.0 if warm else 0.25)

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        self.update_grid(step)
        origins, dirs, rgba = self.sampler.sample(self.n_rays)
        g = self.generator
        jitter = torch.rand(self.n_rays, device=self.device, generator=g)
        if self.cfg.background == "random":
            bg = torch.rand(self.n_rays, 3, device=self.device, generator=g)
        else:
            bg = background_color(self.cfg.background, self.device)
        out = self.renderer.render(origins, dirs, bg, jitter)
        target = rgba[:, :3] * rgba[:, 3:] + bg * (1 - rgba[:, 3:])
        err = out["rgb"] - target
        mse = (err ** 2).mean()
        loss = mse if self.cfg.loss == "mse" else torch.nn.functional.huber_loss(out["rgb"], target, delta=0.1)
        if not loss.requires_grad:  # no sample hit occupied space this step: a zero step, not a crash
            loss = loss + 0.0 * next(self.model.parameters()).view(-1)[0]
        n = max(out["n_samples"], 1)
        self.samples_seen += out["n_samples"]
        self.n_rays = int(min(max(self.n_rays * self.batch_samples / n, 64), 1 << 16))
        return loss, {"psnr": -10.0 * torch.log10(mse.detach()), "samples_per_ray": n / origins.shape[0],
                      "rays": origins.shape[0]}

    def eval_indices(self) -> list[int]:
        n = len(self.val) if self.val is not None else 0
        k = min(n, self.cfg.eval_views)
        return sorted({round(i * (n - 1) / max(k - 1, 1)) for i in range(k)}) if k else []

    def evaluate(self) -> dict:
        if self.val is None:
            return {}
        return evaluate_views(self.renderer, self.val, self.eval_indices(), self.eval_bg, self.device)

    def state(self) -> dict:
        return {"generator": self.generator.get_state(), "n_rays": torch.tensor(self.n_rays),
                "grid_density": self.grid.density.clone()}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.n_rays = int(state["n_rays"])
        self.grid.density.copy_(state["grid_density"])
        self.grid.refresh()

    def write_preview(self, path) -> None:
        from inr.signals.image import save_image

        data = self.val if self.val is not None else self.sampler.data
        cams = data.cameras.to(self.device)
        save_image(path, self.renderer.render_view(cams, 0, self.eval_bg)["rgb"].cpu())


def evaluate_views(renderer: RadianceRenderer, data: RadianceData, indices: list[int], background: torch.Tensor,
                   device: torch.device) -> dict:
    """PSNR and SSIM of rendered views against the dataset's, per view and their means."""
    cams = data.cameras.to(device)
    views = []
    for i in indices:
        out = renderer.render_view(cams, i, background)
        target = data.view(i, background.cpu())
        pred = out["rgb"].cpu()
        views.append({"view": i, "name": data.names[i], "psnr": float(psnr(pred, target)),
                      "ssim": float(ssim(pred, target)), "samples_per_ray": round(out["samples_per_ray"], 2)})
    mean = lambda k: sum(v[k] for v in views) / max(len(views), 1)
    return {"psnr": mean("psnr"), "ssim": mean("ssim"), "samples_per_ray": mean("samples_per_ray"), "views": views}


def build_nerf_task(data: RadianceData, val: RadianceData | None, cfg: NerfFitConfig, train: TrainConfig,
                    device: torch.device) -> NerfTask:
    torch.manual_seed(train.seed)
    gen = torch.Generator().manual_seed(train.seed)
    grid_aabb = OccupancyGrid(data.aabb, 1, OccupancyGrid.cascades_for(data.aabb_scale)).outer_aabb
    cfg.field.aabb = tuple(float(v) for v in grid_aabb)  # the encoding covers every cascade
    if cfg.field.encoding == "hcinr":  # the field stores its HC-INR settings (inr.load rebuilds it)
        cfg.field.hcinr = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg.hcinr).items()}
    if cfg.occupancy.resolution is None:  # resolved now, so the run renders the same grid on any device
        cfg.occupancy.resolution = default_grid_resolution(device)
    model = NerfField(3, 4, cfg.field, generator=gen)
    return NerfTask(data, val, model, cfg, train.batch_size, device, seed=train.seed)


GRID_FILE = "occupancy.safetensors"


def save_grid(run, grid: OccupancyGrid) -> None:
    """Store the occupancy grid beside the model: rendering marches through it."""
    save_tensors(run.path / GRID_FILE, {"density": grid.density.cpu().contiguous()})


def load_renderer(run, cfg: NerfFitConfig, device: torch.device) -> RadianceRenderer:
    """The fitted field and its occupancy grid, ready to render, from a nerf run directory whose
    "fit" settings are `cfg`."""
    data = run.read_config()["data"]
    field = load(run.path, device)
    renderer = build_renderer(field, torch.tensor(data["aabb"], device=device), data["aabb_scale"], cfg)
    path = run.path / GRID_FILE
    if not path.is_file():
        raise InputError(f"{path}: missing (the run did not finish; --resume it)")
    density = load_tensors(path)[0]["density"]
    if density.shape != renderer.grid.density.shape:
        raise InputError(f"{path}: grid of shape {tuple(density.shape)}, the config implies {tuple(renderer.grid.density.shape)}")
    renderer.grid.density.copy_(density)
    renderer.grid.refresh()
    return renderer

