"""Training the text-to-NeRF generator by distillation (HyperFields' second stage): every step
renders a few training scenes through their generated weights (one batched MLP call) at random rays
and regresses the teachers' renders at those rays plus the scenes' own images.

What is the paper's: teachers are per-scene NeRFs; the generator learns all scenes at once from
their renders; the loss is photometric. What is ours: teachers are `inr fit nerf` runs on the
scene's real views (no diffusion model offline), rendered once at the training views and at
`distill_views` extra orbit views (where the data has no image, the teacher is the only target);
rays are rendered densely (stratified samples in the object box, no occupancy grid) so that B
scenes share one batch; the dynamic heads probe a fixed seeded point set (the same at training and
generation, `TextNerfGenerator.probe_points`) rather than the batch's samples.

Learning rates (ours): the transformer and heads at `lr` (1e-3); the hypernetwork's shared base
weights and gains at 10x, the rate a plain NeRF's MLP trains at (instant-ngp's 1e-2): on one scene
at 200 steps that lifts the batch PSNR from 28.3 to 30.0 dB (val 24.9 dB either way; the teacher,
300 steps, 25.7); the shared hash grid at 10x as before.

What limits it (measured on a 16-scene, 32 px collection, images only, 300 steps of 4 scenes x 128
rays x 32 samples; the sanity ladder in the text-to-NeRF README section): one scene reaches its
teacher's val PSNR, 4 scenes 23.0 dB, but 12 scenes plateau at about 19-20 dB batch PSNR (15.4 dB
val) from step 100 on. Not the cause: the dense training renders against the occupancy-grid
renderer (24.86 vs 24.82 dB on one scene), collapsed conditioning (the generated weights differ by
45-72% of their size between captions), the dynamic inputs' scale, all 12 scenes in every step, or
a grid with twice the features and a second density layer (each 19.6 dB at step 150, against 19.3).
What lifts it: no shared grid. With the generator's field on a frequency encoding and a generated
128x128 density MLP (`--generator.field.encoding frequency --generator.field.density-hidden 128
128`), the same 12 scenes reach 22.7 dB batch / 18.1 dB val at step 300 (against 18.7 / 15.4) and
still climb: a grid shared by every scene holds one geometry, so per-scene geometry has to live in
the generated weights. Not yet the default (fine-tuning and the CLI tests are measured on the hash
grid); the paper's shared hash grid remains it.
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from pathlib import Path

import torch

from inr.generate.text import TextNerfConfig, TextNerfGenerator
from inr.render.dense import composite_dense, dense_samples, render_dense
from inr.render.rays import Cameras, orbit_like
from inr.signals.metrics import psnr, ssim
from inr.signals.radiance import RadianceData, load_radiance

from . import distributed
from .collection import data_parallel, local_slice
from .loop import TrainConfig
from .rundir import load_tensors, save_tensors

# Adam on the transformer and heads at 1e-3; the shared base weights and the hash grid at 10x (instant-ngp's 1e-2).
TEXT_TRAIN_DEFAULTS = {"steps": 2000, "lr": 1e-3, "batch_size": 4, "beta2": 0.99, "eps": 1e-10, "schedule": "cosine"}
OBJECT_BOX = (-1.1, -1.1, -1.1, 1.1, 1.1, 1.1)  # the collection's objects fit in [-1, 1]^3


@dataclass
class TextTrainConfig:
    """`inr train generator text` settings; config.json stores their resolved form. `batch_size`
    (in `train`) is the number of scenes per step."""

    target: str = ""  # the scene collection
    teachers: str = "auto"  # auto (fitted into OUT/teachers) or a folder of nerf runs named as the scenes
    rays_per_scene: int = 256
    samples: int = 64  # per ray, in the object box
    distill: bool = True  # False: images only (the paper's "without distillation" ablation)
    distill_views: int = 16  # teacher-only orbit views per scene, beside the training views
    distill_weight: float = 1.0
    grid_lr_factor: float = 10.0
    weights_lr_factor: float = 10.0  # the hypernetwork's shared base weights and gains
    eval_views: int = 2  # val views per scene at each evaluation
    teacher_steps: int = 500
    teacher_batch: int = 8192  # samples per teacher step: 32-64 px views need far fewer than 2^16
    generator: TextNerfConfig = dc_field(default_factory=TextNerfConfig)
    train: TrainConfig = dc_field(default_factory=TrainConfig)

    def resolved_train(self) -> TrainConfig:
        return self.train.with_defaults(TEXT_TRAIN_DEFAULTS)


@dataclass
class SceneRays:
    """One training scene's ray pool: origins, dirs [M, 3]; image RGBA [M, 4] (NaN where a ray has
    no image: a teacher-only view); teacher RGB (premultiplied) + opacity [M, 4] or None."""

    name: str
    caption: str
    origins: torch.Tensor
    dirs: torch.Tensor
    image: torch.Tensor
    teacher: torch.Tensor | None
    val: RadianceData | None


def _all_rays(cams: Cameras) -> tuple[torch.Tensor, torch.Tensor]:
    o, d = zip(*(cams.view_rays(i) for i in range(len(cams))))
    return torch.cat(o), torch.cat(d)


def distill_cameras(train: RadianceData, n: int) -> Cameras:
    """n orbit views around the object (two rings, 20 and 50 degrees up) with the first camera's
    intrinsics: where the teachers are rendered beyond the training views."""
    c = train.cameras
    low = orbit_like(c, (0.0, 0.0, 0.0), max(n // 2, 1), elevation_deg=20.0)
    high = orbit_like(c, (0.0, 0.0, 0.0), max(n - n // 2, 1), elevation_deg=50.0)
    poses = torch.cat([low, high])[:n]
    k = poses.shape[0]
    return Cameras(poses, c.fx[:1].expand(k), c.fy[:1].expand(k), c.cx[:1].expand(k), c.cy[:1].expand(k),
                   c.width, c.height)


@torch.no_grad()
def teacher_renders(teacher_run: Path, cams: Cameras, open_renderer, device: torch.device) -> torch.Tensor:
    """A teacher run's renders [V, H, W, 4] (RGB premultiplied, opacity) of `cams`, cached in the
    teacher run (distill_<W>x<H>_<hash>.safetensors): every generator run over it needs the same.
    `open_renderer(run_dir, device)` opens the run's RadianceRenderer (only on a cache miss)."""
    import hashlib

    key = hashlib.sha1(cams.c2w.contiguous().numpy().tobytes() + cams.fx.contiguous().numpy().tobytes()).hexdigest()[:12]
    path = Path(teacher_run) / f"distill_{cams.width}x{cams.height}_{key}.safetensors"
    if path.is_file():
        return load_tensors(path)[0]["rgba"]
    renderer = open_renderer(teacher_run, device)
    black = torch.zeros(3, device=device)
    dev_cams = cams.to(device)
    out = [renderer.render_view(dev_cams, i, black) for i in range(len(cams))]
    rgba = torch.stack([torch.cat([o["rgb"], o["opacity"]], -1) for o in out]).cpu()
    save_tensors(path, {"rgba": rgba})
    return rgba


def scene_rays(name: str, caption: str, dataset: Path, teacher: Path | None, cfg: TextTrainConfig,
               open_renderer, device: torch.device) -> SceneRays:
    """The ray pool of one scene: its training views (image + teacher at the same rays) and, with
    distillation, `distill_views` teacher-only views; its val split for evaluation."""
    train = load_radiance(dataset, "train")
    try:
        val = load_radiance(dataset, "val")
    except Exception:  # noqa: BLE001  (a scene without val views is evaluated on train views)
        val = None
    origins, dirs = _all_rays(train.cameras)
    image = train.images.reshape(-1, train.images.shape[-1])
    image = image.float() / (255.0 if train.images.dtype == torch.uint8 else 1.0)
    if image.shape[-1] == 3:
        image = torch.cat([image, torch.ones_like(image[:, :1])], -1)
    taught = None
    if cfg.distill and teacher is not None:
        taught = teacher_renders(teacher, train.cameras, open_renderer, device).reshape(-1, 4)
        if cfg.distill_views > 0:
            extra = distill_cameras(train, cfg.distill_views)
            o, d = _all_rays(extra)
            t = teacher_renders(teacher, extra, open_renderer, device).reshape(-1, 4)
            origins, dirs = torch.cat([origins, o]), torch.cat([dirs, d])
            image = torch.cat([image, torch.full((o.shape[0], 4), float("nan"))])
            taught = torch.cat([taught, t])
    return SceneRays(name, caption, origins, dirs, image, taught, val)


class TextGeneratorTask:
    """Distillation of the scenes' teachers (and images) into one TextNerfGenerator."""

    def __init__(self, model: TextNerfGenerator, scenes: list[SceneRays], tokens: torch.Tensor, mask: torch.Tensor,
                 cfg: TextTrainConfig, scenes_per_step: int, device: torch.device, seed: int = 0,
                 heldout: list[tuple[str, RadianceData | None, int]] | None = None):
        self.model = model.to(device)
        self.scenes, self.cfg, self.device = scenes, cfg, device
        self.tokens, self.mask = tokens.to(device), mask.to(device)  # [S, T, D] for scenes then held-out
        self.heldout = heldout or []  # (name, val data, row in tokens): evaluated zero-shot
        self.b = min(scenes_per_step, len(scenes))
        self.box = torch.tensor(OBJECT_BOX, device=device)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.pools = [(s.origins.to(device), s.dirs.to(device), s.image.to(device),
                       None if s.teacher is None else s.teacher.to(device)) for s in scenes]
        self.samples_seen = 0
        # each training scene's image MSE, smoothed over the steps that drew it (NaN: not drawn yet):
        # the progress bar's per-scene PSNR
        self.scene_mse = torch.full((len(scenes),), float("nan"), device=device)
        distributed.check_signals_per_batch(self.b, "--batch-size")  # scenes per step, over all ranks
        self.ddp = data_parallel(self.model, device, _generated_field)

    def param_groups(self, lr: float) -> list[dict]:
        """The transformer and heads at `lr`; the shared base weights and gains (what a plain NeRF's
        MLP would be) at `weights_lr_factor` x; the shared hash grid at `grid_lr_factor` x."""
        hyper = self.model.hyper
        grid = [self.model.field.encoding.params] if self.model.field.cfg.encoding == "hash" else []
        shared = list(hyper.base) + list(hyper.gain)
        ids = {id(p) for p in shared}
        return [{"params": [p for p in hyper.parameters() if id(p) not in ids], "lr": lr},
                {"params": shared, "lr": lr * self.cfg.weights_lr_factor},
                {"params": grid, "lr": lr * self.cfg.grid_lr_factor}]

    def _batch(self):
        # Every rank draws the same global batch (same seed, same draws) and keeps its slice of the
        # scenes, so N processes follow the loss curve of one process with the whole batch.
        g = self.generator
        pick = torch.randperm(len(self.scenes), generator=g)[: self.b]
        rays = [torch.randint(self.pools[i][0].shape[0], (self.cfg.rays_per_scene,), generator=g) for i in pick.tolist()]
        bg = torch.rand(self.b, self.cfg.rays_per_scene, 3, generator=g)
        jitter = torch.rand(self.b, self.cfg.rays_per_scene, 1, generator=g)
        local = local_slice(self.b)
        o, d, img, tea = [], [], [], []
        for i, idx in zip(pick[local].tolist(), rays[local]):
            po, pd, pi, pt = self.pools[i]
            idx = idx.to(self.device)
            o.append(po[idx]), d.append(pd[idx]), img.append(pi[idx])
            tea.append(pt[idx] if pt is not None else torch.full_like(pi[idx], float("nan")))
        return (pick[local].to(self.device), torch.stack(o), torch.stack(d), torch.stack(img), torch.stack(tea),
                bg[local].to(self.device), jitter[local].to(self.device))

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        pick, origins, dirs, image, teacher, bg, jitter = self._batch()
        b, r = origins.shape[:2]
        t, delta, _ = dense_samples(origins, dirs, self.box, self.cfg.samples, jitter)
        points = origins[:, :, None] + dirs[:, :, None] * t[..., None]
        view = dirs[:, :, None].expand_as(points)
        rgb, density = self.ddp(self.tokens[pick], self.mask[pick], points.reshape(b, -1, 3), view.reshape(b, -1, 3))
        pred, _ = composite_dense(rgb.view(b, r, -1, 3), density.view(b, r, -1), delta, bg)
        self.samples_seen += points.numel() // 3
        has_img = ~torch.isnan(image[..., 0])
        has_t = ~torch.isnan(teacher[..., 0])
        # Sums over this rank's rays divided by the mean count over ranks: the mean of the ranks'
        # losses (what DDP's averaged gradients follow) is then the loss of the whole batch.
        n_img, n_t = distributed.mean(torch.stack([has_img.sum(), has_t.sum()]).float()).tolist()
        img = torch.nan_to_num(image)
        img_target = img[..., :3] * img[..., 3:] + bg * (1 - img[..., 3:])
        err_img = ((pred - img_target) ** 2).mean(-1)
        mse_img = (err_img * has_img).sum() / max(n_img, 1.0)
        loss = mse_img
        if n_t > 0:
            tea = torch.nan_to_num(teacher)
            t_target = tea[..., :3] + bg * (1 - tea[..., 3:])
            mse_t = (((pred - t_target) ** 2).mean(-1) * has_t).sum() / n_t
            loss = loss + self.cfg.distill_weight * mse_t
        self._track_scenes(pick, err_img.detach() * has_img, has_img.sum(-1))
        global_loss, global_mse = distributed.mean(torch.stack([loss.detach(), mse_img.detach()]))
        return loss, {"loss": global_loss, "psnr": -10.0 * torch.log10(global_mse.clamp_min(1e-10))}

    def _track_scenes(self, pick: torch.Tensor, err: torch.Tensor, count: torch.Tensor, keep: float = 0.7) -> None:
        """Fold this step's per-scene image errors (err [b, R], zero where a ray has no image;
        count [b]) into `scene_mse`; every rank's scenes through one all-reduce, no host sync."""
        rows = torch.zeros(len(self.scenes), 2, device=self.device)
        rows.index_add_(0, pick, torch.stack([err.sum(-1), count.float()], -1))
        rows = distributed.mean(rows)  # each scene lives on one rank: the ratio below is unchanged
        drawn = rows[:, 1] > 0
        now = rows[:, 0] / rows[:, 1].clamp_min(1.0)
        old = self.scene_mse
        self.scene_mse = torch.where(drawn, torch.where(torch.isnan(old), now, keep * old + (1 - keep) * now), old)

    def progress_postfix(self, listed: int = 4) -> dict[str, str]:
        """The progress bar's per-scene training PSNR (images, smoothed): every scene's when there
        are at most `listed`, else their mean and the worst scene."""
        p = (-10.0 * torch.log10(self.scene_mse.clamp_min(1e-10))).tolist()
        seen = [(v, s.name) for v, s in zip(p, self.scenes) if v == v]  # NaN: not drawn yet
        if not seen:
            return {}
        if len(self.scenes) <= listed:
            return {"scenes": "/".join(f"{v:.1f}" if v == v else "-" for v in p)}
        worst = min(seen)
        return {"scenes": f"{sum(v for v, _ in seen) / len(seen):.1f}", "worst": f"{worst[0]:.1f} {worst[1]}"}

    @torch.no_grad()
    def render_view(self, row: int, cams: Cameras, i: int, background: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
        """Image [H, W, 3] of camera i for the caption in `row`, through its generated weights."""
        params = self.model.params(self.tokens[row:row + 1], self.mask[row:row + 1])
        origins, dirs = cams.to(self.device).view_rays(i)
        field_fn = lambda x, d: self.model.field(x, d, params)  # noqa: E731
        parts = [render_dense(field_fn, o[None], d[None], self.box, self.cfg.samples, background)[0][0]
                 for o, d in zip(origins.split(chunk), dirs.split(chunk))]
        return torch.cat(parts).view(cams.height, cams.width, 3).clamp(0, 1).cpu()

    def _score(self, row: int, data: RadianceData) -> dict:
        white = torch.ones(3, device=self.device)
        k = min(self.cfg.eval_views, len(data))
        views = [(self.render_view(row, data.cameras, i, white), data.view(i, white.cpu())) for i in range(k)]
        return {"psnr": sum(float(psnr(p, t)) for p, t in views) / k, "ssim": sum(float(ssim(p, t)) for p, t in views) / k}

    def evaluate(self) -> dict:
        """PSNR/SSIM per scene on its val views through the generated weights (dense rendering);
        "psnr" is the training scenes' mean, "heldout_psnr" the held-out captions' (zero shot)."""
        per_scene = {}
        for row, s in enumerate(self.scenes):
            if s.val is not None:
                per_scene[s.name] = self._score(row, s.val)
        out = {"psnr": _mean(per_scene, "psnr"), "ssim": _mean(per_scene, "ssim"),
               "scenes": {k: round(v["psnr"], 3) for k, v in per_scene.items()}}
        held = {name: self._score(row, data) for name, data, row in self.heldout if data is not None}
        if held:
            out.update({"heldout_psnr": _mean(held, "psnr"), "heldout_ssim": _mean(held, "ssim"),
                        "heldout_scenes": {k: round(v["psnr"], 3) for k, v in held.items()}})
        return out

    def state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def _generated_field(model: TextNerfGenerator, tokens, mask, points, view):
    """The training step's forward: the captions' generated weights, evaluated at the samples."""
    return model.field(points, view, model.params(tokens, mask))


def _mean(rows: dict, key: str) -> float:
    return sum(r[key] for r in rows.values()) / max(len(rows), 1)
