"""The fused CUDA kernels against PyTorch eager, torch.compile (and tiny-cuda-nn where it imports)
on one GPU in one run: one JSON line per configuration on stdout (progress and warnings on stderr).

    python benchmarks/kernels.py                 # on a GPU: everything (about 7-8 min on an H100)
    python benchmarks/kernels.py --quick         # the target configurations only (about 2-3 min)
    python benchmarks/kernels.py --smoke         # CPU check of the script itself (tiny, 1 rep, < 1 min)
    python benchmarks/kernels.py --only mlp --precisions fp32 --widths 64 --batches 2^16 --instances 1

Selection: --only {ceilings,mlp,eikonal,hashgrid,image} (one or more; default all), --precisions,
--widths, --acts, --batches, --instances, --reps, --compile-batches, --loop-batches,
--eikonal-widths/--eikonal-batches, --image-sizes/--image-batches; sizes take 65536, 2^16 or 1<<16.
Output order: setup, ceilings, image, hashgrid, eikonal, mlp, summary. --budget-s (default 480)
stops starting new eikonal/MLP configurations after that many seconds (one "skipped" line lists
them; the MLP grid runs last, in priority order: fp32 first, batches 2^16 and 2^18 first, so a cut
loses the least important lines). --compile-budget-s (default 180, per section) stops compiling new
shapes (those lines say "compile_unavailable"). Both clocks start after the kernel build (the first
run on a fresh machine JIT-builds kernels/csrc, reported as kernel_build_s and not budgeted).
Defaults: precisions fp32 fp16 bf16, widths 64 128, acts relu sine, batches 2^14..2^21, B 1 64 1024,
reps 20 (--measure-s 0.25 s per figure), torch.compile at batches 2^16 and 2^20 in fp32, the
Python loop at 2^18, eikonal widths 64 128 at 2^18, images 512 and 2048 at batches 2^16 2^18 2^20.

Timing: `timed` = median of CUDA-event-timed runs after warm-up (wall clock on a CPU), each run
synchronised, so host launch overhead counts (as in training). Runs per figure: --reps, fewer
(at least 3) where --reps would take longer than --measure-s seconds. samples/s = points / time.
torch.compile: dynamic=False, mode --compile-mode, compiled once per shape (torch._dynamo.reset()
between configurations); its compile time is excluded from the figures and reported as compile_s.
fp32 everywhere means true fp32 matmuls (torch.set_float32_matmul_precision("highest"): no TF32).

Lines ("bench" key); absent figures are null, with "<engine>_unavailable" (why it did not run) or
"<engine>_error" (it raised: type and message; the run goes on). A line with "error" failed as a
whole (OOM included: memory is freed between configurations).

- "setup": device, torch version, kernel build time and errors, tiny-cuda-nn availability, the
  resolved arguments.
- "ceilings": the GPU's measured ceilings: matmul_tflops_{fp32,tf32,fp16,bf16} = 2 n^3 / time of
  torch.mm on n x n (n = 8192; fp32 with TF32 off), bandwidth_gbps = 2 * bytes / time of a 1 GiB
  device-to-device copy_ (read + write).
- "mlp" (one line per precision x batch x act x width x B x mode): MLPSpec(3, (width,) * 3, 3),
  activation relu or sine, B instances of N = batch / B points each (B = 1: shared weights, x
  [batch, 3]; B > 1: per-instance weights [B, out, in], x [B, N, 3], as a hypernetwork gives).
  mode "infer": forward under no_grad; mode "train": forward + backward to every weight and bias
  (p.grad = None, y.backward(dy)), the training step without the optimizer.
  Engines, each <engine>_samples_per_s and <engine>_ms:
    fused   inr.backends.cuda.fused_mlp(x, params, spec, precision) (fp16/bf16: tensor-core operands,
            fp32 accumulation; tensors stay float32)
    eager   inr.nn.mlp_forward; for fp16/bf16 under torch.autocast(dtype) (eager_precision says)
    compile torch.compile(mlp_forward) the same way (at --compile-batches, --compile-precisions)
    tcnn    tiny-cuda-nn FullyFusedMLP (fp16) on the same net without biases (ReLU, B = 1 only)
    loop    B > 1 only, fp32, at --loop-batches: a Python loop over instances of per-instance
            mlp_forward calls (own leaf weights per instance; train: one torch.autograd.backward
            over the B outputs)
  speedup_vs_<engine> = fused samples/s / engine samples/s (speedup_vs_eager: the issue's key).
  B > 1 lines: shared_weight_fused_samples_per_s = the fused B = 1 figure at the same batch and
  precision, slowdown_vs_shared_weight = that / this line's fused figure (target <= 1.5).
  flops_per_sample = 2 * sum_layers(in * out) (infer), 3x that (train: forward, input-gradient and
  weight-gradient products). bytes_per_sample, the least the kernels must move (4-byte floats;
  S = n_hidden * width, one saved value per hidden unit (h for ReLU, z for Sine, from which sin and
  cos are recomputed); P = parameter count of one instance):
    infer: 4 * (d_in + d_out) + 4 * B * P / batch                     (read x, write y, read weights)
    train: 4 * (2 d_in + 2 d_out + 2 S) + 12 * B * P / batch          (x read twice (forward, layer-0
           weight gradient), write y, read dy, write + read S; read weights twice, write gradients)
  frac_matmul_ceiling = fused samples/s * flops_per_sample / matmul ceiling of the line's precision
  (fp32 -> matmul_tflops_fp32, TF32 off); frac_bandwidth_ceiling = fused samples/s *
  bytes_per_sample / bandwidth_gbps. fused_tflops, fused_gbps: the same numerators.
  Correctness (computed on the line's own inputs, before timing), fused against float64 eager:
  max_abs_err = max |y - y64|, rel_err = max_abs_err / max |y64|, rel_l2_err = ||y - y64|| / ||y64||,
  grad_rel_err = max over parameters of ||g - g64|| / ||g64|| (dL/dparams for L = sum(y * dy));
  eager_rel_l2_err, compile_rel_l2_err, tcnn_rel_l2_err (its own bias-free float64 reference): the
  other engines' forward on the same scale.
- "eikonal" (one line per width x batch x mode): SIREN SDF MLPSpec(3, (width,) * 3, 1, sine), x in
  [-1, 1]^3, loss = mean(y^2) + mean((|dy/dx| - 1)^2). mode "train": loss and its backward to the
  parameters; mode "infer": value and dy/dx without parameter gradients. Engines: fused
  (inr.backends.cuda fused_value_and_grad: one forward-mode pass, differentiable once), eager
  (mlp_forward + torch.autograd.grad(create_graph=True), then backward: the double backward),
  eager_fwdmode (inr.nn.mlp.mlp_value_and_grad, the PyTorch forward-mode twin), compile
  (torch.compile of the forward-mode twin and loss), compile_double_backward (torch.compile of
  the double-backward loss: tried at the first configuration only; expected not to work).
  Errors: max_abs_err / rel_l2_err of y, jac_max_abs_err / jac_rel_l2_err of dy/dx and
  grad_rel_err of dloss/dparams, fused against float64 eager double backward.
- "hashgrid" (one line per grid): hashgrid_cuda vs the PyTorch HashGrid path (and tcnn), L=16, F=2,
  T=2^19, base 16, 2^20 points; 2-D (finest 512) and 3-D (per_level_scale 2); modes fwd, fwd_bwd
  (to the table), fwd_bwd_xgrad (to table and x): <engine>_<mode>_samples_per_s and _ms,
  <mode>_speedup = cuda / torch, fwd_rel_l2_err_vs_torch_fp32.
- "image" (one line per image size x batch x backend x precision): the full `inr fit image` step
  of the hash field (instant-ngp's setting: L=16, F=2, T=2^19, base 16, finest level = image size,
  ReLU MLP 64 x 2), built as `inr fit image` builds it (ImageFitConfig + build_image_task +
  make_optimizer): draw a batch of pixel coordinates and targets (image already on the GPU),
  forward, MSE, backward, Adam step. batch = requested, effective_batch = min(batch, pixels); with
  full_batch true the sampler returns the whole image in raster order every step (no sampling: not
  the random-batch figure the target means). Backends: "torch", "cuda" (an inr.backends.Backend value, with
  its mlp_precision, active around the step), "tcnn" where it imports. samples_per_s = effective_batch / step time;
  speedup_vs_torch (= speedup_vs_eager); max_abs_err / rel_l2_err of the field's output against the
  torch backend at the same initial parameters; fused_mlp_used / fused_hashgrid_used: whether the
  CUDA backend's kernels accept these inputs (else it silently runs PyTorch).
- "summary": elapsed_s and "targets": each target of the issue with its measured value, threshold
  and pass (null where not measured): training step width 64 B=1 batch 2^16 >= 5x eager and >= 3x
  torch.compile (ReLU and Sine); B=1024 x 256 points >= 10x the Python loop and within 1.5x of the
  shared-weight kernel at the same total batch; full image step >= 3e8 samples/s at batch 2^18
  (random batches: the 2048 x 2048 image by default).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import statistics
import sys
import time
import traceback
import zlib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inr.nn import MLPSpec, mlp_forward  # noqa: E402
from inr.nn.mlp import mlp_value_and_grad  # noqa: E402

MODES = ("infer", "train")
PRECISIONS = ("fp32", "fp16", "bf16")
HALF = {"fp16": torch.float16, "bf16": torch.bfloat16}
P2 = {2 ** k: f"2^{k}" for k in range(31)}

DEVICE = torch.device("cpu")
ARGS: argparse.Namespace | None = None
RESULTS: list[dict] = []
STATE = {"t0": 0.0, "deadline": None, "compile_spent": {}}  # compile seconds per section


# ------------------------------------------------------------------------------------------------
# output, errors, memory


def _clean(v):
    """JSON-safe: non-finite floats become the strings "nan" / "inf" / "-inf" (a broken kernel
    stays visible and every line parses as strict JSON)."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def emit(line: dict) -> None:
    RESULTS.append(line)
    print(json.dumps(_clean(line), allow_nan=False), flush=True)


def log(msg: str) -> None:
    print(f"[kernels.py {time.perf_counter() - STATE['t0']:7.1f}s] {msg}", file=sys.stderr, flush=True)


def err(e: BaseException) -> str:
    """One line naming the exception (OOM flagged); the traceback goes to stderr."""
    traceback.print_exception(type(e), e, e.__traceback__, limit=6, file=sys.stderr)
    msg = " ".join(f"{type(e).__name__}: {e}".split())[:400]
    return ("OOM: " + msg) if isinstance(e, torch.cuda.OutOfMemoryError) else msg


def free() -> None:
    gc.collect()
    if DEVICE.type == "cuda":
        torch.cuda.empty_cache()


def sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def sig(v, n: int = 3):
    """A float (or 0-d tensor) to n significant digits; None stays None."""
    if v is None:
        return None
    v = float(v)
    return float(f"{v:.{n}g}") if math.isfinite(v) else v


def rate(samples: int, ms: float | None):
    return round(samples / ms * 1e3) if ms else None


def ratio(a, b, n: int = 3):
    """a / b to n significant digits (None unless both are positive numbers)."""
    return sig(a / b, n) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and b > 0 else None


class Unavailable(Exception):
    """An engine that does not apply here (reported as <engine>_unavailable, not as an error)."""


def out_of_time() -> bool:
    return STATE["deadline"] is not None and time.perf_counter() > STATE["deadline"]


# ------------------------------------------------------------------------------------------------
# timing


def _once(fn) -> float:
    if DEVICE.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def timed(fn, reps: int, warmup: int = 5, budget_s: float | None = None, min_reps: int = 3) -> float:
    """Median milliseconds of fn() over reps runs, each between two CUDA events (wall clock on a
    CPU). With budget_s: fewer runs (at least min_reps) where reps of them would exceed it."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    n = max(1, reps)
    while len(times) < n:
        times.append(_once(fn))
        if budget_s is not None and len(times) == 1:
            fit = int(budget_s * 1e3 / max(times[0], 1e-3))
            n = max(min(min_reps, reps), min(reps, fit))
    return statistics.median(times)


def measure(fn, reps: int | None = None, warmup: int | None = None) -> float:
    return timed(fn, ARGS.reps if reps is None else reps, ARGS.warmup if warmup is None else warmup,
                 budget_s=ARGS.measure_s)


@contextlib.contextmanager
def matmul_precision(p: str):
    old = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(p)
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(old)


def autocast(prec: str):
    """Eager's counterpart of a fused precision: fp32 as is, fp16/bf16 under torch.autocast."""
    if prec == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=DEVICE.type, dtype=HALF[prec])


def backward_like(y: torch.Tensor, dy: torch.Tensor) -> None:
    y.backward(dy if y.dtype == dy.dtype else dy.to(y.dtype))


def zero_grads(params) -> None:
    for p in params.values():
        p.grad = None


# ------------------------------------------------------------------------------------------------
# torch.compile


def compile_check(section: str, prec: str | None = None, batch: int | None = None) -> None:
    """Raise Unavailable unless torch.compile is on and the section's compile budget is not spent
    (and, for the MLP, this precision and batch are selected for it)."""
    if not ARGS.compile_on:
        raise Unavailable(ARGS.compile_off_reason)
    if prec is not None and prec not in ARGS.compile_precisions:
        raise Unavailable(f"{prec} not in --compile-precisions {ARGS.compile_precisions}")
    if batch is not None and batch not in ARGS.compile_batches:
        raise Unavailable("batch not in --compile-batches (compiling every shape costs too long)")
    if STATE["compile_spent"].get(section, 0.0) >= ARGS.compile_budget_s:
        raise Unavailable(f"--compile-budget-s {ARGS.compile_budget_s} spent in this section")


def compiled(fn):
    kw = {"dynamic": False}
    if ARGS.compile_mode != "default":
        kw["mode"] = ARGS.compile_mode
    return torch.compile(fn, **kw)


def warm_compiled(section: str, *fns) -> float:
    """Call each fn once (this compiles it); seconds taken, charged to the section's compile budget."""
    t0 = time.perf_counter()
    try:
        for f in fns:
            f()
        sync()
    finally:
        dt = time.perf_counter() - t0
        STATE["compile_spent"][section] = STATE["compile_spent"].get(section, 0.0) + dt
    return dt


def reset_compiled() -> None:
    """Drop compiled graphs (and their memory) between configurations."""
    try:
        import torch._dynamo as dynamo

        dynamo.reset()
    except Exception:
        pass


# ------------------------------------------------------------------------------------------------
# the APIs under test (looked up at run time, so a missing one is a reported error, not a crash)


def fused_api():
    """(supports, fused_mlp) of inr.backends.cuda, taking a precision."""
    from inr.backends import cuda

    def supports(x, params, spec, prec):
        return cuda.supports(x, params, spec, precision=prec)

    def fused(x, params, spec, prec):
        return cuda.fused_mlp(x, params, spec, precision=prec)

    return supports, fused


def value_and_grad_api():
    """(supports_value_and_grad, fused_value_and_grad) of inr.backends.cuda_jvp."""
    from inr.backends import cuda_jvp

    return cuda_jvp.supports_value_and_grad, cuda_jvp.fused_value_and_grad


def fused_unavailable_reason(what: str = "inr.backends.cuda.supports") -> str:
    if DEVICE.type != "cuda":
        return f"no CUDA device ({DEVICE.type}): the fused kernels need one"
    try:
        import kernels

        if kernels.load() is None:
            return f"kernels unavailable: {kernels.last_error()}"
    except Exception as e:
        return f"kernels unavailable: {err(e)}"
    return f"{what}() is False for this configuration"


def tcnn_module():
    """(inr.backends.tcnn, "") when tiny-cuda-nn imports, else (None, why not)."""
    if DEVICE.type != "cuda":
        return None, "no CUDA device"
    try:
        from inr.backends import tcnn
    except Exception as e:
        return None, f"inr.backends.tcnn does not import: {err(e)}"
    try:
        if not tcnn.available():
            why = tcnn._import()[1]
            return None, f"tinycudann does not import ({why})" if why else "tinycudann does not import"
    except Exception as e:
        return None, err(e)
    return tcnn, ""


def tcnn_why_not(tcnn, kind: str, *a) -> str | None:
    """Why tcnn cannot run these inputs (None if it can): tcnn.mlp_unsupported / hashgrid_unsupported."""
    return getattr(tcnn, f"{kind}_unsupported")(*a)


# ------------------------------------------------------------------------------------------------
# ceilings


def bench_ceilings() -> dict:
    """The GPU's matmul (torch.mm) and bandwidth (device copy) ceilings, as one line."""
    n = ARGS.ceiling_n
    line = {"bench": "ceilings", "device": device_name(), "matmul_n": n}
    out: dict = {}
    for name, dtype, mp in (("fp32", torch.float32, "highest"), ("tf32", torch.float32, "high"),
                            ("fp16", torch.float16, "highest"), ("bf16", torch.bfloat16, "highest")):
        line[f"matmul_tflops_{name}"] = None
        a = b = c = None
        try:
            a = torch.randn(n, n, device=DEVICE, dtype=dtype)
            b = torch.randn(n, n, device=DEVICE, dtype=dtype)
            c = torch.empty(n, n, device=DEVICE, dtype=dtype)
            with matmul_precision(mp):
                ms = timed(lambda a=a, b=b, c=c: torch.mm(a, b, out=c), max(ARGS.reps, 1), ARGS.warmup,
                           budget_s=max(ARGS.measure_s, 0.3))
            out[name] = line[f"matmul_tflops_{name}"] = sig(2 * n ** 3 / ms / 1e9, 4)
            line[f"matmul_ms_{name}"] = round(ms, 4)
        except Exception as e:
            line[f"matmul_{name}_error"] = err(e)
        finally:
            a = b = c = None  # free the operands before the next precision
            free()
    nbytes = ARGS.copy_mib << 20
    line["copy_bytes"] = nbytes
    line["bandwidth_gbps"] = None
    src = dst = None
    try:
        src = torch.ones(nbytes // 4, device=DEVICE)
        dst = torch.empty_like(src)
        ms = timed(lambda: dst.copy_(src), max(ARGS.reps, 1), ARGS.warmup, budget_s=max(ARGS.measure_s, 0.3))
        out["bandwidth_gbps"] = line["bandwidth_gbps"] = sig(2 * nbytes / ms / 1e6, 4)
        line["copy_ms"] = round(ms, 4)
    except Exception as e:
        line["bandwidth_error"] = err(e)
    finally:
        src = dst = None
        free()
    emit(line)
    return out


# ------------------------------------------------------------------------------------------------
# MLP


MLP_ENGINES = ("fused", "eager", "compile", "tcnn", "loop")
MLP_KEYS = ["bench", "device", "mode", "precision", "eager_precision", "act", "width", "n_hidden", "d_in",
            "d_out", "B", "N", "batch",
            *[f"{e}_{k}" for e in MLP_ENGINES for k in ("samples_per_s", "ms")],
            *[f"speedup_vs_{e}" for e in MLP_ENGINES[1:]],
            "shared_weight_fused_samples_per_s", "slowdown_vs_shared_weight",
            "flops_per_sample", "bytes_per_sample", "fused_tflops", "fused_gbps",
            "frac_matmul_ceiling", "frac_bandwidth_ceiling",
            "max_abs_err", "rel_err", "rel_l2_err", "grad_rel_err",
            "eager_rel_l2_err", "compile_rel_l2_err", "tcnn_rel_l2_err", "compile_s", "float32_matmul_precision"]


def make(spec: MLPSpec, B: int, N: int, gen: torch.Generator):
    """Leaf float32 parameters (SIREN-scaled for sine, He-uniform otherwise; non-zero biases),
    shared for B = 1 ([out, in]) or per instance ([B, out, in]); x in [-1, 1]^d ([N, d] or
    [B, N, d]) and an upstream gradient dy shaped like y."""
    params = {}
    lead = (B,) if B > 1 else ()
    for i in range(spec.n_layers):
        fan_in, fan_out = spec.widths[i], spec.widths[i + 1]
        if spec.activation == "sine":
            scale = 1 / fan_in if i == 0 else math.sqrt(6 / fan_in) / spec.w0_hidden
        else:
            scale = math.sqrt(6 / fan_in)
        w = (torch.rand(*lead, fan_out, fan_in, generator=gen, device=DEVICE) * 2 - 1) * scale
        b = (torch.rand(*lead, fan_out, generator=gen, device=DEVICE) * 2 - 1) / math.sqrt(fan_in)
        params[f"layers.{i}.weight"] = w.requires_grad_(True)
        if spec.bias:
            params[f"layers.{i}.bias"] = b.requires_grad_(True)
    x = torch.rand(*lead, N, spec.d_in, generator=gen, device=DEVICE) * 2 - 1
    dy = torch.randn(*lead, N, spec.d_out, generator=gen, device=DEVICE)
    return x, params, dy


def out_errors(got: torch.Tensor, ref: torch.Tensor) -> dict:
    d = (got.detach().double() - ref).abs()
    ref_max, ref_norm = float(ref.abs().max()), float(ref.norm())
    mx = float(d.max())
    return {"max_abs_err": sig(mx), "rel_err": sig(mx / ref_max) if ref_max else None,
            "rel_l2_err": sig(float(d.norm()) / ref_norm) if ref_norm else None}


def grad_rel_err(params, ref: dict) -> float:
    worst = 0.0
    for k, g64 in ref.items():
        g = params[k].grad
        if g is None:
            return math.inf
        den = float(g64.norm())
        e = float((g.double() - g64).norm()) / den if den else float((g.double() - g64).norm())
        worst = max(worst, e) if math.isfinite(e) else math.nan
    return sig(worst)


def mlp_reference(x, params, spec, dy):
    """float64 eager forward and dL/dparams for L = sum(y * dy)."""
    p64 = {k: v.detach().double().requires_grad_(True) for k, v in params.items()}
    y64 = mlp_forward(x.double(), p64, spec)
    grads = torch.autograd.grad(y64, list(p64.values()), dy.double())
    return y64.detach(), {k: g for k, g in zip(p64, grads)}


def mlp_cost(spec: MLPSpec, B: int, batch: int, mode: str) -> tuple[int, float]:
    """(flops_per_sample, bytes_per_sample): see the module docstring."""
    w = spec.widths
    fwd = 2 * sum(a * b for a, b in zip(w[:-1], w[1:]))
    P, S = spec.n_params(), sum(spec.hidden)
    if mode == "infer":
        return fwd, 4 * (spec.d_in + spec.d_out) + 4 * B * P / batch
    return 3 * fwd, 4 * (2 * spec.d_in + 2 * spec.d_out + 2 * S) + 12 * B * P / batch


def run_engine(lines: dict, name: str, setup, samples: int, reps=None, warmup=None) -> None:
    """setup() -> {mode: fn} (or raises Unavailable); time each mode into lines[mode]."""
    try:
        fns = setup()
    except Unavailable as e:
        for line in lines.values():
            line[f"{name}_unavailable"] = str(e)
        return
    except Exception as e:
        msg = err(e)
        for line in lines.values():
            line[f"{name}_error"] = msg
        free()
        return
    for mode, fn in fns.items():
        if mode not in lines:
            continue
        try:
            ms = measure(fn, reps, warmup)
            lines[mode][f"{name}_ms"] = round(ms, 4)
            lines[mode][f"{name}_samples_per_s"] = rate(samples, ms)
        except Exception as e:
            lines[mode][f"{name}_error"] = err(e)
            free()


class MLPContext:
    def __init__(self, ceilings: dict):
        self.ceilings = ceilings
        self.shared: dict = {}       # (prec, act, width, batch, mode) -> fused samples/s at B = 1
        self.tcnn_cache: dict = {}   # (width, batch) -> {mode: (ms, samples/s)}, "err"
        self.tcnn, self.tcnn_why = tcnn_module()
        try:
            self.fused = fused_api()
            self.fused_why = None
        except Exception as e:
            self.fused, self.fused_why = None, f"inr.backends.cuda does not import: {err(e)}"


def mlp_configs() -> list[tuple]:
    """(precision, batch, act, width, B) in priority order: the targets' batches (2^16, 2^18) first,
    B = 1 before B > 1 at each batch (the shared-weight figure the B > 1 lines compare with)."""
    batches = sorted(ARGS.batches, key=lambda b: (b not in (1 << 16, 1 << 18), b))
    return [(p, b, a, w, B) for p in ARGS.precisions for b in batches for a in ARGS.acts
            for w in ARGS.widths for B in sorted(ARGS.instances)]


def bench_mlp(ceilings: dict) -> None:
    ctx = MLPContext(ceilings)
    skipped = []
    for cfg in mlp_configs():
        if out_of_time():
            skipped.append(cfg)
            continue
        for line in run_mlp_config(ctx, *cfg):
            emit(line)
    if skipped:
        emit({"bench": "mlp", "skipped": f"--budget-s {ARGS.budget_s} reached", "n_configs_skipped": len(skipped),
              "skipped_configs": [dict(zip(("precision", "batch", "act", "width", "B"), c)) for c in skipped]})


def run_configuration(lines: dict, engines, *args) -> None:
    """engines(*args) fills `lines` (one per mode); if its set-up or reference fails (OOM included),
    every line of the configuration carries the error. Compiled graphs (engines returns whether it
    compiled) and memory are freed afterwards."""
    used_compile = False
    try:
        used_compile = engines(*args)
    except Exception as e:
        msg = err(e)
        for line in lines.values():
            line["error"] = msg
    finally:
        if used_compile:
            reset_compiled()
        free()


def run_mlp_config(ctx: MLPContext, prec: str, batch: int, act: str, width: int, B: int) -> list[dict]:
    spec = MLPSpec(ARGS.d_in, (width,) * ARGS.n_hidden, ARGS.d_out, activation=act)
    N = batch // B
    base = {k: None for k in MLP_KEYS}
    base.update(bench="mlp", device=device_name(), precision=prec,
                eager_precision="fp32" if prec == "fp32" else f"{prec} (torch.autocast)", act=act, width=width,
                n_hidden=ARGS.n_hidden, d_in=spec.d_in, d_out=spec.d_out, B=B, N=N, batch=batch,
                float32_matmul_precision=torch.get_float32_matmul_precision())
    lines = {m: dict(base, mode=m) for m in MODES}
    log(f"mlp {prec} batch={P2.get(batch, batch)} {act} w{width} B={B}")
    if batch % B or N < 1:
        for line in lines.values():
            line["error"] = f"batch {batch} is not a positive multiple of B = {B}"
        return list(lines.values())
    run_configuration(lines, _mlp_engines, ctx, lines, spec, prec, batch, B, N)
    for mode, line in lines.items():
        f = line["fused_samples_per_s"]
        for e in MLP_ENGINES[1:]:
            line[f"speedup_vs_{e}"] = ratio(f, line[f"{e}_samples_per_s"])
        key = (prec, act, width, batch, mode)
        if B == 1:
            if f:
                ctx.shared[key] = f
        else:
            shared = ctx.shared.get(key)
            line["shared_weight_fused_samples_per_s"] = shared
            line["slowdown_vs_shared_weight"] = ratio(shared, f, 3)
        flops, nbytes = mlp_cost(spec, B, batch, mode)
        line["flops_per_sample"], line["bytes_per_sample"] = flops, round(nbytes, 2)
        if f:
            line["fused_tflops"] = sig(f * flops / 1e12, 4)
            line["fused_gbps"] = sig(f * nbytes / 1e9, 4)
            mm, bw = ctx.ceilings.get(prec), ctx.ceilings.get("bandwidth_gbps")
            line["frac_matmul_ceiling"] = sig(f * flops / (mm * 1e12)) if mm else None
            line["frac_bandwidth_ceiling"] = sig(f * nbytes / (bw * 1e9)) if bw else None
    return list(lines.values())


def _mlp_engines(ctx: MLPContext, lines: dict, spec: MLPSpec, prec: str, batch: int, B: int, N: int) -> bool:
    """Fill lines[mode] with every engine's figures and the checks. Returns whether it compiled."""
    seed = zlib.crc32(repr((spec.activation, spec.hidden, B, N)).encode())
    x, params, dy = make(spec, B, N, torch.Generator(device=DEVICE).manual_seed(seed))
    y64, g64 = mlp_reference(x, params, spec, dy)
    samples = B * N

    def both(**kv):
        for line in lines.values():
            line.update(kv)

    # fused
    def fused_setup():
        if ctx.fused is None:
            raise Unavailable(ctx.fused_why)
        supports, fused = ctx.fused
        if not supports(x, params, spec, prec):
            raise Unavailable(fused_unavailable_reason())
        with torch.no_grad():
            y = fused(x, params, spec, prec)
        both(**out_errors(y, y64))
        del y
        zero_grads(params)
        fused(x, params, spec, prec).backward(dy)
        both(grad_rel_err=grad_rel_err(params, g64))
        zero_grads(params)

        def infer():
            with torch.no_grad():
                fused(x, params, spec, prec)

        def train():
            zero_grads(params)
            fused(x, params, spec, prec).backward(dy)

        return {"infer": infer, "train": train}

    run_engine(lines, "fused", fused_setup, samples)
    g64 = None  # the setup above was its only user

    # eager (fp16/bf16: under autocast)
    def eager_fwd():
        with autocast(prec):
            return mlp_forward(x, params, spec)

    def eager_setup():
        with torch.no_grad():
            both(eager_rel_l2_err=out_errors(eager_fwd(), y64)["rel_l2_err"])

        def infer():
            with torch.no_grad():
                eager_fwd()

        def train():
            zero_grads(params)
            backward_like(eager_fwd(), dy)

        return {"infer": infer, "train": train}

    run_engine(lines, "eager", eager_setup, samples)

    # torch.compile of the same eager function
    used_compile = False

    def compile_setup():
        nonlocal used_compile
        compile_check("mlp", prec, batch)
        used_compile = True

        def fwd(x, params):
            with autocast(prec):
                return mlp_forward(x, params, spec)

        cf = compiled(fwd)

        def infer():
            with torch.no_grad():
                cf(x, params)

        def train():
            zero_grads(params)
            backward_like(cf(x, params), dy)

        both(compile_s=round(warm_compiled("mlp", infer, train), 2))
        with torch.no_grad():
            both(compile_rel_l2_err=out_errors(cf(x, params), y64)["rel_l2_err"])
        return {"infer": infer, "train": train}

    run_engine(lines, "compile", compile_setup, samples)

    # tiny-cuda-nn (bias-free ReLU, shared weights): measured once per (width, batch)
    if spec.activation == "relu" and B == 1:
        key = (spec.hidden, batch)
        if key in ctx.tcnn_cache:
            for mode, line in lines.items():
                line.update(ctx.tcnn_cache[key][mode])
        else:
            run_engine(lines, "tcnn", lambda: tcnn_setup(ctx, lines, x, params, spec, dy), samples)
            ctx.tcnn_cache[key] = {m: {k: v for k, v in line.items() if k.startswith("tcnn_")}
                                   for m, line in lines.items()}

    # the Python loop over instances
    if B > 1:
        def loop_setup():
            if prec != "fp32":
                raise Unavailable("measured in fp32 lines only")
            if batch not in ARGS.loop_batches:
                raise Unavailable("batch not in --loop-batches")
            per = [{k: v[b].detach().clone().requires_grad_(True) for k, v in params.items()} for b in range(B)]
            xs, dys = list(x.unbind(0)), list(dy.unbind(0))

            def infer():
                with torch.no_grad():
                    for b in range(B):
                        mlp_forward(xs[b], per[b], spec)

            def train():
                for p in per:
                    zero_grads(p)
                ys = [mlp_forward(xs[b], per[b], spec) for b in range(B)]
                torch.autograd.backward(ys, dys)

            return {"infer": infer, "train": train}

        run_engine(lines, "loop", loop_setup, samples, reps=min(ARGS.reps, 3), warmup=min(ARGS.warmup, 1))
    return used_compile


def tcnn_setup(ctx: MLPContext, lines: dict, x, params, spec: MLPSpec, dy):
    if ctx.tcnn is None:
        raise Unavailable(ctx.tcnn_why)
    tcnn = ctx.tcnn
    nb_spec = dataclasses.replace(spec, bias=False)
    nb = {k: v.detach().clone().requires_grad_(True) for k, v in params.items() if k.endswith("weight")}
    why = tcnn_why_not(tcnn, "mlp", x, nb, nb_spec)
    if why is not None:
        raise Unavailable(why)
    with torch.no_grad():
        ref = mlp_forward(x.double(), {k: v.double() for k, v in nb.items()}, nb_spec)
        got = tcnn.tcnn_mlp(x, nb, nb_spec)
        e = out_errors(got.float(), ref)["rel_l2_err"]
    del ref, got
    for line in lines.values():
        line["tcnn_rel_l2_err"] = e

    def infer():
        with torch.no_grad():
            tcnn.tcnn_mlp(x, nb, nb_spec)

    def train():
        zero_grads(nb)
        backward_like(tcnn.tcnn_mlp(x, nb, nb_spec), dy)

    return {"infer": infer, "train": train}


# ------------------------------------------------------------------------------------------------
# eikonal (SIREN SDF step)


EIK_ENGINES = ("fused", "eager", "eager_fwdmode", "compile", "compile_double_backward")
EIK_KEYS = ["bench", "device", "mode", "act", "width", "n_hidden", "d_in", "d_out", "batch",
            *[f"{e}_{k}" for e in EIK_ENGINES for k in ("samples_per_s", "ms")],
            *[f"speedup_vs_{e}" for e in EIK_ENGINES[1:]],
            "max_abs_err", "rel_l2_err", "jac_max_abs_err", "jac_rel_l2_err", "grad_rel_err",
            "eager_fwdmode_jac_rel_l2_err", "compile_s"]


def eikonal_loss(y: torch.Tensor, jac: torch.Tensor) -> torch.Tensor:
    """mean(y^2) + mean((|dy/dx| - 1)^2) for y [N, 1], jac [N, 1, d_in]."""
    return (y ** 2).mean() + ((jac.norm(dim=-1) - 1) ** 2).mean()


def eager_double_backward_loss(x, params, spec):
    xr = x.detach().requires_grad_(True)
    y = mlp_forward(xr, params, spec)
    (g,) = torch.autograd.grad(y, xr, torch.ones_like(y), create_graph=True)
    return eikonal_loss(y, g.unsqueeze(-2))


def bench_eikonal() -> None:
    skipped, db_state = [], {"tried": False, "why": None}
    for width in ARGS.eikonal_widths:
        for batch in ARGS.eikonal_batches:
            if out_of_time():
                skipped.append({"width": width, "batch": batch})
                continue
            for line in run_eikonal_config(width, batch, db_state):
                emit(line)
    if skipped:
        emit({"bench": "eikonal", "skipped": f"--budget-s {ARGS.budget_s} reached",
              "n_configs_skipped": len(skipped), "skipped_configs": skipped})


def run_eikonal_config(width: int, batch: int, db_state: dict) -> list[dict]:
    spec = MLPSpec(3, (width,) * 3, 1, activation="sine")
    base = {k: None for k in EIK_KEYS}
    base.update(bench="eikonal", device=device_name(), act="sine", width=width, n_hidden=3, d_in=3, d_out=1,
                batch=batch)
    lines = {m: dict(base, mode=m) for m in MODES}
    log(f"eikonal batch={P2.get(batch, batch)} w{width}")
    run_configuration(lines, _eikonal_engines, lines, spec, batch, db_state)
    for line in lines.values():
        for e in EIK_ENGINES[1:]:
            line[f"speedup_vs_{e}"] = ratio(line["fused_samples_per_s"], line[f"{e}_samples_per_s"])
    return list(lines.values())


def _eikonal_engines(lines: dict, spec: MLPSpec, batch: int, db_state: dict) -> bool:
    x, params, _ = make(spec, 1, batch, torch.Generator(device=DEVICE).manual_seed(batch + spec.hidden[0]))
    plist = list(params.values())
    # float64 reference: value, gradient and dloss/dparams through the double backward
    p64 = {k: v.detach().double().requires_grad_(True) for k, v in params.items()}
    x64 = x.double().requires_grad_(True)
    y64 = mlp_forward(x64, p64, spec)
    (j64,) = torch.autograd.grad(y64, x64, torch.ones_like(y64), create_graph=True)
    g64 = dict(zip(p64, torch.autograd.grad(eikonal_loss(y64, j64.unsqueeze(-2)), list(p64.values()))))
    y64, j64 = y64.detach(), j64.detach().unsqueeze(-2)
    del p64, x64

    def both(**kv):
        for line in lines.values():
            line.update(kv)

    def value_and_grad_modes(value_and_grad):
        """The timed closures of a value-and-Jacobian op: inference, and a step of the eikonal loss."""
        def infer():
            with torch.no_grad():
                value_and_grad(x, params, spec)

        def train():
            zero_grads(params)
            eikonal_loss(*value_and_grad(x, params, spec)).backward()

        return {"infer": infer, "train": train}

    def fused_setup():
        try:
            sup, fused = value_and_grad_api()
        except Exception as e:
            raise Unavailable(f"fused value_and_grad does not import: {err(e)}")
        if not sup(x, params, spec):
            raise Unavailable(fused_unavailable_reason("supports_value_and_grad"))
        with torch.no_grad():
            y, jac = fused(x, params, spec)
        e, ej = out_errors(y, y64), out_errors(jac, j64)
        both(max_abs_err=e["max_abs_err"], rel_l2_err=e["rel_l2_err"], jac_max_abs_err=ej["max_abs_err"],
             jac_rel_l2_err=ej["rel_l2_err"])
        modes = value_and_grad_modes(fused)
        modes["train"]()
        both(grad_rel_err=grad_rel_err(params, g64))
        return modes

    run_engine(lines, "fused", fused_setup, batch)
    g64 = None  # the setup above was its only user

    def eager_setup():
        detached = {k: v.detach() for k, v in params.items()}

        def infer():  # value and normal, no parameter gradients
            xr = x.detach().requires_grad_(True)
            y = mlp_forward(xr, detached, spec)
            torch.autograd.grad(y, xr, torch.ones_like(y))

        def train():
            zero_grads(params)
            torch.autograd.backward(eager_double_backward_loss(x, params, spec), inputs=plist)

        return {"infer": infer, "train": train}

    run_engine(lines, "eager", eager_setup, batch)

    def fwdmode_setup():
        with torch.no_grad():
            both(eager_fwdmode_jac_rel_l2_err=out_errors(mlp_value_and_grad(x, params, spec)[1], j64)["rel_l2_err"])
        return value_and_grad_modes(mlp_value_and_grad)

    run_engine(lines, "eager_fwdmode", fwdmode_setup, batch)

    used_compile = False

    def compile_setup():
        nonlocal used_compile
        compile_check("eikonal")
        used_compile = True
        cvg = compiled(lambda x, p: mlp_value_and_grad(x, p, spec))
        closs = compiled(lambda x, p: eikonal_loss(*mlp_value_and_grad(x, p, spec)))

        def infer():
            with torch.no_grad():
                cvg(x, params)

        def train():
            zero_grads(params)
            closs(x, params).backward()

        both(compile_s=round(warm_compiled("eikonal", infer, train), 2))
        return {"infer": infer, "train": train}

    run_engine(lines, "compile", compile_setup, batch)

    def db_setup():
        nonlocal used_compile
        if db_state["why"] is not None:
            raise Unavailable(db_state["why"])
        compile_check("eikonal")
        used_compile = True
        cdb = compiled(lambda x, p: eager_double_backward_loss(x, p, spec))

        def train():
            zero_grads(params)
            torch.autograd.backward(cdb(x, params), inputs=plist)

        db_state["tried"] = True
        try:
            warm_compiled("eikonal", train)
        except Exception as e:  # expected (aot_autograd has no double backward): not this script's error
            db_state["why"] = f"torch.compile failed at the first configuration: {err(e)}"
            raise Unavailable(db_state["why"]) from None
        return {"train": train}

    run_engine({"train": lines["train"]}, "compile_double_backward", db_setup, batch)
    return used_compile


# ------------------------------------------------------------------------------------------------
# hash grid


HG_ENGINES = ("cuda", "torch", "tcnn")
HG_MODES = ("fwd", "fwd_bwd", "fwd_bwd_xgrad")


def hashgrid_configs():
    from inr.encodings import HashGridConfig

    base = dict(n_levels=16, n_features_per_level=2, log2_hashmap_size=19, base_resolution=16)
    return {2: HashGridConfig(**base, finest_resolution=512), 3: HashGridConfig(**base, per_level_scale=2.0)}


def bench_hashgrid() -> None:
    """One JSON line per grid: the CUDA hash grid vs the PyTorch HashGrid path (and tcnn), same device."""
    from inr.encodings import HashGrid, hashgrid_encode

    n = ARGS.hashgrid_n
    tcnn, tcnn_why = tcnn_module()
    for d, cfg in hashgrid_configs().items():
        log(f"hashgrid {d}-D")
        line = {"bench": "hashgrid", "device": device_name(), "d": d, "n_levels": cfg.n_levels,
                "F": cfg.n_features_per_level, "log2_T": cfg.log2_hashmap_size,
                "per_level_scale": round(cfg.per_level_scale, 6), "interpolation": cfg.interpolation,
                "hashed_levels": None, "N": n, "fwd_rel_l2_err_vs_torch_fp32": None, "max_abs_err": None,
                "tcnn_fwd_rel_l2_err": None}
        for e in HG_ENGINES:
            for m in HG_MODES:
                line[f"{e}_{m}_samples_per_s"] = line[f"{e}_{m}_ms"] = None
        for m in HG_MODES:
            line[f"{m}_speedup"] = line[f"{m}_speedup_vs_tcnn"] = None
        try:
            _hashgrid_one(line, d, cfg, n, HashGrid, hashgrid_encode, tcnn, tcnn_why)
        except Exception as e:
            line["error"] = err(e)
        finally:
            free()
        for m in HG_MODES:
            c = line[f"cuda_{m}_samples_per_s"]
            line[f"{m}_speedup"] = ratio(c, line[f"torch_{m}_samples_per_s"])
            line[f"{m}_speedup_vs_tcnn"] = ratio(c, line[f"tcnn_{m}_samples_per_s"])
        emit(line)


def _hashgrid_one(line, d, cfg, n, HashGrid, hashgrid_encode, tcnn, tcnn_why) -> None:
    gen = torch.Generator().manual_seed(d)
    grid = HashGrid(d, cfg, generator=gen).to(DEVICE)
    line["hashed_levels"] = sum(grid.layout.hashed)
    table = grid.params
    x = torch.rand(n, d, generator=gen).to(DEVICE)
    x_req = x.clone().requires_grad_(True)
    dy = torch.randn(n, cfg.n_output_dims, generator=gen).to(DEVICE)
    with torch.no_grad():
        ref = hashgrid_encode(x, table, cfg)  # the PyTorch path, float32

    def rates(fn):
        def fwd():
            with torch.no_grad():
                fn(x, table, cfg)

        def fwd_bwd():
            table.grad = None
            fn(x, table, cfg).backward(dy)

        def fwd_bwd_x():
            table.grad = x_req.grad = None
            fn(x_req, table, cfg).backward(dy)

        return {"fwd": fwd, "fwd_bwd": fwd_bwd, "fwd_bwd_xgrad": fwd_bwd_x}

    def time_engine(name, fn, reps, warmup):
        for m, f in rates(fn).items():
            try:
                ms = timed(f, reps, warmup, budget_s=max(ARGS.measure_s, 0.5))
                line[f"{name}_{m}_ms"] = round(ms, 4)
                line[f"{name}_{m}_samples_per_s"] = rate(n, ms)
            except Exception as e:
                line[f"{name}_{m}_error"] = err(e)
                free()

    # CUDA kernels
    try:
        from inr.backends import cuda_hashgrid

        if not cuda_hashgrid.supports(x, table, cfg):
            raise Unavailable(fused_unavailable_reason("inr.backends.cuda_hashgrid.supports"))
        with torch.no_grad():
            got = cuda_hashgrid.hashgrid_cuda(x, table, cfg)
            diff = (got - ref)
            line["fwd_rel_l2_err_vs_torch_fp32"] = sig(diff.norm() / ref.norm())
            line["max_abs_err"] = sig(diff.abs().max())
        del got, diff
        time_engine("cuda", cuda_hashgrid.hashgrid_cuda, ARGS.reps, min(ARGS.warmup, 2))
    except Unavailable as e:
        line["cuda_unavailable"] = str(e)
    except Exception as e:
        line["cuda_error"] = err(e)
    # the PyTorch path
    try:
        time_engine("torch", hashgrid_encode, ARGS.torch_reps, min(ARGS.warmup, 2))
    except Exception as e:
        line["torch_error"] = err(e)
    # tiny-cuda-nn
    try:
        if tcnn is None:
            raise Unavailable(tcnn_why)
        why = tcnn_why_not(tcnn, "hashgrid", x, table, cfg)
        if why is not None:
            raise Unavailable(why)
        with torch.no_grad():
            line["tcnn_fwd_rel_l2_err"] = sig((tcnn.tcnn_hashgrid(x, table, cfg) - ref).norm() / ref.norm())
        time_engine("tcnn", tcnn.tcnn_hashgrid, ARGS.reps, min(ARGS.warmup, 2))
    except Unavailable as e:
        line["tcnn_unavailable"] = str(e)
    except Exception as e:
        line["tcnn_error"] = err(e)


# ------------------------------------------------------------------------------------------------
# full image-fitting step


IMAGE_KEYS = ["bench", "device", "image_size", "batch", "effective_batch", "full_batch", "backend", "precision",
              "samples_per_s", "step_ms",
              "torch_samples_per_s", "speedup_vs_torch", "speedup_vs_eager", "max_abs_err", "rel_l2_err",
              "fused_mlp_used", "fused_hashgrid_used", "n_levels", "F", "log2_T", "finest_resolution", "hidden",
              "n_params"]


def image_variants() -> list[tuple[str, str]]:
    return [("torch", "fp32")] + [("cuda", p) for p in ARGS.precisions] + [("tcnn", "fp32")]


def bench_image() -> None:
    tcnn, tcnn_why = tcnn_module()
    for size in ARGS.image_sizes:
        image = torch.rand(size, size, 3, generator=torch.Generator().manual_seed(size))
        check_idx = torch.randperm(size * size, generator=torch.Generator().manual_seed(1))[:1 << 16]
        for batch in ARGS.image_batches:
            torch_ref = {}
            for backend, prec in image_variants():
                line = {k: None for k in IMAGE_KEYS}
                line.update(bench="image", device=device_name(), image_size=size, batch=batch, backend=backend,
                            precision=prec)
                log(f"image {size}x{size} batch={P2.get(batch, batch)} {backend} {prec}")
                try:
                    _image_one(line, image, check_idx, batch, backend, prec, torch_ref, tcnn, tcnn_why)
                except Unavailable as e:
                    line["unavailable"] = str(e)
                except Exception as e:
                    line["error"] = err(e)
                finally:
                    free()
                if backend == "torch":
                    torch_ref["samples_per_s"] = line["samples_per_s"]
                else:
                    line["torch_samples_per_s"] = torch_ref.get("samples_per_s")
                    line["speedup_vs_torch"] = line["speedup_vs_eager"] = ratio(
                        line["samples_per_s"], line["torch_samples_per_s"])
                emit(line)


def _image_one(line, image, check_idx, batch, backend, prec, torch_ref, tcnn, tcnn_why) -> None:
    from inr.backends import Backend

    if backend != "torch" and DEVICE.type != "cuda":
        raise Unavailable(f"no CUDA device: backend {backend!r} would run the CPU kernels here")
    if backend == "tcnn" and tcnn is None:
        raise Unavailable(tcnn_why)
    with Backend(backend, prec).active():
        _image_variant(line, image, check_idx, batch, backend, prec, torch_ref)


def _image_variant(line, image, check_idx, batch, backend, prec, torch_ref) -> None:
    """One image-fit variant, measured while its backend is active (see `_image_one`)."""
    from inr.train.image import ImageFitConfig, build_image_task
    from inr.train.loop import make_optimizer

    if backend == "tcnn":
        line["note"] = "tcnn runs the hash grid; the field's MLP has biases, so it runs on the cuda kernels"
    cfg = ImageFitConfig(field="hash")
    cfg.train.device, cfg.train.backend, cfg.train.batch_size = str(DEVICE), backend, batch
    cfg.train.mlp_precision = prec
    train = cfg.resolved_train()
    task = build_image_task(image, cfg, train, DEVICE)
    opt = make_optimizer(task, train)
    model = task.model
    gcfg = model.grid.config
    line.update(n_levels=gcfg.n_levels, F=gcfg.n_features_per_level, log2_T=gcfg.log2_hashmap_size,
                finest_resolution=gcfg.finest_resolution, hidden=list(model.spec.hidden),
                n_params=sum(p.numel() for p in model.parameters()), effective_batch=task.batch_size,
                full_batch=bool(task.sampler.full_batch))
    xc = task.sampler.coords[check_idx.to(task.sampler.coords.device)]
    with torch.no_grad():  # at the initial parameters, the same for every backend (same seed)
        out = model(xc).double()
    if backend == "torch":
        torch_ref["out"] = out
    elif torch_ref.get("out") is not None:
        e = out_errors(out, torch_ref["out"])
        line["max_abs_err"], line["rel_l2_err"] = e["max_abs_err"], e["rel_l2_err"]
    del out
    if DEVICE.type == "cuda" and backend != "torch":
        from inr.backends import cuda_hashgrid

        xg = (xc + 1) * 0.5
        line["fused_hashgrid_used"] = bool(cuda_hashgrid.supports(xg, model.grid.params, gcfg))
        feats = torch.zeros(xc.shape[0], model.spec.d_in, device=DEVICE)
        line["fused_mlp_used"] = bool(fused_api()[0](feats, model.net.params(), model.spec, prec))

    def step():
        opt.zero_grad(set_to_none=True)
        loss, _ = task.loss(0)
        loss.backward()
        opt.step()

    ms = measure(step)
    line["step_ms"] = round(ms, 4)
    line["samples_per_s"] = rate(task.batch_size, ms)


# ------------------------------------------------------------------------------------------------
# summary


def find(bench: str, **match) -> dict | None:
    for line in RESULTS:
        if line.get("bench") == bench and "skipped" not in line and all(line.get(k) == v for k, v in match.items()):
            return line
    return None


def targets() -> list[dict]:
    out = []

    def add(name, line, key, op, threshold, **info):
        value = line.get(key) if line else None
        ok = None if not isinstance(value, (int, float)) else (value >= threshold if op == ">=" else value <= threshold)
        out.append({"target": name, **info, "key": key, "value": value, "op": op, "threshold": threshold, "pass": ok})

    for prec in ARGS.precisions:
        for act in ("relu", "sine"):
            line = find("mlp", mode="train", precision=prec, act=act, width=64, B=1, batch=1 << 16)
            if line is None and (act not in ARGS.acts or 64 not in ARGS.widths or 1 << 16 not in ARGS.batches):
                continue
            add("mlp train w64 B=1 batch 2^16 vs eager", line, "speedup_vs_eager", ">=", 5, precision=prec, act=act)
            add("mlp train w64 B=1 batch 2^16 vs torch.compile", line, "speedup_vs_compile", ">=", 3,
                precision=prec, act=act)
    for act in ARGS.acts:
        for width in ARGS.widths:
            for mode in MODES:
                line = find("mlp", mode=mode, precision="fp32", act=act, width=width, B=1024, N=256)
                if line is None:
                    continue
                info = dict(precision="fp32", act=act, width=width, mode=mode)
                add("mlp B=1024 x 256 vs Python loop", line, "speedup_vs_loop", ">=", 10, **info)
                add("mlp B=1024 x 256 vs shared weights, same batch", line, "slowdown_vs_shared_weight", "<=", 1.5,
                    **info)
    for line in RESULTS:  # random batches only: a batch >= the image is the same full image every step
        if (line.get("bench") == "image" and line.get("backend") == "cuda" and line.get("batch") == 1 << 18
                and line.get("full_batch") is False):
            add("image hash step batch 2^18", line, "samples_per_s", ">=", 3e8, precision=line.get("precision"),
                image_size=line.get("image_size"))
    return out


# ------------------------------------------------------------------------------------------------
# CLI


FULL = dict(precisions=list(PRECISIONS), widths=[64, 128], acts=["relu", "sine"], batches=[2 ** k for k in range(14, 22)],
            instances=[1, 64, 1024], reps=20, warmup=3, measure_s=0.25, torch_reps=5,
            compile_batches=[1 << 16, 1 << 20], compile_precisions=["fp32"], loop_batches=[1 << 18],
            eikonal_widths=[64, 128], eikonal_batches=[1 << 18], image_sizes=[512, 2048],
            image_batches=[1 << 16, 1 << 18, 1 << 20], hashgrid_n=1 << 20, budget_s=480.0, compile_budget_s=180.0,
            ceiling_n=8192, copy_mib=1024)
QUICK = dict(FULL, precisions=["fp32", "fp16"], batches=[1 << 16, 1 << 18, 1 << 20], instances=[1, 1024], reps=10,
             compile_batches=[1 << 16], eikonal_widths=[64], image_sizes=[2048], image_batches=[1 << 18],
             budget_s=240.0, compile_budget_s=90.0)
SMOKE = dict(FULL, precisions=["fp32", "bf16"], widths=[64], batches=[256], instances=[1, 4], reps=1, warmup=0,
             measure_s=0.05, torch_reps=1, compile_batches=[256], loop_batches=[256], eikonal_widths=[64],
             eikonal_batches=[256], image_sizes=[32], image_batches=[256], hashgrid_n=1024, budget_s=0.0,
             compile_budget_s=60.0, ceiling_n=256, copy_mib=4)
SECTIONS = ("ceilings", "mlp", "eikonal", "hashgrid", "image")


def size(s: str) -> int:
    """65536, 2^16, 2**16 or 1<<16."""
    s = s.strip()
    for sep in ("^", "**"):
        if sep in s:
            a, b = s.split(sep)
            return int(a) ** int(b)
    if "<<" in s:
        a, b = s.split("<<")
        return int(a) << int(b)
    return int(s)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="See the module docstring for the lines.")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=None, help="sections to run (default: all)")
    ap.add_argument("--smoke", action="store_true", help="CPU check of the script: tiny sizes, 1 rep, no compile")
    ap.add_argument("--quick", action="store_true", help="the target configurations only (GPU, a few minutes)")
    ap.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=None)
    ap.add_argument("--widths", type=int, nargs="+", default=None)
    ap.add_argument("--acts", nargs="+", choices=["relu", "sine"], default=None)
    ap.add_argument("--batches", type=size, nargs="+", default=None, help="total points per call (B * N)")
    ap.add_argument("--instances", type=size, nargs="+", default=None, help="B: 1 = shared weights")
    ap.add_argument("--n-hidden", type=int, default=3)
    ap.add_argument("--d-in", type=int, default=3)
    ap.add_argument("--d-out", type=int, default=3)
    ap.add_argument("--reps", type=int, default=None, help="timed runs per figure (at most)")
    ap.add_argument("--warmup", type=int, default=None)
    ap.add_argument("--measure-s", type=float, default=None, help="seconds per figure before runs are cut")
    ap.add_argument("--torch-reps", type=int, default=None, help="timed runs of the PyTorch hash grid")
    ap.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                    help="torch.compile baselines (auto: on, except in --smoke)")
    ap.add_argument("--compile-mode", default="default", help="torch.compile mode (default, max-autotune, ...)")
    ap.add_argument("--compile-batches", type=size, nargs="+", default=None)
    ap.add_argument("--compile-precisions", nargs="+", choices=PRECISIONS, default=None)
    ap.add_argument("--compile-budget-s", type=float, default=None, help="stop compiling new shapes after this")
    ap.add_argument("--loop-batches", type=size, nargs="+", default=None, help="batches with the Python-loop baseline")
    ap.add_argument("--eikonal-widths", type=int, nargs="+", default=None)
    ap.add_argument("--eikonal-batches", type=size, nargs="+", default=None)
    ap.add_argument("--image-sizes", type=int, nargs="+", default=None, help="square image sides (finest level)")
    ap.add_argument("--image-batches", type=size, nargs="+", default=None)
    ap.add_argument("--hashgrid-n", type=size, default=None)
    ap.add_argument("--ceiling-n", type=int, default=None, help="matmul side for the ceilings")
    ap.add_argument("--copy-mib", type=int, default=None, help="MiB copied for the bandwidth ceiling")
    ap.add_argument("--budget-s", type=float, default=None, help="no new MLP/eikonal configuration after this (0: none)")
    args = ap.parse_args(argv)
    profile = SMOKE if args.smoke else QUICK if args.quick else FULL
    for k, v in profile.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    args.sections = list(args.only or SECTIONS)
    args.compile_on = args.compile == "on" or (args.compile == "auto" and not args.smoke)
    args.compile_off_reason = ("skipped in --smoke (torch.compile on a CPU takes minutes; --compile on forces it)"
                               if args.smoke and args.compile == "auto" else "--compile off")
    return args


def device_name() -> str:
    return torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else "cpu"


def setup_line() -> dict:
    line = {"bench": "setup", "device": device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "smoke": ARGS.smoke, "quick": ARGS.quick, "kernels_available": False, "kernel_build_s": None,
            "kernels_error": None, "tcnn_available": False, "tcnn_error": None,
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "args": {k: v for k, v in vars(ARGS).items() if k not in ("only",)}}
    if DEVICE.type == "cuda":
        log("building / loading the CUDA kernels (a first build on a fresh machine takes minutes)")
        t0 = time.perf_counter()
        try:
            import kernels

            line["kernels_available"] = kernels.load() is not None
            line["kernels_error"] = kernels.last_error()
        except Exception as e:
            line["kernels_error"] = err(e)
        line["kernel_build_s"] = round(time.perf_counter() - t0, 2)
    else:
        line["kernels_error"] = "no CUDA device (the fused kernels are not built on a CPU)"
    tcnn, why = tcnn_module()
    line["tcnn_available"], line["tcnn_error"] = tcnn is not None, why or None
    return line


def main(argv=None) -> None:
    global ARGS, DEVICE
    STATE["t0"] = time.perf_counter()
    ARGS = parse_args(argv)
    if not ARGS.smoke and not torch.cuda.is_available():
        emit({"bench": "setup", "skipped": "no CUDA device (python benchmarks/kernels.py --smoke checks the script on a CPU)"})
        return
    DEVICE = torch.device("cpu") if ARGS.smoke else torch.device("cuda", torch.cuda.current_device())
    torch.set_float32_matmul_precision("highest")  # fp32 means fp32: no TF32 in eager, compile or cuBLAS
    try:  # one compiled function per shape and mode: never fall back to eager for "too many recompiles"
        import torch._dynamo as dynamo

        for name in ("cache_size_limit", "recompile_limit"):
            if hasattr(dynamo.config, name):
                setattr(dynamo.config, name, max(64, getattr(dynamo.config, name)))
    except Exception:
        pass
    emit(setup_line())
    STATE["deadline"] = time.perf_counter() + ARGS.budget_s if ARGS.budget_s else None
    sections = ARGS.sections
    ceilings: dict = {}

    def section(name, fn, *a):
        try:
            return fn(*a)
        except Exception as e:  # a bug in one section must not cost the others
            emit({"bench": name, "error": err(e)})
        finally:
            free()

    if "ceilings" in sections or "mlp" in sections:
        log("ceilings")
        ceilings = section("ceilings", bench_ceilings) or {}
    if "image" in sections:
        section("image", bench_image)
    if "hashgrid" in sections:
        section("hashgrid", bench_hashgrid)
    if "eikonal" in sections:
        section("eikonal", bench_eikonal)
    if "mlp" in sections:  # last: the part --budget-s trims (its least important configurations come last)
        section("mlp", bench_mlp, ceilings)
    emit({"bench": "summary", "device": device_name(), "elapsed_s": round(time.perf_counter() - STATE["t0"], 1),
          "compile_s_spent": {k: round(v, 1) for k, v in STATE["compile_spent"].items()}, "n_lines": len(RESULTS), "targets": targets()})


if __name__ == "__main__":
    main()
