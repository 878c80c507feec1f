"""Training loop, run directories, resume, and the per-signal fit tasks."""
from .load import load
from .loop import TrainConfig, train
from .rundir import RunDir

__all__ = ["RunDir", "TrainConfig", "load", "train"]
