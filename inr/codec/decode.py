"""Bitstream -> field parameters -> image. Always the "torch" reference backend in float32, so the
decoded image depends on the file only (and not on which kernels a machine has built)."""
from __future__ import annotations

import numpy as np
import torch

from inr.backends import Backend
from inr.hyper import mlp_parameters
from inr.hyper.doh import DOHConfig, DOHField
from inr.errors import InputError
from inr.signals.image import render_image, to_uint8

from . import entropy
from .container import Bitstream
from .quantise import dequantise
from .targets import build_target


def n_symbols(bs: Bitstream, targets: dict) -> int:
    return bs.latent_dim if bs.method == "doh" else sum(t.numel for t in targets.values())


def decoded_field(bs: Bitstream, name: str = "bitstream"):
    """(the target field, its decoded parameters {name: tensor})."""
    field = build_target(bs.field, bs.channels)
    targets = mlp_parameters(field)
    expected = 1 if bs.method == "doh" else len(targets)
    if len(bs.steps) != expected or (bs.method == "doh" and bs.scales and len(bs.scales) != len(targets)):
        raise InputError(f"{name}: corrupt .inrz file (step sizes or scales do not match the field)")
    try:
        q = torch.from_numpy(entropy.decode(bs.payload, bs.model, n_symbols(bs, targets)))
    except ValueError as e:
        raise InputError(f"{name}: corrupt .inrz file ({e})") from None
    if bs.method == "doh":
        doh = DOHField(field, DOHConfig(bs.latent_dim, bs.seed, bs.offset), dense_bytes=0, keep_bits=False)
        return field, doh.exact_params(q, bs.steps[0], bs.scales or None)
    params, start = {}, 0
    for (pname, t), step in zip(targets.items(), bs.steps):
        params[pname] = dequantise(q[start:start + t.numel], step).reshape(t.shape)
        start += t.numel
    return field, params


def decode_image(bs: Bitstream, scale: float = 1.0, name: str = "bitstream") -> torch.Tensor:
    """The decoded image [H * scale, W * scale, C] in [0, 1] (float32, before 8-bit rounding)."""
    field, params = decoded_field(bs, name)
    height, width = max(1, round(bs.height * scale)), max(1, round(bs.width * scale))
    with Backend("torch").active(), torch.no_grad():
        image = render_image(lambda x: field(x, params), height, width)
    return image.clamp(0, 1)


def as_8bit(image: torch.Tensor) -> torch.Tensor:
    """What the PNG holds, as floats in [0, 1]."""
    return torch.from_numpy(to_uint8(image).astype(np.float32) / 255.0)
