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
