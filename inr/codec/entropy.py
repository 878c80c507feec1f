"""Entropy coding of integer symbols: a one-parameter discrete model and constriction's ANS coder.

The model is a zero-centred two-sided geometric (discrete Laplace, p_k ~ r^|k|) or a discrete
Gaussian (p_k ~ q^(k^2)) over the symbols' range [lo, hi]; both are tried and the shorter code is
kept. Its probabilities are built from the stored parameter with multiplications only (no exp or
other libm call), so the decoder's table, and hence the decoded symbols, are identical on every
machine; constriction turns the float table into its fixed-point model deterministically.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import constriction
import numpy as np

KINDS = ("laplace", "gaussian")


@dataclass(frozen=True)
class EntropyModel:
    kind: str  # one of KINDS
    param: float  # r (laplace) or q (gaussian), in (0, 1)
    lo: int
    hi: int

    def probabilities(self) -> np.ndarray:
        """Unnormalised p_k for k = lo..hi (float64, multiplications only)."""
        span = max(abs(self.lo), abs(self.hi))
        mags = np.empty(span + 1)
        mags[0] = 1.0
        if self.kind == "laplace":
            for k in range(1, span + 1):
                mags[k] = mags[k - 1] * self.param
        else:  # q^(k^2) = q^((k-1)^2) * q^(2k-1)
            odd = self.param
            for k in range(1, span + 1):
                mags[k] = mags[k - 1] * odd
                odd = odd * self.param * self.param
        return mags[np.abs(np.arange(self.lo, self.hi + 1))]

    def constriction_model(self):
        return constriction.stream.model.Categorical(self.probabilities(), perfect=False)


def fit_model(symbols: np.ndarray, kind: str) -> EntropyModel:
    """The model of `kind` matched to the symbols' spread (mean |k| or mean k^2)."""
    lo, hi = int(symbols.min()), int(symbols.max())
    if kind == "laplace":
        b = max(float(np.abs(symbols).mean()), 1e-3)
        param = math.exp(-1.0 / b)
    else:
        var = max(float((symbols.astype(np.float64) ** 2).mean()), 1e-3)
        param = math.exp(-1.0 / (2.0 * var))
    return EntropyModel(kind, min(max(param, 1e-300), 1.0 - 1e-12), lo, hi)


def encode(symbols: np.ndarray, model: EntropyModel) -> bytes:
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse((symbols - model.lo).astype(np.int32), model.constriction_model())
    return coder.get_compressed().astype("<u4").tobytes()


def decode(payload: bytes, model: EntropyModel, n: int) -> np.ndarray:
    """n symbols from `payload`; ValueError if it cannot hold them (the caller reports the file)."""
    if len(payload) % 4:
        raise ValueError("coded payload is not a whole number of 32-bit words")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    try:
        out = constriction.stream.stack.AnsCoder(words).decode(model.constriction_model(), n)
    except Exception as e:  # constriction raises on an exhausted or invalid stream
        raise ValueError(f"coded payload does not decode ({e})") from None
    return out.astype(np.int64) + model.lo


def best_code(symbols: np.ndarray) -> tuple[EntropyModel, bytes]:
    """The shorter of the Laplace and Gaussian codes of `symbols`: (model, payload)."""
    best = None
    for kind in KINDS:
        model = fit_model(symbols, kind)
        payload = encode(symbols, model)
        if best is None or len(payload) < len(best[1]):
            best = (model, payload)
    return best
