"""Checkers for chapter 06 (cross-entropy and optimisation)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from llmcourse.exercises import Case, check_fn, run_checks


def check_bits_per_byte(fn: Callable[[float, int, int], float]) -> bool:
    """Check ``fn(loss, n_tokens, n_bytes)``: nats per token → bits per byte."""
    check_fn(fn)
    cases = [
        Case((math.log(256), 100, 100), 8.0, hint="uniform over 256 byte values is 8 bits/byte"),
        Case((math.log(2), 10, 10), 1.0, hint="ln 2 nats is one bit"),
        Case((2.0, 250, 1000), 2.0 * 250 / (1000 * math.log(2)),
             hint="a token covers 4 bytes here: total nats = loss · n_tokens"),
        Case((3.3, 1000, 4321), 3.3 * 1000 / (4321 * math.log(2))),
    ]
    return run_checks(fn, cases, name="bits_per_byte", atol=1e-6)


def _rmsprop_reference(param: torch.Tensor, grads: list[torch.Tensor], lr: float,
                       alpha: float) -> torch.Tensor:
    p = torch.nn.Parameter(param.clone())
    opt = torch.optim.RMSprop([p], lr=lr, alpha=alpha)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach()


def check_rmsprop_step(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Check ``fn(param, grad, v, lr, alpha=0.99, eps=1e-8) -> (param, v)`` against
    ``torch.optim.RMSprop`` over several steps."""
    check_fn(fn)

    def run(param, grads, lr, alpha):
        v = torch.zeros_like(param)
        for g in grads:
            param, v = fn(param, g, v, lr, alpha=alpha)
        return param

    gen = torch.Generator().manual_seed(0)
    cases = []
    for lr, alpha, n in [(0.01, 0.99, 1), (0.01, 0.99, 5), (0.1, 0.9, 8)]:
        param = torch.randn(6, generator=gen)
        grads = [torch.randn(6, generator=gen) for _ in range(n)]
        cases.append(Case((param, grads, lr, alpha), _rmsprop_reference(param, grads, lr, alpha),
                          hint="v ← α v + (1 − α) g², then θ ← θ − η g / (√v + ε)"))
    return run_checks(run, cases, name="rmsprop_step", atol=1e-5)
