"""The training loop, nanoGPT's as a class: :class:`Trainer` (set up by :mod:`.setup`), its
``train_step`` (one optimiser step of token-weighted micro-batches), ``evaluate`` and ``fit``
(the steps, with logging, evaluation and checkpoints on schedule)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from llmcourse._checks import check_int
from llmcourse.train.batches import _eval_batches, batch_tokens, forward_loss
from llmcourse.train.checkpoint import _load_trainer, _save_trainer, _start
from llmcourse.train.config import TrainConfig, _nonfinite, _stopped, lr_at
from llmcourse.train.distributed import (
    _clip_grad_norm,
    _full_model,
    _grad_sync,
    _local_rows,
    _mean_over_ranks,
    _unwrap,
)
from llmcourse.train.metrics import _drop_metrics_after, _emit, _progress, _progress_bar
from llmcourse.train.precision import autocast_context
from llmcourse.train.setup import _set_up
from llmcourse.train.tokens import _token_weights


class Trainer:
    """Train ``model`` on ``train_data`` with a :class:`TrainConfig` (see :mod:`llmcourse.train`).

    Args: ``model``, an ``nn.Module`` returning ``(logits, loss)``, ``.loss`` or ``{"loss": …}``;
    ``config``; ``train_data`` and (optional, for :meth:`evaluate`) ``val_data``, each a callable
    ``get_batch(generator)`` or an iterable of batches; ``resume``: ``True`` continues from the
    latest checkpoint in ``config.out_dir`` if there is one, a checkpoint directory from that
    one; ``callbacks``: functions called with each metrics record (e.g. a dashboard).

    Attributes: ``model`` (wrapped in DDP when distributed), ``optimizer``, ``scaler``,
    ``state`` (:class:`TrainState`), ``device``, ``precision``, ``dist`` (:class:`DistInfo`).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, train_data: Callable | Iterable,
                 val_data: Callable | Iterable | None = None, *,
                 resume: bool | str | os.PathLike = False,
                 callbacks: Iterable[Callable[[dict], Any]] = ()) -> None:
        _set_up(self, model, config, train_data, val_data, callbacks)  # device, optimizer, DDP…
        _start(self, resume)  # clean up after killed saves; load the checkpoint to continue
        if resume and self.out_dir is not None and self.dist.is_main:
            _drop_metrics_after(self.out_dir, self.state.step)

    def train_step(self) -> dict:
        """One optimiser step of ``grad_accum`` micro-batches, each loss weighted by its share
        of the step's target tokens (:mod:`llmcourse.train.tokens`): loss, lr, grad norm, tokens."""
        cfg, step = self.config, self.state.step
        lr = lr_at(step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        batches = [_local_rows(self.train_stream.next(), self.dist, self.device)
                   for _ in range(cfg.grad_accum)]  # this rank's rows, on the device
        weights = _token_weights(batches, self._count_targets, self.dist)  # (k,); 1 when equal
        total = torch.zeros((), device=self.device)
        for micro, batch in enumerate(batches):
            last_micro = micro == cfg.grad_accum - 1  # DDP/FSDP: sync gradients on this one only
            with _grad_sync(self.model, self.raw_model, self.dist, self.fsdp, last_micro):
                with autocast_context(self.precision, self.device):
                    loss = forward_loss(self.model, batch)
                loss = loss if weights is None else loss * weights[micro]
                total += loss.detach().float()
                self.scaler.scale(loss / cfg.grad_accum if cfg.grad_accum > 1 else loss).backward()
            self._meter.count(batch)
        mean = _mean_over_ranks(total / cfg.grad_accum, self.dist)
        self.scaler.unscale_(self.optimizer)
        norm = _clip_grad_norm(self.model, cfg.grad_clip)
        loss_f, grad_norm = torch.stack([mean, norm]).tolist()  # the step's one host sync
        bad = _nonfinite(loss_f, lr, grad_norm, fp16=self.precision == "fp16")
        if bad is not None:  # stop before the weights change
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.update()  # fp16: close this step's unscale_
            raise _stopped(bad[0], step, self.state.last_checkpoint, advice=bad[1])
        self.scaler.step(self.optimizer)  # fp16: skips the step if the gradients overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        tokens = sum(batch_tokens(b) for b in batches) * self.dist.world_size  # the global batch
        self.state.tokens += tokens
        return {"loss": loss_f, "lr": lr, "grad_norm": grad_norm, "tokens": tokens}

    @torch.no_grad()
    def evaluate(self, data: Callable | Iterable | None = None, iters: int | None = None) -> float:
        """Mean loss over ``iters`` batches of ``data`` (default: ``val_data``, ``eval_iters``)."""
        data = self.val_data if data is None else data
        if data is None:
            raise ValueError("evaluate() needs data: pass val_data to Trainer or data= here")
        iters = check_int("iters", self.config.eval_iters if iters is None else iters, min=1)
        was_training = self.model.training
        self.model.eval()
        losses = []
        for batch in _eval_batches(data, iters, self.config.eval_seed):
            batch = _local_rows(batch, self.dist, self.device)
            with autocast_context(self.precision, self.device):
                losses.append(forward_loss(_unwrap(self.model), batch).float())
        if not losses:
            raise ValueError("the evaluation data gave no batches")
        mean = _mean_over_ranks(torch.stack(losses).mean(), self.dist)
        self.model.train(was_training)
        return float(mean)

    def fit(self, until: int | None = None) -> list[dict]:
        """Train until step ``until`` (default ``max_steps``; smaller values stop early, the
        schedule still spanning ``max_steps``, as if the run were interrupted there). Returns this
        call's metrics records; raises :class:`NonFiniteLossError` on NaN/inf."""
        cfg = self.config
        until = check_int("until", cfg.max_steps if until is None else until, min=0,
                          max=cfg.max_steps)
        bar = _progress_bar(until, self.state.step) if cfg.progress and self.dist.is_main else None
        records: list[dict] = []
        meter = self._meter
        meter.start(reset_memory=True)
        try:
            while self.state.step < until:
                out = self.train_step()
                step = self.state.step
                _progress(bar, out)
                record = None
                if step % cfg.log_every == 0 or step == until:
                    record = {"kind": "train", "step": step, "loss": out["loss"], "lr": out["lr"],
                              "grad_norm": out["grad_norm"], "tokens": self.state.tokens,
                              **meter.close()}
                if cfg.eval_every and self.val_data is not None and (step % cfg.eval_every == 0 or
                                                                     step == cfg.max_steps):
                    with meter.paused():  # evaluating is not training time
                        val, best = self.evaluate(), self.state.best_val
                        self.state.best_val = val if best is None else min(best, val)
                        _emit(self, {"kind": "eval", "step": step, "val_loss": val}, records)
                if record is not None:
                    _emit(self, record, records)
                if cfg.ckpt_every and (step % cfg.ckpt_every == 0 or step == cfg.max_steps):
                    with meter.paused():  # nor is saving
                        self.save_checkpoint()
        finally:
            if bar is not None:
                bar.close()
        return records

    def full_model(self) -> nn.Module | None:
        """The whole model, unwrapped (no DDP/compile wrapper), for export or sampling. Under
        FSDP a collective: rank 0 gets a CPU copy of the gathered weights, the others ``None``."""
        return _full_model(self.model, self.raw_model, self._replica, self.dist)

    def save_checkpoint(self) -> Path | None:
        """Write ``out_dir/checkpoints/step_NNNNNN/`` atomically; keep the last ``keep_last``
        (see :mod:`llmcourse.train.checkpoint`). Rank 0 writes; the others return ``None``."""
        return _save_trainer(self)

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore weights, optimizer, scaler, RNG and data position from a checkpoint dir."""
        _load_trainer(self, path)
