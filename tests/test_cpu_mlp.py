"""The C++ CPU MLP (inr.backends.cpu_mlp) against `mlp_forward`.

Tolerance story. The kernel sums in float32 in its own order (6 x 16 register tiles, chunks of
points), so it cannot match float32 PyTorch bitwise. References are `mlp_forward` in float64 on
the same (float32-representable) inputs; the kernel's error w.r.t. that must be within 4x the
float32 PyTorch op's own error (8x for sine nets, whose sin/cos is 2.6x less accurate than
torch.sin's) plus a floor of 1e-5 (values) / 1e-4 (gradients) times max|ref|.
Sine nets with w0 = 30 amplify rounding the most; the bound scales with the float32 op's error.
The kernel's own sin/cos (AVX2 polynomial) is checked directly against float64: within 1.5e-7
absolute for |t| up to 1e5 (measured 9.3e-8; float32 torch.sin is within 6e-8).
Per-instance weights [B, out, in] are checked the same way (values, dL/dx, per-instance dL/dW).
Tests skip, with the loader's reason, when the extension cannot be built.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from inr.backends import Backend, cpu_mlp, mlp_op
from inr.nn import MLPSpec, init_mlp_params, mlp_forward
from inr.nn.activations import apply_activation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", autouse=True)
def ext():
    from kernels.cpu_loader import MLP, load_cpu_mlp

    mod = load_cpu_mlp()
    if mod is None:
        pytest.skip(f"C++ CPU MLP extension unavailable: {MLP.last_error()}")
    yield mod
    mod.set_simd(-1)


def _seed() -> int:
    return int.from_bytes(os.urandom(4), "little")


def _inputs(spec: MLPSpec, shape, seed: int, instances: int = 0, x_shared: bool = False):
    """x [*shape, d_in], params, gy; with `instances` B > 0 every weight is per instance [B, ...]
    (the shared initialisation plus noise), shape is (B, N), and x is [N, d_in] if `x_shared`."""
    gen = torch.Generator().manual_seed(seed)
    params = init_mlp_params(spec, generator=gen)
    if spec.bias:  # non-zero biases, so their gradients and the bias path are exercised
        params = {k: (v + 0.1 * torch.randn(v.shape, generator=gen)) if "bias" in k else v for k, v in params.items()}
    if instances:
        params = {k: v + 0.02 * v.abs().mean() * torch.randn(instances, *v.shape, generator=gen)
                  for k, v in params.items()}
    x = torch.rand(*(shape[1:] if x_shared else shape), spec.d_in, generator=gen) * 2 - 1
    x = _away_from_relu_kinks(x, params, spec, gen)
    gy = torch.randn(*shape, spec.d_out, generator=gen)
    return x, params, gy


def _away_from_relu_kinks(x, params, spec, gen, margin=1e-5):
    """Redraw points whose float64 pre-activation of a ReLU is within `margin` of 0: float32 sums
    in another order may flip the mask there (seen: |z| = 8.5e-9 gave a 0.1 error in dL/dx), and
    that is a property of the point, not an error of the kernel."""
    acts = [spec.activation] * (spec.n_layers - 1) + [spec.output_activation]
    if "relu" not in acts:
        return x
    for _ in range(20):
        h, bad = x.double(), torch.zeros(x.shape[:-1], dtype=torch.bool)
        for i, act in enumerate(acts):
            w = params[f"layers.{i}.weight"].double()
            h = h @ w.transpose(-1, -2)
            if spec.bias:
                b = params[f"layers.{i}.bias"].double()
                h = h + (b.unsqueeze(-2) if b.dim() == 2 else b)
            if act == "relu":
                near = (h.abs() < margin).any(-1)
                bad |= near.any(0) if near.dim() > bad.dim() else near  # x shared by instances
            h = apply_activation(h, act, spec.layer_w0(i))
        if not bad.any():
            return x
        x = x.clone()
        x[bad] = torch.rand(int(bad.sum()), spec.d_in, generator=gen) * 2 - 1
    return x


def _run(op, x, params, spec, gy, need_x=True, need_w=True):
    x = x.clone().requires_grad_(need_x)
    params = {k: v.clone().requires_grad_(need_w) for k, v in params.items()}
    y = op(x, params, spec)
    wrt = ([x] if need_x else []) + (list(params.values()) if need_w else [])
    return [y.detach(), *torch.autograd.grad(y, wrt, gy)]


def _check(spec, shape, seed, need_x=True, need_w=True, chunk=cpu_mlp.CHUNK, instances=0, x_shared=False):
    x, params, gy = _inputs(spec, shape, seed, instances, x_shared)
    got = _run(lambda *a: cpu_mlp.mlp_cpu(*a, chunk=chunk), x, params, spec, gy, need_x, need_w)
    f32 = _run(mlp_forward, x, params, spec, gy, need_x, need_w)
    ref = _run(mlp_forward, x.double(), {k: v.double() for k, v in params.items()}, spec, gy.double(), need_x, need_w)
    names = ["forward"] + (["x grad"] if need_x else []) + (list(params) if need_w else [])
    assert len(got) == len(ref) == len(names)
    for name, g, f, r in zip(names, got, f32, ref):
        assert g.shape == r.shape and g.dtype == torch.float32, name
        scale = r.abs().max().item()
        floor = (1e-5 if name == "forward" else 1e-4) * scale
        err, err32 = (g.double() - r).abs().max().item(), (f.double() - r).abs().max().item()
        # sine: the kernel's sin/cos is within 9.3e-8 of float64 (torch.sin 3.6e-8), so 8x there
        factor = 8 if "sine" in (spec.activation, spec.output_activation) else 4
        assert err <= factor * err32 + floor, (f"{name} (seed {seed}, {spec}): max err {err:.3g}, float32 torch {err32:.3g}, "
                                          f"max|ref| {scale:.3g}")


SPECS = [
    MLPSpec(32, (64, 64), 3),                                              # the hash field's MLP
    MLPSpec(5, (17, 33), 2, activation="relu", output_activation="sigmoid"),  # odd widths
    MLPSpec(3, (33,), 1, activation="relu", output_activation="exp"),
    MLPSpec(2, (17, 17), 3, activation="sine", output_activation="none"),
    MLPSpec(2, (24, 24), 1, activation="sine", output_activation="sine", w0_first=30.0, w0_hidden=2.0),
    MLPSpec(7, (9,), 4, activation="none", output_activation="relu"),
    MLPSpec(3, (128, 128), 3, activation="relu"),
    MLPSpec(4, (16,), 3, bias=False),
    MLPSpec(2, (128, 128, 128), 3, activation="sine"),                     # SIREN image (w0 30)
    MLPSpec(3, (64, 64, 64), 1, activation="sine"),                        # SIREN SDF
]


@pytest.mark.parametrize("simd", [-1, 0], ids=["auto", "portable"])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.widths}-{s.activation}-{s.output_activation}-b{int(s.bias)}")
def test_values_and_gradients(ext, spec, simd):
    """N not a multiple of the chunk (1037 points, chunk 128), every activation, AVX2 and portable."""
    ext.set_simd(simd)
    _check(spec, (1037,), _seed())


@pytest.mark.parametrize("chunk", [1, 7, 128, 4096])
def test_chunk_sizes_and_batched_points(chunk):
    """x [B, N, d] with shared weights, chunks from 1 point to more than N."""
    _check(MLPSpec(6, (20, 12), 5, activation="relu", output_activation="sigmoid"), (3, 333), _seed(), chunk=chunk)


@pytest.mark.parametrize("need_x,need_w", [(True, False), (False, True)])
def test_partial_gradients(need_x, need_w):
    _check(MLPSpec(8, (32, 32), 2), (2001,), _seed(), need_x=need_x, need_w=need_w)


def test_one_and_two_threads_bitwise_equal():
    """Weight gradients are summed per group of chunks fixed by N, then in group order."""
    spec = MLPSpec(32, (64, 64), 3)
    x, params, gy = _inputs(spec, (50_001,), _seed())
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run(cpu_mlp.mlp_cpu, x, params, spec, gy)
        torch.set_num_threads(2)
        two = _run(cpu_mlp.mlp_cpu, x, params, spec, gy)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


@pytest.mark.parametrize("instances", [0, 5], ids=["shared", "per-instance"])
@pytest.mark.parametrize("spec", [MLPSpec(32, (64, 64), 3), MLPSpec(2, (24, 24, 24), 2, activation="sine",
                                                                   output_activation="sigmoid"), MLPSpec(3, (16,), 1)],
                         ids=["relu", "sine-sigmoid", "one-hidden"])
def test_saved_activations_equal_recompute(monkeypatch, spec, instances):
    """The forward keeps the hidden activations for the backward (SAVE_MAX_BYTES); the backward then
    skips the recompute. Same arithmetic either way: bitwise-equal gradients, and the recompute path
    (saving off, or over the byte budget) still runs."""
    seed = _seed()
    shape = (instances, 700) if instances else (1001,)
    x, params, gy = _inputs(spec, shape, seed, instances)
    saved = _run(cpu_mlp.mlp_cpu, x, params, spec, gy)
    monkeypatch.setattr(cpu_mlp, "SAVE_MAX_BYTES", 0)
    recomputed = _run(cpu_mlp.mlp_cpu, x, params, spec, gy)
    for a, b in zip(saved, recomputed):
        assert torch.equal(a, b), f"seed {seed}"


def _eikonal_grads(op, x, params, spec, dtype=torch.float32):
    """Gradients w.r.t. x and every parameter (zeros where unused) of an SDF-style loss: an eikonal
    term on dL/dx taken with create_graph=True (the double backward) plus mean y^2."""
    x = x.to(dtype).clone().requires_grad_(True)
    p = {k: v.to(dtype).clone().requires_grad_(True) for k, v in params.items()}
    y = op(x, p, spec)
    (gx,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    loss = (gx.norm(dim=-1) - 1).pow(2).mean() + y.square().mean()
    return torch.autograd.grad(loss, [x, *p.values()], allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("spec", [MLPSpec(3, (64, 64, 64), 1, activation="sine"),
                                  MLPSpec(2, (17, 24), 1, activation="sine", w0_first=30.0, w0_hidden=2.0),
                                  MLPSpec(3, (32, 32), 1, activation="relu"), MLPSpec(3, (16,), 2, activation="none"),
                                  MLPSpec(3, (16, 16), 1, bias=False, activation="sine")],
                         ids=["siren-sdf", "sine-w0s", "relu", "none", "no-bias"])
def test_double_backward_eikonal(monkeypatch, spec):
    """create_graph=True then a loss on dL/dx runs the C++ double backward (no PyTorch graph: both
    fallbacks are switched off here), within the float32 PyTorch op's error of float64."""
    def no_fallback(*_):
        raise AssertionError("the PyTorch fallback ran")
    monkeypatch.setattr(cpu_mlp, "graph_backward", no_fallback)
    monkeypatch.setattr(cpu_mlp, "_grad_of_grad", no_fallback)
    seed = _seed()
    x, params, _ = _inputs(spec, (1500,), seed)
    got = _eikonal_grads(cpu_mlp.mlp_cpu, x, params, spec, torch.float32)
    monkeypatch.undo()
    f32 = _eikonal_grads(mlp_forward, x, params, spec, torch.float32)
    ref = _eikonal_grads(mlp_forward, x, params, spec, torch.float64)
    for name, g, f, r in zip(["x", *params], got, f32, ref):
        scale = r.abs().max().item()
        err, err32 = (g.double() - r).abs().max().item(), (f.double() - r).abs().max().item()
        factor = 8 if spec.activation == "sine" else 4
        assert err <= factor * err32 + 1e-4 * scale, f"{name} (seed {seed}): err {err:.3g}, float32 torch {err32:.3g}"


def test_double_backward_other_losses_through_pytorch():
    """A loss on the parameter gradients themselves, and a third derivative, go through the
    differentiable PyTorch op: same results as mlp_forward's autograd."""
    spec = MLPSpec(3, (32, 32), 1, activation="sine")
    seed = _seed()
    x0, params, _ = _inputs(spec, (700,), seed)
    results = []
    for op, dtype in ((cpu_mlp.mlp_cpu, torch.float32), (mlp_forward, torch.float64)):
        x = x0.to(dtype).clone().requires_grad_(True)
        p = {k: v.to(dtype).clone().requires_grad_(True) for k, v in params.items()}
        f = op(x, p, spec)[..., 0]
        gx, gw = torch.autograd.grad(f.sum(), [x, p["layers.1.weight"]], create_graph=True)
        (gxx,) = torch.autograd.grad((gx ** 2).sum(), x, create_graph=True)  # a third derivative next
        loss = (gw ** 2).sum() + gxx.abs().sum()
        got = torch.autograd.grad(loss, [x, *p.values()], allow_unused=True)  # the output bias is unused
        results.append([torch.zeros_like(t) if g is None else g for g, t in zip(got, [x, *p.values()])])
    for name, g, r in zip(["x", *params], *results):
        assert torch.allclose(g.double(), r, rtol=1e-3, atol=1e-4 * r.abs().max().item()), f"{name} (seed {seed})"


@pytest.mark.parametrize("simd", [-1, 0], ids=["auto", "portable"])
def test_sincos_accuracy(ext, simd):
    """The kernel's sin/cos (what sine layers use) vs float64 of the same float32 t, |t| to 1e5."""
    ext.set_simd(simd)
    gen = torch.Generator().manual_seed(_seed())
    for bound in (1.0, 30.0, 1000.0, 4096.0, 1e5):
        t = (torch.rand(100_003, generator=gen) * 2 - 1) * bound  # odd length: the vector tail
        t[:8] = torch.tensor([0.0, -0.0, math.pi / 4, -math.pi / 4, math.pi / 2, math.pi, 3 * math.pi / 4, 1e-30])
        s, c = cpu_mlp.sincos(t)
        err_s = (s.double() - torch.sin(t.double())).abs().max().item()
        err_c = (c.double() - torch.cos(t.double())).abs().max().item()
        assert err_s <= 1.5e-7 and err_c <= 1.5e-7, (bound, err_s, err_c)
    s, c = cpu_mlp.sincos(torch.tensor([float("nan")] * 8))
    assert torch.isnan(s).all() and torch.isnan(c).all()


PER_INSTANCE = [
    MLPSpec(2, (64, 64, 64), 3, activation="sine"),                          # the hypernetworks' SIREN
    MLPSpec(5, (17, 33), 2, activation="relu", output_activation="sigmoid"),  # odd widths
    MLPSpec(2, (24,), 1, activation="sine", output_activation="sine", w0_first=30.0, w0_hidden=2.0),
    MLPSpec(4, (16,), 3, bias=False),
]


@pytest.mark.parametrize("simd", [-1, 0], ids=["auto", "portable"])
@pytest.mark.parametrize("spec", PER_INSTANCE, ids=lambda s: f"{s.widths}-{s.activation}-{s.output_activation}-b{int(s.bias)}")
def test_per_instance_values_and_gradients(ext, spec, simd):
    """Weights [B, out, in], biases [B, out], x [B, N, d]: B = 3, N = 257 (not a multiple of the chunk)."""
    ext.set_simd(simd)
    _check(spec, (3, 257), _seed(), instances=3)


@pytest.mark.parametrize("chunk", [1, 128, 4096])
def test_per_instance_shared_coordinates_and_chunks(chunk):
    """x [N, d] shared by B = 5 per-instance weight sets (dL/dx summed over instances)."""
    _check(MLPSpec(2, (32, 32), 3, activation="sine"), (5, 100), _seed(), chunk=chunk, instances=5, x_shared=True)


@pytest.mark.parametrize("need_x,need_w", [(True, False), (False, True)])
def test_per_instance_partial_gradients(need_x, need_w):
    _check(MLPSpec(2, (64, 64), 3, activation="sine"), (4, 300), _seed(), need_x=need_x, need_w=need_w, instances=4)


@pytest.mark.parametrize("kind", ["sine-shared", "per-instance"])
def test_one_and_two_threads_bitwise_equal_sine_and_per_instance(kind):
    """Per-instance gradients are summed per instance in chunk order: 1 and 2 threads agree bitwise."""
    spec = MLPSpec(2, (64, 64, 64), 3, activation="sine")
    x, params, gy = (_inputs(spec, (20_001,), _seed()) if kind == "sine-shared"
                     else _inputs(spec, (7, 1000), _seed(), instances=7))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run(cpu_mlp.mlp_cpu, x, params, spec, gy)
        torch.set_num_threads(2)
        two = _run(cpu_mlp.mlp_cpu, x, params, spec, gy)
    finally:
        torch.set_num_threads(before)
    for a, b in zip(one, two):
        assert torch.equal(a, b)


def test_supports_and_dispatch():
    spec = MLPSpec(32, (64, 64), 3)
    x, params, _ = _inputs(spec, (5000,), _seed())
    assert cpu_mlp.supports(x, params, spec)
    batched = {k: v.expand(2, *v.shape) for k, v in params.items()}  # per-instance weights
    assert cpu_mlp.supports(x.expand(2, -1, -1), batched, spec)
    assert cpu_mlp.supports(x, batched, spec)  # shared coordinates
    assert not cpu_mlp.supports(x.expand(3, -1, -1), batched, spec)  # B mismatch
    mixed = {**params, "layers.0.weight": batched["layers.0.weight"]}
    assert not cpu_mlp.supports(x.expand(2, -1, -1), mixed, spec)  # mixed layers: PyTorch path
    assert not cpu_mlp.supports(x.double(), {k: v.double() for k, v in params.items()}, spec)
    assert not cpu_mlp.supports(x, params, MLPSpec(32, (256,), 3))
    with Backend("auto").active():
        p = {k: v.requires_grad_() for k, v in params.items()}
        assert "CpuMLP" in type(mlp_op(x, p, spec).grad_fn).__name__
        assert "CpuMLP" not in type(mlp_op(x[:4096], p, spec).grad_fn).__name__  # small ReLU batch: mlp_forward
        sine = MLPSpec(32, (64, 64), 3, activation="sine")  # SIREN: on the kernel from 64 points
        assert "CpuMLP" in type(mlp_op(x, p, sine).grad_fn).__name__
        assert "CpuMLP" in type(mlp_op(x[:64], p, sine).grad_fn).__name__
        assert "CpuMLP" not in type(mlp_op(x[:63], p, sine).grad_fn).__name__
        pb = {k: v.detach().expand(2, *v.shape).clone().requires_grad_() for k, v in params.items()}
        assert "CpuMLP" in type(mlp_op(x[:256].expand(2, -1, -1), pb, sine).grad_fn).__name__  # hypernetwork
        assert "CpuMLP" not in type(mlp_op(x[:1000].expand(2, -1, -1), pb, spec).grad_fn).__name__  # ReLU 2000 pts
        pm = {**{k: v.detach() for k, v in params.items()}, "layers.0.weight": pb["layers.0.weight"]}
        assert "CpuMLP" not in type(mlp_op(x[:256].expand(2, -1, -1), pm, sine).grad_fn).__name__  # mixed
        y_auto = mlp_op(x, p, spec)
    with Backend("torch").active():  # pure PyTorch
        y_torch = mlp_op(x, p, spec)
        assert "CpuMLP" not in type(y_torch.grad_fn).__name__
        assert "CpuMLP" not in type(mlp_op(x, p, sine).grad_fn).__name__
    torch.testing.assert_close(y_auto, y_torch, rtol=1e-4, atol=1e-5)
    # per-instance weights through the dispatch: same values as mlp_forward
    with Backend("auto").active():
        xb = x[:2500].expand(2, -1, -1)
        torch.testing.assert_close(mlp_op(xb, batched, spec), mlp_forward(xb, batched, spec), rtol=1e-4, atol=1e-5)
        ps = {k: v.expand(2, *v.shape) for k, v in init_mlp_params(sine).items()}  # SIREN init (He at w0 30 is chaotic)
        torch.testing.assert_close(mlp_op(xb, ps, sine), mlp_forward(xb, ps, sine), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("instances", [0, 3], ids=["shared", "per-instance"])
def test_double_backward_sine_through_dispatch(instances):
    """create_graph=True through the dispatched sine kernel (shared and per-instance weights)."""
    spec = MLPSpec(3, (32, 32), 1, activation="sine")
    x, params, _ = _inputs(spec, (3, 200) if instances else (500,), _seed(), instances)
    with Backend("auto").active():
        assert cpu_mlp.use_for(x, params, spec)
        for a, b in zip(_eikonal_grads(mlp_op, x, params, spec), _eikonal_grads(mlp_forward, x, params, spec)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * b.abs().max().item())


def test_double_backward_through_dispatch():
    """create_graph=True (an eikonal-style loss on dL/dx) through the dispatched ReLU kernel."""
    spec = MLPSpec(3, (32, 32), 1, activation="relu", output_activation="none")
    x, params, _ = _inputs(spec, (5000,), _seed())
    with Backend("auto").active():
        assert cpu_mlp.use_for(x, params, spec)
        for a, b in zip(_eikonal_grads(mlp_op, x, params, spec), _eikonal_grads(mlp_forward, x, params, spec)):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_disabled_build_falls_back():
    """INR_DISABLE_CPU_KERNELS=1: no build, one warning, and mlp_op runs the PyTorch op."""
    code = ("import warnings, torch\n"
            "import kernels.cpu_loader as L\n"
            "from inr.backends import mlp_op\n"
            "from inr.nn import MLPSpec, init_mlp_params, mlp_forward\n"
            "spec = MLPSpec(32, (64, 64), 3)\n"
            "p = {k: v.requires_grad_() for k, v in init_mlp_params(spec).items()}\n"
            "x = torch.rand(10000, 32)\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    y = mlp_op(x, p, spec); y2 = mlp_op(x, p, spec)\n"
            "    assert L.load_cpu_mlp() is None\n"
            "assert len(w) == 1 and 'INR_DISABLE_CPU_KERNELS' in L.MLP.last_error(), [str(m.message) for m in w]\n"
            "assert 'Blocked' in type(y.grad_fn).__name__\n"
            "torch.testing.assert_close(y, mlp_forward(x, p, spec), rtol=1e-5, atol=1e-5)\n"
            "y.sum().backward()\n")
    env = dict(os.environ, INR_DISABLE_CPU_KERNELS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
                         check=False)
    assert res.returncode == 0, res.stderr
