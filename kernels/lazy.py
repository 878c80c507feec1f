"""A torch C++/CUDA extension that builds on first use.

The first `load()` builds it with torch.utils.cpp_extension (ninja; or finds torch's cached
build) and later calls return the same module. Any failure warns once and returns None, so
callers fall back to the PyTorch ops. Creating one compiles nothing.
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path


STALE_LOCK_SECONDS = 900  # a build takes under a minute; a lock this old was left by a killed build


def clear_stale_lock(build_dir: Path, max_age: float = STALE_LOCK_SECONDS) -> bool:
    """Remove torch's build lock in `build_dir` when it is older than `max_age` seconds.

    torch.utils.cpp_extension holds `lock` while a build runs and waits forever for it to go; a
    build killed midway (Ctrl-C, a timeout) leaves it behind, and every later run would hang."""
    import time

    lock = build_dir / "lock"
    try:
        age = time.time() - lock.stat().st_mtime
    except FileNotFoundError:
        return False
    if age < max_age:
        return False
    lock.unlink(missing_ok=True)
    print(f"inr: removed a stale build lock left by an interrupted build ({lock})", file=sys.stderr, flush=True)
    return True


class LazyExtension:
    """Extension `name` from `sources`, built on the first `load()`; `disable_env`=1 never builds."""

    def __init__(self, name: str, label: str, sources: list[Path], disable_env: str,
                 needs_cuda: bool = False, **build_kwargs):
        self.name, self.label, self.sources = name, label, [str(s) for s in sources]
        self.disable_env, self.needs_cuda, self.build_kwargs = disable_env, needs_cuda, build_kwargs
        self.tried = False
        self.module = None
        self.error: str | None = None
        self._lock = threading.Lock()

    def last_error(self) -> str | None:
        """Why the last `load()` returned None (None if it succeeded or was never tried)."""
        return self.error

    def load(self):
        """The compiled module, or None when the build is disabled, impossible or failed."""
        if self.tried:
            return self.module
        with self._lock:
            if self.tried:
                return self.module
            try:
                self.module = self._build()
            except Exception as exc:  # a broken toolchain must not crash the caller: it falls back
                self.module, self.error = None, f"{type(exc).__name__}: {exc}"
                warnings.warn(f"inr: {self.label} unavailable, using the PyTorch ops instead ({self.error})",
                              RuntimeWarning, stacklevel=2)
            self.tried = True
            return self.module

    def _build(self):
        if os.environ.get(self.disable_env, "") not in ("", "0"):
            raise RuntimeError(f"disabled by {self.disable_env}")
        import torch
        from torch.utils import cpp_extension

        if self.needs_cuda and not torch.cuda.is_available():
            raise RuntimeError("no CUDA device")
        try:
            clear_stale_lock(Path(cpp_extension._get_build_directory(self.name, verbose=False)))
        except Exception:  # private torch helper: if it moves, torch waits on the lock as before
            pass
        if not self._cached(cpp_extension):
            print(f"inr: building {self.label} (first use only)...", file=sys.stderr, flush=True)
        return cpp_extension.load(name=self.name, sources=self.sources, verbose=False, **self.build_kwargs)

    def _cached(self, cpp_extension) -> bool:
        """Whether torch's extension directory already holds a build (then no message is printed)."""
        try:
            build_dir = Path(cpp_extension._get_build_directory(self.name, verbose=False))
            return any(build_dir.glob(f"{self.name}*.so"))
        except Exception:  # private torch helper: if it moves, just print the message
            return False
