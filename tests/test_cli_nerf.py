"""`inr fit nerf` end to end on a tiny generated scene: fit, resume, eval, render, and bad input."""
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import pytest

import inr
from inr.cli.main import main
from scenes.multiview import generate_scene

pytestmark = [pytest.mark.open3d, pytest.mark.slow]  # end to end on a rendered multi-view scene

# A small hash grid and occupancy grid keep a fit to about ten seconds on two cores.
SMALL = ["--field.grid", '{"n_levels": 8, "log2_hashmap_size": 14, "base_resolution": 8, "finest_resolution": 128}',
         "--occupancy.resolution", "32", "--march.steps-per-diagonal", "128", "--batch-size", "8192",
         "--quiet", "--log-every", "10", "--checkpoint-every", "100"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Path:
    return generate_scene(tmp_path_factory.mktemp("mv") / "blocks", "blocks", size=32, n_train=16, n_val=2, n_test=3)


@pytest.fixture(scope="module")
def fitted(scene, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "blocks-nerf"
    assert main(["fit", "nerf", str(scene), "--out", str(out), "--steps", "200", "--eval-every", "100", *SMALL]) == 0
    return out


def test_fit_beats_a_psnr_and_writes_the_run(fitted):
    for name in ("config.json", "model.safetensors", "occupancy.safetensors", "metrics.jsonl", "preview.png"):
        assert (fitted / name).exists(), name
    rows = [json.loads(line) for line in (fitted / "metrics.jsonl").read_text().splitlines()]
    final = rows[-1]
    assert final["final"] and final["step"] == 200
    # A flat background alone scores about 12 dB on these views; the fitted field must see the objects.
    assert final["eval"]["psnr"] > 20.0, final["eval"]["psnr"]
    assert any("eval" in r and not r.get("final") for r in rows)  # the periodic validation
    train_rows = [r for r in rows if "samples_per_ray" in r]
    assert train_rows[-1]["samples_per_ray"] < 0.5 * train_rows[0]["samples_per_ray"]  # the grid culls space
    assert iio.imread(fitted / "preview.png").shape == (32, 32, 3)
    assert inr.load(fitted).kind == "nerf"


def test_eval_prints_psnr_ssim_and_views_for_a_split(fitted, capsys):
    capsys.readouterr()
    assert main(["eval", str(fitted), "--split", "test"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["split"] == "test" and len(out["views"]) == 3
    assert out["psnr"] > 20.0 and 0 < out["ssim"] <= 1
    assert json.loads((fitted / "eval_test.json").read_text())["psnr"] == out["psnr"]


def test_render_view_depth_opacity_and_orbit(fitted, tmp_path, capsys):
    assert main(["render", "nerf", str(fitted), "--view", "1", "--split", "val", "-o", str(tmp_path / "v.png")]) == 0
    assert iio.imread(tmp_path / "v.png").shape == (32, 32, 3)
    assert main(["render", "nerf", str(fitted), "--view", "0", "--output-kind", "depth", "--scale", "2",
                 "-o", str(tmp_path / "d.png")]) == 0
    depth = iio.imread(tmp_path / "d.png")
    assert depth.shape == (64, 64, 1) or depth.shape == (64, 64)
    assert depth.max() > 100 and depth.min() == 0  # objects in front, empty background
    assert main(["render", "nerf", str(fitted), "--output-kind", "opacity", "-o", str(tmp_path / "a.npy")]) == 0
    for name in ("orbit.mp4", "orbit.gif"):
        capsys.readouterr()
        assert main(["render", "nerf", str(fitted), "--orbit", "--frames", "4", "-o", str(tmp_path / name)]) == 0
        written = json.loads(capsys.readouterr().out)["output"]
        assert written.endswith(name)
        frames = iio.imread(written, index=None)
        assert frames.shape[0] == 4 and frames.shape[1:3] == (32, 32)
        assert not (frames[0] == frames[2]).all()  # the camera moved


def test_resume_continues_to_more_steps(scene, tmp_path):
    out = tmp_path / "r"
    assert main(["fit", "nerf", str(scene), "--out", str(out), "--steps", "100", "--eval-every", "0", *SMALL]) == 0
    assert main(["fit", "nerf", "--resume", "--out", str(out), "--steps", "150", "--quiet"]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["final"] and rows[-1]["step"] == 150


@pytest.mark.parametrize("case", ["missing_dir", "no_frames", "bad_pose", "unknown_scene", "bad_option"])
def test_bad_input_exits_2_and_writes_nothing(scene, tmp_path, capsys, case):
    data = tmp_path / "data"
    shutil.copytree(scene, data)
    args = [str(data)]
    if case == "missing_dir":
        args = [str(tmp_path / "nowhere")]
    elif case == "no_frames":
        meta = json.loads((data / "transforms_train.json").read_text())
        (data / "transforms_train.json").write_text(json.dumps({**meta, "frames": []}))
    elif case == "bad_pose":
        meta = json.loads((data / "transforms_train.json").read_text())
        meta["frames"][2]["transform_matrix"][1][1] = float("inf")
        (data / "transforms_train.json").write_text(json.dumps(meta))
    elif case == "unknown_scene":
        args = ["no-such-scene"]
    elif case == "bad_option":
        args += ["--background", "random", "--eval-views", "0"]
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(["fit", "nerf", *args, "--out", str(out), "--steps", "5", *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inr: error:") and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_render_rejects_other_runs_and_formats(fitted, tmp_path):
    assert main(["render", "nerf", str(fitted), "--orbit", "-o", str(tmp_path / "x.png")]) == 2
    assert main(["render", "nerf", str(fitted), "--view", "99", "-o", str(tmp_path / "x.png")]) == 2
    assert main(["render", "nerf", str(tmp_path), "-o", str(tmp_path / "x.png")]) == 2


def test_default_scene_is_a_generated_blocks_dataset(tmp_path, monkeypatch):
    from inr.cli.main import build_parser
    from inr.cli.nerf_commands import resolve_dataset
    from inr.signals.radiance import load_radiance

    args = build_parser().parse_args(["fit", "nerf"])
    assert not hasattr(args, "target")  # no argument: the config's default scene
    from inr.train.nerf import NerfFitConfig

    assert NerfFitConfig().target == "blocks"
    monkeypatch.setenv("INR_CACHE", str(tmp_path))
    path = resolve_dataset("blocks")
    assert path.is_relative_to(tmp_path) and json.loads((path / "scene.json").read_text())["caption"]
    assert len(load_radiance(path, "train")) == 50 and resolve_dataset("blocks") == path  # cached
