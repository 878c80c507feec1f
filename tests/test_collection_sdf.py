"""`inr fit collection sdf`: the built-in shape family, a folder of meshes, eval, a member exported
as a mesh and as an image, and bad input (exit 2, no run directory left)."""
import json
from pathlib import Path

import imageio.v3 as iio
import pytest
import torch
import trimesh
from test_sdf import BAD_MESH_FILES

from inr.cli.main import main
from scenes.shape_family import family_shape, load_shape_family

pytestmark = [pytest.mark.open3d, pytest.mark.slow]  # end to end: mesh raycasting, fits, metrics

TINY = ["--steps", "40", "--quiet", "--batch-size", "512", "--log-every", "5", "--signals-per-batch", "4",
        "--siren.hidden", "32", "32", "--hyper.hidden", "64", "--latent-dim", "16", "--latent-lr", "1e-2",
        "--lr", "2e-3", "--eval-resolution", "32", "--eval-points", "2000",
        "--samples.surface-points", "500", "--samples.near-points", "1000", "--samples.uniform-points", "300"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "shapes-4"
    assert main(["fit", "collection", "sdf", "shapes-4", "--out", str(out), *TINY]) == 0
    return out


def test_family_is_deterministic_and_varied():
    small, large = load_shape_family("shapes-4"), load_shape_family("shapes-8")
    assert [s.name for s in small] == [s.name for s in large[:4]] == ["sphere-00", "torus-01", "box-02", "capsule-03"]
    p = torch.rand(1000, 3) * 2 - 1
    assert torch.equal(family_shape(5).sdf(p), large[5].sdf(p))
    assert not torch.allclose(large[0].sdf(p), large[4].sdf(p))  # two spheres, not the same sphere
    shell = p / p.abs().max(dim=-1, keepdim=True).values  # on the common box's faces: outside every member
    assert all(bool((s.sdf(shell) > 0).all()) for s in large)


def test_fit_decreases_loss_and_writes_run(fitted):
    config = json.loads((fitted / "config.json").read_text())
    assert config["kind"] == "collection" and config["data"]["signal"] == "sdf"
    assert config["data"]["members"] == ["sphere-00", "torus-01", "box-02", "capsule-03"]
    assert config["field"]["d_in"] == 3 and config["field"]["d_out"] == 1
    rows = [json.loads(line) for line in (fitted / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < 0.7 * losses[0], losses
    final = rows[-1]
    assert final["final"] and {"chamfer_l1", "normal_consistency", "fscore", "iou", "fscore_min"} <= set(final["eval"])
    assert (fitted / "model.safetensors").exists()
    assert iio.imread(fitted / "preview.png").shape[:2] == (128, 4 * 128)


def test_eval_returns_mean_and_member_metrics(fitted, capsys):
    capsys.readouterr()
    assert main(["eval", str(fitted), "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["members"]) == {"sphere-00", "torus-01", "box-02", "capsule-03"}
    assert 0 <= result["iou"] <= 1 and result["chamfer_l1"] > 0 and 0 <= result["fscore_min"] <= result["fscore"]


def test_member_exports_mesh_and_image(fitted, tmp_path, capsys):
    out = tmp_path / "box.ply"
    assert main(["render", "collection", str(fitted), "-o", str(out), "--member", "box-02", "--scale", "0.5"]) == 0
    info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert info["member"] == "box-02" and info["resolution"] == 64
    mesh = trimesh.load(out)
    assert len(mesh.faces) > 0 and len(mesh.faces) == info["faces"]
    png = tmp_path / "torus.png"
    assert main(["render", "collection", str(fitted), "-o", str(png), "--member", "1", "--scale", "0.125"]) == 0
    assert iio.imread(png).shape[:2] == (32, 32)
    assert main(["render", "collection", str(fitted), "-o", str(tmp_path / "x.ply"), "--member", "9"]) == 2
    assert main(["render", "collection", str(fitted), "-o", str(tmp_path / "x.xyz")]) == 2


def test_mesh_folder_fits_each_member_normalised(tmp_path):
    folder = tmp_path / "meshes"
    folder.mkdir()
    trimesh.creation.icosphere(subdivisions=2, radius=30.0).export(folder / "ball.stl")
    box = trimesh.creation.box(extents=(2.0, 1.0, 0.5))
    box.apply_translation((10.0, 0.0, 0.0))
    box.export(folder / "brick.obj")
    (folder / "notes.txt").write_text("not a mesh")
    out = tmp_path / "run"
    args = ["fit", "collection", "sdf", str(folder), "--out", str(out), *TINY, "--steps", "20"]
    assert main(args) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["data"]["members"] == ["ball", "brick"]
    scales = [m["normalisation"]["scale"] for m in config["data"]["member_info"]]
    assert scales == [pytest.approx(0.9 / 30.0, rel=0.02), pytest.approx(0.9 / 1.0)]
    mesh_out = tmp_path / "brick.obj"
    assert main(["render", "collection", str(out), "-o", str(mesh_out), "--member", "brick", "--scale", "0.25"]) == 0
    bounds = trimesh.load(mesh_out).bounds  # in the brick's own units: inside its field box around (10, 0, 0)
    assert (bounds[0] >= [10 - 1 / 0.9 - 1e-3, -1 / 0.9 - 1e-3, -1 / 0.9 - 1e-3]).all()
    assert (bounds[1] <= [10 + 1 / 0.9 + 1e-3, 1 / 0.9 + 1e-3, 1 / 0.9 + 1e-3]).all() and bounds[1][0] > 9


def _check_refused(args, tmp_path, capsys, message):
    out = tmp_path / "never"
    assert main(["fit", "collection", "sdf", *args, "--out", str(out), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_empty_folder_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _check_refused([str(tmp_path / "empty")], tmp_path, capsys, "no meshes")


@pytest.mark.parametrize("name,content,message", [b for b in BAD_MESH_FILES if b[0] in ("nofaces.obj", "nan.obj", "empty.obj")])
def test_bad_mesh_is_refused_naming_it(tmp_path, capsys, name, content, message):
    folder = tmp_path / "meshes"
    folder.mkdir()
    trimesh.creation.icosphere(subdivisions=1).export(folder / "good.stl")
    (folder / name).write_text(content)
    _check_refused([str(folder)], tmp_path, capsys, name)
    _check_refused([str(folder)], tmp_path, capsys, message)


def test_unknown_target_is_refused(tmp_path, capsys):
    _check_refused(["no-such-shapes"], tmp_path, capsys, "no such folder or built-in shape family")
    _check_refused(["shapes-0"], tmp_path, capsys, "1..")
