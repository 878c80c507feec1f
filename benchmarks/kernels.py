"""CUDA kernels vs their PyTorch twins on the GPU, same inputs, same run.

Fused MLP vs `mlp_forward`: one JSON line per configuration: samples/s of the forward and of
forward+backward (weight and bias gradients, as in training) for both, and their ratio. Total
samples stay near 2^20: B=1 instance of 2^20 points, or B=1024 instances (per-instance weights,
as a hypernetwork gives) of 1024 points.

Hash grid (`hashgrid_cuda` vs the PyTorch `HashGrid` path on the GPU): L=16, F=2, T=2^19, base 16,
2^20 points; 2-D with finest resolution 512 (per_level_scale derived) and 3-D with per_level_scale
2. One line per grid: forward, forward+backward to the table (x needs no gradient, the training
case) and forward+backward to table and x, samples/s for both and their ratio.

Timed with CUDA events after warm-up; the median of --reps runs (--torch-reps for the slower
PyTorch hash grid).

    python benchmarks/kernels.py [--only mlp|hashgrid] [--widths 16 32 64 128] [--acts relu sine] [--reps 30]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr.nn import MLPSpec, mlp_forward  # noqa: E402

TOTAL = 1 << 20


def timed(fn, reps: int, warmup: int = 5) -> float:
    """Median milliseconds of fn() over reps runs, each between two CUDA events."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def make(spec: MLPSpec, B: int, N: int, gen: torch.Generator):
    params = {}
    for i in range(spec.n_layers):
        fan_in, fan_out = spec.widths[i], spec.widths[i + 1]
        lead = (B,) if B > 1 else ()
        scale = (1 / fan_in if i == 0 else math.sqrt(6 / fan_in) / spec.w0_hidden) if spec.activation == "sine" \
            else math.sqrt(2 / fan_in)
        w = (torch.rand(*lead, fan_out, fan_in, generator=gen) * 2 - 1) * scale
        b = (torch.rand(*lead, fan_out, generator=gen) * 2 - 1) / math.sqrt(fan_in)
        params[f"layers.{i}.weight"] = w.cuda().requires_grad_(True)
        params[f"layers.{i}.bias"] = b.cuda().requires_grad_(True)
    x = (torch.rand(B, N, spec.d_in, generator=gen) * 2 - 1).cuda()
    return x, params


def bench(fn, x, params, dy, reps):
    def fwd():
        with torch.no_grad():
            fn(x, params)

    def fwd_bwd():
        for p in params.values():
            p.grad = None
        fn(x, params).backward(dy)

    return timed(fwd, reps), timed(fwd_bwd, reps)


HASHGRID_N = 1 << 20


def hashgrid_configs():
    from inr.encodings import HashGridConfig

    base = dict(n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16)
    return {2: HashGridConfig(**base, finest_resolution=512), 3: HashGridConfig(**base, per_level_scale=2.0)}


def bench_hashgrid(reps: int, torch_reps: int) -> None:
    """One JSON line per grid: the CUDA hash grid vs the PyTorch HashGrid path, both on the GPU."""
    from inr.backends import cuda_hashgrid
    from inr.encodings import HashGrid, hashgrid_encode

    device = torch.cuda.get_device_name()
    gen = torch.Generator().manual_seed(0)
    for d, cfg in hashgrid_configs().items():
        grid = HashGrid(d, cfg, generator=gen).cuda()
        table = grid.params
        x = torch.rand(HASHGRID_N, d, generator=gen).cuda()
        x_req = x.clone().requires_grad_(True)
        dy = torch.randn(HASHGRID_N, cfg.n_output_dims, generator=gen).cuda()
        assert cuda_hashgrid.supports(x, table, cfg)
        with torch.no_grad():
            got = cuda_hashgrid.hashgrid_cuda(x, table, cfg)
            ref = hashgrid_encode(x, table, cfg)  # same float32 algorithm
            rel_err = float((got - ref).norm() / ref.norm())
        del got, ref

        def rates(fn, n_reps):
            def fwd():
                with torch.no_grad():
                    fn(x, table, cfg)

            def fwd_bwd():
                table.grad = None
                fn(x, table, cfg).backward(dy)

            def fwd_bwd_x():
                table.grad = x_req.grad = None
                fn(x_req, table, cfg).backward(dy)

            return [timed(f, n_reps, warmup=2) for f in (fwd, fwd_bwd, fwd_bwd_x)]

        c = rates(cuda_hashgrid.hashgrid_cuda, reps)
        t = rates(hashgrid_encode, torch_reps)
        line = {"bench": "hashgrid", "device": device, "d": d, "n_levels": cfg.n_levels,
                "F": cfg.n_features_per_level, "log2_T": cfg.log2_hashmap_size,
                "per_level_scale": round(cfg.per_level_scale, 6), "interpolation": cfg.interpolation,
                "hashed_levels": sum(grid.layout.hashed), "N": HASHGRID_N}
        for name, cm, tm in zip(("fwd", "fwd_bwd", "fwd_bwd_xgrad"), c, t):
            line[f"cuda_{name}_samples_per_s"] = round(HASHGRID_N / cm * 1e3)
            line[f"torch_{name}_samples_per_s"] = round(HASHGRID_N / tm * 1e3)
            line[f"{name}_speedup"] = round(tm / cm, 2)
            line[f"cuda_{name}_ms"] = round(cm, 4)
            line[f"torch_{name}_ms"] = round(tm, 4)
        line["fwd_rel_l2_err_vs_torch_fp32"] = float(f"{rel_err:.2e}")
        print(json.dumps(line), flush=True)
        del grid, table, x, x_req, dy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["mlp", "hashgrid"], default=None, help="run one benchmark (default: both)")
    ap.add_argument("--torch-reps", type=int, default=5, help="timed runs of the PyTorch hash grid")
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--acts", nargs="+", default=["relu", "sine"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 1024])
    ap.add_argument("--n-hidden", type=int, default=3)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()

    if not torch.cuda.is_available():
        print(json.dumps({"bench": args.only or "kernels", "skipped": "no CUDA"}))
        return
    from inr.backends import cuda

    if cuda._ext() is None:
        import kernels

        print(json.dumps({"bench": args.only or "kernels", "skipped": f"kernels unavailable: {kernels.last_error()}"}))
        return
    if args.only != "mlp":
        bench_hashgrid(args.reps, args.torch_reps)
    if args.only == "hashgrid":
        return
    gen = torch.Generator().manual_seed(0)
    device = torch.cuda.get_device_name()
    for act in args.acts:
        for width in args.widths:
            for B in args.batches:
                N = TOTAL // B
                spec = MLPSpec(3, (width,) * args.n_hidden, 3, activation=act)
                x, params = make(spec, B, N, gen)
                dy = torch.randn(B, N, spec.d_out, device="cuda")
                with torch.no_grad():
                    ref = mlp_forward(x.double(), {k: v.double() for k, v in params.items()}, spec)
                    got = cuda.fused_mlp(x, params, spec)
                    rel_err = float((got.double() - ref).norm() / ref.norm())
                f_fwd, f_fb = bench(lambda x, p: cuda.fused_mlp(x, p, spec), x, params, dy, args.reps)
                t_fwd, t_fb = bench(lambda x, p: mlp_forward(x, p, spec), x, params, dy, args.reps)
                samples = B * N
                flops = 2 * samples * sum(a * b for a, b in zip(spec.widths[:-1], spec.widths[1:]))
                print(json.dumps({
                    "bench": "fused_mlp", "device": device, "act": act, "width": width, "n_hidden": args.n_hidden,
                    "d_in": spec.d_in, "d_out": spec.d_out, "B": B, "N": N,
                    "fused_fwd_samples_per_s": round(samples / f_fwd * 1e3),
                    "torch_fwd_samples_per_s": round(samples / t_fwd * 1e3),
                    "fwd_speedup": round(t_fwd / f_fwd, 2),
                    "fused_fwd_bwd_samples_per_s": round(samples / f_fb * 1e3),
                    "torch_fwd_bwd_samples_per_s": round(samples / t_fb * 1e3),
                    "fwd_bwd_speedup": round(t_fb / f_fb, 2),
                    "fused_fwd_ms": round(f_fwd, 4), "torch_fwd_ms": round(t_fwd, 4),
                    "fused_fwd_bwd_ms": round(f_fb, 4), "torch_fwd_bwd_ms": round(t_fb, 4),
                    "fused_fwd_tflops": round(flops / f_fwd / 1e9, 2),
                    "fwd_rel_l2_err_vs_fp64": float(f"{rel_err:.2e}"),
                    "tf32": torch.backends.cuda.matmul.allow_tf32,
                }), flush=True)
                del x, params, dy, ref, got


if __name__ == "__main__":
    main()
