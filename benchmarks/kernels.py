"""Fused CUDA MLP vs the PyTorch op (`mlp_forward`), same inputs, same run.

One JSON line per configuration: samples/s of the forward and of forward+backward (weight and
bias gradients, as in training) for both, and their ratio. Total samples stay near 2^20: B=1
instance of 2^20 points, or B=1024 instances (per-instance weights, as a hypernetwork gives)
of 1024 points. Timed with CUDA events after warm-up; the median of --reps runs.

    python benchmarks/kernels.py [--widths 16 32 64 128] [--acts relu sine] [--reps 30]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--acts", nargs="+", default=["relu", "sine"])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 1024])
    ap.add_argument("--n-hidden", type=int, default=3)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()

    if not torch.cuda.is_available():
        print(json.dumps({"bench": "fused_mlp", "skipped": "no CUDA"}))
        return
    from inr.backends import cuda

    if cuda._ext() is None:
        import kernels

        print(json.dumps({"bench": "fused_mlp", "skipped": f"kernels unavailable: {kernels.last_error()}"}))
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
