"""Checkers for chapter 05 (modern decoders): RMSNorm, ``repeat_kv`` for grouped-query
attention, and a mixture of experts' top-k routing."""

from __future__ import annotations

from collections.abc import Callable

import torch

from llmcourse.exercises import Case, check_fn, run_checks

__all__ = ["check_repeat_kv", "check_rms_norm", "check_top_k_routing"]


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def check_rms_norm(fn: Callable[..., torch.Tensor]) -> bool:
    """Check ``fn(x, weight, eps) -> x / sqrt(mean(x², last dim) + eps) · weight``."""
    check_fn(fn)
    g = torch.Generator().manual_seed(0)
    shifted = torch.randn(2, 3, 6, generator=g, dtype=torch.float64) + 3.0  # mean far from 0
    weight = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    tiny = torch.tensor([[1e-3, -2e-3, 3e-3, -1e-3]], dtype=torch.float64)  # mean(x²) ≈ 4e-6
    rows = torch.tensor([[1.0, 2.0, 3.0], [-4.0, 0.0, 4.0]], dtype=torch.float64)
    cases = [
        Case((shifted, weight, 1e-6), _rms_norm(shifted, weight, 1e-6),
             hint="RMSNorm does not subtract the mean (that is LayerNorm): divide x by "
                  "sqrt(mean(x²) + eps), then multiply by weight"),
        Case((tiny, torch.ones(4, dtype=torch.float64), 1e-5),
             _rms_norm(tiny, torch.ones(4, dtype=torch.float64), 1e-5),
             hint="here mean(x²) is smaller than eps: add eps inside the square root, "
                  "sqrt(mean(x²) + eps), not after it and not never"),
        Case((rows, torch.ones(3, dtype=torch.float64), 1e-6),
             _rms_norm(rows, torch.ones(3, dtype=torch.float64), 1e-6),
             hint="normalise each row over the last dimension (mean(-1, keepdim=True))"),
    ]
    return run_checks(fn, cases, name="rms_norm", atol=1e-6)


def check_repeat_kv(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """Check ``fn(x, n_rep)``: (B, n_kv, T, hs) -> (B, n_kv · n_rep, T, hs), each key/value
    head repeated ``n_rep`` times in a row (query head ``h`` reads kv head ``h // n_rep``)."""
    check_fn(fn)
    x = torch.arange(2 * 2 * 3 * 2, dtype=torch.float32).view(2, 2, 3, 2)  # 2 kv heads
    y = torch.arange(1 * 3 * 2 * 4, dtype=torch.float32).view(1, 3, 2, 4)  # 3 kv heads
    cases = [
        Case((x, 3), x.repeat_interleave(3, dim=1),
             hint="query heads 0, 1, 2 share kv head 0 and heads 3, 4, 5 share kv head 1: "
                  "[k0, k0, k0, k1, k1, k1] (repeat_interleave order), not [k0, k1, k0, k1, ...] "
                  "(what x.repeat gives)"),
        Case((y, 2), y.repeat_interleave(2, dim=1),
             hint="repeat along dim 1 (the heads), keeping batch, time and head size"),
        Case((y, 1), y, hint="n_rep = 1 is plain multi-head attention: x unchanged"),
    ]
    return run_checks(fn, cases, name="repeat_kv", atol=0.0)


def _route(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    top, idx = logits.topk(k, dim=-1)
    return top.softmax(dim=-1), idx


def check_top_k_routing(fn: Callable[[torch.Tensor, int], tuple]) -> bool:
    """Check ``fn(router_logits, k) -> (weights, experts)`` for router logits (N, E): per
    token the ``k`` experts with the largest logits (``experts`` (N, k), in descending order
    of logit, as ``torch.topk``) and their mixing ``weights`` (N, k), a softmax over the ``k``
    chosen logits (Mixtral's rule: the weights of each token sum to 1)."""
    check_fn(fn)
    # logits exact in binary, so the report prints them as written
    a = torch.tensor([[2.0, 0.5, -1.0, 1.0], [0.0, 3.0, 2.5, -2.0], [-1.0, -0.5, 0.25, 0.125]])
    b = torch.tensor([[0.25, 1.25, -0.5, 2.25, 0.0, 1.75], [1.5, -0.25, 0.75, 0.125, 2.0, -1.0]])
    cases = [
        Case((a, 2), _route(a, 2),
             hint="softmax over the k chosen logits only, so each token's weights sum to 1 "
                  "(a softmax over all experts, then picking k, leaves weights that sum to "
                  "less than 1 unless you renormalise them)"),
        Case((b, 3), _route(b, 3),
             hint="pick the k largest logits per token (dim -1), in descending order"),
        Case((a, 1), _route(a, 1),
             hint="with k = 1 every chosen weight is exactly 1"),
    ]
    return run_checks(fn, cases, name="top_k_routing", atol=1e-6)
