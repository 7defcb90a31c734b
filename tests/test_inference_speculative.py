import copy
import itertools

import pytest
import torch
from scipy.stats import chisquare

from llmcourse.inference.quantize import quantize
from llmcourse.inference.speculative import (
    acceptance_rule,
    forward_with_cache,
    speculative_accept,
    speculative_generate,
)
from llmcourse.model import GPT, GPTConfig, next_token_probs

P_MIN = 1e-3  # chi-square p-value threshold of the statistical tests (fixed seeds: deterministic)


def gpt(seed, vocab=50, n_layer=2, n_embd=32, block_size=64, logit_scale=1.0):
    torch.manual_seed(seed)
    m = GPT(GPTConfig(vocab_size=vocab, block_size=block_size, n_layer=n_layer, n_head=2,
                      n_embd=n_embd)).eval()
    if logit_scale != 1.0:  # random-init logits are nearly flat: spread the distributions
        with torch.no_grad():
            m.lm_head.weight.mul_(logit_scale)
    return m


def random_dists(seed, V=5, n=200):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        p = torch.rand(V, generator=g, dtype=torch.float64) ** 3
        q = torch.rand(V, generator=g, dtype=torch.float64) ** 3
        if i % 4 == 1:
            q[: V // 2] = 0  # the draft cannot propose some tokens the target likes
        if i % 4 == 2:
            p[torch.randint(V, (1,), generator=g)] = 0
        if i % 10 == 3:
            q = p.clone()  # identical models: everything is accepted
        out.append((p / p.sum(), q / q.sum()))
    # greedy: one-hot distributions, equal and different
    e = torch.eye(V, dtype=torch.float64)
    out += [(e[0], e[0]), (e[1], e[3])]
    return out


def output_distribution(p, q, alpha, residual):
    """Enumerate: draft token x ~ q, kept with prob alpha[x], else a token ~ residual."""
    out = torch.zeros_like(p)
    for x in range(p.numel()):
        out[x] += q[x] * alpha[x]
        out += q[x] * (1 - alpha[x]) * residual
    return out


# ------------------------------------------------------------------------- the rule
def test_acceptance_rule_hand_computed():
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.3, 0.5])
    alpha, residual = acceptance_rule(p, q)
    assert torch.allclose(alpha, torch.tensor([1.0, 1.0, 0.4]))  # min(1, p/q)
    assert torch.allclose(residual, torch.tensor([1.0, 0.0, 0.0]))  # norm(max(0, p - q))
    p, q = torch.tensor([0.4, 0.4, 0.1, 0.1]), torch.tensor([0.1, 0.2, 0.3, 0.4])
    alpha, residual = acceptance_rule(p, q)
    assert torch.allclose(alpha, torch.tensor([1.0, 1.0, 1 / 3, 0.25]))
    assert torch.allclose(residual, torch.tensor([0.6, 0.4, 0.0, 0.0]))
    # batched over leading dims
    a2, r2 = acceptance_rule(torch.stack([p, q]), torch.stack([q, p]))
    assert torch.allclose(a2[0], alpha) and torch.allclose(r2[0], residual)


def test_rule_preserves_the_target_distribution_exactly():
    for p, q in random_dists(0):
        alpha, residual = acceptance_rule(p, q)
        assert torch.allclose(output_distribution(p, q, alpha, residual), p, atol=1e-12, rtol=0)
        # acceptance probability = sum_x min(p, q) = 1 - TV(p, q)
        assert torch.isclose((q * alpha).sum(), torch.minimum(p, q).sum(), atol=1e-12)


def test_the_enumeration_catches_the_usual_mistakes():
    p, q = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), torch.tensor(
        [0.2, 0.3, 0.5], dtype=torch.float64)
    alpha, residual = acceptance_rule(p, q)
    assert not torch.allclose(output_distribution(p, q, alpha, p), p)  # resample from p
    assert not torch.allclose(output_distribution(p, q, torch.ones(3), residual), p)  # keep all


def test_speculative_accept_thresholds_on_u():
    p, q = torch.tensor([0.5, 0.3, 0.2]), torch.tensor([0.2, 0.3, 0.5])
    g = torch.Generator().manual_seed(0)
    assert speculative_accept(p, q, 0, 0.999, g) == (True, 0)  # p >= q: always kept
    assert speculative_accept(p, q, 2, 0.399, g) == (True, 2)  # kept iff u < 0.4
    for _ in range(20):
        assert speculative_accept(p, q, 2, 0.41, g) == (False, 0)  # residual: all on token 0
    # greedy (one-hot): kept iff the draft's argmax is the target's
    e = torch.eye(4)
    assert speculative_accept(e[1], e[1], 1, 0.0) == (True, 1)
    assert speculative_accept(e[1], e[3], 3, 0.0) == (False, 1)


def test_speculative_accept_samples_the_target_distribution():
    p = torch.tensor([0.1, 0.5, 0.15, 0.25])
    q = torch.tensor([0.4, 0.1, 0.3, 0.2])
    g = torch.Generator().manual_seed(0)
    n = 2000
    counts, wrong = torch.zeros(4), torch.zeros(4)
    for _ in range(n):
        x = int(torch.multinomial(q, 1, generator=g))
        u = float(torch.rand((), generator=g))
        counts[speculative_accept(p, q, x, u, g)[1]] += 1
        # the usual mistake on the same draws: on rejection, resample from p itself
        wrong[x if u < min(1.0, float(p[x] / q[x])) else int(torch.multinomial(p, 1,
                                                                             generator=g))] += 1
    assert chisquare(counts.numpy(), (n * p).numpy()).pvalue > P_MIN
    assert chisquare(wrong.numpy(), (n * p).numpy()).pvalue < P_MIN  # the test has power


def test_accept_bad_inputs():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])
    with pytest.raises(TypeError, match="p must be"):
        acceptance_rule([0.5, 0.5], q)
    with pytest.raises(ValueError, match="q must be a floating-point"):
        acceptance_rule(p, torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="sum to 1"):
        acceptance_rule(torch.tensor([0.5, 0.6]), q)
    with pytest.raises(ValueError, match="non-negative"):
        acceptance_rule(torch.tensor([1.5, -0.5]), q)
    with pytest.raises(ValueError, match="same shape"):
        acceptance_rule(torch.tensor([1.0, 0.0, 0.0]), q)
    with pytest.raises(ValueError, match="q = 0"):
        speculative_accept(p, q, 1, 0.5)
    with pytest.raises(ValueError, match=r"u must be a number in \[0.0, 1.0\)"):
        speculative_accept(p, q, 0, 1.0)
    with pytest.raises(TypeError, match="draft_token must be an int"):
        speculative_accept(p, q, True, 0.5)
    with pytest.raises(ValueError, match="draft_token must be an int >= 0 and <= 1"):
        speculative_accept(p, q, 2, 0.5)


# ------------------------------------------------------------------------- KV cache
def test_forward_with_cache_matches_the_full_forward():
    m = gpt(0)
    idx = torch.randint(50, (2, 12), generator=torch.Generator().manual_seed(0))
    full = m(idx)[0]
    for cut in (1, 5, 11):
        cache = [[] for _ in m.transformer.h]
        a = forward_with_cache(m, idx[:, :cut], cache)
        b = forward_with_cache(m, idx[:, cut:], cache)
        assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-5)
    with pytest.raises(ValueError, match="cache must be a list of 2"):
        forward_with_cache(m, idx, [[]])
    with pytest.raises(TypeError, match="llmcourse GPT"):
        forward_with_cache(torch.nn.Linear(2, 2), idx, [])


# ------------------------------------------------------------------------- generation
def noisy_copy(model, std, seed=1):
    """A draft that is the target with noise on every weight: it agrees only part of the time
    (unrelated random GPTs agree too often: with tied embeddings both tend to repeat the last
    token)."""
    draft = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in draft.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)
    return draft


@pytest.mark.parametrize("draft_len", [1, 3, 5])
def test_greedy_is_identical_to_target_generate(draft_len):
    target = gpt(0)
    draft = noisy_copy(target, 0.04)
    rates, longest = [], 0
    for seed in range(3):
        idx = torch.randint(50, (1, 4), generator=torch.Generator().manual_seed(seed))
        ref = target.generate(idx, 30, temperature=0)
        out, st = speculative_generate(target, draft, idx, 30, draft_len)
        assert torch.equal(out, ref)
        rates.append(st["acceptance_rate"])
        longest = max(longest, *st["accepted"])
        # every round emits its accepted drafts + one token of the target's
        assert sum(st["accepted"]) + st["rounds"] == 30
        assert st["target_calls"] == st["rounds"] and st["draft_calls"] == sum(st["proposed"])
        nocache, _ = speculative_generate(target, draft, idx, 30, draft_len, use_cache=False)
        assert torch.equal(nocache, ref)
    assert max(rates) < 0.8  # the draft disagrees often (measured 0.02-0.76)
    assert longest >= min(draft_len, 2)  # and yet whole runs of drafts get accepted


def test_a_perfect_draft_is_always_accepted():
    target = gpt(0)
    idx = torch.tensor([[1, 2, 3]])
    out, st = speculative_generate(target, target, idx, 20, 4)
    assert torch.equal(out, target.generate(idx, 20, temperature=0))
    assert st["acceptance_rate"] == 1.0
    assert st["proposed"] == [4, 4, 4, 4] and st["target_calls"] == 4  # 5 tokens a call
    # an int8 copy of the target is an almost perfect draft
    _, st = speculative_generate(target, quantize(target, "int8-channel"), idx, 20, 4)
    assert st["acceptance_rate"] > 0.8


def test_zero_new_tokens_and_modes_restored():
    target, draft = gpt(0).train(), gpt(1)
    idx = torch.tensor([[1, 2]])
    out, st = speculative_generate(target, draft, idx, 0, 3)
    assert torch.equal(out, idx) and st["rounds"] == 0
    speculative_generate(target, draft, idx, 3, 3)
    assert target.training and not draft.training


def _exact_sequence_probs(model, idx, n, V, temperature):
    probs = {}
    with torch.no_grad():
        for seq in itertools.product(range(V), repeat=n):
            pr, cur = 1.0, idx
            for tok in seq:
                p = next_token_probs(model(cur)[0][0, -1], temperature).double()
                pr *= float(p[tok])
                cur = torch.cat([cur, torch.tensor([[tok]])], dim=1)
            probs[seq] = pr
    return probs


def _chi_square(counts, probs, n):
    """Chi-square over cells expecting >= 5 draws, the rarer ones pooled into one cell."""
    total = sum(probs.values())
    exp = {k: n * v / total for k, v in probs.items()}
    big = [k for k in exp if exp[k] >= 5]
    obs = [counts[k] for k in big] + [sum(counts[k] for k in exp if k not in big)]
    ex = [exp[k] for k in big] + [sum(exp[k] for k in exp if k not in big)]
    if ex[-1] == 0:
        obs, ex = obs[:-1], ex[:-1]
    return chisquare(obs, ex).pvalue


def _sample_runs(target, draft, idx, n_new, runs, seed):
    g = torch.Generator().manual_seed(seed)
    counts, acc, prop = {}, 0, 0
    for _ in range(runs):
        out, st = speculative_generate(target, draft, idx, n_new, 2, temperature=1.0, generator=g)
        key = tuple(out[0, idx.size(1):].tolist())
        counts[key] = counts.get(key, 0) + 1
        acc, prop = acc + sum(st["accepted"]), prop + sum(st["proposed"])
    return counts, acc / prop


@pytest.mark.slow
def test_sampling_matches_the_target_distribution():
    V, n_new, runs = 3, 3, 1000
    target = gpt(0, vocab=V, n_layer=1, n_embd=16, block_size=16, logit_scale=5.0)
    draft = gpt(1, vocab=V, n_layer=1, n_embd=16, block_size=16, logit_scale=5.0)
    idx = torch.tensor([[0, 1]])
    probs = _exact_sequence_probs(target, idx, n_new, V, 1.0)  # 27 sequences of 3 tokens
    counts, rate = _sample_runs(target, draft, idx, n_new, runs, seed=0)
    counts = {k: counts.get(k, 0) for k in probs}
    assert _chi_square(counts, probs, runs) > P_MIN
    assert 0.5 < rate < 0.95  # measured 0.73: the draft is wrong about a quarter of the time
    # the same draws are far from the draft's own distribution: the test can tell them apart
    draft_probs = _exact_sequence_probs(draft, idx, n_new, V, 1.0)
    assert _chi_square(counts, draft_probs, runs) < P_MIN


def test_generate_bad_inputs():
    target, draft = gpt(0), gpt(1)
    idx = torch.tensor([[1, 2]])
    with pytest.raises(TypeError, match="draft must be a llmcourse GPT"):
        speculative_generate(target, "gpt", idx, 3, 2)
    with pytest.raises(ValueError, match="share a vocabulary"):
        speculative_generate(target, gpt(1, vocab=40), idx, 3, 2)
    with pytest.raises(ValueError, match="one sequence"):
        speculative_generate(target, draft, idx.repeat(2, 1), 3, 2)
    with pytest.raises(ValueError, match="draft_len must be an int >= 1"):
        speculative_generate(target, draft, idx, 3, 0)
    with pytest.raises(TypeError, match="max_new_tokens must be an int"):
        speculative_generate(target, draft, idx, 3.0, 2)
    with pytest.raises(ValueError, match="temperature"):
        speculative_generate(target, draft, idx, 3, 2, temperature=-1.0)
    with pytest.raises(ValueError, match="block_size 64"):
        speculative_generate(target, draft, idx, 63, 2)
    with pytest.raises(ValueError, match="token ids"):
        speculative_generate(target, draft, torch.tensor([[50]]), 3, 2)
    with pytest.raises(TypeError, match="generator"):
        speculative_generate(target, draft, idx, 3, 2, generator=0)
    with pytest.raises(TypeError, match="use_cache"):
        speculative_generate(target, draft, idx, 3, 2, use_cache=1)
