"""What a run is told and how it learns: :class:`TrainConfig` (checked when built), the
learning-rate schedule :func:`lr_at`, the AdamW it sets up, and :class:`NonFiniteLossError`,
how a run stops on a NaN/inf loss or gradient."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STRATEGIES = ("ddp", "fsdp")


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss or gradient; the run was stopped before saving it."""


def _stopped(what: str, step: int, last_checkpoint: str | None,
             advice: bool = False) -> NonFiniteLossError:
    """The error that stops a run at optimiser step ``step`` (0-based) before it updates the
    weights: ``what`` went wrong, and where the last good checkpoint is."""
    tip = (" (lower the learning rate, check the data, or use bf16 instead of fp16)"
           if advice else "")
    last = last_checkpoint or "none saved yet"
    return NonFiniteLossError(f"{what} at step {step + 1}: training stopped before updating the "
                              f"weights. Last good checkpoint: {last}{tip}.")


@dataclass
class TrainConfig:
    """Everything a run needs besides the model and the data.

    Attributes:
        max_steps: optimiser steps of the whole run (the schedule is laid out over them).
        lr: peak learning rate; ``min_lr`` is where cosine/linear decay ends (default ``lr/10``).
        warmup_steps: linear warm-up from ``lr/warmup_steps`` to ``lr``.
        schedule: ``cosine``, ``linear`` or ``constant`` (after warm-up).
        weight_decay: AdamW decay for matrices (≥2-D parameters); biases, norms get none.
        betas, eps: AdamW's.
        grad_accum: micro-batches per optimiser step.
        grad_clip: max global gradient norm (``None`` or 0: no clipping).
        precision: ``auto`` (bf16 on GPUs that have it, fp16 + GradScaler on the others, fp32 on
            CPU — see :func:`resolve_precision`), ``fp32``, ``bf16`` or ``fp16``.
        compile: ``torch.compile`` the model.
        eval_every: evaluate every this many steps and at the end (0: never).
        eval_iters: batches per evaluation; ``eval_seed`` seeds them (callable data).
        log_every: write a metrics record every this many steps (and the last one).
        ckpt_every: checkpoint every this many steps and at the end (0: only when asked).
        keep_last: how many checkpoints to keep.
        out_dir: where ``metrics.jsonl`` and ``checkpoints/`` go (``None``: nowhere).
        seed: seeds the trainer's data generator (callable data). Seed the model yourself
            (:func:`llmcourse.seed_everything`) before building it.
        progress: show a ``tqdm.auto`` progress bar (rank 0 only).
        device: ``"cpu"``, ``"cuda"`` … (``None``: :func:`llmcourse.get_device`; the local GPU
            under torchrun).
        strategy: how to spread a distributed run: ``ddp`` (a full copy of the model per
            process) or ``fsdp`` (PyTorch FSDP2 ``fully_shard``: parameters, gradients and
            optimizer state sharded across processes, for models whose copy does not fit on one
            device). Ignored in a single process.
    """

    max_steps: int = 100
    lr: float = 3e-4
    min_lr: float | None = None
    warmup_steps: int = 0
    schedule: str = "cosine"
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_accum: int = 1
    grad_clip: float | None = 1.0
    precision: str = "auto"
    compile: bool = False
    eval_every: int = 0  # 0: never
    eval_iters: int = 10
    eval_seed: int = 1234
    log_every: int = 10
    ckpt_every: int = 0  # 0: only when asked
    keep_last: int = 2
    out_dir: str | None = None  # None: nothing written
    seed: int = 0
    progress: bool = True
    device: str | None = None  # None: llmcourse.get_device()
    strategy: str = "ddp"

    def __post_init__(self) -> None:
        def pos_int(name: str, allow_zero: bool = False) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"TrainConfig.{name} must be an int, got {type(v).__name__}")
            if v < 0 or (v == 0 and not allow_zero):
                bound = ">= 0" if allow_zero else "> 0"
                raise ValueError(f"TrainConfig.{name} must be {bound}, got {v}")

        for name in ("max_steps", "grad_accum", "eval_iters", "log_every", "keep_last"):
            pos_int(name)
        for name in ("warmup_steps", "eval_every", "ckpt_every", "seed", "eval_seed"):
            pos_int(name, allow_zero=True)
        for name in ("lr", "weight_decay", "eps"):
            v = getattr(self, name)
            if (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                    or v < 0):
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {v!r}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.min_lr is not None and not (0 <= self.min_lr <= self.lr):
            raise ValueError(f"TrainConfig.min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        if self.grad_clip is not None and (not isinstance(self.grad_clip, (int, float))
                                           or self.grad_clip < 0):
            raise ValueError(f"TrainConfig.grad_clip must be None or >= 0, got {self.grad_clip!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule must be one of {', '.join(SCHEDULES)}, "
                             f"got {self.schedule!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"TrainConfig.strategy must be one of {', '.join(STRATEGIES)}, "
                f"got {self.strategy!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"TrainConfig.precision must be one of {', '.join(PRECISIONS)}, "
                f"got {self.precision!r}")
        if len(tuple(self.betas)) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = tuple(float(b) for b in self.betas)
        if self.out_dir is not None and not isinstance(self.out_dir, (str, os.PathLike)):
            raise TypeError("TrainConfig.out_dir must be a path or None, "
                            f"got {type(self.out_dir).__name__}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out_dir"] = None if self.out_dir is None else str(self.out_dir)
        return d


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate of optimiser step ``step`` (0-based): warm-up, then the schedule.

    Warm-up rises linearly to ``lr`` over ``warmup_steps``; then ``cosine`` or ``linear`` decay
    to ``min_lr`` at ``max_steps`` (``constant`` stays at ``lr``).
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    min_lr = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.schedule == "linear":
        return cfg.lr + (min_lr - cfg.lr) * progress
    return min_lr + 0.5 * (cfg.lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def config_fields() -> list[str]:
    """Names of :class:`TrainConfig`'s fields (for CLIs and docs)."""
    return [f.name for f in fields(TrainConfig)]


def _make_optimizer(model: nn.Module, cfg: TrainConfig,
                    device: torch.device) -> torch.optim.Optimizer:
    """AdamW with weight decay on matrices (≥2-D parameters) only; fused on CUDA."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    kwargs = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(groups, lr=lr_at(0, cfg), betas=cfg.betas, eps=cfg.eps, **kwargs)
