"""The "tcnn" backend: tiny-cuda-nn (`tinycudann`, optional, not on PyPI) for the field MLPs and
hash grids it can express, with our parameters as the source of truth.

Every call packs our tensors into tiny-cuda-nn's flat parameter buffer with differentiable torch
ops (pad, reshape, cat, cast) and runs tcnn's native module through tinycudann's own autograd
function (`tinycudann.modules._module_function`, exactly as `tinycudann.modules.Module.forward`
calls it), so gradients flow back through the packing to our tensors and a run can switch
backends on the same checkpoint. One native module per (spec or grid config, device) is built
on first use and cached; its own randomly initialised parameters are dropped.

Facts this relies on (tiny-cuda-nn, github.com/NVlabs/tiny-cuda-nn):

- `Network(d_in, d_out, cfg)` is `NetworkWithInputEncoding` with an "Identity" encoding
  (src/cpp_api.cu `create_network`). The encoding's output is padded to
  `minimum_alignment(network)` = FullyFusedMLP::REQUIRED_ALIGNMENT() = 16 columns
  (include/tiny-cuda-nn/network_with_input_encoding.h constructor, fully_fused_mlp.h,
  src/network.cu), and the padded columns are set to 1, not 0
  (include/tiny-cuda-nn/encodings/identity.h: `data_out(i)[j] = 1`). The padded weight columns
  are therefore zero here, else they would act as a first-layer bias.
- FullyFusedMLP's parameters are its weight matrices back to back, in layer order
  (src/fully_fused_mlp.cu `set_params`, `current_pos += n_elements()`): [W, pad16(d_in)], then
  n_hidden_layers - 1 of [W, W], then [pad16(d_out), W] (constructor: `m_padded_output_width =
  next_multiple(m_output_width, 16)`). Each is `GPUMatrix<T, RM>` (fully_fused_mlp.h): row
  major [out, in], the layout of our `layers.{i}.weight`. No biases anywhere.
  Widths 16/32/64/128 (256 only in older versions; src/network.cu); hidden activations
  ReLU/None/Sigmoid/Exponential/... but not Sine in the fused kernel; any output activation.
  On GPUs of compute capability <= 70, or without half precision, tcnn silently builds a
  CutlassMLP instead (src/network.cu `select_network`): the parameter-count check below
  notices a layout that is not this one and falls back.
- Network parameters and outputs are fp16 where tcnn is built with half precision (the usual
  case); `Module` uses loss scale 128 for fp16 parameters, 1 otherwise; inputs are float32
  [batch, n_input_dims]; the batch is padded to a multiple of `_C.batch_size_granularity()`
  and the output is [batch, padded width] (bindings/torch/tinycudann/modules.py `forward`,
  bindings/torch/tinycudann/bindings.cpp `fwd`). `fwd` runs tcnn's inference path (no
  context for a backward) when neither input nor params require grad.
- Grid encodings (include/tiny-cuda-nn/encodings/grid.h): per level the table is `offset_l *
  F` floats into the buffer, row `index % hashmap_size`, feature f at `row * F + f`; offsets
  grow by `min(next_multiple(res**d, 8), 2**log2_hashmap_size)` (hash) or
  `next_multiple(res**d, 8)` (dense), `res = ceil(scale) + 1`, `scale = exp2f(l *
  log2(per_level_scale)) * base_resolution - 1`; `pos = scale * x + 0.5`; dense index
  x-fastest unless `res**d > hashmap_size` (then the CoherentPrime hash, primes 1,
  2654435761, 805459861, ...); interpolation Nearest/Linear/Smoothstep; types Hash/Dense/
  Tiled; 2 to 4 input dims (2 and 3 in older versions), 1/2/4/8 features per level; the
  output is level-major (`level * F + f`). That is `contracts.grid_layout`'s table
  [total_rows, F] flattened row major, so packing is a reshape. `Encoding(..., dtype=float32)`
  keeps table, gradients and features in float32 (modules.py `Encoding`).
  One difference: tcnn takes `log2` of the float32 `per_level_scale` in float32
  (`std::log2(m_per_level_scale)`), while `grid_layout` rounds the float64 log2 of the float64
  value (kept: changing it would change the tables of existing runs). Where the two disagree
  (a scale not exact in float32, e.g. derived from finest_resolution 512: tcnn's finest level
  then has 513 vertices), `hashgrid_supports` says False and the grid runs on the "cuda" kernels.

What runs here (else `mlp_supports` / `hashgrid_supports` say False and the dispatcher uses
the "cuda" kernels): MLPs without biases, 1+ hidden layers of one width in {16, 32, 64, 128},
hidden relu/none, output none/sigmoid/exp/relu, d_in <= 128, shared float32 CUDA weights,
x float32 CUDA [N, d_in] or [1, N, d_in]; hash grids with a shared float32 CUDA table
[total_rows, F], x float32 CUDA [..., d] with d in 2..4, F in {1, 2, 4, 8}, <= 32 levels.
Outputs are float32 (fp16 network outputs are cast; padded columns and rows are removed).

Not like the other backends: the fp16 network (weights, activations, weight gradients) agrees
with `mlp_forward` to fp16 accuracy only; a second derivative through the MLP raises (tcnn's
FullyFusedMLP has no backward-of-backward); non-finite grid inputs give NaN, not ValueError.

>>> import torch
>>> from inr.backends.contracts import MLPSpec
>>> spec = MLPSpec(3, (16, 16), 4, bias=False)
>>> p = {name: torch.zeros(shape) for name, shape in spec.param_shapes().items()}
>>> pack_mlp_params(p, spec).shape   # 16*16 + 16*16 + 16*16 fp16 values
torch.Size([768])
>>> mlp_supports(torch.zeros(5, 3), p, spec)   # CPU tensors: not here
False
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .contracts import HashGridConfig, MLPSpec, Params, grid_layout

INSTALL = "pip install git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch"
ALIGN = 16                      # FullyFusedMLP::REQUIRED_ALIGNMENT(): input and output padding
WIDTHS = (16, 32, 64, 128)
MAX_D_IN = 128                  # the fused input layer keeps [W + 16, d_in + 8] halves in shared memory
HIDDEN_ACTIVATIONS = {"relu": "ReLU", "none": "None"}
OUTPUT_ACTIVATIONS = {"none": "None", "sigmoid": "Sigmoid", "exp": "Exponential", "relu": "ReLU"}
GRID_DIMS = (2, 3, 4)
GRID_FEATURES = (1, 2, 4, 8)
MAX_LEVELS = 32                 # older tcnn asserts n_levels <= 32 (offset table size)


# ------------------------------------------------------------------------------------------------
# availability


@functools.lru_cache(maxsize=1)
def _import() -> tuple[Any, str]:
    """(the tinycudann module or None, why not). Cached: importing it touches the GPU."""
    try:
        return importlib.import_module("tinycudann"), ""
    except Exception as e:  # ImportError, or tinycudann's EnvironmentError when there is no usable GPU
        return None, " ".join(f"{type(e).__name__}: {e}".split())  # one line


def available() -> bool:
    """Whether `import tinycudann` works (tried once, then cached). Importing this module never does."""
    return _import()[0] is not None


def require() -> None:
    """Raise ValueError (one line: the import failure and how to install) unless tinycudann imports."""
    if not available():
        raise ValueError(f"backend 'tcnn' needs tiny-cuda-nn's PyTorch bindings, but `import tinycudann` "
                         f"failed ({_import()[1]}); install them with: {INSTALL}")


# ------------------------------------------------------------------------------------------------
# parameter layouts (pure torch: tested without a GPU)


def _next_multiple(n: int, k: int) -> int:
    return -(-n // k) * k


def mlp_layout(spec: MLPSpec) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """Per weight matrix, in tcnn's order: (our name, our [out, in], tcnn's padded [rows, cols]).
    Matrices are row major and back to back; padding is at the end of each dimension."""
    w, n_hidden = spec.hidden[0], len(spec.hidden)
    rows = [w] * n_hidden + [_next_multiple(spec.d_out, ALIGN)]
    cols = [_next_multiple(spec.d_in, ALIGN)] + [w] * n_hidden
    ours = spec.param_shapes()
    return [(f"layers.{i}.weight", ours[f"layers.{i}.weight"], (rows[i], cols[i])) for i in range(spec.n_layers)]


def mlp_n_params(spec: MLPSpec) -> int:
    """Length of tcnn's FullyFusedMLP parameter buffer for `spec`."""
    return sum(r * c for _, _, (r, c) in mlp_layout(spec))


def pack_mlp_params(params: Params, spec: MLPSpec, dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """Our unbatched weights as tcnn's flat FullyFusedMLP buffer (zero padding), differentiable."""
    parts = []
    for name, (out, inp), (rows, cols) in mlp_layout(spec):
        w = params[name]
        if tuple(w.shape) != (out, inp):
            raise ValueError(f"{name}: expected shared weights of shape {(out, inp)}, got {tuple(w.shape)}")
        parts.append(F.pad(w.to(dtype), (0, cols - inp, 0, rows - out)).reshape(-1))
    return torch.cat(parts)


def unpack_mlp_params(flat: torch.Tensor, spec: MLPSpec, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The inverse of `pack_mlp_params` (padding dropped): {"layers.{i}.weight": [out, in]}."""
    if flat.shape != (mlp_n_params(spec),):
        raise ValueError(f"expected a flat buffer of {mlp_n_params(spec)} values, got {tuple(flat.shape)}")
    out, pos = {}, 0
    for name, (o, i), (rows, cols) in mlp_layout(spec):
        out[name] = flat[pos:pos + rows * cols].view(rows, cols)[:o, :i].to(dtype)
        pos += rows * cols
    return out


def hashgrid_n_params(config: HashGridConfig, n_dims: int) -> int:
    """Length of tcnn's grid parameter buffer: total_rows * F."""
    return grid_layout(config, n_dims).total_rows * config.n_features_per_level


def pack_hashgrid_table(table: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Our shared table [total_rows, F] as tcnn's flat grid buffer: the same order, so a reshape."""
    if table.dim() != 2:
        raise ValueError(f"expected a shared table [total_rows, F], got {tuple(table.shape)}")
    return table.to(dtype).reshape(-1)


def unpack_hashgrid_table(flat: torch.Tensor, config: HashGridConfig, n_dims: int) -> torch.Tensor:
    """The inverse of `pack_hashgrid_table`: [total_rows, F]."""
    n = hashgrid_n_params(config, n_dims)
    if flat.shape != (n,):
        raise ValueError(f"expected a flat buffer of {n} values, got {tuple(flat.shape)}")
    return flat.view(-1, config.n_features_per_level)


def network_config(spec: MLPSpec) -> dict:
    """The tcnn network JSON for `spec` (see `mlp_unsupported` for what it can express)."""
    return {"otype": "FullyFusedMLP", "activation": HIDDEN_ACTIVATIONS[spec.activation],
            "output_activation": OUTPUT_ACTIVATIONS[spec.output_activation],
            "n_neurons": spec.hidden[0], "n_hidden_layers": len(spec.hidden)}


def encoding_config(config: HashGridConfig) -> dict:
    """The tcnn grid encoding JSON for `config` (the hash named: tcnn's default, CoherentPrime)."""
    return {**config.to_tcnn(), "hash": "CoherentPrime"}


# ------------------------------------------------------------------------------------------------
# what runs here


def mlp_unsupported(x: torch.Tensor, params: Params, spec: MLPSpec) -> str | None:
    """Why `tcnn_mlp` cannot run these inputs (None if it can). Checks the spec, then the
    parameter shapes, then dtypes and devices, then tinycudann and the module build."""
    h = spec.hidden
    if spec.bias:
        return "biases (tcnn's FullyFusedMLP has none)"
    if not h or h[0] not in WIDTHS or any(w != h[0] for w in h):
        return f"hidden widths {h} (tcnn needs 1+ layers of one width in {WIDTHS})"
    if spec.activation not in HIDDEN_ACTIVATIONS:
        return f"hidden activation {spec.activation!r}"
    if spec.output_activation not in OUTPUT_ACTIVATIONS:
        return f"output activation {spec.output_activation!r}"
    if spec.d_in > MAX_D_IN:
        return f"d_in {spec.d_in} > {MAX_D_IN}"
    for name, shape in spec.param_shapes().items():
        p = params.get(name)
        if p is None:
            return f"missing parameter {name}"
        if tuple(p.shape) != shape:
            return f"per-instance or misshapen {name} {tuple(p.shape)} (tcnn runs one shared {shape})"
    if not (x.dim() == 2 or (x.dim() == 3 and x.shape[0] == 1)) or x.shape[-1] != spec.d_in or x.numel() == 0:
        return f"x of shape {tuple(x.shape)} (tcnn needs [N, {spec.d_in}] or [1, N, {spec.d_in}], N > 0)"
    tensors = [x, *(params[name] for name in spec.param_shapes())]
    if any(t.dtype != torch.float32 for t in tensors):
        return "dtypes other than float32"
    if any(not t.is_cuda or t.device != x.device for t in tensors):
        return "tensors not all on one CUDA device"
    if not available():
        return "tinycudann does not import"
    if _network(spec, x.device) is None:
        return "tcnn could not build this network (see the warning)"
    return None


def mlp_supports(x: torch.Tensor, params: Params, spec: MLPSpec) -> bool:
    """Whether `tcnn_mlp` can evaluate these inputs (see `mlp_unsupported` for why not)."""
    return mlp_unsupported(x, params, spec) is None


def hashgrid_unsupported(x: torch.Tensor, table: torch.Tensor, config: HashGridConfig) -> str | None:
    """Why `tcnn_hashgrid` cannot encode these inputs (None if it can)."""
    if x.dim() < 1 or x.numel() == 0:
        return f"x of shape {tuple(x.shape)}"
    d = x.shape[-1]
    if d not in GRID_DIMS:
        return f"{d}-D inputs (tcnn grids take {GRID_DIMS})"
    if config.n_features_per_level not in GRID_FEATURES:
        return f"{config.n_features_per_level} features per level (tcnn takes {GRID_FEATURES})"
    if config.n_levels > MAX_LEVELS:
        return f"{config.n_levels} levels > {MAX_LEVELS}"
    lay = grid_layout(config, d)
    if lay.scales != tcnn_level_scales(config):
        return "per_level_scale not exact in float32: tcnn's level scales differ from this grid's"
    if tuple(table.shape) != (lay.total_rows, config.n_features_per_level):
        return (f"table of shape {tuple(table.shape)} (tcnn runs one shared "
                f"[{lay.total_rows}, {config.n_features_per_level}] table)")
    if lay.total_rows * config.n_features_per_level >= 2**32:
        return "more than 2**32 parameters"
    if x.dtype != torch.float32 or table.dtype != torch.float32:
        return "dtypes other than float32"
    if not (x.is_cuda and table.is_cuda and x.device == table.device):
        return "tensors not both on one CUDA device"
    if not available():
        return "tinycudann does not import"
    if _encoding(config, d, x.device) is None:
        return "tcnn could not build this grid (see the warning)"
    return None


def tcnn_level_scales(config: HashGridConfig) -> tuple[float, ...]:
    """The level scales tcnn computes (grid.h): exp2f(l * log2f(float(per_level_scale))) * base - 1."""
    log2_scale = np.float32(math.log2(float(np.float32(config.per_level_scale))))
    base = np.float32(config.base_resolution)
    return tuple(float(np.float32(np.exp2(np.float32(lvl) * log2_scale)) * base - np.float32(1))
                 for lvl in range(config.n_levels))


def hashgrid_supports(x: torch.Tensor, table: torch.Tensor, config: HashGridConfig) -> bool:
    """Whether `tcnn_hashgrid` can encode these inputs (see `hashgrid_unsupported` for why not)."""
    return hashgrid_unsupported(x, table, config) is None


# ------------------------------------------------------------------------------------------------
# native modules and calls


@dataclass(frozen=True)
class _Native:
    """One tcnn module on one device, and what a call needs to know about it."""

    module: Any                 # tinycudann's native module (fwd/bwd), parameters passed per call
    param_dtype: torch.dtype
    loss_scale: float           # as tinycudann.modules.Module: 128 for fp16 parameters, else 1
    n_output_dims: int          # padded output width
    granularity: int            # batch size multiple


_NATIVE: dict[tuple, _Native | None] = {}


def _modules():
    """tinycudann.modules: `_C` (the extension) and `_module_function` (the autograd function)."""
    return importlib.import_module("tinycudann.modules")


def _on(device: torch.device):
    """Make `device` current (tcnn works on the current device's current stream)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _build(key: tuple, what: str, make, n_params: int, n_out: int) -> _Native | None:
    """The cached native module for `key` (ending in the device), built by `make()` (a tinycudann
    Module) on first use. A failure, or a module whose parameter count or output width is not
    the layout assumed here, warns once and is cached as None: the dispatcher then falls back."""
    if key in _NATIVE:
        return _NATIVE[key]
    native = None
    try:
        with _on(key[-1]):
            wrapper = make()  # also allocates its own initial parameters: dropped with `wrapper`
        mod = wrapper.native_tcnn_module
        if mod.n_params() != n_params or mod.n_output_dims() != n_out:
            raise RuntimeError(f"it built {mod.n_params()} parameters and {mod.n_output_dims()} outputs, "
                               f"expected {n_params} and {n_out} (another layout, e.g. CutlassMLP on an old GPU)")
        granularity = int(_modules()._C.batch_size_granularity())
        native = _Native(mod, wrapper.dtype, float(wrapper.loss_scale), n_out, granularity)
    except Exception as e:  # whatever tcnn throws (RuntimeError from C++, ...): fall back, never crash
        warnings.warn(f"tcnn backend: not using tiny-cuda-nn for {what}: {' '.join(str(e).split())}; "
                      f"our CUDA kernels run it instead", RuntimeWarning, stacklevel=3)
    _NATIVE[key] = native
    return native


def _network(spec: MLPSpec, device: torch.device) -> _Native | None:
    cfg = network_config(spec)
    key = ("mlp", spec.d_in, spec.d_out, tuple(sorted(cfg.items())), torch.device(device))
    tcnn = _import()[0]
    return _build(key, f"the MLP {spec}", lambda: tcnn.Network(spec.d_in, spec.d_out, cfg),
                  mlp_n_params(spec), _next_multiple(spec.d_out, ALIGN))


def _encoding(config: HashGridConfig, n_dims: int, device: torch.device) -> _Native | None:
    cfg = encoding_config(config)
    key = ("grid", n_dims, tuple(sorted(cfg.items())), torch.device(device))
    tcnn = _import()[0]
    return _build(key, f"the grid {config}", lambda: tcnn.Encoding(n_dims, cfg, dtype=torch.float32),
                  hashgrid_n_params(config, n_dims), config.n_output_dims)


def _call(native: _Native, x: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """tcnn's module on x [N, d] with parameters `flat`, through tinycudann's autograd function
    (as `tinycudann.modules.Module.forward`): [N, padded outputs] in tcnn's output dtype."""
    n = x.shape[0]
    pad = -n % native.granularity
    xp = F.pad(x, (0, 0, 0, pad)) if pad else x
    with _on(x.device):
        out = _modules()._module_function.apply(native.module, xp.contiguous(), flat.contiguous(),
                                                native.loss_scale)
    return out[:n]


def tcnn_mlp(x: torch.Tensor, params: Params, spec: MLPSpec) -> torch.Tensor:
    """`mlp_forward(x, params, spec)` on tiny-cuda-nn's FullyFusedMLP (see `mlp_supports`);
    float32 result, differentiable once with respect to x and the weights."""
    why = mlp_unsupported(x, params, spec)
    if why is not None:
        raise ValueError(f"tcnn_mlp cannot run these inputs: {why}")
    native = _network(spec, x.device)
    flat = pack_mlp_params(params, spec, native.param_dtype)
    y = _call(native, x.reshape(-1, spec.d_in), flat)
    return y[:, :spec.d_out].float().reshape(*x.shape[:-1], spec.d_out)


def tcnn_hashgrid(x: torch.Tensor, table: torch.Tensor, config: HashGridConfig) -> torch.Tensor:
    """`hashgrid_encode(x, table, config)` on tiny-cuda-nn's grid encoding (see
    `hashgrid_supports`): [..., L*F] float32, level-major, differentiable as tcnn allows."""
    why = hashgrid_unsupported(x, table, config)
    if why is not None:
        raise ValueError(f"tcnn_hashgrid cannot run these inputs: {why}")
    d = x.shape[-1]
    native = _encoding(config, d, x.device)
    y = _call(native, x.reshape(-1, d), pack_hashgrid_table(table, native.param_dtype))
    return y[:, :config.n_output_dims].to(table.dtype).reshape(*x.shape[:-1], config.n_output_dims)
