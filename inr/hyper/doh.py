"""D'OH: decoder-only random hypernetworks (Gordon et al. 2024, arXiv 2403.19163).

A target field's MLP parameters are never trained or stored; they are generated from a latent z:

    theta_l = a * theta_0,l(seed) + c_l * g_l * P_l z        (one shared z of size K for all layers)

    field = SirenField(2, 3, SirenConfig(hidden=(64, 64, 64)))
    doh = DOHField(field, DOHConfig(latent_dim=1024, seed=7))
    y = doh(x)                 # x [N, 2] -> [N, 3], through the batched MLP op
    doh.z                      # the only trained tensor (plus optional per-layer scales g)

- P_l [numel_l, K] has +-1 entries (Rademacher, Achlioptas 2003) drawn from numpy's Philox
  counter-based generator keyed by (seed, stream): one bit per entry, any group of columns
  computable on its own, the same bits on every machine (the raw Philox stream is numpy's
  stability guarantee; bytes are read little-endian). The stream is laid out column group by
  column group: group g's 16-bit words (the signs of latents 16g..16g+15, one word per row) are
  bytes 2 g numel_l .. of it. P is held as these words (2 bytes per 16 entries) or, when small,
  as a float matrix for speed; otherwise products run group by group through one 65536-entry
  lookup table per group (built once for every tensor, as the outer sum of two 256-entry tables),
  so P is never materialised; the decoder regenerates the words chunk by chunk and never holds P.
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
Philox stream and its column-group layout (chosen for the decoder: a 768x512 image's 75k x 16k
P q takes 0.13 s group by group against 1.3 s row by row with 8-latent tables, measured side by
side under load), the theta_0 offset mixing and the option of a zero initial z (the codec starts
from 0.7 theta_0 and z = 0, so the coded latent holds only what training changed), zero-initialised
biases (He) given the 1/sqrt(n) scale of PyTorch's default bias so they can move, and the learned
per-layer scales g (option).
"""
from __future__ import annotations

import functools
import math
from concurrent.futures import ThreadPoolExecutor
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


@dataclass
class DOHConfig:
    """latent_dim K, the seed of P and theta_0, the share of theta_0 in the init (`offset` a),
    whether each generated tensor gets a learned scale g (stored in the bitstream), and the standard
    deviation of z's initial draw (`z_std`; 0 starts from a theta_0 alone, so z codes only what
    training changed: the encoder's choice, the decoder never needs it)."""

    latent_dim: int = 1024
    seed: int = 0
    offset: float = 0.0
    learn_scales: bool = False
    z_std: float = 1.0

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
SIGNS_NP = SIGNS.numpy()


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

GROUP = 16  # latents per lookup table: 2^16 entries, 256 KB in int32 (stays in L2 while a column is summed)
CHUNK_BYTES = 4 << 20  # sign bits generated (or read) per step of a product
PACKED_BYTES = 1 << 30  # a projection keeps its packed bits for training when at most this; else regenerates
SPLIT = 2  # group ranges of a product, one per thread (2 cores), added in order


class SignProjection:
    """P [rows, K] with +-1 entries: every generated tensor's projection stacked (part i: rows[i]
    rows, its own Philox stream streams[i]). Held as 16-bit words (uint16 [G, rows], G = ceil(K / 16):
    word [g, r] holds the signs of P[r, 16 g : 16 g + 16], bit j set = +1; a part's group g is bytes
    2 g rows_i .. of its stream) or regenerated chunk by chunk. Products P z (float, differentiable)
    and P q (int64, exact) run group by group: one 65536-entry table of the group's 16 latents, then
    one gather over every row's word, so each table is built once for all tensors."""

    def __init__(self, seed: int, streams: list[int], rows: list[int], k: int, dense_bytes: int = DENSE_BYTES,
                 keep: bool = True):
        self.seed, self.streams, self.part_rows = seed, list(streams), list(rows)
        self.rows, self.k, self.groups = sum(rows), k, -(-k // GROUP)
        self.packed = None
        if keep and 2 * self.rows * self.groups <= PACKED_BYTES:
            self.packed = self.words(0, self.groups)
        self.dense = self.matrix() if self.rows * k * 4 <= dense_bytes else None

    def words(self, g0: int, g1: int) -> np.ndarray:
        """uint16 [g1 - g0, rows]: word columns g0..g1-1, every part's rows side by side."""
        if self.packed is not None:
            return self.packed[g0:g1]
        out = np.empty((g1 - g0, self.rows), dtype=np.uint16)
        r0 = 0
        for stream, n in zip(self.streams, self.part_rows):
            raw = philox_bytes(self.seed, stream, 2 * g0 * n, 2 * (g1 - g0) * n)
            out[:, r0:r0 + n] = raw.view("<u2").reshape(g1 - g0, n)
            r0 += n
        return out

    def _chunks(self, part: int = 0, parts: int = 1):
        """Group ranges (g0, g1) of about CHUNK_BYTES of words, within the part-th of `parts` even splits."""
        lo, hi = self.groups * part // parts, self.groups * (part + 1) // parts
        step = max(1, CHUNK_BYTES // (2 * self.rows))
        for g0 in range(lo, hi, step):
            yield g0, min(g0 + step, hi)

    def matrix(self) -> torch.Tensor:
        """P as float32 +-1 [rows, K]."""
        words = np.ascontiguousarray(self.words(0, self.groups).T).astype("<u2", copy=False)
        bits = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, : self.k]
        return torch.from_numpy(bits.astype(np.float32) * 2 - 1)

    def _gather_sum(self, v: np.ndarray) -> np.ndarray:
        """[rows]: per row, the sum over groups of table_g[word[g, row]], in v's dtype (v [K]).

        The groups are split in SPLIT halves, summed on their own threads (numpy's gathers and adds
        release the GIL) and added in order, so the result does not depend on the thread count."""
        padded = np.zeros(self.groups * GROUP, dtype=v.dtype)
        padded[: self.k] = v
        halves = padded.reshape(self.groups, 2, 8) @ SIGNS_NP.astype(v.dtype)  # each 8 latents' 256-entry table

        def part(i: int) -> np.ndarray:
            out, gathered = np.zeros(self.rows, dtype=v.dtype), np.empty(self.rows, dtype=v.dtype)
            table = np.empty((256, 256), dtype=v.dtype)  # [hi byte, lo byte]: a word is hi * 256 + lo
            for g0, g1 in self._chunks(i, SPLIT):
                for word, (lo, hi) in zip(self.words(g0, g1), halves[g0:g1]):
                    np.add(hi[:, None], lo[None, :], out=table)  # the group's table: the halves' outer sum
                    np.take(table.reshape(-1), word, out=gathered)
                    out += gathered
            return out

        threads = max(1, min(SPLIT, torch.get_num_threads()))
        if threads == 1:
            parts = [part(i) for i in range(SPLIT)]
        else:
            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(part, range(SPLIT)))
        return functools.reduce(np.add, parts)

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        """P z [rows] (float, differentiable in z)."""
        if self.dense is not None:
            return self.dense @ z
        return _TableProduct.apply(z, self)

    def apply_exact(self, q: torch.Tensor) -> torch.Tensor:
        """P q [rows] in int64 for integer symbols q [K]: exact and order-independent; sums in int32
        where no partial sum can reach 2^31 (every partial sum of +-q_k is at most sum |q|)."""
        small = int(q.abs().sum()) < 2**31 if q.numel() else True
        return torch.from_numpy(self._gather_sum(q.numpy().astype(np.int32 if small else np.int64)).astype(np.int64))

    def forward_blocks(self, z: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._gather_sum(z.numpy()))

    def transpose_blocks(self, g: torch.Tensor) -> torch.Tensor:
        """P^T g [K]: per word column, the rows' values binned by word, folded onto each 8-latent
        half's 256 bytes, then signed sums."""
        values = g.double().numpy()
        acc = np.empty((self.groups, 2, 256))
        for g0, g1 in self._chunks():
            for i, word in enumerate(self.words(g0, g1)):
                h = np.bincount(word, weights=values, minlength=1 << 16).reshape(256, 256)  # [hi byte, lo byte]
                acc[g0 + i, 0], acc[g0 + i, 1] = h.sum(0), h.sum(1)
        return torch.from_numpy(acc @ SIGNS_NP.T.astype(np.float64)).reshape(-1)[: self.k].to(g.dtype)


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
                 dense_bytes: int = DENSE_BYTES, keep_bits: bool = True):
        super().__init__()
        self.cfg = cfg or DOHConfig()
        self.field = field
        for p in field.parameters():
            p.requires_grad_(False)
        self.targets = mlp_parameters(field)
        k, a = self.cfg.latent_dim, self.cfg.offset
        self.projection = SignProjection(self.cfg.seed, [4 * i + STREAM_SIGNS for i in range(len(self.targets))],
                                         self.sizes, k, dense_bytes, keep_bits)
        base, coeff = [], []
        for i, t in enumerate(self.targets.values()):
            base.append(a * torch.from_numpy(theta0(t, self.cfg.seed, i)).reshape(-1) if a
                        else torch.zeros(t.numel, dtype=torch.float64))
            coeff.append(math.sqrt(1.0 - a * a) * init_std(t) / math.sqrt(k))
        self.register_buffer("theta0", torch.cat(base).float(), persistent=False)
        self.theta0_exact = torch.cat(base)  # float64: the decoder's base
        self.coeff = coeff
        self.z = nn.Parameter(torch.randn(k, generator=generator) * self.cfg.z_std)
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
        for (name, t), pz, c, s, base in zip(self.targets.items(), self.projection.apply(z).split(self.sizes),
                                              self.coeff, scales, self.theta0.split(self.sizes)):
            out[name] = (base + (c * s) * pz).reshape(t.shape)
        return out

    def exact_params(self, q: torch.Tensor, step: float, scales: list[float] | None = None) -> dict[str, torch.Tensor]:
        """The decoder's parameters for integer symbols q [K] (z = step * q) and per-tensor scales:
        P q in int64, then one float64 multiply-add per weight, then float32. Bit-identical on any
        machine."""
        scales = scales or [1.0] * len(self.targets)
        out, pqs = {}, self.projection.apply_exact(q).double().split(self.sizes)
        for (name, t), pq, c, s, base in zip(self.targets.items(), pqs, self.coeff, scales,
                                              self.theta0_exact.split(self.sizes)):
            out[name] = (base + (c * float(s) * float(step)) * pq).float().reshape(t.shape)
        return out

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.field(x, self.params(z))
