"""inr: implicit neural representations — SIREN and hash-grid fields with replaceable, per-instance
parameters, and the tools to fit, inspect and render them.

>>> import inr
>>> field = inr.SirenField(2, 3)
"""
from .errors import InputError
from .fields import Field, FourierField, HashField, SirenField, build_field
from .hyper import HyperConfig, HyperField
from .nn import MLP, MLPSpec, mlp_forward
from .train import RunDir, load

__version__ = "0.1.0"

__all__ = ["Field", "FourierField", "HashField", "HyperConfig", "HyperField", "InputError", "MLP", "MLPSpec", "RunDir", "SirenField",
           "__version__", "build_field", "load", "mlp_forward"]
