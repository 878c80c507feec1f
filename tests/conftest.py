"""Shared fixtures."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(params=["cuda", "emu"])
def kernel_device(request, monkeypatch):
    """Where the CUDA kernels (fused MLP, hash grid) run: "cuda" (skipped without a GPU) or "emu",
    the same kernel sources compiled for the CPU emulation in tests/cuda_emu (skipped without
    g++). Returns the torch device of the tensors to pass."""
    if request.param == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("needs a CUDA device")
        return "cuda"
    import cuda_emu

    from inr.backends import cuda

    ext = cuda_emu.ext()
    if ext is None:
        pytest.skip("the CUDA emulation needs g++")
    monkeypatch.setattr(cuda, "_ext", lambda: ext)  # cuda_tc, cuda_jvp and cuda_hashgrid call these too
    monkeypatch.setattr(cuda, "_on_kernel_device", lambda t: t.device.type == "cpu")
    return "cpu"
