"""Checkers for chapter 07 (pretraining): a learning-rate schedule and packing into blocks."""

from __future__ import annotations

import math
from collections.abc import Callable

from llmcourse.exercises import Case, check_fn, run_checks


def _reference_lr(step: int, max_steps: int, lr: float, warmup: int, min_lr: float) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


def check_warmup_cosine(fn: Callable[[int, int, float, int, float], float]) -> bool:
    """Check ``fn(step, max_steps, lr, warmup, min_lr)``: linear warm-up over ``warmup`` steps
    (step 0 gets ``lr / warmup``), then cosine decay from ``lr`` to ``min_lr`` at ``max_steps``."""
    check_fn(fn)
    args = [(0, 100, 1.0, 10, 0.1), (4, 100, 1.0, 10, 0.1), (10, 100, 1.0, 10, 0.1),
            (55, 100, 1.0, 10, 0.1), (100, 100, 1.0, 10, 0.1), (150, 100, 1.0, 10, 0.1),
            (30, 60, 3e-3, 0, 3e-4)]
    hints = ["step 0 is the first warm-up step: lr * 1 / warmup", "warm-up is linear in step + 1",
             "warm-up ends at the peak lr", "half-way through the decay: the mean of lr and min_lr",
             "the decay ends at min_lr", "after max_steps, stay at min_lr",
             "with warmup=0 there is no warm-up (avoid dividing by zero)"]
    cases = [Case(a, _reference_lr(*a), hint=h) for a, h in zip(args, hints)]
    return run_checks(fn, cases, name="warmup_cosine", atol=1e-9)


def _reference_pack(docs: list[list[int]], block_size: int, eos: int) -> list[list[int]]:
    flat = [t for d in docs for t in [*d, eos]]
    n = block_size + 1
    return [flat[i:i + n] for i in range(0, len(flat) // n * n, n)]


def check_pack(fn: Callable[[list[list[int]], int, int], list[list[int]]]) -> bool:
    """Check ``fn(docs, block_size, eos)``: append ``eos`` after each document, concatenate,
    cut into blocks of ``block_size + 1`` tokens, drop the short tail."""
    check_fn(fn)
    cases = [
        Case(([[1, 2, 3], [4, 5]], 2, 0), _reference_pack([[1, 2, 3], [4, 5]], 2, 0),
             hint="every document ends with eos, and blocks hold block_size + 1 tokens"),
        Case(([[7] * 10], 4, 9), _reference_pack([[7] * 10], 4, 9),
             hint="the leftover shorter than a block is dropped"),
        Case(([[1], [2], [3], [4]], 1, 0), _reference_pack([[1], [2], [3], [4]], 1, 0),
             hint="blocks cross document boundaries: that is what packing is"),
        Case(([[1, 2]], 5, 0), [], hint="too few tokens for one block: no blocks"),
    ]
    return run_checks(fn, cases, name="pack")
