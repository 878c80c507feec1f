"""The "torch" backend of the field MLP: the plain PyTorch op every other backend is checked against.

`mlp_forward` is the contract the fused kernels implement (see `contracts.MLPSpec` and `Params`);
`mlp_value_and_grad` is the PyTorch twin of the fused value-and-Jacobian kernel. Both run on any
device and are differentiable to any order.
"""
from __future__ import annotations

import torch

from .activations import activation_slope, apply_activation
from .contracts import MLPSpec, Params
from .linear import batched_linear


def weight_and_bias(params: Params, i: int, spec: MLPSpec) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight, bias or None) of layer i."""
    return params[f"layers.{i}.weight"], params.get(f"layers.{i}.bias") if spec.bias else None


def mlp_forward(x: torch.Tensor, params: Params, spec: MLPSpec) -> torch.Tensor:
    """Evaluate the MLP described by `spec` with `params` on `x`.

    x: [N, d_in] or [B, N, d_in]; parameters shared ([out, in]) or per instance ([B, out, in]),
    mixed freely layer by layer. Returns [N, d_out] or [B, N, d_out].

    >>> spec = MLPSpec(2, (16,), 3, activation="sine")
    >>> p = {name: torch.randn(shape) for name, shape in spec.param_shapes().items()}
    >>> mlp_forward(torch.zeros(4, 2), p, spec).shape
    torch.Size([4, 3])
    """
    h = x
    last = spec.n_layers - 1
    for i in range(spec.n_layers):
        h = batched_linear(h, *weight_and_bias(params, i, spec))
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
    >>> p = {name: torch.randn(shape) for name, shape in spec.param_shapes().items()}
    >>> y, J = mlp_value_and_grad(torch.zeros(5, 3), p, spec)
    >>> J.shape
    torch.Size([5, 1, 3])
    """
    h, dh = x, None
    last = spec.n_layers - 1
    for i in range(spec.n_layers):
        w, b = weight_and_bias(params, i, spec)
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
