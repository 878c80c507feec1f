"""`inr info` and `inr view` on a few-view generator run. The view is built headless (no browser, as
tests/test_viewer.py drives views): switching the scene or the support views re-generates the NeRF
and the frame rendered from a camera changes and stays finite."""
import json
import math

import pytest
import torch
from test_cli_image import _fails
from test_fewview import TINY_CLI, collection  # noqa: F401  (the tiny collection, made once per module)
from test_sdf_cli import one_thread  # noqa: F401  (autouse: tiny models run fastest on one thread)

from inr.cli.main import main

pytest.importorskip("viser")
from viewer.server import Viewer, free_port  # noqa: E402


@pytest.fixture(scope="module")
def generator_run(collection, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("gen") / "gen"
    assert main(["train", "generator", "views", str(collection), "--out", str(out), "--steps", "20", "--support", "2",
                 "--eval-every", "0", "--quiet", "--no-model.zero-update", *TINY_CLI]) == 0
    return out


@pytest.mark.open3d
def test_info_describes_a_generator_run(generator_run, collection, capsys):  # noqa: F811
    capsys.readouterr()
    assert main(["info", str(generator_run)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "generator-views" and info["collection"] == str(collection)
    assert info["support"] == 2 and info["max_support"] == 5 and info["steps"] == 20
    assert set(info["params_by_part"]) == {"encoder", "hyper", "fuse"}
    assert info["params"] == sum(info["params_by_part"].values()) and math.isfinite(info["final"]["psnr"])
    assert {"config.json", "model.safetensors", "metrics.jsonl"} <= set(info["files"])


def _frame(view) -> torch.Tensor:
    c2w, fov = view.test_camera()
    return view.render_rgb(c2w, fov, 20, 20)


@pytest.mark.open3d
def test_view_regenerates_on_scene_and_support_changes(generator_run, collection):  # noqa: F811
    viewer = Viewer(generator_run, port=free_port("127.0.0.1", 8760), collection=str(collection))
    try:
        view = viewer.view
        assert view.scenes[0].name == "scene_0003" and "held out" in view.scene_choice.value  # held-out first
        assert view.generated == 1 and view.support_views == [0, 2]  # the run's support count, spread
        first = _frame(view)
        assert first.shape == (20, 20, 3) and bool(torch.isfinite(first).all())
        assert "PSNR" in view.stats.content and math.isfinite(view.test_psnr)
        assert view.panel.image.shape[1] == 2 * view.panel.image.shape[0]  # ground truth | generated

        view.select_scene(1)  # what the Scene dropdown does
        other = _frame(view)
        assert view.generated == 2 and "scene_0000" in view.stats.content
        assert bool(torch.isfinite(other).all()) and (other - first).abs().mean() > 1e-3

        view.support_text.value = "1, 3, 4"  # the support views field
        view.regenerate()
        third = _frame(view)
        assert view.support_views == [1, 3, 4] and view.generated == 3
        assert bool(torch.isfinite(third).all()) and (third - other).abs().mean() > 1e-4
        view.regenerate()  # nothing changed: no second forward pass
        assert view.generated == 3

        for bad, why in (("0, 9", "cannot use views"), ("0 1 2 3 4 0", "1 to 5"), ("a", "not a list")):
            view.support_text.value = bad
            view.regenerate()
            assert why in view.stats.content and view.generated == 3  # refused in the panel, the last one kept
    finally:
        viewer.stop()


@pytest.mark.open3d
def test_bad_collection_is_one_line(generator_run, tmp_path, capsys):
    from inr.train.rundir import RunDir

    _fails(["view", str(generator_run), "--collection", str(tmp_path / "none")], capsys, "no such collection")
    _fails(["view", str(generator_run), "--collection", str(generator_run)], capsys, "not a scene collection")
    other = RunDir.create(tmp_path / "image", {"kind": "image"})
    _fails(["view", str(other.path), "--collection", str(tmp_path)], capsys, "--collection does not apply")
