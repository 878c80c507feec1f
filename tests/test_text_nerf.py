"""Text-to-NeRF (issue 18): the offline text encoder and its cache, the generator lowering its loss,
and the CLI end to end (train -> generate -> render / eval / fine-tune) with each bad input."""
import builtins
import io
import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch

from inr.errors import InputError
from inr.generate import text_encoder
from inr.generate.text import TextNerfConfig, TextNerfGenerator
from inr.generate.text_encoder import EmbeddingCache, batch_tokens, check_caption, require_text_extra
from inr.hyper.dynamic import DynamicHyperConfig
from inr.fields.nerf import NerfFieldConfig
from inr.train.generator_text import TextGeneratorTask, TextTrainConfig, scene_rays


def _has_text_extra() -> bool:
    try:
        require_text_extra()
    except InputError:
        return False
    return True


needs_text = pytest.mark.skipif(not _has_text_extra(), reason="the text extra is not installed (pip install 'inr[text]')")
TINY = TextNerfConfig(field=NerfFieldConfig(grid={"n_levels": 4, "log2_hashmap_size": 12, "base_resolution": 8,
                                                  "finest_resolution": 64}, density_hidden=(32,), color_hidden=(32,)),
                      hyper=DynamicHyperConfig(d_model=32, layers=1, heads=2, head_hidden=(32,)), probe_points=256)


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    from scenes.collection import make_collection

    return make_collection(tmp_path_factory.mktemp("coll") / "c", 4, views=6, res=16, test_views=2, seed=1)


def block_sentence_transformers(monkeypatch) -> None:
    """Imports of sentence_transformers fail from now on: the text extra looks uninstalled."""
    real_import = builtins.__import__

    def no_sentence_transformers(name, *args, **kwargs):
        if name.startswith("sentence_transformers"):
            raise ImportError("No module named 'sentence_transformers'", name="sentence_transformers")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sentence_transformers)


def test_missing_extra_is_one_line_naming_the_install(monkeypatch):
    block_sentence_transformers(monkeypatch)
    with pytest.raises(InputError, match=r"pip install 'inr\[text\]'") as e:
        require_text_extra()
    assert "\n" not in str(e.value)


def test_empty_caption_is_an_input_error():
    for bad in ("", "   ", "\n"):
        with pytest.raises(InputError, match="empty text"):
            check_caption(bad)


@needs_text
def test_encoder_tokens_cache_and_truncation(tmp_path, monkeypatch, capsys):
    cache = EmbeddingCache(tmp_path / "emb.safetensors")
    a, b = cache.get(["a red cube", "a red cube on a blue cylinder"])
    assert a.tokens.shape[1] == b.tokens.shape[1] == text_encoder.D_TOKEN
    assert b.tokens.shape[0] > a.tokens.shape[0]  # no padding kept
    assert abs(float(a.pooled.norm()) - 1.0) < 1e-3  # MiniLM's sentence embedding is normalised
    assert float(torch.cosine_similarity(a.pooled, b.pooled, 0)) > 0.5
    # reopened: served from the file, the model is never loaded
    monkeypatch.setattr(text_encoder, "TextEncoder", lambda *a, **k: pytest.fail("the model was loaded"))
    again = EmbeddingCache(tmp_path / "emb.safetensors").get(["a red cube"])[0]
    torch.testing.assert_close(again.tokens, a.tokens)
    monkeypatch.undo()
    long = " ".join(["cube"] * 400)
    e = EmbeddingCache(None).get([long])[0]
    assert e.tokens.shape[0] == 256
    assert "truncated" in capsys.readouterr().err
    tokens, mask = batch_tokens([a, b])
    assert tokens.shape[:2] == mask.shape and int(mask[0].sum()) == a.tokens.shape[0]


def _tiny_task(collection, scenes_per_step: int = 3) -> TextGeneratorTask:
    """A tiny generator on the collection's 3 training scenes, images only (no teachers), random
    caption tokens."""
    from inr.signals.scene_collection import load_scene_collection

    torch.manual_seed(0)
    coll = load_scene_collection(collection)
    cfg = TextTrainConfig(distill=False, rays_per_scene=128, samples=24, eval_views=1, generator=TINY)
    scenes = [scene_rays(s.name, s.caption, s.path, None, cfg, None, torch.device("cpu")) for s in coll.split("train")]
    tokens, mask = torch.randn(len(scenes), 5, text_encoder.D_TOKEN), torch.ones(len(scenes), 5, dtype=torch.bool)
    return TextGeneratorTask(TextNerfGenerator(TINY), scenes, tokens, mask, cfg, scenes_per_step, torch.device("cpu"))


def test_generator_lowers_its_loss(collection):
    """60 steps of the tiny generator lower its loss."""
    task = _tiny_task(collection)
    opt = torch.optim.Adam([{"params": g["params"], "lr": g["lr"]} for g in task.param_groups(3e-3)])
    losses = []
    for step in range(60):
        opt.zero_grad()
        loss, logs = task.loss(step)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.6 * first, (first, last)
    ev = task.evaluate()
    assert set(ev["scenes"]) == {s.name for s in task.scenes} and ev["psnr"] > 10


class _Terminal(io.StringIO):
    """A stderr that says it is a terminal, so that tqdm draws its bar into it."""

    def isatty(self) -> bool:
        return True


def test_progress_bar_shows_per_scene_psnr(collection, tmp_path, monkeypatch):
    """The training loop's bar carries every scene's PSNR (3 scenes: listed), matching the
    images' error of the scenes' last draws; with more scenes than listed: mean and worst."""
    from inr.train.loop import TrainConfig, train
    from inr.train.rundir import RunDir

    task = _tiny_task(collection, scenes_per_step=2)
    assert task.progress_postfix() == {}  # nothing drawn yet
    err = _Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    cfg = TrainConfig(steps=8, lr=1e-3, batch_size=2, schedule="constant", beta2=0.99, eps=1e-10, eval_every=0,
                      log_every=4, checkpoint_every=0, backend="torch")
    train(task, RunDir.create(tmp_path / "run", {"kind": "test"}), cfg)
    monkeypatch.undo()
    shown = re.findall(r"scenes=([0-9./-]+)", err.getvalue())
    assert shown, err.getvalue()
    values = [float(v) for v in shown[-1].split("/")]
    assert len(values) == 3 and all(5 < v < 40 for v in values)
    assert values == [round(v, 1) for v in (-10 * torch.log10(task.scene_mse)).tolist()]
    many = task.progress_postfix(listed=2)
    worst = min(zip(values, (s.name for s in task.scenes)))
    assert many["worst"] == f"{worst[0]:.1f} {worst[1]}" and float(many["scenes"]) == pytest.approx(sum(values) / 3, abs=0.06)


def test_materialized_field_equals_the_generated_weights(collection):
    torch.manual_seed(0)
    gen = TextNerfGenerator(TINY)
    tokens = torch.randn(2, 4, text_encoder.D_TOKEN)
    field = gen.materialize(tokens[1:])
    params = gen.params(tokens[1:], None)
    x, d = torch.rand(1, 50, 3) * 2 - 1, torch.nn.functional.normalize(torch.randn(1, 50, 3), dim=-1)
    rgb, density = gen.field(x, d, params)
    rgb2, density2 = field(x[0], d[0])
    torch.testing.assert_close(rgb[0], rgb2)
    torch.testing.assert_close(density[0], density2)


def _main(argv, capsys):
    from inr.cli.main import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def generator_run(collection, tmp_path_factory):
    """A tiny generator trained through the CLI: auto teachers (5 steps each), 6 steps."""
    if not _has_text_extra():
        pytest.skip("the text extra is not installed")
    from inr.cli.main import main

    out = tmp_path_factory.mktemp("gen") / "g"
    assert main(["train", "generator", "text", str(collection), "--out", str(out), "--steps", "6",
                 "--teacher-steps", "5", "--teacher-batch", "2048", "--distill-views", "2", "--rays-per-scene", "32",
                 "--samples", "16", "--eval-every", "3", "--log-every", "2", "--quiet",
                 "--generator.probe-points", "128"]) == 0
    return out


@pytest.mark.slow
def test_cli_train_generate_render_eval_finetune(generator_run, collection, tmp_path, capsys):
    rows = [json.loads(line) for line in (generator_run / "metrics.jsonl").read_text().splitlines()]
    final = rows[-1]
    assert final["final"] and set(final["eval"]["scenes"]) == {"scene_0000", "scene_0001", "scene_0002"}
    assert "heldout_psnr" in final["eval"] and (generator_run / "teachers" / "scene_0000" / "model.safetensors").is_file()
    config = json.loads((generator_run / "config.json").read_text())
    assert config["kind"] == "text-generator" and (generator_run / "text_embeddings.safetensors").is_file()
    held = next(s for s in config["scenes"] if s["split"] == "heldout")
    out = tmp_path / "gen_nerf"
    code, stdout, _ = _main(["generate", "nerf", "--text", held["caption"], "--model", str(generator_run), "-o", str(out),
                             "--scene", str(collection / held["name"]), "--finetune", "3", "--quiet"], capsys)
    assert code == 0
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["finetune"]["step"] == 3 and result["generation_seconds"] < 5
    assert json.loads((out / "config.json").read_text())["kind"] == "nerf"
    code, stdout, _ = _main(["render", "nerf", str(out), "-o", str(tmp_path / "v.png")], capsys)
    assert code == 0 and (tmp_path / "v.png").is_file()
    code, stdout, _ = _main(["eval", str(out), "--device", "cpu"], capsys)
    assert code == 0 and json.loads(stdout)["psnr"] > 5
    # no --scene: the run's cameras are the collection's, its views the generated field's renders
    own = tmp_path / "own"
    code, _, _ = _main(["generate", "nerf", "--text", "a red cube", "--model", str(generator_run), "-o", str(own)], capsys)
    assert code == 0 and (own / "views" / "transforms_test.json").is_file()
    code, stdout, _ = _main(["eval", str(own), "--device", "cpu"], capsys)
    assert code == 0 and json.loads(stdout)["psnr"] > 25  # its own renders, through the occupancy grid


@pytest.mark.slow
def test_cli_bad_inputs_are_one_line(generator_run, collection, tmp_path, capsys):
    def fails(argv, match, out=None):
        code, _, err = _main(argv, capsys)
        assert code == 2 and match in err and len(err.strip().splitlines()) == 1, err
        if out is not None:
            assert not Path(out).exists()

    out = tmp_path / "x"
    gen = ["generate", "nerf", "--model", str(generator_run), "-o", str(out)]
    fails([*gen[:2], "--text", "  ", *gen[2:]], "empty text", out)
    fails(["generate", "nerf", "--text", "a cube", "--model", str(generator_run / "teachers" / "scene_0000"), "-o",
           str(out)], "not a text-to-NeRF generator run", out)
    fails([*gen[:2], "--text", "a cube", *gen[2:], "--scene", str(tmp_path)], "not a Blender dataset", out)
    broken = tmp_path / "broken"
    shutil.copytree(collection, broken)
    next((broken / "scene_0001" / "train").glob("*.png")).unlink()
    run = tmp_path / "r"
    fails(["train", "generator", "text", str(broken), "--out", str(run), "--steps", "1", "--quiet"], "broken", run)
    fails(["train", "generator", "text", str(collection), "--out", str(run), "--teachers", str(tmp_path), "--quiet"],
          "no nerf run", run)
