"""Lazy JIT build of the CUDA extension: first call builds (or finds torch's cached build),
later calls return the same module; any failure warns once and returns None so callers fall
back to the PyTorch ops.

Set INR_DISABLE_CUDA_KERNELS=1 to never build (always None).
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
from pathlib import Path

CSRC = Path(__file__).resolve().parent / "csrc"
NAME = "inr_kernels"
SOURCES = ("bindings.cpp", "mlp_fwd.cu", "mlp_bwd.cu", "hashgrid_fwd.cu", "hashgrid_bwd.cu", "hashgrid_bwd2.cu")
# Accurate math on purpose (no --use_fast_math): sine layers with w0 = 30 amplify approximation error.
CUDA_FLAGS = ("-O3", "-std=c++17")

_lock = threading.Lock()
_tried = False
_module = None
_error: str | None = None


def last_error() -> str | None:
    """Why the last `load()` returned None (None if it succeeded or was never tried)."""
    return _error


def load():
    """The compiled extension module, or None when CUDA or the build is unavailable."""
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
            warnings.warn(f"inr: CUDA kernels unavailable, using the PyTorch ops instead ({_error})",
                          RuntimeWarning, stacklevel=2)
        _tried = True
        return _module


def _build():
    if os.environ.get("INR_DISABLE_CUDA_KERNELS", "") not in ("", "0"):
        raise RuntimeError("disabled by INR_DISABLE_CUDA_KERNELS")
    import torch
    from torch.utils import cpp_extension

    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device")
    if not _cached(cpp_extension):
        print("inr: building CUDA kernels (first use only)...", file=sys.stderr, flush=True)
    return cpp_extension.load(name=NAME, sources=[str(CSRC / s) for s in SOURCES],
                              extra_include_paths=[str(CSRC)], extra_cuda_cflags=list(CUDA_FLAGS),
                              verbose=False)


def _cached(cpp_extension) -> bool:
    """Whether torch's extension directory already holds a build (then no message is printed)."""
    try:
        build_dir = Path(cpp_extension._get_build_directory(NAME, verbose=False))
        return any(build_dir.glob(f"{NAME}*.so"))
    except Exception:  # private torch helper: if it moves, just print the message
        return False
