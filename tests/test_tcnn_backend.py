"""The "tcnn" backend (inr.backends.tcnn).

Everywhere: the packing of our parameters into tiny-cuda-nn's flat layouts (hand-written
positions, round trips, gradients through the packing, and a torch emulation of what tcnn computes
from the buffer), what the backend refuses, the error when tinycudann is missing, the CLI, and the
whole call path against a fake tinycudann whose native module is that emulation.
Where tinycudann and a GPU exist: tcnn_mlp / tcnn_hashgrid against mlp_forward / hashgrid_encode.
"""
from __future__ import annotations

import math
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from inr import backends
from inr.backends import tcnn
from inr.encodings.hashgrid import (
    HashGrid,
    HashGridConfig,
    grid_layout,
    hashgrid_encode,
)
from inr.nn import MLPSpec, init_mlp_params
from inr.nn.activations import apply_activation
from inr.nn.mlp import mlp_forward

SPEC = MLPSpec(3, (16, 16), 4, bias=False)


def _params(spec: MLPSpec, seed: int = 0, dtype=torch.float32) -> dict[str, torch.Tensor]:
    return init_mlp_params(spec, "he", generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _emulate_tcnn_mlp(flat: torch.Tensor, x: torch.Tensor, spec: MLPSpec) -> torch.Tensor:
    """What tcnn's Network computes from its flat buffer, written from its sources (not from
    tcnn.mlp_layout): the Identity encoding pads x with columns of ONES to a multiple of 16; the
    FullyFusedMLP matrices are row major [out, in], back to back; the output has 16k columns."""
    w, pin, pout = spec.hidden[0], math.ceil(spec.d_in / 16) * 16, math.ceil(spec.d_out / 16) * 16
    h = torch.cat([x, x.new_ones(x.shape[0], pin - spec.d_in)], 1)
    shapes = [(w, pin)] + [(w, w)] * (len(spec.hidden) - 1) + [(pout, w)]
    pos = 0
    for k, (rows, cols) in enumerate(shapes):
        h = h @ flat[pos:pos + rows * cols].view(rows, cols).T
        pos += rows * cols
        h = apply_activation(h, spec.activation if k < len(shapes) - 1 else spec.output_activation)
    assert pos == flat.numel()
    return h  # [N, pout]: tcnn returns the padded columns too


# ------------------------------------------------------------------------------------------------
# packing (pure torch)


def test_mlp_layout_positions_by_hand():
    spec = MLPSpec(2, (16,), 1, bias=False)
    w0 = torch.arange(32.0).view(16, 2)
    w1 = 100 + torch.arange(16.0).view(1, 16)
    flat = tcnn.pack_mlp_params({"layers.0.weight": w0, "layers.1.weight": w1}, spec, torch.float32)
    assert flat.shape == (16 * 16 + 16 * 16,)  # [16, pad16(2)] then [pad16(1), 16]
    assert flat[:4].tolist() == [0.0, 1.0, 0.0, 0.0]            # row 0 of W0, then its zero padding
    assert flat[16:18].tolist() == [2.0, 3.0]                   # row 1 starts 16 values in: row major
    assert flat[15 * 16 + 1] == 31.0 and flat[:256].view(16, 16)[:, 2:].abs().sum() == 0
    assert flat[256:272].tolist() == w1[0].tolist()             # the output matrix, row 0
    assert flat[272:].abs().sum() == 0                          # 15 padded output rows


@pytest.mark.parametrize("spec", [SPEC, MLPSpec(32, (64, 64, 64), 3, bias=False, output_activation="sigmoid"),
                                  MLPSpec(17, (32,), 16, bias=False, activation="none")])
def test_mlp_pack_round_trip_and_computes_the_same_function(spec):
    params = _params(spec, dtype=torch.float64)
    flat = tcnn.pack_mlp_params(params, spec, torch.float64)
    assert flat.shape == (tcnn.mlp_n_params(spec),)
    back = tcnn.unpack_mlp_params(flat, spec, torch.float64)
    assert back.keys() == params.keys() and all(torch.equal(back[k], params[k]) for k in params)
    x = torch.rand(50, spec.d_in, dtype=torch.float64)
    y = _emulate_tcnn_mlp(flat, x, spec)
    torch.testing.assert_close(y[:, :spec.d_out], mlp_forward(x, params, spec))
    # fp16 by default, as tcnn's FullyFusedMLP wants
    assert tcnn.pack_mlp_params(_params(spec), spec).dtype == torch.float16


def test_mlp_gradients_flow_through_packing():
    params = {k: v.requires_grad_() for k, v in _params(SPEC).items()}
    flat = tcnn.pack_mlp_params(params, SPEC)                   # fp16, as sent to tcnn
    r = torch.randn(flat.shape[0], dtype=torch.float64)
    (flat.double() * r).sum().backward()
    # the gradient comes back through the fp16 cast (so rounded to fp16); the padding's is dropped
    expect = tcnn.unpack_mlp_params(r.half(), SPEC, torch.float32)
    for k, p in params.items():
        assert p.grad.dtype == torch.float32
        torch.testing.assert_close(p.grad, expect[k])


def test_hashgrid_pack_positions_round_trip_and_gradients():
    cfg = HashGridConfig(n_levels=3, n_features_per_level=2, log2_hashmap_size=6, base_resolution=4)
    lay = grid_layout(cfg, 2)
    table = torch.randn(lay.total_rows, 2, requires_grad=True)
    flat = tcnn.pack_hashgrid_table(table)
    assert flat.shape == (tcnn.hashgrid_n_params(cfg, 2),) == (lay.total_rows * 2,)
    for lvl, off in enumerate(lay.offsets):  # grid.h: level at offset_l * F, row r feature f at r * F + f
        r, f = lay.sizes[lvl] - 1, 1
        assert flat[(off + r) * 2 + f] == table[off + r, f]
    assert torch.equal(tcnn.unpack_hashgrid_table(flat, cfg, 2), table)
    r = torch.randn_like(flat)
    (flat * r).sum().backward()
    assert torch.equal(table.grad, r.view(-1, 2))


def _tcnn_level_sizes(cfg: HashGridConfig, d: int, log2_scale: np.float32) -> list[tuple[float, int, int]]:
    """(scale, resolution, rows) per level as tcnn's GridEncodingTemplated constructor computes them
    (grid.h): float32 scale = exp2f(l * log2_scale) * base - 1, res = ceil(scale) + 1, rows =
    next_multiple(res**d, 8), capped at 2**log2_hashmap_size for hash grids."""
    out = []
    for lvl in range(cfg.n_levels):
        scale = np.float32(np.exp2(np.float32(lvl) * log2_scale)) * np.float32(cfg.base_resolution) - np.float32(1)
        res = math.ceil(float(scale)) + 1
        rows = math.ceil(min(res ** d, 2**31 - 1) / 8) * 8
        if cfg.grid_type == "hash":
            rows = min(rows, 2**cfg.log2_hashmap_size)
        out.append((float(scale), res, rows))
    return out


def _tcnn_log2(per_level_scale: float) -> np.float32:
    """tcnn: std::log2 of the float32 per_level_scale (json value(..., 2.0f)), in float32."""
    return np.float32(math.log2(float(np.float32(per_level_scale))))


@pytest.mark.parametrize("cfg,d", [(HashGridConfig(), 3), (HashGridConfig(per_level_scale=1.5, base_resolution=8), 2),
                                   (HashGridConfig(n_levels=6, grid_type="dense", base_resolution=4), 3),
                                   (HashGridConfig(n_levels=8, log2_hashmap_size=12, interpolation="smoothstep"), 4)])
def test_grid_layout_is_tcnns(cfg, d):
    lay = grid_layout(cfg, d)
    ref = _tcnn_level_sizes(cfg, d, _tcnn_log2(cfg.per_level_scale))
    assert list(lay.scales) == [s for s, _, _ in ref]
    assert list(lay.resolutions) == [r for _, r, _ in ref]
    assert list(lay.sizes) == [n for _, _, n in ref]
    assert list(lay.offsets) == [sum(n for _, _, n in ref[:i]) for i in range(cfg.n_levels)]


def test_grids_whose_tcnn_scales_differ_are_refused():
    """grid_layout rounds the float64 log2 of per_level_scale; tcnn takes log2 of its float32 value.
    Where that changes the level scales, the tcnn backend must not run the grid."""
    cfg = HashGridConfig(n_levels=16, finest_resolution=512)  # 32 ** (1/15): not exact in float32
    ref = _tcnn_level_sizes(cfg, 2, _tcnn_log2(cfg.per_level_scale))
    assert tcnn.tcnn_level_scales(cfg) == tuple(s for s, _, _ in ref)
    assert list(grid_layout(cfg, 2).scales) != [s for s, _, _ in ref] and ref[-1][1] == 513
    x, table = torch.zeros(4, 2), torch.zeros(grid_layout(cfg, 2).total_rows, 2)
    assert "per_level_scale" in tcnn.hashgrid_unsupported(x, table, cfg)
    exact = HashGridConfig()  # per_level_scale 2: exact, the scales agree
    assert tcnn.tcnn_level_scales(exact) == grid_layout(exact, 3).scales


def test_configs_sent_to_tcnn():
    assert tcnn.network_config(MLPSpec(3, (64, 64), 4, bias=False, output_activation="exp")) == {
        "otype": "FullyFusedMLP", "activation": "ReLU", "output_activation": "Exponential",
        "n_neurons": 64, "n_hidden_layers": 2}
    cfg = HashGridConfig(n_levels=4, grid_type="dense", interpolation="smoothstep")
    enc = tcnn.encoding_config(cfg)
    assert enc["type"] == "Dense" and enc["interpolation"] == "Smoothstep" and enc["hash"] == "CoherentPrime"
    assert HashGridConfig.from_tcnn(enc) == cfg


# ------------------------------------------------------------------------------------------------
# what the backend refuses (CPU tensors pass every other check, so each reason is the first one hit)


@pytest.mark.parametrize("spec,params,x,why", [
    (MLPSpec(3, (16, 16), 4), None, None, "bias"),
    (MLPSpec(3, (16, 16), 4, bias=False, activation="sine"), None, None, "hidden activation"),
    (MLPSpec(3, (16, 16), 4, bias=False, output_activation="sine"), None, None, "output activation"),
    (MLPSpec(3, (256, 256), 4, bias=False), None, None, "hidden widths"),
    (MLPSpec(3, (24, 24), 4, bias=False), None, None, "hidden widths"),
    (MLPSpec(3, (32, 16), 4, bias=False), None, None, "hidden widths"),
    (MLPSpec(3, (), 4, bias=False), None, None, "hidden widths"),
    (MLPSpec(200, (16,), 4, bias=False), None, None, "d_in"),
    (SPEC, "per-instance", None, "per-instance"),
    (SPEC, "missing", None, "missing"),
    (SPEC, None, torch.zeros(2, 5, 3), "x of shape"),
    (SPEC, None, torch.zeros(5, 2), "x of shape"),
    (SPEC, None, torch.zeros(5, 3, dtype=torch.float64), "float32"),
    (SPEC, "float64", None, "float32"),
    (SPEC, None, torch.zeros(5, 3), "CUDA"),
    (SPEC, None, torch.zeros(1, 5, 3), "CUDA"),
])
def test_mlp_unsupported_cases(spec, params, x, why):
    p = _params(spec)
    if params == "per-instance":
        p["layers.1.weight"] = p["layers.1.weight"].expand(2, -1, -1)
    elif params == "missing":
        del p["layers.0.weight"]
    elif params == "float64":
        p = _params(spec, dtype=torch.float64)
    x = torch.zeros(5, spec.d_in) if x is None else x
    assert why in tcnn.mlp_unsupported(x, p, spec)
    assert not tcnn.mlp_supports(x, p, spec)


@pytest.mark.parametrize("cfg,table,x,why", [
    (HashGridConfig(n_levels=2, log2_hashmap_size=8), None, torch.rand(5, 1), "1-D inputs"),
    (HashGridConfig(n_levels=2, log2_hashmap_size=8), None, torch.rand(5, 5), "5-D inputs"),
    (HashGridConfig(n_levels=2, log2_hashmap_size=8, n_features_per_level=3), None, None, "features per level"),
    (HashGridConfig(n_levels=33, log2_hashmap_size=8), None, None, "levels"),
    (HashGridConfig(n_levels=2, log2_hashmap_size=8), "per-instance", None, "table of shape"),
    (HashGridConfig(n_levels=2, log2_hashmap_size=8), None, torch.rand(5, 3, dtype=torch.float64), "float32"),
    (HashGridConfig(n_levels=2, log2_hashmap_size=8), None, torch.rand(5, 3), "CUDA"),
    (HashGridConfig(n_levels=2, log2_hashmap_size=8), None, torch.rand(4, 5, 3), "CUDA"),
])
def test_hashgrid_unsupported_cases(cfg, table, x, why):
    x = torch.rand(5, 3) if x is None else x
    rows = grid_layout(cfg, 3).total_rows
    table = torch.zeros(2, rows, cfg.n_features_per_level) if table else torch.zeros(rows, cfg.n_features_per_level)
    assert why in tcnn.hashgrid_unsupported(x, table, cfg)
    assert not tcnn.hashgrid_supports(x, table, cfg)


# ------------------------------------------------------------------------------------------------
# tinycudann missing / present


@pytest.fixture
def fresh(monkeypatch):
    """A fresh import attempt and no cached modules."""
    monkeypatch.setattr(tcnn, "_NATIVE", {})
    tcnn._import.cache_clear()
    yield monkeypatch
    tcnn._import.cache_clear()


def _check_hint(err: ValueError, cause: str) -> None:
    msg = str(err)
    assert "\n" not in msg and cause in msg and tcnn.INSTALL in msg, msg


def test_importing_the_backend_never_imports_tinycudann():
    code = ("import sys, inr, inr.backends.tcnn as t; assert 'tinycudann' not in sys.modules; "
            "t.mlp_supports; assert 'tinycudann' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=900)


def test_backend_tcnn_without_tinycudann_raises_with_install_hint(fresh):
    fresh.setitem(sys.modules, "tinycudann", None)  # `import tinycudann` raises ModuleNotFoundError
    before = backends.active_backend()
    assert not tcnn.available()
    with pytest.raises(ValueError) as err:
        backends.Backend("tcnn")
    _check_hint(err.value, "ModuleNotFoundError")
    assert backends.active_backend() == before


def test_tinycudann_that_fails_on_import_is_reported(fresh, tmp_path):
    pkg = tmp_path / "tinycudann"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('raise EnvironmentError("Unknown compute capability.\\nEnsure CUDA")\n')
    fresh.delitem(sys.modules, "tinycudann", raising=False)
    fresh.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError) as err:
        tcnn.require()
    _check_hint(err.value, "OSError: Unknown compute capability. Ensure CUDA")


def test_backend_tcnn_with_tinycudann_present(fresh):
    fresh.setitem(sys.modules, "tinycudann", types.ModuleType("tinycudann"))
    with backends.Backend("tcnn").active():
        assert backends.active_backend().name == "tcnn" and tcnn.available()
        # CPU inputs never reach tcnn: the same results as the reference ops
        x, p = torch.rand(7, 3), _params(SPEC)
        torch.testing.assert_close(backends.mlp_op(x, p, SPEC), mlp_forward(x, p, SPEC))
        grid = HashGrid(3, HashGridConfig(n_levels=2, log2_hashmap_size=8))
        torch.testing.assert_close(grid(x), hashgrid_encode(x, grid.params, grid.config))
    assert backends.active_backend().name == "auto"  # the choice ends with its block
    assert "CUDA" in tcnn.mlp_unsupported(x, p, SPEC)


# ------------------------------------------------------------------------------------------------
# the whole call path against a fake tinycudann (CPU): packing, batch padding, slicing, casts, cache


class _FakeNative:
    """Stands in for a native tcnn module: the emulation above (or hashgrid_encode) on its buffer."""

    def __init__(self, n_params: int, n_out: int, run):
        self._n, self._out, self.run = n_params, n_out, run

    def n_params(self) -> int:
        return self._n

    def n_output_dims(self) -> int:
        return self._out


def _fake_tinycudann(monkeypatch, granularity: int = 128, wrong_layout: bool = False) -> list:
    calls = []

    class Module:
        def __init__(self, native, dtype):
            self.native_tcnn_module, self.dtype, self.loss_scale = native, dtype, 128.0

    def network(d_in, d_out, cfg):
        spec = MLPSpec(d_in, (cfg["n_neurons"],) * cfg["n_hidden_layers"], d_out, bias=False,
                       activation={"ReLU": "relu", "None": "none"}[cfg["activation"]],
                       output_activation={"None": "none", "Sigmoid": "sigmoid", "Exponential": "exp",
                                          "ReLU": "relu"}[cfg["output_activation"]])
        n = tcnn.mlp_n_params(spec) + (16 if wrong_layout else 0)
        return Module(_FakeNative(n, math.ceil(d_out / 16) * 16,
                                  lambda x, flat: _emulate_tcnn_mlp(flat.float(), x, spec).half()), torch.float16)

    def encoding(d, cfg, dtype):
        c = HashGridConfig.from_tcnn(cfg)
        def run(x, flat):
            return hashgrid_encode(x, flat.view(-1, c.n_features_per_level), c)

        return Module(_FakeNative(tcnn.hashgrid_n_params(c, d), c.n_output_dims, run), dtype)

    def apply(native, x, params, loss_scale):  # tinycudann.modules._module_function.apply
        calls.append((x.shape, x.dtype, params.dtype, x.is_contiguous(), params.is_contiguous()))
        return native.run(x, params)

    mod = types.ModuleType("tinycudann")
    mod.Network, mod.Encoding = network, encoding
    modules = types.ModuleType("tinycudann.modules")
    modules._C = types.SimpleNamespace(batch_size_granularity=lambda: granularity)
    modules._module_function = types.SimpleNamespace(apply=apply)
    monkeypatch.setitem(sys.modules, "tinycudann", mod)
    monkeypatch.setitem(sys.modules, "tinycudann.modules", modules)
    # everything else was checked above; let CPU tensors through to the call path
    monkeypatch.setattr(tcnn, "mlp_unsupported", lambda *a: None)
    monkeypatch.setattr(tcnn, "hashgrid_unsupported", lambda *a: None)
    return calls


@pytest.mark.parametrize("shape", [(300, 3), (1, 300, 3), (128, 3)])
def test_tcnn_mlp_call_path_with_fake_tinycudann(fresh, shape):
    calls = _fake_tinycudann(fresh)
    spec = MLPSpec(3, (32, 32), 4, bias=False, output_activation="sigmoid")
    params = {k: v.requires_grad_() for k, v in _params(spec).items()}
    gen = torch.Generator().manual_seed(1)  # fixed: fp16 gradient tolerances are not for any draw
    x = torch.rand(*shape, generator=gen).requires_grad_()
    y = tcnn.tcnn_mlp(x, params, spec)
    # the reference with the fp16-rounded weights tcnn receives (ReLU gates then agree): what is left
    # is the fp16 output and the fp16 gradients
    ref_params = {k: v.detach().half().float().requires_grad_() for k, v in params.items()}
    xr = x.detach().requires_grad_()
    ref = mlp_forward(xr, ref_params, spec)
    assert y.shape == ref.shape and y.dtype == torch.float32
    assert calls[-1] == ((math.ceil(shape[-2] / 128) * 128, 3), torch.float32, torch.float16, True, True)
    torch.testing.assert_close(y, ref, atol=1e-3, rtol=1e-3)
    g = torch.randn(ref.shape, generator=gen)
    (y * g).sum().backward()
    (ref * g).sum().backward()
    for k, p in params.items():
        torch.testing.assert_close(p.grad, ref_params[k].grad, atol=2e-3, rtol=2e-3)
    torch.testing.assert_close(x.grad, xr.grad, atol=5e-3, rtol=5e-3)
    assert len(tcnn._NATIVE) == 1  # one module per (spec, device), reused
    tcnn.tcnn_mlp(x, params, spec)
    assert len(tcnn._NATIVE) == 1


def test_tcnn_hashgrid_call_path_with_fake_tinycudann(fresh):
    _fake_tinycudann(fresh, granularity=256)
    cfg = HashGridConfig(n_levels=4, log2_hashmap_size=10, base_resolution=4)
    table = (torch.rand(grid_layout(cfg, 3).total_rows, 2) - 0.5).requires_grad_()
    x = torch.rand(2, 150, 3)
    y = tcnn.tcnn_hashgrid(x, table, cfg)
    ref = hashgrid_encode(x, table, cfg)
    assert y.shape == (2, 150, 8)
    torch.testing.assert_close(y, ref)
    (y.square().sum()).backward()
    g, table.grad = table.grad, None
    ref.square().sum().backward()
    torch.testing.assert_close(g, table.grad)


def test_module_with_another_layout_warns_and_falls_back(fresh):
    _fake_tinycudann(fresh, wrong_layout=True)
    with pytest.warns(RuntimeWarning, match="expected"):
        assert tcnn._network(SPEC, torch.device("cpu")) is None
    assert tcnn._network(SPEC, torch.device("cpu")) is None  # cached: warned once


# ------------------------------------------------------------------------------------------------
# command line


def _fit_tcnn_without_tinycudann(tmp_path) -> tuple[subprocess.CompletedProcess, object]:
    import imageio.v3 as iio

    img = tmp_path / "tiny.png"
    iio.imwrite(img, np.zeros((32, 32, 3), np.uint8))
    # `python -m inr.cli.main`, with `import tinycudann` made to fail whether or not it is installed
    code = "import sys, runpy; sys.modules['tinycudann'] = None; runpy.run_module('inr.cli.main', run_name='__main__')"
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", code, "fit", "image", str(img), "--backend", "tcnn",
                           "--out", str(out), "--steps", "2", "--quiet"], capture_output=True, text=True, timeout=900, check=False)
    return proc, out


def test_cli_fit_with_tcnn_missing_fails(tmp_path):
    proc, out = _fit_tcnn_without_tinycudann(tmp_path)
    assert proc.returncode != 0 and tcnn.INSTALL in proc.stderr, proc.stderr
    assert not out.exists()  # no half-made run directory left behind


def test_cli_fit_with_tcnn_missing_fails_with_one_line(tmp_path):
    proc, _ = _fit_tcnn_without_tinycudann(tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"inr: error: {proc.stderr.split('inr: error: ')[-1].strip()}"]
    assert tcnn.INSTALL in proc.stderr


# ------------------------------------------------------------------------------------------------
# against tiny-cuda-nn itself (GPU with tinycudann only)


@pytest.fixture
def gpu_tcnn():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    pytest.importorskip("tinycudann")  # after the CUDA check: without a GPU its import raises OSError
    return torch.device("cuda")


@pytest.mark.parametrize("spec", [MLPSpec(3, (64, 64), 4, bias=False),
                                  MLPSpec(32, (128, 128, 128), 3, bias=False, output_activation="sigmoid"),
                                  MLPSpec(2, (16,), 1, bias=False, activation="none", output_activation="exp"),
                                  MLPSpec(16, (32, 32), 20, bias=False, output_activation="relu")])
def test_tcnn_mlp_matches_mlp_forward(gpu_tcnn, spec):
    dev = gpu_tcnn
    params = {k: (0.5 * v).to(dev).requires_grad_() for k, v in _params(spec).items()}
    assert tcnn.mlp_supports(torch.zeros(1, spec.d_in, device=dev), params, spec)
    x = torch.rand(1000, spec.d_in, device=dev, requires_grad=True)
    y = tcnn.tcnn_mlp(x, params, spec)
    ref_params = {k: v.detach().clone().requires_grad_() for k, v in params.items()}
    xr = x.detach().clone().requires_grad_()
    ref = mlp_forward(xr, ref_params, spec)
    assert y.dtype == torch.float32 and y.shape == ref.shape
    # fp16 weights and activations (10-bit mantissa) through up to 4 layers
    torch.testing.assert_close(y, ref, atol=2e-2, rtol=2e-2)
    g = torch.randn_like(ref)
    (y * g).sum().backward()
    (ref * g).sum().backward()
    # fp16 gradients (loss scale 128), and fp16 rounding moves a few points across ReLU kinks, which
    # alone changes fp32 gradients by ~0.5-2% in norm here: 5% in norm (a layout error gives ~100%)
    for k, p in params.items():
        err = (p.grad - ref_params[k].grad).norm() / ref_params[k].grad.norm().clamp_min(1e-12)
        assert err < 5e-2, (k, float(err))
    err = (x.grad - xr.grad).norm() / xr.grad.norm().clamp_min(1e-12)
    assert err < 5e-2, float(err)


def test_tcnn_backend_through_the_dispatcher(gpu_tcnn):
    spec = MLPSpec(3, (64, 64), 4, bias=False)
    p = {k: v.to(gpu_tcnn) for k, v in _params(spec).items()}
    x = torch.rand(300, 3, device=gpu_tcnn)
    bias = MLPSpec(3, (64, 64), 4)  # biases: falls back to our kernels, same result as the reference
    pb = {k: v.to(gpu_tcnn) for k, v in _params(bias).items()}
    with backends.Backend("tcnn").active():
        torch.testing.assert_close(backends.mlp_op(x, p, spec), tcnn.tcnn_mlp(x, p, spec))
        torch.testing.assert_close(backends.mlp_op(x, pb, bias), mlp_forward(x, pb, bias), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cfg,d", [
    (HashGridConfig(n_levels=8, log2_hashmap_size=14, base_resolution=4), 3),
    (HashGridConfig(n_levels=6, log2_hashmap_size=12, base_resolution=8, interpolation="smoothstep"), 2),
    (HashGridConfig(n_levels=4, n_features_per_level=4, grid_type="dense", base_resolution=4), 2),
    (HashGridConfig(n_levels=5, n_features_per_level=1, per_level_scale=1.5, log2_hashmap_size=16), 3),
])
def test_tcnn_hashgrid_matches_hashgrid_encode(gpu_tcnn, cfg, d):
    dev = gpu_tcnn
    gen = torch.Generator().manual_seed(0)
    table = (torch.rand(grid_layout(cfg, d).total_rows, cfg.n_features_per_level, generator=gen) - 0.5).to(dev)
    table.requires_grad_()
    x = torch.rand(4096, d, generator=gen).to(dev).requires_grad_()
    assert tcnn.hashgrid_supports(x, table, cfg)
    y = tcnn.tcnn_hashgrid(x, table, cfg)
    tr, xr = table.detach().clone().requires_grad_(), x.detach().clone().requires_grad_()
    ref = hashgrid_encode(xr, tr, cfg)
    assert y.dtype == torch.float32 and y.shape == ref.shape
    # both float32; positions differ by an fma rounding at most
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-4)
    g = torch.randn_like(ref)
    (y * g).sum().backward()
    (ref * g).sum().backward()
    torch.testing.assert_close(table.grad, tr.grad, atol=1e-4, rtol=1e-4)  # float32 atomics: order varies
    torch.testing.assert_close(x.grad, xr.grad, atol=1e-3, rtol=1e-3)
