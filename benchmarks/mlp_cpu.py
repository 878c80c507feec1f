"""The field MLP on a CPU: plain autograd (`mlp_forward`) vs the blocked op, in one run; one JSON line.

    python benchmarks/mlp_cpu.py [--n 262144] [--threads 2]

Forward+backward samples/s for the hash field's MLP (32 -> 64 -> 64 -> 1, ReLU) and SIREN's
(2 -> 128 x 3 -> 1, sine), with gradients for the weights and the input (the hash grid needs them).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr.backends.torch_blocked_mlp import blocked_mlp  # noqa: E402
from inr.nn import MLPSpec, init_mlp_params, mlp_forward  # noqa: E402

SPECS = {"hash_mlp": MLPSpec(32, (64, 64), 1, activation="relu"),
         "siren_mlp": MLPSpec(2, (128, 128, 128), 1, activation="sine")}


def samples_per_s(op, x, params, spec, reps: int) -> float:
    def step():
        y = op(x, params, spec)
        torch.autograd.grad(y.sum(), [x, *params.values()])

    step()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return x.shape[0] / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1 << 18)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = {"benchmark": "mlp_cpu", "threads": args.threads, "n": args.n}
    for name, spec in SPECS.items():
        params = {k: v.requires_grad_() for k, v in init_mlp_params(spec).items()}
        x = torch.rand(args.n, spec.d_in, requires_grad=True)
        plain = samples_per_s(mlp_forward, x, params, spec, args.reps)
        blocked = samples_per_s(blocked_mlp, x, params, spec, args.reps)
        out[f"{name}_plain_fwd_bwd_samples_per_s"] = round(plain)
        out[f"{name}_blocked_fwd_bwd_samples_per_s"] = round(blocked)
        out[f"{name}_blocked_speedup"] = round(blocked / plain, 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
