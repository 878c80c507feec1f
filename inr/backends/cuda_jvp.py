"""The MLP's value and input Jacobian in one fused pass (kernels/csrc/mlp_jvp.cu), same contract as
`inr.backends.torch_mlp.mlp_value_and_grad`: y [..., d_out] and J [..., d_out, d_in].

Forward-mode tangents: each point carries C = 1 + d_in rows (its value and d/dx_k) through every
layer in one launch. The backward is one launch back through values and tangents (giving dL/dx
and every layer's dL/dz for values and tangents), then per-layer products for the weight
gradients, as the fused MLP does: dW_l = sum over all rows dz_l^T h_{l-1}; layer 0's tangent
rows add sum_points dz_0,k to column k of W_0 (the tangent of x_k is the unit vector e_k).
So an eikonal loss on |J| trains without a double backward. A gradient of this backward
(create_graph=True) recomputes through the PyTorch twin.

Supported: what `cuda.supports` takes, with 1 <= d_in <= 3, hidden activation relu, sine or none
and output activation none (an SDF); otherwise `inr.backends.mlp_value_and_grad_op` uses the twin.
"""
from __future__ import annotations

import torch

from . import cuda
from . import cuda_buffers as buf
from .contracts import MLPSpec, Params
from .flat_params import graph_backward, layer_params
from .torch_mlp import mlp_value_and_grad

MAX_D_IN = 3


def supports_value_and_grad(x: torch.Tensor, params: Params, spec: MLPSpec, build: bool = True) -> bool:
    """Whether `fused_value_and_grad` can evaluate these inputs (see the module docstring)."""
    if not (1 <= spec.d_in <= MAX_D_IN and spec.activation in ("relu", "sine", "none")
            and spec.output_activation == "none"):
        return False
    return cuda.supports(x, params, spec, build=build)


def fused_value_and_grad(x: torch.Tensor, params: Params, spec: MLPSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """`mlp_value_and_grad(x, params, spec)` on the fused kernels."""
    if not supports_value_and_grad(x, params, spec):
        raise ValueError("fused_value_and_grad cannot run these inputs (check supports_value_and_grad)")
    layout = cuda._layout(x, params, spec)
    tensors = layer_params(params, spec)
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(t is not None and t.requires_grad
                                                                      for t in tensors))
    if not needs_grad:
        return _forward(cuda._ext(), x, layout, spec, tensors, train=False)[:2]
    return _FusedJvp.apply(x, spec, layout, *tensors)


def _forward(ext, x, layout, spec, tensors, train):
    """Run the forward kernel: (y, J, x as read, save_h, save_z, (B, N, x_stride))."""
    W, L, C = spec.hidden[0], spec.n_layers, 1 + spec.d_in
    B = layout[0]
    x_c, N, x_stride, lead = cuda._points(x, layout, spec.d_in)
    rows, dev = B * N, x.device
    y = buf.alloc(*lead, spec.d_out, device=dev)
    jac = buf.alloc(*lead, spec.d_out, spec.d_in, device=dev)
    save_h = buf.alloc(L - 1, rows * C, W, device=dev) if train else buf.none(dev)
    save_z = buf.alloc(L - 1, rows * C, W, device=dev) if train and spec.activation == "sine" else buf.none(dev)
    mats, biases = cuda._fwd_mats(ext, tensors[0::2], tensors[1::2], spec)
    ext.mlp_jvp_forward(x_c, x_stride, mats, biases, y, jac, save_h, save_z, B, N, spec.d_in, spec.d_out, W,
                        cuda._ACT[spec.activation], spec.w0_first, spec.w0_hidden)
    return y, jac, x_c, save_h, save_z, (B, N, x_stride)


class _FusedJvp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spec, layout, *tensors):
        y, jac, x_c, save_h, save_z, dims = _forward(cuda._ext(), x, layout, spec, tensors, train=True)
        ctx.spec, ctx.dims, ctx.x_shape = spec, dims, x.shape
        ctx.save_for_backward(x, x_c, save_h, save_z, *tensors)
        return y, jac

    @staticmethod
    def backward(ctx, dy, djac):
        spec, (B, N, x_stride) = ctx.spec, ctx.dims
        x, x_c, save_h, save_z, *tensors = ctx.saved_tensors
        if torch.is_grad_enabled():  # a graph of the gradient is wanted: autograd through the twin
            return graph_backward(x, tensors, spec, (dy, djac), ctx.needs_input_grad, mlp_value_and_grad)
        weights = tensors[0::2]
        W, L, C, d_in, d_out = spec.hidden[0], spec.n_layers, 1 + spec.d_in, spec.d_in, spec.d_out
        rows, dev = B * N, x.device
        dy = torch.zeros(rows, d_out, device=dev) if dy is None else dy.reshape(rows, d_out).contiguous()
        djac = buf.none(dev) if djac is None else djac.reshape(rows, d_out, d_in).contiguous()

        dz = [buf.alloc(rows * C, W, device=dev) for _ in range(L - 1)]
        need_dx = ctx.needs_input_grad[0]
        dx = buf.alloc(rows, d_in, device=dev) if need_dx else buf.none(dev)
        ext = cuda._ext()
        ext.mlp_jvp_backward(dy, djac, save_h, save_z, cuda._bwd_mats(ext, weights, spec), dz, dx, B, N, d_in, d_out,
                             W, cuda._ACT[spec.activation], spec.w0_first, spec.w0_hidden)
        # The output layer's dL/dz is the incoming gradient itself: value row dy, tangent rows dJ.
        d_jac_rows = djac.transpose(1, 2) if djac.numel() else torch.zeros(rows, d_in, d_out, device=dev)
        dz.append(torch.cat([dy.unsqueeze(1), d_jac_rows], 1).reshape(rows * C, d_out))

        broadcast_x = x_stride == 0 and B > 1
        grads = []
        for i in range(L):
            w = weights[i]
            per_point = dz[i].view(B, N, C, -1)
            if ctx.needs_input_grad[3 + 2 * i]:
                if i == 0:  # value rows against x, plus each tangent row's sum in column k
                    g = cuda._weight_grad(per_point[:, :, 0].reshape(rows, W), x_c.reshape(-1, d_in), w, B, N,
                                          broadcast_x)
                    tangent = per_point[:, :, 1:].sum(1).transpose(1, 2)  # [B, W, d_in]
                    g = g + (tangent if w.dim() == 3 else tangent.sum(0))
                else:
                    g = cuda._weight_grad(dz[i], save_h[i - 1], w, B, N * C, False)
                grads.append(g)
            else:
                grads.append(None)
            if ctx.needs_input_grad[4 + 2 * i]:
                value = per_point[:, :, 0]  # [B, N, out]: the bias only enters the value rows
                grads.append(value.sum(1) if tensors[2 * i + 1].dim() == 2 else value.sum((0, 1)))
            else:
                grads.append(None)
        dx = cuda._fold_dx(dx, B, N, x_stride, ctx.x_shape) if need_dx else None
        return (dx, None, None, *grads)

