"""The training loop shared by every fit: Adam, a time-aware schedule, progress, evaluation,
checkpoints and resume."""
from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import torch
from torch import nn
from tqdm import tqdm

from inr.backends import Backend

from . import distributed
from .rundir import RunDir

SCHEDULES = ("exp", "cosine", "constant")


@dataclass
class TrainConfig:
    """Optimisation settings. None means "the task's default" (each signal and field has its own)."""

    steps: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    schedule: str | None = None
    lr_final_ratio: float = 0.1
    beta1: float = 0.9
    beta2: float | None = None
    eps: float | None = None
    seed: int = 0
    max_seconds: float | None = None
    eval_every: int = 500
    log_every: int = 25
    checkpoint_every: int = 500
    device: str = "auto"
    backend: str = "auto"
    mlp_precision: str = "fp32"  # fused CUDA MLP operands: fp32, or fp16/bf16 tensor cores (fp32 accumulation)

    def with_defaults(self, defaults: dict) -> "TrainConfig":
        """A copy with each setting that is None taken from `defaults` (a task's own defaults)."""
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    @property
    def hot_ops(self) -> Backend:
        """The backend value of `backend` and `mlp_precision` (plain strings here, so config.json
        stays plain JSON); ValueError for an unknown name."""
        return Backend(self.backend, self.mlp_precision)


class Task(Protocol):
    """What the loop needs from a signal: a model, a loss per step and an evaluation."""

    model: nn.Module

    def param_groups(self, lr: float) -> list[dict]: ...
    def loss(self, step: int) -> tuple[torch.Tensor, dict]: ...
    def evaluate(self) -> dict: ...
    def state(self) -> dict: ...
    def load_state(self, state: dict) -> None: ...
    # Optional: `progress_postfix() -> {label: text}`, the task's own figures for the progress bar
    # (e.g. a generator's per-scene PSNR), read at each logged step.


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def lr_factor(cfg: TrainConfig, progress: float) -> float:
    """Multiplier on the base lr at `progress` in [0, 1] of the run."""
    p = min(max(progress, 0.0), 1.0)
    if cfg.schedule == "exp":
        return cfg.lr_final_ratio ** p
    if cfg.schedule == "cosine":
        return cfg.lr_final_ratio + (1 - cfg.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * p))
    return 1.0


def make_optimizer(task: Task, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam over the task's parameter groups (each remembers its `base_lr` for the schedule):
    the fused C++ CPU step where the backend allows it, torch.optim.Adam otherwise (inr.train.optim)."""
    from .optim import make_adam

    groups = task.param_groups(cfg.lr)
    for g in groups:
        g["base_lr"] = g["lr"]
    return make_adam(groups, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, backend=cfg.hot_ops, model=task.model)


def train(task: Task, run: RunDir, cfg: TrainConfig, resume: bool = False, quiet: bool = False,
          on_log: Callable[[dict], None] | None = None, running: threading.Event | None = None) -> dict:
    """Optimise `task` until cfg.steps or cfg.max_seconds of training; return the final evaluation.

    The clock counts optimisation steps only (evaluation and checkpoint writes are excluded), so
    `max_seconds` is training time. A run resumes from its newest checkpoint with the same
    optimizer state, step, clock and random-number state.

    `on_log` is called with each row written to metrics.jsonl (a live viewer's hook); while
    `running` is cleared the loop waits before its next step (pause; the clock does not run).

    Under DDP (`inr.train.distributed`) every rank runs this loop; only rank 0 writes metrics and
    checkpoints and shows progress, and every rank resumes from the same checkpoint.

    The hot ops run on `cfg.hot_ops` for the whole loop (and only there).
    """
    backend = cfg.hot_ops
    with backend.active():
        return _train(task, run, cfg, backend, resume, quiet, on_log, running)


def _train(task: Task, run: RunDir, cfg: TrainConfig, backend: Backend, resume: bool, quiet: bool,
           on_log: Callable[[dict], None] | None, running: threading.Event | None) -> dict:
    main = distributed.is_main()
    backend.prepare(next(task.model.parameters()).device)
    opt = make_optimizer(task, cfg)
    step, elapsed = 0, 0.0
    if resume:
        state = run.load_checkpoint()
        if state is not None:
            task.model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            task.load_state(state["task"])
            torch.set_rng_state(state["rng"])
            step, elapsed = int(state["step"]), float(state["elapsed"])
            if main:
                run.truncate_metrics(step)

    def checkpoint():
        if not main:
            return
        run.save_checkpoint(step, {"model": task.model.state_dict(), "optimizer": opt.state_dict(),
                                   "task": task.state(), "rng": torch.get_rng_state(),
                                   "step": step, "elapsed": elapsed})

    def progress():
        p = step / cfg.steps
        if cfg.max_seconds:
            p = max(p, elapsed / cfg.max_seconds)
        return p

    bar = tqdm(total=cfg.steps, initial=step, disable=quiet or not main or None, file=sys.stderr, dynamic_ncols=True)
    shown: dict[str, str] = {}
    task_postfix = getattr(task, "progress_postfix", None)
    task.model.train()
    try:
        def log(row: dict) -> None:
            if not main:
                return
            run.append_metrics(row)
            if on_log is not None:
                on_log(row)

        while step < cfg.steps and not (cfg.max_seconds and elapsed >= cfg.max_seconds):
            if running is not None:
                running.wait()
            t0 = time.perf_counter()
            factor = lr_factor(cfg, progress())
            for g in opt.param_groups:
                g["lr"] = g["base_lr"] * factor
            opt.zero_grad(set_to_none=True)
            loss, logs = task.loss(step)
            loss.backward()
            opt.step()
            step += 1
            if step % cfg.log_every == 0 or step == 1:
                loss_value = float(loss.detach())  # syncs a GPU: only when logging
                elapsed += time.perf_counter() - t0
                row = {"step": step, "time": round(elapsed, 4), "lr": opt.param_groups[0]["lr"], "loss": loss_value,
                       **{k: float(v) for k, v in logs.items()}}
                log(row)
                shown.update({k: f"{v:.4g}" for k, v in row.items() if k in ("loss", "psnr")})
                if task_postfix is not None and main:
                    shown.update(task_postfix())
                bar.set_postfix(shown, refresh=False)
            else:
                elapsed += time.perf_counter() - t0
            bar.update(1)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                evaluation = _evaluate(task)
                log({"step": step, "time": round(elapsed, 4), "eval": evaluation})
                if "psnr" in evaluation:  # held-out PSNR beside the training batch's
                    shown["val_psnr"] = f"{evaluation['psnr']:.4g}"
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                checkpoint()
    except KeyboardInterrupt:
        checkpoint()
        bar.close()
        raise
    bar.close()
    final = _evaluate(task)
    final_row = {"step": step, "time": round(elapsed, 4), "eval": final, "final": True}
    if main:
        run.append_metrics(final_row)
    if on_log is not None:
        on_log(final_row)
    checkpoint()
    return {"step": step, "seconds": round(elapsed, 3), **final}


def _evaluate(task: Task) -> dict:
    task.model.eval()
    with torch.no_grad():
        out = task.evaluate()
    task.model.train()
    return out
