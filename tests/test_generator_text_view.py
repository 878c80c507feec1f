"""`inr view` and `inr info` on a text-to-NeRF generator run: a new caption re-generates the NeRF
(the frame changes and stays finite), the slider's ends are the two captions' own generations, and
without the text extra both refuse in one line naming the install."""
import json

import numpy as np
import pytest
import torch
from test_sdf_cli import one_thread  # noqa: F401  (autouse: tiny fits on one thread)
from test_text_nerf import _has_text_extra, block_sentence_transformers, needs_text

from inr.cli.main import main
from inr.generate.text_encoder import EmbeddingCache, batch_tokens
from viewer.server import Viewer, free_port, join_background


@pytest.fixture(scope="module")
def generator_run(tmp_path_factory):
    """A tiny generator trained through the CLI on images only (no teachers): 4 steps."""
    if not _has_text_extra():
        pytest.skip("the text extra is not installed")
    from scenes.collection import make_collection

    coll = make_collection(tmp_path_factory.mktemp("coll") / "c", 3, views=4, res=12, test_views=1, seed=2)
    out = tmp_path_factory.mktemp("gen") / "g"
    assert main(["train", "generator", "text", str(coll), "--out", str(out), "--steps", "4", "--no-distill",
                 "--rays-per-scene", "16", "--samples", "12", "--eval-every", "4", "--quiet",
                 "--generator.probe-points", "64", "--generator.hyper.d-model", "32", "--generator.hyper.layers", "1",
                 "--generator.hyper.heads", "2"]) == 0
    return out


def _generation(view, caption: str) -> dict:
    """The generator's own generation of one caption (what `inr generate nerf --text` materialises)."""
    tokens, mask = batch_tokens(EmbeddingCache(view.run.path / "text_embeddings.safetensors").get([caption]))
    with torch.no_grad():
        return view.generator.params(tokens, mask)


@needs_text
@pytest.mark.slow
def test_info_describes_the_generator(generator_run, capsys):
    assert main(["info", str(generator_run)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "text-generator" and info["steps"] == 4 and "psnr" in info["final"]
    assert set(info["params_by_part"]) == {"field", "hyper"} and info["params"] == sum(info["params_by_part"].values())
    assert len(info["scenes"]) == 3 and "text_embeddings.safetensors" in info["files"]


@needs_text
@pytest.mark.slow
def test_view_regenerates_on_a_new_caption_and_interpolates(generator_run):
    viewer = Viewer(generator_run, port=free_port("127.0.0.1", 8750), quiet=True)
    try:
        view = viewer.view
        a, b = view.captions
        c2w, fov = view.home_camera()
        first = view.render_rgb(c2w, fov, 20, 16)
        assert first.shape == (16, 20, 3) and bool(torch.isfinite(first).all())
        for t, caption in ((0.0, a), (1.0, b)):  # the slider's ends are the captions' own generations
            view.show(t=t)
            expected = _generation(view, caption)
            for name, value in view.source.module.params.items():
                torch.testing.assert_close(value, expected[name])
        view.show(t=0.5)
        middle = view.source.module.params
        assert any(not torch.allclose(middle[k], expected[k]) for k in middle)
        # a new caption typed in box A: encoded (the text model loads), generated, drawn
        version = view.source.version
        view.text_a.value, view.slider.value = "a tall yellow cone next to a small purple torus", 0.0
        view.request()
        join_background(120.0)
        assert view.source.version > version and view.captions[0] == view.text_a.value
        assert "tall yellow cone" in view.status.content
        new = view.render_rgb(c2w, fov, 20, 16)
        assert bool(torch.isfinite(new).all()) and float((new - first).abs().mean()) > 1e-4
        view.text_a.value = "   "  # an empty caption: said in the panel, the last NeRF stays
        version = view.source.version
        view.request()
        join_background(30.0)
        assert "empty text" in view.status.content and view.source.version == version
        assert view.render(type("Cam", (), {"c2w": c2w, "fov": fov})(), 8, 8, lambda: False).dtype == np.uint8
    finally:
        viewer.stop()


@pytest.mark.slow
def test_view_without_the_text_extra_is_one_line(generator_run, monkeypatch, capsys):
    block_sentence_transformers(monkeypatch)
    assert main(["view", str(generator_run), "--port", str(free_port("127.0.0.1", 8760))]) == 2
    err = capsys.readouterr().err
    assert "pip install 'inr[text]'" in err and len(err.strip().splitlines()) == 1


@needs_text
@pytest.mark.slow
def test_text_view_in_a_browser(generator_run):
    """The page shows the caption panel and the frame the view rendered from the browser's camera."""
    from test_viewer import FREE, region_error, show

    from viewer.browser import Browser, find_chromium

    if find_chromium() is None:
        pytest.skip("no chromium on PATH (apt-get install chromium): browser tests skipped")
    viewer = Viewer(generator_run, port=free_port("127.0.0.1", 8770), quiet=True)
    try:
        with Browser(640, 480) as browser:
            text, shot, frame = show(browser, viewer, "Caption A", "Caption B", "Text to NeRF")
            assert frame is not None and np.isfinite(frame).all()
            assert region_error(shot, frame, *FREE) < 12, "the page does not show the rendered frame"
    finally:
        viewer.stop()
