"""The C++ CPU extensions (kernels/cpu/), each built on its first load; see `kernels.lazy`.

- `load_cpu()`: the hash-grid encoding (hashgrid.cpp);
- `load_cpu_optim()`: the fused and lazy-row Adam steps (adam.cpp, used by inr.train.optim);
- `load_cpu_mlp()`: the fused field MLP, forward and backward (mlp.cpp + mlp_impl.h, used by
  inr.backends.cpu_mlp);
- `load_cpu_render()`: occupancy-grid ray marching (march.cpp, used by inr.render.occupancy).

They are separate modules, so one failing to build does not take the other with it.
Set INR_DISABLE_CPU_KERNELS=1 to never build any (always None).
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

# -fno-math-errno: std::sqrt otherwise keeps a scalar errno branch that blocks vectorising the step.
OPTIM = LazyExtension("inr_cpu_optim", "C++ CPU optimizer kernels", [CSRC / "adam.cpp"], "INR_DISABLE_CPU_KERNELS",
                      extra_cflags=[*CFLAGS, "-fno-math-errno"], extra_ldflags=list(LDFLAGS))
load_cpu_optim = OPTIM.load

# mlp_impl.h is included by mlp.cpp (twice: portable and AVX2); ninja tracks it as a dependency.
MLP = LazyExtension("inr_cpu_mlp", "C++ CPU MLP kernel", [CSRC / "mlp.cpp"], "INR_DISABLE_CPU_KERNELS",
                    extra_cflags=[*CFLAGS, "-fno-math-errno"], extra_ldflags=list(LDFLAGS))
load_cpu_mlp = MLP.load

RENDER = LazyExtension("inr_cpu_render", "C++ CPU ray marching", [CSRC / "march.cpp"], "INR_DISABLE_CPU_KERNELS",
                       extra_cflags=list(CFLAGS), extra_ldflags=list(LDFLAGS))
load_cpu_render = RENDER.load
