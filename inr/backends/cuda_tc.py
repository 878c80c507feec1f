"""The fused MLP on tensor cores (kernels/csrc/mlp_tc.cu): `cuda.fused_mlp(..., precision="fp16"|"bf16")`.

Hidden and output layers run as 16x16x16 WMMA products with fp16 or bf16 operands and fp32
accumulation; layer 0 (x W_0^T, where coordinates and SIREN's w0 = 30 need the precision) and
dL/dx run in fp32. Inputs, parameters, outputs and gradients stay float32 tensors: weights are
rounded to the operand type per call (they are small), saved activations and dL/dz are kept in
it (half the memory traffic of fp32). Weight gradients are dz^T h products of those operands with
fp32 accumulation and fp32 results (`torch.mm(..., out_dtype=torch.float32)` on the GPU), so a
large batch cannot overflow them; bias gradients are fp32 column sums of that dz, formed in the
backward kernel (per block in shared memory, then one atomic per column: their last bits vary
between runs).

Expected accuracy: about the operand type's rounding (2^-11 fp16, 2^-8 bf16) relative to the
layers' typical magnitudes; tests/test_cuda_tc.py states the tolerances per precision.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import cuda
from . import cuda_buffers as buf
from .contracts import MLPSpec
from .flat_params import graph_backward

PRECISIONS = {"fp16": (1, torch.float16), "bf16": (2, torch.bfloat16)}
OUT_PAD = 16  # the output layer is one 16-wide tile


def fused_mlp_tc(x: torch.Tensor, layout, spec: MLPSpec, tensors: list, precision: str) -> torch.Tensor:
    """The tensor-core forward (and its autograd backward) of `cuda.fused_mlp`; `tensors` are
    (weight, bias or None) per layer, `layout` is `cuda._layout`'s answer for these inputs."""
    needs_grad = torch.is_grad_enabled() and (x.requires_grad or any(t is not None and t.requires_grad
                                                                      for t in tensors))
    if not needs_grad:
        return _forward(cuda._ext(), x, layout, spec, tensors, precision, train=False)[0]
    return _FusedTcMLP.apply(x, spec, layout, precision, *tensors)


def _forward(ext, x, layout, spec, tensors, precision, train):
    """Run the forward kernel: (y, x as read, save_h, save_z, (B, N, x_stride), the operand-type
    weights it read, which the backward reads too)."""
    code, dtype = PRECISIONS[precision]
    W, L = spec.hidden[0], spec.n_layers
    B = layout[0]
    x_c, N, x_stride, lead = cuda._points(x, layout, spec.d_in)
    rows, dev = B * N, x.device
    y = buf.alloc(*lead, spec.d_out, device=dev)
    save_h = buf.alloc(L - 1, rows, W, device=dev, dtype=dtype) if train else buf.none(dev)
    save_z = buf.alloc(L - 1, rows, W, device=dev) if train and spec.activation == "sine" else buf.none(dev)
    weights, biases = tensors[0::2], tensors[1::2]
    w0t = buf.aligned(F.pad(weights[0].transpose(-1, -2), (0, 0, 0, cuda._round4(spec.d_in) - spec.d_in)))
    mats = _operand_mats(weights, spec, dtype)
    ext.mlp_tc_forward(x_c, x_stride, w0t, mats, _biases(biases, spec, dev), y, save_h, save_z, B, N, spec.d_in,
                       spec.d_out, W, cuda._ACT[spec.activation], cuda._ACT[spec.output_activation], code,
                       spec.w0_first, spec.w0_hidden)
    return y, x_c, save_h, save_z, (B, N, x_stride), mats


def _operand_mats(weights, spec, dtype):
    """Layers >= 1 in the operand type, torch layout, the last padded to OUT_PAD rows; layer 0 empty."""
    mats = [buf.none(weights[0].device)]
    for i in range(1, spec.n_layers):
        w = weights[i]
        if i == spec.n_layers - 1:
            w = F.pad(w, (0, 0, 0, OUT_PAD - spec.d_out))
        mats.append(buf.aligned(w.to(dtype)))
    return mats


def _biases(biases, spec, device):
    """fp32 biases, the last padded to OUT_PAD; empty (null) where a layer has none."""
    out = []
    for i, b in enumerate(biases):
        if b is None or not b.numel():
            out.append(buf.none(device))
        else:
            out.append((F.pad(b, (0, OUT_PAD - spec.d_out)) if i == spec.n_layers - 1 else b).contiguous())
    return out


class _FusedTcMLP(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spec, layout, precision, *tensors):
        y, x_c, save_h, save_z, dims, mats = _forward(cuda._ext(), x, layout, spec, tensors, precision, train=True)
        ctx.spec, ctx.dims, ctx.x_shape, ctx.precision, ctx.mats = spec, dims, x.shape, precision, mats
        ctx.save_for_backward(x, x_c, y, save_h, save_z, *tensors)
        return y

    @staticmethod
    def backward(ctx, dy):
        spec, (B, N, x_stride), precision = ctx.spec, ctx.dims, ctx.precision
        x, x_c, y, save_h, save_z, *tensors = ctx.saved_tensors
        needs = ctx.needs_input_grad
        if torch.is_grad_enabled():  # a graph of the gradient is wanted: differentiable fp32 recompute
            grads = graph_backward(x, tensors, spec, dy, (needs[0], None, None, *needs[4:]))
            return (grads[0], None, None, None, *grads[3:])
        code, dtype = PRECISIONS[precision]
        weights, biases = tensors[0::2], tensors[1::2]
        W, L, rows, dev = spec.hidden[0], spec.n_layers, B * N, y.device
        dz = [buf.alloc(rows, W, device=dev, dtype=dtype) for _ in range(L - 1)]
        dz.append(buf.alloc(rows, spec.d_out, device=dev, dtype=dtype))
        need_dx = needs[0]
        dx = buf.alloc(rows, spec.d_in, device=dev) if need_dx else buf.none(dev)
        w0 = buf.aligned(F.pad(weights[0], (0, cuda._round4(spec.d_in) - spec.d_in)))
        db = [torch.zeros(b.shape, device=dev) if needs[5 + 2 * i] else buf.none(dev)  # accumulated into
              for i, b in enumerate(biases)]
        ext = cuda._ext()
        ext.mlp_tc_backward(dy.reshape(rows, spec.d_out).contiguous(), y.reshape(rows, spec.d_out), save_h, save_z,
                            w0, ctx.mats, dz, dx, db, B, N, spec.d_in, spec.d_out, W,
                            cuda._ACT[spec.activation], cuda._ACT[spec.output_activation], code, spec.w0_first,
                            spec.w0_hidden)
        broadcast_x = x_stride == 0 and B > 1
        grads = []
        for i in range(L):
            w = weights[i]
            if needs[4 + 2 * i]:
                if i == 0:  # fp32 input: the product in fp32
                    grads.append(cuda._weight_grad(dz[0].float(), x_c.reshape(-1, spec.d_in), w, B, N, broadcast_x))
                else:
                    grads.append(_operand_weight_grad(dz[i], save_h[i - 1], w, B, N))
            else:
                grads.append(None)
            grads.append(db[i] if needs[5 + 2 * i] else None)
        dx = cuda._fold_dx(dx, B, N, x_stride, ctx.x_shape) if need_dx else None
        return (dx, None, None, None, *grads)


def _operand_weight_grad(dz, h, w, B, N):
    """dz^T h with fp16/bf16 operands, fp32 accumulation and an fp32 result: per instance for
    [B, out, in] weights, over every row when shared."""
    if w.dim() == 3:
        return _matmul_f32(dz.view(B, N, -1).transpose(1, 2), h.view(B, N, -1))
    return _matmul_f32(dz.t(), h)


def _matmul_f32(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.is_cuda:  # cuBLAS with fp32 output (no rounding of the sum to the operand type)
        try:
            return (torch.bmm if a.dim() == 3 else torch.mm)(a, b, out_dtype=torch.float32)
        except (RuntimeError, TypeError):  # a PyTorch without out_dtype for these operands
            pass
    return a.float() @ b.float()  # exact operands, fp32 product (also the CPU emulation in the tests)
