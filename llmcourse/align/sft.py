"""Supervised fine-tuning data for the chat task, and why gradient accumulation must count tokens.

* :func:`chat_example` / :func:`sft_batch` — ``(ids, targets)`` with the prompt masked with -100
  (or not, for the ablation), padded by :func:`llmcourse.finetune.collate_sft`;
* :func:`make_sft_get_batch` — a ``get_batch(generator)`` for :class:`llmcourse.train.Trainer`;
* :func:`accumulation_mismatch` — averaging the loss per micro-batch is not averaging per token
  when micro-batches hold different numbers of target tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from llmcourse._checks import check_bool, check_int, check_module
from llmcourse.align.logprobs import IGNORE
from llmcourse.align.task import ChatTokenizer, Problem, _check_problems, _check_tok, chat_prompt
from llmcourse.finetune import collate_sft

__all__ = ["accumulation_mismatch", "chat_example", "make_sft_get_batch", "sft_batch"]


def chat_example(tok: ChatTokenizer, problem: Problem, answer: str | None = None,
                 mask_prompt: bool = True) -> tuple[list[int], list[int]]:
    """Inputs and next-token targets of one conversation (the answer defaults to the right one).

    ``ids = prompt + answer + <|end|>``; the model reads ``ids[:-1]`` and predicts
    ``ids[1:]``. With ``mask_prompt`` every target that is a prompt token is -100, so only the
    answer and the end token are learned — the end token is what teaches the model to stop.
    """
    _check_tok(tok)
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem, got {type(problem).__name__}")
    check_bool("mask_prompt", mask_prompt)
    answer = problem.answer if answer is None else answer
    if not isinstance(answer, str):
        raise TypeError(f"answer must be a str or None, got {type(answer).__name__}")
    prompt = tok.encode(chat_prompt(problem.question))
    ids = prompt + tok.encode(answer) + [tok.end_id]
    targets = ids[1:]
    if mask_prompt:  # targets[t] is ids[t + 1]: the first len(prompt) - 1 are prompt tokens
        targets = [IGNORE] * (len(prompt) - 1) + targets[len(prompt) - 1:]
    return ids[:-1], targets


def sft_batch(tok: ChatTokenizer, problems: Sequence[Problem],
              mask_prompt: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, targets)``, both ``(B, T)``: right-padded with ``<|pad|>`` (targets with -100)."""
    _check_tok(tok)
    problems = _check_problems(problems)
    return collate_sft([chat_example(tok, p, mask_prompt=mask_prompt) for p in problems],
                       pad_id=tok.pad_id)


def make_sft_get_batch(tok: ChatTokenizer, problems: Sequence[Problem], batch_size: int,
                       mask_prompt: bool = True,
                       ) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    """A ``get_batch(generator)`` drawing ``batch_size`` random problems (with replacement) —
    the data contract of :class:`llmcourse.train.Trainer`, so runs resume exactly."""
    _check_tok(tok)
    problems = _check_problems(problems)
    check_int("batch_size", batch_size, min=1)
    examples = [chat_example(tok, p, mask_prompt=mask_prompt) for p in problems]  # once

    def get_batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        rows = torch.randint(len(examples), (batch_size,), generator=generator).tolist()
        return collate_sft([examples[i] for i in rows], pad_id=tok.pad_id)

    return get_batch


def _flat_grad(model: nn.Module) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                      for p in model.parameters() if p.requires_grad])


def accumulation_mismatch(model: nn.Module,
                          micro_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                          ) -> dict[str, torch.Tensor | list[int]]:
    """Accumulate one step's gradient over ``micro_batches`` two ways and return both.

    ``model(ids, targets)`` must return ``(logits, loss)`` with the loss a *mean over the
    counted targets* (not -100), like :class:`llmcourse.model.GPT`. With ``n_i`` targets in
    micro-batch ``i`` and ``N = sum(n_i)``:

    * ``"per_micro_batch"``: ``sum_i loss_i / k`` — each micro-batch weighs the same, so a
      token in a short micro-batch counts more (what dividing by ``grad_accum`` does);
    * ``"per_token"``: ``sum_i loss_i * n_i / N`` — every target token weighs ``1/N``: the
      gradient of the mean loss over all tokens of the step, as if it were one big batch.

    They are equal when every ``n_i`` is the same. Also returns ``"tokens"`` (the ``n_i``).
    The model's gradients are left as they were.
    """
    check_module("model", model)
    if isinstance(micro_batches, (str, bytes)) or not isinstance(micro_batches, Sequence) \
            or not micro_batches:
        raise ValueError("micro_batches must be a non-empty sequence of (ids, targets)")
    counts = []
    for i, mb in enumerate(micro_batches):
        if not (isinstance(mb, (tuple, list)) and len(mb) == 2
                and all(isinstance(t, torch.Tensor) for t in mb)):
            raise TypeError(f"micro_batches[{i}] must be an (ids, targets) pair of tensors")
        n = int((mb[1] != IGNORE).sum())
        if n == 0:
            raise ValueError(f"micro_batches[{i}] has no target token (all -100)")
        counts.append(n)
    total, k = sum(counts), len(micro_batches)
    saved = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    grads = {}
    for name, weight in (("per_micro_batch", [1 / k] * k),
                         ("per_token", [n / total for n in counts])):
        model.zero_grad(set_to_none=True)
        for (ids, targets), w in zip(micro_batches, weight):
            _, loss = model(ids, targets)
            (loss * w).backward()
        grads[name] = _flat_grad(model).detach().clone()
    for p, g in zip(model.parameters(), saved):
        p.grad = g
    return {**grads, "tokens": counts}
