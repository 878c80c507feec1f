"""A field whose chosen parameters come from a hypernetwork, one set per instance.

>>> from inr.fields import SirenField, SirenConfig
>>> hf = HyperField(SirenField(2, 3, SirenConfig(hidden=(16, 16))), d_cond=8, cfg=HyperConfig(hidden=(32,)))
>>> hf(torch.rand(4, 100, 2) * 2 - 1, torch.rand(4, 8)).shape      # 4 instances, 100 points each
torch.Size([4, 100, 3])
>>> sorted(hf.generated_shapes())[:1]
['net.layers.0.bias']
"""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from inr.fields import Field, build_field

from .generator import HyperConfig, HyperNetwork
from .modes import assemble, mode_outputs
from .targets import select_targets


class HyperField(nn.Module):
    """`forward(x, z)`: x [B, N, d_in] (or [N, d_in], shared by all instances), z [B, d_cond]
    -> [B, N, d_out]. Parameters not generated are the field's own, shared by all instances (and
    they are theta_0 for FiLM and low-rank modes). All B instances run through one batched MLP op."""

    def __init__(self, field: Field, d_cond: int, cfg: HyperConfig | None = None,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg or HyperConfig()
        self.field = field
        self.d_cond = d_cond
        self.targets = select_targets(field, list(self.cfg.targets), self.cfg.last_k)
        outputs = mode_outputs(self.cfg.mode, self.targets, self.cfg.rank)
        self.hyper = HyperNetwork(d_cond, outputs, self.cfg, self.targets, generator=generator)
        if self.cfg.mode == "full":  # the field's own values of generated parameters are never used
            for name, p in field.named_parameters():
                if name in self.targets:
                    p.requires_grad_(False)

    # -- what is generated ----------------------------------------------------------------
    def target_shapes(self) -> dict[str, tuple[int, ...]]:
        """The field parameters that become per-instance, with their unbatched shapes."""
        return {n: t.shape for n, t in self.targets.items()}

    def generated_shapes(self) -> dict[str, tuple[int, ...]]:
        """What the hypernetwork's heads emit (equal to `target_shapes` in full mode)."""
        return dict(self.hyper.shapes)

    # -- forward --------------------------------------------------------------------------
    def params(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-instance replacement parameters {field name: [B, *shape]} for conditioning z [B, d_cond]."""
        base = dict(self.field.named_parameters())
        return assemble(self.cfg.mode, self.hyper(z), base, self.targets)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and x.shape[0] != z.shape[0]:
            raise ValueError(f"x has {x.shape[0]} instances but z has {z.shape[0]}")
        return self.field(x, self.params(z))

    @torch.no_grad()
    def materialize(self, z: torch.Tensor) -> Field:
        """A plain field (its own kind and config) with the parameters generated for one z [d_cond]:
        everything that reads a field (render, export, the viewer, `inr.load`) works on it."""
        params = self.params(z.reshape(1, -1))
        field = build_field(**self.field.config())
        state = {k: v.detach().clone() for k, v in self.field.state_dict().items()}
        for name, value in params.items():
            state[name] = value[0].detach().clone()
        field.load_state_dict(state)
        return field.to(z.device)

    def config(self) -> dict:
        """Plain JSON: the field's config, the conditioning width and the hypernetwork's settings."""
        return {"field": self.field.config(), "d_cond": self.d_cond, "hyper": hyper_config_dict(self.cfg)}


def hyper_config_dict(cfg: HyperConfig) -> dict:
    d = dataclasses.asdict(cfg)
    d["targets"], d["hidden"] = list(cfg.targets), list(cfg.hidden)
    return d


def build_hyper_field(config: dict, generator: torch.Generator | None = None) -> HyperField:
    """Rebuild a HyperField from `HyperField.config()`."""
    spec = dict(config["field"])
    field = build_field(spec.pop("kind"), spec.pop("d_in"), spec.pop("d_out"), generator=generator, **spec)
    return HyperField(field, int(config["d_cond"]), HyperConfig(**config["hyper"]), generator=generator)
