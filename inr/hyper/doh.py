"""D'OH: decoder-only random hypernetworks (Gordon et al. 2024, arXiv 2403.19163).

A target field's MLP parameters are never trained or stored; they are generated from a latent z:

    theta_l = a * theta_0,l(seed) + c_l * g_l * P_l z        (one shared z of size K for all layers)

    field = SirenField(2, 3, SirenConfig(hidden=(64, 64, 64)))
    doh = DOHField(field, DOHConfig(latent_dim=1024, seed=7))
    y = doh(x)                 # x [N, 2] -> [N, 3], through the batched MLP op
    doh.z                      # the only trained tensor (plus optional per-layer scales g)

- P_l [numel_l, K] has +-1 entries (Rademacher, Achlioptas 2003) drawn from numpy's Philox
  counter-based generator keyed by (seed, stream): one bit per entry, any row block computable on
  its own, the same bits on every machine (the raw Philox stream is numpy's stability guarantee;
  bytes are read little-endian). P is held packed (1 bit an entry) or, when small, as a float
  matrix for speed; otherwise products run block by block through 256-entry lookup tables (one
  per 8 latents), so P is never materialised in full.
- c_l = sqrt(1 - a^2) * std_l / sqrt(K), with std_l the standard deviation of the target's own
  initialisation of that tensor (SIREN's uniform bounds, He's sqrt(2/n)); with z ~ N(0, I), its
  initial value, every generated tensor then has its init's standard deviation.
- theta_0 is a draw of the target's init from the same generator (uniform for SIREN, a 4-uniform
  Irwin-Hall approximation of the normal for He); `offset` a mixes it in (0: pure P z).
- `exact_params(q, step)` is the decoder's path: z = step * q with integer symbols q, and P q is
  summed in int64, so the generated weights are bit-identical everywhere (float64 then float32).

The paper's: theta = P z with fixed random P regenerated from a seed, only z trained, quantised
and entropy coded; per-layer scaling so the generated weights match the target's initialisation.
Ours: Rademacher rather than Gaussian entries (1 bit each, exact integer products at decode), the
Philox stream, the theta_0 offset mixing, zero-initialised biases (He) given the 1/sqrt(n) scale of
PyTorch's default bias so they can move, and the learned per-layer scales g (option).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from inr.backends.contracts import MLPSpec

from .targets import Target, mlp_parameters

# Philox streams per generated tensor: its sign bits and its theta_0 draw. Encodings use STREAM_FEATURES.
STREAM_SIGNS, STREAM_THETA0, STREAM_FEATURES = 0, 1, 2
# A dense float copy of P is kept for fast training when it is at most this many bytes.
DENSE_BYTES = 256 << 20
BLOCK_ROWS = 1024  # rows of P per block in the table products (a few MB of indices)


@dataclass
class DOHConfig:
    """latent_dim K, the seed of P and theta_0, the share of theta_0 in the init (`offset` a), and
    whether each generated tensor gets a learned scale g (stored in the bitstream)."""

    latent_dim: int = 1024
    seed: int = 0
    offset: float = 0.0
    learn_scales: bool = False

    def __post_init__(self):
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if not 0.0 <= self.offset < 1.0:
            raise ValueError(f"offset must be in [0, 1), got {self.offset}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed must be in [0, 2^32), got {self.seed}")


# -- the counter-based generator ----------------------------------------------------------------


def philox_bytes(seed: int, stream: int, start: int, n: int) -> np.ndarray:
    """Bytes start..start+n-1 of the Philox4x64 stream keyed by (seed, stream), as uint8.

    Random access: the counter jumps to the 32-byte block holding `start`, so any slice of the
    stream is computed without the bytes before it.
    """
    first = start // 32
    last = -(-(start + n) // 32)
    gen = np.random.Philox(key=np.array([seed, stream], dtype=np.uint64),
                           counter=np.array([first, 0, 0, 0], dtype=np.uint64))
    words = gen.random_raw((last - first) * 4).astype("<u8", copy=False)
    return words.view(np.uint8)[start - first * 32: start - first * 32 + n]


def philox_uniform(seed: int, stream: int, n: int) -> np.ndarray:
    """n values in (-1, 1) from 16-bit chunks of the stream, (v + 0.5) / 32768 - 1: exact in float32."""
    v = philox_bytes(seed, stream, 0, 2 * n).view("<u2").astype(np.float64)
    return (v + 0.5) / 32768.0 - 1.0


def philox_normal(seed: int, stream: int, n: int) -> np.ndarray:
    """n approximately standard normal values: the sum of 4 uniforms (Irwin-Hall), rescaled to unit
    variance; only exact arithmetic, so every machine gets the same floats."""
    u = philox_uniform(seed, stream, 4 * n).reshape(n, 4)
    return u.sum(axis=1) * math.sqrt(3.0 / 4.0)


def _sign_table() -> torch.Tensor:
    """S [8, 256]: S[j, b] = +1 where bit j of byte b is set, else -1 (bit order of `unpackbits(bitorder="little")`)."""
    b = torch.arange(256)
    return torch.stack([((b >> j) & 1) * 2 - 1 for j in range(8)])


SIGNS = _sign_table()


# -- the target's initialisation ----------------------------------------------------------------


def init_std(t: Target) -> float:
    """Standard deviation of the target's own initialisation of tensor `t` (see inr.nn.init)."""
    spec: MLPSpec = t.spec
    n = t.fan_in
    if spec.activation == "sine":
        if t.is_weight:
            bound = 1.0 / n if t.layer == 0 else math.sqrt(6.0 / n) / spec.w0_hidden
            return bound / math.sqrt(3.0)
        return 1.0 / math.sqrt(n) / math.sqrt(3.0)
    if t.is_weight:
        gain = 2.0 if t.layer < spec.n_layers - 1 else 1.0
        return math.sqrt(gain / n)
    return 1.0 / math.sqrt(n) / math.sqrt(3.0)  # He's biases start at 0: PyTorch's bias scale instead


def theta0(t: Target, seed: int, index: int) -> np.ndarray:
    """A draw of the target's init for tensor `t` (float64, the tensor's shape)."""
    std = init_std(t)
    if t.spec.activation == "sine":
        values = philox_uniform(seed, 4 * index + STREAM_THETA0, t.numel) * (std * math.sqrt(3.0))
    else:
        values = philox_normal(seed, 4 * index + STREAM_THETA0, t.numel) * std
    return values.reshape(t.shape)


# -- the projection -----------------------------------------------------------------------------


class SignProjection:
    """P [rows, K] with +-1 entries for one generated tensor: its packed bits (uint8 [rows, G],
    G = ceil(K / 8)), products P z (float, differentiable) and P q (int64, exact)."""

    def __init__(self, seed: int, stream: int, rows: int, k: int, dense_bytes: int = DENSE_BYTES):
        self.rows, self.k, self.groups = rows, k, -(-k // 8)
        self.packed = torch.from_numpy(philox_bytes(seed, stream, 0, rows * self.groups).reshape(rows, self.groups))
        self.dense = self.matrix() if rows * k * 4 <= dense_bytes else None

    def matrix(self, r0: int = 0, r1: int | None = None) -> torch.Tensor:
        """Rows r0..r1-1 of P as float32 +-1."""
        bits = np.unpackbits(self.packed[r0:r1].numpy(), axis=1, bitorder="little")[:, : self.k]
        return torch.from_numpy(bits.astype(np.float32) * 2 - 1)

    def _indices(self, r0: int, r1: int, dtype=np.int32) -> np.ndarray:
        """Rows r0..r1-1 of the packed bits as flat indices g * 256 + byte into a [G * 256] table."""
        idx = self.packed[r0:r1].numpy().astype(dtype)
        idx += (np.arange(self.groups) * 256).astype(dtype)
        return idx

    def _table(self, z: torch.Tensor) -> torch.Tensor:
        """T [G * 256]: T[g, b] = sum over the 8 latents of group g of +-z by the bits of b."""
        pad = torch.zeros(self.groups * 8 - self.k, dtype=z.dtype)
        return (torch.cat([z, pad]).reshape(self.groups, 8) @ SIGNS.to(z.dtype)).reshape(-1)

    def _gather_sum(self, table: np.ndarray, out_dtype) -> torch.Tensor:
        """[rows]: per row, the sum over groups of table[g, byte]. Gathers in numpy, block by block
        (6x faster than torch's indexing here)."""
        out = np.empty(self.rows, dtype=out_dtype)
        for r0 in range(0, self.rows, BLOCK_ROWS):
            r1 = min(r0 + BLOCK_ROWS, self.rows)
            out[r0:r1] = table[self._indices(r0, r1, np.int32 if table.size < 2**31 else np.int64)].sum(1, dtype=out_dtype)
        return torch.from_numpy(out)

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        """P z [rows] (float, differentiable in z)."""
        if self.dense is not None:
            return self.dense @ z
        return _TableProduct.apply(z, self)

    def apply_exact(self, q: torch.Tensor) -> torch.Tensor:
        """P q [rows] in int64 for integer symbols q [K]: exact, order-independent; int32 tables
        where no partial sum can overflow."""
        small = int(q.abs().max()) * self.groups * 8 < 2**31 if q.numel() else True
        return self._gather_sum(self._table(q.long()).numpy().astype(np.int32 if small else np.int64), np.int64)

    def forward_blocks(self, z: torch.Tensor) -> torch.Tensor:
        return self._gather_sum(self._table(z).numpy(), z.numpy().dtype).to(z.dtype)

    def transpose_blocks(self, g: torch.Tensor) -> torch.Tensor:
        """P^T g [K]: the rows' values binned into per-group tables, then signed sums."""
        acc = np.zeros(self.groups * 256)
        values = g.double().numpy()
        for r0 in range(0, self.rows, BLOCK_ROWS):
            r1 = min(r0 + BLOCK_ROWS, self.rows)
            acc += np.bincount(self._indices(r0, r1).reshape(-1), weights=np.repeat(values[r0:r1], self.groups),
                               minlength=self.groups * 256)
        table = torch.from_numpy(acc).reshape(self.groups, 256).to(g.dtype)
        return (table @ SIGNS.to(g.dtype).T).reshape(-1)[: self.k]


class _TableProduct(torch.autograd.Function):
    """P z through lookup tables, block by block (P never materialised); backward P^T g likewise."""

    @staticmethod
    def forward(ctx, z, proj):
        ctx.proj = proj
        return proj.forward_blocks(z.detach())

    @staticmethod
    def backward(ctx, g):
        return ctx.proj.transpose_blocks(g.contiguous()), None


class DOHField(nn.Module):
    """A field whose every MLP weight and bias is theta_0 + P z (see the module docstring).

    The target field's own parameters are never used (they stay frozen); `forward(x)` runs the
    target with the generated parameters through the batched MLP op.
    """

    def __init__(self, field: nn.Module, cfg: DOHConfig | None = None, generator: torch.Generator | None = None,
                 dense_bytes: int = DENSE_BYTES):
        super().__init__()
        self.cfg = cfg or DOHConfig()
        self.field = field
        for p in field.parameters():
            p.requires_grad_(False)
        self.targets = mlp_parameters(field)
        k, a = self.cfg.latent_dim, self.cfg.offset
        self.projections, base, coeff = [], [], []
        for i, t in enumerate(self.targets.values()):
            self.projections.append(SignProjection(self.cfg.seed, 4 * i + STREAM_SIGNS, t.numel, k, dense_bytes))
            base.append(torch.from_numpy(a * theta0(t, self.cfg.seed, i)).reshape(-1) if a else torch.zeros(t.numel,
                                                                                                             dtype=torch.float64))
            coeff.append(math.sqrt(1.0 - a * a) * init_std(t) / math.sqrt(k))
        self.register_buffer("theta0", torch.cat(base).float(), persistent=False)
        self.theta0_exact = torch.cat(base)  # float64: the decoder's base
        self.coeff = coeff
        self.z = nn.Parameter(torch.randn(k, generator=generator))
        self.log_scales = nn.Parameter(torch.zeros(len(self.targets)), requires_grad=self.cfg.learn_scales)
        encoding = getattr(field, "encoding", None)
        if isinstance(getattr(encoding, "B", None), torch.Tensor):  # Gaussian Fourier features: from the seed too
            b = philox_normal(self.cfg.seed, STREAM_FEATURES, encoding.B.numel()) * encoding.sigma
            encoding.B = torch.from_numpy(b).float().reshape(encoding.B.shape)

    @property
    def sizes(self) -> list[int]:
        return [t.numel for t in self.targets.values()]

    def params(self, z: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """{field parameter name: generated tensor} for latent z (default: the trained one)."""
        z = self.z if z is None else z
        scales = self.log_scales.exp()
        out = {}
        for (name, t), proj, c, s, base in zip(self.targets.items(), self.projections, self.coeff, scales,
                                                self.theta0.split(self.sizes)):
            out[name] = (base + (c * s) * proj.apply(z)).reshape(t.shape)
        return out

    def exact_params(self, q: torch.Tensor, step: float, scales: list[float] | None = None) -> dict[str, torch.Tensor]:
        """The decoder's parameters for integer symbols q [K] (z = step * q) and per-tensor scales:
        P q in int64, then one float64 multiply-add per weight, then float32. Bit-identical on any
        machine."""
        scales = scales or [1.0] * len(self.targets)
        out = {}
        for (name, t), proj, c, s, base in zip(self.targets.items(), self.projections, self.coeff, scales,
                                                self.theta0_exact.split(self.sizes)):
            pq = proj.apply_exact(q).to(torch.float64)
            out[name] = (base + (c * float(s) * float(step)) * pq).float().reshape(t.shape)
        return out

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.field(x, self.params(z))
