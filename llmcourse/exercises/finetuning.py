"""Checkers for chapter 09 (fine-tuning): SFT label masking."""

from __future__ import annotations

from collections.abc import Callable

from llmcourse.exercises import Case, check_fn, run_checks


def check_sft_labels(fn: Callable[[list[int], list[int]], list[int]]) -> bool:
    """Check ``fn(prompt_ids, response_ids)``: next-token targets with the prompt masked (-100)."""
    check_fn(fn)
    cases = [
        Case(([1, 2, 3], [4, 5]), [-100, -100, 4, 5],
             hint="targets are (prompt + response)[1:]; the first len(prompt) - 1 are prompt tokens"),
        Case(([7], [8, 9, 10]), [8, 9, 10], hint="a one-token prompt has no prompt targets"),
        Case(([1, 2], [3]), [-100, 3], hint="the first response token IS a target: keep it"),
        Case(([5, 5, 5, 5], [6, 0]), [-100, -100, -100, 6, 0]),
    ]
    return run_checks(fn, cases, name="sft_labels")
