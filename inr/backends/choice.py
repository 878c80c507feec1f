"""Which backend runs the hot ops: a frozen value chosen once per command, active within a scope.

A command builds one `Backend` (validated on construction) and enters `backend.active()` around
the work that calls the ops; `active_backend()` is what the dispatch reads. The scope is a
context variable, so nothing outlives the `with` block and concurrent contexts do not see each
other's choice; outside any scope the default `Backend()` ("auto", "fp32") is active.

>>> with Backend("torch").active():
...     active_backend().name
'torch'
>>> active_backend()
Backend(name='auto', mlp_precision='fp32')
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import torch

BACKENDS = ("auto", "torch", "cuda", "tcnn")
PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class Backend:
    """`name`: one of BACKENDS ("tcnn" only where tinycudann imports). `mlp_precision`: operand
    precision of the fused CUDA MLP, one of PRECISIONS (accumulation is always fp32)."""

    name: str = "auto"
    mlp_precision: str = "fp32"

    def __post_init__(self):
        if self.name not in BACKENDS:
            raise ValueError(f"unknown backend {self.name!r}; expected one of {', '.join(BACKENDS)}")
        if self.mlp_precision not in PRECISIONS:
            raise ValueError(f"unknown mlp_precision {self.mlp_precision!r}; expected one of {', '.join(PRECISIONS)}")
        if self.name == "tcnn":
            from . import tcnn

            tcnn.require()  # ValueError naming the import failure and how to install

    @property
    def compiled(self) -> bool:
        """Whether the compiled kernels (C++ on a CPU, CUDA on a GPU) may run: every name but "torch"."""
        return self.name != "torch"

    @contextlib.contextmanager
    def active(self) -> Iterator[Backend]:
        """Make this the backend of the hot ops until the block ends."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def prepare(self, device: torch.device) -> None:
        """Build the kernels this backend will use on `device` now (first use only; cached), so a
        training clock started afterwards does not count the compiler."""
        if not self.compiled:
            return
        if device.type == "cuda":
            from kernels import load

            load()
        else:
            from kernels.cpu_loader import load_cpu, load_cpu_mlp, load_cpu_render

            load_cpu()
            load_cpu_mlp()
            load_cpu_render()


_ACTIVE: ContextVar[Backend] = ContextVar("inr_backend", default=Backend())


def active_backend() -> Backend:
    """The backend of the innermost `Backend.active()` block (the default `Backend()` outside any)."""
    return _ACTIVE.get()
