"""Hash-grid throughput on the CPU: forward and forward+backward, 2-D and 3-D, fast path vs the naive
per-level/per-corner PyTorch reference. Prints one JSON line.

    python benchmarks/hashgrid.py [--threads 2] [--n 262144] [--reps 5]

Grids: L=16, F=2, T=2^19, base 16; 2-D finest resolution 512 (per_level_scale ~1.26, every level
dense), 3-D finest 2048 (per_level_scale ~1.38, 5 dense + 11 hashed levels). Inputs uniform in
[0, 1]^d. "fwd_bwd" is forward + backward to the table (x does not require grad, the usual
training case); "fwd_bwd_xgrad" also back-propagates to x. These run the PyTorch path
(`hashgrid_encode`, whatever the backend); "cpp_*" run the C++ CPU kernel
(inr/backends/cpu_hashgrid.py, built on first use) on the same batch, and cpp_speedup_vs_torch_{d}d
is its fwd_bwd rate over the PyTorch path's. Each figure is the best of `reps`
timed repetitions after a warm-up (the median is reported too), in samples per second. The naive
reference (inr/encodings/hashgrid_reference.py: Python loops over levels and corners, each step
vectorised over the batch, autograd backward) runs on the same batch unless --naive-n is given;
its backward costs a fixed ~4 s in 3-D because each of its 128 lookups back-propagates into a
dense table-sized gradient, so its throughput falls steeply with smaller batches.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402

from inr.backends import cpu_hashgrid  # noqa: E402
from inr.encodings import HashGrid, HashGridConfig, hashgrid_encode  # noqa: E402
from inr.encodings.hashgrid_reference import hashgrid_reference  # noqa: E402

CONFIGS = {
    2: HashGridConfig(n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16,
                      finest_resolution=512),
    3: HashGridConfig(n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16,
                      finest_resolution=2048),
}


def _rates(fn, n_samples: int, reps: int) -> tuple[float, float]:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return n_samples / min(times), n_samples / statistics.median(times)


def measure(d: int, n: int, reps: int, naive_n: int, naive_reps: int) -> dict:
    cfg = CONFIGS[d]
    gen = torch.Generator().manual_seed(0)
    grid = HashGrid(d, cfg, generator=gen)
    x = torch.rand(n, d, generator=gen)
    grad = torch.randn(n, grid.n_output_dims, generator=gen)

    def runner(op, xs, gs):
        """fwd, fwd+bwd (table grads) and fwd+bwd with x grads of `op` on xs, back-propagating gs."""
        def fwd():
            with torch.no_grad():
                op(xs, grid.params, cfg)

        def fwd_bwd():
            grid.params.grad = None
            op(xs, grid.params, cfg).backward(gs)

        def fwd_bwd_xgrad():
            grid.params.grad = None
            xr = xs.detach().requires_grad_(True)
            op(xr, grid.params, cfg).backward(gs)
        return fwd, fwd_bwd, fwd_bwd_xgrad

    out = {}

    def record(name, fn, count, r):
        best, median = _rates(fn, count, r)
        out[f"hash{d}d_{name}_samples_per_s"] = round(best)
        out[f"hash{d}d_{name}_median_samples_per_s"] = round(median)

    fwd, fwd_bwd, fwd_bwd_xgrad = runner(hashgrid_encode, x, grad)  # the PyTorch path, whatever the backend
    naive_fwd, naive_fwd_bwd, _ = runner(hashgrid_reference, x[:naive_n], grad[:naive_n])
    for name, fn, count, r in (("fwd", fwd, n, reps), ("fwd_bwd", fwd_bwd, n, reps),
                               ("fwd_bwd_xgrad", fwd_bwd_xgrad, n, max(1, reps // 2)),
                               ("naive_fwd", naive_fwd, naive_n, naive_reps),
                               ("naive_fwd_bwd", naive_fwd_bwd, naive_n, naive_reps)):
        record(name, fn, count, r)
    if cpu_hashgrid.supports(x, grid.params, cfg):  # C++ CPU kernel (kernels/cpu), built on first use
        cpp_fwd, cpp_fwd_bwd, _ = runner(cpu_hashgrid.hashgrid_cpu, x, grad)
        record("cpp_fwd", cpp_fwd, n, reps)
        record("cpp_fwd_bwd", cpp_fwd_bwd, n, reps)
        out[f"cpp_speedup_vs_torch_{d}d"] = round(out[f"hash{d}d_cpp_fwd_bwd_samples_per_s"]
                                                  / out[f"hash{d}d_fwd_bwd_samples_per_s"], 2)
    out[f"hash{d}d_fwd_speedup_vs_naive"] = round(out[f"hash{d}d_fwd_samples_per_s"] / out[f"hash{d}d_naive_fwd_samples_per_s"], 1)
    out[f"hash{d}d_fwd_bwd_speedup_vs_naive"] = round(
        out[f"hash{d}d_fwd_bwd_samples_per_s"] / out[f"hash{d}d_naive_fwd_bwd_samples_per_s"], 1)
    lay = grid.layout
    out[f"hash{d}d_grid"] = (f"L={cfg.n_levels} F={cfg.n_features_per_level} T=2^{cfg.log2_hashmap_size} "
                             f"base={cfg.base_resolution} finest={cfg.finest_resolution} "
                             f"per_level_scale={cfg.per_level_scale:.4f} dense_levels={lay.hashed.count(False)} "
                             f"hashed_levels={lay.hashed.count(True)} params={grid.params.numel()}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--n", type=int, default=1 << 18, help="samples per call")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--naive-n", type=int, default=0, help="samples per call for the naive reference (default: --n)")
    args = ap.parse_args()
    args.naive_n = args.naive_n or args.n
    torch.set_num_threads(args.threads)
    result = {"benchmark": "hashgrid", "threads": torch.get_num_threads(), "batch_samples": args.n,
              "naive_batch_samples": args.naive_n, "reps": args.reps, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count()}
    for d in (2, 3):
        result.update(measure(d, args.n, args.reps, args.naive_n, max(2, args.reps // 2)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
