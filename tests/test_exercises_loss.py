import math

from llmcourse.exercises.loss import check_bits_per_byte, check_rmsprop_step


def test_bits_per_byte_checker(capsys):
    assert check_bits_per_byte(lambda loss, nt, nb: loss * nt / nb / math.log(2))
    assert not check_bits_per_byte(lambda loss, nt, nb: loss / math.log(2))  # per token
    assert not check_bits_per_byte(lambda loss, nt, nb: loss * nt / nb)  # nats
    assert "❌" in capsys.readouterr().out


def test_rmsprop_checker(capsys):
    def good(p, g, v, lr, alpha=0.99, eps=1e-8):
        v = alpha * v + (1 - alpha) * g**2
        return p - lr * g / (v.sqrt() + eps), v

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
