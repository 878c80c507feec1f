"""Lazy JIT build of the CPU extension (kernels/cpu/): the first `load_cpu()` builds it (or finds
torch's cached build) and later calls return the same module; any failure warns once and
returns None so callers fall back to the PyTorch ops. Importing this module compiles nothing.

Set INR_DISABLE_CPU_KERNELS=1 to never build (always None).
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

CSRC = Path(__file__).resolve().parent / "cpu"
NAME = "inr_cpu_kernels"
SOURCES = ("hashgrid.cpp",)
# No -march=native: torch caches the build, which may move between machines. -fopenmp because
# at::parallel_for's OpenMP backend is an inline `#pragma omp parallel` compiled into the caller
# (without the flag it silently runs on one thread).
CFLAGS = ("-O3", "-std=c++17", "-fopenmp")
LDFLAGS = ("-fopenmp",)

_lock = threading.Lock()
_tried = False
_module = None
_error: str | None = None


def last_error() -> str | None:
    """Why the last `load_cpu()` returned None (None if it succeeded or was never tried)."""
    return _error


def load_cpu():
    """The compiled CPU extension module, or None when the build is disabled or fails."""
    global _tried, _module, _error
    if _tried:
        return _module
    with _lock:
        if _tried:
            return _module
        try:
            _module = _build()
        except Exception as exc:  # a broken toolchain must not crash the caller: it falls back
            _module, _error = None, f"{type(exc).__name__}: {exc}"
            warnings.warn(f"inr: C++ CPU kernels unavailable, using the PyTorch ops instead ({_error})",
                          RuntimeWarning, stacklevel=2)
        _tried = True
        return _module


def _build():
    if os.environ.get("INR_DISABLE_CPU_KERNELS", "") not in ("", "0"):
        raise RuntimeError("disabled by INR_DISABLE_CPU_KERNELS")
    from torch.utils import cpp_extension

    if not _cached(cpp_extension):
        print("inr: building C++ CPU kernels (first use only)...", file=sys.stderr, flush=True)
    return cpp_extension.load(name=NAME, sources=[str(CSRC / s) for s in SOURCES],
                              extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS), verbose=False)


def _cached(cpp_extension) -> bool:
    """Whether torch's extension directory already holds a build (then no message is printed)."""
    try:
        build_dir = Path(cpp_extension._get_build_directory(NAME, verbose=False))
        return any(build_dir.glob(f"{NAME}*.so"))
    except Exception:  # private torch helper: if it moves, just print the message
        return False
