import math

import torch
import torch.nn.functional as F

from llmcourse.exercises.language_models import check_bigram_counts, check_perplexity


def good_counts(ids, V):
    c = torch.zeros(V, V, dtype=torch.long)
    for a, b in zip(ids, ids[1:]):
        c[a, b] += 1
    return c


def test_bigram_counts_checker(capsys):
    assert check_bigram_counts(good_counts)
    assert not check_bigram_counts(lambda ids, V: good_counts(ids, V).T)  # transposed
    assert not check_bigram_counts(lambda ids, V: good_counts(ids[:-1], V))  # drops the last pair
    assert "❌" in capsys.readouterr().out

    def todo(ids, V):
        raise NotImplementedError

    assert not check_bigram_counts(todo)
    assert "not implemented" in capsys.readouterr().out


def test_perplexity_checker():
    assert check_perplexity(lambda lg, t: math.exp(F.cross_entropy(lg, t).item()))
    assert not check_perplexity(lambda lg, t: F.cross_entropy(lg, t).item())  # forgot exp
    naive = lambda lg, t: math.exp(-torch.log(torch.exp(lg) / torch.exp(lg).sum(-1, keepdim=True))[
        torch.arange(len(t)), t].mean().item())
    assert not check_perplexity(naive)  # overflows on large logits
