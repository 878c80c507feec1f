"""The few-view generator: image-plane projection, the hypernetwork update, batched generation,
training, and generated NeRF runs through the command line (issue 19)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from inr.backends import Backend
from inr.cli.main import main
from inr.generate.views import FewViewGenerator, FewViewModelConfig, default_hyper
from inr.hyper.image_planes import pool_views, project, sample_planes
from inr.render.rays import Cameras
from test_cli_image import _fails

AABB = [-1.5, -1.5, -1.5, 1.5, 1.5, 1.5]
TINY = dict(image_size=16, features=4, cnn_width=8, code_dim=16, grid_base=6, grid_finest=10, fuse_hidden=16,
            density_hidden=(16,), geo_features=8, color_hidden=(16,), samples_per_ray=16)


def _camera(z: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A camera on +z looking at the origin (OpenGL: down its -z), 100 px wide, f = 50 px."""
    c2w = torch.eye(4)
    c2w[2, 3] = z
    return c2w, torch.tensor([50.0, 50.0, 50.0, 50.0])


def test_projection_against_hand_computed_pixels():
    c2w, intr = _camera()
    points = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    uv, depth = project(points[None], c2w[None, None], intr[None, None])
    # x = 1 at distance 4: 50 + 50 * 1 / 4 columns; y = 1 goes up the image (rows grow downwards)
    assert uv[0, 0, :3].tolist() == [[50.0, 50.0], [62.5, 50.0], [50.0, 37.5]]
    assert depth[0, 0].tolist() == [4.0, 4.0, 4.0, -1.0]  # the last point is behind the camera


def test_projection_inverts_camera_rays():
    torch.manual_seed(0)
    angle = torch.tensor(0.7)
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.tensor([[torch.cos(angle), 0, torch.sin(angle)], [0, 1, 0],
                                [-torch.sin(angle), 0, torch.cos(angle)]])
    c2w[:3, 3] = torch.tensor([0.3, -0.2, 4.0])
    cams = Cameras(c2w[None], torch.tensor([60.0]), torch.tensor([55.0]), torch.tensor([48.0]), torch.tensor([52.0]),
                   96, 104)
    row, col = torch.rand(20) * 104, torch.rand(20) * 96
    origins, dirs = cams.rays(torch.zeros(20, dtype=torch.long), row, col)
    points = origins + dirs * (2 + torch.rand(20, 1))
    intr = torch.tensor([60.0, 55.0, 48.0, 52.0])
    uv, depth = project(points[None], c2w[None, None], intr[None, None])
    assert torch.allclose(uv[0, 0], torch.stack([col, row], -1), atol=1e-3)
    assert bool((depth > 0).all())


def test_sample_planes_reads_pixel_centres_and_pools_views():
    w, h = 8, 6
    cols = torch.arange(w, dtype=torch.float32).expand(h, w)
    maps = torch.stack([cols, cols * 2])[None, None].expand(1, 2, 2, h, w).clone()
    maps[0, 1] += 1.0  # the second view reads one more
    uv = torch.tensor([[[[2.5, 3.5], [5.0, 1.5], [-3.0, 2.0]]]]).expand(1, 2, 3, 2)
    feats, seen = sample_planes(maps, uv, torch.ones(1, 2, 3))
    assert torch.allclose(feats[0, 0, 0], torch.tensor([2.0, 4.0]))  # pixel 2's centre holds 2
    assert torch.allclose(feats[0, 0, 1], torch.tensor([4.5, 9.0]))  # half way between pixels 4 and 5
    assert seen[0, :, 2].tolist() == [False, False]  # left of the image
    pooled = pool_views(feats, seen)  # mean, variance, min over the views, share that see it
    assert torch.allclose(pooled[0, 0], torch.tensor([2.5, 4.5, 0.25, 0.25, 2.0, 4.0, 1.0]))
    assert pooled[0, 2].tolist() == [0.0] * 7


def _model(zero_update: bool = True, mode: str = "full", seed: int = 0) -> FewViewGenerator:
    torch.manual_seed(seed)
    hyper = default_hyper()
    hyper.mode, hyper.hidden = mode, (32,)
    if mode != "full":
        hyper.last_k, hyper.mip = None, False
    return FewViewGenerator(FewViewModelConfig(zero_update=zero_update, **TINY), hyper, AABB,
                            generator=torch.Generator().manual_seed(seed))


def _inputs(b: int, v: int = 3):
    g = torch.Generator().manual_seed(1)
    c2w, intr = _camera()
    return (torch.rand(b, v, 16, 16, 4, generator=g), c2w.expand(b, v, 4, 4).clone(),
            (intr * 16 / 100).expand(b, v, 4).clone())


def _probe(field_or_model, params=None):
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(200, 3, generator=g) * 2 - 1) * 1.1  # inside the outermost half cell of the grid
    d = torch.nn.functional.normalize(torch.randn(200, 3, generator=g), dim=-1)
    if params is None:
        return field_or_model(x, d)
    return tuple(t[0] for t in field_or_model.field_outputs(params, x[None], d[None]))


@pytest.mark.parametrize("mode", ["full", "lowrank"])
def test_update_is_zero_at_init_when_configured(mode):
    model = _model(zero_update=True, mode=mode)
    views, c2w, intr = _inputs(2)
    with torch.no_grad():
        generated = model.generate(views, c2w, intr)
        universal = model.generate(views, c2w, intr, update=False)
    for b in range(2):
        rgb, density = _probe(model.materialize(generated, b))
        rgb_u, density_u = _probe(model.materialize(universal, b))
        assert torch.equal(rgb, rgb_u) and torch.equal(density, density_u)
    other = _model(zero_update=False, mode=mode)
    with torch.no_grad():
        g2, u2 = other.generate(views, c2w, intr), other.generate(views, c2w, intr, update=False)
    assert not torch.allclose(_probe(other.materialize(g2, 0))[0], _probe(other.materialize(u2, 0))[0])


def test_batched_generation_equals_a_per_scene_loop_and_the_written_field():
    model = _model(zero_update=False)
    views, c2w, intr = _inputs(3)
    with torch.no_grad():
        batch = model.generate(views, c2w, intr)
        for b in range(3):
            one = model.generate(views[b:b + 1], c2w[b:b + 1], intr[b:b + 1])
            for name, value in one.items():
                assert torch.allclose(batch[name][b:b + 1], value, atol=1e-6), name
            # the plain NerfField (hash grid table) computes what training renders (grid_sample volumes)
            field = model.materialize(batch, b)
            sliced = {k: v[b:b + 1] for k, v in batch.items()}
            for a, c in zip(_probe(field), _probe(model, sliced)):
                assert torch.allclose(a, c, rtol=1e-5, atol=1e-6)


def test_more_support_views_than_allowed_is_refused():
    from inr.errors import InputError

    model = _model()
    views, c2w, intr = _inputs(1, v=6)
    with pytest.raises(InputError, match="at most 5"):
        model.generate(views, c2w, intr)


# ----------------------------------------------------------------------------------------------
# On a small collection (open3d renders it)

TINY_CLI = [f"--model.{k.replace('_', '-')}={v}" for k, v in TINY.items() if k not in ("image_size", "density_hidden", "color_hidden")]
TINY_CLI += ["--model.density-hidden", "16", "--model.color-hidden", "16", "--hyper.hidden", "32"]


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    pytest.importorskip("open3d")
    from scenes.collection import make_collection

    return make_collection(tmp_path_factory.mktemp("fv") / "coll", 4, views=5, res=16, test_views=2, seed=0)


@pytest.mark.open3d
def test_a_tiny_generator_lowers_its_loss(collection):
    from inr.signals.scene_collection import load_scene_collection
    from inr.train.generator_views import ViewsTrainConfig, build_views_task

    cfg = ViewsTrainConfig(target=str(collection), support=2, scenes_per_batch=3,
                           model=FewViewModelConfig(zero_update=True, **TINY))
    cfg.hyper.hidden = (32,)
    train_cfg = cfg.resolved_train()
    task = build_views_task(load_scene_collection(collection), cfg, train_cfg, torch.device("cpu"))
    opt = torch.optim.Adam(task.param_groups(3e-3)[0]["params"], lr=3e-3)
    start = task.generator.get_state()

    def fixed_loss() -> float:  # the same scenes, support sets and rays every time
        state = task.generator.get_state()
        task.generator.set_state(start)
        with torch.no_grad():
            value = float(task.loss(0)[0])
        task.generator.set_state(state)
        return value

    with Backend("torch").active():  # the backend training resolves "auto" to
        before = fixed_loss()
        for step in range(40):
            opt.zero_grad()
            task.loss(step)[0].backward()
            opt.step()
        after = fixed_loss()
    assert after < 0.6 * before


@pytest.mark.open3d
@pytest.mark.slow
def test_generated_run_loads_renders_evaluates_and_finetunes(collection, tmp_path, capsys):
    gen = tmp_path / "gen"
    assert main(["train", "generator", "views", str(collection), "--out", str(gen), "--steps", "4", "--support", "2",
                 "--eval-every", "0", "--quiet", *TINY_CLI]) == 0
    config = json.loads((gen / "config.json").read_text())
    assert config["kind"] == "generator-views" and config["fit"]["model"]["image_size"] == 16
    held = collection / "scene_0003"
    out = tmp_path / "nerf"
    capsys.readouterr()
    assert main(["generate", "nerf", "--views", str(held), "--model", str(gen), "-o", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["support_views"] == [0, 2] and result["generation_seconds"] < 5
    run = json.loads((out / "config.json").read_text())
    assert run["kind"] == "nerf" and run["generated"]["by"] == "generator-views"
    for name in ("model.safetensors", "occupancy.safetensors", "preview.png", "views/transforms_train.json"):
        assert (out / name).is_file(), name
    assert main(["info", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    zero_shot = json.loads(capsys.readouterr().out)
    assert len(zero_shot["views"]) == 2 and math.isfinite(zero_shot["psnr"])
    assert main(["render", "nerf", str(out), "-o", str(tmp_path / "v.png")]) == 0
    from inr.train import load

    assert load(out).kind == "nerf"
    tuned = tmp_path / "tuned"
    capsys.readouterr()
    assert main(["generate", "nerf", "--views", str(held), "--model", str(gen), "-o", str(tuned), "--finetune", "20",
                 "--support-views", "1", "3", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["finetune"]["step"] == 20 and result["support_views"] == [1, 3]
    assert json.loads((tuned / "config.json").read_text())["finetuned_steps"] == 20


@pytest.mark.open3d
def test_bad_inputs_exit_2_and_write_nothing(collection, tmp_path, capsys):
    gen = tmp_path / "gen"
    assert main(["train", "generator", "views", str(collection), "--out", str(gen), "--steps", "1", "--support", "2",
                 "--eval-every", "0", "--quiet", *TINY_CLI]) == 0
    held = collection / "scene_0003"
    out = tmp_path / "out"
    # views without poses
    bare = tmp_path / "bare"
    bare.mkdir()
    meta = json.loads((held / "transforms_train.json").read_text())
    for f in meta["frames"]:
        del f["transform_matrix"]
        f["file_path"] = str(held / f["file_path"])
    (bare / "transforms_train.json").write_text(json.dumps(meta))
    _fails(["generate", "nerf", "--views", str(bare), "--model", str(gen), "-o", str(out)], capsys, "transform_matrix")
    # more support views than the model allows, or than the dataset has
    _fails(["generate", "nerf", "--views", str(held), "--model", str(gen), "-o", str(out), "--support", "6"], capsys,
           "1 to 5")
    _fails(["generate", "nerf", "--views", str(held), "--model", str(gen), "-o", str(out), "--support-views", "0", "9"],
           capsys, "cannot use views")
    # a model run of the wrong kind, and no model at all
    _fails(["generate", "nerf", "--views", str(held), "--model", str(held), "-o", str(out)], capsys, "not a run")
    nerf_run = tmp_path / "nerf"
    assert main(["generate", "nerf", "--views", str(held), "--model", str(gen), "-o", str(nerf_run)]) == 0
    _fails(["generate", "nerf", "--views", str(held), "--model", str(nerf_run), "-o", str(out)], capsys,
           "not a few-view generator run")
    # the output exists already
    _fails(["generate", "nerf", "--views", str(held), "--model", str(gen), "-o", str(nerf_run)], capsys, "exists")
    # support views of another aspect ratio are refused
    from inr.signals.image import load_image, save_image

    wide = tmp_path / "wide"
    wide.mkdir()
    meta = json.loads((held / "transforms_train.json").read_text())
    for f in meta["frames"]:
        img = load_image(held / (f["file_path"] + ".png"))
        save_image(wide / (Path(f["file_path"]).name + ".png"), torch.cat([img, img], 1))
        f["file_path"] = "./" + Path(f["file_path"]).name
    meta["w"] = 32
    (wide / "transforms_train.json").write_text(json.dumps(meta))
    _fails(["generate", "nerf", "--views", str(wide), "--model", str(gen), "-o", str(out)], capsys, "square")
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    # --text without the text generator (where it is not installed)
    from inr.cli.generate_commands import _text_commands

    if _text_commands() is None:
        _fails(["generate", "nerf", "--text", "a red cube", "--model", str(gen), "-o", str(out)], capsys, "--text")
    # a bigger square image is resized with a warning
    big = tmp_path / "big"
    big.mkdir()
    meta = json.loads((held / "transforms_train.json").read_text())
    for f in meta["frames"]:
        img = load_image(held / (f["file_path"] + ".png"))
        save_image(big / (Path(f["file_path"]).name + ".png"), img.repeat_interleave(2, 0).repeat_interleave(2, 1))
        f["file_path"] = "./" + Path(f["file_path"]).name
    meta["w"] = meta["h"] = 32
    (big / "transforms_train.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert main(["generate", "nerf", "--views", str(big), "--model", str(gen), "-o", str(out)]) == 0
    assert "resized" in capsys.readouterr().err
