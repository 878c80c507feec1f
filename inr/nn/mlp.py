"""The field MLP op: a spec, a parameter pack, and one functional forward.

This is the contract the fused kernels implement. Parameters are a flat mapping
``{"layers.{i}.weight": [out, in] or [B, out, in], "layers.{i}.bias": [out] or [B, out]}``;
a leading B gives every instance its own weights (what hypernetworks produce), no B shares them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

import torch
from torch import nn

from .activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, activation_slope, apply_activation
from .linear import batched_linear

Params = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class MLPSpec:
    """Shape and activations of a fully connected network.

    d_in -> hidden[0] -> ... -> hidden[-1] -> d_out. Hidden layers use `activation`;
    with `sine`, the first layer uses `w0_first` and later hidden layers `w0_hidden`.
    The output layer is linear followed by `output_activation` (with `w0_hidden` if sine).
    """

    d_in: int
    hidden: tuple[int, ...]
    d_out: int
    activation: str = "relu"
    output_activation: str = "none"
    w0_first: float = 30.0
    w0_hidden: float = 30.0
    bias: bool = True

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.activation not in HIDDEN_ACTIVATIONS:
            raise ValueError(f"activation must be one of {HIDDEN_ACTIVATIONS}, got {self.activation!r}")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ValueError(f"output_activation must be one of {OUTPUT_ACTIVATIONS}, got {self.output_activation!r}")
        if self.d_in < 1 or self.d_out < 1 or any(h < 1 for h in self.hidden):
            raise ValueError(f"layer widths must be positive: {self.d_in}, {self.hidden}, {self.d_out}")

    @property
    def widths(self) -> list[int]:
        return [self.d_in, *self.hidden, self.d_out]

    @property
    def n_layers(self) -> int:
        return len(self.hidden) + 1

    def layer_w0(self, i: int) -> float:
        """The sine frequency of layer i (only meaningful for sine)."""
        return self.w0_first if i == 0 else self.w0_hidden

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Unbatched shape of every parameter, in layer order."""
        shapes = {}
        w = self.widths
        for i in range(self.n_layers):
            shapes[f"layers.{i}.weight"] = (w[i + 1], w[i])
            if self.bias:
                shapes[f"layers.{i}.bias"] = (w[i + 1],)
        return shapes

    def n_params(self) -> int:
        return sum(int(torch.Size(s).numel()) for s in self.param_shapes().values())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d


def mlp_forward(x: torch.Tensor, params: Params, spec: MLPSpec) -> torch.Tensor:
    """Evaluate the MLP described by `spec` with `params` on `x`.

    x: [N, d_in] or [B, N, d_in]; parameters shared ([out, in]) or per instance ([B, out, in]),
    mixed freely layer by layer. Returns [N, d_out] or [B, N, d_out].

    >>> spec = MLPSpec(2, (16,), 3, activation="sine")
    >>> p = init_mlp_params(spec, "siren")
    >>> mlp_forward(torch.zeros(4, 2), p, spec).shape
    torch.Size([4, 3])
    """
    h = x
    last = spec.n_layers - 1
    for i in range(spec.n_layers):
        h = batched_linear(h, params[f"layers.{i}.weight"], params.get(f"layers.{i}.bias") if spec.bias else None)
        act = spec.activation if i < last else spec.output_activation
        h = apply_activation(h, act, spec.layer_w0(i))
    return h


def mlp_value_and_grad(x: torch.Tensor, params: Params, spec: MLPSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """`mlp_forward` and its Jacobian with respect to x, in one forward pass (forward-mode tangents).

    Returns y [..., d_out] as `mlp_forward` and J [..., d_out, d_in] with J[..., o, k] = dy_o / dx_k.
    Each layer carries the d_in tangents beside the value: z = h W^T + b, dz = dh W^T, then
    h = act(z), dh = act'(z) dz. Differentiable (autograd through the tangents is the first
    derivative of an eikonal loss): the PyTorch twin of the fused value-and-gradient kernel.

    >>> spec = MLPSpec(3, (16, 16), 1, activation="sine")
    >>> y, J = mlp_value_and_grad(torch.zeros(5, 3), init_mlp_params(spec), spec)
    >>> J.shape
    torch.Size([5, 1, 3])
    """
    h, dh = x, None
    last = spec.n_layers - 1
    for i in range(spec.n_layers):
        w, b = _split_layer(params, i, spec)
        z = batched_linear(h, w, b)
        if dh is None:  # d z_0 / d x_k is column k of W_0: [B?, 1, d_in, out]
            dz = w.transpose(-1, -2).unsqueeze(-3)
        else:  # the d_in tangents of each point as rows of one product
            lead = dh.shape[:-3]
            n, d = dh.shape[-3], dh.shape[-2]
            dz = batched_linear(dh.reshape(*lead, n * d, dh.shape[-1]), w).view(*z.shape[:-2], n, d, -1)
        act = spec.activation if i < last else spec.output_activation
        w0 = spec.layer_w0(i)
        h = apply_activation(z, act, w0)
        dh = activation_slope(z, h, act, w0).unsqueeze(-2) * dz
    return h, dh.transpose(-1, -2)


def init_mlp_params(spec: MLPSpec, scheme: str | None = None, generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Fresh unbatched parameters for `spec` (see `inr.nn.init` for the schemes)."""
    from .init import init_layer

    scheme = scheme or ("siren" if spec.activation == "sine" else "he")
    params = {}
    for i in range(spec.n_layers):
        w, b = init_layer(spec, i, scheme, generator=generator, dtype=dtype)
        params[f"layers.{i}.weight"] = w
        if spec.bias:
            params[f"layers.{i}.bias"] = b
    return params


class MLP(nn.Module):
    """`mlp_forward` with its own parameters; `forward(x, params)` lets any of them be replaced
    (for example by per-instance tensors from a hypernetwork)."""

    def __init__(self, spec: MLPSpec, init: str | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList()
        for i in range(spec.n_layers):
            layer = nn.Module()
            w, b = _split_layer(init_mlp_params(spec, init, generator), i, spec)
            layer.weight = nn.Parameter(w)
            layer.bias = nn.Parameter(b) if b is not None else None
            self.layers.append(layer)

    def params(self, override: Params | None = None, prefix: str = "") -> dict[str, torch.Tensor]:
        """Own parameters under the names of `MLPSpec.param_shapes`, with `override[prefix + name]` swapped in."""
        out = {}
        for i, layer in enumerate(self.layers):
            out[f"layers.{i}.weight"] = layer.weight
            if layer.bias is not None:
                out[f"layers.{i}.bias"] = layer.bias
        if override:
            for name in out:
                if prefix + name in override:
                    out[name] = override[prefix + name]
        return out

    def forward(self, x: torch.Tensor, params: Params | None = None, prefix: str = "") -> torch.Tensor:
        from inr.backends import mlp_op

        return mlp_op(x, self.params(params, prefix), self.spec)

    def value_and_grad(self, x: torch.Tensor, params: Params | None = None,
                       prefix: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """(y, dy/dx [..., d_out, d_in]) in one forward pass on the selected backend (see
        `mlp_value_and_grad`): the fused kernel on a GPU, the PyTorch twin elsewhere."""
        from inr.backends import mlp_value_and_grad_op

        return mlp_value_and_grad_op(x, self.params(params, prefix), self.spec)


def _split_layer(params: dict, i: int, spec: MLPSpec):
    return params[f"layers.{i}.weight"], params.get(f"layers.{i}.bias") if spec.bias else None
