"""How a hypernetwork's outputs become a field's parameters: full weights, FiLM, shift-only (Functa)
or low-rank updates.

Each mode says what it generates (`outputs`: name -> shape) and how those outputs and the shared
base parameters theta_0 (the field's own) assemble into per-instance parameters [B, *shape].
"""
from __future__ import annotations

import math

import torch

from inr.nn.init import init_layer

from .targets import Target

MODES = ("full", "film", "shift", "lowrank")


def _hidden_layers(targets: dict[str, Target]) -> dict[str, Target]:
    """FiLM modulates hidden layers only: one entry per selected hidden layer, keyed by its weight."""
    out = {}
    for name, t in targets.items():
        if t.is_weight and t.layer < t.spec.n_layers - 1:
            out[name] = t
    if not out:
        raise ValueError("FiLM and shift modulation need at least one hidden layer among the targets "
                         "(the output layer is not modulated)")
    return out


def _layer_prefix(weight_name: str) -> str:
    return weight_name[: -len("weight")]


def mode_outputs(mode: str, targets: dict[str, Target], rank: int) -> dict[str, tuple[int, ...]]:
    """name -> unbatched shape of every tensor the hypernetwork emits in `mode`."""
    if mode == "full":
        return {n: t.shape for n, t in targets.items()}
    if mode in ("film", "shift"):
        out = {}
        for n, t in _hidden_layers(targets).items():
            p = _layer_prefix(n)
            if mode == "film":
                out[p + "scale"] = (t.shape[0],)
            out[p + "shift"] = (t.shape[0],)
        return out
    if mode == "lowrank":
        if rank < 1:
            raise ValueError(f"low-rank updates need rank >= 1, got {rank}")
        out = {}
        for n, t in targets.items():
            if t.is_weight:
                out[n + ".u"] = (t.shape[0], rank)
                out[n + ".v"] = (t.shape[1], rank)
            else:
                out[n + ".delta"] = t.shape
        return out
    raise ValueError(f"unknown hypernetwork mode {mode!r}; expected one of {', '.join(MODES)}")


def output_bias_init(mode: str, targets: dict[str, Target], name: str, shape: tuple[int, ...], scheme: str,
                     hidden: int, generator: torch.Generator | None) -> torch.Tensor:
    """Initial value of the head's output bias for output `name` (what the hypernetwork emits while
    its output weights are zero).

    full + mip: theta_0, a fresh draw of the target's own initialisation (SIREN or He).
    full + siren (the SIREN paper's hypernetwork): U(-1/n, 1/n) with n the target layer's fan-in for
    weights, the head's fan-in for biases. Modulations start at the identity (zero scale and shift,
    zero U); V starts random so U receives gradient, as in LoRA.
    """
    if mode == "full":
        t = targets[name]
        if scheme == "mip":
            draw = init_layer(t.spec, t.layer, "siren" if t.spec.activation == "sine" else "he", generator=generator)
            return draw[0 if t.is_weight else 1].clone()
        if scheme == "siren":
            bound = 1.0 / (t.fan_in if t.is_weight else hidden)
            return (torch.rand(shape, generator=generator) * 2 - 1) * bound
        bound = 1.0 / math.sqrt(hidden)  # torch: nn.Linear's default bias
        return (torch.rand(shape, generator=generator) * 2 - 1) * bound
    if mode == "lowrank" and name.endswith(".v"):
        return torch.randn(shape, generator=generator) / math.sqrt(shape[0])
    return torch.zeros(shape)


def output_gain(mode: str, targets: dict[str, Target], name: str) -> float:
    """MIP's per-output scale of h(z): the size of each target's initialisation as its layer sees
    it, so h starts small relative to every target and Adam's steps on the head move each target by
    a similar share of its scale. For a sine layer sin(w0 (W x + b)) what matters is w0 W and w0 b:
    SIREN's hidden weights already carry the 1/w0 (std sqrt(2/n)/w0), the first layer's weights
    (std 1/(n sqrt 3)) and every sine layer's biases get it here. Without this a perturbation the
    size of a ReLU net's weights scrambles the sine layers (MIP stayed at 14 dB on textures)."""
    if mode != "full":
        return 1.0
    t = targets[name]
    if t.spec.activation != "sine":
        return math.sqrt(2.0 / t.fan_in) if t.is_weight else 1.0 / math.sqrt(t.fan_in)
    last = t.layer == t.spec.n_layers - 1
    if t.is_weight:
        if t.layer == 0:
            return 1.0 / t.fan_in / math.sqrt(3.0) / t.spec.w0_first
        return math.sqrt(6.0 / t.fan_in) / t.spec.w0_hidden / math.sqrt(3.0)
    sine = not last or t.spec.output_activation == "sine"
    return 1.0 / math.sqrt(t.fan_in) / math.sqrt(3.0) / (t.spec.layer_w0(t.layer) if sine else 1.0)


def assemble(mode: str, outputs: dict[str, torch.Tensor], base: dict[str, torch.Tensor],
             targets: dict[str, Target]) -> dict[str, torch.Tensor]:
    """Per-instance parameters {field name: [B, *shape]} from the hypernetwork's `outputs`
    ([B, *shape] each) and the shared base parameters theta_0 (`base`, the field's own)."""
    if mode == "full":
        return dict(outputs)
    params = {}
    if mode in ("film", "shift"):
        for n in _hidden_layers(targets):
            p = _layer_prefix(n)
            w, b = base[n], base.get(p + "bias")
            shift = outputs[p + "shift"]
            if mode == "film":
                gain = 1.0 + outputs[p + "scale"]  # (1 + s)(W x + b) + t: identity at s = t = 0
                params[n] = gain.unsqueeze(-1) * w
                params[p + "bias"] = shift + (gain * b if b is not None else 0.0)
            else:
                params[p + "bias"] = shift + (b if b is not None else 0.0)
        return params
    for n, t in targets.items():  # lowrank: theta = theta_0 + U V^T (biases: theta_0 + delta)
        if t.is_weight:
            params[n] = base[n] + outputs[n + ".u"] @ outputs[n + ".v"].transpose(-1, -2)
        else:
            params[n] = base[n] + outputs[n + ".delta"]
    return params
