"""The hypernetwork: a conditioning vector z -> an MLP body -> output heads -> named tensors.

Heads are one linear layer over all outputs, or, for large targets, a chunked head (Ha et al.'s
weight chunking): one small linear layer shared by every chunk of `chunk_size` outputs, fed the
body's features and a learned embedding of the chunk. Either way each output has its own learned
bias, which is where MIP keeps theta_0 (as hyperlight does).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .mip import mip_encode
from .modes import MODES, output_bias_init, output_gain

INITS = ("mip", "siren", "torch")
BODY_ACTIVATIONS = ("leaky_relu", "relu")


@dataclass
class HyperConfig:
    """A hypernetwork over a field.

    mode:       full (every target weight), film (per-layer scale and shift), shift (Functa's
                shift-only modulation), lowrank (theta_0 + U V^T per weight, rank `rank`)
    mip:        Magnitude Invariant Parametrization: cos/sin input encoding of z in [0, 1], additive
                output theta_0 + h(z), small-output head init (see `inr.hyper.mip`)
    init:       the head's initialisation: "mip", "siren" (SIREN paper: Kaiming / 100, biases like
                the target's fan-in), "torch" (nn.Linear's default); None picks mip or siren by `mip`
    targets:    "all" or glob patterns over the field's parameter names; last_k keeps the last k layers
    hidden:     widths of the body MLP
    chunk_size: outputs per chunk of a chunked head (None: one linear head over all outputs)
    """

    mode: str = "full"
    mip: bool = True
    init: str | None = None
    targets: tuple[str, ...] = ("all",)
    last_k: int | None = None
    hidden: tuple[int, ...] = (256, 256)
    activation: str = "leaky_relu"
    rank: int = 4
    chunk_size: int | None = None
    chunk_dim: int = 32

    def __post_init__(self):
        self.targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.mode not in MODES:
            raise ValueError(f"hypernetwork mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.init is not None and self.init not in INITS:
            raise ValueError(f"hypernetwork init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.activation not in BODY_ACTIVATIONS:
            raise ValueError(f"hypernetwork activation must be one of {', '.join(BODY_ACTIVATIONS)}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"the hypernetwork needs at least one hidden layer, got {self.hidden}")

    @property
    def init_scheme(self) -> str:
        return self.init or ("mip" if self.mip else "siren")


def _init_linear(layer: nn.Linear, scheme: str, nonlinearity: str, generator) -> None:
    """Weights: mip -> Kaiming-normal over the fan-out (hyperlight's default); siren -> Kaiming-normal
    over the fan-in; torch -> left as nn.Linear made them. Biases zero except for torch."""
    if scheme == "torch":
        return
    fan_out, fan_in = layer.weight.shape
    gain = nn.init.calculate_gain(nonlinearity, 0.01) if nonlinearity != "linear" else 1.0
    std = gain / math.sqrt(fan_out if scheme == "mip" else fan_in)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
        if layer.bias is not None:
            layer.bias.zero_()


class HyperNetwork(nn.Module):
    """z [B, d_cond] -> {name: [B, *shape]} for the `outputs` shapes.

    `targets` (from `select_targets`) give MIP and SIREN inits their target's fan-in and scheme.
    """

    def __init__(self, d_cond: int, outputs: dict[str, tuple[int, ...]], cfg: HyperConfig, targets: dict,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.cfg, self.d_cond = cfg, d_cond
        self.shapes = dict(outputs)
        self.sizes = [math.prod(s) for s in self.shapes.values()]
        self.n_outputs = sum(self.sizes)
        scheme = cfg.init_scheme
        nonlin = "leaky_relu" if cfg.activation == "leaky_relu" else "relu"
        d = 2 * d_cond if cfg.mip else d_cond
        layers = []
        for width in cfg.hidden:
            lin = nn.Linear(d, width)
            _init_linear(lin, scheme, nonlin, generator)
            layers.append(lin)
            d = width
        self.body = nn.ModuleList(layers)
        hidden = cfg.hidden[-1]
        if cfg.chunk_size is None:
            self.head = nn.Linear(hidden, self.n_outputs, bias=False)
            self.n_chunks = 1
        else:
            self.n_chunks = math.ceil(self.n_outputs / cfg.chunk_size)
            self.chunk_embedding = nn.Parameter(torch.randn(self.n_chunks, cfg.chunk_dim, generator=generator))
            self.head = nn.Linear(hidden + cfg.chunk_dim, cfg.chunk_size, bias=False)
        if scheme == "siren":  # the SIREN paper: Kaiming (fan-in, ReLU) / 100 on the last layer
            _init_linear(self.head, "siren", "relu", generator)
            with torch.no_grad():
                self.head.weight.div_(100.0)
        else:
            _init_linear(self.head, scheme, "linear", generator)
        bias = [output_bias_init(cfg.mode, targets, n, s, scheme, hidden, generator).reshape(-1)
                for n, s in self.shapes.items()]
        self.output_bias = nn.Parameter(torch.cat(bias))
        gain = [torch.full((math.prod(s),), output_gain(cfg.mode, targets, n) if scheme == "mip" else 1.0)
                for n, s in self.shapes.items()]
        self.register_buffer("output_gain", torch.cat(gain))

    def features(self, z: torch.Tensor) -> torch.Tensor:
        h = mip_encode(z) if self.cfg.mip else z
        for lin in self.body:
            h = lin(h)
            h = F.leaky_relu(h, 0.01) if self.cfg.activation == "leaky_relu" else torch.relu(h)
        return h

    def flat(self, z: torch.Tensor) -> torch.Tensor:
        """All outputs of each instance, concatenated: [B, n_outputs]."""
        h = self.features(z)
        if self.cfg.chunk_size is None:
            out = self.head(h)
        else:
            b = h.shape[0]
            emb = self.chunk_embedding.unsqueeze(0).expand(b, -1, -1)
            inp = torch.cat([h.unsqueeze(1).expand(-1, self.n_chunks, -1), emb], dim=-1)
            out = self.head(inp).reshape(b, -1)[:, : self.n_outputs]
        return out * self.output_gain + self.output_bias

    def forward(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        if z.dim() != 2 or z.shape[1] != self.d_cond:
            raise ValueError(f"conditioning must be [B, {self.d_cond}], got {tuple(z.shape)}")
        flat = self.flat(z)
        return {n: part.reshape(z.shape[0], *s)
                for (n, s), part in zip(self.shapes.items(), flat.split(self.sizes, dim=1))}

    def initial_outputs(self) -> dict[str, torch.Tensor]:
        """What the head emits while its weights are zero: theta_0 under MIP (full mode)."""
        return {n: part.reshape(s) for (n, s), part in zip(self.shapes.items(), self.output_bias.split(self.sizes))}
