"""The viewer: camera conversion, adaptive resolution, the training hook, bad input, and each view
in a real (headless) browser: the page shows its controls and a screenshot shows the field."""
import json
import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_sdf_cli import one_thread  # noqa: F401  (autouse: tiny fits on one thread; the other core is the browser's)

from inr.cli.main import main
from inr.errors import InputError
from inr.render.rays import Cameras, orbit_poses
from viewer.cameras import (
    AdaptiveResolution,
    c2w_to_viser,
    focal_from_fov,
    fov_from_focal,
    matrix_to_quat,
    pinhole,
    quat_to_matrix,
    viser_to_c2w,
)
from viewer.image_view import BACKDROP
from viewer.live import Progress

# -- camera conversion ------------------------------------------------------------------------


def test_quaternions_round_trip():
    rng = np.random.default_rng(0)
    for q in rng.normal(size=(20, 4)):
        q = q / np.linalg.norm(q) * (1 if q[0] >= 0 else -1)
        m = quat_to_matrix(q)
        assert np.allclose(m @ m.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(m), 1.0)
        assert np.allclose(matrix_to_quat(m), q, atol=1e-9)
    # 90 degrees about z: x -> y.
    s = math.sqrt(0.5)
    assert np.allclose(quat_to_matrix((s, 0, 0, s)) @ [1, 0, 0], [0, 1, 0])


def test_viser_camera_is_opencv_and_ours_opengl():
    # viser's identity camera looks down world +z with image-down along +y (OpenCV);
    # the same camera in OpenGL terms has back axis -z and up axis -y.
    c2w = viser_to_c2w((1.0, 0.0, 0.0, 0.0), (1.0, 2.0, 3.0))
    assert np.allclose(c2w[:3, 0], [1, 0, 0]) and np.allclose(c2w[:3, 1], [0, -1, 0])
    assert np.allclose(c2w[:3, 2], [0, 0, -1]) and np.allclose(c2w[:3, 3], [1, 2, 3])
    _origins, dirs = pinhole(c2w, math.radians(60), 9, 7).view_rays(0)
    assert torch.allclose(dirs[31], torch.tensor([0.0, 0.0, 1.0]), atol=1e-6)  # centre pixel looks down +z


def test_dataset_view_survives_the_round_trip_through_viser():
    """A Blender-convention camera sent to the browser and read back gives the same rays."""
    poses = orbit_poses(3, 4.0, 30.0)
    h, w, fov_x = 30, 40, 0.69
    fx = 0.5 * w / math.tan(0.5 * fov_x)
    cams = Cameras(poses, torch.full((3,), fx), torch.full((3,), fx), torch.full((3,), w / 2), torch.full((3,), h / 2), w, h)
    for i in range(3):
        wxyz, position = c2w_to_viser(poses[i].double().numpy())
        fov = fov_from_focal(float(cams.fy[i]), h)  # what the browser's camera gets (vertical)
        back = pinhole(viser_to_c2w(wxyz, position), fov, w, h)
        o1, d1 = cams.view_rays(i)
        o2, d2 = back.view_rays(0)
        assert torch.allclose(o1, o2, atol=1e-5) and torch.allclose(d1, d2, atol=1e-5)
    assert math.isclose(focal_from_fov(fov_from_focal(50.0, 100), 100), 50.0)


# -- adaptive resolution ----------------------------------------------------------------------


def test_moving_frames_fit_the_time_budget_and_still_frames_the_screen():
    res = AdaptiveResolution(frame_seconds=0.1, max_pixels=400 * 300, initial_rate=1e5)
    w, h = res.moving_size(aspect=4 / 3, screen_height=600)
    assert abs(w * h - 1e4) < 600 and abs(w / h - 4 / 3) < 0.1
    for _ in range(10):  # renders turn out four times faster: frames grow to match
        res.record(w * h, (w * h) / 4e5)
    w2, h2 = res.moving_size(4 / 3, 600)
    assert 3.5e4 < w2 * h2 < 4.5e4
    assert res.moving_size(4 / 3, 50)[1] == 50  # never above the screen
    sw, sh = res.still_size(4 / 3, 600)
    assert sw * sh <= 400 * 300 and abs(sw / sh - 4 / 3) < 0.05
    assert res.still_size(4 / 3, 120) == (160, 120)  # a small screen: its own resolution
    tiny = AdaptiveResolution(frame_seconds=0.1, initial_rate=10.0, min_pixels=32 * 32)
    assert tiny.moving_size(1.0, 600) == (32, 32)  # a floor, however slow the field


class FakeClient:
    """What a render loop uses of a viser client: its camera and its background image."""

    class Camera:
        wxyz, position, fov, aspect, image_height = (1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0), 1.0, 1.5, 400

        def __init__(self):
            self.callbacks = []

        def on_update(self, fn):
            self.callbacks.append(fn)

    class Scene:
        def __init__(self):
            self.images = []

        def set_background_image(self, image, **_):
            self.images.append(None if image is None else image.shape)

    client_id = 0

    def __init__(self):
        self.camera, self.scene = self.Camera(), self.Scene()

    def move(self):
        for fn in self.camera.callbacks:
            fn(self.camera)


def _wait_until(condition, timeout: float = 60.0) -> bool:
    """Poll `condition` until it holds (True) or `timeout` seconds pass (False): tests wait for
    events, never for a fixed time, so a busy machine only makes them slower."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_render_loop_small_frames_while_moving_then_the_screen_and_stale_frames_interrupted():
    from viewer.render_loop import ClientRenderLoop

    calls = []
    still_started = threading.Event()
    still_may_finish = threading.Event()  # cleared: a still frame renders until aborted
    still_may_finish.set()

    def render(camera, width, height, abort, still):  # 100k pixels per second, in chunks that poll abort
        calls.append((width, height, still))
        if still:
            still_started.set()
        for _ in range(10):
            if abort():
                return None
            time.sleep(width * height / 1e5 / 10)
        while still and not still_may_finish.is_set():
            if abort():
                return None
            time.sleep(0.01)
        return np.zeros((height, width, 3), np.uint8)

    def moving():
        return [c for c in calls if not c[2]]

    client = FakeClient()
    res = AdaptiveResolution(frame_seconds=0.05, initial_rate=2e5, max_pixels=300 * 200)
    loop = ClientRenderLoop(client, render, res, still_seconds=0.2)
    try:
        time.sleep(0.2)
        assert calls == []  # nothing before the first request
        deadline = time.monotonic() + 60
        while len(moving()) < 4 and time.monotonic() < deadline:  # a camera dragged until frames came
            client.move()
            time.sleep(0.05)
        assert loop.still_event.wait(60)
        # The first frame guesses from the initial rate; the rest fit 0.05 s at the measured one (a
        # busy machine only measures a lower rate, so smaller frames).
        assert len(moving()) >= 3 and all(w * h <= 1e5 * 0.05 * 1.3 for w, h, _ in moving()[2:])
        assert calls[-1] == (300, 200, True) and loop.last_still.shape == (200, 300, 3)  # capped
        assert loop.frames["still"] == 1
        # A new camera while the still frame renders interrupts it.
        still_may_finish.clear()
        still_started.clear()
        loop.request()
        assert still_started.wait(60)
        client.move()
        assert _wait_until(lambda: loop.frames["aborted"] >= 1)
        still_may_finish.set()
        assert loop.still_event.wait(60)
        assert loop.frames["aborted"] >= 1 and loop.frames["still"] == 2
        loop.enabled = False
        loop.request()
        assert _wait_until(lambda: client.scene.images[-1] is None)  # disabled: the background is cleared
    finally:
        loop.stop()


def test_progress_curve_puts_train_and_val_psnr_on_one_axis():
    rows = [{"step": 1, "loss": 1.0, "psnr": 10.0}, {"step": 25, "loss": 0.5, "psnr": 20.0},
            {"step": 25, "eval": {"psnr": 18.0}}, {"step": 50, "loss": 0.1, "psnr": 25.0},
            {"step": 50, "eval": {"psnr": 22.0}, "final": True}]
    steps, train, val = Progress.curve_data([r for r in rows if "loss" in r], [r for r in rows if "eval" in r], 100)
    assert steps.tolist() == [1, 25, 50] and train.tolist() == [10, 20, 25]
    assert val.tolist() == [18, 18, 22]  # held between evaluations, no gaps (uPlot draws none)


def test_sdf_slice_colours_draw_the_zero_level_set():
    from viewer.sdf_view import sdf_colors, slice_points

    p = slice_points(2, 0.25, 64)
    assert p.shape == (64 * 64, 3) and torch.all(p[:, 2] == 0.25)
    assert p[0, 0] < 0 and p[0, 1] > 0  # image order: top-left is (-x, +y)
    d = (p[:, :2].norm(dim=-1) - 0.5).view(64, 64).numpy()
    img = sdf_colors(d)
    black = img.sum(-1) == 0
    assert black.any() and np.all(np.abs(d[black]) < 2.5 / 64)  # the contour, one pixel either side
    assert img[32, 32, 2] > img[32, 32, 0] and img[0, 0, 0] > img[0, 0, 2]  # inside blue, outside orange


# -- the training hook ------------------------------------------------------------------------


def test_train_calls_the_hook_for_each_row_and_waits_while_paused(tmp_path):
    from inr.train.image import ImageFitConfig, build_image_task
    from inr.train.loop import TrainConfig, train
    from inr.train.rundir import RunDir

    cfg = ImageFitConfig(field="hash")
    train_cfg = TrainConfig(steps=40, lr=1e-2, batch_size=256, schedule="constant", beta2=0.99, eps=1e-15,
                            log_every=10, eval_every=20, checkpoint_every=0)
    task = build_image_task(torch.rand(16, 16, 3), cfg, train_cfg, torch.device("cpu"))
    run = RunDir.create(tmp_path / "run", {"kind": "image"})
    rows, running = [], threading.Event()
    thread = threading.Thread(target=train, args=(task, run, train_cfg),
                              kwargs={"quiet": True, "on_log": rows.append, "running": running})
    thread.start()
    time.sleep(0.5)
    assert rows == [] and thread.is_alive()  # paused before the first step
    running.set()
    thread.join(900)  # a hang guard, not a time limit: the first step may build the CPU kernels
    assert not thread.is_alive()
    assert [r["step"] for r in rows if "loss" in r] == [1, 10, 20, 30, 40]
    assert [r["step"] for r in rows if "eval" in r] == [20, 40] and rows[-1]["final"]
    assert rows == list(run.metrics())


# -- the server: bad input --------------------------------------------------------------------

viser = pytest.importorskip("viser")
from viewer.browser import Browser, find_chromium
from viewer.server import Viewer, free_port


@pytest.fixture(scope="module")
def image_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "image"
    assert main(["fit", "image", "camera", "--size", "48", "--steps", "150", "--quiet", "--out", str(out)]) == 0
    return out


def test_bad_input_is_one_clear_message(tmp_path, capsys, image_run):
    assert main(["view", str(tmp_path / "missing")]) == 2
    assert "no such run directory" in capsys.readouterr().err
    assert main(["view", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err
    odd = tmp_path / "audio"
    odd.mkdir()
    (odd / "config.json").write_text(json.dumps({"format": "inr-run", "version": 1, "kind": "audio"}))
    assert main(["view", str(odd)]) == 2
    err = capsys.readouterr().err
    assert "no view for run kind 'audio'" in err and "Traceback" not in err
    with pytest.raises(InputError, match="--port"):
        free_port("127.0.0.1", 70000)


def test_a_busy_port_moves_to_the_next_free_one(image_run, capsys):
    import socket

    port = free_port("127.0.0.1", 8700)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        viewer = Viewer(image_run, port=port)
        try:
            assert viewer.port > port and viewer.url.endswith(f":{viewer.port}")
            assert f"port {port} is busy; serving on {viewer.port} instead" in capsys.readouterr().err
        finally:
            viewer.stop()


# -- the views in a browser -------------------------------------------------------------------

WIDTH, HEIGHT = 640, 480


@pytest.fixture(scope="module")
def browser():
    if find_chromium() is None:
        pytest.skip("no chromium on PATH (apt-get install chromium): browser tests skipped")
    with Browser(WIDTH, HEIGHT) as b:
        yield b


def show(browser, viewer, *texts, timeout=300.0, skip=None, drawn=None):
    """Open the viewer, wait for `texts` and a full-resolution frame; (page text, screenshot, frame).
    Without a rendered frame (a mesh view), `drawn(screenshot)` says when the page has drawn it."""
    before = set(viewer.view.loops)
    browser.open(viewer.url)
    text = browser.wait_for_text(*texts, timeout=timeout)
    deadline = time.monotonic() + timeout
    while not set(viewer.view.loops) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    loop = viewer.view.loops[max(set(viewer.view.loops) - before)]
    frame = None
    if loop.enabled:
        while time.monotonic() < deadline:
            loop.still_event.wait(0.2)
            # Settled: a still frame, and nothing newer in flight for a moment.
            if loop.last_still is not None and loop.still_event.is_set():
                time.sleep(0.6)
                if loop.still_event.is_set():
                    break
        assert loop.last_still is not None, loop.frames
        frame = loop.last_still
    shot = browser.screenshot()
    while frame is None and drawn is not None and not drawn(shot) and time.monotonic() < deadline:
        time.sleep(0.2)
        shot = browser.screenshot()
    while frame is not None and region_error(shot, frame, *FREE, skip) > 12 and time.monotonic() < deadline:
        time.sleep(0.5)  # the page draws what it received on its next animation frame
        shot = browser.screenshot()
    return text, shot, frame


def region_error(shot: np.ndarray, frame: np.ndarray, rows: slice, cols: slice, skip=None) -> float:
    """Mean absolute difference (0..255) between a screenshot region and the frame stretched to the
    page, over the pixels whose frame colour is not `skip` (where the page draws scene objects)."""
    ys = (np.arange(shot.shape[0]) * frame.shape[0] / shot.shape[0]).astype(int)
    xs = (np.arange(shot.shape[1]) * frame.shape[1] / shot.shape[1]).astype(int)
    stretched = frame[ys][:, xs][rows, cols].astype(float)
    diff = np.abs(shot[rows, cols].astype(float) - stretched).mean(-1)
    if skip is not None:
        diff = diff[np.abs(stretched - skip).max(-1) > 3]
    return float(diff.mean())


# The page's floating panel covers the right side and a notice the top left: compare the lower left.
FREE = (slice(HEIGHT // 2, HEIGHT - 60), slice(60, WIDTH // 2))


@pytest.mark.slow
def test_image_view_in_a_browser(browser, image_run):
    viewer = Viewer(image_run, port=free_port("127.0.0.1", 8710))
    try:
        # The ground truth and error panels are scene objects drawn over the backdrop around the
        # fitted image: compare where the frame shows the field.
        backdrop = round(BACKDROP * 255)
        text, shot, frame = show(browser, viewer, "PSNR", "Export crop", "Training", skip=backdrop)
        assert "finished" in text
        assert shot.std() > 10  # not blank
        assert (np.abs(frame.astype(int) - backdrop).max(-1) > 3).mean() > 0.1  # the field is in view
        assert region_error(shot, frame, *FREE, skip=backdrop) < 12, "the page does not show the rendered frame"
        view = viewer.view
        assert abs(view.psnr - json.loads((image_run / "metrics.jsonl").read_text().splitlines()[-1])["eval"]["psnr"]) < 0.05
        png = view.export_crop(view.loops[max(view.loops)].client)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        viewer.stop()


@pytest.fixture(scope="module")
def sdf_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "sdf"
    args = ["fit", "sdf", "torus", "--out", str(out), "--steps", "40", "--quiet", "--batch-size", "4096",
            "--eval-resolution", "32", "--samples.surface-points", "4000", "--samples.near-points", "4000",
            "--samples.uniform-points", "1000", "--loss.gradient-points", "512",
            "--hash.grid", '{"n_levels": 6, "log2_hashmap_size": 12, "base_resolution": 8, "finest_resolution": 64}']
    assert main(args) == 0
    return out


@pytest.mark.slow
@pytest.mark.open3d
def test_sdf_view_in_a_browser(browser, sdf_run):
    viewer = Viewer(sdf_run, port=free_port("127.0.0.1", 8720))
    try:
        viewer.view.resolution.value = 48
        _text, mesh_shot, _ = show(browser, viewer, "Mesh resolution", "Slice position", "triangles",
                                   drawn=lambda shot: shot.std() > 10)
        assert mesh_shot.std() > 10
        viewer.view.display.value = "sphere-traced"  # as if picked in the page
        viewer.view.show_slice.value = False  # the slice would cover the comparison
        viewer.view._set_display()
        viewer.view.update_slice()
        _, shot, frame = show(browser, viewer, "Display")
        assert (frame < 200).any(axis=-1).mean() > 0.02  # the shape is in view
        assert region_error(shot, frame, *FREE) < 12
    finally:
        viewer.stop()


@pytest.fixture(scope="module")
def nerf_run(tmp_path_factory) -> Path:
    from scenes.multiview import generate_scene

    scene = generate_scene(tmp_path_factory.mktemp("mv") / "blocks", "blocks", size=32, n_train=12, n_val=2, n_test=1)
    out = tmp_path_factory.mktemp("runs") / "nerf"
    grid = '{"n_levels": 8, "log2_hashmap_size": 14, "base_resolution": 8, "finest_resolution": 128}'
    assert main(["fit", "nerf", str(scene), "--out", str(out), "--steps", "120", "--eval-every", "1000",
                 "--field.grid", grid, "--occupancy.resolution", "32", "--march.steps-per-diagonal", "128",
                 "--batch-size", "8192", "--quiet", "--log-every", "20", "--checkpoint-every", "1000"]) == 0
    return out


@pytest.mark.slow
@pytest.mark.open3d
def test_nerf_view_in_a_browser_matches_a_dataset_view(browser, nerf_run):
    viewer = Viewer(nerf_run, port=free_port("127.0.0.1", 8730))
    try:
        view = viewer.view
        view.show_cameras.value = False  # frustums would cover the comparison
        _text, shot, frame = show(browser, viewer, "Radiance field", "Export orbit video", "val PSNR")
        assert shot.std() > 10 and region_error(shot, frame, *FREE) < 12
        # The page opened at training camera 0: the frame is that view of the field.
        loop = view.loops[max(view.loops)]
        c2w, fov = view.training_view(0)
        h, w = frame.shape[:2]
        expected = view.colorize(view.render_maps(c2w, fov, w, h), "rgb")
        assert np.abs(frame.astype(float) - expected).mean() < 6
        assert loop.frames["still"] >= 1
        # Depth and opacity switch the frame.
        view.output.value = "opacity"
        _, _, alpha = show(browser, viewer, "Output")
        assert np.allclose(alpha[..., 0], alpha[..., 1]) and alpha.std() > 5
        video = view.export_orbit(None, frames=4, height=24)
        assert video[4:8] == b"ftyp"  # an MP4 (imageio-ffmpeg is a dependency)
        assert len(view._frustums) == 12  # every training camera, with its image
        view.show_grid.value = True
        view._draw_grid()
        occupied = view.source.module["grid"].binary.sum()
        assert view._grid_handle is not None and 0 < len(view._grid_handle.points) <= occupied
    finally:
        viewer.stop()


def test_live_viewer_follows_training_and_pauses_it(tmp_path):
    """`inr fit ... --view`: the panel gets every row, the view the newest weights, pause holds the loop."""
    from inr.train.image import ImageFitConfig, build_image_task
    from inr.train.loop import TrainConfig, train
    from inr.train.rundir import RunDir
    from viewer.live import start_live_viewer

    train_cfg = TrainConfig(steps=30, lr=1e-2, batch_size=256, schedule="constant", beta2=0.99, eps=1e-15,
                            log_every=10, eval_every=0, checkpoint_every=0)
    task = build_image_task(torch.rand(12, 16, 3), ImageFitConfig(field="hash"), train_cfg, torch.device("cpu"))
    run = RunDir.create(tmp_path / "run", {"kind": "image", "field": task.model.config(),
                                           "data": {"source": "random", "height": 12, "width": 16, "channels": 3}})
    viewer, hooks = start_live_viewer(run, task, port=free_port("127.0.0.1", 8740))
    try:
        view = viewer.view
        view.progress.toggle()  # the pause button
        thread = threading.Thread(target=train, args=(task, run, train_cfg), kwargs={"quiet": True, **hooks})
        thread.start()
        time.sleep(0.5)
        assert view.progress.rows == [] and thread.is_alive()
        view.progress.toggle()  # resume
        thread.join(900)  # a hang guard, not a time limit: the first step may build the CPU kernels
        assert not thread.is_alive()
        assert view.progress.rows == list(run.metrics()) and view.progress.rows[-1]["final"]
        assert "finished" in view.progress.readout.content and view.source.version >= 1
        shown, trained = view.source.module.state_dict(), task.model.state_dict()
        assert all(torch.equal(shown[k], trained[k]) for k in trained)  # the final weights are on view
        assert view.source.module is not task.model  # a copy: renders never race the optimiser
    finally:
        viewer.stop()


def test_viewing_a_run_in_progress_follows_its_checkpoints(image_run, tmp_path):
    """A fit in another process: the view starts from the newest checkpoint and reloads when the
    model (or a newer checkpoint) is written; the panel follows metrics.jsonl."""
    import shutil

    from inr.train.rundir import RunDir

    run_dir = tmp_path / "in-progress"
    shutil.copytree(image_run, run_dir)
    model = (run_dir / "model.safetensors").read_bytes()
    (run_dir / "model.safetensors").unlink()
    rows = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text("\n".join(rows[:3]) + "\n")
    viewer = Viewer(run_dir, port=free_port("127.0.0.1", 8750))
    try:
        view = viewer.view
        assert len(view.progress.rows) == 3 and view.source.version == 0
        run = RunDir.open(run_dir)
        (run_dir / "model.safetensors").write_bytes(model)
        (run_dir / "metrics.jsonl").write_text("\n".join(rows) + "\n")
        deadline = time.monotonic() + 300  # a hang guard: it waits for the event
        while (view.source.version == 0 or len(view.progress.rows) < len(rows)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert view.source.version >= 1 and len(view.progress.rows) == len(rows)
        saved = run.load_model_state()
        assert all(torch.equal(view.source.module.state_dict()[k], v) for k, v in saved.items())
    finally:
        viewer.stop()


@pytest.fixture(scope="module")
def collection_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "collection"
    assert main(["fit", "collection", "images", "textures-4", "--steps", "60", "--signals-per-batch", "4",
                 "--latent-dim", "16", "--hyper.hidden", "64", "--siren.hidden", "32", "32", "--quiet",
                 "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_collection_view_in_a_browser_switches_members(browser, collection_run, capsys):
    from viewer.image_view import BACKDROP

    assert main(["eval", str(collection_run), "--device", "cpu"]) == 0
    members = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["members"]
    viewer = Viewer(collection_run, port=free_port("127.0.0.1", 8730))
    try:
        backdrop = round(BACKDROP * 255)
        text, shot, frame = show(browser, viewer, "PSNR", "Member", "stripes-000", skip=backdrop)
        assert region_error(shot, frame, *FREE, skip=backdrop) < 12, "the page does not show the rendered frame"
        view = viewer.view
        assert abs(view.psnr - members["stripes-000"]) < 0.05
        view.show_member(2)  # what the slider does
        assert abs(view.psnr - members["plaid-002"]) < 0.05
        assert browser.wait_for_text("plaid-002", timeout=300)
    finally:
        viewer.stop()


@pytest.mark.slow
@pytest.mark.open3d
def test_sdf_collection_view_switches_members(tmp_path):
    out = tmp_path / "shapes"
    assert main(["fit", "collection", "sdf", "shapes-4", "--steps", "30", "--signals-per-batch", "4",
                 "--latent-dim", "16", "--hyper.hidden", "64", "--siren.hidden", "32", "32", "--quiet",
                 "--out", str(out)]) == 0
    viewer = Viewer(out, port=free_port("127.0.0.1", 8740))
    try:
        view = viewer.view
        names = json.loads((out / "config.json").read_text())["data"]["members"]
        assert "vertices" in view.mesh_info.content and names[0] in view.member_name.content
        before = view.slice_image()
        view.show_member(1)  # what the slider does: the slice (and mesh) of member 1
        assert view.member == 1 and f"**{names[1]}** (2 of 4)" in view.member_name.content
        assert np.abs(view.slice_image().astype(int) - before.astype(int)).mean() > 1.0
    finally:
        viewer.stop()
