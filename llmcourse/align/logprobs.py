"""Log-probabilities of given tokens under a causal LM: what DPO, GRPO and evaluation score.

``targets`` follow the course's convention (:mod:`llmcourse.finetune`): ``targets[b, t]`` is the
token the model should predict after reading ``ids[b, :t + 1]``, and -100 means "not scored".
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmcourse._checks import check_module, check_number, check_tensor

__all__ = ["IGNORE", "model_logits", "sequence_logps", "token_logps"]

IGNORE = -100


def model_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The logits ``(B, T, V)`` of our :class:`~llmcourse.model.GPT` (it returns ``(logits, loss)``)
    or of a Hugging Face causal LM (it returns an object with ``.logits``)."""
    check_module("model", model)
    check_tensor("ids", ids, ndim=2, dtype="int", shape="(batch, time)")
    out = model(ids)
    logits = out[0] if isinstance(out, (tuple, list)) else getattr(out, "logits", None)
    if not isinstance(logits, torch.Tensor) or logits.shape[:2] != ids.shape:
        raise TypeError("model must return logits (B, T, V): (logits, loss) or an object with "
                        ".logits")
    return logits


def token_logps(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor,
                temperature: float = 1.0) -> torch.Tensor:
    """``log p(targets[b, t] | ids[b, :t+1])`` per position, ``(B, T)``; 0 where targets is -100.

    ``temperature`` divides the logits first (as GRPO does when it samples at that temperature).
    Gradients flow to the model unless called under ``torch.no_grad()``.
    """
    check_tensor("ids", ids, ndim=2, dtype="int", shape="(batch, time)")
    check_tensor("targets", targets, ndim=2, dtype="int", shape="(batch, time)")
    if targets.shape != ids.shape:
        raise ValueError(f"targets must have the shape of ids {tuple(ids.shape)}, got "
                         f"{tuple(targets.shape)}")
    check_number("temperature", temperature, min=0.0, min_open=True)
    logits = model_logits(model, ids).float() / temperature  # (B, T, V)
    mask = targets != IGNORE  # (B, T)
    if bool(((targets < 0) & mask).any()) or bool((targets >= logits.size(-1)).any()):
        raise ValueError(f"targets must be token ids in [0, {logits.size(-1)}) or -100")
    logp = F.log_softmax(logits, dim=-1)  # (B, T, V)
    picked = logp.gather(-1, targets.clamp(min=0).long().unsqueeze(-1)).squeeze(-1)  # (B, T)
    return picked * mask


def sequence_logps(model: nn.Module, ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log p(completion | prompt)`` per row, ``(B,)``: the sum of :func:`token_logps` over the
    unmasked targets (prompt and padding are -100). What DPO compares."""
    return token_logps(model, ids, targets).sum(dim=-1)
