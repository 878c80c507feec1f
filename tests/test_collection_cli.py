"""`inr fit collection images`, `inr render collection`, `inr fit image --from`, bad input, resume,
and DDP: two CPU processes under torchrun follow the loss curve of one."""
import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from inr.cli.main import main
from inr.signals.image import load_image
from scenes.textures import procedural_texture

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--latent-dim", "16", "--hyper.hidden", "64", "--siren.hidden", "32", "32", "--quiet", "--eval-every", "0"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def collection_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tex"
    assert main(["fit", "collection", "images", "textures-8", "--steps", "150", "--signals-per-batch", "8",
                 "--out", str(out), *SMALL]) == 0
    return out


def test_collection_fits_and_writes_a_run(collection_run, capsys):
    rows = _metrics(collection_run)
    final = rows[-1]
    assert final["final"] and final["eval"]["psnr"] > 25.0  # 8 textures, 150 steps
    assert rows[0]["psnr"] < final["eval"]["psnr"] - 8
    for name in ("config.json", "model.safetensors", "preview.png"):
        assert (collection_run / name).is_file()
    config = json.loads((collection_run / "config.json").read_text())
    assert config["kind"] == "collection" and config["fit"]["hyper"]["mip"] is True
    assert config["data"]["members"][0] == "stripes-000"
    assert main(["eval", str(collection_run), "--device", "cpu"]) == 0
    ev = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(ev["members"]) == 8 and abs(ev["psnr"] - final["eval"]["psnr"]) < 1e-3
    assert main(["info", str(collection_run)]) == 0


def test_render_member_by_index_and_name(collection_run, tmp_path):
    out = tmp_path / "m.png"
    assert main(["render", "collection", str(collection_run), "--member", "rings-001", "--scale", "2", "-o", str(out)]) == 0
    img = load_image(out)
    assert img.shape == (64, 64, 3)
    assert main(["render", "collection", str(collection_run), "--member", "99", "-o", str(out)]) == 2


def test_new_image_from_collection_by_latent_optimisation(collection_run, tmp_path, capsys):
    path = tmp_path / "new.png"
    texture = procedural_texture(1, 32, seed=0)  # a member the collection saw: latents can find it
    iio.imwrite(path, (texture.numpy() * 255).round().astype(np.uint8))
    out = tmp_path / "new-run"
    assert main(["fit", "image", str(path), "--from", str(collection_run), "--steps", "60", "--out", str(out)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["psnr"] > 20.0
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "image" and config["field"]["kind"] == "siren" and config["from"]["steps"] == 60
    assert (out / "latent.safetensors").is_file()
    # a normal image run: render and eval work on it
    assert main(["render", "image", str(out), "--scale", "2", "-o", str(tmp_path / "r.png")]) == 0
    assert main(["eval", str(out), "--device", "cpu"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert abs(again["psnr"] - result["psnr"]) < 0.05


def test_from_run_that_does_not_match(collection_run, tmp_path, capsys):
    gray = tmp_path / "gray"
    gray.mkdir()
    for i in range(2):
        iio.imwrite(gray / f"g{i}.png", (np.random.default_rng(i).random((8, 8)) * 255).astype(np.uint8))
    gray_run = tmp_path / "gray-run"
    assert main(["fit", "collection", "images", str(gray), "--steps", "2", "--signals-per-batch", "2",
                 "--out", str(gray_run), *SMALL]) == 0
    rgb = tmp_path / "rgb.png"
    iio.imwrite(rgb, (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8))
    capsys.readouterr()
    assert main(["fit", "image", str(rgb), "--from", str(gray_run), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "3-channel image does not match" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
    # --from a run that is not a collection
    assert main(["fit", "image", str(rgb), "--from", str(tmp_path / "x"), "--out", str(tmp_path / "y")]) == 2


def test_bad_collections(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["fit", "collection", "images", str(empty), "--out", str(tmp_path / "r1"), *SMALL]) == 2
    assert "no images in this folder" in capsys.readouterr().err
    assert not (tmp_path / "r1").exists()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    iio.imwrite(mixed / "a.png", np.zeros((8, 8, 3), np.uint8))
    iio.imwrite(mixed / "b.png", np.zeros((8, 12, 3), np.uint8))
    assert main(["fit", "collection", "images", str(mixed), "--out", str(tmp_path / "r2"), *SMALL]) == 2
    err = capsys.readouterr().err
    assert "images differ in size" in err and "b.png is 8x12" in err and "--size" in err
    assert not (tmp_path / "r2").exists()
    (mixed / "c.png").write_bytes(b"not a png")
    assert main(["fit", "collection", "images", str(mixed), "--size", "8", "--out", str(tmp_path / "r3"), *SMALL]) == 2
    assert "c.png" in capsys.readouterr().err
    (mixed / "c.png").unlink()
    assert main(["fit", "collection", "images", str(mixed), "--size", "8", "--steps", "2", "--signals-per-batch", "2",
                 "--out", str(tmp_path / "r4"), *SMALL]) == 0  # --size resizes every image


def test_resume_continues_the_run(tmp_path):
    out = tmp_path / "r"
    args = ["fit", "collection", "images", "textures-4", "--signals-per-batch", "4", "--out", str(out), *SMALL,
            "--log-every", "1", "--checkpoint-every", "10"]
    assert main([*args, "--steps", "10"]) == 0
    assert main([*args, "--steps", "20", "--resume"]) == 0
    steps = [r["step"] for r in _metrics(out) if "loss" in r]
    assert steps == sorted(steps) and steps[-1] == 20


@pytest.mark.parametrize("conditioning", ["conv", "set"])
def test_encoder_conditioning_and_one_pass_fit(conditioning, tmp_path, capsys):
    out = tmp_path / "enc"
    assert main(["fit", "collection", "images", "textures-4", "--conditioning", conditioning, "--steps", "20",
                 "--signals-per-batch", "4", "--out", str(out), *SMALL]) == 0
    path = tmp_path / "t.png"
    iio.imwrite(path, (procedural_texture(2, 32).numpy() * 255).round().astype(np.uint8))
    capsys.readouterr()
    assert main(["fit", "image", str(path), "--from", str(out), "--observed", "0.5", "--out", str(tmp_path / "n")]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 0 and np.isfinite(result["psnr"])  # one encoder pass, no optimisation


@pytest.mark.slow
def test_two_ddp_processes_follow_the_single_process_loss_curve(tmp_path):
    common = ["fit", "collection", "images", "textures-8", "--steps", "6", "--signals-per-batch", "4",
              "--batch-size", "256", "--log-every", "1", *SMALL]
    one = subprocess.run([sys.executable, "-m", "inr.cli.main", *common, "--out", str(tmp_path / "one")],
                         env=_env(), capture_output=True, text=True, timeout=900, check=False)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "inr.cli.main", *common, "--out", str(tmp_path / "two")],
                         env=_env(), capture_output=True, text=True, timeout=900, check=False)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count('"run"') == 1  # only rank 0 prints its result
    curve = lambda run: [(r["step"], r["loss"]) for r in _metrics(run) if "loss" in r]  # noqa: E731
    a, b = curve(tmp_path / "one"), curve(tmp_path / "two")
    assert [s for s, _ in a] == [s for s, _ in b] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([v for _, v in b], [v for _, v in a], rtol=1e-4)
    assert a[-1][1] < a[0][1]
    assert json.loads((tmp_path / "two" / "config.json").read_text())["kind"] == "collection"
