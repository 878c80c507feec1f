"""torchrun (DDP) for `inr train generator views|text`: two CPU processes, each with half of every
step's scenes, follow the loss curve of one process with all of them, and rank 0 alone writes
one run directory (issues 18 and 19)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_collection_cli import _env, _metrics
from test_fewview import TINY_CLI
from test_text_nerf import needs_text


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    from scenes.collection import make_collection

    return make_collection(tmp_path_factory.mktemp("ddp") / "coll", 4, views=5, res=16, test_views=2, seed=0)


def _train(argv: list[str], out: Path, processes: int) -> subprocess.CompletedProcess:
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)] if processes > 1 else []
    done = subprocess.run([sys.executable, *launch, "-m", "inr.cli.main", *argv, "--out", str(out)],
                          env=_env(), capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count('"run"') == 1  # only rank 0 prints its result
    return done


def _same_curve(one: Path, two: Path, steps: int, kind: str) -> None:
    curve = lambda run: [(r["step"], r["loss"], r["psnr"]) for r in _metrics(run) if "loss" in r]  # noqa: E731
    a, b = curve(one), curve(two)
    assert [r[0] for r in a] == [r[0] for r in b] == list(range(1, steps + 1))
    assert all(math.isfinite(v) for r in b for v in r[1:])
    np.testing.assert_allclose([r[1] for r in b], [r[1] for r in a], rtol=1e-3)
    assert json.loads((two / "config.json").read_text())["kind"] == kind
    assert (two / "model.safetensors").is_file() and not list(two.parent.glob("two?*"))


@pytest.mark.open3d
@pytest.mark.slow
def test_views_generator_under_two_processes_follows_one(collection, tmp_path):
    argv = ["train", "generator", "views", str(collection), "--steps", "3", "--support", "2",
            "--scenes-per-batch", "2", "--batch-size", "64", "--log-every", "1", "--eval-every", "0",
            "--eval-scenes", "1", "--eval-views", "1", "--quiet", *TINY_CLI]
    _train(argv, tmp_path / "one", 1)
    _train(argv, tmp_path / "two", 2)
    _same_curve(tmp_path / "one", tmp_path / "two", 3, "generator-views")
    assert (tmp_path / "two" / "preview.png").is_file()


@pytest.mark.open3d
@pytest.mark.slow
def test_views_generator_refuses_scenes_that_do_not_split(collection, tmp_path):
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "inr.cli.main", "train", "generator", "views", str(collection), "--steps", "1",
                           "--support", "2", "--scenes-per-batch", "3", "--quiet", *TINY_CLI,
                           "--out", str(tmp_path / "odd")], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "--scenes-per-batch 3 must be a multiple of the 2 processes" in done.stderr
    assert not (tmp_path / "odd").exists()


@needs_text
@pytest.mark.open3d
@pytest.mark.slow
def test_text_generator_fits_teachers_once_and_follows_one_process(collection, tmp_path):
    argv = ["train", "generator", "text", str(collection), "--steps", "3", "--batch-size", "2",
            "--rays-per-scene", "32", "--samples", "16", "--distill-views", "2", "--log-every", "1",
            "--eval-every", "0", "--quiet", "--generator.probe-points", "128"]
    # two processes: rank 0 fits the auto teachers (5 steps each) while rank 1 waits
    _train([*argv, "--teacher-steps", "5", "--teacher-batch", "2048"], tmp_path / "two", 2)
    teachers = tmp_path / "two" / "teachers"
    assert sorted(p.name for p in teachers.iterdir()) == sorted(
        json.loads((tmp_path / "two" / "config.json").read_text())["teachers"])
    # one process over the same teachers: the same losses
    _train([*argv, "--teachers", str(teachers)], tmp_path / "one", 1)
    _same_curve(tmp_path / "one", tmp_path / "two", 3, "text-generator")
