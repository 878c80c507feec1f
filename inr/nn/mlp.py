"""The field MLP as a module: fresh parameters for a spec, and `MLP`, which owns them and runs the
op on the selected backend.

The op's contract (`MLPSpec`, the parameter pack `Params`) lives at the bottom of the stack in
`inr.backends.contracts`, and the plain PyTorch op (`mlp_forward`, `mlp_value_and_grad`) is the
"torch" backend (`inr.backends.torch_mlp`); both are re-exported here, where callers have always
found them. Parameters are a flat mapping
``{"layers.{i}.weight": [out, in] or [B, out, in], "layers.{i}.bias": [out] or [B, out]}``;
a leading B gives every instance its own weights (what hypernetworks produce), no B shares them.

>>> spec = MLPSpec(2, (16,), 3, activation="sine")
>>> mlp_forward(torch.zeros(4, 2), init_mlp_params(spec, "siren"), spec).shape
torch.Size([4, 3])
"""
from __future__ import annotations

import torch
from torch import nn

from inr.backends import mlp_op, mlp_value_and_grad_op
from inr.backends.contracts import MLPSpec, Params
from inr.backends.torch_mlp import mlp_forward, mlp_value_and_grad, weight_and_bias

from .init import init_layer

__all__ = ["MLP", "MLPSpec", "Params", "init_mlp_params", "mlp_forward", "mlp_value_and_grad"]


def init_mlp_params(spec: MLPSpec, scheme: str | None = None, generator: torch.Generator | None = None,
                    dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Fresh unbatched parameters for `spec` (see `inr.nn.init` for the schemes)."""
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
            w, b = weight_and_bias(init_mlp_params(spec, init, generator), i, spec)
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
        return mlp_op(x, self.params(params, prefix), self.spec)

    def value_and_grad(self, x: torch.Tensor, params: Params | None = None,
                       prefix: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """(y, dy/dx [..., d_out, d_in]) in one forward pass on the selected backend (see
        `mlp_value_and_grad`): the fused kernel on a GPU, the PyTorch twin elsewhere."""
        return mlp_value_and_grad_op(x, self.params(params, prefix), self.spec)

