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
