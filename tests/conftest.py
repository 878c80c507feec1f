"""Shared fixtures."""
from __future__ import annotations

import os

import pytest
import torch

from inr.optional import open3d_import_error


def pytest_configure(config):
    """Under pytest-xdist, each worker takes its share of the cores for torch's intra-op threads:
    workers at torch's default (one thread per core) would oversubscribe the CPU and slow every
    test. Tests that need a thread count set it themselves."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if os.environ.get("PYTEST_XDIST_WORKER") and workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_collection_modifyitems(config, items):
    """Tests marked `open3d` (SDF ground truth and metrics, procedural multi-view scenes) skip
    with the reason where open3d cannot be imported, e.g. without the system's libusb-1.0."""
    reason = open3d_import_error()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if item.get_closest_marker("open3d"):
            item.add_marker(skip)


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
