"""The CUDA extension (kernels/csrc/), built on first `load()`; see `kernels.lazy`.

Set INR_DISABLE_CUDA_KERNELS=1 to never build (always None).
"""
from __future__ import annotations

from pathlib import Path

from .lazy import LazyExtension

CSRC = Path(__file__).resolve().parent / "csrc"
SOURCES = ("bindings.cpp", "mlp_fwd.cu", "mlp_bwd.cu", "mlp_jvp.cu", "mlp_tc.cu", "hashgrid_fwd.cu", "hashgrid_bwd.cu", "hashgrid_bwd2.cu")
# Accurate math on purpose (no --use_fast_math): sine layers with w0 = 30 amplify approximation error.
CUDA_FLAGS = ("-O3", "-std=c++17")

EXTENSION = LazyExtension("inr_kernels", "CUDA kernels", [CSRC / s for s in SOURCES], "INR_DISABLE_CUDA_KERNELS",
                          needs_cuda=True, extra_include_paths=[str(CSRC)], extra_cuda_cflags=list(CUDA_FLAGS))
load = EXTENSION.load
last_error = EXTENSION.last_error
