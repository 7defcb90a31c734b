"""Chapter 10's checkers pass the reference and catch the usual mistakes."""

import math

import torch
import torch.nn.functional as F

from llmcourse.align import dpo_loss, group_advantages, pass_at_k
from llmcourse.exercises.post_training import (
    check_dpo_loss,
    check_group_advantages,
    check_pass_at_k,
)


def todo(*args):
    raise NotImplementedError


def test_dpo_loss_checker(capsys):
    assert check_dpo_loss(dpo_loss)  # the tuple (loss, rewards, rewards) is accepted
    assert check_dpo_loss(lambda pc, pr, rc, rr, b: dpo_loss(pc, pr, rc, rr, b)[0])

    def plain(pc, pr, rc, rr, beta):  # written from the paper, stable: passes
        return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()

    assert check_dpo_loss(plain)
    ref_flipped = lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pc - pr) + (rc - rr))).mean()
    no_beta = lambda pc, pr, rc, rr, b: -F.logsigmoid((pc - rc) - (pr - rr)).mean()
    summed = lambda pc, pr, rc, rr, b: -F.logsigmoid(b * ((pc - rc) - (pr - rr))).sum()
    unstable = lambda pc, pr, rc, rr, b: -torch.log(
        torch.sigmoid(b * ((pc - rc) - (pr - rr)))).mean()
    for wrong in (ref_flipped, no_beta, summed, unstable):
        assert not check_dpo_loss(wrong)
    capsys.readouterr()
    assert not check_dpo_loss(todo)
    assert "not implemented" in capsys.readouterr().out


def test_group_advantages_checker(capsys):
    assert check_group_advantages(group_advantages)

    def plain(r, g):
        x = r.view(-1, g)
        return ((x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-4)).flatten()

    assert check_group_advantages(plain)
    whole_batch = lambda r, g: (r - r.mean()) / (r.std() + 1e-4)  # not per group
    population = lambda r, g: ((r.view(-1, g) - r.view(-1, g).mean(1, keepdim=True))
                               / (r.view(-1, g).std(1, correction=0, keepdim=True) + 1e-4)
                               ).flatten()
    no_eps = lambda r, g: ((r.view(-1, g) - r.view(-1, g).mean(1, keepdim=True))
                           / r.view(-1, g).std(1, keepdim=True)).flatten()  # NaN on equal rewards
    centred_only = lambda r, g: (r.view(-1, g) - r.view(-1, g).mean(1, keepdim=True)).flatten()
    for wrong in (whole_batch, population, no_eps, centred_only):
        assert not check_group_advantages(wrong)
    capsys.readouterr()
    assert not check_group_advantages(todo)
    assert "not implemented" in capsys.readouterr().out


def test_pass_at_k_checker(capsys):
    assert check_pass_at_k(pass_at_k)
    assert check_pass_at_k(
        lambda n, c, k: 1.0 if n - c < k else 1 - math.comb(n - c, k) / math.comb(n, k))
    naive = lambda n, c, k: 1 - (1 - c / n) ** k  # sampling with replacement: biased
    overflowing = lambda n, c, k: 1 - (math.factorial(n - c) / math.factorial(n - c - k)) / (
        math.factorial(n) / math.factorial(n - k)) if n - c >= k else 1.0
    no_edge = lambda n, c, k: 1 - math.comb(n - c, k) / math.comb(n, k) if c else 1.0  # c=0 wrong
    for wrong in (naive, overflowing, no_edge):
        assert not check_pass_at_k(wrong)
    capsys.readouterr()
    assert not check_pass_at_k(todo)
    assert "not implemented" in capsys.readouterr().out
