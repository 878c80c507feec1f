"""Functional, batched building blocks: linear, MLP (spec + params), activations, initialisers."""
from .activations import apply_activation
from .init import init_layer, siren_bounds
from .linear import batched_linear
from .mlp import MLP, MLPSpec, Params, init_mlp_params, mlp_forward

__all__ = ["MLP", "MLPSpec", "Params", "apply_activation", "batched_linear", "init_layer",
           "init_mlp_params", "mlp_forward", "siren_bounds"]
