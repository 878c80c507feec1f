"""Importing inr, the kernels and every backend compiles nothing and needs no GPU."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_imports_compile_nothing():
    """Checked in a fresh process, with torch's extension builder replaced by a tripwire."""
    code = (
        "import sys\n"
        "import torch.utils.cpp_extension as ce\n"
        "def boom(*a, **k): raise SystemExit('the import compiled something')\n"
        "ce.load = ce.load_inline = boom\n"
        "import inr, kernels, inr.backends, inr.backends.cuda, inr.backends.cuda_hashgrid\n"
        "import inr.backends.cpu_hashgrid\n"
        "from inr.encodings import HashGrid, HashGridConfig\n"
        "from kernels import cpu_loader, loader\n"
        "assert not loader.EXTENSION.tried, 'the import loaded the CUDA extension'\n"
        "assert not cpu_loader.EXTENSION.tried and cpu_loader.EXTENSION.module is None, 'the import loaded the CPU extension'\n"
        "assert 'inr_kernels' not in sys.modules and 'inr_cpu_kernels' not in sys.modules\n"
    )
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "building" not in proc.stderr, proc.stderr


def test_a_stale_build_lock_is_removed_and_a_fresh_one_kept(tmp_path, capsys):
    import os
    import time

    from kernels.lazy import clear_stale_lock

    lock = tmp_path / "lock"
    assert not clear_stale_lock(tmp_path)  # no lock: nothing to do
    lock.touch()
    assert not clear_stale_lock(tmp_path) and lock.exists()  # a build may be running: wait for it
    old = time.time() - 3600
    os.utime(lock, (old, old))
    assert clear_stale_lock(tmp_path) and not lock.exists()
    assert "stale build lock" in capsys.readouterr().err
