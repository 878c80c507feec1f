"""The fused CUDA MLP (inr.backends.cuda) against its PyTorch twin `mlp_forward` in float64.

Every case draws fresh random inputs (the seed is in the failure message), fills every buffer the
kernels write with NaN first (an unwritten element then shows up as NaN), and checks the forward
and the gradients of x, every weight and every bias elementwise:

    |got - ref| <= RTOL * |ref| + ATOL * max|ref|        (RTOL = 1e-4, ATOL = 1e-5)

ReLU is not differentiable at 0, where float32 and float64 can legitimately disagree about the
side of the kink: points with a ReLU pre-activation within KINK of 0 are redrawn.
Each case runs on the GPU (skipped without CUDA) and in the CPU emulation of the same kernel
sources (tests/cuda_emu; the `kernel_device` fixture), so the kernels' logic is tested in CI.
"""
from __future__ import annotations

import math
import os

import pytest
import torch

from inr.backends import cuda_buffers
from inr.nn import MLPSpec, mlp_forward
from inr.nn.init import siren_bounds
from inr.nn.linear import batched_linear

RTOL, ATOL = 1e-4, 1e-5
KINK = 1e-5
WIDTHS = (16, 32, 64, 128)

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def make_params(spec: MLPSpec, B: int | None, gen: torch.Generator, device, per_layer_batched=None):
    """SIREN-scaled uniform weights for sine, He-normal otherwise; non-zero biases (they must
    matter). `per_layer_batched[i]` (default: B is not None) gives layer i a leading B."""
    params = {}
    for i in range(spec.n_layers):
        fan_in, fan_out = spec.widths[i], spec.widths[i + 1]
        batched = (B is not None) if per_layer_batched is None else per_layer_batched[i]
        lead = (B,) if batched else ()
        if spec.activation == "sine":
            bound = siren_bounds(fan_in, i == 0, spec.w0_hidden)
            w = (torch.rand(*lead, fan_out, fan_in, generator=gen) * 2 - 1) * bound
        else:
            w = torch.randn(*lead, fan_out, fan_in, generator=gen) * math.sqrt(2.0 / fan_in)
        params[f"layers.{i}.weight"] = w.to(device)
        if spec.bias:
            b = (torch.rand(*lead, fan_out, generator=gen) * 2 - 1) / math.sqrt(fan_in)
            params[f"layers.{i}.bias"] = b.to(device)
    return params


def _kink_points(x64, p64, spec):
    """Boolean [.., N] mask of points with a ReLU pre-activation within KINK of 0 (any instance)."""
    h, near = x64, None
    last = spec.n_layers - 1
    for i in range(spec.n_layers):
        z = batched_linear(h, p64[f"layers.{i}.weight"], p64.get(f"layers.{i}.bias") if spec.bias else None)
        act = spec.activation if i < last else spec.output_activation
        if act == "relu":
            m = (z.abs() < KINK).any(-1)
            near = m if near is None else near | m
        h = torch.relu(z) if act == "relu" else torch.sin(spec.layer_w0(i) * z) if act == "sine" else z
    if near is None:
        return None
    if x64.dim() == 2 and near.dim() == 2:  # shared points: a kink in any instance counts
        near = near.any(0)
    return near


def draw_x(shape, spec, p64, gen, device):
    """Uniform points in [-1, 1]^d_in, redrawing those that sit on a ReLU kink."""
    x = (torch.rand(*shape, generator=gen) * 2 - 1).to(device)
    for _ in range(100):
        near = _kink_points(x.double(), p64, spec)
        if near is None or not near.any():
            return x
        fresh = (torch.rand(*shape, generator=gen) * 2 - 1).to(device)
        x = torch.where(near.unsqueeze(-1).expand_as(x), fresh, x)
    raise RuntimeError("could not draw points away from the ReLU kinks")


def assert_close(name, got, ref):
    assert got is not None, f"{name}: no gradient"
    assert tuple(got.shape) == tuple(ref.shape), f"{name}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    got, ref = got.detach().double(), ref.detach().double().to(got.device)
    assert torch.isfinite(got).all(), f"{name}: non-finite values (unwritten elements?)"
    scale = ref.abs().max().clamp_min(1e-30)
    excess = (got - ref).abs() / (RTOL * ref.abs() + ATOL * scale)
    worst = int(excess.argmax())
    assert excess.max() <= 1, (f"{name}: |got-ref| = {(got - ref).abs().flatten()[worst]:.3g} at flat index {worst} "
                               f"(ref {ref.flatten()[worst]:.6g}, max|ref| {scale:.3g})")
    return float(((got - ref).norm() / ref.norm().clamp_min(1e-30)))


def run_case(device, width=64, act="relu", out_act="none", n_hidden=2, d_in=3, d_out=3, B=None, N=1000,
             bias=True, x_batched=True, per_layer_batched=None, x_grad=True, w0=(30.0, 30.0), seed=None):
    """One randomized comparison of fused_mlp with mlp_forward in float64. B=None: shared
    parameters. Returns the relative L2 errors (for reporting)."""
    from inr.backends import cuda

    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    gen = torch.Generator().manual_seed(seed)
    spec = MLPSpec(d_in, (width,) * n_hidden, d_out, activation=act, output_activation=out_act,
                   w0_first=w0[0], w0_hidden=w0[1], bias=bias)
    params = make_params(spec, B, gen, device, per_layer_batched)
    p64 = {k: v.double() for k, v in params.items()}
    x_shape = (B if B is not None else 4, N, d_in) if x_batched else (N, d_in)
    x = draw_x(x_shape, spec, p64, gen, device)
    ctx = f"[seed {seed}] {spec} B={B} N={N} x_batched={x_batched}"

    assert cuda._layout(x, params, spec) is not None, f"{ctx}: fused path refused the case"
    x.requires_grad_(x_grad)
    for p in params.values():
        p.requires_grad_(True)
    y = cuda.fused_mlp(x, params, spec)

    x64 = x.detach().double().requires_grad_(x_grad)
    p64 = {k: v.detach().double().requires_grad_(True) for k, v in params.items()}
    y_ref = mlp_forward(x64, p64, spec)
    errors = {"y": _checked(ctx, "y", y, y_ref)}

    dy = torch.randn(y_ref.shape, generator=gen).to(device)
    y.backward(dy)
    y_ref.backward(dy.double())
    if x_grad:
        errors["dx"] = _checked(ctx, "dx", x.grad, x64.grad)
    for k in params:
        errors[k] = _checked(ctx, f"d{k}", params[k].grad, p64[k].grad)
    return errors


def _checked(ctx, name, got, ref):
    try:
        return assert_close(name, got, ref)
    except AssertionError as e:
        raise AssertionError(f"{ctx}: {e}") from None


@pytest.fixture
def poisoned(monkeypatch):
    """Every buffer the kernels write starts as NaN."""
    monkeypatch.setattr(cuda_buffers, "alloc", lambda *shape, device, dtype=torch.float32: torch.full(shape, float("nan"), device=device, dtype=dtype))


# ----------------------------------------------------------------------------------------------
# GPU cases.

@pytest.mark.parametrize("out_act", ["none", "sigmoid", "exp", "relu"])
@pytest.mark.parametrize("act", ["relu", "sine", "none"])
@pytest.mark.parametrize("width", WIDTHS)
def test_widths_and_activations(kernel_device, poisoned, width, act, out_act):
    run_case(kernel_device, width=width, act=act, out_act=out_act, N=1000)


@pytest.mark.parametrize("act", ["relu", "sine"])
@pytest.mark.parametrize("width", WIDTHS)
def test_no_bias(kernel_device, poisoned, width, act):
    run_case(kernel_device, width=width, act=act, bias=False, N=333)


@pytest.mark.parametrize("act", ["relu", "sine", "none"])
@pytest.mark.parametrize("width", WIDTHS)
def test_per_instance_weights(kernel_device, poisoned, width, act):
    run_case(kernel_device, width=width, act=act, B=257, N=37, d_in=2, d_out=1)


@pytest.mark.parametrize("N", [1, 1000])
@pytest.mark.parametrize("d_out", [1, 3, 16])
@pytest.mark.parametrize("d_in", [2, 3, 63])
def test_shapes(kernel_device, poisoned, d_in, d_out, N):
    run_case(kernel_device, width=64, act="sine", d_in=d_in, d_out=d_out, N=N, w0=(30.0, 1.0))


@pytest.mark.parametrize("width", [16, 128])
def test_wide_input(kernel_device, poisoned, width):
    run_case(kernel_device, width=width, d_in=64, d_out=16, B=3, N=130)


@pytest.mark.parametrize("n_hidden", [1, 5])
@pytest.mark.parametrize("width", [32, 128])
def test_depth(kernel_device, poisoned, width, n_hidden):
    run_case(kernel_device, width=width, act="sine", n_hidden=n_hidden, N=500)


@pytest.mark.parametrize("width", [16, 128])
def test_one_instance_with_batch_dim(kernel_device, poisoned, width):
    run_case(kernel_device, width=width, act="sine", B=1, N=1000)


def test_single_point_many_instances(kernel_device, poisoned):
    run_case(kernel_device, width=32, B=257, N=1)


def test_many_instances(kernel_device, poisoned):
    run_case(kernel_device, width=64, act="sine", B=1024, N=64)


def test_shared_points_per_instance_weights(kernel_device, poisoned):
    """x [N, d_in] broadcast over per-instance weights (hypernetwork output on one point set)."""
    run_case(kernel_device, width=32, B=5, N=200, x_batched=False)


@pytest.mark.parametrize("layers", [(False, True, True), (True, False, True), (True, True, False)])
def test_mixed_shared_and_per_instance_layers(kernel_device, poisoned, layers):
    run_case(kernel_device, width=16, n_hidden=2, B=6, N=150, per_layer_batched=layers)


def test_unbatched_points_shared_weights(kernel_device, poisoned):
    run_case(kernel_device, width=64, act="relu", N=777, x_batched=False)


def test_parameter_gradients_only(kernel_device, poisoned):
    run_case(kernel_device, width=128, act="sine", B=3, N=100, x_grad=False)


def test_inference_matches_and_is_deterministic(kernel_device, poisoned):
    from inr.backends import cuda

    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    spec = MLPSpec(3, (64, 64, 64), 4, activation="sine", output_activation="sigmoid")
    params = make_params(spec, 9, gen, kernel_device)
    x = torch.rand(9, 500, 3, generator=gen).to(kernel_device) * 2 - 1
    with torch.no_grad():
        y1, y2 = cuda.fused_mlp(x, params, spec), cuda.fused_mlp(x, params, spec)
    assert torch.equal(y1, y2), "two runs on the same inputs differ: a race?"
    assert_close("y", y1, mlp_forward(x.double(), {k: v.double() for k, v in params.items()}, spec))


def eikonal_grads(device):
    """grads(op): the gradients (x, then every parameter) of an eikonal loss through op, a
    `mlp_forward`-shaped MLP op, on one fresh random SIREN-like case on `device`."""
    spec = MLPSpec(3, (32, 32), 1, activation="sine", w0_first=3.0, w0_hidden=1.0)
    gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    params = {k: v.requires_grad_() for k, v in make_params(spec, None, gen, device).items()}
    x = torch.rand(100, 3, generator=gen).to(device).requires_grad_()

    def grads(op):
        y = op(x, params, spec)
        (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        loss = (gx.norm(dim=-1) - 1).pow(2).mean()
        return torch.autograd.grad(loss, [x, *params.values()], allow_unused=True, materialize_grads=True)

    return grads, ["x", *params]


def test_double_backward_matches_reference(kernel_device):
    """An eikonal loss through the fused MLP (its backward recomputes through the reference)."""
    from inr.backends import cuda

    grads, names = eikonal_grads(kernel_device)
    for name, a, b in zip(names, grads(cuda.fused_mlp), grads(mlp_forward)):
        assert_close(name, a, b.double())


@gpu
def test_supports():
    from inr.backends import cuda

    gen = torch.Generator().manual_seed(0)
    spec = MLPSpec(3, (64, 64), 3)
    params = make_params(spec, None, gen, "cuda")
    x = torch.rand(10, 3, device="cuda")
    assert cuda.supports(x, params, spec)
    assert not cuda.supports(x.cpu(), {k: v.cpu() for k, v in params.items()}, spec)
    assert not cuda.supports(x.double(), {k: v.double() for k, v in params.items()}, spec)
    for bad in [MLPSpec(3, (48, 48), 3), MLPSpec(3, (64, 32), 3), MLPSpec(3, (64,), 17), MLPSpec(65, (64,), 3),
                MLPSpec(3, (64, 64), 3, output_activation="sine"), MLPSpec(3, (), 3)]:
        assert not cuda.supports(torch.rand(10, bad.d_in, device="cuda"), make_params(bad, None, gen, "cuda"), bad)
    batched = make_params(spec, 4, gen, "cuda")
    assert cuda.supports(torch.rand(4, 10, 3, device="cuda"), batched, spec)
    assert not cuda.supports(torch.rand(5, 10, 3, device="cuda"), batched, spec)  # B mismatch
    with pytest.raises(ValueError):
        cuda.fused_mlp(torch.rand(5, 10, 3, device="cuda"), batched, spec)
