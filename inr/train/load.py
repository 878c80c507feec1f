"""Rebuild a fitted field from its run directory."""
from __future__ import annotations

from pathlib import Path

import torch

from inr.errors import InputError
from inr.fields import Field, build_field

from .rundir import RunDir


def load(run_dir: str | Path, device: str | torch.device = "cpu") -> Field:
    """The field a run fitted, with exactly its saved parameters, in eval mode.

    >>> field = load("runs/camera-hash")        # doctest: +SKIP
    >>> field(torch.zeros(1, 2))                # doctest: +SKIP
    """
    run = RunDir.open(run_dir)
    config = run.read_config()
    spec = dict(config.get("field") or {})
    kind = spec.pop("kind", None)
    try:
        field = build_field(kind, spec.pop("d_in"), spec.pop("d_out"), **spec)
        field.load_state_dict(run.load_model_state())
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise InputError(f"{run.path}: cannot rebuild its field ({str(e).splitlines()[0]})") from None
    return field.to(device).eval()
