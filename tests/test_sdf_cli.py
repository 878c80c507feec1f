"""End to end through the `inr` command: fit sdf, eval, export mesh, render sdf, info, and bad input."""
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import trimesh

from inr.cli.main import main
from inr.signals.shape_metrics import METRIC_KEYS
from test_sdf import BAD_MESH_FILES

pytestmark = [pytest.mark.open3d, pytest.mark.slow]  # end to end: mesh raycasting, fits, metrics

FAST = ["--steps", "40", "--quiet", "--batch-size", "4096", "--log-every", "10", "--eval-resolution", "48",
        "--samples.surface-points", "5000", "--samples.near-points", "5000", "--samples.uniform-points", "1000",
        "--loss.gradient-points", "512",
        "--hash.grid", '{"n_levels": 6, "log2_hashmap_size": 12, "base_resolution": 8, "finest_resolution": 64}']


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tiny fits run fastest on one thread (and do not suffer when the CPU is shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def box_file(tmp_path_factory) -> Path:
    """A box in odd units (millimetres, off-centre), so exports must undo the normalisation."""
    mesh = trimesh.creation.box(extents=(200.0, 140.0, 100.0))
    mesh.apply_translation((1000.0, -500.0, 30.0))
    path = tmp_path_factory.mktemp("mesh") / "box.stl"
    mesh.export(path)
    return path


@pytest.fixture(scope="module")
def fitted(box_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "box-hash"
    assert main(["fit", "sdf", str(box_file), "--out", str(out), *FAST]) == 0
    return out


def test_fit_writes_run_dir_with_metrics(fitted, capsys):
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "mesh.ply", "preview.png", "checkpoints"):
        assert (fitted / name).exists(), name
    config = json.loads((fitted / "config.json").read_text())
    assert config["kind"] == "sdf" and config["field"]["kind"] == "hash_sdf"
    assert config["data"]["normalisation"]["scale"] == pytest.approx(0.9 / 100.0)
    final = [json.loads(line) for line in (fitted / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["final"] and set(METRIC_KEYS) <= set(final["eval"])
    assert final["eval"]["iou"] > 0.8, final
    mesh = trimesh.load(fitted / "mesh.ply")  # in the input's units
    assert np.allclose(mesh.bounds, [[900, -570, -20], [1100, -430, 80]], atol=10)
    assert iio.imread(fitted / "preview.png").shape[2] == 3


def test_eval_prints_the_metrics(fitted, capsys):
    capsys.readouterr()
    assert main(["eval", str(fitted)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(METRIC_KEYS) <= set(out)
    final = [json.loads(line) for line in (fitted / "metrics.jsonl").read_text().splitlines()][-1]["eval"]
    assert out["chamfer_l1"] == pytest.approx(final["chamfer_l1"], rel=1e-3)


@pytest.mark.parametrize("suffix", [".ply", ".obj", ".glb"])
def test_export_mesh_in_input_units(fitted, tmp_path, suffix, capsys):
    out = tmp_path / f"box{suffix}"
    assert main(["export", "mesh", str(fitted), "--resolution", "64", "-o", str(out)]) == 0
    mesh = trimesh.load(out, force="mesh")
    assert np.allclose(mesh.bounds, [[900, -570, -20], [1100, -430, 80]], atol=10)
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["faces"] == len(mesh.faces)


def test_render_sdf(fitted, tmp_path):
    out = tmp_path / "view.png"
    assert main(["render", "sdf", str(fitted), "-o", str(out), "--width", "48", "--height", "32"]) == 0
    img = iio.imread(out)
    assert img.shape == (32, 48, 3)
    assert (img < 250).any() and (img == 255).any()  # some shape, some background


def test_fit_builtin_default_shape_and_info(tmp_path, capsys):
    out = tmp_path / "torus"
    assert main(["fit", "sdf", "torus", "--out", str(out), *FAST]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(METRIC_KEYS) <= set(result) and result["field"] == "hash"
    assert result["iou"] > 0.5
    assert main(["info", str(out)]) == 0


def test_siren_field_fits(tmp_path, capsys):
    out = tmp_path / "sphere-siren"
    args = ["fit", "sdf", "sphere", "--field", "siren", "--siren.hidden", "32", "32", "--out", str(out), *FAST]
    assert main(args) == 0
    assert json.loads((out / "config.json").read_text())["field"]["kind"] == "siren"


def _bad(tmp_path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content)
    return path


@pytest.mark.parametrize("name,content,message", BAD_MESH_FILES)
def test_bad_mesh_input_exit_2_nothing_written(tmp_path, capsys, name, content, message):
    out = tmp_path / "run"
    assert main(["fit", "sdf", str(_bad(tmp_path, name, content)), "--out", str(out), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inr: error:") and message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.parametrize("args,message", [
    (["no-such-shape"], "unknown shape"),
    (["missing.obj"], "no such file"),
    (["sphere", "--field", "siren", "--loss.kind", "l2"], "unknown loss"),
    (["sphere", "--eval-resolution", "4096"], "eval_resolution"),
])
def test_bad_arguments(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["fit", "sdf", *args, "--out", str(out), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_non_watertight_mesh_warns_and_fits(tmp_path, capsys):
    mesh = trimesh.creation.icosphere(subdivisions=3)
    mesh.update_faces(np.arange(len(mesh.faces)) != 0)
    path = tmp_path / "holey.obj"
    mesh.export(path)
    out = tmp_path / "run"
    assert main(["fit", "sdf", str(path), "--out", str(out), *FAST]) == 0
    assert "not watertight" in capsys.readouterr().err
    assert (out / "mesh.ply").exists()


def test_export_and_render_refuse_bad_requests(fitted, tmp_path, capsys):
    assert main(["export", "mesh", str(fitted), "-o", str(tmp_path / "x.abc")]) == 2
    assert main(["export", "mesh", str(fitted), "--resolution", "8", "-o", str(tmp_path / "x.ply")]) == 2
    assert main(["render", "sdf", str(fitted), "-o", str(tmp_path / "x.ply")]) == 2
    assert main(["export", "mesh", str(tmp_path), "-o", str(tmp_path / "x.ply")]) == 2
    assert not list(tmp_path.glob("x.*"))


def test_resume_continues_an_sdf_run(tmp_path):
    out = tmp_path / "sphere"
    first = [a if a != "40" else "20" for a in FAST]  # FAST with --steps 20
    assert main(["fit", "sdf", "sphere", "--out", str(out), "--checkpoint-every", "10", *first]) == 0
    assert main(["fit", "sdf", "--resume", "--out", str(out), "--steps", "40", "--quiet"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if "loss" in r]
    assert rows[-1]["final"] and rows[-1]["step"] == 40 and steps == sorted(steps) and steps[-1] == 40
    assert main(["eval", str(out)]) == 0
