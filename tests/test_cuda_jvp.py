"""The fused value-and-Jacobian MLP (inr.backends.cuda_jvp, kernels/csrc/mlp_jvp.cu) and its
PyTorch twin `mlp_value_and_grad`, against autograd through `mlp_forward` in float64.

Each kernel case runs on the GPU (skipped without CUDA) and in the CPU emulation of the same
sources (tests/cuda_emu), with fresh random inputs and NaN-poisoned output buffers. Checked:
y, J = dy/dx, and the gradients of an eikonal-style loss L = mean(y^2) + mean((|J| - 1)^2) with
respect to x and every parameter (what an SDF fit trains with), elementwise
    |got - ref| <= RTOL * |ref| + ATOL * max|ref| + ABS
RTOL 1e-4; ATOL 1e-5 for y and J (sine: 3e-5, w0 = 30 amplifies float32 rounding), 1e-4 for the
loss gradients (second derivatives, with cancellation); ABS 5e-7 for values that are nearly zero
by cancellation (a sum of O(1) float32 terms is good to about 1e-7 absolute, not relative).
"""
from __future__ import annotations

import os

import pytest
import torch

from inr.nn import MLPSpec, init_mlp_params, mlp_forward
from inr.nn.mlp import mlp_value_and_grad
from test_cuda_mlp import draw_x, make_params, poisoned  # noqa: F401  (fixture)

RTOL, ABS = 1e-4, 5e-7


def reference(x, params, spec):
    """y and J by autograd (double backward for the loss gradients) in float64."""
    x = x.detach().double().requires_grad_(True)
    p = {k: v.detach().double().requires_grad_(True) for k, v in params.items()}
    batch = [v.shape[0] for k, v in p.items() if v.dim() == (3 if k.endswith("weight") else 2)]
    # shared points under per-instance weights: differentiate each instance's copy of x
    xs = x.unsqueeze(0).expand(batch[0], *x.shape) if x.dim() == 2 and batch else x
    y = mlp_forward(xs, p, spec)
    rows = [torch.autograd.grad(y[..., o].sum(), xs, create_graph=True)[0] for o in range(spec.d_out)]
    jac = torch.stack(rows, -2)
    return x, p, y, jac


def eikonal_loss(y, jac):
    return (y ** 2).mean() + ((jac.norm(dim=-1) - 1) ** 2).mean()


def run_jvp_case(device, width=32, act="sine", d_in=3, d_out=1, n_hidden=2, B=None, N=200, x_batched=True,
                 bias=True, seed=None, monkeypatch=None):
    from inr.backends import cuda_jvp

    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    gen = torch.Generator().manual_seed(seed)
    spec = MLPSpec(d_in, (width,) * n_hidden, d_out, activation=act, w0_first=30.0, w0_hidden=30.0, bias=bias)
    params = make_params(spec, B, gen, device)
    p64 = {k: v.double() for k, v in params.items()}
    x_shape = (B if B is not None else 3, N, d_in) if x_batched else (N, d_in)
    x = draw_x(x_shape, spec, p64, gen, device).requires_grad_(True)
    for p in params.values():
        p.requires_grad_(True)
    ctx = f"[seed {seed}] {spec} B={B} N={N} x_batched={x_batched}"
    assert cuda_jvp.supports_value_and_grad(x, params, spec), f"{ctx}: refused"

    y, jac = cuda_jvp.fused_value_and_grad(x, params, spec)
    x64, q64, y_ref, jac_ref = reference(x, params, spec)
    check = lambda name, a, b: _checked(ctx, name, a, b, act)  # noqa: E731
    check("y", y, y_ref)
    check("J", jac, jac_ref)
    got = torch.autograd.grad(eikonal_loss(y, jac), [x, *params.values()])
    ref = torch.autograd.grad(eikonal_loss(y_ref, jac_ref), [x64, *q64.values()])
    for name, a, b in zip(["x", *params], got, ref):
        check(f"dL/d{name}", a, b)


def _checked(ctx, name, got, ref, act):
    assert got is not None, f"{ctx}: {name}: no gradient"
    assert tuple(got.shape) == tuple(ref.shape), f"{ctx}: {name}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    got, ref = got.detach().double().cpu(), ref.detach().double().cpu()
    assert torch.isfinite(got).all(), f"{ctx}: {name}: non-finite values (unwritten elements?)"
    atol = 1e-4 if name.startswith("dL/d") else 3e-5 if act == "sine" else 1e-5
    scale = ref.abs().max()
    excess = (got - ref).abs() / (RTOL * ref.abs() + atol * scale + ABS)
    worst = int(excess.argmax())
    assert excess.max() <= 1, (f"{ctx}: {name}: |got-ref| = {(got - ref).abs().flatten()[worst]:.3g} at flat index "
                               f"{worst} (ref {ref.flatten()[worst]:.6g}, max|ref| {scale:.3g})")


@pytest.mark.parametrize("act", ["sine", "relu", "none"])
@pytest.mark.parametrize("width", [16, 32, 64, 128])
def test_widths_and_activations(kernel_device, poisoned, width, act):  # noqa: F811
    run_jvp_case(kernel_device, width=width, act=act)


@pytest.mark.parametrize("d_in,d_out,N", [(1, 1, 1), (2, 1, 130), (2, 3, 77), (3, 16, 40), (3, 1, 257)])
def test_shapes(kernel_device, poisoned, d_in, d_out, N):  # noqa: F811
    run_jvp_case(kernel_device, width=32, d_in=d_in, d_out=d_out, N=N)


@pytest.mark.parametrize("act", ["sine", "relu"])
def test_per_instance_weights(kernel_device, poisoned, act):  # noqa: F811
    run_jvp_case(kernel_device, width=16, act=act, B=21, N=13)


def test_shared_points_per_instance_weights(kernel_device, poisoned):  # noqa: F811
    run_jvp_case(kernel_device, width=32, B=4, N=90, x_batched=False)


def test_unbatched_points_no_bias_deep(kernel_device, poisoned):  # noqa: F811
    run_jvp_case(kernel_device, width=16, n_hidden=5, N=150, x_batched=False, bias=False)


def test_loss_on_one_output_only(kernel_device, poisoned):  # noqa: F811
    """Gradients when only J (or only y) is used: the other incoming gradient is None."""
    from inr.backends import cuda_jvp

    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    spec = MLPSpec(3, (32, 32), 1, activation="sine", w0_first=10.0, w0_hidden=10.0)
    params = {k: v.requires_grad_() for k, v in make_params(spec, None, gen, kernel_device).items()}
    x = (torch.rand(50, 3, generator=gen).to(kernel_device) * 2 - 1).requires_grad_()
    x64, q64, y_ref, jac_ref = reference(x, params, spec)
    for pick in (lambda y, j: j.norm(dim=-1).sum(), lambda y, j: y.sum()):
        y, jac = cuda_jvp.fused_value_and_grad(x, params, spec)
        got = torch.autograd.grad(pick(y, jac), [x, *params.values()], allow_unused=True, materialize_grads=True)
        ref = torch.autograd.grad(pick(y_ref, jac_ref), [x64, *q64.values()], retain_graph=True, allow_unused=True,
                                  materialize_grads=True)
        for name, a, b in zip(["x", *params], got, ref):
            _checked("one output", name, a, b, "sine")


def test_second_order_through_the_twin(kernel_device):
    """A gradient of the backward (create_graph=True) recomputes through `mlp_value_and_grad`."""
    from inr.backends import cuda_jvp

    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    spec = MLPSpec(2, (16, 16), 1, activation="sine", w0_first=3.0, w0_hidden=1.0)
    params = {k: v.requires_grad_() for k, v in make_params(spec, None, gen, kernel_device).items()}
    x = torch.rand(20, 2, generator=gen).to(kernel_device).requires_grad_()

    def hessian_trace_grad(op):
        y, jac = op(x, params, spec)
        (gx,) = torch.autograd.grad(jac.sum(), x, create_graph=True)
        return torch.autograd.grad(gx.sum(), list(params.values()), allow_unused=True, materialize_grads=True)

    for a, b in zip(hessian_trace_grad(cuda_jvp.fused_value_and_grad), hessian_trace_grad(mlp_value_and_grad)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(b.abs().max()) + 1e-12)


def test_supports(kernel_device):
    from inr.backends import cuda_jvp

    gen = torch.Generator().manual_seed(0)
    ok = MLPSpec(3, (32, 32), 1, activation="sine")
    assert cuda_jvp.supports_value_and_grad(torch.zeros(4, 3, device=kernel_device),
                                            make_params(ok, None, gen, kernel_device), ok)
    for bad in (MLPSpec(4, (32,), 1), MLPSpec(3, (32,), 1, output_activation="sigmoid"),
                MLPSpec(3, (48,), 1), MLPSpec(3, (32,), 17)):
        x = torch.zeros(4, bad.d_in, device=kernel_device)
        assert not cuda_jvp.supports_value_and_grad(x, make_params(bad, None, gen, kernel_device), bad)


# ----------------------------------------------------------------------------------------------
# The PyTorch twin (runs everywhere).

@pytest.mark.parametrize("act,out_act", [("sine", "none"), ("relu", "sigmoid"), ("none", "exp"), ("sine", "sine")])
@pytest.mark.parametrize("batched", [False, True])
def test_twin_matches_autograd(act, out_act, batched):
    gen = torch.Generator().manual_seed(3)
    spec = MLPSpec(3, (16, 16), 2, activation=act, output_activation=out_act, w0_first=5.0, w0_hidden=2.0)
    params = make_params(spec, 4 if batched else None, gen, "cpu")
    x = torch.rand(4, 9, 3, generator=gen) * 2 - 1 if batched else torch.rand(9, 3, generator=gen) * 2 - 1
    p64 = {k: v.double() for k, v in params.items()}
    y, jac = mlp_value_and_grad(x.double(), p64, spec)
    _, _, y_ref, jac_ref = reference(x, params, spec)
    assert torch.allclose(y, y_ref.detach(), atol=1e-12) and torch.allclose(jac, jac_ref.detach(), atol=1e-10)


def test_twin_shared_points_per_instance_weights():
    spec = MLPSpec(2, (8,), 1, activation="sine", w0_first=3.0)
    p = init_mlp_params(spec, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batched = {k: torch.stack([v, 2 * v]) for k, v in p.items()}
    x = torch.rand(5, 2, dtype=torch.float64)
    y, jac = mlp_value_and_grad(x, batched, spec)
    for i, scale in enumerate((1, 2)):
        yi, ji = mlp_value_and_grad(x, {k: scale * v for k, v in p.items()}, spec)
        assert torch.allclose(y[i], yi) and torch.allclose(jac[i], ji)


def test_siren_field_value_and_grad_matches_autograd():
    from inr.fields.siren import SirenConfig, SirenField
    from inr.signals.sdf import sdf_gradient

    field = SirenField(3, 1, SirenConfig(hidden=(32, 32), output_scale=0.5, output_offset=0.1),
                       generator=torch.Generator().manual_seed(0))
    x = torch.rand(10, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1
    y, jac = field.value_and_grad(x)
    f, g = sdf_gradient(field, x)  # autograd on the CPU
    assert torch.allclose(y[..., 0], f) and torch.allclose(jac[..., 0, :], g, rtol=1e-5, atol=1e-6)
