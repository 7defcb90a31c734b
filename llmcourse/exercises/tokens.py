"""Checkers for chapter 02 (tokens and embeddings): one BPE merge step, sinusoidal positions."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from llmcourse._checks import check_int, check_number
from llmcourse.exercises import Case, check_fn, run_checks

__all__ = ["check_bpe_merge", "check_sinusoidal", "sinusoidal_positions"]


def check_bpe_merge(fn: Callable[[list[int], tuple[int, int], int], list[int]]) -> bool:
    """Check ``fn(ids, pair, new_id)``: every occurrence of ``pair``, left to right, becomes ``new_id``."""
    check_fn(fn)
    cases = [
        Case(([1, 2, 3, 1, 2], (1, 2), 256), [256, 3, 256]),
        Case(([5, 6, 7], (1, 2), 256), [5, 6, 7], hint="no occurrence: ids are unchanged"),
        Case(([1, 1, 1], (1, 1), 300), [300, 1],
             hint="occurrences must not overlap: scan left to right and skip past each merge"),
        Case(([1, 1, 1, 1], (1, 1), 300), [300, 300]),
        Case(([7], (7, 7), 256), [7], hint="a single token has no pair"),
        Case(([], (1, 2), 256), []),
        Case(([2, 1, 2, 1], (1, 2), 256), [2, 256, 1], hint="the pair is ordered: (1, 2) is not (2, 1)"),
    ]
    return run_checks(fn, cases, name="bpe_merge")


def sinusoidal_positions(n_positions: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """The Transformer's sinusoidal encoding, ``(n_positions, d_model)``.

    ``PE[p, 2i] = sin(p / base^(2i / d))`` and ``PE[p, 2i + 1] = cos(p / base^(2i / d))``.
    """
    check_int("n_positions", n_positions, min=1)
    if check_int("d_model", d_model, min=2) % 2:
        raise ValueError(f"d_model must be a positive even int, got {d_model!r}")
    check_number("base", base, min=0.0, min_open=True)
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(base) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe.float()


def check_sinusoidal(fn: Callable[[int, int], torch.Tensor]) -> bool:
    """Check ``fn(n_positions, d_model) -> (n_positions, d_model)`` sinusoidal encodings."""
    check_fn(fn)
    cases = [
        Case((1, 4), torch.tensor([[0.0, 1.0, 0.0, 1.0]]),
             hint="position 0: sin(0) = 0 in even columns, cos(0) = 1 in odd columns"),
        Case((3, 2), sinusoidal_positions(3, 2),
             hint="with d_model = 2 the only frequency is 1: PE[p] = [sin p, cos p]"),
        Case((16, 8), sinusoidal_positions(16, 8),
             hint="column pair i uses the frequency 1 / 10000^(2i / d_model); sin even, cos odd"),
        Case((50, 32), sinusoidal_positions(50, 32)),
    ]
    return run_checks(fn, cases, name="sinusoidal", atol=1e-4)
