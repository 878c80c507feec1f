"""Dynamic hypernetwork (HyperFields, Babu et al., ICML 2024, arXiv 2310.17075): a conditioning
token from a small transformer over token embeddings, then the target MLP's weights layer by layer,
each layer's head fed [token, stopgrad(mean activation entering that layer)].

    hyper = DynamicHyperNetwork(d_token=384, layers=mlp_layer_targets(mlp, "net."), cfg=DynamicHyperConfig())
    cond = hyper.condition(tokens, mask)                # [B, T, 384] -> [B, d_model]
    params = hyper.generate(cond, mlp_probe(x, mlp.spec, "net."))  # {"net.layers.0.weight": [B, out, in], ...}
    y = mlp(x, params, prefix="net.")                   # every scene in one batched MLP call

What is the paper's:
- the conditioning token: a transformer over the (frozen) sentence encoder's token embeddings;
- one head per target layer, fed the token and the stop-gradient mean activation of the layer before
  (HyperFields' "dynamic" input; the paper's ablation drops it: `dynamic=False`, the static variant);
- weights normalize(base * predicted) (Trans-INR, Chen and Wang 2022: shared base weights modulated
  elementwise by the prediction, each output unit's incoming weights and bias, [W | b], L2-normalised).

What is ours (measured in benchmarks/text_nerf.py, or chosen where the papers are silent):
- a learned gain per output unit after the normalisation (weight normalisation's g, shared by all
  instances), initialised to the base rows' norms: unit rows cap what a layer can output, and a
  NeRF's density head needs large pre-activations;
- heads start at predicted = 1 (zero last-layer weights, unit bias), so every instance starts as the
  base MLP, which training moves; the first layer's "activation before" is the mean MLP input;
- the mean activations enter the head through a LayerNorm-free linear map as they are; with
  `mip=True` the head's input is instead MIP-encoded (`inr.hyper.mip`: cos/sin of a sigmoid-squashed
  input, unit-norm pairs) so its magnitude cannot scale the weights;
- the activations are measured by a probe pass under `torch.no_grad` on the same points (or a
  subsample), so the stop-gradient holds by construction and the MLP itself then runs once, batched.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from inr.backends.activations import apply_activation
from inr.backends.linear import batched_linear
from inr.nn import MLP, MLPSpec

from .mip import mip_encode

Probe = Callable[[dict, int], torch.Tensor]


@dataclass
class DynamicHyperConfig:
    """d_model: conditioning token width; layers, heads: the transformer; head_hidden: widths of
    each per-layer head; dynamic: feed each head the mean activation (False: the static ablation);
    mip: MIP-encode each head's input."""

    d_model: int = 64
    layers: int = 2
    heads: int = 4
    head_hidden: tuple[int, ...] = (64,)
    dynamic: bool = True
    mip: bool = False

    def __post_init__(self):
        self.head_hidden = tuple(int(h) for h in self.head_hidden)
        if self.d_model < 1 or self.layers < 1 or self.heads < 1 or self.d_model % self.heads:
            raise ValueError(f"dynamic hypernetwork: d_model ({self.d_model}) must be a positive multiple of "
                             f"heads ({self.heads}), layers >= 1")


@dataclass(frozen=True)
class LayerTarget:
    """One generated linear layer: `name` is its parameters' prefix ("density_net.layers.0")."""

    name: str
    d_out: int
    d_in: int


def mlp_layer_targets(mlp: MLP, prefix: str) -> list[LayerTarget]:
    """Every layer of `mlp`, in order, named as the field names them (`prefix` + "layers.i")."""
    if not mlp.spec.bias:
        raise ValueError("the dynamic hypernetwork generates [W | b]: the MLP needs biases")
    return [LayerTarget(f"{prefix}layers.{i}", *layer.weight.shape) for i, layer in enumerate(mlp.layers)]


class ConditioningTransformer(nn.Module):
    """Token embeddings [B, T, d_token] (and a validity mask [B, T]) -> one conditioning token
    [B, d_model]: a learned query token prepended to the projected tokens, read after the encoder."""

    def __init__(self, d_token: int, cfg: DynamicHyperConfig):
        super().__init__()
        self.project = nn.Linear(d_token, cfg.d_model)
        self.query = nn.Parameter(torch.randn(1, 1, cfg.d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, dim_feedforward=2 * cfg.d_model, dropout=0.0,
                                           batch_first=True, norm_first=True)
        # nested tensors would take a different (fast) path for padded batches: batched must equal alone
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.d_model)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b = tokens.shape[0]
        h = torch.cat([self.query.expand(b, -1, -1), self.project(tokens)], 1)
        pad = None
        if mask is not None:
            pad = torch.cat([torch.zeros(b, 1, dtype=torch.bool, device=mask.device), ~mask.bool()], 1)
        return self.norm(self.encoder(h, src_key_padding_mask=pad)[:, 0])


class _Head(nn.Module):
    """[token, activation] -> the multiplicative modulation of one layer's [W | b]: [B, out, in + 1]."""

    def __init__(self, d_in: int, hidden: tuple[int, ...], target: LayerTarget):
        super().__init__()
        self.shape = (target.d_out, target.d_in + 1)
        dims = (d_in, *hidden)
        self.body = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.out = nn.Linear(dims[-1], self.shape[0] * self.shape[1])
        with torch.no_grad():  # predicted = 1 at the start: every instance starts as the base weights
            self.out.weight.mul_(0.01)
            self.out.bias.fill_(1.0)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for lin in self.body:
            h = F.leaky_relu(lin(h), 0.01)
        return self.out(h).view(-1, *self.shape)


class DynamicHyperNetwork(nn.Module):
    """Token embeddings -> conditioning token -> per-instance weights of the `layers`, in order.

    `base` ({name + ".weight": [out, in], name + ".bias": [out]}, e.g. a field's own MLP
    parameters) starts the shared base weights; without it they are drawn fresh (He)."""

    def __init__(self, d_token: int, layers: list[LayerTarget], cfg: DynamicHyperConfig | None = None,
                 base: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.cfg = cfg or DynamicHyperConfig()
        self.targets = list(layers)
        if not self.targets:
            raise ValueError("the dynamic hypernetwork needs at least one target layer")
        self.transformer = ConditioningTransformer(d_token, self.cfg)
        self.base = nn.ParameterList()
        self.gain = nn.ParameterList()
        self.heads = nn.ModuleList()
        for t in self.targets:
            if base is not None:
                wb = torch.cat([base[t.name + ".weight"].detach(), base[t.name + ".bias"].detach()[:, None]], 1)
            else:
                wb = torch.cat([torch.randn(t.d_out, t.d_in) * (2.0 / t.d_in) ** 0.5, torch.zeros(t.d_out, 1)], 1)
            self.base.append(nn.Parameter(wb.clone()))
            self.gain.append(nn.Parameter(wb.norm(dim=1).clamp_min(1e-6)))
            d_head = self.cfg.d_model + (t.d_in if self.cfg.dynamic else 0)
            self.heads.append(_Head(2 * d_head if self.cfg.mip else d_head, self.cfg.head_hidden, t))

    def condition(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, d_token] token embeddings (mask [B, T]: True where a token is real) -> [B, d_model]."""
        return self.transformer(tokens, mask)

    def layer(self, k: int, cond: torch.Tensor, activation: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(W [B, out, in], b [B, out]) of layer k: g * normalize(base * head([cond, activation]))."""
        h = cond
        if self.cfg.dynamic:
            if activation is None:
                raise ValueError(f"layer {self.targets[k].name}: the dynamic hypernetwork needs the mean activation")
            h = torch.cat([cond, activation.detach()], -1)  # stop-gradient: the activation is an input only
        if self.cfg.mip:
            h = mip_encode(torch.sigmoid(h))
        wb = F.normalize(self.base[k] * self.heads[k](h), dim=-1) * self.gain[k][:, None]
        return wb[..., :-1], wb[..., -1]

    def generate(self, cond: torch.Tensor, probe: Probe | None = None) -> dict[str, torch.Tensor]:
        """Every target's {name.weight, name.bias} [B, ...] for conditioning tokens [B, d_model].

        `probe(params, k)` returns the mean input activation of layer k [B, in_k] given the
        parameters generated so far (see `mlp_probe`); it runs without gradients (the paper's
        stop-gradient). The static variant needs no probe."""
        params: dict[str, torch.Tensor] = {}
        for k, t in enumerate(self.targets):
            activation = None
            if self.cfg.dynamic:
                if probe is None:
                    raise ValueError("the dynamic hypernetwork needs a probe of the target's activations")
                with torch.no_grad():
                    activation = probe({n: p.detach() for n, p in params.items()}, k).detach()
            params[t.name + ".weight"], params[t.name + ".bias"] = self.layer(k, cond, activation)
        return params


def mlp_probe(x: torch.Tensor, spec: MLPSpec, prefix: str, first: int = 0) -> Probe:
    """The probe of an MLP run on x [B, N, d_in] whose layers are targets first..first+n-1: the
    mean over the N points of the input entering its layer k - first (layer 0: x itself)."""

    def probe(params: dict, k: int) -> torch.Tensor:
        h = x
        for i in range(k - first):
            h = batched_linear(h, params[f"{prefix}layers.{i}.weight"], params[f"{prefix}layers.{i}.bias"])
            act = spec.activation if i < spec.n_layers - 1 else spec.output_activation
            h = apply_activation(h, act, spec.layer_w0(i))
        return h.mean(-2)

    return probe
