"""Which of a field's parameters a hypernetwork generates, selected by name, pattern or depth.

Only the weights and biases of a field's MLPs can be generated per instance: they run through the
batched MLP op (`inr.nn.mlp`). Encoding tables (a hash grid's `grid.params`) stay shared.

>>> from inr.fields import SirenField, SirenConfig
>>> f = SirenField(2, 3, SirenConfig(hidden=(8, 8)))
>>> list(select_targets(f, last_k=1))
['net.layers.2.weight', 'net.layers.2.bias']
"""
from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from torch import nn

from inr.nn import MLP, MLPSpec

_LAYER = re.compile(r"^(?P<prefix>.*?)layers\.(?P<index>\d+)\.(?P<what>weight|bias)$")


@dataclass(frozen=True)
class Target:
    """One generated parameter: its name in the field, shape, and the MLP layer it belongs to."""

    name: str
    shape: tuple[int, ...]
    spec: MLPSpec  # the spec of the MLP holding it (its init scheme and layer widths)
    layer: int
    is_weight: bool

    @property
    def fan_in(self) -> int:
        return self.spec.widths[self.layer]

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


def mlp_parameters(field: nn.Module) -> dict[str, Target]:
    """Every generatable parameter of `field`: the weights and biases of each MLP it holds."""
    out: dict[str, Target] = {}
    for prefix, module in field.named_modules():
        if not isinstance(module, MLP):
            continue
        head = f"{prefix}." if prefix else ""
        for name, p in module.named_parameters():
            m = _LAYER.match(name)
            if m:
                out[head + name] = Target(head + name, tuple(p.shape), module.spec, int(m["index"]),
                                          m["what"] == "weight")
    return out


def select_targets(field: nn.Module, patterns: str | list[str] | tuple[str, ...] = "all",
                   last_k: int | None = None) -> dict[str, Target]:
    """The parameters to generate, in the field's order.

    - `patterns`: "all" (every MLP parameter) or glob patterns over parameter names
      ("net.layers.*", "net.layers.2.weight"); a pattern naming a non-MLP parameter is an error.
    - `last_k`: keep only the last k layers of each selected MLP (hyperlight's "last layers").
    """
    available = mlp_parameters(field)
    if isinstance(patterns, str):
        patterns = [patterns]
    if list(patterns) == ["all"]:
        chosen = dict(available)
    else:
        names = [n for n, _ in field.named_parameters()]
        chosen = {}
        for pattern in patterns:
            hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
            if not hits:
                raise ValueError(f"hypernetwork target {pattern!r} matches no parameter of the "
                                 f"{getattr(field, 'kind', 'field')} field (it has {', '.join(names)})")
            for n in hits:
                if n not in available:
                    raise ValueError(f"cannot generate {n!r} per instance: only MLP weights and biases "
                                     f"can be (encoding tables stay shared)")
                chosen[n] = available[n]
        chosen = {n: chosen[n] for n in available if n in chosen}  # the field's order
    if last_k is not None:
        if last_k < 1:
            raise ValueError(f"last_k must be >= 1, got {last_k}")
        keep = {}
        for n, t in chosen.items():
            if t.layer >= t.spec.n_layers - last_k:
                keep[n] = t
        chosen = keep
    if not chosen:
        raise ValueError("the hypernetwork selects no parameter to generate")
    return chosen
