"""The chapter 05 checkers pass independent references (PyTorch's rms_norm, Hugging Face's
repeat_kv, Mixtral's router) and catch the usual mistakes with the right hint."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from torch.nn import functional as F
from transformers.models.llama.modeling_llama import repeat_kv as hf_repeat_kv

from llmcourse.exercises.modern_decoders import (
    check_repeat_kv,
    check_rms_norm,
    check_top_k_routing,
)
from llmcourse.llama import repeat_kv


def _not_done(*args):
    raise NotImplementedError


# --- RMSNorm ----------------------------------------------------------------------------------

def test_rms_norm_passes_torch_and_the_formula(capsys):
    assert check_rms_norm(lambda x, w, eps: F.rms_norm(x, (x.shape[-1],), w, eps))
    assert check_rms_norm(lambda x, w, eps: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)
                                                            + eps) * w)
    assert "all 3 hidden cases pass" in capsys.readouterr().out


def test_rms_norm_catches_the_usual_mistakes(capsys):
    def layer_norm(x, w, eps):  # subtracts the mean
        return F.layer_norm(x, (x.shape[-1],), w, None, eps)

    def no_eps(x, w, eps):
        return x / x.pow(2).mean(-1, keepdim=True).sqrt() * w

    def eps_outside(x, w, eps):
        return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * w

    def wrong_dim(x, w, eps):
        return x / torch.sqrt(x.pow(2).mean(0, keepdim=True) + eps) * w

    assert not check_rms_norm(layer_norm)
    out = capsys.readouterr().out
    assert "case 1 of 3 is wrong" in out and "does not subtract the mean" in out
    for wrong in (no_eps, eps_outside):
        assert not check_rms_norm(wrong)
        out = capsys.readouterr().out
        assert "case 2 of 3 is wrong" in out and "inside the square root" in out
    assert not check_rms_norm(wrong_dim)
    assert "is wrong" in capsys.readouterr().out
    assert not check_rms_norm(_not_done)
    assert "not implemented" in capsys.readouterr().out


# --- repeat_kv --------------------------------------------------------------------------------

def test_repeat_kv_passes_hugging_face_and_the_package(capsys):
    assert check_repeat_kv(hf_repeat_kv)
    assert check_repeat_kv(repeat_kv)
    assert check_repeat_kv(lambda x, n: x.repeat_interleave(n, dim=1))
    assert "all 3 hidden cases pass" in capsys.readouterr().out


def test_repeat_kv_catches_repeat_order_and_wrong_dim(capsys):
    assert not check_repeat_kv(lambda x, n: x.repeat(1, n, 1, 1))
    out = capsys.readouterr().out
    assert "case 1 of 3 is wrong" in out and "repeat_interleave order" in out
    assert not check_repeat_kv(lambda x, n: x.repeat_interleave(n, dim=2))
    assert "case 1 of 3 is wrong" in capsys.readouterr().out
    assert not check_repeat_kv(_not_done)
    assert "not implemented" in capsys.readouterr().out


# --- top-k routing ----------------------------------------------------------------------------

def _mixtral_router(logits, k):
    """Hugging Face Mixtral's rule, written independently: softmax over all experts, top-k,
    renormalise over the chosen (equal to a softmax over the chosen logits)."""
    probs = logits.softmax(dim=-1)
    w, idx = probs.topk(k, dim=-1)
    return w / w.sum(dim=-1, keepdim=True), idx


def test_top_k_routing_passes_the_mixtral_rule(capsys):
    assert check_top_k_routing(_mixtral_router)
    assert "all 3 hidden cases pass" in capsys.readouterr().out


def test_top_k_routing_catches_the_usual_mistakes(capsys):
    def not_renormalised(logits, k):  # softmax over all experts, then pick: sums to < 1
        w, idx = logits.softmax(dim=-1).topk(k, dim=-1)
        return w, idx

    def smallest(logits, k):
        top, idx = logits.topk(k, dim=-1, largest=False)
        return top.softmax(dim=-1), idx

    def softmax_over_tokens(logits, k):
        top, idx = logits.topk(k, dim=-1)
        return top.softmax(dim=0), idx

    assert not check_top_k_routing(not_renormalised)
    out = capsys.readouterr().out
    assert "case 1 of 3 is wrong" in out and "renormalise" in out
    for wrong in (smallest, softmax_over_tokens):
        assert not check_top_k_routing(wrong)
        assert "is wrong" in capsys.readouterr().out
    assert not check_top_k_routing(lambda logits, k: _mixtral_router(logits, k)[::-1])
    assert "is wrong" in capsys.readouterr().out
    assert not check_top_k_routing(_not_done)
    assert "not implemented" in capsys.readouterr().out


def test_checkers_refuse_non_callables():
    for checker in (check_rms_norm, check_repeat_kv, check_top_k_routing):
        with pytest.raises(TypeError, match="callable"):
            checker("not a function")
