import math

import torch

from llmcourse.exercises.attention import check_attention, check_causal_mask


def good_attention(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return s.softmax(-1) @ v


def test_check_attention_accepts_a_correct_solution(capsys):
    assert check_attention(good_attention)
    assert "all 4 hidden cases pass" in capsys.readouterr().out


def test_check_attention_rejects_common_mistakes(capsys):
    def unscaled(q, k, v, mask=None):
        s = q @ k.transpose(-2, -1)
        if mask is not None:
            s = s.masked_fill(~mask, float("-inf"))
        return s.softmax(-1) @ v

    def wrong_axis(q, k, v, mask=None):
        s = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1])
        return s.softmax(-2) @ v

    def ignores_mask(q, k, v, mask=None):
        return good_attention(q, k, v)

    def todo(q, k, v, mask=None):
        raise NotImplementedError

    assert not check_attention(unscaled)
    assert "sqrt" in capsys.readouterr().out
    assert not check_attention(wrong_axis)
    assert not check_attention(ignores_mask)
    assert "-inf" in capsys.readouterr().out
    assert not check_attention(todo)
    assert "not implemented" in capsys.readouterr().out


def test_check_causal_mask(capsys):
    assert check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).tril())
    assert not check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu())
    assert not check_causal_mask(lambda T: torch.ones(T, T).tril())  # float, not bool
    assert "torch.bool" in capsys.readouterr().out
    assert not check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).tril(-1))


def test_check_split_heads_catches_transpose_before_view(capsys):
    from llmcourse.attention import split_heads
    from llmcourse.exercises.attention import check_split_heads

    def good(x, n_head):
        B, T, C = x.shape
        return x.view(B, T, n_head, C // n_head).transpose(1, 2)

    def transpose_first(x, n_head):  # the usual bug: right shape, channels and time mixed up
        B, T, C = x.shape
        return x.transpose(1, 2).reshape(B, n_head, T, C // n_head)

    def no_transpose(x, n_head):
        B, T, C = x.shape
        return x.reshape(B, n_head, T, C // n_head)

    assert check_split_heads(good)
    assert check_split_heads(split_heads)  # the package's own, an independent version
    assert "all 4 hidden cases pass" in capsys.readouterr().out
    assert transpose_first(torch.zeros(2, 5, 12), 4).shape == good(torch.zeros(2, 5, 12), 4).shape
    assert not check_split_heads(transpose_first)
    out = capsys.readouterr().out
    assert "case 1 of 4 is wrong" in out and "x.view(B, T, n_head, hs) first" in out
    assert not check_split_heads(no_transpose)
    assert not check_split_heads(lambda x, n_head: x)  # not split at all
    assert not check_split_heads(lambda x, n_head: (_ for _ in ()).throw(NotImplementedError))
    assert "not implemented" in capsys.readouterr().out


def test_check_split_heads_rejects_a_non_callable():
    import pytest

    from llmcourse.exercises.attention import check_split_heads

    with pytest.raises(TypeError, match="fn"):
        check_split_heads("x.view(B, T, nh, hs)")
