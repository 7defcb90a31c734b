"""Setting a run up: what :class:`~llmcourse.train.Trainer` does before its first step.

In order: check the arguments; pick the device and join the process group
(:mod:`~llmcourse.train.distributed`); resolve the precision and, on CUDA, let fp32 matmuls use
TF32 (:mod:`~llmcourse.train.precision`); put the model on the device (under FSDP: shard it);
build the optimizer (:mod:`~llmcourse.train.optim`) and the fp16 GradScaler; wrap the model
(DDP, ``torch.compile``); then the data stream, the counters, the output directory, the
throughput meter (:mod:`~llmcourse.train.metrics`) and the target counter that weighs
micro-batches (:mod:`~llmcourse.train.tokens`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from llmcourse.train.batches import _BatchStream
from llmcourse.train.checkpoint import TrainState
from llmcourse.train.config import TrainConfig
from llmcourse.train.distributed import _device_and_rank, _place, _wrap
from llmcourse.train.metrics import _Throughput
from llmcourse.train.optim import _make_optimizer
from llmcourse.train.precision import _fast_fp32_matmuls, resolve_precision
from llmcourse.train.tokens import _target_counter

if TYPE_CHECKING:
    from llmcourse.train.loop import Trainer


def _set_up(trainer: Trainer, model: nn.Module, config: TrainConfig,
            train_data: Callable | Iterable, val_data: Callable | Iterable | None,
            callbacks: Iterable[Callable[[dict], Any]]) -> None:
    """:class:`~llmcourse.train.Trainer`'s ``__init__`` before resuming: set every attribute
    the loop uses (see the module docstring for the order)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if train_data is None:
        raise TypeError("train_data must be a callable get_batch(generator) or an iterable")
    trainer.config = cfg = config
    trainer.device, trainer.dist = _device_and_rank(cfg.device)
    trainer.precision = resolve_precision(cfg.precision, trainer.device)
    _fast_fp32_matmuls(trainer.device)
    trainer.callbacks = list(callbacks)
    for cb in trainer.callbacks:
        if not callable(cb):
            raise TypeError(f"callbacks must be callables, got {type(cb).__name__}")
    trainer.fsdp = trainer.dist.enabled and cfg.strategy == "fsdp"
    if trainer.fsdp and cfg.optimizer == "muon":
        raise ValueError("TrainConfig.optimizer='muon' does not work with strategy='fsdp' (Muon "
                         "orthogonalises whole matrices, FSDP shards them): use strategy='ddp' "
                         "or optimizer='adamw'")
    trainer._replica = _place(model, trainer.device, trainer.fsdp)  # FSDP: a CPU replica
    trainer.raw_model = model
    trainer.optimizer = _make_optimizer(model, cfg, trainer.device)
    trainer.scaler = torch.amp.GradScaler("cuda", enabled=trainer.precision == "fp16")
    trainer.model = _wrap(model, trainer.device, trainer.dist, trainer.fsdp, cfg.compile)
    trainer.train_stream = _BatchStream(train_data, cfg.seed)
    trainer.val_data = val_data
    trainer.state = TrainState()
    trainer.out_dir = Path(cfg.out_dir) if cfg.out_dir is not None else None
    trainer._meter = _Throughput(model, trainer.device, trainer.precision, trainer.dist,
                                 compiled=cfg.compile)
    trainer._count_targets = _target_counter(model)
