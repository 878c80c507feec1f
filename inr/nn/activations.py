"""Activations by name (implemented at the bottom of the stack, in `inr.backends.activations`)."""
from inr.backends.activations import activation_slope, apply_activation
from inr.backends.contracts import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS

__all__ = ["HIDDEN_ACTIVATIONS", "OUTPUT_ACTIVATIONS", "activation_slope", "apply_activation"]
