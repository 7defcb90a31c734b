from llmcourse.exercises.transformer import check_gpt_params, check_top_p
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
