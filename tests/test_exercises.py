import pytest
import torch

from llmcourse.exercises import Case, check_softmax, run_checks


def test_correct_softmax_passes(capsys):
    assert check_softmax(lambda x: torch.softmax(x, -1))
    assert "✅" in capsys.readouterr().out


def test_wrong_answers_fail_with_explanations(capsys):
    assert not check_softmax(lambda x: x.exp() / x.exp().sum(-1, keepdim=True))  # overflows
    out = capsys.readouterr().out
    assert "❌" in out and "hint" in out
    assert not check_softmax(lambda x: torch.softmax(x, 0))  # wrong dimension
    assert not check_softmax(lambda x: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def test_not_implemented_is_friendly(capsys):
    def todo(x):
        raise NotImplementedError

    assert not check_softmax(todo)
    assert "not implemented yet" in capsys.readouterr().out


def test_run_checks_compares_types():
    assert run_checks(lambda a: a + 1, [Case((1,), 2)], name="inc")
    assert not run_checks(lambda a: [a, a], [Case((1,), [1, 2])], name="pair")
    assert run_checks(lambda a: {"x": a * 0.5}, [Case((1.0,), {"x": 0.5})], name="d")
    assert not run_checks(lambda a: torch.zeros(2), [Case((1,), torch.zeros(3))], name="shape")
    with pytest.raises(TypeError, match="callable"):
        run_checks(3, [Case((1,), 2)], name="x")
    with pytest.raises(ValueError, match="cases"):
        run_checks(abs, [], name="x")


def test_run_checks_does_not_truncate_or_crash_on_wrong_types(capsys):
    exact = torch.tensor([[2, 0], [1, 3]])
    # float counts with the right values pass; 2.5 must not pass as 2 by truncation
    assert run_checks(lambda: exact.float(), [Case((), exact)], name="counts")
    assert not run_checks(lambda: exact.float() + 0.5, [Case((), exact)], name="counts")
    # a tensor of several numbers where one number is expected fails, with an explanation
    assert not run_checks(lambda: torch.zeros(2), [Case((), 1.5)], name="ppl")
    assert "❌" in capsys.readouterr().out
