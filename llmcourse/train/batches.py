"""The batch contract: what a batch is, how the loss is read from a model's output, and the
stream of training batches whose position a checkpoint saves.

A batch is a tuple/list ``(inputs, targets)`` (→ ``model(inputs, targets)``) or a dict of
tensors (→ ``model(**batch)``); the model returns ``(logits, loss)``, an object with ``.loss`` or
a dict with ``"loss"``. Training data is a callable ``get_batch(generator)`` or an iterable of
batches (see :mod:`llmcourse.train`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
import torch.nn as nn


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def batch_tokens(batch: Any) -> int:
    """Tokens in a batch: ``inputs.numel()`` of a tuple batch or ``input_ids.numel()`` of a dict."""
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0].numel()
    if isinstance(batch, dict) and isinstance(batch.get("input_ids"), torch.Tensor):
        return batch["input_ids"].numel()
    if isinstance(batch, torch.Tensor):
        return batch.numel()
    raise TypeError("a batch must be a tuple (inputs, targets) or a dict with 'input_ids', "
                    f"got {type(batch).__name__}")


def forward_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """Run ``model`` on ``batch`` and return the scalar loss (see the module docstring)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(batch, dict):
        out = model(**batch)
    elif isinstance(batch, (list, tuple)):
        out = model(*batch)
    else:
        raise TypeError(f"a batch must be a tuple/list or a dict, got {type(batch).__name__}")
    if isinstance(out, dict) and "loss" in out:
        loss = out["loss"]
    elif hasattr(out, "loss"):
        loss = out.loss
    elif isinstance(out, (tuple, list)) and len(out) >= 2:
        loss = out[1]
    else:
        raise TypeError("the model must return (logits, loss), an object with .loss or a dict "
                        f"with 'loss'; got {type(out).__name__}")
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise TypeError("the model's loss must be a scalar tensor (did you pass targets/labels?), "
                        f"got {type(loss).__name__}")
    return loss


class _BatchStream:
    """Draws batches from a callable or an iterable and remembers where it is."""

    def __init__(self, data: Callable | Iterable, seed: int) -> None:
        if hasattr(data, "__iter__"):
            self.kind = "iterable"
        elif callable(data):
            self.kind = "callable"
        else:
            raise TypeError("train_data must be a callable get_batch(generator) or an iterable of "
                            f"batches, got {type(data).__name__}")
        self.data = data
        self.generator = torch.Generator().manual_seed(seed)
        self.consumed = 0  # batches drawn so far (iterables)
        self._it = None

    def next(self) -> Any:
        if self.kind == "callable":
            return self.data(self.generator)
        if self._it is None:
            self._it = iter(self.data)
        try:
            batch = next(self._it)
        except StopIteration:
            self._it = iter(self.data)
            try:
                batch = next(self._it)
            except StopIteration:
                raise ValueError("the training data iterable is empty") from None
        self.consumed += 1
        return batch

    def state_dict(self) -> dict:
        return {"kind": self.kind, "generator": self.generator.get_state(),
                "consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        if state["kind"] != self.kind:
            raise ValueError(f"checkpoint data was a {state['kind']}, this run's is a {self.kind}")
        self.generator.set_state(state["generator"])
        if self.kind == "iterable":
            self._it, self.consumed = None, 0
            for _ in range(int(state["consumed"])):  # replay: skip what was already consumed
                self.next()


def _eval_batches(data: Callable | Iterable, iters: int, seed: int) -> Iterator[Any]:
    """``iters`` evaluation batches: drawn with a fresh generator seeded with ``seed`` from a
    callable (the same batches every time), or the first ``iters`` of an iterable."""
    if callable(data) and not hasattr(data, "__iter__"):
        gen = torch.Generator().manual_seed(seed)
        return (data(gen) for _ in range(iters))
    return (b for _, b in zip(range(iters), data))
