"""What a step's tokens count for: its *target* tokens weigh the gradient, its *input* tokens
the throughput.

**Token-weighted gradient accumulation.** A model's loss is a mean over the micro-batch's target
tokens (targets ≠ -100). With micro-batch ``i`` of ``k`` holding ``n_i`` of the step's ``N``
targets (summed over every micro-batch of every rank), the step's gradient must be that of the
mean over all ``N``: ``sum_i (n_i/N)·∇loss_i``. Dividing each loss by ``k`` instead weighs
micro-batches equally, so a token in a short micro-batch would count more. The trainer scales
micro-batch ``i``'s loss by ``w_i = k·W·n_i/N`` (``W`` ranks, whose gradients DDP/FSDP average)
before its usual division by ``k``: ``w_i`` is exactly 1 when every micro-batch holds the same
number of targets (packed blocks), so such runs are bit-identical to plain division by ``k``.
The counts stay on the device (no host synchronisation); under DDP one all-reduce of their sum
per step.

Which tokens are targets: the ``targets`` of a tuple batch ``(inputs, targets, ...)``, the
``labels`` of a dict batch; for a Hugging Face causal LM, which shifts the labels by one
inside (``GPT2LMHeadModel``, ``...ForCausalLM``: its ``loss_type`` is ``ForCausalLM`` or unset),
``labels[..., 1:]``. A batch without targets counts its input tokens. The loss
must be a mean over those (as ``F.cross_entropy(..., ignore_index=-100)``; a classifier's mean
over rows counts its ``(B,)`` labels).

**Throughput.** Tokens/s and MFU count the *processed* input tokens: all of ``inputs`` /
``input_ids`` except padding, i.e. positions where a dict batch's ``attention_mask`` is 0.
Positions with target -100 (a prompt in fine-tuning) are computed and so count.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn

from llmcourse.train.batches import batch_tokens
from llmcourse.train.distributed import DistInfo, _unwrap

_IGNORE = -100


def _inputs(batch: Any) -> torch.Tensor | None:
    """The input ids of a batch (``inputs`` of a tuple, ``input_ids`` of a dict)."""
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    if isinstance(batch, dict) and isinstance(batch.get("input_ids"), torch.Tensor):
        return batch["input_ids"]
    return None


def _shifts_labels(model: nn.Module) -> bool:
    """Whether ``model`` is a Hugging Face causal LM (also inside a peft wrapper), which
    predicts ``labels[..., 1:]`` from ``input_ids[..., :-1]``."""
    inner = _unwrap(model)
    if "transformers" in sys.modules:  # an HF model has imported it already
        from transformers import PreTrainedModel

        base = getattr(getattr(inner, "base_model", None), "model", None)  # peft
        inner = base if isinstance(base, PreTrainedModel) else inner
        if isinstance(inner, PreTrainedModel):
            return getattr(inner, "loss_type", None) in (None, "ForCausalLM")  # HF: None → causal
    return type(inner).__name__.endswith("ForCausalLM")


def _target_counter(model: nn.Module) -> Callable[[Any], torch.Tensor]:
    """A function ``batch → number of target tokens`` (a 0-dim int64 tensor on the batch's
    device) for ``model``'s batches (see the module docstring)."""
    shifted = _shifts_labels(model)

    def count(batch: Any) -> torch.Tensor:
        targets = None
        if isinstance(batch, (list, tuple)) and len(batch) >= 2:
            targets = batch[1] if isinstance(batch[1], torch.Tensor) else None
        elif isinstance(batch, dict) and isinstance(batch.get("labels"), torch.Tensor):
            targets = batch["labels"]
            if shifted and targets.dim() >= 1:
                targets = targets[..., 1:]
        if targets is None:
            inputs = _inputs(batch)
            device = inputs.device if inputs is not None else None
            return torch.tensor(batch_tokens(batch), dtype=torch.int64, device=device)
        return (targets != _IGNORE).sum()

    return count


def _token_weights(batches: list[Any], count: Callable[[Any], torch.Tensor],
                   dist: DistInfo) -> torch.Tensor | None:
    """``w_i = k·W·n_i / N`` for this rank's ``k`` micro-batches, shape ``(k,)`` (``None`` with
    one micro-batch in one process, where ``w = 1``). ``N`` is summed over the ranks."""
    k = len(batches)
    if k == 1 and not dist.enabled:
        return None
    counts = torch.stack([count(b).to(torch.int64) for b in batches])  # (k,) exact integers
    total = counts.sum()
    if dist.enabled:
        import torch.distributed as tdist

        tdist.all_reduce(total, op=tdist.ReduceOp.SUM)  # N: the step's targets on every rank
    # equal counts: k·W·n and N are the same integer, so the same float, and w is exactly 1
    return (counts * (k * dist.world_size)).float() / total.float()  # (k,)


def _processed_tokens(batch: Any) -> int | torch.Tensor:
    """Input tokens the model processes, padding (``attention_mask == 0``) left out: an int
    (from the shape), or with a mask a 0-dim tensor on its device (the meter reads it once per
    logging window, not once per step)."""
    mask = batch.get("attention_mask") if isinstance(batch, dict) else None
    if isinstance(mask, torch.Tensor):
        return (mask != 0).sum()
    return batch_tokens(batch)


def _seq_len(batch: Any) -> int | None:
    """The sequence length of a batch (its inputs' last dimension), for the attention FLOPs."""
    inputs = _inputs(batch)
    return int(inputs.shape[-1]) if inputs is not None and inputs.dim() >= 1 else None
