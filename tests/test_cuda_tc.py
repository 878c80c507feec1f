"""The tensor-core MLP (`fused_mlp(..., precision="fp16"|"bf16")`, kernels/csrc/mlp_tc.cu).

Each case runs on the GPU (skipped without CUDA) and in the CPU emulation of the same kernel
sources (tests/cuda_emu). Two references, fresh random inputs, every written buffer NaN-poisoned:

1. The kernels' own rounding, in float64: hidden activations, dL/dz and the weights of layers
   >= 1 rounded to the operand type, everything else exact. This checks the logic tightly: 99% of
   the elements within TIGHT[precision] * max|ref| (fp16 2e-3, bf16 4e-3), and every element
   within 10x that. The slack is for values that fp32 accumulation puts on the other side of a
   rounding step (or, for ReLU, of the kink), whose effect later layers carry on; sine nets deeper
   than 2 hidden layers get n_hidden - 1 times the bounds (each layer's w0 gain grows it). An
   indexing or synchronisation bug moves most elements by O(1).
2. The float32 model in float64 (what the user asked for), loosely, as a sanity bound on the
   operand rounding:  rel. L2 error <= LOOSE[precision]   (fp16 3e-2, bf16 1.2e-1), for y and
   for all gradients taken as one vector.
   ReLU gradients get the larger bound. Points where the rounding flips a ReLU unit against the
   float32 model are redrawn (the tight check covers what the kernel computes there).
"""
from __future__ import annotations

import os

import pytest
import torch

from inr.nn import MLPSpec, mlp_forward
from inr.nn.activations import activation_slope, apply_activation
from inr.nn.linear import batched_linear
from test_cuda_mlp import draw_x, eikonal_grads, make_params, poisoned  # noqa: F401  (fixture)

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}
TIGHT = {"fp16": 2e-3, "bf16": 4e-3}
KINK = 1e-4  # ReLU pre-activations of the rounded model closer to 0 than this are redrawn
LOOSE = {"fp16": 3e-2, "bf16": 1.2e-1}
PRECISIONS = tuple(DTYPES)


def rounded_reference(x, params, spec, dtype, dy):
    """y, dL/dx and per-layer (dW, db) in float64 with the tensor-core kernels' roundings."""
    rnd = lambda t: t.to(dtype).double()  # noqa: E731
    L = spec.n_layers
    w = [params[f"layers.{i}.weight"].double() for i in range(L)]
    w = [w[0]] + [rnd(m) for m in w[1:]]
    b = [params[f"layers.{i}.bias"].double() if spec.bias else None for i in range(L)]
    hs, zs, h = [x.double()], [], x.double()
    for i in range(L):
        z = batched_linear(h, w[i], b[i])
        zs.append(z)
        if i < L - 1:
            h = rnd(apply_activation(z, spec.activation, spec.layer_w0(i)))
            hs.append(h)
    y = apply_activation(zs[-1], spec.output_activation, spec.w0_hidden)
    dz = rnd(dy.double() * activation_slope(zs[-1], y, spec.output_activation))
    grads = [None] * L
    for i in range(L - 1, -1, -1):
        h_in = hs[i].expand(*dz.shape[:-1], hs[i].shape[-1])
        dw = dz.transpose(-1, -2) @ h_in
        db = dz.sum(-2)
        if w[i].dim() == 2 and dw.dim() == 3:
            dw, db = dw.sum(0), db.sum(0)
        grads[i] = (dw, db)
        g = dz @ w[i]
        if i == 0:
            dx = g.sum(0) if x.dim() == 2 and g.dim() == 3 else g
        else:
            slope = ((hs[i] > 0).double() if spec.activation == "relu"
                     else activation_slope(zs[i - 1], hs[i], spec.activation, spec.layer_w0(i - 1)))
            dz = rnd(g * slope)
    return y, dx, grads


def _rounded_kinks(x, params, spec, dtype):
    """[.., N] mask of points where a ReLU decision is fragile: a pre-activation of the rounded
    model within KINK of the kink (fp32 accumulation may put it on the other side), or one whose
    sign differs between the rounded and the float32 model (the operand rounding flipped the unit,
    a legitimate disagreement the loose check against the float32 model would count as error)."""
    rnd = lambda t: t.to(dtype).double()  # noqa: E731
    h, h_exact, near = x.double(), x.double(), None
    for i in range(spec.n_layers - 1):
        w = params[f"layers.{i}.weight"].double()
        b = params[f"layers.{i}.bias"].double() if spec.bias else None
        z = batched_linear(h, w if i == 0 else rnd(w), b)
        z_exact = batched_linear(h_exact, w, b)
        m = ((z.abs() < KINK) | ((z > 0) != (z_exact > 0))).any(-1)
        near = m if near is None else near | m
        h, h_exact = rnd(torch.relu(z)), torch.relu(z_exact)
    if x.dim() == 2 and near.dim() == 2:
        near = near.any(0)
    return near


def _redraw_rounded_kinks(x, params, spec, dtype, gen):
    for _ in range(100):
        near = _rounded_kinks(x, params, spec, dtype)
        if not near.any():
            return x
        fresh = (torch.rand(*x.shape, generator=gen) * 2 - 1).to(x.device)
        x = torch.where(near.unsqueeze(-1).expand_as(x), fresh, x)
    raise RuntimeError("could not draw points away from the ReLU kinks")


def _close(ctx, name, got, ref, tol):
    assert got is not None, f"{ctx}: {name}: no gradient"
    assert tuple(got.shape) == tuple(ref.shape), f"{ctx}: {name}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    got = got.detach().double().cpu()
    ref = ref.detach().double().cpu()
    assert torch.isfinite(got).all(), f"{ctx}: {name}: non-finite values (unwritten elements?)"
    err = (got - ref).abs().flatten() / ref.abs().max().clamp_min(1e-30)
    most, worst = float(err.quantile(0.99)), float(err.max())
    assert most <= tol and worst <= 10 * tol, (f"{ctx}: {name}: 99th percentile error {most:.3g}, max {worst:.3g} "
                                               f"of max|ref| (bounds {tol}, {10 * tol})")


def _rel_l2(ctx, name, got, ref, tol):
    err = float((got.detach().double().cpu() - ref.detach().cpu()).norm() / ref.detach().norm().clamp_min(1e-30))
    assert err <= tol, f"{ctx}: {name}: rel. L2 error {err:.3g} > {tol} against the float32 model"


def run_tc_case(device, precision, width=64, act="relu", out_act="none", n_hidden=2, d_in=3, d_out=3, B=None, N=300,
                bias=True, x_batched=True, per_layer_batched=None, x_grad=True, seed=None):
    from inr.backends import cuda

    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    gen = torch.Generator().manual_seed(seed)
    spec = MLPSpec(d_in, (width,) * n_hidden, d_out, activation=act, output_activation=out_act,
                   w0_first=30.0, w0_hidden=30.0, bias=bias)
    params = make_params(spec, B, gen, device, per_layer_batched)
    if out_act == "exp":  # keep exp(z) and its gradient inside fp16's range (65504), as a user must
        params[f"layers.{spec.n_layers - 1}.weight"] *= 0.25
    p64 = {k: v.double() for k, v in params.items()}
    x_shape = (B if B is not None else 4, N, d_in) if x_batched else (N, d_in)
    x = draw_x(x_shape, spec, p64, gen, device)
    if act == "relu":
        x = _redraw_rounded_kinks(x, params, spec, DTYPES[precision], gen)
    x.requires_grad_(x_grad)
    ctx = f"[seed {seed}] {precision} {spec} B={B} N={N} x_batched={x_batched}"
    assert cuda.supports(x, params, spec, precision=precision), f"{ctx}: refused"
    for p in params.values():
        p.requires_grad_(True)

    y = cuda.fused_mlp(x, params, spec, precision=precision)
    dy = torch.randn(y.shape, generator=gen).to(device)
    got = torch.autograd.grad(y, ([x] if x_grad else []) + list(params.values()), dy)

    y_r, dx_r, layer_grads = rounded_reference(x.detach(), params, spec, DTYPES[precision], dy)
    # a value fp32 accumulation rounds to the neighbouring step grows by each deeper sine layer's gain
    tol = TIGHT[precision] * (max(1, n_hidden - 1) if act == "sine" else 1)
    _close(ctx, "y", y, y_r, tol)
    refs = ([dx_r] if x_grad else []) + [g for i in range(spec.n_layers)
                                          for g in (layer_grads[i] if bias else layer_grads[i][:1])]
    names = (["dx"] if x_grad else []) + list(params)
    for name, a, r in zip(names, got, refs):
        _close(ctx, f"d{name}", a, r, tol)

    # Against the float32 model itself: the operand rounding stays within LOOSE.
    x64 = x.detach().double().requires_grad_(x_grad)
    q64 = {k: v.detach().double().requires_grad_(True) for k, v in params.items()}
    y64 = mlp_forward(x64, q64, spec)
    full = torch.autograd.grad(y64, ([x64] if x_grad else []) + list(q64.values()), dy.double())
    _rel_l2(ctx, "y", y, y64, LOOSE[precision])
    # All gradients as one vector: a single small tensor (the bias gradient of one output, summed
    # over a few points) can cancel to near zero, where a per-tensor relative error means nothing.
    grad_tol = LOOSE[precision] * (4 if act == "relu" else 1)
    flat = lambda ts: torch.cat([t.detach().double().cpu().flatten() for t in ts])  # noqa: E731
    _rel_l2(ctx, "all gradients", flat(got), flat(full), grad_tol)


@pytest.mark.parametrize("out_act", ["none", "sigmoid", "exp"])
@pytest.mark.parametrize("act", ["relu", "sine", "none"])
@pytest.mark.parametrize("width", [16, 32, 64, 128])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_widths_and_activations(kernel_device, poisoned, precision, width, act, out_act):  # noqa: F811
    run_tc_case(kernel_device, precision, width=width, act=act, out_act=out_act)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("act", ["relu", "sine"])
def test_per_instance_weights(kernel_device, poisoned, precision, act):  # noqa: F811
    run_tc_case(kernel_device, precision, width=32, act=act, B=37, N=19, d_in=2, d_out=1)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("d_in,d_out,N", [(2, 1, 1), (3, 16, 129), (32, 4, 200), (64, 16, 77)])
def test_shapes(kernel_device, poisoned, precision, d_in, d_out, N):  # noqa: F811
    run_tc_case(kernel_device, precision, width=64, act="relu", d_in=d_in, d_out=d_out, N=N)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_no_bias_deep(kernel_device, poisoned, precision):  # noqa: F811
    run_tc_case(kernel_device, precision, width=16, act="sine", n_hidden=5, bias=False, N=150)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_shared_points_per_instance_weights(kernel_device, poisoned, precision):  # noqa: F811
    run_tc_case(kernel_device, precision, width=32, B=5, N=140, x_batched=False)


@pytest.mark.parametrize("layers", [(False, True, True), (True, True, False)])
def test_mixed_shared_and_per_instance_layers(kernel_device, poisoned, layers):  # noqa: F811
    run_tc_case(kernel_device, "fp16", width=16, B=6, N=150, per_layer_batched=layers)


def test_parameter_gradients_only(kernel_device, poisoned):  # noqa: F811
    run_tc_case(kernel_device, "bf16", width=128, act="sine", B=3, N=100, x_grad=False)


def test_inference_is_deterministic(kernel_device, poisoned):  # noqa: F811
    from inr.backends import cuda

    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    spec = MLPSpec(3, (64, 64), 4, activation="sine", output_activation="sigmoid")
    params = make_params(spec, 3, gen, kernel_device)
    x = torch.rand(3, 200, 3, generator=gen).to(kernel_device) * 2 - 1
    with torch.no_grad():
        y1, y2 = (cuda.fused_mlp(x, params, spec, precision="fp16") for _ in range(2))
    assert torch.equal(y1, y2)


def test_double_backward_recomputes_in_fp32(kernel_device):
    """An eikonal loss through the tensor-core MLP: its backward's graph is the fp32 model's."""
    from inr.backends import cuda

    grads, _ = eikonal_grads(kernel_device)
    tc = grads(lambda *a: cuda.fused_mlp(*a, precision="bf16"))
    for a, b in zip(tc, grads(mlp_forward)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max()))


def test_unknown_precision_is_refused():
    from inr.backends import cuda

    spec = MLPSpec(3, (16,), 1)
    params = make_params(spec, None, torch.Generator().manual_seed(0), "cpu")
    assert not cuda.supports(torch.zeros(4, 3), params, spec, precision="fp8")
    with pytest.raises(ValueError):
        cuda.fused_mlp(torch.zeros(4, 3), params, spec, precision="fp8")
