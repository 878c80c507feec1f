"""The target fields a bitstream describes: a SIREN or a ReLU Fourier-feature MLP of equal hidden
widths, fitting the centred image 2v - 1 (SIREN's normalisation), and their parameter counts."""
from __future__ import annotations

import torch

from inr.fields import Field, FourierConfig, FourierField, SirenConfig, SirenField

CENTRED = {"output_scale": 0.5, "output_offset": 0.5}


def field_spec(kind: str = "siren", width: int = 64, depth: int = 3, w0: float = 30.0, n_features: int = 64,
               sigma: float = 10.0) -> dict:
    """The plain description stored in the bitstream (`depth` hidden layers of `width`)."""
    if kind == "siren":
        return {"kind": "siren", "depth": depth, "width": width, "w0": w0, "w0_hidden": 30.0}
    if kind == "fourier":
        return {"kind": "fourier", "depth": depth, "width": width, "n_features": n_features, "sigma": sigma}
    raise ValueError(f"codec fields are siren or fourier, got {kind!r}")


def build_target(spec: dict, channels: int, generator: torch.Generator | None = None) -> Field:
    hidden = (spec["width"],) * spec["depth"]
    if spec["kind"] == "siren":
        cfg = SirenConfig(hidden=hidden, w0=spec["w0"], w0_hidden=spec["w0_hidden"], **CENTRED)
        return SirenField(2, channels, cfg, generator=generator)
    cfg = FourierConfig(hidden=hidden, n_features=spec["n_features"], sigma=spec["sigma"], **CENTRED)
    return FourierField(2, channels, cfg, generator=generator)


def n_params(spec: dict, channels: int) -> int:
    """How many MLP weights and biases the target has (what D'OH generates, what COIN stores)."""
    d_in = 2 if spec["kind"] == "siren" else 2 * spec["n_features"]
    widths = [d_in] + [spec["width"]] * spec["depth"] + [channels]
    return sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))
