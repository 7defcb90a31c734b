"""Checkers for chapter 01 (language models): bigram counts and perplexity."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from llmcourse.exercises import Case, check_fn, run_checks

__all__ = ["check_bigram_counts", "check_perplexity"]


def _bigram_counts(ids: list[int], vocab_size: int) -> torch.Tensor:
    counts = torch.zeros(vocab_size, vocab_size, dtype=torch.long)
    for a, b in zip(ids, ids[1:]):
        counts[a, b] += 1
    return counts


def check_bigram_counts(fn: Callable[[list[int], int], torch.Tensor]) -> bool:
    """Check ``fn(ids, vocab_size) -> counts`` with ``counts[a, b]`` = how often ``b`` follows ``a``."""
    check_fn(fn)
    g = torch.Generator().manual_seed(1)
    rand = torch.randint(0, 5, (40,), generator=g).tolist()
    cases = [
        Case(([0, 1, 0, 1], 2), torch.tensor([[0, 2], [1, 0]]),
             hint="counts[a, b] counts the pairs (a, b) of neighbours, in reading order"),
        Case(([2, 2, 2], 3), _bigram_counts([2, 2, 2], 3),
             hint="overlapping pairs count: 2,2,2 holds the pair (2, 2) twice"),
        Case(([1], 3), torch.zeros(3, 3, dtype=torch.long),
             hint="one token has no pair: all counts are zero, shape (V, V)"),
        Case((rand, 5), _bigram_counts(rand, 5)),
    ]
    return run_checks(fn, cases, name="bigram_counts")


def _perplexity(logits: torch.Tensor, targets: torch.Tensor) -> float:
    return math.exp(torch.nn.functional.cross_entropy(logits, targets).item())


def check_perplexity(fn: Callable[[torch.Tensor, torch.Tensor], float]) -> bool:
    """Check ``fn(logits (N, V), targets (N,)) -> perplexity`` = exp(mean cross-entropy in nats)."""
    check_fn(fn)
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(6, 4, generator=g)
    targets = torch.tensor([0, 1, 2, 3, 0, 1])
    big = torch.tensor([[1000.0, 0.0, 0.0], [0.0, 1000.0, 0.0]])
    cases = [
        Case((torch.zeros(3, 8), torch.tensor([0, 5, 7])), 8.0,
             hint="a uniform model over V tokens has perplexity V"),
        Case((logits, targets), _perplexity(logits, targets),
             hint="perplexity = exp(mean over tokens of -log softmax(logits)[target])"),
        Case((big, torch.tensor([0, 1])), 1.0,
             hint="a model certain of the right answer has perplexity 1; use log_softmax, not "
                  "log(softmax(...)) which overflows"),
    ]
    return run_checks(fn, cases, name="perplexity", atol=1e-4)
