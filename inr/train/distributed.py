"""Distributed data parallel training (DDP) under torchrun: process group setup and the few
collectives the collection and generator tasks need. Without torchrun's environment everything is
a no-op, so the same code runs in one process.

    torchrun --nproc_per_node 2 -m inr.cli.main fit collection images textures
    torchrun --nproc_per_node 2 -m inr.cli.main train generator views|text COLLECTION

gloo on CPUs, nccl on GPUs; every rank computes the same global batch from the step number and
takes its slice, so N processes follow the same loss curve as one process with the whole batch.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

from inr.errors import InputError

T = TypeVar("T")


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> None:
    """Join the process group torchrun describes (once); pins each rank to its GPU."""
    if not launched() or dist.is_initialized():
        return
    if device.type == "cuda":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def local_device(device: torch.device) -> torch.device:
    """The device of this rank (cuda:LOCAL_RANK under torchrun on GPUs)."""
    if device.type == "cuda" and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0 (or the only process): the one that writes the run directory and prints."""
    return rank() == 0


def mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over ranks (itself in one process)."""
    if not active():
        return value
    out = value.detach().clone()
    dist.all_reduce(out)
    return out / world_size()


def barrier() -> None:
    if active():
        dist.barrier()


def made_by_main(make: Callable[[], T], join: Callable[[], T]) -> T:
    """`make()` on rank 0 and `join()` on the others, between two barriers: every rank has reached
    this point (chosen the same run directory) before rank 0 makes it, and none goes on before it
    exists. In one process: `make()`."""
    barrier()
    value = make() if is_main() else join()
    barrier()
    return value


def check_signals_per_batch(signals_per_batch: int, flag: str = "--signals-per-batch") -> None:
    """InputError unless the members of a batch (signals, scenes) split evenly over the processes
    (each takes its slice); `flag` names the option that sets them."""
    world = world_size()
    if signals_per_batch % world:
        raise InputError(f"{flag} {signals_per_batch} must be a multiple of the {world} processes")


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
