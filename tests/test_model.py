"""Tests for llmcourse.model: config validation, forward, counts, HF GPT-2 round trip, generate."""

import pytest
import torch
import transformers
from torch.nn import functional as F

from llmcourse.model import (
    GPT,
    GPT2_SIZES,
    GPTConfig,
    gpt2_config,
    next_token_probs,
    param_count,
)

transformers.logging.set_verbosity_error()


def small(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=16)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).eval()


# --- config and inputs -----------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [
    ("vocab_size", 0), ("block_size", -1), ("n_layer", 0), ("n_head", 0), ("n_embd", 0),
    ("dropout", 1.0), ("dropout", -0.1),
])
def test_config_rejects_bad_sizes(field, value):
    with pytest.raises(ValueError, match=field):
        GPTConfig(**{field: value})


def test_config_rejects_indivisible_heads_and_wrong_types():
    with pytest.raises(ValueError, match="n_head"):
        GPTConfig(n_embd=10, n_head=3)
    with pytest.raises(TypeError, match="n_layer"):
        GPTConfig(n_layer=2.0)
    with pytest.raises(TypeError, match="config"):
        GPT({"n_layer": 2})


def test_forward_shapes_loss_and_bad_inputs():
    m = small()
    idx = torch.randint(0, 61, (3, 10))
    logits, loss = m(idx)
    assert logits.shape == (3, 10, 61) and loss is None
    targets = torch.randint(0, 61, (3, 10))
    targets[0, :4] = -100
    _, loss = m(idx, targets)
    mask = targets != -100
    ref = F.cross_entropy(logits[mask], targets[mask])
    assert torch.allclose(loss, ref, atol=1e-6)
    with pytest.raises(ValueError, match="block_size"):
        m(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids"):
        m(torch.tensor([[0, 61]]))
    with pytest.raises(ValueError, match="token ids"):
        m(torch.tensor([[-1, 3]]))
    with pytest.raises(ValueError, match="targets"):
        m(idx, targets[:, :5])
    with pytest.raises(ValueError, match="integer"):  # a wrong dtype is a wrong value
        m(torch.zeros(1, 3))
    # bad targets are a clear error, never an IndexError on CPU or a device-side assert on CUDA
    for bad in (61, -2):
        wrong = targets.clone()
        wrong[1, 3] = bad
        with pytest.raises(ValueError, match=r"targets must be token ids in \[0, 61\) or -100"):
            m(idx, wrong)
    with pytest.raises(ValueError, match="targets must hold integer"):
        m(idx, targets.float())
    with pytest.raises(ValueError, match="at least one token"):
        m(torch.zeros(0, 4, dtype=torch.long))


def test_explicit_attention_path_matches_fused():
    m = small()
    idx = torch.randint(0, 61, (2, 12))
    logits, _, atts = m(idx, return_attentions=True)
    assert torch.allclose(logits, m(idx)[0], atol=1e-5)
    assert len(atts) == 2 and atts[0].shape == (2, 2, 12, 12)
    assert torch.allclose(atts[0].sum(-1), torch.ones(2, 2, 12), atol=1e-6)
    assert atts[1][0, 0].triu(1).abs().max() == 0  # causal: no weight on the future


# --- counts ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
def test_param_count_formula_matches_num_params(bias):
    m = small(bias=bias)
    assert param_count(m.config) == m.num_params()
    assert m.num_params(non_embedding=True) == m.num_params() - (61 + 16) * 16


def test_gpt2_family_sizes_on_meta_device():
    with torch.device("meta"):
        m = GPT(gpt2_config("gpt2"))
    assert m.num_params() == 124_439_808 == param_count(gpt2_config("gpt2"))
    expected = {"gpt2-medium": 354_823_168, "gpt2-large": 774_030_080, "gpt2-xl": 1_557_611_200}
    for name, n in expected.items():
        assert param_count(gpt2_config(name)) == n
    assert set(GPT2_SIZES) == {"gpt2", *expected}
    with pytest.raises(ValueError, match="name"):
        gpt2_config("gpt3")


def test_flops_per_token_palm_formula():
    m = small()
    n = m.num_params(non_embedding=True) + 61 * 16
    assert m.flops_per_token() == 6 * n + 12 * 2 * 2 * 8 * 16
    assert m.flops_per_token(4) == 6 * n + 12 * 2 * 2 * 8 * 4
    with pytest.raises(ValueError, match="seq_len"):
        m.flops_per_token(0)


# --- Hugging Face GPT-2 ----------------------------------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
def test_hf_round_trip_through_save_pretrained(tmp_path, bias):
    m = small(bias=bias)
    with torch.no_grad():  # a fresh model has zero biases and identity LayerNorms: perturb all
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    idx = torch.randint(0, 61, (2, 16))
    ours = m(idx)[0]
    hf = m.to_hf().eval()
    assert isinstance(hf, transformers.GPT2LMHeadModel)
    hf.save_pretrained(tmp_path)
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        theirs = loaded(idx).logits
    assert (ours - theirs).abs().max() < 1e-5
    back = GPT.from_hf(loaded).eval()
    assert back.config.bias is True and back.config.n_layer == 2
    assert (back(idx)[0] - ours).abs().max() < 1e-5
    assert back.lm_head.weight is back.transformer.wte.weight  # still tied


def test_hf_logits_differ_if_weights_differ():
    m = small()
    hf = m.to_hf().eval()
    with torch.no_grad():
        w = hf.transformer.h[0].mlp.c_fc.weight
        w.add_(0.1 * torch.randn_like(w))  # (a constant would cancel: LayerNorm outputs sum to 0)
        idx = torch.randint(0, 61, (1, 8))
        assert (hf(idx).logits - m(idx)[0]).abs().max() > 1e-3


def test_from_hf_rejects_unsupported_variants():
    cfg = transformers.GPT2Config(vocab_size=61, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                                  activation_function="relu", bos_token_id=None,
                                  eos_token_id=None)
    with pytest.raises(ValueError, match="activation_function"):
        GPT.from_hf(transformers.GPT2LMHeadModel(cfg))
    with pytest.raises(TypeError, match="GPT2LMHeadModel"):
        GPT.from_hf(torch.nn.Linear(2, 2))


# --- sampling and generation -----------------------------------------------------------------

def test_next_token_probs_strategies():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    assert torch.equal(next_token_probs(logits, 0), torch.tensor([1.0, 0, 0, 0]))
    assert torch.allclose(next_token_probs(logits), logits.softmax(-1))
    assert torch.allclose(next_token_probs(logits, 2.0), (logits / 2).softmax(-1))
    p = next_token_probs(logits, top_k=2)
    assert torch.allclose(p, torch.cat([logits[:2].softmax(-1), torch.zeros(2)]))
    full = logits.softmax(-1)  # 0.644, 0.237, 0.087, 0.032
    p = next_token_probs(logits, top_p=0.8)  # 0.644 < 0.8 → keep the first two
    assert torch.allclose(p, torch.cat([full[:2] / full[:2].sum(), torch.zeros(2)]))
    p = next_token_probs(logits, top_p=0.5)  # the most likely token alone reaches 0.5
    assert torch.equal(p, torch.tensor([1.0, 0, 0, 0]))
    assert torch.allclose(next_token_probs(logits, top_p=1.0), full)
    batch = torch.stack([logits, logits.flip(0)])
    p = next_token_probs(batch, top_k=1)
    assert torch.equal(p, torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]))


@pytest.mark.parametrize("kw,name", [
    (dict(temperature=-1.0), "temperature"), (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=0), "top_k"), (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"),
    (dict(max_new_tokens=-1), "max_new_tokens"),
])
def test_generate_validates_arguments(kw, name):
    m = small()
    args = dict(max_new_tokens=2)
    args.update(kw)
    with pytest.raises(ValueError, match=name):
        m.generate(torch.zeros(1, 2, dtype=torch.long), **args)


def test_cached_greedy_equals_recomputation_past_block_size():
    m = small()
    idx = torch.randint(0, 61, (2, 5))
    # 5 + 30 tokens: the context slides past block_size 16, where the cache is rebuilt
    a = m.generate(idx, 30, temperature=0, use_cache=True)
    b = m.generate(idx, 30, temperature=0, use_cache=False)
    assert a.shape == (2, 35) and torch.equal(a[:, :5], idx)
    assert torch.equal(a, b)
    assert m.generate(idx, 0).shape == (2, 5)


def test_cached_sampling_equals_recomputation_with_generator():
    m = small()
    idx = torch.randint(0, 61, (3, 4))
    out = []
    for use_cache in (True, False):
        g = torch.Generator().manual_seed(123)
        out.append(m.generate(idx, 20, temperature=0.8, top_k=20, top_p=0.9,
                              use_cache=use_cache, generator=g))
    assert torch.equal(out[0], out[1])
    g = torch.Generator().manual_seed(124)
    other = m.generate(idx, 20, temperature=0.8, top_k=20, top_p=0.9, generator=g)
    assert not torch.equal(other, out[0])  # the generator really drives the sampling


def test_kv_cache_logits_match_full_forward_and_mode_is_restored():
    m = small(dropout=0.1).train()
    idx = torch.randint(0, 61, (2, 9))
    m.eval()
    full = m(idx)[0]
    cache = [[] for _ in m.transformer.h]
    with torch.no_grad():
        step = m._forward_cached(idx[:, :4], cache)
        assert torch.allclose(step, full[:, 3], atol=1e-5)
        step = m._forward_cached(idx[:, 4:7], cache)  # several tokens after a cache
        assert torch.allclose(step, full[:, 6], atol=1e-5)
        step = m._forward_cached(idx[:, 7:8], cache)
        assert torch.allclose(step, full[:, 7], atol=1e-5)
        assert cache[0][0].shape == (2, 2, 8, 8)
    m.train()
    m.generate(idx[:, :2], 3)
    assert m.training  # generate() ran in eval mode and put the model back


def test_greedy_generate_matches_hugging_face_generate():
    m = small()
    idx = torch.randint(0, 61, (2, 5))
    hf = m.to_hf().eval()
    theirs = hf.generate(idx, max_new_tokens=8, do_sample=False,
                         attention_mask=torch.ones_like(idx), pad_token_id=0)
    assert torch.equal(m.generate(idx, 8, temperature=0), theirs)


def test_from_hf_rejects_untied_head():
    cfg = transformers.GPT2Config(vocab_size=61, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                                  tie_word_embeddings=False, bos_token_id=None,
                                  eos_token_id=None)
    hf = transformers.GPT2LMHeadModel(cfg)
    with torch.no_grad():
        hf.lm_head.weight.add_(1.0)
    with pytest.raises(ValueError, match="tied"):
        GPT.from_hf(hf)


def test_narrow_integer_ids_are_accepted_everywhere():
    # int16/uint8 ids pass the check, so they must also run (nn.Embedding takes int64/int32 only)
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8)).eval()
    idx = torch.tensor([[1, 5, 7, 19]])
    want = m(idx, idx)
    for dtype in (torch.int32, torch.int16, torch.uint8):
        got = m(idx.to(dtype), idx.to(dtype))
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert torch.equal(m.generate(idx.to(torch.uint8), 3, temperature=0),
                       m.generate(idx, 3, temperature=0))
