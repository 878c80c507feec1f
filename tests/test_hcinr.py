"""HC-INR (`inr.hyper.hcinr`, field kind "hcinr"): identity warps at initialisation, the
displacement bound, derivatives against float64 autograd, a short fit against SIREN, the run
directory through the `inr` command, and bad input."""
import json
from pathlib import Path

import pytest
import torch

import inr
from inr.backends import Backend
from inr.cli.main import main
from inr.fields import SirenConfig, SirenField, build_field
from inr.hyper.hcinr import HCINRConfig, HCINRField
from inr.hyper.hcinr import config as hcinr_config
from inr.train.rundir import CONFIG
from test_cli_image import _fails  # one line, exit 2, naming the needles

TINY = dict(levels=2, dense_levels=1, base_resolution=4, per_level_scale=2.0, n_features=2, log2_hashmap_size=6,
            code_dim=4, hyper_hidden=(8,), compact_hidden=(8, 8))
SMALL_CLI = ["--hcinr.levels", "3", "--hcinr.base-resolution", "8", "--hcinr.log2-hashmap-size", "10",
             "--hcinr.compact-hidden", "32", "32", "--hcinr.hyper-hidden", "16"]


def _field(d_in=2, d_out=3, seed=0, **options) -> HCINRField:
    return HCINRField(d_in, d_out, HCINRConfig(**{**TINY, **options}), generator=torch.Generator().manual_seed(seed))


def _randomise_heads(field: HCINRField, std: float) -> None:
    """Make every level's transform far from the identity (the head is zero at initialisation)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for hyper in field.hypernetworks:
            for p in hyper.head.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * std)


@pytest.mark.parametrize("options", [{}, {"compact_code": False}, {"concat_intermediate": True},
                                     {"compact": "fourier", "compact_code": False}, {"d_in": 3, "dense_levels": 2}])
def test_every_warp_is_the_identity_at_initialisation(options):
    options = dict(options)
    d_in = options.pop("d_in", 2)
    field = _field(d_in, 1 if d_in == 3 else 3, **options)
    x = torch.rand(200, d_in) * 2 - 1
    coords, code = field.warp(x)
    assert len(coords) == field.cfg.levels + 1 and all(torch.equal(c, x) for c in coords)
    inp = torch.cat(coords, -1) if field.cfg.concat_intermediate else x
    if field.cfg.compact_code:
        inp = torch.cat([inp, code], -1)
    assert torch.equal(field(x), field.compact(inp))
    if not field.cfg.compact_code and not field.cfg.concat_intermediate:
        assert torch.equal(field(x), field.compact(x))  # the field starts as its compact field at x


def _assert_bounded(field: HCINRField, x: torch.Tensor) -> float:
    """Each level moves each coordinate by at most its bound (up to the rounding of x + step);
    returns the largest move / bound."""
    coords, _ = field.warp(x)
    rounding = 4 * torch.finfo(x.dtype).eps * (x.abs().max().item() + sum(field.bounds))
    worst = 0.0
    for lvl, bound in enumerate(field.bounds):
        step = (coords[lvl + 1] - coords[lvl]).abs().max().item()
        assert step <= bound + rounding, (lvl, step, bound)
        worst = max(worst, step / bound)
    return worst


def test_displacement_bound_holds_on_random_inputs():
    field = _field(displacement_scale=0.5)
    assert field.bounds == pytest.approx([0.5 * 2 / 3, 0.5 * 2 / 7])  # half a cell of 4 and 8 grid points
    _randomise_heads(field, 50.0)  # saturates the tanh: steps reach the bound, never pass it
    x = torch.randn(5000, 2) * 3  # inside and far outside [-1, 1]^2
    assert _assert_bounded(field, x) > 0.99


def test_displacement_bound_holds_after_optimisation():
    torch.manual_seed(0)
    field = _field()
    opt = torch.optim.Adam(field.parameters(), lr=0.05)
    x = torch.rand(512, 2) * 2 - 1
    target = torch.sin(20 * x[:, :1]) * torch.cos(13 * x[:, 1:]).expand(-1, 3)
    for _ in range(40):
        opt.zero_grad()
        torch.mean((field(x) - target) ** 2).backward()
        opt.step()
    coords, _ = field.warp(x)
    assert not torch.equal(coords[-1], x)  # the warp learned something
    _assert_bounded(field, torch.rand(2000, 2) * 2 - 1)


@pytest.mark.parametrize("d_in", [2, 3])
def test_gradients_and_second_derivatives_match_float64_autograd(d_in):
    field = _field(d_in, 1).double()
    _randomise_heads(field, 0.5)  # non-trivial warps: their Jacobians enter every derivative
    x = (torch.rand(6, d_in, dtype=torch.float64) * 1.8 - 0.9).requires_grad_(True)
    assert torch.autograd.gradcheck(field, (x,), eps=1e-6, atol=1e-6)
    assert torch.autograd.gradgradcheck(field, (x,), eps=1e-6, atol=1e-6)
    # the eikonal path: d/d(params) of |grad_x f|^2, as an SDF fit differentiates it
    table = field.grids[1].params.detach().clone().requires_grad_(True)

    def eikonal(t):
        xx = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(field(xx, {"grids.1.params": t}).sum(), xx, create_graph=True)
        return (g ** 2).sum(-1)

    assert torch.autograd.gradcheck(eikonal, (table,), eps=1e-6, atol=1e-6)


def test_compiled_cpu_kernels_match_the_reference():
    """The "auto" backend (C++ hash grid and MLP kernels on a CPU) gives the float64 reference's
    value, gradient and eikonal second derivative to float32 accuracy."""
    field = _field(3, 1, levels=3, dense_levels=1, base_resolution=8, n_features=4, hyper_hidden=(32,),
                   compact_hidden=(64, 64))
    _randomise_heads(field, 0.3)
    x = torch.rand(4096, 3) * 1.8 - 0.9

    def run(f, xs):
        xs = xs.clone().requires_grad_(True)
        y = f(xs)
        (g,) = torch.autograd.grad(y.sum(), xs, create_graph=True)
        f.zero_grad()
        ((g.norm(dim=-1) - 1) ** 2).mean().backward()
        return y.detach(), g.detach(), f.grids[0].params.grad.clone(), f.compact.net.layers[0].weight.grad.clone()

    with Backend("auto").active():
        fast = run(field, x)
    reference = run(field.double(), x.double())
    for a, b in zip(fast, reference):
        assert torch.allclose(a.double(), b, rtol=1e-3, atol=1e-4 * b.abs().max().item())


def test_per_part_counts_and_the_registry_rebuild():
    field = _field()
    parts = field.part_params()
    assert set(parts) == {"grids", "hypernetworks", "compact"}
    assert sum(parts.values()) == sum(p.numel() for p in field.parameters())
    # the grids: 4^2 dense rows and 8^2 = 64 = 2^6 hashed rows, 2 features each
    assert parts["grids"] == (16 + 64) * 2
    config = field.config()
    again = build_field(config.pop("kind"), config.pop("d_in"), config.pop("d_out"), **json.loads(json.dumps(config)))
    again.load_state_dict(field.state_dict())
    x = torch.rand(50, 2) * 2 - 1
    assert torch.equal(again(x), field(x))


# -- through the `inr` command ---------------------------------------------------------------------
FAST = ["--size", "64", "--steps", "150", "--quiet", "--eval-every", "0", "--log-every", "50", "--device", "cpu",
        "--seed", "0"]


def _siren_width_for(params: int, d_in: int = 2, d_out: int = 3) -> int:
    """The width of a 3-hidden-layer SIREN with about `params` parameters."""
    return min(range(4, 512), key=lambda w: abs(SirenField(d_in, d_out, SirenConfig(hidden=(w,) * 3)).spec.n_params()
                                                - params))


def _final(run: Path) -> dict:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]


@pytest.fixture(scope="module")
def hcinr_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "camera-hcinr"
    assert main(["fit", "image", "camera", "--field", "hcinr", "--out", str(out), *FAST]) == 0  # the defaults
    return out


def test_short_fit_beats_a_siren_of_the_same_size(hcinr_run, tmp_path):
    config = json.loads((hcinr_run / CONFIG).read_text())
    n = sum(t.numel() for t in inr.load(hcinr_run).state_dict().values())
    width = _siren_width_for(n)
    siren = tmp_path / "camera-siren"
    assert main(["fit", "image", "camera", "--field", "siren", "--siren.hidden", *[str(width)] * 3,
                 "--out", str(siren), *FAST]) == 0
    n_siren = sum(t.numel() for t in inr.load(siren).state_dict().values())
    assert abs(n_siren - n) < 0.05 * n
    ours, theirs = _final(hcinr_run), _final(siren)
    assert ours["step"] == theirs["step"] == 150 and config["field"]["kind"] == "hcinr"
    assert ours["eval"]["psnr"] > theirs["eval"]["psnr"] + 1.0, (ours, theirs)


def test_the_run_reloads_bit_for_bit_and_renders(hcinr_run, tmp_path, capsys):
    from safetensors.torch import load_file

    a, b = inr.load(hcinr_run), inr.load(hcinr_run)
    saved = load_file(str(hcinr_run / "model.safetensors"))
    assert all(torch.equal(t, saved[name]) for name, t in a.state_dict().items())
    x = torch.rand(300, 2) * 2 - 1
    assert torch.equal(a(x), b(x))
    capsys.readouterr()
    assert main(["eval", str(hcinr_run)]) == 0
    assert json.loads(capsys.readouterr().out)["psnr"] == pytest.approx(_final(hcinr_run)["eval"]["psnr"], abs=1e-9)
    assert main(["render", "image", str(hcinr_run), "--scale", "2", "-o", str(tmp_path / "x2.png")]) == 0
    capsys.readouterr()
    assert main(["info", str(hcinr_run)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["params_by_part"]) == {"grids", "hypernetworks", "compact"}
    assert sum(info["params_by_part"].values()) == info["params"] == sum(a.part_params().values())


def test_resume_continues_an_hcinr_run(tmp_path):
    out = tmp_path / "resumed"
    args = ["fit", "image", "camera", "--field", "hcinr", *SMALL_CLI, "--size", "32", "--quiet", "--device", "cpu"]
    assert main([*args, "--steps", "20", "--checkpoint-every", "10", "--out", str(out)]) == 0
    assert main(["fit", "image", "--resume", "--out", str(out), "--steps", "40", "--quiet"]) == 0
    assert _final(out)["step"] == 40


def test_bad_input_is_one_line_exit_2_and_no_run_directory(tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    fit = ["fit", "image", "camera", "--size", "32", "--field", "hcinr", "--out", str(out)]
    _fails([*fit, "--hcinr.levelz", "3"], capsys, "--hcinr.levelz", "--hcinr.levels")
    bad_key = tmp_path / "bad_key.json"
    bad_key.write_text('{"hcinr": {"levelz": 3}}')
    _fails([*fit, "--config", str(bad_key)], capsys, "hcinr.levelz")
    _fails([*fit, "--hcinr.levels", "0"], capsys, "hcinr.levels")
    _fails([*fit, "--hcinr.levels", "-2"], capsys, "hcinr.levels")
    _fails([*fit, "--hcinr.dense-levels", "3", "--hcinr.base-resolution", "100000"], capsys, "dense level 0")
    # a grid larger than memory allows: refused from the estimate, before anything is allocated
    monkeypatch.setattr(hcinr_config, "available_memory", lambda: 1 << 30)
    _fails([*fit, "--hcinr.dense-levels", "1", "--hcinr.base-resolution", "4000"], capsys, "GiB", "available")
    assert not out.exists()


@pytest.mark.open3d
@pytest.mark.slow
def test_fit_sdf_with_hcinr_and_export_a_mesh(tmp_path, capsys):
    out = tmp_path / "sphere-hcinr"
    assert main(["fit", "sdf", "sphere", "--field", "hcinr", "--out", str(out), "--steps", "30", "--quiet",
                 "--batch-size", "2048", "--eval-resolution", "32", "--samples.surface-points", "4000",
                 "--samples.near-points", "4000", "--samples.uniform-points", "1000", "--loss.gradient-points", "256",
                 "--hcinr.base-resolution", "4", "--hcinr.log2-hashmap-size", "10", "--hcinr.compact-hidden", "32", "32",
                 "--device", "cpu"]) == 0
    assert json.loads((out / CONFIG).read_text())["field"]["kind"] == "hcinr"
    assert main(["export", "mesh", str(out), "--resolution", "64", "-o", str(tmp_path / "mesh.ply")]) == 0
    assert (tmp_path / "mesh.ply").stat().st_size > 0
    assert main(["render", "sdf", str(out), "--width", "24", "--height", "16", "-o", str(tmp_path / "x.png")]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert set(json.loads(capsys.readouterr().out)["params_by_part"]) == {"grids", "hypernetworks", "compact"}
    out_bad = tmp_path / "bad"
    assert main(["fit", "sdf", "sphere", "--field", "hcinr", "--hcinr.levels", "0", "--out", str(out_bad)]) == 2
    assert not out_bad.exists()
