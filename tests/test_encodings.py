"""inr.encodings: hash grid (tcnn semantics, fast path vs references, gradients, external tables),
tcnn config parsing, frequency / Fourier features, spherical harmonics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inr.backends.torch_hashgrid import batch as hashgrid_batch
from inr.backends.torch_hashgrid import plan as hashgrid_plan
from inr.backends.torch_hashgrid import workers as hashgrid_workers
from inr.encodings import (FrequencyEncoding, GaussianFourierFeatures, HashGrid, HashGridConfig, Identity,
                           SphericalHarmonics, encoding_from_config, grid_layout, hashgrid_encode)
from inr.encodings.hashgrid_reference import hashgrid_reference

PRIMES = (1, 2654435761, 805459861)


def _ramp_table(cfg: HashGridConfig, n_dims: int, dtype=torch.float64) -> torch.Tensor:
    """Row r holds (r, -2r): lookups then read back the interpolated row index."""
    rows = torch.arange(grid_layout(cfg, n_dims).total_rows, dtype=dtype)
    return torch.stack([rows, -2 * rows], 1)


def _scalar_reference(point, table, cfg: HashGridConfig) -> list[float]:
    """One point, plain Python: loop over levels and corners, uint32 arithmetic by masking."""
    d = len(point)
    lay = grid_layout(cfg, d)
    out = []
    for lvl in range(cfg.n_levels):
        scale = np.float32(lay.scales[lvl])
        res, size, off = lay.resolutions[lvl], lay.sizes[lvl], lay.offsets[lvl]
        pos = [float(np.float32(float(np.float32(p)) * float(scale) + 0.5)) for p in point]  # one rounding
        cell = [math.floor(p) for p in pos]
        frac = [p - c for p, c in zip(pos, cell)]
        if cfg.interpolation == "smoothstep":
            frac = [f * f * (3 - 2 * f) for f in frac]
        acc = [0.0] * cfg.n_features_per_level
        for corner in range(1 << d):
            c = [cell[j] + ((corner >> j) & 1) for j in range(d)]
            w = 1.0
            for j in range(d):
                w *= frac[j] if (corner >> j) & 1 else 1 - frac[j]
            if res ** d > size:
                index = 0
                for j in range(d):
                    index ^= (c[j] * PRIMES[j]) & 0xFFFFFFFF
            else:
                index = sum(c[j] * res ** j for j in range(d)) & 0xFFFFFFFF
            row = off + index % size
            for f in range(cfg.n_features_per_level):
                acc[f] += w * float(table[row, f])
        out.extend(acc)
    return out


def _away_from_cells(n, d, cfg, gen, margin=0.1, dtype=torch.float64):
    """Random points whose fraction within every level's cell lies in [margin, 1 - margin]."""
    lay = grid_layout(cfg, d)
    scales = torch.tensor(lay.scales, dtype=dtype)
    pts = []
    while len(pts) < n:
        x = torch.rand(256, d, generator=gen, dtype=dtype)
        frac = torch.frac(x.unsqueeze(1) * scales.view(-1, 1) + 0.5)
        ok = ((frac > margin) & (frac < 1 - margin)).all(-1).all(-1)
        pts.extend(x[ok])
    return torch.stack(pts[:n])


# ------------------------------------------------------------------------------------------------
# layout


def test_layout_matches_tcnn_rules():
    cfg = HashGridConfig()  # L=16, F=2, T=19, base 16, scale 2
    lay = grid_layout(cfg, 3)
    assert lay.resolutions[:4] == (16, 32, 64, 128)
    assert lay.sizes[:4] == (16 ** 3, 32 ** 3, 64 ** 3, 2 ** 19)
    assert lay.hashed[:4] == (False, False, False, True)
    assert lay.offsets[:4] == (0, 4096, 4096 + 32768, 4096 + 32768 + 262144)
    assert lay.total_rows == 4096 + 32768 + 262144 + 13 * 2 ** 19
    assert HashGrid(3, cfg).params.shape == (lay.total_rows, 2)
    # 2-D, finest 512: per_level_scale = 32 ** (1/15); every level is dense (512**2 < 2**19)
    lay2 = grid_layout(HashGridConfig(finest_resolution=512), 2)
    assert lay2.resolutions[0] == 16 and lay2.resolutions[-1] == 512
    assert not any(lay2.hashed)
    # rows rounded up to a multiple of 8: base 3 -> scale 2, res 3, 9 -> 16 rows
    lay3 = grid_layout(HashGridConfig(n_levels=1, base_resolution=3), 2)
    assert lay3.sizes == (16,)


# ------------------------------------------------------------------------------------------------
# hand-computed lookups


def test_dense_level_by_hand():
    cfg = HashGridConfig(n_levels=1, base_resolution=4)  # scale 3, res 4, 16 rows, dense
    table = _ramp_table(cfg, 2)
    x = torch.tensor([[0.3, 0.6], [1.0, 1.0]], dtype=torch.float64)
    out = hashgrid_encode(x, table, cfg)
    # point 0: pos (1.4, 2.3): corners rows 9, 10, 13, 14 with weights .42 .28 .18 .12
    # point 1: pos (3.5, 3.5): corners (3,3)=15, (4,3)=16%16=0, (3,4)=19%16=3, (4,4)=20%16=4 (tcnn wraps)
    expected0 = 9 * .42 + 10 * .28 + 13 * .18 + 14 * .12
    expected1 = 0.25 * (15 + 0 + 3 + 4)
    torch.testing.assert_close(out, torch.tensor([[expected0, -2 * expected0], [expected1, -2 * expected1]],
                                                 dtype=torch.float64), atol=1e-5, rtol=0)


def test_hashed_level_by_hand():
    cfg = HashGridConfig(n_levels=1, base_resolution=32, log2_hashmap_size=8)  # res 32: 1024 > 256 rows
    assert grid_layout(cfg, 2).hashed == (True,)
    table = _ramp_table(cfg, 2)
    out = hashgrid_encode(torch.tensor([[0.31, 0.77]]), table.float(), cfg)
    # pos (10.11, 24.37); rows (x ^ (y * 2654435761 mod 2**32)) mod 256:
    # (10,24) -> 146, (11,24) -> 147, (10,25) -> 67, (11,25) -> 66
    fx, fy = 0.11, 0.37
    expected = 146 * (1 - fx) * (1 - fy) + 147 * fx * (1 - fy) + 67 * (1 - fx) * fy + 66 * fx * fy
    torch.testing.assert_close(out, torch.tensor([[expected, -2 * expected]]), atol=2e-3, rtol=0)


def test_smoothstep_by_hand():
    cfg = HashGridConfig(n_levels=1, base_resolution=4, interpolation="smoothstep")
    out = hashgrid_encode(torch.tensor([[0.3, 0.6]], dtype=torch.float64), _ramp_table(cfg, 2), cfg)
    sx, sy = 0.4 ** 2 * (3 - 0.8), 0.3 ** 2 * (3 - 0.6)     # smoothstep of frac (0.4, 0.3)
    expected = (1 + sx) + 4 * (2 + sy)                       # the ramp is linear in the cell coords
    assert out[0, 0].item() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("d", [2, 3])
def test_scalar_reference_mixed_levels(d):
    cfg = HashGridConfig(n_levels=5, base_resolution=3, per_level_scale=2.0, log2_hashmap_size=7,
                         n_features_per_level=2)
    lay = grid_layout(cfg, d)
    assert any(lay.hashed) and not all(lay.hashed)
    gen = torch.Generator().manual_seed(1)
    table = torch.randn(lay.total_rows, 2, generator=gen, dtype=torch.float64)
    x = torch.rand(7, d, generator=gen)
    x[0] = 1.0  # upper boundary: dense levels wrap
    out = hashgrid_encode(x, table, cfg)
    for i in range(x.shape[0]):
        ref = _scalar_reference(x[i].tolist(), table, cfg)
        torch.testing.assert_close(out[i], torch.tensor(ref, dtype=torch.float64), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------------
# fast path == reference (forward and gradients)


@pytest.fixture(params=["inline", "threaded", "int64"])
def fast_mode(request, monkeypatch):
    """inline: small inputs run in one chunk on the calling thread. threaded: many small chunks,
    two level-group workers and Z-order sorting, as large CPU batches run. int64: the index
    arithmetic used when row indices would not fit in int32."""
    if request.param == "int64":
        monkeypatch.setattr(hashgrid_plan, "I32_MAX", 100)
    if request.param == "threaded":
        monkeypatch.setattr(hashgrid_workers, "CHUNK_CORNERS", 1 << 10)
        monkeypatch.setattr(hashgrid_workers, "MIN_PARALLEL_CORNERS", 0)
        monkeypatch.setattr(hashgrid_batch, "SORT_MIN_SAMPLES", 1)
        threads = torch.get_num_threads()
        torch.set_num_threads(2)
        yield request.param
        torch.set_num_threads(threads)
    else:
        yield request.param


CASES = [
    (2, HashGridConfig(n_levels=6, base_resolution=4, per_level_scale=1.7, log2_hashmap_size=10)),
    (3, HashGridConfig(n_levels=6, base_resolution=4, per_level_scale=1.7, log2_hashmap_size=10,
                       interpolation="smoothstep")),
    (2, HashGridConfig(n_levels=4, base_resolution=8, per_level_scale=1.5, log2_hashmap_size=9,
                       n_features_per_level=4)),
    (3, HashGridConfig(n_levels=3, base_resolution=4, log2_hashmap_size=8, n_features_per_level=1)),
    (2, HashGridConfig(n_levels=3, base_resolution=4, grid_type="dense")),
]


@pytest.mark.parametrize("d,cfg", CASES)
@pytest.mark.parametrize("outside", [False, True])
def test_fast_matches_reference(d, cfg, outside, fast_mode):
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(grid_layout(cfg, d).total_rows, cfg.n_features_per_level, generator=gen,
                        dtype=torch.float64, requires_grad=True)
    x = torch.rand(700, d, generator=gen, dtype=torch.float64)
    if outside:  # tcnn's uint32 wraparound for inputs outside [0, 1]
        x = x * 1.6 - 0.3
    x.requires_grad_(True)
    fast, ref = hashgrid_encode(x, table, cfg), hashgrid_reference(x, table, cfg)
    torch.testing.assert_close(fast, ref, atol=1e-12, rtol=1e-12)
    g = torch.randn_like(fast)
    gx_f, gt_f = torch.autograd.grad(fast, (x, table), g)
    gx_r, gt_r = torch.autograd.grad(ref, (x, table), g)
    torch.testing.assert_close(gt_f, gt_r, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(gx_f, gx_r, atol=1e-9, rtol=1e-9)


def test_float32_default_config_matches_reference():
    cfg = HashGridConfig(finest_resolution=512, log2_hashmap_size=14)
    grid = HashGrid(3, cfg, generator=torch.Generator().manual_seed(0))
    x = torch.rand(3000, 3, generator=torch.Generator().manual_seed(1))
    fast = grid(x)
    fast.square().sum().backward()
    g_fast = grid.params.grad.clone()
    grid.params.grad = None
    ref = hashgrid_reference(x, grid.params, cfg)
    ref.square().sum().backward()
    # float32 sums in a different order: compare at the scale of the values (~1e-4)
    torch.testing.assert_close(fast, ref, atol=1e-8, rtol=1e-4)
    torch.testing.assert_close(g_fast, grid.params.grad, atol=1e-8, rtol=1e-4)


def test_backward_is_deterministic_and_skips_x_grad():
    grid = HashGrid(2, HashGridConfig(n_levels=8, log2_hashmap_size=12))
    x = torch.rand(20000, 2, generator=torch.Generator().manual_seed(0))
    grads = []
    for _ in range(2):
        grid.params.grad = None
        grid(x).sum().backward()
        grads.append(grid.params.grad.clone())
    assert torch.equal(grads[0], grads[1])
    assert x.grad is None


# ------------------------------------------------------------------------------------------------
# gradcheck / gradgradcheck (float64, tiny sizes, points away from cell boundaries)


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("interpolation", ["linear", "smoothstep"])
def test_gradcheck(d, interpolation):
    cfg = HashGridConfig(n_levels=3, base_resolution=2, per_level_scale=1.5, log2_hashmap_size=4,
                         interpolation=interpolation)
    gen = torch.Generator().manual_seed(3)
    table = torch.randn(grid_layout(cfg, d).total_rows, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    x = _away_from_cells(6, d, cfg, gen).requires_grad_(True)
    fn = lambda x, t: hashgrid_encode(x, t, cfg)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, table), eps=1e-6, atol=1e-6)
    # linear: d2/dx_j^2 = 0, but the mixed x terms and the x-table terms are not
    assert torch.autograd.gradgradcheck(fn, (x, table), eps=1e-6, atol=1e-5)


def test_eikonal_double_backward_matches_reference(fast_mode):
    cfg = HashGridConfig(n_levels=4, base_resolution=4, log2_hashmap_size=8, interpolation="smoothstep")
    gen = torch.Generator().manual_seed(5)
    table = torch.randn(grid_layout(cfg, 3).total_rows, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(cfg.n_output_dims, dtype=torch.float64, generator=gen)
    x0 = torch.rand(50, 3, generator=gen, dtype=torch.float64)
    results = []
    for fn in (hashgrid_encode, hashgrid_reference):
        x = x0.clone().requires_grad_(True)
        sdf = fn(x, table, cfg) @ w
        (g,) = torch.autograd.grad(sdf.sum(), x, create_graph=True)
        loss = ((g.norm(dim=-1) - 1) ** 2).mean() + sdf.square().mean()
        results.append(torch.autograd.grad(loss, (x, table)))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


# ------------------------------------------------------------------------------------------------
# external tables: shared and per instance


def test_external_shared_table_replaces_params():
    cfg = HashGridConfig(n_levels=4, log2_hashmap_size=10)
    grid = HashGrid(2, cfg)
    table = torch.randn_like(grid.params)
    x = torch.rand(3, 50, 2)
    out = grid(x, table=table)
    assert out.shape == (3, 50, cfg.n_output_dims)
    torch.testing.assert_close(out, hashgrid_reference(x.reshape(-1, 2), table, cfg).view(3, 50, -1))


@pytest.mark.parametrize("d", [2, 3])
def test_per_instance_tables_equal_loop(d, fast_mode):
    cfg = HashGridConfig(n_levels=5, base_resolution=4, log2_hashmap_size=8)
    grid = HashGrid(d, cfg)
    B, N = 3, 200
    tables = torch.randn(B, *grid.params.shape, dtype=torch.float64, requires_grad=True)
    x = torch.rand(B, N, d, dtype=torch.float64, requires_grad=True)
    out = grid(x, table=tables)
    assert out.shape == (B, N, cfg.n_output_dims)
    loop = torch.stack([hashgrid_encode(x[b], tables[b], cfg) for b in range(B)])
    torch.testing.assert_close(out, loop)
    g = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, (x, tables), g), torch.autograd.grad(loop, (x, tables), g))
    # shared coordinates [N, d] with per-instance tables
    xs = torch.rand(N, d, dtype=torch.float64)
    torch.testing.assert_close(grid(xs, table=tables), torch.stack([hashgrid_encode(xs, tables[b], cfg)
                                                                    for b in range(B)]))


def test_inference_mode_and_no_grad(fast_mode):
    grid = HashGrid(2, HashGridConfig(n_levels=4, log2_hashmap_size=10))
    x = torch.rand(500, 2)
    expected = grid(x).detach()
    with torch.inference_mode():
        torch.testing.assert_close(grid(x), expected)
    with torch.no_grad():
        torch.testing.assert_close(grid(x), expected)


def test_bad_shapes_and_inputs():
    grid = HashGrid(2, HashGridConfig(n_levels=2, log2_hashmap_size=8))
    with pytest.raises(ValueError, match="2-D"):
        grid(torch.rand(4, 3))
    with pytest.raises(ValueError, match="table"):
        grid(torch.rand(4, 2), table=torch.zeros(5, 2))
    with pytest.raises(ValueError, match="instances|per-instance"):
        grid(torch.rand(3, 4, 2), table=torch.zeros(2, *grid.params.shape))
    with pytest.raises(ValueError, match="NaN"):
        grid(torch.tensor([[0.5, float("nan")]]))
    assert grid(torch.zeros(0, 2)).shape == (0, 4)


def test_module_init_and_state_dict():
    grid = HashGrid(3, HashGridConfig(n_levels=4, log2_hashmap_size=10), generator=torch.Generator().manual_seed(0))
    assert grid.n_output_dims == 8 and grid.params.dtype == torch.float32
    assert grid.params.abs().max() <= 1e-4 and grid.params.std() > 1e-5
    other = HashGrid(3, grid.config)
    other.load_state_dict(grid.state_dict())
    x = torch.rand(10, 3)
    torch.testing.assert_close(other(x), grid(x))
    assert list(grid.state_dict()) == ["params"]


# ------------------------------------------------------------------------------------------------
# configs


def test_config_from_tcnn():
    cfg = HashGridConfig.from_tcnn({"otype": "HashGrid", "n_levels": 8, "n_features_per_level": 4,
                                    "log2_hashmap_size": 15, "base_resolution": 8, "per_level_scale": 1.5,
                                    "interpolation": "Smoothstep"})
    assert cfg == HashGridConfig(8, 4, 15, 8, 1.5, None, "smoothstep")
    assert HashGridConfig.from_tcnn({"otype": "Grid", "type": "Hash"}) == HashGridConfig()
    assert HashGridConfig.from_tcnn({"otype": "DenseGrid", "n_levels": 2}).grid_type == "dense"
    assert HashGridConfig.from_tcnn({"otype": "HashGrid", "n_features": 8}).n_levels == 4
    assert HashGridConfig.from_tcnn(cfg.to_tcnn()) == cfg
    with pytest.raises(ValueError, match="n_level"):
        HashGridConfig.from_tcnn({"otype": "HashGrid", "n_level": 16})
    with pytest.raises(ValueError, match="interpolation"):
        HashGridConfig.from_tcnn({"otype": "HashGrid", "interpolation": "Nearest"})
    with pytest.raises(ValueError, match="otype"):
        HashGridConfig.from_tcnn({"otype": "Frequency"})
    with pytest.raises(ValueError, match="type"):
        HashGridConfig.from_tcnn({"otype": "Grid", "type": "Tiled"})


def test_config_dict_round_trip_and_finest():
    cfg = HashGridConfig(n_levels=16, base_resolution=16, finest_resolution=2048)
    assert cfg.per_level_scale == pytest.approx(math.exp(math.log(128) / 15))
    d = cfg.to_dict()
    assert HashGridConfig.from_dict(d) == cfg
    import json
    assert HashGridConfig.from_dict(json.loads(json.dumps(d))) == cfg
    with pytest.raises(ValueError, match="'levels'"):
        HashGridConfig.from_dict({"levels": 3})
    with pytest.raises(ValueError, match="interpolation"):
        HashGridConfig(interpolation="cubic")
    with pytest.raises(ValueError, match="disagrees"):
        HashGridConfig(per_level_scale=1.5, finest_resolution=2048)
    assert HashGridConfig(interpolation="Smoothstep").interpolation == "smoothstep"


def test_encoding_from_config():
    grid = encoding_from_config({"otype": "HashGrid", "n_levels": 4, "log2_hashmap_size": 10}, 3)
    assert isinstance(grid, HashGrid) and grid.n_output_dims == 8
    ours = encoding_from_config({"otype": "hash_grid", "n_levels": 2, "finest_resolution": 64}, 2)
    assert ours.config.finest_resolution == 64
    freq = encoding_from_config({"otype": "Frequency", "n_frequencies": 3}, 2)
    assert isinstance(freq, FrequencyEncoding) and freq.n_output_dims == 12 and not freq.include_input
    sh = encoding_from_config({"otype": "SphericalHarmonics", "degree": 3}, 3)
    assert isinstance(sh, SphericalHarmonics) and sh.n_output_dims == 9
    ident = encoding_from_config({"otype": "Identity"}, 5)
    assert isinstance(ident, Identity) and ident.n_output_dims == 5
    gff = encoding_from_config({"otype": "gaussian_fourier", "n_features": 16, "sigma": 3.0}, 2)
    assert gff.n_output_dims == 32
    with pytest.raises(ValueError, match="n_freqs"):
        encoding_from_config({"otype": "Frequency", "n_freqs": 3}, 2)
    with pytest.raises(ValueError, match="OneBlob"):
        encoding_from_config({"otype": "OneBlob"}, 2)
    with pytest.raises(ValueError, match="3-D"):
        encoding_from_config({"otype": "SphericalHarmonics"}, 2)


# ------------------------------------------------------------------------------------------------
# frequency, Fourier features, spherical harmonics


def test_frequency_encoding():
    enc = FrequencyEncoding(2, 3)
    assert enc.n_output_dims == 2 * (1 + 6)
    x = torch.tensor([[0.25, -0.5]])
    y = enc(x)
    assert y.shape == (1, 14)
    torch.testing.assert_close(y[0, :2], x[0])
    # dim 0, frequencies 1, 2, 4 (times pi): [sin, cos] pairs, then dim 1
    a = math.pi * 0.25 * torch.tensor([1.0, 2.0, 4.0])
    expected0 = torch.stack([torch.sin(a), torch.cos(a)], -1).flatten()
    torch.testing.assert_close(y[0, 2:8], expected0)
    assert FrequencyEncoding(3, 4, include_input=False)(torch.zeros(5, 7, 3)).shape == (5, 7, 24)


def test_gaussian_fourier_features():
    enc = GaussianFourierFeatures(3, 8, sigma=2.0, generator=torch.Generator().manual_seed(0))
    assert enc.n_output_dims == 16 and enc.B.shape == (8, 3)
    x = torch.rand(4, 3)
    y = enc(x)
    arg = 2 * math.pi * x @ enc.B.T
    torch.testing.assert_close(y, torch.cat([torch.cos(arg), torch.sin(arg)], -1))
    assert "B" in enc.state_dict()
    other = GaussianFourierFeatures(3, 8, sigma=2.0)
    other.load_state_dict(enc.state_dict())
    torch.testing.assert_close(other(x), y)
    big = GaussianFourierFeatures(2, 20000, sigma=10.0, generator=torch.Generator().manual_seed(1))
    assert big.B.std().item() == pytest.approx(10.0, rel=0.03)


def test_spherical_harmonics_values():
    d = torch.tensor([[0.0, 0.0, 1.0], [0.6, 0.0, 0.8]])
    y1 = SphericalHarmonics(1)(d)
    assert y1.shape == (2, 1) and y1[0, 0].item() == pytest.approx(0.28209479177387814)
    y = SphericalHarmonics(4)(d.double())
    assert y.shape == (2, 16)
    x, z = 0.6, 0.8  # tcnn's signs: Y1 = -c*y, c*z, -c*x
    assert y[1, 3].item() == pytest.approx(-0.48860251190291987 * x, rel=1e-6)
    assert y[1, 2].item() == pytest.approx(0.48860251190291987 * z, rel=1e-6)
    assert y[1, 6].item() == pytest.approx(0.94617469575755997 * z * z - 0.31539156525251999, rel=1e-6)
    assert y[1, 12].item() == pytest.approx(0.3731763325901154 * z * (5 * z * z - 3), rel=1e-6)
    with pytest.raises(ValueError):
        SphericalHarmonics(5)


def test_spherical_harmonics_orthonormal():
    n = 20000  # Fibonacci sphere: near-uniform points, weights 4 pi / n
    i = torch.arange(n, dtype=torch.float64) + 0.5
    z = 1 - 2 * i / n
    phi = math.pi * (3 - math.sqrt(5)) * i
    r = torch.sqrt(1 - z * z)
    d = torch.stack([r * torch.cos(phi), r * torch.sin(phi), z], -1)
    y = SphericalHarmonics(4)(d)
    gram = y.T @ y * (4 * math.pi / n)
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=2e-3, rtol=0)
