"""benchmarks/kernels.py --smoke runs on a CPU and prints the line shapes of the GPU run.

The GPU benchmark is run once, elsewhere, with no chance to fix it: this runs the same code paths
on tiny CPU inputs (fused kernels reported unavailable, torch.compile skipped) and checks that every
stdout line is strict JSON with the keys each kind of line must have, and that nothing raised.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "kernels.py"



def engine_keys(engines):
    return {f"{e}_{k}" for e in engines for k in ("samples_per_s", "ms")}


MLP = {"bench", "device", "mode", "precision", "eager_precision", "act", "width", "n_hidden", "d_in", "d_out", "B",
       "N", "batch", "speedup_vs_eager", "speedup_vs_compile", "speedup_vs_tcnn", "speedup_vs_loop",
       "shared_weight_fused_samples_per_s", "slowdown_vs_shared_weight", "flops_per_sample", "bytes_per_sample",
       "fused_tflops", "fused_gbps", "frac_matmul_ceiling", "frac_bandwidth_ceiling", "max_abs_err", "rel_err",
       "rel_l2_err", "grad_rel_err", "eager_rel_l2_err", "compile_rel_l2_err", "tcnn_rel_l2_err", "compile_s",
       } | engine_keys(("fused", "eager", "compile", "tcnn", "loop"))
EIKONAL = {"bench", "device", "mode", "act", "width", "batch", "speedup_vs_eager", "speedup_vs_eager_fwdmode",
           "speedup_vs_compile", "speedup_vs_compile_double_backward", "max_abs_err", "rel_l2_err",
           "jac_max_abs_err", "jac_rel_l2_err", "grad_rel_err", "compile_s",
           } | engine_keys(("fused", "eager", "eager_fwdmode", "compile", "compile_double_backward"))
HASHGRID = {"bench", "device", "d", "n_levels", "F", "log2_T", "N", "fwd_rel_l2_err_vs_torch_fp32",
            *(f"{e}_{m}_samples_per_s" for e in ("cuda", "torch", "tcnn") for m in ("fwd", "fwd_bwd", "fwd_bwd_xgrad")),
            *(f"{m}_speedup" for m in ("fwd", "fwd_bwd", "fwd_bwd_xgrad"))}
IMAGE = {"bench", "device", "image_size", "batch", "effective_batch", "full_batch", "backend", "precision", "samples_per_s", "step_ms",
         "torch_samples_per_s", "speedup_vs_torch", "speedup_vs_eager", "max_abs_err", "rel_l2_err"}
CEILINGS = {"bench", "device", "matmul_tflops_fp32", "matmul_tflops_tf32", "matmul_tflops_fp16", "matmul_tflops_bf16",
            "bandwidth_gbps"}
SETUP = {"bench", "device", "torch", "kernels_available", "kernel_build_s", "tcnn_available", "args"}
SUMMARY = {"bench", "elapsed_s", "targets"}
EXPECTED = {"setup": SETUP, "ceilings": CEILINGS, "mlp": MLP, "eikonal": EIKONAL, "hashgrid": HASHGRID,
            "image": IMAGE, "summary": SUMMARY}


def _strict(text: str) -> dict:
    def no_constant(name):  # NaN / Infinity are not JSON
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=no_constant)


pytestmark = pytest.mark.slow  # runs the kernel benchmark script end to end


@pytest.fixture(scope="module")
def smoke_lines():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", INR_DISABLE_CUDA_KERNELS="1", PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], check=False, cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, proc.stderr[-4000:]
    return [_strict(ln) for ln in lines], proc.stderr


def test_every_line_is_json_with_expected_keys(smoke_lines):
    lines, stderr = smoke_lines
    seen = set()
    for line in lines:
        assert line.get("bench") in EXPECTED, line
        assert "skipped" not in line, line  # --smoke has no time budget
        missing = EXPECTED[line["bench"]] - set(line)
        assert not missing, (line["bench"], sorted(missing))
        errors = {k: v for k, v in line.items() if (k == "error" or k.endswith("_error")) and v is not None
                  and k not in ("kernels_error", "tcnn_error")}  # setup: why nothing was built on a CPU
        assert not errors, (line, stderr[-4000:])
        seen.add(line["bench"])
    assert seen == set(EXPECTED)
    assert lines[0]["bench"] == "setup" and lines[-1]["bench"] == "summary"


def test_smoke_measures_the_torch_paths_and_reports_the_fused_ones_unavailable(smoke_lines):
    lines, _ = smoke_lines
    mlp = [ln for ln in lines if ln["bench"] == "mlp"]
    assert {(ln["mode"], ln["act"], ln["B"] > 1) for ln in mlp} == {(m, a, b) for m in ("infer", "train")
                                                                   for a in ("relu", "sine") for b in (False, True)}
    for ln in mlp:
        assert ln["fused_samples_per_s"] is None and ln["fused_unavailable"]
        assert ln["eager_samples_per_s"] > 0
        assert ln["compile_samples_per_s"] is None and "smoke" in ln["compile_unavailable"]
        assert ln["flops_per_sample"] > 0 and ln["bytes_per_sample"] > 0
        assert ln["eager_rel_l2_err"] < (1e-5 if ln["precision"] == "fp32" else 5e-2)
        if ln["B"] > 1 and ln["precision"] == "fp32":
            assert ln["loop_samples_per_s"] > 0
    for ln in (ln for ln in lines if ln["bench"] == "eikonal"):
        assert ln["eager_samples_per_s"] > 0 and ln["eager_fwdmode_samples_per_s"] > 0
        assert ln["fused_unavailable"]
        assert ln["eager_fwdmode_jac_rel_l2_err"] < 1e-5
    for ln in (ln for ln in lines if ln["bench"] == "hashgrid"):
        assert ln["torch_fwd_samples_per_s"] > 0 and ln["cuda_unavailable"]
    image = [ln for ln in lines if ln["bench"] == "image"]
    assert any(ln["backend"] == "torch" and ln["samples_per_s"] > 0 for ln in image)
    assert all(ln["unavailable"] for ln in image if ln["backend"] != "torch")
    ceilings = next(ln for ln in lines if ln["bench"] == "ceilings")
    assert ceilings["matmul_tflops_fp32"] > 0 and ceilings["bandwidth_gbps"] > 0
