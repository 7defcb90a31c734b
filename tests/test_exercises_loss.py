import math

import pytest

from llmcourse.exercises.loss import check_bits_per_byte, check_rmsprop_step


def test_bits_per_byte_checker(capsys):
    assert check_bits_per_byte(lambda loss, nt, nb: loss * nt / nb / math.log(2))
    assert not check_bits_per_byte(lambda loss, nt, nb: loss / math.log(2))  # per token
    assert not check_bits_per_byte(lambda loss, nt, nb: loss * nt / nb)  # nats
    assert "❌" in capsys.readouterr().out


def good(p, g, v, lr, alpha=0.99, eps=1e-8):
    v = alpha * v + (1 - alpha) * g**2
    return p - lr * g / (v.sqrt() + eps), v


def test_rmsprop_checker(capsys):
    def no_state(p, g, v, lr, alpha=0.99, eps=1e-8):  # forgets to return the updated v
        new_v = alpha * v + (1 - alpha) * g**2
        return p - lr * g / (new_v.sqrt() + eps), v

    def todo(*args, **kwargs):
        raise NotImplementedError

    assert check_rmsprop_step(good)
    assert not check_rmsprop_step(no_state)
    assert not check_rmsprop_step(todo)
    out = capsys.readouterr().out
    assert "✅" in out and "not implemented" in out


@pytest.mark.parametrize("default_eps", [True, False])
def test_rmsprop_checker_catches_eps_inside_the_root_at_1e_8(capsys, default_eps):
    """The slip the chapter names, at the ε it names: √(v + ε) instead of √v + ε, ε = 1e-8."""
    def eps_inside(p, g, v, lr, alpha=0.99, eps=1e-8):
        v = alpha * v + (1 - alpha) * g**2
        return p - lr * g / (v + (1e-8 if default_eps else eps)).sqrt(), v

    assert not check_rmsprop_step(eps_inside)
    out = capsys.readouterr().out
    assert "case 4 of 4 is wrong" in out  # the large-gradient cases cannot tell the two apart
    assert "outside the square root" in out


def test_rmsprop_checker_catches_a_missing_eps_and_a_wrong_mean(capsys):
    def no_eps(p, g, v, lr, alpha=0.99, eps=1e-8):
        v = alpha * v + (1 - alpha) * g**2
        return p - lr * g / v.sqrt(), v

    def alpha_swapped(p, g, v, lr, alpha=0.99, eps=1e-8):
        v = (1 - alpha) * v + alpha * g**2
        return p - lr * g / (v.sqrt() + eps), v

    assert not check_rmsprop_step(no_eps)
    assert not check_rmsprop_step(alpha_swapped)
    assert check_rmsprop_step(good)
