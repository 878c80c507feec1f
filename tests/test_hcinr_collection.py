"""`inr fit collection images|sdf --field hcinr`: one hypernetwork generates each member's HC-INR warp
(or, with --hyper.targets, its compact weights) over shared feature grids; fit, eval, render, the
materialised member, a new image --from the collection, and bad input."""
import json
from pathlib import Path

import pytest
import torch

import inr
from inr.cli.main import main
from inr.train.collection import rebuild_model
from test_cli_image import _fails  # one line, exit 2, naming the needles

HCINR = ["--field", "hcinr", "--hcinr.levels", "2", "--hcinr.base-resolution", "8", "--hcinr.compact-hidden", "32", "32",
         "--hcinr.hyper-hidden", "16", "--hcinr.code-dim", "8"]
SMALL = ["--latent-dim", "16", "--hyper.hidden", "64", "--quiet", "--eval-every", "0", "--signals-per-batch", "4",
         "--log-every", "5"]


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "textures-hcinr"
    assert main(["fit", "collection", "images", "textures-4", "--steps", "60", "--out", str(out), *HCINR, *SMALL]) == 0
    return out


@pytest.mark.slow
def test_image_collection_generates_per_member_warps_over_shared_grids(fitted, tmp_path, capsys):
    config = json.loads((fitted / "config.json").read_text())
    assert config["field"]["kind"] == "hcinr" and config["fit"]["hyper"]["targets"] == ["hypernetworks.*"]
    model = rebuild_model(config["model"])
    generated = set(model.hyper_field.target_shapes())
    assert generated and all(n.startswith("hypernetworks.") for n in generated)  # grids and compact are shared
    rows = _rows(fitted)
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.5 * losses[0], losses
    assert rows[-1]["eval"]["psnr"] > 15.0
    capsys.readouterr()
    assert main(["eval", str(fitted), "--device", "cpu"]) == 0
    members = json.loads(capsys.readouterr().out)["members"]
    assert len(members) == 4
    assert main(["render", "collection", str(fitted), "--member", "1", "-o", str(tmp_path / "m1.png")]) == 0
    new = tmp_path / "new"
    png = tmp_path / "m1.png"
    assert main(["fit", "image", str(png), "--from", str(fitted), "--steps", "5", "--out", str(new), "--quiet"]) == 0
    field = inr.load(new)  # the materialised member: a plain HC-INR field
    assert field.kind == "hcinr" and field(torch.zeros(3, 2)).shape == (3, 3)


@pytest.mark.slow
def test_per_member_compact_weights_and_bad_input(tmp_path, capsys):
    out = tmp_path / "compact"
    assert main(["fit", "collection", "images", "textures-4", "--steps", "3", "--out", str(out),
                 "--hyper.targets", "compact.*", *HCINR, *SMALL]) == 0
    model = rebuild_model(json.loads((out / "config.json").read_text())["model"])
    assert all(n.startswith("compact.") for n in model.hyper_field.target_shapes())
    bad = tmp_path / "bad"
    fit = ["fit", "collection", "images", "textures-4", "--steps", "2", "--out", str(bad), *SMALL]
    _fails([*fit, "--field", "hcinr", "--hcinr.levels", "0"], capsys, "levels")
    _fails([*fit, "--field", "hcinr", "--hcinr.levles", "2"], capsys, "--hcinr.levles")
    assert not bad.exists()


@pytest.mark.open3d
@pytest.mark.slow
def test_sdf_collection_with_hcinr(tmp_path, capsys):
    out = tmp_path / "shapes-hcinr"
    assert main(["fit", "collection", "sdf", "shapes-4", "--out", str(out), "--steps", "30", "--batch-size", "512",
                 "--lr", "2e-3", "--eval-resolution", "24", "--eval-points", "1000", "--samples.surface-points", "500",
                 "--samples.near-points", "1000", "--samples.uniform-points", "300", *HCINR, *SMALL]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["field"]["kind"] == "hcinr" and config["field"]["d_in"] == 3
    losses = [r["loss"] for r in _rows(out) if "loss" in r]
    assert losses[-1] < 0.7 * losses[0], losses
    assert "chamfer_l1" in _rows(out)[-1]["eval"]
    assert main(["render", "collection", str(out), "--member", "0", "--scale", "0.25",
                 "-o", str(tmp_path / "m0.ply")]) == 0
