"""Fields: SIREN, Fourier-feature MLP and hash-grid field, all accepting external parameters."""
from __future__ import annotations

import dataclasses

import torch

from .base import Field
from .fourier import FourierConfig, FourierField
from .hash import HashField, HashFieldConfig
from .nerf import NerfField, NerfFieldConfig
from .siren import SirenConfig, SirenField

# General-purpose fields, usable for any signal (the choices of `inr fit image --field`).
FIELDS = {"siren": (SirenField, SirenConfig), "fourier": (FourierField, FourierConfig),
          "hash": (HashField, HashFieldConfig)}
# Every kind `build_field` can rebuild from a run's config: FIELDS plus signal-specific fields
# (a NeRF's density + colour field, ...) that their modules add with `register_field`.
REGISTRY = {**FIELDS, "nerf": (NerfField, NerfFieldConfig)}


def register_field(kind: str, field_cls: type, config_cls: type) -> None:
    """Make `build_field(kind, ...)` (and so `inr.load`) know a signal-specific field."""
    REGISTRY[kind] = (field_cls, config_cls)


def field_config(kind: str, values: dict | None = None):
    """The typed config of field `kind`, with `values` (plain JSON) applied; unknown keys raise."""
    if kind not in REGISTRY:
        raise ValueError(f"unknown field {kind!r}; expected one of {', '.join(REGISTRY)}")
    cls = REGISTRY[kind][1]
    values = dict(values or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {kind} field option(s): {', '.join(unknown)}")
    if "hidden" in values:
        values["hidden"] = tuple(values["hidden"])
    return cls(**values)


def build_field(kind: str, d_in: int, d_out: int, generator: torch.Generator | None = None, **options) -> Field:
    """Build a field from its plain config (what `Field.config()` returns).

    >>> build_field("siren", 2, 1, hidden=[8]).kind
    'siren'
    """
    cfg = field_config(kind, options)  # validates the kind and the option names
    return REGISTRY[kind][0](d_in, d_out, cfg, generator=generator)


from .sdf import HashSDFConfig, HashSDFField  # noqa: E402  (signal-specific: signed distance fields)

register_field(HashSDFField.kind, HashSDFField, HashSDFConfig)


__all__ = ["FIELDS", "REGISTRY", "Field", "FourierConfig", "FourierField", "HashField", "HashFieldConfig",
           "HashSDFConfig", "HashSDFField", "NerfField", "NerfFieldConfig",
           "SirenConfig", "SirenField", "build_field", "field_config", "register_field"]
