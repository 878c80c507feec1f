"""Rate planning: from a target bits-per-pixel to a latent size (D'OH) or a width (COIN), and the
bit depth; and the smallest and largest rates a field can reach, for the unreachable-rate error.

The coded size of a symbol is estimated as the entropy of a Gaussian quantised with a step of
3.5 sigma / levels: log2(levels / 3.5) + 2.05 bits (about 7.2 bits at 8 bits, 5.2 at 6). The
encoder then measures the real file and requantises at fewer bits if it is over the budget.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from inr.errors import InputError

from .container import Bitstream, to_bytes
from .entropy import EntropyModel
from .quantise import BITS, levels
from .targets import field_spec, n_params

WIDTHS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)  # D'OH's target widths, smallest that fits
K_MIN = 8  # the smallest latent worth coding
RATIO = 3  # D'OH: the target has at least RATIO x K weights (see benchmarks/rate_distortion.py)
ANS_SLACK_BITS = 32  # the coder's last partly used word


@dataclass
class Plan:
    method: str
    spec: dict
    bits: int
    latent_dim: int = 0
    budget_bytes: int | None = None


def symbol_bits(bits: int) -> float:
    return max(1.0, math.log2(levels(bits) / 3.5) + 2.05)


def header_bytes(method: str, spec: dict, channels: int, n_steps: int, n_scales: int = 0) -> int:
    """Bytes of everything but the coded payload."""
    model = EntropyModel("laplace", 0.5, 0, 0)
    bs = Bitstream(method, 8, 1, 1, channels, spec, [1.0] * n_steps, model, b"", scales=[1.0] * n_scales)
    return len(to_bytes(bs))


def _n_tensors(spec: dict) -> int:
    return 2 * (spec["depth"] + 1)


def _coded_bytes(header: int, n: int, bits: int) -> int:
    return header + math.ceil((n * symbol_bits(bits) + ANS_SLACK_BITS) / 32) * 4


def _bpp(n_bytes: int, pixels: int) -> float:
    return 8 * n_bytes / pixels


def plan_doh(height: int, width: int, channels: int, bits: int, bpp: float | None = None,
             latent_dim: int | None = None, kind: str = "siren", field_width: int | None = None, depth: int = 3,
             learn_scales: bool = False, **spec_options) -> Plan:
    """The D'OH plan: latent size K from `bpp` (or given), the target's width (the smallest of WIDTHS
    with RATIO x K weights, or given) and the bit depth (lowered where the budget needs it)."""
    pixels = height * width

    def header(spec):
        return header_bytes("doh", spec, channels, 1, _n_tensors(spec) if learn_scales else 0)

    def spec_for(k):
        if field_width is not None:
            return field_spec(kind, field_width, depth, **spec_options)
        for wd in WIDTHS:
            spec = field_spec(kind, wd, depth, **spec_options)
            if n_params(spec, channels) >= RATIO * k:
                return spec
        return field_spec(kind, WIDTHS[-1], depth, **spec_options)

    budget = None
    if latent_dim is None:
        budget = math.floor(bpp * pixels / 8)
        chosen = None
        for b in range(bits, BITS.start - 1, -1):
            spec = spec_for(K_MIN)
            k = math.floor(((budget - header(spec)) * 8 - ANS_SLACK_BITS) / symbol_bits(b))
            if k >= K_MIN:
                spec = spec_for(k)
                k = math.floor(((budget - header(spec)) * 8 - ANS_SLACK_BITS) / symbol_bits(b))
                chosen = (k, b, spec)
                break
        if chosen is None:
            spec = spec_for(K_MIN)
            least = _bpp(_coded_bytes(header(spec), K_MIN, BITS.start), pixels)
            raise InputError(f"--bpp {bpp} is below the smallest rate a D'OH {kind} code reaches for this "
                             f"{width}x{height} image: {least:.4f} bpp ({K_MIN} latents at {BITS.start} bits)")
        latent_dim, bits, spec = chosen
    else:
        spec = spec_for(latent_dim)
    most = n_params(spec, channels)
    if latent_dim > most:
        top = _bpp(_coded_bytes(header(spec), most, bits), pixels)
        what = f"--bpp {bpp}" if bpp is not None else f"--latent-dim {latent_dim}"
        raise InputError(f"{what} is above the largest rate a D'OH code of a width-{spec['width']} {kind} field "
                         f"reaches for this {width}x{height} image: {top:.4f} bpp ({most} latents, one per weight, "
                         f"at {bits} bits); use a wider --width or --method coin")
    return Plan("doh", spec, bits, latent_dim, budget)


def plan_coin(height: int, width: int, channels: int, bits: int, bpp: float | None = None,
              field_width: int | None = None, depth: int = 3, max_width: int = 512, **spec_options) -> Plan:
    """The COIN plan: the widest SIREN whose quantised weights fit `bpp` (or the given width)."""
    pixels = height * width

    def size(wd):
        spec = field_spec("siren", wd, depth, **spec_options)
        return _coded_bytes(header_bytes("coin", spec, channels, _n_tensors(spec)), n_params(spec, channels), bits)

    if field_width is not None:
        return Plan("coin", field_spec("siren", field_width, depth, **spec_options), bits)
    budget = math.floor(bpp * pixels / 8)
    fitting = [wd for wd in range(2, max_width + 1) if size(wd) <= budget]
    if not fitting:
        raise InputError(f"--bpp {bpp} is below the smallest rate a COIN code reaches for this {width}x{height} "
                         f"image: {_bpp(size(2), pixels):.4f} bpp (a width-2 SIREN at {bits} bits)")
    return Plan("coin", field_spec("siren", fitting[-1], depth, **spec_options), bits, budget_bytes=budget)
