"""Exercise checkers: ``check_<topic>(fn)`` runs a learner's function on hidden cases.

Every chapter's exercises use the same pattern::

    def softmax(x):
        ...  # your code

    check_softmax(softmax)   # prints a friendly report, returns True when every case passes

A checker never raises on a wrong answer: it explains the first failing case (input, what was
expected, what came back) and returns ``False``. Chapters add their own checkers with
:func:`run_checks`, each in a module of its own
(``llmcourse.exercises.<topic>``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from llmcourse._checks import check_callable, check_items, check_number, check_str


@dataclass
class Case:
    """One hidden test case: positional ``args`` and the ``expected`` result."""

    args: tuple
    expected: Any
    hint: str = ""
    kwargs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.args, tuple):
            raise TypeError(f"args must be a tuple of positional arguments, got "
                            f"{type(self.args).__name__}")
        check_str("hint", self.hint)
        if not isinstance(self.kwargs, dict) or not all(isinstance(k, str) for k in self.kwargs):
            raise TypeError(f"kwargs must be a dict of keyword arguments, got "
                            f"{type(self.kwargs).__name__}")


def check_fn(fn: object) -> Callable:
    """The learner's function must be callable (checked before any case runs)."""
    return check_callable("fn", fn, " (your function)")


def _close(got: Any, expected: Any, atol: float) -> bool:
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            try:
                got = torch.as_tensor(got, dtype=expected.dtype)
            except (TypeError, ValueError, RuntimeError):
                return False
        if got.shape != expected.shape:
            return False
        if expected.is_floating_point():
            return torch.allclose(got.to(expected.dtype), expected, atol=atol, rtol=0.0)
        if got.is_floating_point() or got.is_complex():  # 2.5 must not pass for 2 by truncation
            return torch.equal(got, expected.to(got.dtype))
        return torch.equal(got.to(expected.dtype), expected)
    if isinstance(expected, float):
        if isinstance(got, torch.Tensor) and got.numel() != 1:
            return False
        return isinstance(got, (int, float, torch.Tensor)) and math.isclose(
            float(got), expected, abs_tol=atol, rel_tol=0.0)
    if isinstance(expected, (list, tuple)) and not isinstance(got, str):
        try:
            return len(got) == len(expected) and all(
                _close(g, e, atol) for g, e in zip(got, expected))
        except TypeError:
            return False
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and all(
            _close(got[k], expected[k], atol) for k in expected)
    return got == expected


def _short(x: Any, limit: int = 160) -> str:
    if isinstance(x, torch.Tensor):
        text = f"tensor{tuple(x.shape)} " + str(x.detach().cpu().numpy().round(4).tolist())
    else:
        text = repr(x)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_checks(fn: Callable, cases: Sequence[Case], *, name: str, atol: float = 1e-5) -> bool:
    """Run ``fn`` on each case; print one friendly line per outcome; return whether all passed."""
    check_fn(fn)
    cases = check_items("cases", cases, Case, "Case objects")
    check_str("name", name, empty=False)
    check_number("atol", atol, min=0.0)
    for i, case in enumerate(cases, 1):
        try:
            got = fn(*case.args, **case.kwargs)
        except NotImplementedError:
            print(f"⏳ {name}: not implemented yet — fill in the function and run this cell again.")
            return False
        except Exception as err:  # noqa: BLE001 - we report the learner's error, not crash
            print(f"❌ {name}: case {i} raised {type(err).__name__}: {err}")
            print(f"   input: {', '.join(_short(a) for a in case.args)}")
            return False
        if not _close(got, case.expected, atol):
            print(f"❌ {name}: case {i} of {len(cases)} is wrong.")
            print(f"   input:    {', '.join(_short(a) for a in case.args)}")
            print(f"   expected: {_short(case.expected)}")
            print(f"   got:      {_short(got)}")
            if case.hint:
                print(f"   hint: {case.hint}")
            return False
    print(f"✅ {name}: all {len(cases)} hidden cases pass.")
    return True


def check_softmax(fn: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """Check a softmax over the last dimension, including numerical stability."""
    check_fn(fn)
    cases = [
        Case((torch.tensor([1.0, 2.0, 3.0]),), torch.softmax(torch.tensor([1.0, 2.0, 3.0]), -1)),
        Case((torch.zeros(4),), torch.full((4,), 0.25),
             hint="equal scores give a uniform distribution"),
        Case((torch.tensor([[0.5, -1.0], [2.0, 2.0]]),),
             torch.softmax(torch.tensor([[0.5, -1.0], [2.0, 2.0]]), -1),
             hint="normalise over the last dimension, row by row"),
        Case((torch.tensor([1000.0, 1001.0]),), torch.softmax(torch.tensor([1000.0, 1001.0]), -1),
             hint="exp(1000) overflows: subtract the maximum first (it does not change the result)"),
    ]
    return run_checks(fn, cases, name="softmax")
