"""Training one hypernetwork over a collection of images (`inr fit collection images`).

Every step draws a global batch (which signals, which pixels) from a generator seeded by the
step, so it is the same in any number of processes; under DDP each rank takes its slice, computes
the mean loss of its slice, and DistributedDataParallel averages the gradients: N processes follow
the loss curve of one process with the whole batch.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field

import torch
from torch import nn

from inr.errors import InputError
from inr.fields import Field, SirenConfig, SirenField
from inr.hyper import SOURCES, AutoDecoder, ConvEncoder, HCINRConfig, HCINRField, HyperConfig, HyperField, SetEncoder
from inr.signals.collection import ImageCollection
from inr.signals.image import pixel_coords
from inr.signals.metrics import SSIM_WIN, psnr, ssim

from . import distributed
from .loop import TrainConfig

# --hyper presets; explicit --hyper.* options override them.
PRESETS = {"mip": {"mode": "full", "mip": True}, "plain": {"mode": "full", "mip": False, "init": "torch"},
           "siren": {"mode": "full", "mip": False, "init": "siren"},
           "film": {"mode": "film", "mip": True}, "shift": {"mode": "shift", "mip": True},
           "lowrank": {"mode": "lowrank", "mip": True}}

# Pixels per signal per step (a whole 32 x 32 texture). A cosine decay to 0.1x helps every
# hypernetwork at 500 steps on textures (seed 2: MIP 43.6 vs 32.6 dB constant, SIREN-paper init
# 45.5 vs 37.1 dB).
COLLECTION_TRAIN_DEFAULTS = {"steps": 2000, "batch_size": 1024, "schedule": "cosine", "beta2": 0.999, "eps": 1e-8}
# Learning rates by HyperConfig.mip. Without MIP: SIREN's hypernetwork setting, 1e-4 everywhere.
# With MIP, the body and head at 2e-3, theta_0 (the head's output bias: the target's own weights)
# at SIREN's 1e-4, latents at 1e-2: 38.4 dB at 250 steps on textures (seed 0) against 30.3 dB with
# 5e-4 everywhere and latents at 1e-3; 3e-3 or 4e-3 gave 33-35 dB, latents at 3e-2 31.9 dB.
LR_DEFAULTS = {True: 2e-3, False: 1e-4}
THETA0_LR = {True: 1e-4, False: None}  # None: the hypernetwork's lr
LATENT_LR_DEFAULTS = {True: 1e-2, False: 1e-3}

# The field every member shares the architecture of: a SIREN, or HC-INR (`--field hcinr`), whose
# hypernetwork by default generates the per-level warp hypernetworks (`--hyper.targets` chooses:
# "compact.*" gives per-instance compact weights instead); the feature grids and the compact field
# are shared.
COLLECTION_FIELDS = ("siren", "hcinr")
HCINR_TARGETS = ("hypernetworks.*",)


def collection_field(cfg, d_in: int, d_out: int, generator: torch.Generator | None = None) -> Field:
    """The shared field of a collection config with `field`, `siren` and `hcinr` settings."""
    if cfg.field not in COLLECTION_FIELDS:
        raise InputError(f"unknown field {cfg.field!r}; expected one of {', '.join(COLLECTION_FIELDS)}")
    if cfg.field == "hcinr":
        return HCINRField(d_in, d_out, cfg.hcinr, generator=generator)
    return SirenField(d_in, d_out, cfg.siren, generator=generator)


def hyper_param_groups(model: CollectionModel, lr: float, mip: bool, latent_lr: float | None,
                       trains_latents: bool = True) -> list[dict]:
    """Adam groups: hypernetwork at `lr`, theta_0 at THETA0_LR (MIP), the conditioning source at
    `latent_lr` (auto-decoder latents) or `lr` (encoders)."""
    hyper = model.hyper_field.hyper
    theta0 = [hyper.output_bias]
    rest = [p for p in model.hyper_field.parameters() if p.requires_grad and p is not hyper.output_bias]
    source_lr = (latent_lr or LATENT_LR_DEFAULTS[mip]) if trains_latents else lr
    return [{"params": rest, "lr": lr}, {"params": theta0, "lr": THETA0_LR[mip] or lr},
            {"params": list(model.source.parameters()), "lr": source_lr}]


def draw_members(g: torch.Generator, n: int, batch: int) -> torch.Tensor:
    """`batch` member indices of a global batch: distinct when the collection is large enough."""
    if batch <= n:
        return torch.randperm(n, generator=g)[:batch]
    return torch.randint(n, (batch,), generator=g)


def local_slice(batch: int) -> slice:
    """This rank's share of a global batch of `batch` members (all of it in one process)."""
    r, w = distributed.rank(), distributed.world_size()
    return slice(r * (batch // w), (r + 1) * (batch // w))


class Through(nn.Module):
    """`model` whose forward is `step(model, ...)`: lets DDP wrap a model whose training step is
    not its forward (a generator's generate-then-render); its parameters are the model's."""

    def __init__(self, model: nn.Module, step: Callable[..., torch.Tensor]):
        super().__init__()
        self.model, self.step = model, step

    def forward(self, *args, **kwargs):
        return self.step(self.model, *args, **kwargs)


def data_parallel(model: nn.Module, device: torch.device, step: Callable[..., torch.Tensor] | None = None) -> nn.Module:
    """`model` (called through `step` when given) wrapped in DistributedDataParallel under
    torchrun, else itself: either way gradients come out averaged over the ranks."""
    if step is not None:
        model = Through(model, step)
    if not distributed.active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


@dataclass
class CollectionFitConfig:
    """Everything `inr fit collection images` needs; config.json stores its resolved form."""

    target: str = "textures"
    size: int | None = None
    preset: str = "mip"
    conditioning: str = "latent"  # latent (auto-decoder) | conv (image encoder) | set (observations)
    latent_dim: int = 64
    latent_lr: float | None = None  # None: 1e-2 with MIP, 1e-3 without
    latent_penalty: float = 1e-4
    signals_per_batch: int = 16
    observed: float = 0.25  # set encoder: fraction of each image's pixels it is shown
    hyper: HyperConfig = dc_field(default_factory=HyperConfig)
    siren: SirenConfig = dc_field(default_factory=lambda: SirenConfig(hidden=(64, 64, 64), output_scale=0.5,
                                                                       output_offset=0.5))
    field: str = "siren"  # siren | hcinr
    # 32 x 32 textures: two dense levels of 8 and 16 points, a compact SIREN as the siren block's
    hcinr: HCINRConfig = dc_field(default_factory=lambda: HCINRConfig(
        levels=2, dense_levels=2, base_resolution=8, compact_hidden=(64, 64, 64), output_scale=0.5, output_offset=0.5))
    train: TrainConfig = dc_field(default_factory=TrainConfig)

    def resolved_train(self) -> TrainConfig:
        t = dataclasses.replace(self.train)
        for k, v in {**COLLECTION_TRAIN_DEFAULTS, "lr": LR_DEFAULTS[self.hyper.mip]}.items():
            if getattr(t, k) is None:
                setattr(t, k, v)
        return t

    def check(self) -> None:
        """Reject settings that would only fail later (InputError, one line)."""
        if self.conditioning not in SOURCES:
            raise InputError(f"unknown conditioning {self.conditioning!r}; expected one of {', '.join(SOURCES)}")
        if self.latent_dim < 1 or self.signals_per_batch < 1:
            raise InputError("latent_dim and signals_per_batch must be >= 1")
        if not 0 < self.observed <= 1:
            raise InputError(f"observed must be in (0, 1], got {self.observed}")
        distributed.check_signals_per_batch(self.signals_per_batch)


class CollectionModel(nn.Module):
    """The hyper-conditioned field and its conditioning source, trained together (one module, so
    DDP wraps both). `forward(x, cond)` -> [B, N, C]; `cond` is what the source reads: signal
    indices (latent), images [B, C, H, W] (conv) or (coords, values) observations (set)."""

    def __init__(self, hyper_field: HyperField, source: nn.Module):
        super().__init__()
        self.hyper_field, self.source = hyper_field, source

    def condition(self, cond) -> torch.Tensor:
        return self.source(*cond) if isinstance(cond, tuple) else self.source(cond)

    def forward(self, x: torch.Tensor, cond) -> torch.Tensor:
        return self.hyper_field(x, self.condition(cond))


def build_collection_model(cfg: CollectionFitConfig, n_signals: int, channels: int,
                           generator: torch.Generator | None = None) -> CollectionModel:
    field = collection_field(cfg, 2, channels, generator)
    bounded = cfg.hyper.mip  # MIP's inputs live in [0, 1]
    if cfg.conditioning == "latent":
        source = AutoDecoder(n_signals, cfg.latent_dim, bounded=bounded, generator=generator)
    elif cfg.conditioning == "conv":
        source = ConvEncoder(channels, cfg.latent_dim, bounded=bounded)
    elif cfg.conditioning == "set":
        source = SetEncoder(2, channels, cfg.latent_dim, bounded=bounded)
    else:
        raise ValueError(f"conditioning must be latent, conv or set, got {cfg.conditioning!r}")
    hyper_field = HyperField(field, cfg.latent_dim, cfg.hyper, generator=generator)
    return CollectionModel(hyper_field, source)


class ImageCollectionTask:
    """MSE on random pixels of a batch of signals, plus the latent-norm penalty (auto-decoder)."""

    def __init__(self, images: torch.Tensor, model: CollectionModel, cfg: CollectionFitConfig,
                 train: TrainConfig, device: torch.device):
        self.images = images.to(device)  # [M, H, W, C]
        self.n, self.height, self.width, self.channels = images.shape
        self.flat = self.images.reshape(self.n, -1, self.channels)
        self.coords = pixel_coords(self.height, self.width, device=device)
        self.cfg, self.device, self.seed = cfg, device, train.seed
        self.model = model.to(device)
        self.pixels = min(train.batch_size, self.height * self.width)
        self.batch = cfg.signals_per_batch
        world = distributed.world_size()
        if self.batch % world:
            raise ValueError(f"signals_per_batch ({self.batch}) must be a multiple of the number of processes ({world})")
        self.ddp = data_parallel(model, device)

    def param_groups(self, lr: float) -> list[dict]:
        return hyper_param_groups(self.model, lr, self.cfg.hyper.mip, self.cfg.latent_lr,
                                  trains_latents=self.cfg.conditioning == "latent")

    def _draw(self, step: int):
        """The global batch of `step` (signal indices, pixel indices, observed pixels): identical on every rank."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        idx = draw_members(g, self.n, self.batch)
        hw = self.height * self.width
        pix = torch.randint(hw, (self.batch, self.pixels), generator=g) if self.pixels < hw else None
        seen = self._observe(self.batch, g) if self.cfg.conditioning == "set" else None
        return idx, pix, seen

    def _observe(self, count: int, g: torch.Generator) -> torch.Tensor:
        hw = self.height * self.width
        m = max(1, round(self.cfg.observed * hw))
        return torch.rand(count, hw, generator=g).argsort(dim=1)[:, :m]

    def condition_input(self, idx: torch.Tensor, seen: torch.Tensor | None):
        if self.cfg.conditioning == "latent":
            return idx
        if self.cfg.conditioning == "conv":
            return self.images[idx].permute(0, 3, 1, 2)
        seen = seen.to(self.device)
        return (self.coords[seen], torch.gather(self.flat[idx], 1, seen.unsqueeze(-1).expand(-1, -1, self.channels)))

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        idx, pix, seen = self._draw(step)
        local = local_slice(self.batch)
        idx = idx[local].to(self.device)
        seen = seen[local] if seen is not None else None
        if pix is None:
            x = self.coords.unsqueeze(0).expand(idx.shape[0], -1, -1)
            y = self.flat[idx]
        else:
            pix = pix[local].to(self.device)
            x = self.coords[pix]
            y = torch.gather(self.flat[idx], 1, pix.unsqueeze(-1).expand(-1, -1, self.channels))
        pred = self.ddp(x, self.condition_input(idx, seen))
        mse = torch.mean((pred - y) ** 2)
        loss = mse
        if self.cfg.conditioning == "latent" and self.cfg.latent_penalty:
            loss = loss + self.cfg.latent_penalty * self.model.source.penalty(idx)
        global_mse, global_loss = distributed.mean(torch.stack([mse.detach(), loss.detach()]))
        return loss, {"loss": global_loss, "psnr": -10.0 * torch.log10(global_mse)}

    # -- evaluation -----------------------------------------------------------------------
    def eval_conditions(self, indices: torch.Tensor):
        """Conditioning inputs for members `indices` at evaluation (a fixed observation for set)."""
        seen = None
        if self.cfg.conditioning == "set":
            seen = self._observe(len(indices), torch.Generator().manual_seed(12345))
        return self.condition_input(indices.to(self.device), seen)

    def render_members(self, indices: torch.Tensor, chunk: int = 16) -> torch.Tensor:
        """Reconstructions [len(indices), H, W, C] in [0, 1]."""
        out = []
        with torch.no_grad():
            for part in indices.split(chunk):
                pred = self.model(self.coords, self.eval_conditions(part))
                out.append(pred.clamp(0, 1).reshape(len(part), self.height, self.width, self.channels))
        return torch.cat(out).cpu()

    def evaluate(self) -> dict:
        recon = self.render_members(torch.arange(self.n))
        truth = self.images.cpu()
        values = [float(psnr(recon[i], truth[i])) for i in range(self.n)]
        out = {"psnr": sum(values) / self.n, "psnr_min": min(values)}
        if min(self.height, self.width) >= SSIM_WIN:  # SSIM's window needs 11 x 11 pixels
            out["ssim"] = sum(float(ssim(recon[i], truth[i])) for i in range(self.n)) / self.n
        return out

    def state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass

    def write_preview(self, path, count: int = 16) -> None:
        """Up to `count` members: ground truth (top row of each pair) over reconstruction."""
        from inr.signals.image import save_image

        k = min(count, self.n)
        recon = self.render_members(torch.arange(k))
        truth = self.images[:k].cpu()
        pairs = torch.cat([truth, recon], dim=1)  # [k, 2H, W, C]
        save_image(path, torch.cat(list(pairs), dim=1))


def evaluation_task(collection: ImageCollection, data: dict, cfg: CollectionFitConfig, model: CollectionModel,
                    device: torch.device, where: str) -> ImageCollectionTask:
    """The evaluation task of a trained image collection around `model`: `collection` reloaded from
    the run's source must still be what config.json's `data` says it trained on."""
    if tuple(collection.images.shape[1:]) != (data["height"], data["width"], data["channels"]) \
            or len(collection.names) != len(data["members"]):
        raise InputError(f"{where}: its collection {data['source']} changed since training")
    train_cfg = dataclasses.replace(cfg.train, batch_size=cfg.train.batch_size or 1024)
    return ImageCollectionTask(collection.images, model, cfg, train_cfg, device)


# -- saving, loading and fitting new members ---------------------------------------------------

def source_config(source: nn.Module, n_signals: int, channels: int) -> dict:
    """Plain JSON that rebuilds a conditioning source (`build_source`)."""
    return {"kind": source.kind, "n_signals": n_signals, "channels": channels, "dim": source.dim,
            "bounded": source.bounded}


def build_source(spec: dict) -> nn.Module:
    if spec["kind"] == "latent":
        return AutoDecoder(spec["n_signals"], spec["dim"], bounded=spec["bounded"])
    if spec["kind"] == "conv":
        return ConvEncoder(spec["channels"], spec["dim"], bounded=spec["bounded"])
    if spec["kind"] == "set":
        return SetEncoder(2, spec["channels"], spec["dim"], bounded=spec["bounded"])
    raise ValueError(f"unknown conditioning source {spec['kind']!r}")


def model_config(model: CollectionModel, n_signals: int, channels: int) -> dict:
    return {"hyper_field": model.hyper_field.config(), "source": source_config(model.source, n_signals, channels)}


def rebuild_model(config: dict) -> CollectionModel:
    """The CollectionModel a run's config.json describes (parameters not loaded)."""
    from inr.hyper import build_hyper_field

    return CollectionModel(build_hyper_field(config["hyper_field"]), build_source(config["source"]))


@dataclass
class NewSignalFit:
    field: nn.Module  # the materialised plain field
    latent: torch.Tensor  # the conditioning z it was generated from [d_cond]
    history: list[dict]


def fit_new_image(model: CollectionModel, image: torch.Tensor, steps: int, lr: float, observed: float = 1.0,
                  seed: int = 0, pixels: int = 4096) -> NewSignalFit:
    """Fit an unseen image [H, W, C] with a trained collection: only its conditioning changes.

    - latent (auto-decoder): start from the mean trained latent, optimise it alone for `steps`;
    - conv: one encoder pass (then `steps` of refinement of z, if any);
    - set: one pass over a random `observed` fraction of the pixels (the partial observation),
      refined on those pixels only.
    The hypernetwork and the field stay frozen. Returns the materialised field.
    """
    device = next(model.parameters()).device
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    h, w, c = image.shape
    image = image.to(device)
    coords = pixel_coords(h, w, device=device)
    flat = image.reshape(-1, c)
    g = torch.Generator().manual_seed(seed)
    known = torch.arange(h * w)
    source = model.source
    with torch.no_grad():
        if source.kind == "latent":
            z0 = source.initial_latent().to(device)
        elif source.kind == "conv":
            z0 = source(image.permute(2, 0, 1).unsqueeze(0))[0]
        else:
            m = max(1, round(observed * h * w))
            known = torch.randperm(h * w, generator=g)[:m]
            z0 = source(coords[known].unsqueeze(0), flat[known].unsqueeze(0))[0]
    known = known.to(device)
    z = nn.Parameter(z0.clone())
    opt = torch.optim.Adam([z], lr=lr)
    history = []

    for step in range(steps):
        sel = known[torch.randint(len(known), (min(pixels, len(known)),), generator=g).to(device)] \
            if len(known) > pixels else known
        pred = model.hyper_field(coords[sel].unsqueeze(0), z.unsqueeze(0))[0]
        mse = torch.mean((pred - flat[sel]) ** 2)
        opt.zero_grad(set_to_none=True)
        mse.backward()
        opt.step()
        history.append({"step": step + 1, "loss": float(mse.detach())})
    z = z.detach()
    return NewSignalFit(model.hyper_field.materialize(z), z.cpu(), history)
