"""The C++ CPU extension (kernels/cpu/), built on first `load_cpu()`; see `kernels.lazy`.

Set INR_DISABLE_CPU_KERNELS=1 to never build (always None).
"""
from __future__ import annotations

from pathlib import Path

from .lazy import LazyExtension

CSRC = Path(__file__).resolve().parent / "cpu"
SOURCES = ("hashgrid.cpp",)
# No -march=native: torch caches the build, which may move between machines. -fopenmp because
# at::parallel_for's OpenMP backend is an inline `#pragma omp parallel` compiled into the caller
# (without the flag it silently runs on one thread).
CFLAGS = ("-O3", "-std=c++17", "-fopenmp")
LDFLAGS = ("-fopenmp",)

EXTENSION = LazyExtension("inr_cpu_kernels", "C++ CPU kernels", [CSRC / s for s in SOURCES], "INR_DISABLE_CPU_KERNELS",
                          extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS))
load_cpu = EXTENSION.load
last_error = EXTENSION.last_error
