import pytest
import torch

from llmcourse.exercises.transformer import check_gpt_params, check_kv_cache_update, check_top_p
from llmcourse.model import next_token_probs


def gpt_params(V, T, L, C, bias=True):
    per_block = 12 * C * C + (13 * C if bias else 2 * C)
    return V * C + T * C + L * per_block + (2 * C if bias else C)


def test_gpt_params_checker(capsys):
    assert check_gpt_params(gpt_params)
    assert not check_gpt_params(lambda V, T, L, C, bias=True: gpt_params(V, T, L, C, True))
    assert not check_gpt_params(lambda V, T, L, C, bias=True: 2 * gpt_params(V, T, L, C, bias))
    assert "❌" in capsys.readouterr().out


def test_top_p_checker(capsys):
    assert check_top_p(lambda p, top_p: next_token_probs(p.log(), top_p=top_p))
    assert not check_top_p(lambda p, top_p: p)  # no filtering
    assert not check_top_p(lambda p, top_p: next_token_probs(p.log(), top_k=1))  # greedy
    out = capsys.readouterr().out
    assert "✅" in out and "❌" in out


def _kv_good(cache, k, v):
    if cache is None:
        return k, v
    return torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)


def test_kv_cache_checker_accepts_a_correct_update(capsys):
    assert check_kv_cache_update(_kv_good)
    assert "all 4 hidden cases pass" in capsys.readouterr().out


@pytest.mark.slow
def test_kv_cache_checker_compares_generation_with_and_without_a_cache(capsys):
    # forgetting the past: each token attends only to itself; generation drifts from no-cache
    assert not check_kv_cache_update(lambda cache, k, v: (k, v))
    out = capsys.readouterr().out
    assert "case 1 of 4 is wrong" in out and "'generate'" in out and "without a cache" in out
    # a typo that keeps the shapes right: the values are cached from the keys
    assert not check_kv_cache_update(
        lambda cache, k, v: (k, v) if cache is None else
        (torch.cat([cache[0], k], 2), torch.cat([cache[0], v], 2)))
    assert "case 1 of 4 is wrong" in capsys.readouterr().out
    # new before past: attention over a set does not care for one new token, the order does
    assert not check_kv_cache_update(
        lambda cache, k, v: (k, v) if cache is None else
        (torch.cat([k, cache[0]], 2), torch.cat([v, cache[1]], 2)))
    assert "the past first" in capsys.readouterr().out
    # the wrong dim: the heads are doubled
    assert not check_kv_cache_update(
        lambda cache, k, v: (k, v) if cache is None else
        (torch.cat([cache[0], cache[0]], 1), torch.cat([cache[1], cache[1]], 1)))
    assert "raised ValueError" in capsys.readouterr().out
    assert not check_kv_cache_update(lambda cache, k, v: k)  # not a pair
    assert "pair" in capsys.readouterr().out


def test_kv_cache_checker_reference_is_generation_without_a_cache():
    """The checker's own cached decoding, with a correct update, equals the package's
    generate() both with and without its KV cache (an independent implementation)."""
    from llmcourse.exercises.transformer import _generate_with_cache, _kv_model

    model = _kv_model()
    prompt = torch.tensor([[3, 1, 4], [1, 5, 9]])
    tokens, logits = _generate_with_cache(_kv_good, model, prompt, 12)
    assert torch.equal(tokens, model.generate(prompt, 12, temperature=0, use_cache=False))
    assert torch.equal(tokens, model.generate(prompt, 12, temperature=0, use_cache=True))
    assert logits.shape == (2, 12, 32)
    assert len(set(tokens[0, 3:].tolist())) > 1  # the test model does not repeat one token


def test_kv_cache_checker_rejects_a_non_callable():
    with pytest.raises(TypeError, match="fn"):
        check_kv_cache_update(None)
