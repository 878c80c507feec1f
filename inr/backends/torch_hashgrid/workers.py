"""Chunks of samples, and the worker threads that each own a group of levels for all chunks."""
from __future__ import annotations

import os

import torch

from .plan import Plan

CHUNK_CORNERS = 1 << 19


def chunk_size(plan: Plan) -> int:
    # samples per chunk: below ~2**18 corner lookups per chunk the per-op overhead dominates
    # (2**16: 2.5x slower), above 2**20 temporaries fall out of cache
    return max(64, CHUNK_CORNERS // (plan.config.n_levels * plan.n_corners))


# Parallelism. PyTorch's intra-op threading is a poor fit here: every chunk runs ~30 small ops,
# each a fork/join of the OpenMP team, and scatter_add_ is serial anyway. Instead each worker
# thread owns a group of levels for all chunks and runs its ops single-threaded (2 cores: about
# 1.2-1.6x faster than intra-op threads, which also spin badly when the machine is shared).

MIN_PARALLEL_CORNERS = 1 << 16   # below this many corner lookups, run inline


def _init_worker(n_threads: int) -> None:
    torch.get_num_threads()          # PyTorch's per-thread lazy init first, or it would undo this
    torch.set_num_threads(n_threads)


class Workers:
    """One single-thread executor per level group, created lazily and re-created when
    torch.get_num_threads() changes."""

    _key = None
    _pools: list = []

    @staticmethod
    def layout() -> tuple[int, int]:
        """(number of workers, intra-op threads each) for the current torch thread count."""
        n = torch.get_num_threads()
        workers = max(1, min(n, 8))
        return workers, max(1, n // workers)

    @classmethod
    def pools(cls, n_workers: int, each: int) -> list:
        key = (n_workers, each, os.getpid())  # a forked child has none of the parent's threads
        if cls._key != key:
            from concurrent.futures import ThreadPoolExecutor
            for pool in cls._pools:
                pool.shutdown(wait=False)
            main_threads = torch.get_num_threads()
            cls._pools = [ThreadPoolExecutor(1, thread_name_prefix="inr-hashgrid", initializer=_init_worker,
                                             initargs=(each,)) for _ in range(n_workers)]
            for pool in cls._pools:
                pool.submit(lambda: None).result()   # run the initializers now ...
            torch.set_num_threads(main_threads)      # ... then restore the process-wide default
            cls._key = key
        return cls._pools


def run_groups(plan: Plan, task, m_total: int) -> list:
    """task(parts) for every worker group; in parallel on CPU for large enough inputs."""
    groups = plan.groups
    if len(groups) == 1 or plan.device.type != "cpu" or \
            m_total * plan.config.n_levels * plan.n_corners < MIN_PARALLEL_CORNERS:
        return [task(parts) for parts in groups]
    pools = Workers.pools(len(groups), Workers.layout()[1])
    inference = torch.is_inference_mode_enabled()

    def run(parts):
        # grad and inference modes are per thread: workers start with grad on, inference off
        with torch.inference_mode(inference), torch.no_grad():
            return task(parts)

    futures = [pool.submit(run, parts) for pool, parts in zip(pools, groups)]
    return [f.result() for f in futures]


def sample_chunks(plan: Plan, x: torch.Tensor):
    """(start, x[start:stop].T) over chunks of samples (one chunk off the CPU)."""
    step = chunk_size(plan) if x.device.type == "cpu" else x.shape[0]
    for start in range(0, x.shape[0], step):
        yield start, x[start:start + step].T.contiguous()
