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
                       alpha: float, eps: float) -> torch.Tensor:
    p = torch.nn.Parameter(param.clone())
    opt = torch.optim.RMSprop([p], lr=lr, alpha=alpha, eps=eps)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach()


# Where ε goes only shows when √v is not much larger than ε: gradients of about 1e-5 (common in
# the deep layers of a real network) give √v ≈ 1e-6, so √(v + 1e-8) ≈ 1e-4 is a hundred times
# √v + 1e-8. With gradients of about 1, both are √v to 7 digits and no test could tell them apart.
_TINY_GRAD = 1e-5
EPS_HINT = ("ε goes outside the square root, θ ← θ − η g / (√v + ε), as in torch.optim.RMSprop: "
            "√(v + ε) is the same for large gradients but not for tiny ones")


def check_rmsprop_step(fn: Callable[..., tuple[torch.Tensor, torch.Tensor]]) -> bool:
    """Check ``fn(param, grad, v, lr, alpha=0.99, eps=1e-8) -> (param, v)`` against
    ``torch.optim.RMSprop`` over several steps.

    The last case uses gradients of about 1e-5, where ``√(v + ε)`` (ε inside the square root, a
    common slip) differs from ``√v + ε`` by a factor of about 100 at ε = 1e-8; the earlier cases
    (gradients of at least 0.5, where the two agree to about 1e-6) catch a wrong running mean or a forgotten state.
    """
    check_fn(fn)

    def run(param, grads, lr, alpha, eps):
        v = torch.zeros_like(param)
        for g in grads:
            param, v = fn(param, g, v, lr, alpha=alpha, eps=eps)
        return param

    gen = torch.Generator().manual_seed(0)
    cases = []
    settings = [(0.01, 0.99, 1, 1.0), (0.01, 0.99, 5, 1.0), (0.1, 0.9, 8, 1.0),
                (0.01, 0.99, 5, _TINY_GRAD)]
    for lr, alpha, n, scale in settings:
        param = torch.randn(6, generator=gen)
        grads = [torch.randn(6, generator=gen) for _ in range(n)]
        grads = [scale * g.sign() * (0.5 + g.abs()) for g in grads]  # |g| >= 0.5 · scale
        hint = (EPS_HINT if scale < 1 else
                "v ← α v + (1 − α) g², then θ ← θ − η g / (√v + ε); return the new v too")
        cases.append(Case((param, grads, lr, alpha, 1e-8),
                          _rmsprop_reference(param, grads, lr, alpha, 1e-8), hint=hint))
    return run_checks(run, cases, name="rmsprop_step", atol=1e-5)
