"""End to end through the `inr` command: fit, resume, render, eval, info, and bad input."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

import inr
from inr.cli.main import main
from inr.train.rundir import CONFIG

FAST = ["--steps", "150", "--quiet", "--eval-every", "0", "--log-every", "10"]
SMALL_HASH = ["--hash.grid", '{"n_levels": 8, "log2_hashmap_size": 12, "base_resolution": 4}']


@pytest.fixture(scope="module")
def small_image(tmp_path_factory) -> Path:
    """A 48x64 RGB test picture with smooth and sharp structure."""
    y, x = np.mgrid[0:48, 0:64] / 64.0
    img = np.stack([0.5 + 0.5 * np.sin(6 * x + 3 * y), (x > 0.5).astype(float) * 0.8 + 0.1, 0.5 + 0.4 * np.cos(9 * y)], -1)
    path = tmp_path_factory.mktemp("img") / "small.png"
    iio.imwrite(path, (img * 255).round().astype(np.uint8))
    return path


@pytest.fixture(scope="module")
def fitted(small_image, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "small-hash"
    assert main(["fit", "image", str(small_image), "--out", str(out), "--lr", "1e-2", *FAST, *SMALL_HASH]) == 0
    return out, json.loads((out / CONFIG).read_text())


def test_fit_reaches_psnr_and_writes_run_dir(fitted, capsys):
    out, config = fitted
    for name in ("config.json", "model.safetensors", "metrics.jsonl", "preview.png", "checkpoints"):
        assert (out / name).exists(), name
    assert config["version"] == 1 and config["kind"] == "image" and config["field"]["kind"] == "hash"
    rows = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    final = rows[-1]
    assert final["final"] and final["step"] == 150
    assert final["eval"]["psnr"] > 30.0, final  # a 48x64 image is easy for a hash grid
    assert iio.imread(out / "preview.png").shape == (48, 64, 3)


def test_load_rebuilds_field_exactly(fitted):
    out, _ = fitted
    a, b = inr.load(out), inr.load(out)
    x = torch.rand(100, 2) * 2 - 1
    assert torch.equal(a(x), b(x))
    assert main(["eval", str(out)]) == 0


def test_eval_matches_final_metrics(fitted, capsys):
    out, _ = fitted
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    final = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()][-1]["eval"]
    assert result["psnr"] == pytest.approx(final["psnr"], abs=1e-9)  # same parameters, same numbers


def test_render_scale_and_crop(fitted, tmp_path, capsys):
    out, _ = fitted
    assert main(["render", "image", str(out), "--scale", "2", "-o", str(tmp_path / "x2.png")]) == 0
    assert iio.imread(tmp_path / "x2.png").shape == (96, 128, 3)
    assert main(["render", "image", str(out), "--crop", "-1", "-1", "0", "0", "--width", "32", "--height", "24",
                 "-o", str(tmp_path / "crop.png")]) == 0
    crop = iio.imread(tmp_path / "crop.png").astype(float)
    full = iio.imread(out / "preview.png").astype(float)
    # the top-left quarter rendered at the original density equals the preview's top-left quarter
    assert np.abs(crop - full[:24, :32]).mean() < 1.0


def test_info(fitted, capsys):
    out, _ = fitted
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "image" and info["steps"] == 150 and info["params"] > 0
    assert info["final"]["psnr"] > 30


@pytest.mark.slow
def test_resume_after_kill(small_image, tmp_path):
    """A real kill -9 mid-run, then --resume finishes from the last checkpoint."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "inr.cli.main", "fit", "image", str(small_image), "--field", "siren",
           "--siren.hidden", "32", "32", "--steps", "1000000", "--checkpoint-every", "20", "--quiet", "--out", str(out)]
    log = tmp_path / "stderr.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        # Kill on the event (a checkpoint on disk), not after a fixed time: a busy machine may take
        # minutes to start Python and build the kernels. The deadline only guards against a hang.
        deadline = time.monotonic() + 900
        while (not list((out / "checkpoints").glob("step_*.safetensors")) and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill: {log.read_text()[-2000:]}"
    ckpts = sorted((out / "checkpoints").glob("step_*.safetensors"))
    assert ckpts, "no checkpoint written within 900 s"
    step = int(ckpts[-1].stem.split("_")[1])
    assert main(["fit", "image", "--resume", "--out", str(out), "--steps", str(step + 20), "--quiet"]) == 0
    final = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["final"] and final["step"] == step + 20
    assert (out / "model.safetensors").exists()


def test_resume_is_exact(small_image, tmp_path, monkeypatch):
    """Interrupting at step 45 and resuming gives the same parameters as an uninterrupted run
    (on the CPU, whose kernels are deterministic; GPU atomics reorder sums)."""
    from inr.train.image import ImageTask

    args = ["fit", "image", str(small_image), "--field", "siren", "--siren.hidden", "16", "16", "--steps", "60",
            "--checkpoint-every", "1000", "--quiet", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    original = ImageTask.loss

    def interrupted(self, step):
        if step == 45:
            raise KeyboardInterrupt
        return original(self, step)

    monkeypatch.setattr(ImageTask, "loss", interrupted)
    assert main([*args, "--out", str(tmp_path / "b")]) == 130
    monkeypatch.setattr(ImageTask, "loss", original)
    assert main(["fit", "image", "--resume", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    a, b = inr.load(tmp_path / "a"), inr.load(tmp_path / "b")
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name


def _fails(args, capsys, *needles):
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("inr: error:") and len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_bad_inputs_exit_2_and_write_nothing(tmp_path, small_image, capsys, fitted):
    out = tmp_path / "out"
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    _fails(["fit", "image", str(tmp_path / "missing.png"), "--out", str(out)], capsys, "missing.png")
    _fails(["fit", "image", str(corrupt), "--out", str(out)], capsys, "corrupt.png")
    _fails(["fit", "image", str(empty), "--out", str(out)], capsys, "empty.png")
    _fails(["fit", "image", "no-such-scene", "--out", str(out)], capsys, "no-such-scene", "camera")
    bad_key = tmp_path / "bad_key.json"
    bad_key.write_text('{"train": {"stepz": 3}}')
    _fails(["fit", "image", str(small_image), "--config", str(bad_key), "--out", str(out)], capsys, "stepz")
    nan = tmp_path / "nan.json"
    nan.write_text('{"train": {"lr": NaN}}')
    _fails(["fit", "image", str(small_image), "--config", str(nan), "--out", str(out)], capsys, "train.lr")
    inf = tmp_path / "inf.json"
    inf.write_text('{"siren": {"w0": Infinity}}')
    _fails(["fit", "image", str(small_image), "--config", str(inf), "--out", str(out)], capsys, "siren.w0")
    _fails(["fit", "image", str(small_image), "--hash.grid", '{"n_levels": 0}', "--out", str(out)], capsys, "hash")
    assert not out.exists()
    _fails(["render", "image", str(tmp_path), "-o", str(tmp_path / "x.png")], capsys, "not a run directory")
    _fails(["info", str(tmp_path / "nope")], capsys, "nope")
    # a run directory written by another format version
    run, _ = fitted
    other = tmp_path / "other-version"
    other.mkdir()
    cfg = json.loads((run / CONFIG).read_text())
    cfg["version"] = 99
    (other / CONFIG).write_text(json.dumps(cfg))
    _fails(["eval", str(other)], capsys, "version")
    _fails(["fit", "image", "--resume", "--out", str(other)], capsys, "version")
    assert not (tmp_path / "x.png").exists()


def test_config_from_a_run(fitted, tmp_path):
    """A run's config.json is a valid --config: the refit has the same field and settings."""
    out, config = fitted
    again = tmp_path / "again"
    assert main(["fit", "image", "--config", str(out / CONFIG), "--out", str(again), "--steps", "5", "--quiet"]) == 0
    refit = json.loads((again / CONFIG).read_text())
    assert refit["field"] == config["field"]
    assert refit["fit"]["train"]["lr"] == config["fit"]["train"]["lr"] and refit["fit"]["train"]["steps"] == 5


def test_existing_run_needs_resume(fitted, small_image, capsys):
    out, _ = fitted
    _fails(["fit", "image", str(small_image), "--out", str(out)], capsys, "--resume")


def test_help_lists_every_option():
    env = dict(os.environ, COLUMNS="200")
    top = subprocess.run([sys.executable, "-m", "inr.cli.main", "--help"], capture_output=True, text=True, env=env)
    assert top.returncode == 0 and all(c in top.stdout for c in ("fit", "render", "eval", "info"))
    fit = subprocess.run([sys.executable, "-m", "inr.cli.main", "fit", "image", "--help"], capture_output=True,
                         text=True, env=env)
    for flag in ("--field", "--steps", "--lr", "--batch-size", "--out", "--resume", "--seed", "--device",
                 "--config", "--max-seconds", "--siren.w0", "--hash.grid", "--fourier.sigma"):
        assert flag in fit.stdout, flag
