"""The hot ops at the bottom of the stack: their contracts, their backends, and the dispatch.

- `contracts`: what every backend implements (`MLPSpec`, `Params`, `HashGridConfig`,
  `grid_layout`); `choice`: which backend runs them (`Backend`, a frozen value chosen once per
  command and made active for a scope with `backend.active()`); `dispatch`: the ops
  (`mlp_op`, `mlp_value_and_grad_op`, `hashgrid_op`) sent to the active backend.
- "torch": pure PyTorch, runs anywhere, differentiable to any order: on a CPU, batches larger
  than one block run blocked (`torch_blocked_mlp`, cache-sized chunks); otherwise the reference
  `torch_mlp.mlp_forward`. The hash grid is `torch_hashgrid.hashgrid_encode`.
- "cuda": the compiled kernels (built on first use, cached): on a GPU the fused MLP and hash grid
  in `kernels/csrc`, on a CPU the C++ hash grid and, where `cpu_mlp.use_for` says it measured
  faster, the C++ MLP in `kernels/cpu`. Inputs they do not support (other widths, dtypes,
  layouts) run on "torch". Double backward recomputes through the torch op
  (correct, not fused).
- "tcnn": tiny-cuda-nn (`tinycudann`, optional, not on PyPI) for the MLPs and hash grids it can
  express (`inr.backends.tcnn`); everything else runs as under "cuda".
- "auto": the same as "cuda" (compiled kernels where they support the inputs, "torch" otherwise).

The fused MLP's operand precision on a GPU (`Backend.mlp_precision`): "fp32" (default; exact to
float32 rounding), or "fp16" / "bf16" tensor-core operands with fp32 accumulation.
`mlp_value_and_grad_op` gives an MLP's value and its Jacobian with respect to x in one pass
(forward-mode tangents), differentiable once: the eikonal path without double backward.

Nothing in this package imports from `inr` above it.
"""
from __future__ import annotations

from .choice import BACKENDS, PRECISIONS, Backend, active_backend
from .contracts import GridLayout, HashGridConfig, MLPSpec, Params, grid_layout
from .dispatch import hashgrid_op, mlp_op, mlp_value_and_grad_op

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "GridLayout", "HashGridConfig", "MLPSpec", "Params",
           "active_backend", "grid_layout", "hashgrid_op", "mlp_op", "mlp_value_and_grad_op"]
