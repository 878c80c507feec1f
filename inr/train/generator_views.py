"""Training the few-view generator (`inr.generate.views`) on a scene collection: each step draws a
batch of training scenes, a random support set of `support` training views of each, and random
query rays from the other training views; the generated fields are rendered in one batched call
and the photometric loss on the query rays trains the encoder, the hypernetwork and the universal
weights jointly (HyperPlanes' recipe). Evaluation renders held-out scenes' test views from
support views spread over their training views (zero shot)."""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field

import torch

from inr.errors import InputError
from inr.generate.views import FewViewGenerator, FewViewModelConfig, default_hyper, pick_views, support_tensors
from inr.hyper import HyperConfig
from inr.render.rays import Cameras
from inr.signals.metrics import psnr, ssim
from inr.signals.radiance import RadianceData, background_color, load_radiance
from inr.signals.scene_collection import SceneCollection

from . import distributed
from .collection import data_parallel, local_slice
from .loop import TrainConfig

VIEWS_TRAIN_DEFAULTS = {"steps": 2000, "lr": 2e-3, "batch_size": 256, "beta2": 0.99, "eps": 1e-15, "schedule": "cosine"}


@dataclass
class ViewsTrainConfig:
    """Everything `inr train generator views` needs; config.json stores its resolved form.
    `train.batch_size` is the number of query rays per scene and step."""

    target: str = ""
    support: int = 3
    scenes_per_batch: int = 4
    background: str = "random"  # behind transparent query pixels while training (learns transparency)
    eval_scenes: int = 4        # held-out scenes rendered at each evaluation
    eval_views: int = 2         # test views of each
    model: FewViewModelConfig = dc_field(default_factory=FewViewModelConfig)
    hyper: HyperConfig = dc_field(default_factory=default_hyper)
    train: TrainConfig = dc_field(default_factory=TrainConfig)

    def resolved_train(self) -> TrainConfig:
        t = self.train.with_defaults(VIEWS_TRAIN_DEFAULTS)
        if t.backend == "auto":
            # Per-scene weights [B, out, in]: the PyTorch ops ran the generator's MLPs 3-7x faster
            # than the fused CPU kernels' batched path (32x32 scenes, 4 per step, 2 shared cores).
            t.backend = "torch"
        return t

    def check(self) -> None:
        if not 1 <= self.support <= self.model.max_support:
            raise InputError(f"--support must be in 1..{self.model.max_support} (model.max_support), got {self.support}")
        if self.scenes_per_batch < 1 or self.eval_scenes < 0 or self.eval_views < 1:
            raise InputError("--scenes-per-batch and --eval-views must be >= 1, --eval-scenes >= 0")
        if self.background not in ("white", "black", "random"):
            raise InputError(f"--background must be white, black or random, got {self.background!r}")
        try:
            self.model.check()
        except ValueError as e:
            raise InputError(f"invalid generator config: {e}") from None


@dataclass
class SceneViews:
    """One scene's training views (RGBA float) and cameras, and its test split for evaluation."""

    name: str
    caption: str
    train: RadianceData
    test: RadianceData | None


def load_scenes(collection: SceneCollection, split: str, with_test: bool) -> list[SceneViews]:
    out = []
    for s in collection.split(split):
        train = load_radiance(s.path, "train")
        test = load_radiance(s.path, "test") if with_test and (s.path / "transforms_test.json").is_file() else None
        out.append(SceneViews(s.name, s.caption, train, test))
    return out


def _stack_views(scenes: list[SceneViews], support: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All training views of all scenes as tensors: RGBA [S, N, H, W, 4], c2w [S, N, 4, 4], intr [S, N, 4]."""
    views, c2w, intr = [], [], []
    n = min(len(s.train) for s in scenes)
    if n <= support:
        raise InputError(f"scenes have {n} training views; --support {support} leaves none to supervise "
                         f"(make the collection with more --views)")
    for s in scenes:
        d = s.train
        views.append(d.rgba_views(range(n)))
        c2w.append(d.cameras.c2w[:n, :4, :4].float())
        intr.append(torch.stack([d.cameras.fx, d.cameras.fy, d.cameras.cx, d.cameras.cy], -1)[:n])
    return torch.stack(views), torch.stack(c2w), torch.stack(intr)


class FewViewTask:
    """The training task of `inr.train.loop.train` for the few-view generator."""

    def __init__(self, train_scenes: list[SceneViews], eval_scenes: list[SceneViews], model: FewViewGenerator,
                 cfg: ViewsTrainConfig, rays: int, device: torch.device, seed: int = 0):
        self.cfg, self.device, self.rays = cfg, device, rays
        self.model = model.to(device)
        self.views, self.c2w, self.intr = (t.to(device) for t in _stack_views(train_scenes, cfg.support))
        h, w = self.views.shape[2:4]
        if (h, w) != (model.cfg.image_size, model.cfg.image_size):
            raise InputError(f"scenes are {w}x{h}, model.image_size is {model.cfg.image_size}")
        self.eval_scenes = eval_scenes[: cfg.eval_scenes]
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.eval_bg = background_color("white", device)
        self.scenes = min(cfg.scenes_per_batch, len(train_scenes))  # per step, over all ranks
        distributed.check_signals_per_batch(self.scenes, "--scenes-per-batch")
        self.ddp = data_parallel(self.model, device, _generate_render)

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr": lr}]

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        # Every rank draws the same global batch (same seed, same draws) and renders its slice of
        # the scenes, so N processes follow the loss curve of one process with the whole batch.
        g, dev = self.generator, self.device
        n_scenes, n_views, h, w, _ = self.views.shape
        b, v, r = self.scenes, self.cfg.support, self.rays
        scenes = torch.randperm(n_scenes, generator=g, device=dev)[:b]
        order = torch.argsort(torch.rand(b, n_views, generator=g, device=dev), dim=1)
        sup, qry = order[:, :v], order[:, v:]
        # query rays: random pixels of random non-support views
        cam = qry[torch.arange(b, device=dev)[:, None], torch.randint(0, n_views - v, (b, r), generator=g, device=dev)]
        row = torch.randint(0, h, (b, r), generator=g, device=dev)
        col = torch.randint(0, w, (b, r), generator=g, device=dev)
        if self.cfg.background == "random":
            bg = torch.rand(b, r, 3, generator=g, device=dev)
        else:
            bg = background_color(self.cfg.background, dev).expand(b, r, 3)
        jitter = torch.rand(b, r, self.model.cfg.samples_per_ray, generator=g, device=dev)  # stratified samples
        local = local_slice(b)
        scenes, sup, cam, row, col, bg, jitter = (t[local] for t in (scenes, sup, cam, row, col, bg, jitter))
        pick = lambda t, idx: t[scenes[:, None], idx]  # noqa: E731  [b, k, ...] of each scene's views idx
        c2w, intr = self.c2w[scenes[:, None], cam].flatten(0, 1), self.intr[scenes[:, None], cam].flatten(0, 1)
        rays = Cameras(c2w, *intr.unbind(-1), w, h)  # one camera per query ray
        origins, dirs = (t.view(*cam.shape, 3) for t in rays.rays(torch.arange(len(rays), device=dev),
                                                                   row.flatten() + 0.5, col.flatten() + 0.5))
        rgba = self.views[scenes[:, None], cam, row, col]
        rgb = self.ddp(pick(self.views, sup), pick(self.c2w, sup), pick(self.intr, sup), origins, dirs, bg, jitter)
        target = rgba[..., :3] * rgba[..., 3:] + bg * (1 - rgba[..., 3:])
        mse = ((rgb - target) ** 2).mean()
        global_mse = distributed.mean(mse.detach())
        return mse, {"loss": global_mse, "psnr": -10.0 * torch.log10(global_mse)}

    def evaluate(self, support: int | None = None, update: bool = True) -> dict:
        """Zero-shot PSNR / SSIM on the evaluation scenes' test views."""
        rows = []
        for scene in self.eval_scenes:
            if scene.test is None:
                continue
            params = generate_for(self.model, scene.train, support or self.cfg.support, self.device, update)
            cams = scene.test.cameras.to(self.device)
            k = min(self.cfg.eval_views, len(scene.test))
            for i in pick_views(len(scene.test), k):
                pred = self.model.render_view(params, cams, i, self.eval_bg).cpu()
                target = scene.test.view(i, self.eval_bg.cpu())
                rows.append((float(psnr(pred, target)), float(ssim(pred, target))))
        if not rows:
            return {}
        return {"psnr": sum(r[0] for r in rows) / len(rows), "ssim": sum(r[1] for r in rows) / len(rows),
                "views": len(rows)}

    def state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def write_preview(self, path) -> None:
        from inr.signals.image import save_image

        scene = next((s for s in self.eval_scenes if s.test is not None), None)
        if scene is None:
            return
        params = generate_for(self.model, scene.train, self.cfg.support, self.device)
        pred = self.model.render_view(params, scene.test.cameras.to(self.device), 0, self.eval_bg).cpu()
        save_image(path, torch.cat([pred, scene.test.view(0, self.eval_bg.cpu())], 1))


def _generate_render(model: FewViewGenerator, views, c2w, intr, origins, dirs, bg, jitter) -> torch.Tensor:
    """The training step's forward: generated fields from the support views, rendered at the query rays."""
    return model.render(model.generate(views, c2w, intr), origins, dirs, bg, jitter=jitter)["rgb"]


@torch.no_grad()
def generate_for(model: FewViewGenerator, data: RadianceData, support: int, device, update: bool = True,
                 indices: list[int] | None = None) -> dict[str, torch.Tensor]:
    """Generated parameters (B = 1) from `support` views of `data` (spread evenly unless `indices`)."""
    idx = indices if indices is not None else pick_views(len(data), support)
    views, c2w, intr, _ = support_tensors(data, idx, model.cfg.image_size)
    return model.generate(views[None].to(device), c2w[None].to(device), intr[None].to(device), update=update)


def build_views_task(collection: SceneCollection, cfg: ViewsTrainConfig, train_cfg: TrainConfig,
                     device: torch.device) -> FewViewTask:
    """The task over `collection`: its training scenes, evaluated on its held-out ones (or, when it
    has none, on its first training scenes)."""
    train_scenes = load_scenes(collection, "train", with_test=False)
    if not train_scenes:
        raise InputError(f"{collection.root}: the collection has no training scenes")
    held = load_scenes(collection, "heldout", with_test=True) or load_scenes(collection, "train", with_test=True)
    first = train_scenes[0].train
    cfg.model.image_size = first.width
    torch.manual_seed(train_cfg.seed)
    gen = torch.Generator().manual_seed(train_cfg.seed)
    aabb = first.aabb.tolist()
    try:
        model = FewViewGenerator(cfg.model, cfg.hyper, aabb, generator=gen)
    except ValueError as e:
        raise InputError(f"invalid generator config: {e}") from None
    return FewViewTask(train_scenes, held, model, cfg, train_cfg.batch_size, device, seed=train_cfg.seed)
