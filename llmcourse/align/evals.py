"""Evaluating a post-trained model: sampling, task accuracy, pass@k, multiple-choice scoring.

* :func:`sample_completions` — several completions per prompt from a
  :class:`~llmcourse.model.GPT`, each cut after its first ``<|end|>``;
* :func:`task_accuracy` — greedy held-out accuracy on the arithmetic task, and how often the
  model stops;
* :func:`pass_at_k` — the unbiased estimator of Chen et al. (2021);
* :func:`choice_loglikelihoods` / :func:`score_multiple_choice` — multiple choice by
  log-likelihood, ``acc`` and ``acc_norm`` exactly as lm-evaluation-harness computes them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from llmcourse._checks import check_callable, check_int, check_items, check_module, check_str
from llmcourse.align.logprobs import model_logits
from llmcourse.align.task import (
    ChatTokenizer,
    Problem,
    _check_problems,
    _check_tok,
    chat_prompt,
    parse_answer,
)

__all__ = [
    "choice_loglikelihoods", "pass_at_k", "sample_completions", "score_multiple_choice",
    "task_accuracy",
]


@torch.no_grad()
def sample_completions(model: nn.Module, prompts: Sequence[Sequence[int]], max_new_tokens: int,
                       stop_id: int, num_samples: int = 1, temperature: float = 0.0,
                       generator: torch.Generator | None = None,
                       max_batch: int = 512) -> list[list[list[int]]]:
    """``out[i][j]``: the token ids of sample ``j`` for prompt ``i``, cut after the first
    ``stop_id`` (kept) — a completion that never stops has ``max_new_tokens`` tokens.

    ``model`` is a :class:`~llmcourse.model.GPT` (its ``generate``). Prompts of the same length
    share one ``generate`` call (no padding is needed, so none can leak into the result), in
    chunks of at most ``max_batch`` rows. ``temperature=0`` is greedy.
    """
    if not hasattr(model, "generate"):
        raise TypeError(f"model must be an llmcourse GPT (with .generate), got "
                        f"{type(model).__name__}")
    prompts = check_items("prompts", prompts, what="token-id lists")
    check_int("max_new_tokens", max_new_tokens, min=1)
    check_int("stop_id", stop_id, min=0)
    check_int("num_samples", num_samples, min=1)
    check_int("max_batch", max_batch, min=1)
    device = next(model.parameters()).device
    rows = [list(p) for p in prompts]
    for i, r in enumerate(rows):
        if not r or any(isinstance(t, bool) or not isinstance(t, int) for t in r):
            raise ValueError(f"prompts[{i}] must be a non-empty list of int token ids")
    out: list[list[list[int]]] = [[] for _ in rows]
    by_len: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_len.setdefault(len(r), []).append(i)
    per_chunk = max(1, max_batch // num_samples)
    for length, members in by_len.items():
        for c in range(0, len(members), per_chunk):
            chunk = members[c:c + per_chunk]
            idx = torch.tensor([rows[i] for i in chunk], device=device)  # (b, T)
            idx = idx.repeat_interleave(num_samples, dim=0)  # (b * n, T)
            gen = model.generate(idx, max_new_tokens, temperature=temperature, generator=generator)
            for k, row in enumerate(gen[:, length:].tolist()):
                cut = row.index(stop_id) + 1 if stop_id in row else len(row)
                out[chunk[k // num_samples]].append(row[:cut])
    return out


def task_accuracy(model: nn.Module, tok: ChatTokenizer, problems: Sequence[Problem],
                  max_new_tokens: int | None = None) -> dict[str, float]:
    """Greedy accuracy on ``problems`` and the share of answers that end with ``<|end|>``.

    Returns ``{"accuracy", "end_rate", "n"}``. ``max_new_tokens`` defaults to the longest
    answer plus two, so a model that does not stop is seen not to.
    """
    _check_tok(tok)
    problems = _check_problems(problems)
    if max_new_tokens is None:
        max_new_tokens = max(len(p.answer) for p in problems) + 2
    prompts = [tok.encode(chat_prompt(p.question)) for p in problems]
    comps = sample_completions(model, prompts, max_new_tokens, tok.end_id)
    texts = [tok.decode(c[0]) for c in comps]
    correct = sum(parse_answer(t) == p.result for t, p in zip(texts, problems))
    ended = sum(c[0][-1:] == [tok.end_id] for c in comps)
    return {"accuracy": correct / len(problems), "end_rate": ended / len(problems),
            "n": float(len(problems))}


def pass_at_k(n: int, c: int, k: int) -> float:
    """The chance that at least one of ``k`` samples is correct, estimated from ``n`` samples of
    which ``c`` are correct: ``1 - C(n-c, k) / C(n, k)`` (Chen et al., 2021).

    Computed as the product ``1 - prod_{i=n-c+1}^{n} (1 - k/i)``, which never forms the huge
    binomials. Unbiased, unlike ``1 - (1 - c/n)**k``.
    """
    check_int("n", n, min=1)
    check_int("c", c, min=0)
    check_int("k", k, min=1)
    if c > n:
        raise ValueError(f"c must be <= n ({n}), got {c}")
    if k > n:
        raise ValueError(f"k must be <= n ({n}), got {k}")
    if n - c < k:  # every k-subset holds a correct sample
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


@torch.no_grad()
def choice_loglikelihoods(model: nn.Module, encode: Callable[[str], list[int]], context: str,
                          choices: Sequence[str],
                          target_delimiter: str = " ") -> list[tuple[float, bool]]:
    """``(log p(delimiter + choice | context), is_greedy)`` for each choice.

    Tokenised as lm-evaluation-harness does for a causal LM: trailing spaces of the context move
    to the continuation, the whole text is encoded and the continuation is what follows the
    context's tokens. ``is_greedy``: every continuation token is the argmax.
    """
    check_module("model", model)
    check_callable("encode", encode, ": str -> list[int]")
    check_str("context", context, empty=False)
    if isinstance(choices, str) or not isinstance(choices, Sequence) or len(choices) < 2:
        raise ValueError("choices must be a sequence of at least two str")
    if not all(isinstance(c, str) and c for c in choices):
        raise ValueError("choices must be non-empty str")
    check_str("target_delimiter", target_delimiter)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out = []
    try:
        for choice in choices:
            ctx, cont = context, target_delimiter + choice
            n_spaces = len(ctx) - len(ctx.rstrip())
            if n_spaces:
                ctx, cont = ctx[:-n_spaces], ctx[-n_spaces:] + cont
            ctx_ids = list(encode(ctx))
            cont_ids = list(encode(ctx + cont))[len(ctx_ids):]
            if not ctx_ids or not cont_ids:
                raise ValueError(f"context {context!r} or choice {choice!r} encodes to no token")
            ids = torch.tensor((ctx_ids + cont_ids)[:-1], device=device)[None]  # (1, T)
            limit = getattr(getattr(model, "config", None), "block_size", None)
            if limit is not None and ids.size(1) > limit:
                raise ValueError(f"context + choice is {ids.size(1) + 1} tokens; the model reads "
                                 f"at most block_size + 1 = {limit + 1}")
            logp = model_logits(model, ids)[0, -len(cont_ids):].float().log_softmax(-1)  # (n, V)
            target = torch.tensor(cont_ids, device=device)
            ll = float(logp.gather(-1, target[:, None]).sum())
            greedy = bool((logp.argmax(-1) == target).all())
            out.append((ll, greedy))
    finally:
        model.train(was_training)
    return out


def score_multiple_choice(model: nn.Module, encode: Callable[[str], list[int]],
                          items: Sequence[tuple[str, Sequence[str], int]],
                          target_delimiter: str = " ") -> dict:
    """Multiple choice by log-likelihood over ``(context, choices, gold_index)`` items.

    ``acc``: the choice with the highest summed log-likelihood is the gold one. ``acc_norm``: the
    same after dividing each log-likelihood by the choice's length in *characters* (without the
    delimiter) — lm-evaluation-harness's definition, which removes the bias towards short
    answers. Returns ``{"acc", "acc_norm", "loglikelihoods", "pred", "pred_norm"}``.
    """
    check_module("model", model)
    check_callable("encode", encode, ": str -> list[int]")
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError(f"items must be a sequence of (context, choices, gold), got "
                        f"{type(items).__name__}")
    if not items:
        raise ValueError("items must not be empty")
    lls, pred, pred_norm, acc, acc_norm = [], [], [], 0, 0
    for i, item in enumerate(items):
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise TypeError(f"items[{i}] must be a (context, choices, gold) triple")
        context, choices, gold = item
        if isinstance(gold, bool) or not isinstance(gold, int) or not 0 <= gold < len(choices):
            raise ValueError(f"items[{i}] gold must be an int index into its {len(choices)} "
                             "choices")
        scored = choice_loglikelihoods(model, encode, context, choices, target_delimiter)
        ll = [v for v, _ in scored]
        norm = [v / len(c) for v, c in zip(ll, choices)]
        p = max(range(len(ll)), key=ll.__getitem__)  # first maximum, like numpy.argmax
        pn = max(range(len(norm)), key=norm.__getitem__)
        lls.append(ll)
        pred.append(p)
        pred_norm.append(pn)
        acc += p == gold
        acc_norm += pn == gold
    n = len(items)
    return {"acc": acc / n, "acc_norm": acc_norm / n, "loglikelihoods": lls, "pred": pred,
            "pred_norm": pred_norm}
