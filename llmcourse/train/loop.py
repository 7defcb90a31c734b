"""The training loop: :class:`Trainer` sets a run up, then :meth:`~Trainer.train_step` (one
optimiser step of ``grad_accum`` micro-batches), :meth:`~Trainer.evaluate` and :meth:`~Trainer.fit`
(steps, logging, evaluation and checkpoints on schedule), nanoGPT's loop as a class.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from llmcourse.train.batches import (
    _BatchStream,
    _eval_batches,
    _to_device,
    batch_tokens,
    forward_loss,
)
from llmcourse.train.checkpoint import TrainState, _load_trainer, _resume_path, _save_trainer
from llmcourse.train.config import TrainConfig, _make_optimizer, _stopped, lr_at
from llmcourse.train.distributed import (
    _clip_grad_norm,
    _device_and_rank,
    _full_model,
    _grad_sync,
    _mean_over_ranks,
    _place,
    _slice_rows,
    _unwrap,
    _wrap,
)
from llmcourse.train.metrics import _append_record, _drop_metrics_after, _progress_bar, _Throughput
from llmcourse.train.precision import _allow_tf32, autocast_context, resolve_precision


class Trainer:
    """Train ``model`` on ``train_data`` with a :class:`TrainConfig` (see :mod:`llmcourse.train`).

    Args:
        model: an ``nn.Module`` returning ``(logits, loss)``, ``.loss`` or ``{"loss": …}``.
        config: the :class:`TrainConfig`.
        train_data: a callable ``get_batch(generator)`` or an iterable of batches.
        val_data: the same kinds, for :meth:`evaluate` (optional).
        resume: continue from the latest checkpoint in ``config.out_dir`` if there is one
            (``True``), or from a given checkpoint directory (a path).
        callbacks: functions called with each metrics record (e.g. a live dashboard).

    Attributes: ``model`` (wrapped in DDP when distributed), ``optimizer``, ``scaler``,
    ``state`` (:class:`TrainState`), ``device``, ``precision``, ``dist`` (:class:`DistInfo`).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, train_data: Callable | Iterable,
                 val_data: Callable | Iterable | None = None, *,
                 resume: bool | str | os.PathLike = False,
                 callbacks: Iterable[Callable[[dict], Any]] = ()) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        if train_data is None:
            raise TypeError("train_data must be a callable get_batch(generator) or an iterable")
        self.config = cfg = config
        self.device, self.dist = _device_and_rank(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        _allow_tf32(self.device)
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not callable(cb):
                raise TypeError(f"callbacks must be callables, got {type(cb).__name__}")
        self.fsdp = self.dist.enabled and cfg.strategy == "fsdp"
        self._replica = _place(model, self.device, self.fsdp)  # to the device; FSDP: sharded
        self.raw_model = model
        self.optimizer = _make_optimizer(model, cfg, self.device)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        self.model = _wrap(model, self.device, self.dist, self.fsdp, cfg.compile)  # DDP, compile
        self.train_stream = _BatchStream(train_data, cfg.seed)
        self.val_data = val_data
        self.state = TrainState()
        self.out_dir = Path(cfg.out_dir) if cfg.out_dir is not None else None
        self._meter = _Throughput(self.device, self.precision, self.dist.world_size)
        if resume:
            path = _resume_path(resume, self.out_dir, self.dist)
            if path is not None:
                self.load_checkpoint(path)
            if self.out_dir is not None and self.dist.is_main:
                _drop_metrics_after(self.out_dir, self.state.step)

    def _local(self, batch: Any) -> Any:
        """This rank's rows of a global batch, on the device."""
        if self.dist.enabled:
            batch = _slice_rows(batch, self.dist.rank, self.dist.world_size)
        return _to_device(batch, self.device)

    def train_step(self) -> dict:
        """One optimiser step (``grad_accum`` micro-batches): loss, lr, grad norm and tokens."""
        cfg, step = self.config, self.state.step
        lr = lr_at(step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        total, tokens = torch.zeros((), device=self.device), 0
        for micro in range(cfg.grad_accum):
            batch = self._local(self.train_stream.next())
            tokens += batch_tokens(batch)
            last_micro = micro == cfg.grad_accum - 1  # DDP/FSDP: sync gradients on this one only
            with _grad_sync(self.model, self.raw_model, self.dist, self.fsdp, last_micro):
                with autocast_context(self.precision, self.device):
                    loss = forward_loss(self.model, batch)
                total += loss.detach().float()
                if cfg.grad_accum > 1:
                    loss = loss / cfg.grad_accum
                self.scaler.scale(loss).backward()
        loss_f = float(_mean_over_ranks(total / cfg.grad_accum, self.dist))  # the NaN guard's sync
        if not math.isfinite(loss_f) or not math.isfinite(lr):
            self.optimizer.zero_grad(set_to_none=True)
            what = f"loss is {loss_f}" if not math.isfinite(loss_f) else f"learning rate is {lr}"
            raise _stopped(what, step, self.state.last_checkpoint, advice=True)
        self.scaler.unscale_(self.optimizer)
        grad_norm = _clip_grad_norm(self.model, cfg.grad_clip)
        if not math.isfinite(grad_norm) and self.precision != "fp16":  # fp16: the scaler skips it
            self.optimizer.zero_grad(set_to_none=True)
            raise _stopped(f"gradient norm is {grad_norm}", step, self.state.last_checkpoint)
        self.scaler.step(self.optimizer)  # fp16: skips the step if the gradients overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        tokens *= self.dist.world_size  # every rank saw its share of the same global batch
        self.state.tokens += tokens
        return {"loss": loss_f, "lr": lr, "grad_norm": grad_norm, "tokens": tokens}

    @torch.no_grad()
    def evaluate(self, data: Callable | Iterable | None = None, iters: int | None = None) -> float:
        """Mean loss over ``iters`` batches of ``data`` (default: ``val_data``, ``eval_iters``)."""
        data = self.val_data if data is None else data
        if data is None:
            raise ValueError("evaluate() needs data: pass val_data to Trainer or data= here")
        iters = self.config.eval_iters if iters is None else iters
        if isinstance(iters, bool) or not isinstance(iters, int) or iters <= 0:
            raise ValueError(f"iters must be a positive int, got {iters!r}")
        was_training = self.model.training
        self.model.eval()
        losses = []
        for batch in _eval_batches(data, iters, self.config.eval_seed):
            batch = self._local(batch)
            with autocast_context(self.precision, self.device):
                losses.append(forward_loss(_unwrap(self.model), batch).float())
        if not losses:
            raise ValueError("the evaluation data gave no batches")
        mean = _mean_over_ranks(torch.stack(losses).mean(), self.dist)
        self.model.train(was_training)
        return float(mean)

    def fit(self, until: int | None = None) -> list[dict]:
        """Train until step ``until`` (default ``max_steps``; smaller values stop early — the
        schedule still spans ``max_steps``, as if the run were interrupted there).

        Returns this call's metrics records. Raises :class:`NonFiniteLossError` on NaN/inf.
        """
        cfg = self.config
        until = cfg.max_steps if until is None else until
        if isinstance(until, bool) or not isinstance(until, int) or not 0 <= until <= cfg.max_steps:
            raise ValueError(f"until must be an int in [0, max_steps={cfg.max_steps}], "
                             f"got {until!r}")
        bar = _progress_bar(until, self.state.step) if cfg.progress and self.dist.is_main else None
        records: list[dict] = []
        meter = self._meter
        meter.start()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            while self.state.step < until:
                out = self.train_step()
                step = self.state.step
                meter.tokens += out["tokens"]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{out['loss']:.3f}", lr=f"{out['lr']:.2e}", refresh=False)
                record = None
                if step % cfg.log_every == 0 or step == until:
                    record = {"kind": "train", "step": step, "loss": out["loss"], "lr": out["lr"],
                              "grad_norm": out["grad_norm"], "tokens": self.state.tokens,
                              **meter.close(self.model)}
                if cfg.eval_every and self.val_data is not None and (step % cfg.eval_every == 0 or
                                                                     step == cfg.max_steps):
                    with meter.paused():  # evaluating is not training time
                        val = self.evaluate()
                        best = self.state.best_val
                        self.state.best_val = val if best is None else min(best, val)
                        self._emit({"kind": "eval", "step": step, "val_loss": val}, records)
                if record is not None:
                    self._emit(record, records)
                if cfg.ckpt_every and (step % cfg.ckpt_every == 0 or step == cfg.max_steps):
                    with meter.paused():  # nor is saving
                        self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        return records

    def _emit(self, record: dict, records: list[dict]) -> None:
        records.append(record)
        self.state.history.append(record)
        if not self.dist.is_main:
            return
        if self.out_dir is not None:
            _append_record(self.out_dir, record)
        for cb in self.callbacks:
            cb(record)

    def full_model(self) -> nn.Module | None:
        """The whole trained model, unwrapped (no DDP/compile wrapper), for export or sampling.

        Under FSDP this is a collective call (every rank must make it): rank 0 gets a CPU copy
        holding the gathered weights, the other ranks ``None``.
        """
        return _full_model(self.model, self.raw_model, self._replica, self.dist)

    def save_checkpoint(self) -> Path | None:
        """Write ``out_dir/checkpoints/step_NNNNNN/`` atomically; keep the last ``keep_last``
        (see :mod:`llmcourse.train.checkpoint`). Rank 0 writes; the others return ``None``."""
        return _save_trainer(self)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore weights, optimizer, scaler, RNG and data position from a checkpoint dir."""
        _load_trainer(self, path)
