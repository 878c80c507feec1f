"""`inr info` and `inr view` on a few-view generator run. The view is driven headless (as
tests/test_viewer.py drives views): switching the scene or the support views re-generates the NeRF
and the frame rendered from a camera changes and stays finite; and once in headless Chromium: the
page shows the panel and the frame rendered from the browser's camera."""
import json
import math
import time

import numpy as np
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


@pytest.mark.open3d
@pytest.mark.slow
def test_views_view_in_a_browser(generator_run, collection):  # noqa: F811
    from test_viewer import FREE, region_error, show

    from viewer.browser import Browser, find_chromium

    if find_chromium() is None:
        pytest.skip("no chromium on PATH (apt-get install chromium): browser tests skipped")
    viewer = Viewer(generator_run, port=free_port("127.0.0.1", 8765), quiet=True, collection=str(collection))
    try:
        with Browser(640, 480) as browser:
            text, shot, frame = show(browser, viewer, "Few-view generator", "Support views", "Test view")
            assert "held out" in text and "PSNR" in text
            assert frame is not None and np.isfinite(frame).all()
            # The support cameras' frustums (with their images) cover the frame: hide them, then the
            # page must show the frame the view rendered from the browser's camera.
            for handle in viewer.view._frustums:
                handle.visible = False
            deadline = time.monotonic() + 60
            while region_error(shot, frame, *FREE) > 12 and time.monotonic() < deadline:
                time.sleep(0.2)
                shot = browser.screenshot()
            assert region_error(shot, frame, *FREE) < 12, "the page does not show the rendered frame"
    finally:
        viewer.stop()
