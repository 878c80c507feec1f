"""Batched linear layer (implemented at the bottom of the stack, in `inr.backends.linear`)."""
from inr.backends.linear import batched_linear

__all__ = ["batched_linear"]
