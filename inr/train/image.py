"""Fitting one image: the task the training loop optimises, and its defaults per field kind."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from dataclasses import field as dc_field

import torch

from inr.fields import FIELDS, Field, FourierConfig, HashFieldConfig, SirenConfig, build_field
from inr.hyper.hcinr import HCINRConfig
from inr.signals.image import PixelSampler, render_image, save_image
from inr.signals.metrics import psnr, ssim

from .loop import TrainConfig
from .optim import model_param_groups

# Settings that fit a 512x512 image well on a 2-core CPU (see benchmarks/image_fit.py).
FIELD_TRAIN_DEFAULTS = {
# Hash tables use instant-ngp's Adam (beta2 0.99, eps 1e-15); SIREN and Fourier MLPs PyTorch's defaults.
    # 600 steps of 2^15 pixels take under a minute on 2 cores; smaller batches beat full ones here.
    "hash": {"steps": 600, "lr": 1e-2, "batch_size": 1 << 15, "beta2": 0.99, "eps": 1e-15, "schedule": "exp"},
    # SIREN at lr 1e-4: a constant rate beat decay to 0.1x by 3.3 dB (34.3 vs 31.0 dB, 2000 steps, 256x256 camera).
    "siren": {"steps": 2000, "lr": 1e-4, "batch_size": 1 << 16, "beta2": 0.999, "eps": 1e-8,
              "schedule": "constant"},
    # Fourier features: constant lr beat decay by 1.9 dB (33.8 vs 32.0 dB, 2000 steps, 512x512 camera).
    "fourier": {"steps": 2000, "lr": 1e-3, "batch_size": 1 << 16, "beta2": 0.999, "eps": 1e-8,
                "schedule": "constant"},
    # HC-INR: the compact SIREN as SIREN; its grids and hypernetworks at 100x the lr with instant-ngp's Adam
    # (HCINRField.param_groups).
    "hcinr": {"steps": 2000, "lr": 1e-4, "batch_size": 1 << 16, "beta2": 0.999, "eps": 1e-8,
              "schedule": "constant"},
}
# `inr fit image --field` choices: the general fields and HC-INR's warped field.
IMAGE_FIELDS = (*FIELDS, "hcinr")


CENTRED = {"output_scale": 0.5, "output_offset": 0.5}


@dataclass
class ImageFitConfig:
    """Everything `inr fit image` needs; config.json stores its resolved form."""

    target: str = "camera"
    size: int | None = None  # downscale the target so its longer side is this many pixels
    field: str = "hash"
    train: TrainConfig = dc_field(default_factory=TrainConfig)
    # Fields fit the centred target 2v - 1 and map back (SIREN's normalisation): +3.3 dB for SIREN.
    siren: SirenConfig = dc_field(default_factory=lambda: SirenConfig(hidden=(128, 128, 128), **CENTRED))
    fourier: FourierConfig = dc_field(default_factory=lambda: FourierConfig(**CENTRED))
    hash: HashFieldConfig = dc_field(default_factory=lambda: HashFieldConfig(**CENTRED))
    hcinr: HCINRConfig = dc_field(default_factory=lambda: HCINRConfig(**CENTRED))

    def resolved_train(self) -> TrainConfig:
        """Train settings with the field's defaults filled in where the user gave none."""
        defaults = FIELD_TRAIN_DEFAULTS[self.field]
        t = dataclasses.replace(self.train)
        for k, v in defaults.items():
            if getattr(t, k) is None:
                setattr(t, k, v)
        return t

    def field_options(self, height: int, width: int) -> dict:
        """The chosen field's options; a hash grid's finest level defaults to the image size."""
        options = dataclasses.asdict(getattr(self, self.field))
        if self.field == "hash":
            grid = dict(options["grid"])
            if not {"otype", "finest_resolution", "per_level_scale"} & set(grid):
                grid["finest_resolution"] = max(height, width)
            options["grid"] = grid
        return options


class ImageTask:
    """Regress pixel values at pixel-centre coordinates in [-1, 1]^2 with an MSE loss."""

    def __init__(self, image: torch.Tensor, model: Field, batch_size: int, device: torch.device, seed: int = 0):
        self.image = image
        self.height, self.width, self.channels = image.shape
        self.model = model.to(device)
        self.device = device
        self.generator = torch.Generator(device=device).manual_seed(seed)
        self.sampler = PixelSampler(image.to(device), batch_size, self.generator)
        self.batch_size = min(batch_size, self.sampler.n_pixels)
        self.clamp = bool(image.min() >= 0 and image.max() <= 1)

    def param_groups(self, lr: float) -> list[dict]:
        return model_param_groups(self.model, lr)

    def loss(self, step: int) -> tuple[torch.Tensor, dict]:
        x, y = self.sampler()
        mse = torch.mean((self.model(x) - y) ** 2)
        return mse, {"psnr": -10.0 * torch.log10(mse.detach())}

    def render(self, height: int | None = None, width: int | None = None, crop=None) -> torch.Tensor:
        out = render_image(self.model, height or self.height, width or self.width, crop=crop)
        return out.clamp(0, 1) if self.clamp else out

    def evaluate(self) -> dict:
        pred = self.render().cpu()
        return {"psnr": float(psnr(pred, self.image)), "ssim": float(ssim(pred, self.image))}

    def state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])

    def write_preview(self, path) -> None:
        save_image(path, self.render().cpu())


def build_image_task(image: torch.Tensor, cfg: ImageFitConfig, train: TrainConfig, device: torch.device) -> ImageTask:
    h, w, c = image.shape
    torch.manual_seed(train.seed)
    gen = torch.Generator().manual_seed(train.seed)
    model = build_field(cfg.field, 2, c, generator=gen, **cfg.field_options(h, w))
    return ImageTask(image, model, train.batch_size, device, seed=train.seed)
