import pytest
import torch

from llmcourse.exercises.inference import check_int8_absmax, check_speculative_accept
from llmcourse.inference.quantize import dequantize_int8, quantize_int8
from llmcourse.inference.speculative import acceptance_rule


def _not_done(*args):
    raise NotImplementedError


def _quant(scale_of, rounding=torch.round):
    def fn(w):
        s = scale_of(w)
        return rounding(w / s).clamp(-127, 127).to(torch.int8), s
    return fn


def test_int8_absmax_passes_the_reference(capsys):
    assert check_int8_absmax(quantize_int8, dequantize_int8)
    assert check_int8_absmax(_quant(lambda w: w.abs().max() / 127),
                             lambda q, s: q.float() * s)
    assert "all 4 hidden cases pass" in capsys.readouterr().out


def test_int8_absmax_catches_the_usual_mistakes(capsys):
    assert not check_int8_absmax(_quant(lambda w: w.abs().max() / 128), dequantize_int8)
    out = capsys.readouterr().out
    assert "case 1 of 4 is wrong" in out and "not 128" in out
    assert not check_int8_absmax(_quant(lambda w: w.max() / 127), dequantize_int8)
    out = capsys.readouterr().out
    assert "case 2 of 4 is wrong" in out and "abs first" in out
    assert not check_int8_absmax(_quant(lambda w: w.abs().max() / 127, torch.trunc),
                                 dequantize_int8)
    assert "not towards zero" in capsys.readouterr().out
    assert not check_int8_absmax(quantize_int8, lambda q, s: q.float() / s)
    assert "multiplying" in capsys.readouterr().out
    assert not check_int8_absmax(_not_done, dequantize_int8)
    assert "not implemented" in capsys.readouterr().out


def test_speculative_accept_passes_the_reference(capsys):
    assert check_speculative_accept(acceptance_rule)
    assert "all 3 hidden cases pass" in capsys.readouterr().out


def test_speculative_accept_catches_the_usual_mistakes(capsys):
    def no_min(p, q):
        return p / q, acceptance_rule(p, q)[1]

    def resample_from_p(p, q):
        return acceptance_rule(p, q)[0], p

    def unnormalised(p, q):
        return acceptance_rule(p, q)[0], (p - q).clamp(min=0)

    for wrong in (no_min, resample_from_p):
        assert not check_speculative_accept(wrong)
        out = capsys.readouterr().out
        assert "case 1 of 3 is wrong" in out and "min(1, p / q)" in out and "not from p" in out
    assert not check_speculative_accept(unnormalised)
    assert "normalised" in capsys.readouterr().out
    assert not check_speculative_accept(_not_done)
    assert "not implemented" in capsys.readouterr().out


def test_checkers_refuse_non_callables():
    with pytest.raises(TypeError, match="dequantize_fn must be callable"):
        check_int8_absmax(quantize_int8, None)
    with pytest.raises(TypeError, match="callable"):
        check_speculative_accept("acceptance_rule")
