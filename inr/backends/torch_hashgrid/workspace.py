"""Per-thread reusable buffers for the fast path's per-chunk temporaries."""
from __future__ import annotations

import math
import threading

import torch

class Workspace:
    """Reusable buffers, one set per thread. glibc hands multi-MB blocks back to the OS when they
    are freed, so a fresh temporary per chunk costs more in page faults than its arithmetic;
    every per-chunk temporary of the fast path lives here instead."""

    def __init__(self):
        self.bufs: dict = {}

    def get(self, name: str, shape, dtype: torch.dtype, device) -> torch.Tensor:
        n = math.prod(shape)
        buf = self.bufs.get(name)
        if buf is None or buf.dtype != dtype or buf.device != device or buf.numel() < n:
            buf = self.bufs[name] = torch.empty(n, dtype=dtype, device=device)
        return buf[:n].view(shape)


class Fresh:
    """The workspace interface with plain allocation: for results autograd keeps (double-backward
    path) and for devices with a caching allocator."""

    @staticmethod
    def get(name: str, shape, dtype: torch.dtype, device) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device=device)


_TLS = threading.local()


def workspace(device) -> "Workspace | Fresh":
    if torch.device(device).type != "cpu":
        return Fresh
    ws = getattr(_TLS, "ws", None)
    if ws is None:
        ws = _TLS.ws = Workspace()
    return ws
