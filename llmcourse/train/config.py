"""What a run is told: :class:`TrainConfig` (checked when built), the learning-rate schedule
:func:`lr_at` (cosine, linear, constant or warmup-stable-decay), and :class:`NonFiniteLossError`,
how a run stops on a NaN/inf loss or gradient. The optimizer it names is built in
:mod:`llmcourse.train.optim`."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields

SCHEDULES = ("cosine", "linear", "constant", "wsd")
OPTIMIZERS = ("adamw", "muon")
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


def _nonfinite(loss: float, lr: float, grad_norm: float, fp16: bool) -> tuple[str, bool] | None:
    """What is NaN/inf in a step (loss first, then lr, then the gradient norm, which fp16's
    GradScaler handles by skipping the step) and whether to advise on it; ``None``: nothing."""
    if not math.isfinite(loss):
        return f"loss is {loss}", True
    if not math.isfinite(lr):
        return f"learning rate is {lr}", True
    if not math.isfinite(grad_norm) and not fp16:
        return f"gradient norm is {grad_norm}", False
    return None


@dataclass
class TrainConfig:
    """Everything a run needs besides the model and the data.

    Attributes:
        max_steps: optimiser steps of the whole run (the schedule is laid out over them).
        lr: peak learning rate; ``min_lr`` is where the decay ends (default ``lr/10``).
        warmup_steps: linear warm-up from ``lr/warmup_steps`` to ``lr``.
        schedule: ``cosine``, ``linear``, ``constant`` (after warm-up) or ``wsd``
            (warmup-stable-decay: ``lr`` until the last ``decay_frac`` of the steps, then a
            1-sqrt decay to ``min_lr``; see :func:`lr_at`).
        weight_decay: decoupled weight decay for matrices (≥2-D parameters); biases and norms
            get none.
        betas, eps: AdamW's.
        grad_accum: micro-batches per optimiser step. The step's gradient is that of the mean
            loss over all its target tokens (targets ≠ -100, on every rank): each micro-batch's
            mean loss is weighted by its share of the step's targets (see
            :mod:`llmcourse.train.tokens`), so micro-batches with different numbers of targets
            give the gradient of the big batch.
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
        optimizer: ``adamw``, or ``muon`` (``torch.optim.Muon`` for the hidden weight matrices,
            AdamW for embeddings, the output head, norms and biases; one ``lr`` for both, see
            :mod:`llmcourse.train.optim`). Muon is not available with ``strategy="fsdp"``.
        decay_frac: the share of ``max_steps`` the ``wsd`` schedule decays over, in (0, 1]
            (default 0.2; the other schedules ignore it).
        resume_allow: settings a resume may change from the checkpoint's (``("max_steps",)``,
            ``"model.dropout"``); any other difference is refused (see
            :mod:`llmcourse.train.checkpoint`).
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
    optimizer: str = "adamw"
    decay_frac: float = 0.2
    resume_allow: tuple[str, ...] = ()  # settings a resume may change (see checkpoint.py)

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
        clip = self.grad_clip
        if clip is not None and (isinstance(clip, bool) or not isinstance(clip, (int, float))):
            raise TypeError(f"TrainConfig.grad_clip must be a number or None, got {clip!r}")
        if clip is not None and not (math.isfinite(clip) and clip >= 0):  # NaN would clip to NaN
            raise ValueError(f"TrainConfig.grad_clip must be None or a finite number >= 0, "
                             f"got {clip!r}")
        for name in ("compile", "progress"):  # "false" is truthy: it would turn compile on
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"TrainConfig.{name} must be a bool, got "
                                f"{getattr(self, name)!r}")
        for name, choices in (("schedule", SCHEDULES), ("strategy", STRATEGIES),
                              ("precision", PRECISIONS), ("optimizer", OPTIMIZERS)):
            v = getattr(self, name)
            if not isinstance(v, str):
                raise TypeError(f"TrainConfig.{name} must be a str, one of {', '.join(choices)}; "
                                f"got {type(v).__name__}")
            if v not in choices:
                raise ValueError(f"TrainConfig.{name} must be one of {', '.join(choices)}, "
                                 f"got {v!r}")
        d = self.decay_frac
        if isinstance(d, bool) or not isinstance(d, (int, float)):
            raise TypeError(f"TrainConfig.decay_frac must be a number, got {type(d).__name__}")
        if not (math.isfinite(d) and 0 < d <= 1):
            raise ValueError(f"TrainConfig.decay_frac must be in (0, 1], got {d!r}")
        if len(tuple(self.betas)) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = tuple(float(b) for b in self.betas)
        if self.out_dir is not None and not isinstance(self.out_dir, (str, os.PathLike)):
            raise TypeError("TrainConfig.out_dir must be a path or None, "
                            f"got {type(self.out_dir).__name__}")
        allow = self.resume_allow
        if isinstance(allow, str) or not isinstance(allow, (tuple, list, set, frozenset)) or \
                not all(isinstance(n, str) for n in allow):
            raise TypeError("TrainConfig.resume_allow must be a tuple of setting names, "
                            f"got {allow!r}")
        unknown = [n for n in allow if n not in config_fields() and not n.startswith("model.")]
        if unknown:
            raise ValueError(f"TrainConfig.resume_allow names unknown settings {unknown}: use "
                             "TrainConfig field names or 'model.<config key>'")
        self.resume_allow = tuple(sorted(allow))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out_dir"] = None if self.out_dir is None else str(self.out_dir)
        return d


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate of optimiser step ``step`` (0-based): warm-up, then the schedule.

    Warm-up rises linearly to ``lr`` over ``warmup_steps``; then ``cosine`` or ``linear`` decay
    to ``min_lr`` at ``max_steps`` (``constant`` stays at ``lr``).

    ``wsd`` (warmup-stable-decay, Hu et al. 2024, "MiniCPM") stays at ``lr`` until ``D`` steps
    before the end (``D = decay_frac·max_steps`` rounded half up, at least 1; the decay starts
    after warm-up at the earliest), then decays as ``1 - sqrt(progress)`` to ``min_lr`` at
    ``max_steps``: the cool-down shape Hägele et al. 2024 ("Scaling Laws and Compute-Optimal
    Training Beyond Fixed Training Durations") found better than linear. A run can be extended
    from any checkpoint of its stable phase, which is what the shape is for.
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
    if cfg.schedule == "wsd":
        decay = max(1, int(cfg.decay_frac * cfg.max_steps + 0.5))  # rounded half up
        start = max(cfg.warmup_steps, cfg.max_steps - decay)
        if step < start:
            return cfg.lr
        progress = min(1.0, (step - start) / max(1, cfg.max_steps - start))
        return min_lr + (cfg.lr - min_lr) * (1.0 - math.sqrt(progress))
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.schedule == "linear":
        return cfg.lr + (min_lr - cfg.lr) * progress
    return min_lr + 0.5 * (cfg.lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def config_fields() -> list[str]:
    """Names of :class:`TrainConfig`'s fields (for CLIs and docs)."""
    return [f.name for f in fields(TrainConfig)]
