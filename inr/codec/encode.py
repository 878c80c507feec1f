"""Fitting an image and writing its bitstream: D'OH (train a latent z, the weights are theta_0 + P z)
or COIN (train a small SIREN's own weights), then quantise and entropy code.

Training is Adam with a cosine decay to 0.1x over the run (steps or seconds, whichever ends
first); the last `qat` share of the run is quantisation-aware (straight-through rounding at the
chosen bit depth), so the post-training quantisation that follows loses little. The PSNR and SSIM
reported are those of the decoded 8-bit image, decoded from the bitstream by the decoder's path.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from inr.backends import Backend
from inr.hyper import mlp_parameters
from inr.hyper.doh import DOHConfig, DOHField
from inr.signals.image import PixelSampler
from inr.signals.metrics import psnr, ssim

from . import entropy
from .container import Bitstream, from_bytes, to_bytes
from .decode import as_8bit, decode_image
from .quantise import fake_quantise, quantise, step_for
from .rate import Plan

LR = {"doh": 3e-2, "coin": 1e-3}  # Adam on z; on the SIREN weights (1e-3 beat 2e-4 by 5.8 dB). z: 3e-2 beat 1e-2
# (kodim23 at 96x64, 800 steps: K=600 24.1 dB against 23.4; full size, 4 minutes: 21.4 dB against 14.6)


@dataclass
class FitSettings:
    steps: int = 2000
    max_seconds: float | None = None
    lr: float | None = None
    qat: float = 0.25  # share of the run trained through the quantiser
    batch_size: int = 1 << 16
    seed: int = 0
    # D'OH: z starts at 0 and the weights at 0.7 theta_0, so the code holds only what training changed
    # (K=600 on a 96x64 Kodak image: 23.4 dB against 19.6 dB from z ~ N(0, I) with no theta_0)
    offset: float = 0.7  # share of theta_0 in the weights
    z_std: float = 0.0  # std of z's initial draw
    learn_scales: bool = True  # D'OH: learned per-tensor scales (+3.3 dB at 0.6 bpp on a 128x85 Kodak image)


def _cosine(progress: float) -> float:
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _optimise(forward, params: list, image: torch.Tensor, fit: FitSettings, lr: float, quiet: bool, desc: str) -> int:
    """Adam on `params` so forward(x, quantised) matches the image; returns the steps taken."""
    gen = torch.Generator().manual_seed(fit.seed)
    sampler = PixelSampler(image * 2 - 1, fit.batch_size, generator=gen)  # centred, as the field's output
    opt = torch.optim.Adam(params, lr=lr)
    bar = tqdm(total=fit.steps, disable=quiet or None, file=sys.stderr, dynamic_ncols=True, desc=desc)
    step, elapsed = 0, 0.0
    while step < fit.steps and not (fit.max_seconds and elapsed >= fit.max_seconds):
        t0 = time.perf_counter()
        progress = max(step / fit.steps, elapsed / fit.max_seconds if fit.max_seconds else 0.0)
        for g in opt.param_groups:
            g["lr"] = lr * _cosine(progress)
        x, y = sampler()
        loss = torch.mean((forward(x, progress >= 1 - fit.qat) * 2 - 1 - y) ** 2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        elapsed += time.perf_counter() - t0
        if step % 25 == 0 or step == 1:
            bar.set_postfix(psnr=f"{10 * math.log10(4 / max(float(loss.detach()), 1e-12)):.2f}", refresh=False)
        bar.update(1)
    bar.close()
    return step


def fit_doh(image: torch.Tensor, plan: Plan, fit: FitSettings, quiet: bool = True) -> DOHField:
    from .targets import build_target

    gen = torch.Generator().manual_seed(fit.seed)
    model = DOHField(build_target(plan.spec, image.shape[-1], gen),
                     DOHConfig(plan.latent_dim, fit.seed, fit.offset, fit.learn_scales, fit.z_std), generator=gen)

    def forward(x, quantised):
        return model(x, fake_quantise(model.z, plan.bits) if quantised else None)

    params = [model.z] + ([model.log_scales] if fit.learn_scales else [])
    model.steps = _optimise(forward, params, image, fit, fit.lr or LR["doh"], quiet, f"D'OH K={plan.latent_dim}")
    return model


def fit_coin(image: torch.Tensor, plan: Plan, fit: FitSettings, quiet: bool = True):
    from .targets import build_target

    field = build_target(plan.spec, image.shape[-1], torch.Generator().manual_seed(fit.seed))
    names = list(mlp_parameters(field))
    own = dict(field.named_parameters())

    def forward(x, quantised):
        if not quantised:
            return field(x)
        return field(x, {n: fake_quantise(own[n], plan.bits) for n in names})

    field.steps = _optimise(forward, list(field.parameters()), image, fit, fit.lr or LR["coin"], quiet,
                            f"COIN width {plan.spec['width']}")
    return field


def bitstream(model, plan: Plan, image_shape: tuple[int, int, int], bits: int, fit: FitSettings) -> Bitstream:
    """Quantise the trained tensors at `bits` and entropy code them."""
    h, w, c = image_shape
    if plan.method == "doh":
        steps = [step_for(model.z, bits)]
        symbols = quantise(model.z, steps[0], bits)
        scales = [float(np.float32(s)) for s in model.log_scales.detach().exp()] if fit.learn_scales else []
        extra = {"seed": fit.seed, "latent_dim": plan.latent_dim, "offset": float(np.float32(fit.offset)),
                 "scales": scales}
    else:
        tensors = [p for n, p in model.named_parameters() if n in mlp_parameters(model)]
        steps = [step_for(p, bits) for p in tensors]
        symbols = torch.cat([quantise(p, s, bits).reshape(-1) for p, s in zip(tensors, steps)])
        extra = {}
    model_, payload = entropy.best_code(symbols.numpy())
    return Bitstream(plan.method, bits, h, w, c, plan.spec, steps, model_, payload, **extra)


def compress(image: torch.Tensor, plan: Plan, fit: FitSettings, backend: Backend | None = None,
             quiet: bool = True) -> tuple[bytes, dict]:
    """Fit, quantise and code `image` [H, W, C] in [0, 1]: (the .inrz bytes, figures).

    With a rate budget (`plan.budget_bytes`) the bit depth steps down from `plan.bits` until the
    file fits (post-training requantisation); `rate_met` says whether it did.
    """
    t0 = time.perf_counter()
    with (backend or Backend()).active():
        model = (fit_doh if plan.method == "doh" else fit_coin)(image, plan, fit, quiet)
    fit_seconds = time.perf_counter() - t0
    bits = plan.bits
    data = to_bytes(bitstream(model, plan, image.shape, bits, fit))
    while plan.budget_bytes and len(data) > plan.budget_bytes and bits > 4:
        bits -= 1
        data = to_bytes(bitstream(model, plan, image.shape, bits, fit))
    t1 = time.perf_counter()
    decoded = as_8bit(decode_image(from_bytes(data, "bitstream")))
    decode_seconds = time.perf_counter() - t1
    h, w, _ = image.shape
    stats = {"method": plan.method, "bpp": round(8 * len(data) / (h * w), 5), "psnr": round(psnr(decoded, image), 3),
             "ssim": round(ssim(decoded, image), 4) if min(h, w) >= 11 else None, "bytes": len(data),
             "bits": bits, "field": plan.spec, "encode_seconds": round(time.perf_counter() - t0, 2),
             "fit_seconds": round(fit_seconds, 2), "steps": model.steps, "decode_seconds": round(decode_seconds, 3)}
    if plan.method == "doh":
        stats["latent_dim"] = plan.latent_dim
    if plan.budget_bytes:
        stats["rate_met"] = len(data) <= plan.budget_bytes
    return data, stats
