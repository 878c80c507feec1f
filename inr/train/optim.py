"""Adam for the training loop: fused C++ steps on the CPU, torch.optim.Adam elsewhere.

`make_adam` is what `inr.train.loop.make_optimizer` returns. On a CPU with a backend that allows
compiled kernels ("auto" or "cuda") and a working build of the C++ optimizer kernels (kernels/cpu/adam.cpp) it gives
`CPUAdam`; otherwise torch.optim.Adam (fused where this torch has it, foreach otherwise).

`CPUAdam` updates:
- dense parameters (MLP weights, biases; and tables unless `lazy_tables`): torch.optim.Adam's
  update, every element, all parameters of a group in ONE multithreaded C++ pass
  (`adam_dense_`). Equal to torch.optim.Adam up to float rounding (tests/test_cpu_optim.py).
- hash tables with `lazy_tables=True`: only the rows whose gradient is non-zero this step
  (`adam_rows_`). Each row keeps the step it was last updated; when it is touched again after k
  skipped steps its moments are first decayed by beta1^k and beta2^k in closed form, so m and v
  equal dense Adam's. Its parameter does not move while untouched, whereas dense Adam keeps
  moving a zero-gradient row along its decaying momentum: for the parameters this is the lazy
  variant (as torch.optim.SparseAdam), exact when every row is touched every step.
  Off by default: on the 512x512 image fit every step touches most rows, so it saves little there.

State uses torch.optim.Adam's names (`step`, `exp_avg`, `exp_avg_sq`; plus `row_step` for lazy
tables), so checkpoints move between the two optimizers.

>>> p = torch.nn.Parameter(torch.ones(3))
>>> opt = make_adam([{"params": [p], "lr": 0.1}], backend=Backend("torch"))
>>> type(opt).__name__
'Adam'
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim.adam import adam as _torch_adam

from inr.backends import Backend

__all__ = ["CPUAdam", "hash_tables", "make_adam", "model_param_groups"]


def _ext():
    from kernels.cpu_loader import load_cpu_optim

    return load_cpu_optim()


class CPUAdam(torch.optim.Optimizer):
    """Adam (no weight decay, no amsgrad) with fused C++ steps for float32 CPU parameters.

    `lazy_tables`: parameters (2-D [rows, F] hash tables) stepped row-wise, see the module doc.
    Parameters the kernels cannot take (other dtypes or devices, sparse or non-contiguous
    gradients) are stepped by torch's functional Adam with the same hyper-parameters.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 lazy_tables: Iterable[torch.Tensor] = ()):
        if _ext() is None:
            raise RuntimeError("CPUAdam: the C++ optimizer kernels are unavailable")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self._lazy = {id(t) for t in lazy_tables}

    def _fits(self, p: torch.Tensor) -> bool:
        g = p.grad
        return (p.device.type == "cpu" and p.dtype == torch.float32 and p.is_contiguous() and not g.is_sparse
                and g.dtype == torch.float32 and g.is_contiguous())

    def _state(self, p: torch.Tensor, lazy: bool) -> dict:
        st = self.state[p]
        if not st:
            st["step"] = torch.tensor(0.0)
            st["exp_avg"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.contiguous_format)
        if lazy and "row_step" not in st:  # rows start as last updated at the parameter's current step
            st["row_step"] = torch.full((p.shape[0],), int(st["step"]), dtype=torch.int64)
        return st

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        ext = _ext()
        for group in self.param_groups:
            lr, (b1, b2), eps = float(group["lr"]), group["betas"], group["eps"]
            dense: list[list] = [[], [], [], [], []]
            for p in group["params"]:
                if p.grad is None:
                    continue
                lazy = id(p) in self._lazy and p.dim() == 2
                st = self._state(p, lazy)
                if not self._fits(p):  # torch's functional Adam (it counts the step itself)
                    _torch_adam([p], [p.grad], [st["exp_avg"]], [st["exp_avg_sq"]], [], [st["step"]],
                               amsgrad=False, beta1=b1, beta2=b2, lr=lr, weight_decay=0.0, eps=eps,
                               maximize=False)
                    continue
                st["step"] += 1
                step = int(st["step"])
                if lazy:
                    ext.adam_rows_(p, p.grad, st["exp_avg"], st["exp_avg_sq"], st["row_step"], step, lr, b1, b2, eps)
                else:
                    for lst, t in zip(dense, (p, p.grad, st["exp_avg"], st["exp_avg_sq"], step)):
                        lst.append(t)
            if dense[0]:
                ext.adam_dense_(*dense, lr, b1, b2, eps)
        return loss


def model_param_groups(model: torch.nn.Module, lr: float) -> list[dict]:
    """The model's own parameter groups where it has them (HC-INR trains its warp at another lr
    and Adam setting than its compact field), else one group at `lr`."""
    if hasattr(model, "param_groups"):
        return model.param_groups(lr)
    return [{"params": list(model.parameters()), "lr": lr}]


def hash_tables(model: torch.nn.Module | None) -> list[torch.Tensor]:
    """The hash-grid tables (`HashGrid.params`) among a model's modules."""
    if model is None:
        return []
    from inr.encodings import HashGrid

    return [m.params for m in model.modules() if isinstance(m, HashGrid)]


def make_adam(groups: list[dict], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
              backend: Backend = Backend(), model: torch.nn.Module | None = None,
              lazy_tables: bool = False) -> torch.optim.Optimizer:
    """Adam over `groups`: `CPUAdam` where every parameter is on the CPU, the backend is "auto" or
    "cuda" and the C++ kernels build; torch.optim.Adam otherwise (fused where available)."""
    params = [p for g in groups for p in g["params"]]
    if backend.name in ("auto", "cuda") and params and all(p.device.type == "cpu" for p in params) and _ext() is not None:
        return CPUAdam(groups, betas=betas, eps=eps, lazy_tables=hash_tables(model) if lazy_tables else ())
    try:  # the fused step is much faster on both CPU and GPU where this torch has it
        return torch.optim.Adam(groups, fused=True, betas=betas, eps=eps)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(groups, foreach=True, betas=betas, eps=eps)
