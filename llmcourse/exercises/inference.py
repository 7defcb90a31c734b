"""Checkers for chapter 12 (inference engineering): int8 absmax quantisation and the
speculative-decoding acceptance rule."""

from __future__ import annotations

from collections.abc import Callable

import torch

from llmcourse.exercises import Case, run_checks

__all__ = ["check_int8_absmax", "check_speculative_accept"]


def _int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = w.abs().max() / 127
    return torch.round(w / scale).clamp(-127, 127).to(torch.int8), scale


def check_int8_absmax(quantize_fn: Callable[[torch.Tensor], tuple],
                      dequantize_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> bool:
    """Check per-tensor symmetric absmax int8: ``quantize_fn(w) -> (q, scale)`` with
    ``scale = max|w| / 127`` and ``q = round(w / scale)`` in ``[-127, 127]``, and
    ``dequantize_fn(q, scale) -> q · scale``."""
    for name, fn in (("quantize_fn", quantize_fn), ("dequantize_fn", dequantize_fn)):
        if not callable(fn):
            raise TypeError(f"{name} must be callable (your function), got {type(fn).__name__}")
    ws = [torch.tensor(w, dtype=torch.float64) for w in (  # float64: readable reports
        [2.54, -1.0, 0.3],  # scale 0.02: codes 127, -50, 15
        [0.5, -2.54, 0.1, 1.0],  # the largest magnitude is negative
        [[1.27, 0.267, -0.733], [0.0, 0.51, -0.149]],  # 26.7 -> 27, not 26
        [0.015, -0.0375, 0.06, 0.0],
    )]
    hints = [
        "scale = max|w| / 127, so the largest weight lands exactly on 127 (not 128: int8's "
        "symmetric range is [-127, 127])",
        "take the max of |w| (abs first): the largest magnitude here is negative",
        "round to the nearest integer (torch.round), not towards zero (.int() / .to(int8) "
        "truncate 26.7 to 26)",
        "",
    ]
    cases = [Case((w,), _int8(w), hint=h) for w, h in zip(ws, hints)]
    ok = run_checks(quantize_fn, cases, name="int8_absmax quantize", atol=1e-6)
    if not ok:
        return False
    dq = [Case(_int8(w), _int8(w)[0].float() * _int8(w)[1],
               hint="dequantise by multiplying the int8 codes (as floats) by the scale")
          for w in ws]
    return run_checks(dequantize_fn, dq, name="int8_absmax dequantize", atol=1e-6)


def _rule(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    alpha = (p / q).clamp(max=1.0)
    residual = (p - q).clamp(min=0.0)
    return alpha, residual / residual.sum()


def check_speculative_accept(fn: Callable[[torch.Tensor, torch.Tensor], tuple]) -> bool:
    """Check ``fn(p, q) -> (alpha, residual)`` for target ``p`` and draft ``q`` (1-D, ``q > 0``
    everywhere): ``alpha[x] = min(1, p[x] / q[x])``, the probability of keeping a drafted ``x``,
    and ``residual = max(0, p - q) / sum(max(0, p - q))``, what a rejection samples from."""
    pairs = [
        ([0.5, 0.3, 0.2], [0.2, 0.3, 0.5]),
        ([0.4, 0.4, 0.1, 0.1], [0.1, 0.2, 0.3, 0.4]),
        ([0.05, 0.05, 0.9], [0.6, 0.3, 0.1]),
    ]
    hints = [
        "alpha = min(1, p / q): a probability never exceeds 1 (where p >= q the draft is "
        "always kept); on rejection sample from max(0, p - q), normalised — not from p",
        "the residual keeps only the tokens where the target wants more than the draft gave: "
        "max(0, p - q), divided by its sum",
        "",
    ]
    cases = []
    for (p, q), h in zip(pairs, hints):
        p, q = torch.tensor(p, dtype=torch.float64), torch.tensor(q, dtype=torch.float64)
        cases.append(Case((p, q), _rule(p, q), hint=h))
    return run_checks(fn, cases, name="speculative_accept", atol=1e-5)
