"""Without open3d (a headless machine lacking libusb-1.0), the commands that raycast meshes stop
with one line (exit code 2, no run directory) and everything else keeps working."""
from __future__ import annotations

import sys

import pytest

from inr import optional
from inr.errors import InputError
from inr.cli.main import main

LIBUSB_MESSAGE = "libusb-1.0.so.0: cannot open shared object file: No such file or directory"


@pytest.fixture
def broken_open3d(tmp_path, monkeypatch):
    """An `open3d` whose import fails the way it does on a machine without libusb-1.0."""
    fake = tmp_path / "site" / "open3d"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(f"raise ImportError({LIBUSB_MESSAGE!r})\n")
    for name in [m for m in sys.modules if m == "open3d" or m.startswith("open3d.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", [str(fake.parent), *sys.path])
    optional.open3d_import_error.cache_clear()
    yield
    optional.open3d_import_error.cache_clear()


@pytest.fixture
def no_open3d(monkeypatch):
    monkeypatch.setitem(sys.modules, "open3d", None)  # `import open3d` raises ModuleNotFoundError
    optional.open3d_import_error.cache_clear()
    yield
    optional.open3d_import_error.cache_clear()


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_missing_libusb_is_named_with_its_install_command(broken_open3d):
    assert not optional.open3d_available()
    with pytest.raises(InputError) as e:
        optional.require_open3d()
    assert "libusb-1.0.so.0 is missing" in str(e.value) and "apt-get install -y libusb-1.0-0" in str(e.value)


def test_missing_package_names_pip(no_open3d):
    with pytest.raises(InputError, match="pip install open3d"):
        optional.require_open3d()


@pytest.mark.parametrize("command", [
    ["fit", "sdf", "sphere"],  # ground truth is analytic, but the final evaluation raycasts
    ["fit", "collection", "sdf", "shapes-4"],
    ["fit", "nerf", "blocks"],  # a built-in scene is rendered with open3d on first use
])
def test_commands_that_raycast_stop_before_writing_a_run(command, broken_open3d, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("INR_CACHE", str(tmp_path / "cache"))  # a built-in scene must be rendered, not cached
    out = tmp_path / "run"
    assert main([*command, "--steps", "2", "--quiet", "--out", str(out)]) == 2
    assert "libusb-1.0.so.0" in _one_line_error(capsys)
    assert not out.exists()


def test_image_and_collection_fitting_need_no_open3d(broken_open3d, tmp_path, capsys):
    out = tmp_path / "image"
    assert main(["fit", "image", "checkerboard-zoneplate", "--size", "24", "--steps", "20", "--quiet",
                 "--device", "cpu", "--out", str(out)]) == 0
    assert (out / "model.safetensors").exists()
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    textures = tmp_path / "textures"
    assert main(["fit", "collection", "images", "textures-8", "--steps", "5", "--signals-per-batch", "4",
                 "--latent-dim", "8", "--hyper.hidden", "16", "--siren.hidden", "16", "--quiet",
                 "--out", str(textures)]) == 0
    assert (textures / "model.safetensors").exists()
