"""The CUDA hash grid (inr.backends.cuda_hashgrid) against its PyTorch twin `hashgrid_encode` in float64.

Every case draws fresh random inputs (the seed is in the failure message), fills every buffer the
kernels write with NaN first (an unwritten element then shows up as NaN), and checks forward,
table gradient and x gradient (and the double backward) elementwise:

    |got - ref| <= RTOL * |ref| + ATOL * max|ref|

Exact positions (most cases): the kernels compute pos = x * scale + 0.5 in float32 (as tcnn), up
to half an ulp of pos from float64 (1/32 of a cell at resolution 2^19), so a float64 reference is
a different function on arbitrary x. Where every level scale is a short dyadic number (integer
scales, say), x is drawn on a lattice k / 2^m fine enough to spread over all cells yet coarse
enough that pos is exact in float32; what remains is float32 arithmetic:
    RTOL = 1e-4, ATOL = 1e-5 for everything (table gradients: atomics add in any order, and
    rows that sum many terms of both signs need the ATOL part).
Such lattices also put points exactly on cell borders (x = 0.5 on every odd-scale level, (2k-1)/16
at scale 8), and x = 0 and x = 1 are added explicitly.
Approximate positions (grids with non-dyadic scales, resolution <= 512): random x, ATOL = 1e-4
(half an ulp at 512 is 1.5e-5 of a cell); points whose float32 position falls in another cell than
the float64 one (float32(pos64) is exactly what the kernel computes) are redrawn, since linear
interpolation's x-derivative jumps there. First derivatives only.
Each kernel case runs on the GPU (skipped without CUDA) and in the CPU emulation of the same kernel
sources (tests/cuda_emu, the `kernel_device` fixture).
"""
from __future__ import annotations

import math
import os
from fractions import Fraction

import pytest
import torch

from inr.backends import cuda_buffers, cuda_hashgrid
from inr.encodings import HashGridConfig, grid_layout, hashgrid_encode

EXACT_TOL = (1e-4, 1e-5)   # (RTOL, ATOL)
APPROX_TOL = (1e-4, 1e-4)

def test_cpu_tensors_not_supported():
    cfg = HashGridConfig(n_levels=2, log2_hashmap_size=8)
    table = torch.zeros(grid_layout(cfg, 2).total_rows, 2)
    assert not cuda_hashgrid.supports(torch.rand(5, 2), table, cfg)
    with pytest.raises(ValueError, match="supports"):
        cuda_hashgrid.hashgrid_cuda(torch.rand(5, 2), table, cfg)


# ----------------------------------------------------------------------------------------------
# Case construction and comparison (device-agnostic: `impl` may be any encode function).

def integer_scales(n_levels=6, n_feat=2, T=10, interp="linear"):
    """base 9, per-level scale 2: scales 8, 17, 35, ... (integers: dyadic x give exact positions);
    dense coarse levels, hashed fine ones once res^d > 2^T."""
    return HashGridConfig(n_levels=n_levels, n_features_per_level=n_feat, log2_hashmap_size=T, base_resolution=9,
                          per_level_scale=2.0, interpolation=interp)


def lattice_bits(cfg: HashGridConfig, d: int, xmax: float = 1.0) -> int | None:
    """Largest m <= 20 such that every x = k / 2^m with |x| <= xmax gives a float32-exact
    pos = x * scale + 0.5 at every level (its set bits span <= 24), or None below m = 6."""
    for m in range(20, 5, -1):
        ok = True
        for scale in grid_layout(cfg, d).scales:
            q = Fraction(scale)
            n, den = q.numerator, q.denominator   # den is a power of two
            low = -(den.bit_length() - 1) if den > 1 else (n & -n).bit_length() - 1
            high = math.floor(math.log2(scale * xmax + 0.5))
            ok &= high - min(low - m, -1) + 1 <= 24
        if ok:
            return m
    return None


def ambiguous(x: torch.Tensor, cfg: HashGridConfig) -> torch.Tensor:
    """Points [..] where float32 pos (what the kernel computes: fmaf rounds x*scale+0.5 once, and
    float64 holds it exactly) lies in another cell than float64 pos, at any level or axis."""
    x64 = x.detach().double().cpu()
    bad = torch.zeros(x64.shape[:-1], dtype=torch.bool)
    for scale in grid_layout(cfg, x.shape[-1]).scales:
        pos = x64 * scale + 0.5
        bad |= (torch.floor(pos.float().double()) != torch.floor(pos)).any(-1)
    return bad


def draw_x(shape, cfg, gen, lo=0.0, hi=1.0, m=None):
    """Uniform x in [lo, hi]: on the lattice k / 2^m when m is given, else redrawn off ambiguity."""
    if m is not None:
        k = torch.randint(round(lo * 2**m), round(hi * 2**m) + 1, shape, generator=gen)
        return k.float() / 2**m
    x = torch.rand(*shape, generator=gen) * (hi - lo) + lo
    for _ in range(100):
        bad = ambiguous(x, cfg)
        if not bad.any():
            return x
        x[bad] = torch.rand(int(bad.sum()), shape[-1], generator=gen) * (hi - lo) + lo
    raise RuntimeError("could not draw unambiguous points")


def border_points(x: torch.Tensor, gen) -> torch.Tensor:
    """Overwrite most coordinates with 0, 1, 0.5 (a cell border at every odd integer scale) and
    (2k-1)/16 (borders at scale 8); the first two points become the corners x = 0 and x = 1."""
    specials = torch.tensor([0.0, 1.0, 0.5] + [(2 * k - 1) / 16 for k in range(1, 9)])
    pick = torch.randint(0, len(specials), x.shape, generator=gen)
    keep = torch.rand(x.shape, generator=gen) < 0.3  # some coordinates stay random (off-border)
    out = torch.where(keep, x, specials[pick])
    flat = out.view(-1, x.shape[-1])
    n = min(2, flat.shape[0])
    flat[:n] = torch.tensor([0.0, 1.0])[:n].view(n, 1)
    return out


def assert_close(name, got, ref, ctx, tol=EXACT_TOL):
    assert got is not None, f"{ctx} {name}: no gradient"
    assert tuple(got.shape) == tuple(ref.shape), f"{ctx} {name}: shape {tuple(got.shape)} != {tuple(ref.shape)}"
    got, ref = got.detach().double().cpu(), ref.detach().double().cpu()
    assert torch.isfinite(got).all(), f"{ctx} {name}: non-finite values (unwritten elements?)"
    rtol, atol = tol
    scale = ref.abs().max().clamp_min(1e-30)
    excess = (got - ref).abs() / (rtol * ref.abs() + atol * scale)
    worst = int(excess.argmax())
    assert excess.max() <= 1, (f"{ctx} {name}: |got-ref| = {(got - ref).abs().flatten()[worst]:.3g} at flat index "
                               f"{worst} (ref {ref.flatten()[worst]:.6g}, max|ref| {scale:.3g})")
    return float((got - ref).norm() / ref.norm().clamp_min(1e-30))


def make_inputs(cfg, d, N, mode, gen, device, B=3, borders=False, lo=0.0, hi=1.0, m=None):
    """mode: "shared" (x [N, d], table [R, F]), "batched" (x [B, N, d], tables [B, R, F]),
    "x_shared" (x [N, d] read by every one of B tables)."""
    rows, n_feat = grid_layout(cfg, d).total_rows, cfg.n_features_per_level
    x_shape = (B, N, d) if mode == "batched" else (N, d)
    x = draw_x(x_shape, cfg, gen, lo, hi, m)
    if borders:
        x = border_points(x, gen)
    t_shape = (rows, n_feat) if mode == "shared" else (B, rows, n_feat)
    table = torch.randn(*t_shape, generator=gen)  # O(1) values: errors are relative to them
    return x.to(device), table.to(device)


def compare(impl, cfg, d, N, mode, device, seed=None, borders=False, x_grad=True, double=False, lo=0.0, hi=1.0,
            exact=True):
    """One randomized comparison of impl(x, table, cfg) in float32 with hashgrid_encode in float64.
    exact: x on a lattice where float32 positions are exact (required for borders and double)."""
    seed = int.from_bytes(os.urandom(4), "little") if seed is None else seed
    gen = torch.Generator().manual_seed(seed)
    m = lattice_bits(cfg, d, max(abs(lo), abs(hi))) if exact else None
    assert (m is not None) == exact, f"{cfg}: no exact lattice for d={d}" if exact else "unexpected lattice"
    assert exact or not (borders or double), "borders and double backward need exact positions"
    tol = EXACT_TOL if exact else APPROX_TOL
    x, table = make_inputs(cfg, d, N, mode, gen, device, borders=borders, lo=lo, hi=hi, m=m)
    ctx = f"[seed {seed}] {cfg} d={d} N={N} mode={mode} borders={borders} lattice=2^-{m}"
    x.requires_grad_(x_grad)
    table.requires_grad_(True)
    x64 = x.detach().double().requires_grad_(x_grad)
    t64 = table.detach().double().requires_grad_(True)
    out = impl(x, table, cfg)
    ref = hashgrid_encode(x64, t64, cfg)
    errors = {"out": assert_close("out", out, ref, ctx, tol)}

    g = torch.randn(ref.shape, generator=gen).to(device)
    if not double:
        out.backward(g)
        ref.backward(g.double())
        errors["dtable"] = assert_close("dtable", table.grad, t64.grad, ctx, tol)
        if x_grad:
            errors["dx"] = assert_close("dx", x.grad, x64.grad, ctx, tol)
        return errors

    # double backward: a loss on both first-order gradients, differentiated w.r.t. x, table, dout
    g.requires_grad_(True)
    g64 = g.detach().double().requires_grad_(True)
    ggx = torch.randn(x.shape, generator=gen).to(device)
    ggt = torch.randn(table.shape, generator=gen).to(device)
    dx, dt = torch.autograd.grad(out, (x, table), g, create_graph=True)
    dx64, dt64 = torch.autograd.grad(ref, (x64, t64), g64, create_graph=True)
    errors["dx"] = assert_close("dx", dx, dx64, ctx)
    errors["dtable"] = assert_close("dtable", dt, dt64, ctx)
    got = torch.autograd.grad((dx * ggx).sum() + (dt * ggt).sum(), (x, table, g))
    want = torch.autograd.grad((dx64 * ggx.double()).sum() + (dt64 * ggt.double()).sum(), (x64, t64, g64))
    for name, a, b in zip(("dx2", "dtable2", "dd"), got, want):
        errors[name] = assert_close(name, a, b, ctx)
    return errors


# ----------------------------------------------------------------------------------------------
# The kernels against the PyTorch path: on a GPU and in the CPU emulation (`kernel_device`).

@pytest.fixture(autouse=True)
def nan_buffers(monkeypatch):
    """Every buffer the kernels write (not accumulate) starts as NaN."""
    def nan_alloc(*shape, device, dtype=torch.float32):
        return torch.full(shape, float("nan"), device=device, dtype=dtype)

    monkeypatch.setattr(cuda_buffers, "alloc", nan_alloc)


def cuda_impl(x, table, cfg):
    assert cuda_hashgrid.supports(x, table, cfg), "the CUDA path refused the case"
    return cuda_hashgrid.hashgrid_cuda(x, table, cfg)


@pytest.mark.parametrize("N", [1, 1000, 4097])
@pytest.mark.parametrize("mode", ["shared", "batched", "x_shared"])
@pytest.mark.parametrize("interp", ["linear", "smoothstep"])
@pytest.mark.parametrize("d", [2, 3])
def test_matches_torch(kernel_device, d, interp, mode, N):
    cfg = integer_scales(n_levels=8, T=12 if d == 3 else 10, interp=interp)
    assert any(grid_layout(cfg, d).hashed) and not all(grid_layout(cfg, d).hashed)
    compare(cuda_impl, cfg, d, N, mode, kernel_device)


@pytest.mark.parametrize("n_feat", [1, 2, 4, 8])
@pytest.mark.parametrize("d", [2, 3])
def test_feature_widths(kernel_device, d, n_feat):
    compare(cuda_impl, integer_scales(n_levels=6, n_feat=n_feat), d, 1000, "batched", kernel_device)
    smooth = integer_scales(n_levels=6, n_feat=n_feat, interp="smoothstep")
    compare(cuda_impl, smooth, d, 777, "shared", kernel_device)


@pytest.mark.parametrize("mode", ["shared", "batched", "x_shared"])
@pytest.mark.parametrize("interp", ["linear", "smoothstep"])
@pytest.mark.parametrize("d", [2, 3])
def test_cell_borders_and_corners(kernel_device, d, interp, mode):
    compare(cuda_impl, integer_scales(interp=interp), d, 1000, mode, kernel_device, borders=True)


@pytest.mark.parametrize("d", [2, 3])
def test_instant_ngp_configs(kernel_device, d):
    """The benchmark's grids (finest 512 / per-level scale 2, 2^19 rows), non-integer scales."""
    if d == 2:
        compare(cuda_impl, HashGridConfig(finest_resolution=512), d, 4097, "shared", kernel_device, exact=False)
        compare(cuda_impl, HashGridConfig(finest_resolution=256, interpolation="smoothstep", log2_hashmap_size=14),
                d, 2000, "batched", kernel_device, exact=False)
    else:  # per-level scale 2 from 16: integer scales; 10 levels (res 8192) keep a 2^-11 lattice exact
        compare(cuda_impl, HashGridConfig(n_levels=10), d, 4097, "shared", kernel_device)
        compare(cuda_impl, HashGridConfig(n_levels=10, interpolation="smoothstep", log2_hashmap_size=14), d, 2000,
                "batched", kernel_device, double=True)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_other_dims_and_many_levels(kernel_device, d):
    many = HashGridConfig(n_levels=32, log2_hashmap_size=12, base_resolution=4, per_level_scale=1.1)  # non-dyadic
    compare(cuda_impl, many, d, 1500, "shared", kernel_device, exact=False)
    compare(cuda_impl, integer_scales(n_levels=5, T=12), d, 300, "batched", kernel_device, double=True)


def test_dense_grid_type(kernel_device):
    cfg = HashGridConfig(n_levels=4, base_resolution=4, per_level_scale=2.0, grid_type="dense")
    compare(cuda_impl, cfg, 3, 2000, "shared", kernel_device)


@pytest.mark.parametrize("d", [2, 3])
def test_outside_unit_cube_wraps_like_tcnn(kernel_device, d):
    compare(cuda_impl, integer_scales(), d, 1000, "batched", kernel_device, lo=-0.5, hi=1.5)


@pytest.mark.parametrize("mode", ["shared", "batched", "x_shared"])
@pytest.mark.parametrize("interp", ["linear", "smoothstep"])
@pytest.mark.parametrize("d", [2, 3])
def test_double_backward(kernel_device, d, interp, mode):
    compare(cuda_impl, integer_scales(interp=interp), d, 1000, mode, kernel_device, double=True)
    compare(cuda_impl, integer_scales(interp=interp), d, 1000, mode, kernel_device, double=True, borders=True)


def test_table_gradient_only(kernel_device):
    compare(cuda_impl, integer_scales(), 3, 4097, "batched", kernel_device, x_grad=False)


def test_no_grad_forward_and_shapes(kernel_device):
    cfg = integer_scales()
    m = lattice_bits(cfg, 3)
    table = torch.randn(grid_layout(cfg, 3).total_rows, 2, device=kernel_device)
    x = (torch.randint(0, 2**m + 1, (4, 5, 3)).float() / 2**m).to(kernel_device)
    with torch.no_grad():
        out = cuda_hashgrid.hashgrid_cuda(x, table, cfg)
    assert out.shape == (4, 5, cfg.n_output_dims)
    assert_close("out", out, hashgrid_encode(x.double(), table.double(), cfg), "no_grad")
    xt = (torch.randint(0, 2**m + 1, (3, 50)).float() / 2**m).to(kernel_device).t()  # non-contiguous
    assert_close("out", cuda_hashgrid.hashgrid_cuda(xt, table, cfg), hashgrid_encode(xt.double(), table.double(), cfg),
                 "non-contiguous")


def test_third_derivative_raises(kernel_device):
    cfg = integer_scales()
    x = torch.rand(10, 2, device=kernel_device, requires_grad=True)
    table = torch.randn(grid_layout(cfg, 2).total_rows, 2, device=kernel_device, requires_grad=True)
    dx, = torch.autograd.grad(cuda_hashgrid.hashgrid_cuda(x, table, cfg).sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="third derivative"):
        torch.autograd.grad(dx.pow(2).sum(), x, create_graph=True)


def test_supports_refuses(kernel_device):
    cfg = integer_scales()
    rows = grid_layout(cfg, 2).total_rows
    x, t = torch.rand(10, 2, device=kernel_device), torch.randn(rows, 2, device=kernel_device)
    assert cuda_hashgrid.supports(x, t, cfg)
    assert not cuda_hashgrid.supports(x.double(), t, cfg)
    assert not cuda_hashgrid.supports(x, t.double(), cfg)
    assert not cuda_hashgrid.supports(x, t[:-1], cfg)                          # wrong rows
    assert not cuda_hashgrid.supports(torch.rand(10, 5, device=kernel_device), t, cfg)  # 5-D input
    assert not cuda_hashgrid.supports(x[:0], t, cfg)                            # no points
    x_b2 = torch.rand(2, 10, 2, device=kernel_device)
    assert not cuda_hashgrid.supports(x_b2, t.expand(3, -1, -1), cfg)         # B mismatch
    cfg3 = HashGridConfig(n_levels=2, n_features_per_level=3, log2_hashmap_size=8)
    assert not cuda_hashgrid.supports(x, torch.randn(grid_layout(cfg3, 2).total_rows, 3, device=kernel_device), cfg3)
    cfg33 = HashGridConfig(n_levels=33, log2_hashmap_size=8, per_level_scale=1.05)
    assert not cuda_hashgrid.supports(x, torch.randn(grid_layout(cfg33, 2).total_rows, 2, device=kernel_device), cfg33)
