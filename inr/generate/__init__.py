"""Generators that output NeRF runs: `nerf_run` writes (and fine-tunes) a normal nerf run directory
from a generated field; `views` is the few-view generator (HyperPlanes-style)."""
from .nerf_run import finetune, write_nerf_run

__all__ = ["finetune", "write_nerf_run"]
