"""The C++ CPU hash grid (inr.backends.cpu_hashgrid) against the PyTorch path `hashgrid_encode`.

Tolerance story. Both compute pos = x * scale + 0.5 rounded once to float32, so on arbitrary x
they agree on every cell and differ only by float32 summation order: checked against the float32
PyTorch path with |got - ref| <= RTOL * |ref| + ATOL * max|ref| (forward 1e-5 / 1e-6).
Against float64: a float64 position differs from the float32 one (half an ulp), so float64 is a
different function on arbitrary x. On a lattice grid (base 8, per_level_scale 2: integer scales
7, 15, ..., 255) with x = k / 1024, every position is exact in float32, the float64 reference
(`hashgrid_encode` on float64 inputs) is the same function, and the lattice puts many points
exactly on cell borders (x = 0 and x = 1 included). There the C++ result must be within a small
factor of the float32 PyTorch path's own error w.r.t. float64 (plus a float32-sized floor).
The build is slow the first time (~40 s, cached by torch afterwards); tests skip, with the
loader's reason, when the extension cannot be built.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from inr.backends import cpu_hashgrid
from inr.encodings import HashGridConfig, grid_layout, hashgrid_encode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", autouse=True)
def ext():
    from kernels.cpu_loader import last_error, load_cpu

    mod = load_cpu()
    if mod is None:
        pytest.skip(f"C++ CPU extension unavailable: {last_error()}")
    return mod


def _seed() -> int:
    return int.from_bytes(os.urandom(4), "little")


def _close(got, ref, rtol, atol, what, seed):
    scale = ref.abs().max().item() if ref.numel() else 0.0
    err = (got.double() - ref.double()).abs()
    bound = rtol * ref.double().abs() + atol * scale
    bad = err > bound
    assert not bad.any(), (f"{what} (seed {seed}): {int(bad.sum())} of {err.numel()} elements off, "
                           f"max err {err.max().item():.3g} vs max|ref| {scale:.3g}")


def _config(interp: str, kind: str, lattice: bool = False, n_feat: int = 2) -> HashGridConfig:
    if lattice:  # integer scales: exact float32 positions for x = k / 1024
        return HashGridConfig(n_levels=6 if kind == "hash" else 4, n_features_per_level=n_feat, log2_hashmap_size=10 if kind == "hash" else 19,
                              base_resolution=8, per_level_scale=2.0, interpolation=interp,
                              grid_type="hash" if kind == "hash" else "dense")
    return HashGridConfig(n_levels=8 if kind == "hash" else 6, n_features_per_level=n_feat, log2_hashmap_size=9 if kind == "hash" else 19,
                          base_resolution=5, per_level_scale=1.63, interpolation=interp,
                          grid_type="hash" if kind == "hash" else "dense")


def _inputs(cfg, d, n, seed, lattice=False):
    gen = torch.Generator().manual_seed(seed)
    if lattice:
        x = torch.randint(0, 1025, (n, d), generator=gen).float() / 1024
    else:
        x = torch.rand(n, d, generator=gen)
    if n >= 4:  # corners of the domain
        x[0] = 0.0
        x[1] = 1.0
        x[2, 0], x[3, -1] = 0.0, 1.0
    rows = grid_layout(cfg, d).total_rows
    table = torch.randn(rows, cfg.n_features_per_level, generator=gen)
    grad = torch.randn(n, cfg.n_output_dims, generator=gen)
    return x, table, grad


def _run(fn, x, table, grad, cfg, need_x=True):
    xr = x.detach().clone().requires_grad_(need_x)
    tr = table.detach().clone().requires_grad_(True)
    out = fn(xr, tr, cfg)
    inputs = [xr, tr] if need_x else [tr]
    grads = torch.autograd.grad(out, inputs, grad)
    return (out.detach(), grads[-1], grads[0] if need_x else None)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("interp", ["linear", "smoothstep"])
@pytest.mark.parametrize("kind", ["hash", "dense"])
@pytest.mark.parametrize("n", [1, 1000, 4097])
def test_matches_torch_float32(d, interp, kind, n):
    seed = _seed()
    cfg = _config(interp, kind)
    lay = grid_layout(cfg, d)
    assert any(lay.hashed) == (kind == "hash") and not all(lay.hashed)
    x, table, grad = _inputs(cfg, d, n, seed)
    assert cpu_hashgrid.supports(x, table, cfg)
    out, gt, gx = _run(cpu_hashgrid.hashgrid_cpu, x, table, grad, cfg)
    rout, rgt, rgx = _run(hashgrid_encode, x, table, grad, cfg)
    _close(out, rout, 1e-5, 1e-6, "forward", seed)
    _close(gt, rgt, 1e-4, 1e-5, "table grad", seed)
    _close(gx, rgx, 1e-4, 1e-5, "x grad", seed)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("interp", ["linear", "smoothstep"])
@pytest.mark.parametrize("kind", ["hash", "dense"])
@pytest.mark.parametrize("n_feat", [1, 2, 4, 8])
def test_lattice_vs_float64(d, interp, kind, n_feat):
    seed = _seed()
    cfg = _config(interp, kind, lattice=True, n_feat=n_feat)
    x, table, grad = _inputs(cfg, d, 3001, seed, lattice=True)
    got = _run(cpu_hashgrid.hashgrid_cpu, x, table, grad, cfg)
    f32 = _run(hashgrid_encode, x, table, grad, cfg)
    f64 = _run(hashgrid_encode, x.double(), table.double(), grad.double(), cfg)
    for what, g, t32, r in zip(("forward", "table grad", "x grad"), got, f32, f64):
        scale = r.abs().max().item()
        err = (g.double() - r).abs().max().item()
        err32 = (t32.double() - r).abs().max().item()
        assert err <= 4 * err32 + 1e-6 * scale, (f"{what} (seed {seed}): C++ error {err:.3g} vs float32 "
                                                 f"torch error {err32:.3g}, max|ref| {scale:.3g}")


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("interp", ["linear", "smoothstep"])
def test_cell_borders(d, interp):
    """Points whose float32 position is (within rounding) an integer on some level: the cell
    (and for linear, the one-sided x-derivative) must agree with the PyTorch path."""
    seed = _seed()
    cfg = _config(interp, "hash")
    lay = grid_layout(cfg, d)
    vals = [0.0, 1.0]
    for s in lay.scales:
        vals += [(k - 0.5) / s for k in range(1, int(s) + 2) if 0 <= (k - 0.5) / s <= 1]
    vals = torch.tensor(vals, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    x = vals[torch.randint(0, len(vals), (2000, d), generator=gen)]
    table = torch.randn(lay.total_rows, cfg.n_features_per_level, generator=gen)
    grad = torch.randn(2000, cfg.n_output_dims, generator=gen)
    got = _run(cpu_hashgrid.hashgrid_cpu, x, table, grad, cfg)
    ref = _run(hashgrid_encode, x, table, grad, cfg)
    for what, g, r, tol in zip(("forward", "table grad", "x grad"), got, ref, ((1e-5, 1e-6), (1e-4, 1e-5), (1e-4, 1e-5))):
        _close(g, r, *tol, what, seed)


def test_table_grad_only_and_deterministic():
    seed = _seed()
    cfg = _config("linear", "hash")
    x, table, grad = _inputs(cfg, 3, 5000, seed)
    a = _run(cpu_hashgrid.hashgrid_cpu, x, table, grad, cfg, need_x=False)
    b = _run(cpu_hashgrid.hashgrid_cpu, x, table, grad, cfg, need_x=False)
    assert torch.equal(a[1], b[1]), "table gradient differs between identical runs"
    ref = _run(hashgrid_encode, x, table, grad, cfg, need_x=False)
    _close(a[1], ref[1], 1e-4, 1e-5, "table grad", seed)


def test_x_grad_only():
    seed = _seed()
    cfg = _config("smoothstep", "hash")
    x, table, grad = _inputs(cfg, 2, 777, seed)
    xr = x.clone().requires_grad_(True)
    (gx,) = torch.autograd.grad(cpu_hashgrid.hashgrid_cpu(xr, table, cfg), xr, grad)
    xr2 = x.clone().requires_grad_(True)
    (rgx,) = torch.autograd.grad(hashgrid_encode(xr2, table, cfg), xr2, grad)
    _close(gx, rgx, 1e-4, 1e-5, "x grad", seed)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("interp", ["linear", "smoothstep"])
@pytest.mark.parametrize("kind", ["hash", "dense"])
def test_double_backward_equals_torch(d, interp, kind):
    """create_graph=True: the C++ backward-of-backward (d dout, d table, d x with the weights'
    Hessian) against autograd through the PyTorch path, for a loss on both first derivatives
    (an eikonal-like term on dL/dx and a linear term on dL/dtable) and for one on dL/dx alone."""
    seed = _seed()
    cfg = _config(interp, kind)
    x, table, _ = _inputs(cfg, d, 500, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    w = torch.randn(x.shape[0], cfg.n_output_dims, generator=gen)
    r, rt = torch.randn(x.shape, generator=gen), torch.randn(table.shape, generator=gen)
    for on_table in (True, False):
        results = []
        for fn in (cpu_hashgrid.hashgrid_cpu, hashgrid_encode):
            xr, tr, wr = x.clone().requires_grad_(True), table.clone().requires_grad_(True), w.clone().requires_grad_(True)
            gx, gt = torch.autograd.grad((fn(xr, tr, cfg) * wr).sum(), [xr, tr], create_graph=True)
            loss = ((gx ** 2).sum(-1) - 1).pow(2).mean() + (gx * r).sum() + ((gt * rt).sum() if on_table else 0)
            results.append([gx.detach(), gt.detach(), *torch.autograd.grad(loss, [tr, xr, wr])])
        names = ("x grad", "table grad", "d loss / d table", "d loss / d x", "d loss / d dout")
        for what, g, ref in zip(names, *results):
            _close(g, ref, 1e-4, 1e-5, f"{what} ({'with' if on_table else 'without'} the table term)", seed)


def test_double_backward_of_table_gradient_only():
    """A loss on dL/dtable alone (no upstream gradient on dL/dx)."""
    seed = _seed()
    cfg = _config("smoothstep", "hash")
    x, table, grad = _inputs(cfg, 3, 300, seed)
    rt = torch.randn(table.shape, generator=torch.Generator().manual_seed(seed))
    results = []
    for fn in (cpu_hashgrid.hashgrid_cpu, hashgrid_encode):
        xr, tr, gr = x.clone().requires_grad_(True), table.clone().requires_grad_(True), grad.clone().requires_grad_(True)
        (gt,) = torch.autograd.grad(fn(xr, tr, cfg), [tr], gr, create_graph=True)
        results.append(torch.autograd.grad((gt * rt).sum(), [xr, gr]))
    for what, g, ref in zip(("d / d x", "d / d dout"), *results):
        _close(g, ref, 1e-4, 1e-5, what, seed)


def test_third_derivative_through_pytorch_path():
    """Beyond the second derivative the C++ path hands over to the differentiable PyTorch one."""
    seed = _seed()
    cfg = _config("smoothstep", "hash")
    x, table, _ = _inputs(cfg, 2, 200, seed)
    results = []
    for fn in (cpu_hashgrid.hashgrid_cpu, hashgrid_encode):
        xr, tr = x.clone().requires_grad_(True), table.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(fn(xr, tr, cfg).sum(), xr, create_graph=True)
        (gxx,) = torch.autograd.grad((gx ** 2).sum(), xr, create_graph=True)
        results.append(torch.autograd.grad(gxx.sum(), tr))
    _close(results[0][0], results[1][0], 1e-4, 1e-5, "third derivative (d table)", seed)


def test_leading_dims_and_supports():
    cfg = _config("linear", "hash")
    rows = grid_layout(cfg, 2).total_rows
    table = torch.randn(rows, 2)
    x = torch.rand(3, 5, 2)
    out = cpu_hashgrid.hashgrid_cpu(x, table, cfg)
    assert out.shape == (3, 5, cfg.n_output_dims)
    torch.testing.assert_close(out, hashgrid_encode(x, table, cfg), rtol=1e-5, atol=1e-6)
    s = cpu_hashgrid.supports
    assert s(x, table, cfg)
    assert not s(x.double(), table, cfg)
    assert not s(x, table.double(), cfg)
    assert not s(x * 2, table, cfg)                            # outside [0, 1]: torch path wraps
    assert not s(x - 0.5, table, cfg)
    bad = x.clone()
    bad[0, 0, 0] = float("nan")
    assert not s(bad, table, cfg)                              # torch path raises ValueError
    assert not s(x, table.expand(2, -1, -1), cfg)              # per-instance tables
    assert not s(torch.rand(4, 1), torch.randn(grid_layout(cfg, 1).total_rows, 2), cfg)
    assert not s(torch.rand(0, 2), table, cfg)
    with pytest.raises(ValueError):
        cpu_hashgrid.hashgrid_cpu(x * 2, table, cfg)


def test_disable_env(monkeypatch):
    """INR_DISABLE_CPU_KERNELS=1 makes a fresh loader return None with a reason (no build)."""
    code = ("import warnings, kernels.cpu_loader as L\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    assert L.load_cpu() is None and L.load_cpu() is None\n"
            "assert len(w) == 1 and 'INR_DISABLE_CPU_KERNELS' in L.last_error()\n")
    env = dict(os.environ, INR_DISABLE_CPU_KERNELS="1",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("d", [2, 3])
def test_spatial_order_batches(d, monkeypatch):
    """Batches processed in Z-order (as large ones are) give the same results as unsorted ones."""
    seed = _seed()
    cfg = _config("smoothstep", "hash")
    x, table, grad = _inputs(cfg, d, 20000, seed)
    monkeypatch.setattr(cpu_hashgrid, "SORT_MIN_TABLE_BYTES", 0)  # sort this small table too
    big = _run(cpu_hashgrid.hashgrid_cpu, x, table, grad, cfg)
    ref = _run(hashgrid_encode, x, table, grad, cfg)
    for what, g, r, tol in zip(("forward", "table grad", "x grad"), big, ref, ((1e-5, 1e-6), (1e-4, 1e-5), (1e-4, 1e-5))):
        _close(g, r, *tol, what, seed)
    monkeypatch.setattr(cpu_hashgrid, "SORT_MIN_SAMPLES", 0)
    plain = _run(cpu_hashgrid.hashgrid_cpu, x, table, grad, cfg)
    assert torch.equal(plain[0], big[0]) and torch.equal(plain[2], big[2])
    _close(plain[1], big[1], 1e-4, 1e-5, "table grad, unsorted", seed)
    perm = cpu_hashgrid._ext().hashgrid_order(x.contiguous())
    assert torch.equal(torch.sort(perm.long()).values, torch.arange(len(x)))


@pytest.fixture
def simd_mode(ext):
    """Switch the kernel's AVX2 path (-1 auto, 0 off); restored afterwards."""
    yield ext.set_simd
    ext.set_simd(-1)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("interp", ["linear", "smoothstep"])
@pytest.mark.parametrize("n_feat", [1, 2, 4])
def test_simd_matches_scalar_path(ext, simd_mode, d, interp, n_feat):
    """The AVX2 path against the portable scalar one (odd point counts: 8-point blocks with tails)."""
    if not ext.simd_available():
        pytest.skip("no AVX2/FMA on this CPU: only the scalar path runs")
    seed = _seed()
    cfg = _config(interp, "hash", n_feat=n_feat)
    x, table, grad = _inputs(cfg, d, 1237, seed)
    simd_mode(0)
    scalar = _run(cpu_hashgrid.hashgrid_cpu, x, table, grad, cfg)
    simd_mode(-1)
    fast = _run(cpu_hashgrid.hashgrid_cpu, x, table, grad, cfg)
    for what, g, r, tol in zip(("forward", "table grad", "x grad"), fast, scalar, ((1e-5, 1e-6), (1e-4, 1e-5), (1e-4, 1e-5))):
        _close(g, r, *tol, what, seed)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("simd", [-1, 0])
def test_one_and_two_threads_agree(ext, simd_mode, d, simd):
    """The AVX2 path gives bitwise-identical results on 1 and 2 threads (the table gradient splits
    levels, not points, over threads; x-gradients sum each point's levels in order). The scalar
    fallback sums x-gradient partials per thread group: equal within 1e-6 relative there."""
    seed = _seed()
    cfg = _config("smoothstep", "hash")
    x, table, grad = _inputs(cfg, d, 3001, seed)
    simd_mode(simd)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run(cpu_hashgrid.hashgrid_cpu, x, table, grad, cfg)
        torch.set_num_threads(2)
        two = _run(cpu_hashgrid.hashgrid_cpu, x, table, grad, cfg)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    if simd != 0 and ext.simd_available():
        assert torch.equal(one[2], two[2])
    else:
        _close(two[2], one[2], 1e-6, 1e-7, "x grad", seed)
