"""Checkers for chapter 03 (attention): ``check_attention``, ``check_causal_mask`` and
``check_split_heads``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from llmcourse.exercises import Case, check_fn, run_checks

__all__ = ["check_attention", "check_causal_mask", "check_split_heads"]


def _qkv(seed: int, *shape_q: int, S: int | None = None, Dv: int | None = None):
    g = torch.Generator().manual_seed(seed)
    *batch, T, D = shape_q
    S = T if S is None else S
    Dv = D if Dv is None else Dv

    def r(*shape: int) -> torch.Tensor:  # multiples of 1/4: short, exact reports
        return (torch.randn(*shape, generator=g) * 4).round() / 4

    return r(*batch, T, D), r(*batch, S, D), r(*batch, S, Dv)


def check_attention(fn: Callable[..., torch.Tensor]) -> bool:
    """Check ``fn(q, k, v, mask=None) -> out``: scaled dot-product attention over the last two
    dims, with an optional boolean ``mask`` (``True`` = may attend). Compared with
    ``torch.nn.functional.scaled_dot_product_attention`` on hidden cases."""
    check_fn(fn)
    one = (torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0], [1.0, 0.0]]),
           torch.tensor([[1.0], [3.0]]))
    cases = [
        Case(one, torch.tensor([[2.0]]),
             hint="two keys with equal scores share the weight equally: the output is the mean "
                  "of the values"),
        Case(_qkv(0, 3, 4), F.scaled_dot_product_attention(*_qkv(0, 3, 4)),
             hint="softmax(q @ k.T / sqrt(d_k)) @ v — did you scale by the square root of the "
                  "key dimension?"),
        Case(_qkv(1, 2, 5, 8, S=3, Dv=2), F.scaled_dot_product_attention(*_qkv(1, 2, 5, 8, S=3,
                                                                            Dv=2)),
             hint="T queries and S keys give a (T, S) score matrix: use k.transpose(-2, -1), "
                  "and softmax over the last dim (the keys)"),
    ]
    q, k, v = _qkv(2, 2, 4, 4)
    mask = torch.tensor([[True, False, False, False], [True, True, False, False],
                         [True, False, True, False], [True, True, True, True]])
    cases.append(Case((q, k, v), F.scaled_dot_product_attention(q, k, v, attn_mask=mask),
                      kwargs=dict(mask=mask),
                      hint="where mask is False the score must be -inf before the softmax, so "
                           "its weight is exactly 0"))
    return run_checks(fn, cases, name="attention", atol=1e-5)


def check_causal_mask(fn: Callable[[int], torch.Tensor]) -> bool:
    """Check ``fn(T) -> (T, T)`` boolean mask with ``True`` where query ``i`` may see key ``j``
    (``j <= i``)."""
    check_fn(fn)
    # compared as 0/1 int8 tensors (so the report prints them compactly); the dtype is checked
    cases = [Case((1,), torch.tensor([[1]], dtype=torch.int8))]
    for T in (3, 5):
        cases.append(Case((T,), torch.ones(T, T, dtype=torch.int8).tril(),
                          hint="True on and below the diagonal (a token sees itself and the "
                               "past), False above it; dtype torch.bool"))

    def strict(T: int):
        out = fn(T)
        if isinstance(out, torch.Tensor) and out.dtype != torch.bool:
            return f"dtype {out.dtype} (expected torch.bool)"
        return out.to(torch.int8) if isinstance(out, torch.Tensor) else out

    return run_checks(strict, cases, name="causal_mask")


def check_split_heads(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """Check ``fn(x, n_head) -> (B, n_head, T, C // n_head)`` for ``x`` of shape ``(B, T, C)``:
    head ``h`` holds channels ``h·hs … (h+1)·hs − 1`` of every position, as
    ``x.view(B, T, n_head, hs).transpose(1, 2)`` gives. Transposing *before* the view (or not
    at all) gives the right shape with the wrong numbers, which is what the cases catch."""
    check_fn(fn)
    hint = ("split the channels, not the positions: x.view(B, T, n_head, hs) first, then "
            ".transpose(1, 2). Transposing before the view (or viewing straight to "
            "(B, n_head, T, hs)) gives the right shape with channels and positions mixed up")
    cases = []
    for B, T, C, nh in ((1, 2, 4, 2), (2, 3, 6, 3), (2, 5, 12, 4), (1, 4, 8, 1)):
        x = torch.arange(B * T * C, dtype=torch.float32).view(B, T, C)  # every entry distinct
        cases.append(Case((x, nh), x.view(B, T, nh, C // nh).transpose(1, 2),
                          hint=hint if nh > 1 else "one head: (B, 1, T, C)"))
    return run_checks(fn, cases, name="split_heads", atol=0.0)
