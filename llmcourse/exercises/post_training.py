"""Checkers for chapter 10 (post-training): the DPO loss, GRPO's group advantages, pass@k."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from llmcourse.align.dpo import dpo_loss
from llmcourse.align.grpo import group_advantages
from llmcourse.exercises import Case, check_fn, run_checks


def _loss_only(fn: Callable) -> Callable:
    """Accept ``fn`` returning the loss or ``(loss, chosen_rewards, rejected_rewards)``."""

    def wrapped(*args):
        out = fn(*args)
        return out[0] if isinstance(out, (tuple, list)) else out

    return wrapped


def check_dpo_loss(fn: Callable[..., torch.Tensor]) -> bool:
    """Check ``fn(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
    ref_rejected_logps, beta) -> loss`` (the batch mean; a tuple whose first item is the loss
    is accepted too)."""
    check_fn(fn)

    def case(pc, pr, rc, rr, beta, hint=""):
        args = tuple(torch.tensor(v) for v in (pc, pr, rc, rr)) + (beta,)
        return Case(args, dpo_loss(*args)[0], hint=hint)

    cases = [
        case([-2.0], [-2.0], [-2.0], [-2.0], 0.1,
             hint="policy == reference: every log-ratio is 0 and the loss is log 2"),
        case([-1.0], [-3.0], [-2.0], [-2.5], 1.0,
             hint="the reference's log-probs are subtracted: (pc - rc) - (pr - rr)"),
        case([-1.0], [-3.0], [-2.0], [-2.5], 0.5,
             hint="multiply the margin by beta before the log-sigmoid"),
        case([-5.0, -1.0, -2.0], [-1.0, -6.0, -2.5], [-4.0, -1.5, -2.0], [-1.5, -5.0, -3.0], 0.2,
             hint="average the per-pair losses over the batch (mean, not sum)"),
        case([-1500.0], [-1.0], [-1.0], [-1.0], 1.0,
             hint="sigmoid(-1499) underflows to 0 and -log(0) is inf: use F.logsigmoid"),
    ]
    return run_checks(_loss_only(fn), cases, name="dpo_loss", atol=1e-5)


def check_group_advantages(fn: Callable[[torch.Tensor, int], torch.Tensor]) -> bool:
    """Check ``fn(rewards, group_size) -> advantages``: ``(r - group mean) / (group std + 1e-4)``
    with the sample (Bessel-corrected) std, groups of ``group_size`` adjacent rewards."""
    check_fn(fn)

    def case(rewards, g, hint=""):
        r = torch.tensor(rewards)
        return Case((r, g), group_advantages(r, g), hint=hint)

    cases = [
        case([1.0, 0.0, 0.0, 1.0], 4, hint="subtract the group's mean, divide by its std + 1e-4 "
             "(the sample std, torch.std's default)"),
        case([1.0, 0.0, 0.0, 0.0], 4,
             hint="use the sample std (torch.std's default, unbiased): sqrt(sum((r-m)^2)/(G-1))"),
        case([1.0, 0.0, 5.0, 7.0], 2,
             hint="normalise each group by its own mean and std, not the whole batch's"),
        case([1.0, 1.0, 1.0, 0.0, 1.0, 0.0], 3,
             hint="groups are adjacent: rewards[0:G] is the first prompt's group"),
        case([3.0, 3.0, 3.0, 0.0, 1.0, 2.0], 3,
             hint="a group with equal rewards has std 0: the + 1e-4 keeps its advantages at 0"),
    ]
    return run_checks(fn, cases, name="group_advantages", atol=1e-3)


def check_pass_at_k(fn: Callable[[int, int, int], float]) -> bool:
    """Check ``fn(n, c, k) -> pass@k``: the unbiased ``1 - C(n-c, k) / C(n, k)``."""
    check_fn(fn)
    cases = [
        Case((10, 3, 1), 0.3, hint="pass@1 is the share of correct samples, c / n"),
        Case((10, 3, 5), 1 - math.comb(7, 5) / math.comb(10, 5),
             hint="not 1 - (1 - c/n)**k: draw k of the n samples *without* replacement"),
        Case((5, 0, 3), 0.0, hint="no correct sample: pass@k is 0"),
        Case((6, 4, 3), 1.0, hint="when n - c < k every k-subset holds a correct sample"),
        Case((2000, 7, 100), 1 - math.comb(1993, 100) / math.comb(2000, 100),
             hint="for large n use the product 1 - prod_{i=n-c+1}^{n} (1 - k/i)"),
    ]
    return run_checks(fn, cases, name="pass_at_k", atol=1e-9)
