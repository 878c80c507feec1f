"""CUDA sources of inr's fused kernels and the lazy loader that builds them.

Importing this package compiles nothing and needs no GPU: `load()` JIT-builds the extension
on first use (ninja, cached by torch) and returns None, after one warning, when it cannot.

>>> import kernels
>>> callable(kernels.load)
True
"""
from .loader import CSRC, last_error, load

__all__ = ["CSRC", "last_error", "load"]
