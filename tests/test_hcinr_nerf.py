"""`inr fit nerf --field.encoding hcinr`: HC-INR's warp as the NeRF's position encoder, end to end on
a tiny generated scene (fit lowers the loss, reload bit-for-bit, eval, render, info, resume, bad input)."""
import json
from pathlib import Path

import pytest
import torch

import inr
from inr.cli.main import main
from inr.fields.nerf import NerfField, NerfFieldConfig
from test_cli_image import _fails  # one line, exit 2, naming the needles
from test_cli_nerf import scene  # noqa: F401  (the tiny generated blocks scene, a fixture)

HCINR = ["--field.encoding", "hcinr", "--hcinr.levels", "3", "--hcinr.base-resolution", "8",
         "--hcinr.log2-hashmap-size", "12", "--hcinr.compact-hidden", "32", "--hcinr.hyper-hidden", "16"]
SMALL = ["--occupancy.resolution", "32", "--march.steps-per-diagonal", "128", "--batch-size", "4096", "--quiet",
         "--log-every", "10", "--checkpoint-every", "60", "--eval-every", "0", "--eval-views", "2"]


def test_the_field_starts_as_its_compact_density_mlp_at_x():
    cfg = NerfFieldConfig(encoding="hcinr", hcinr={"levels": 2, "base_resolution": 4, "log2_hashmap_size": 8,
                                                   "compact_hidden": [16]})
    field = NerfField(3, 4, cfg, generator=torch.Generator().manual_seed(0))
    x = torch.rand(64, 3) * 2.8 - 1.4
    coords, code = field.encoding.warp(field._unit(x)[0] * 2 - 1)
    assert all(torch.equal(c, coords[0]) for c in coords)  # identity warps at initialisation
    h = field.encoding.compact(torch.cat([coords[0], code], -1))
    assert torch.equal(field.geometry(x)[1], h)
    groups = field.param_groups(1e-2)  # warp at the run's lr, the compact SIREN warp_lr_scale slower
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-2, 1e-2])
    assert sum(len(g["params"]) for g in groups) == len(list(field.parameters()))
    with pytest.raises(ValueError, match="unknown hcinr option"):
        NerfField(3, 4, NerfFieldConfig(encoding="hcinr", hcinr={"levles": 2}))


@pytest.fixture(scope="module")
def fitted(scene, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "blocks-hcinr"
    assert main(["fit", "nerf", str(scene), "--out", str(out), "--steps", "120", *HCINR, *SMALL]) == 0
    return out


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.open3d
@pytest.mark.slow
def test_fit_lowers_the_loss_and_the_run_reloads_bit_for_bit(fitted, tmp_path, capsys):
    from safetensors.torch import load_file

    rows = [r for r in _rows(fitted) if "loss" in r]
    first, last = rows[0]["loss"], sum(r["loss"] for r in rows[-3:]) / 3
    assert last < 0.5 * first, (first, last)
    config = json.loads((fitted / "config.json").read_text())
    assert config["field"]["encoding"] == "hcinr" and config["field"]["hcinr"]["levels"] == 3
    a, b = inr.load(fitted), inr.load(fitted)
    saved = load_file(str(fitted / "model.safetensors"))
    assert all(torch.equal(t, saved[name]) for name, t in a.state_dict().items())
    x, d = torch.rand(200, 3) * 2 - 1, torch.nn.functional.normalize(torch.randn(200, 3), dim=-1)
    assert all(torch.equal(p, q) for p, q in zip(a(x, d), b(x, d)))
    capsys.readouterr()
    assert main(["eval", str(fitted), "--split", "val"]) == 0
    assert json.loads(capsys.readouterr().out)["psnr"] > 12.0
    assert main(["render", "nerf", str(fitted), "--view", "0", "-o", str(tmp_path / "v.png")]) == 0
    capsys.readouterr()
    assert main(["info", str(fitted)]) == 0
    parts = json.loads(capsys.readouterr().out)["params_by_part"]
    assert set(parts) == {"encoding.grids", "encoding.hypernetworks", "encoding.compact", "color_net"}
    assert main(["fit", "nerf", "--resume", "--out", str(fitted), "--steps", "130", "--quiet"]) == 0
    assert _rows(fitted)[-1]["step"] == 130


@pytest.mark.open3d
def test_bad_hcinr_options_are_one_line_and_leave_no_run(scene, tmp_path, capsys):
    out = tmp_path / "bad"
    fit = ["fit", "nerf", str(scene), "--out", str(out), "--steps", "2", *SMALL]
    _fails([*fit, *HCINR, "--hcinr.levles", "2"], capsys, "--hcinr.levles")
    _fails([*fit, "--field.encoding", "hcinr", "--hcinr.levels", "0"], capsys, "levels", ">= 1")
    _fails([*fit, "--hcinr.levels", "2"], capsys, "--field.encoding hcinr")
    assert not out.exists()
