"""The C++ CPU kernels against the pure-PyTorch path, same run, 1 and 2 threads; one JSON line.

    python benchmarks/cpu_kernels.py [--threads 1 2] [--n 262144] [--siren-n 65536] [--reps 5]

Samples per second (best of `reps` timed repetitions after a warm-up; 3 x reps for the C++ hash grid
and the image step, fewer for the slow PyTorch hash grid) for
- the hash grid (L=16, F=2, T=2^19, base 16; 2-D finest 512: 16 dense levels; 3-D finest 2048:
  5 dense + 11 hashed), forward and forward + backward to the table, inputs uniform in [0, 1]^d:
  C++ kernel (`inr.backends.cpu_hashgrid`) vs `hashgrid_encode` (the PyTorch path);
- the hash field's MLP (32 -> 64 -> 64 -> 3, ReLU) forward + backward (weights and input):
  the backend's op (`mlp_op`, backend auto: the C++ MLP, kernels/cpu/mlp.cpp) vs the plain
  autograd op `mlp_forward` (`mlp_speedup_vs_torch`) and vs the blocked PyTorch op `blocked_mlp`
  that backend "torch" runs (`mlp_speedup_vs_blocked`);
- a SIREN MLP (2 -> 128 -> 128 -> 128 -> 3, sine, w0 30; `inr fit image --field siren`'s shape)
  forward + backward at `--siren-n` points (2^16): `mlp_op` (the C++ MLP with its AVX2 sin/cos)
  vs `mlp_forward` and `blocked_mlp` (`siren_mlp_speedup_vs_*`);
- a hypernetwork-shaped MLP: per-instance SIREN weights [B, out, in] (2 -> 64 -> 64 -> 64 -> 3,
  w0 30, as `inr fit collection images` generates them), B x N points, gradients to the weights
  only, for B in 16, 64 and N in 256, 1024: `mlp_op` vs `mlp_forward` (what `mlp_op` ran for these
  before the kernel took per-instance weights) and `blocked_mlp` (`hyper_mlp_*`);
- a whole image-fitting step of the default hash field (`inr fit image`'s: finest level 512,
  a batch of 2^15 pixels drawn from a 512x512 image by its PixelSampler, MSE, Adam betas
  (0.9, 0.99), eps 1e-15): sampling + forward + backward + optimizer step, the two backends'
  steps alternating; backend "auto" (C++ hash grid, C++ MLP, fused C++ Adam) vs backend "torch" (PyTorch
  hash grid, blocked PyTorch MLP, torch.optim.Adam fused).
Ratios are `*_speedup_vs_torch`. Top-level figures are the 2-thread ones (the last --threads
value); every thread count's figures are under "threads".
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr.backends import Backend, cpu_hashgrid, cpu_mlp, mlp_op
from inr.backends.torch_blocked_mlp import blocked_mlp
from inr.encodings import HashGrid, HashGridConfig, hashgrid_encode
from inr.fields.hash import HashField, HashFieldConfig
from inr.nn import MLPSpec, init_mlp_params, mlp_forward
from inr.signals.image import PixelSampler
from inr.train.optim import make_adam

GRIDS = {
    2: HashGridConfig(n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16,
                      finest_resolution=512),
    3: HashGridConfig(n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16,
                      finest_resolution=2048),
}
MLP = MLPSpec(32, (64, 64), 3, activation="relu")
SIREN = MLPSpec(2, (128, 128, 128), 3, activation="sine")
HYPER = MLPSpec(2, (64, 64, 64), 3, activation="sine")
HYPER_SHAPES = ((16, 256), (16, 1024), (64, 256), (64, 1024))
IMAGE_BATCH = 1 << 15
AUTO = Backend("auto")


def rate(fn, n: int, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return n / best


def hash_grid(d: int, n: int, reps: int) -> dict:
    cfg = GRIDS[d]
    gen = torch.Generator().manual_seed(d)
    grid = HashGrid(d, cfg, generator=gen)
    x = torch.rand(n, d, generator=gen)
    gy = torch.randn(n, grid.n_output_dims, generator=gen)
    out = {}
    for name, op in (("cpp", cpu_hashgrid.hashgrid_cpu), ("torch", hashgrid_encode)):
        def fwd(op=op):
            with torch.no_grad():
                op(x, grid.params, cfg)

        def fwd_bwd(op=op):
            grid.params.grad = None
            op(x, grid.params, cfg).backward(gy)
        # the kernel's calls are short (tens of ms): more repetitions, so the best of them is not
        # one taken while another job holds the shared cores
        r = max(2, reps // 2) if name == "torch" else 3 * reps
        out[f"{name}_fwd"] = rate(fwd, n, r)
        out[f"{name}_fwd_bwd"] = rate(fwd_bwd, n, r)
    return {f"hash{d}d_fwd_samples_per_s": round(out["cpp_fwd"]),
            f"hash{d}d_fwd_bwd_samples_per_s": round(out["cpp_fwd_bwd"]),
            f"hash{d}d_torch_fwd_samples_per_s": round(out["torch_fwd"]),
            f"hash{d}d_torch_fwd_bwd_samples_per_s": round(out["torch_fwd_bwd"]),
            f"hash{d}d_fwd_speedup_vs_torch": round(out["cpp_fwd"] / out["torch_fwd"], 2),
            f"hash{d}d_fwd_bwd_speedup_vs_torch": round(out["cpp_fwd_bwd"] / out["torch_fwd_bwd"], 2)}


def mlp(n: int, reps: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    params = {k: v.requires_grad_() for k, v in init_mlp_params(MLP, generator=gen).items()}
    x = torch.rand(n, MLP.d_in, generator=gen, requires_grad=True)
    out = {}
    assert cpu_mlp.use_for(x, params, MLP), "the C++ MLP is not dispatched for the benchmark's MLP"
    for name, op in (("backend", mlp_op), ("torch", mlp_forward), ("blocked", blocked_mlp)):
        def step(op=op):
            y = op(x, params, MLP)
            torch.autograd.grad(y.sum(), [x, *params.values()])
        with AUTO.active():
            out[name] = rate(step, n, reps)
    return {"mlp_fwd_bwd_samples_per_s": round(out["backend"]), "mlp_torch_fwd_bwd_samples_per_s": round(out["torch"]),
            "mlp_blocked_fwd_bwd_samples_per_s": round(out["blocked"]),
            "mlp_speedup_vs_torch": round(out["backend"] / out["torch"], 2),
            "mlp_speedup_vs_blocked": round(out["backend"] / out["blocked"], 2)}


def siren_mlp(n: int, reps: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    params = {k: v.requires_grad_() for k, v in init_mlp_params(SIREN, generator=gen).items()}
    x = (torch.rand(n, SIREN.d_in, generator=gen) * 2 - 1).requires_grad_()
    assert cpu_mlp.use_for(x, params, SIREN), "the C++ MLP is not dispatched for the SIREN benchmark"
    out = {}
    for name, op in (("backend", mlp_op), ("torch", mlp_forward), ("blocked", blocked_mlp)):
        def step(op=op):
            y = op(x, params, SIREN)
            torch.autograd.grad(y.sum(), [x, *params.values()])
        with AUTO.active():
            out[name] = rate(step, n, reps)
    return {"siren_mlp_fwd_bwd_samples_per_s": round(out["backend"]),
            "siren_mlp_torch_fwd_bwd_samples_per_s": round(out["torch"]),
            "siren_mlp_blocked_fwd_bwd_samples_per_s": round(out["blocked"]),
            "siren_mlp_speedup_vs_torch": round(out["backend"] / out["torch"], 2),
            "siren_mlp_speedup_vs_blocked": round(out["backend"] / out["blocked"], 2)}


def hyper_mlp(reps: int) -> dict:
    """Per-instance weights (a hypernetwork's output), coordinates shared by value, as collections fit."""
    res = {}
    for b, n in HYPER_SHAPES:
        gen = torch.Generator().manual_seed(b * n)
        base = init_mlp_params(HYPER, generator=gen)
        params = {k: (v + 0.01 * torch.randn(b, *v.shape, generator=gen)).requires_grad_() for k, v in base.items()}
        x = (torch.rand(n, HYPER.d_in, generator=gen) * 2 - 1).expand(b, -1, -1)
        assert cpu_mlp.use_for(x, params, HYPER), "the C++ MLP is not dispatched for per-instance weights"
        out = {}
        for name, op in (("backend", mlp_op), ("torch", mlp_forward), ("blocked", blocked_mlp)):
            def step(op=op):
                y = op(x, params, HYPER)
                torch.autograd.grad(y.sum(), list(params.values()))
            with AUTO.active():
                out[name] = rate(step, b * n, reps)
        res[f"B{b}_N{n}"] = {"samples_per_s": round(out["backend"]), "torch_samples_per_s": round(out["torch"]),
                             "blocked_samples_per_s": round(out["blocked"]),
                             "speedup_vs_torch": round(out["backend"] / out["torch"], 2),
                             "speedup_vs_blocked": round(out["backend"] / out["blocked"], 2)}
    return {"hyper_mlp_speedup_vs_torch_min": min(r["speedup_vs_torch"] for r in res.values()),
            "hyper_mlp_speedup_vs_torch_max": max(r["speedup_vs_torch"] for r in res.values()),
            "hyper_mlp": res}


def image_step(reps: int) -> dict:
    """Steps of the two backends alternate (best of 3 * reps each), so both see the same machine
    load: on shared machines a sequential comparison drifted by 1.5x between runs."""
    steps, optimizers = {}, {}
    backends = {name: Backend(name) for name in ("auto", "torch")}
    for backend in backends:
        gen = torch.Generator().manual_seed(0)
        cfg = HashFieldConfig(output_scale=0.5, output_offset=0.5)
        cfg.grid = {**cfg.grid, "finest_resolution": 512}
        model = HashField(2, 3, cfg, generator=gen)
        opt = make_adam([{"params": list(model.parameters()), "lr": 1e-2}], betas=(0.9, 0.99), eps=1e-15,
                        backend=backends[backend], model=model)
        sampler = PixelSampler(torch.rand(512, 512, 3, generator=gen), IMAGE_BATCH, gen)

        def step(model=model, opt=opt, sampler=sampler):
            x, y = sampler()
            opt.zero_grad(set_to_none=True)
            loss = torch.mean((model(x) - y) ** 2)
            loss.backward()
            opt.step()
        steps[backend] = step
        optimizers[backend] = type(opt).__name__
    best = {b: float("inf") for b in steps}
    for rep in range(3 * reps + 1):
        for backend, step in steps.items():
            with backends[backend].active():  # the model dispatches at call time
                t0 = time.perf_counter()
                step()
                if rep:  # the first round warms up
                    best[backend] = min(best[backend], time.perf_counter() - t0)
    out = {b: IMAGE_BATCH / t for b, t in best.items()}
    return {"image_step_samples_per_s": round(out["auto"]), "image_step_torch_samples_per_s": round(out["torch"]),
            "image_step_speedup_vs_torch": round(out["auto"] / out["torch"], 2),
            "image_step_optimizers": [optimizers["auto"], optimizers["torch"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--n", type=int, default=1 << 18, help="samples per hash-grid / MLP call")
    ap.add_argument("--siren-n", type=int, default=1 << 16, help="points per SIREN MLP call")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    from kernels.cpu_loader import load_cpu, load_cpu_mlp, load_cpu_optim

    built = load_cpu() is not None and load_cpu_optim() is not None and load_cpu_mlp() is not None
    if not built:
        raise SystemExit("cpu_kernels: the C++ CPU extensions did not build (see the warning above)")
    ext = load_cpu()
    per_thread = {}
    for t in args.threads:
        torch.set_num_threads(t)
        res = {}
        for d in (2, 3):
            res.update(hash_grid(d, args.n, args.reps))
        res.update(mlp(args.n, args.reps))
        res.update(siren_mlp(args.siren_n, args.reps))
        res.update(hyper_mlp(args.reps))
        res.update(image_step(args.reps))
        per_thread[str(t)] = res
    top = per_thread[str(args.threads[-1])]
    print(json.dumps({"benchmark": "cpu_kernels", "top_level_threads": args.threads[-1], "n": args.n,
                      "siren_n": args.siren_n, "reps": args.reps,
                      "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
                      "cpu_count": os.cpu_count(), "avx2_path": bool(ext.simd_available()),
                      "mlp_avx2_path": bool(load_cpu_mlp().simd_available()),
                      **{k: v for k, v in top.items()}, "threads": per_thread}))


if __name__ == "__main__":
    main()
