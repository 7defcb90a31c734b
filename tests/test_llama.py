"""Tests for llmcourse.llama: Hugging Face Llama / Mistral / Qwen3 / Mixtral equivalence both ways,
the pieces (RoPE, GQA, RMSNorm, SwiGLU, MoE), the KV cache, counting, training, bad inputs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
import transformers
from torch.nn import functional as F

from llmcourse.llama import (
    Llama,
    LlamaConfig,
    MoE,
    RMSNorm,
    RotaryEmbedding,
    SwiGLU,
    apply_rope,
    causal_mask,
    load_balancing_loss,
    repeat_kv,
    rotate_half,
    swiglu_hidden,
)

transformers.logging.set_verbosity_error()
V = 97


def perturb(model: torch.nn.Module, seed: int = 1, scale: float = 0.1) -> torch.nn.Module:
    """Add noise to every parameter: unit norms and zero-ish weights cannot hide a copy error."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model


def hf_model(kind: str = "llama", **kw):
    torch.manual_seed(0)
    base = dict(vocab_size=V, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=32,
                rope_theta=500.0, rms_norm_eps=1e-6, bos_token_id=None, eos_token_id=None)
    base.update(kw)
    cfg_cls, model_cls = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
        "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
        "mixtral": (transformers.MixtralConfig, transformers.MixtralForCausalLM),
    }[kind]
    return perturb(model_cls(cfg_cls(**base))).eval()


def small(**kw) -> Llama:
    torch.manual_seed(0)
    cfg = dict(vocab_size=V, block_size=24, n_layer=2, n_head=4, n_embd=32, n_kv_head=2,
               intermediate_size=48)
    cfg.update(kw)
    return perturb(Llama(LlamaConfig(**cfg)), scale=0.05).eval()


IDX = torch.randint(0, V, (2, 13), generator=torch.Generator().manual_seed(3))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


# --- Hugging Face equivalence ------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(), dict(num_key_value_heads=1, head_dim=16,
                                            tie_word_embeddings=True)])
def test_from_hf_llama_gqa_same_logits(kw):
    hf = hf_model("llama", **kw)
    ours = Llama.from_hf(hf).eval()
    assert ours.config.n_kv_head < ours.config.n_head
    assert ours.config.rope_theta == 500.0 and ours.config.rms_norm_eps == 1e-6
    with torch.no_grad():
        assert max_diff(ours(IDX)[0], hf(IDX).logits) < 1e-5
        # the same loss: HF shifts the labels itself, our targets are the next tokens
        targets = torch.cat([IDX[:, 1:], torch.full((2, 1), -100)], dim=1)
        assert abs(ours(IDX, targets)[1].item() - hf(IDX, labels=IDX).loss.item()) < 1e-5


@pytest.mark.parametrize("kw", [dict(), dict(tie_word_embeddings=True, n_kv_head=1),
                                dict(n_kv_head=4, head_dim=12, rope_theta=1e6)])
def test_to_hf_llama_same_logits_and_config_round_trip(kw):
    ours = small(**kw)
    hf = ours.to_hf().eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    assert hf.config.num_key_value_heads == ours.config.n_kv_head
    with torch.no_grad():
        assert max_diff(hf(IDX).logits, ours(IDX)[0]) < 1e-5
    back = Llama.from_hf(hf)
    assert back.config == ours.config
    for k, v in ours.state_dict().items():
        assert torch.equal(back.state_dict()[k], v), k


def test_hf_logits_differ_if_a_weight_differs():
    ours = small()
    hf = ours.to_hf().eval()
    with torch.no_grad():
        hf.model.layers[1].self_attn.k_proj.weight[3, 0] += 0.5
        assert max_diff(hf(IDX).logits, ours(IDX)[0]) > 1e-3


def test_mha_and_mqa_ends_match_hf_and_gqa_is_mha_with_shared_heads():
    for n_kv in (6, 1):  # MHA (every head its own k, v) and MQA (one k, v for all)
        hf = hf_model("llama", num_key_value_heads=n_kv)
        ours = Llama.from_hf(hf).eval()
        assert ours.model.layers[0].self_attn.k_proj.weight.shape == (n_kv * 8, 48)
        with torch.no_grad():
            assert max_diff(ours(IDX)[0], hf(IDX).logits) < 1e-5
    # GQA = MHA whose key/value heads are copies: query head h reads kv head h // (nh / nkv)
    gqa = small(n_kv_head=2)
    mha = Llama(LlamaConfig(**{**gqa.config.to_dict(), "n_kv_head": 4})).eval()
    sd = gqa.state_dict()
    for k in list(sd):
        if k.endswith(("k_proj.weight", "v_proj.weight")):
            sd[k] = sd[k].view(2, 8, 32).repeat_interleave(2, dim=0).reshape(32, 32)
    mha.load_state_dict(sd)
    with torch.no_grad():
        assert max_diff(mha(IDX)[0], gqa(IDX)[0]) < 1e-5


def test_qwen3_qk_norm_both_ways():
    hf = hf_model("qwen3", head_dim=16, num_attention_heads=4)
    ours = Llama.from_hf(hf).eval()
    assert ours.config.qk_norm and ours.config.head_dim == 16
    assert not torch.allclose(ours.model.layers[0].self_attn.q_norm.weight, torch.ones(16))
    with torch.no_grad():
        assert max_diff(ours(IDX)[0], hf(IDX).logits) < 1e-5
        back = ours.to_hf().eval()
        assert type(back).__name__ == "Qwen3ForCausalLM"
        assert max_diff(back(IDX).logits, hf(IDX).logits) < 1e-5
        without = Llama(LlamaConfig(**{**ours.config.to_dict(), "qk_norm": False})).eval()
        without.load_state_dict({k: v for k, v in ours.state_dict().items() if "_norm." not in k
                                 or "layernorm" in k})
        assert max_diff(without(IDX)[0], ours(IDX)[0]) > 1e-3  # the norms do something


def test_sliding_window_matches_mistral_eager_and_a_hand_built_mask():
    hf = hf_model("mistral", sliding_window=4, attn_implementation="eager")
    ours = Llama.from_hf(hf).eval()
    assert ours.config.sliding_window == 4
    with torch.no_grad():
        assert max_diff(ours(IDX)[0], hf(IDX).logits) < 1e-5
        back = ours.to_hf().eval()
        assert type(back).__name__ == "MistralForCausalLM"
        assert max_diff(back(IDX).logits, hf(IDX).logits) < 1e-5
        logits, _, atts = ours(IDX, return_attentions=True)  # the explicit path
        assert max_diff(logits, ours(IDX)[0]) < 1e-5  # = the fused path with a mask
    i, j = torch.meshgrid(torch.arange(13), torch.arange(13), indexing="ij")
    allowed = (j <= i) & (j > i - 4)  # itself and the 3 tokens before it
    assert torch.equal(causal_mask(13, 0, 4), allowed)
    for att in atts:
        assert torch.all(att[..., ~allowed] == 0) and torch.all(att[..., allowed] > 0)
    # with a cache: query positions 10..12 against keys 0..12
    assert torch.equal(causal_mask(3, 10, 4), allowed[10:])


def test_sliding_window_qwen3_all_layers():
    hf = hf_model("qwen3", head_dim=16, num_attention_heads=4, use_sliding_window=True,
                  sliding_window=5, max_window_layers=0)
    ours = Llama.from_hf(hf).eval()
    assert ours.config.sliding_window == 5 and ours.config.qk_norm
    with torch.no_grad():
        assert max_diff(ours(IDX)[0], hf(IDX).logits) < 1e-5


# --- Mixture of experts ------------------------------------------------------------------------

def test_moe_block_equals_mixtral_sparse_moe_block():
    from transformers.models.mixtral import modeling_mixtral

    cfg = transformers.MixtralConfig(hidden_size=24, intermediate_size=40, num_local_experts=5,
                                     num_experts_per_tok=2, router_jitter_noise=0.0)
    torch.manual_seed(0)
    theirs = modeling_mixtral.MixtralSparseMoeBlock(cfg).eval()  # torch.empty weights: fill
    theirs = perturb(theirs.apply(lambda m: [p.data.zero_() for p in m.parameters(False)]), 0, 0.3)
    ours = MoE(24, 40, n_experts=5, top_k=2)
    with torch.no_grad():
        ours.gate.weight.copy_(theirs.gate.weight)
        for e, expert in enumerate(ours.experts):
            gate, up = theirs.experts.gate_up_proj[e].chunk(2, dim=0)
            expert.gate_proj.weight.copy_(gate)
            expert.up_proj.weight.copy_(up)
            expert.down_proj.weight.copy_(theirs.experts.down_proj[e])
        x = torch.randn(3, 7, 24)
        y, router_logits = ours(x)
        assert max_diff(y, theirs(x)) < 1e-5
        # the per-expert counts are the histogram of Hugging Face's router's top-2 choices
        _, _, top_idx = theirs.gate(x.view(-1, 24))
        assert torch.equal(ours.last_counts, torch.bincount(top_idx.flatten(), minlength=5))
        assert ours.last_counts.sum() == 3 * 7 * 2


def test_mixtral_both_ways_with_aux_loss():
    from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

    hf = hf_model("mixtral", intermediate_size=40, num_local_experts=4, num_experts_per_tok=2,
                  router_aux_loss_coef=0.02)
    ours = Llama.from_hf(hf).eval()
    assert (ours.config.n_experts, ours.config.n_experts_per_tok) == (4, 2)
    targets = torch.cat([IDX[:, 1:], torch.full((2, 1), -100)], dim=1)
    with torch.no_grad():
        logits, loss = ours(IDX, targets)
        out = hf(IDX, labels=IDX, output_router_logits=True)
        assert max_diff(logits, out.logits) < 1e-5
        assert abs(ours.last_aux_loss.item() - out.aux_loss.item()) < 1e-5
        assert abs(loss.item() - out.loss.item()) < 1e-5  # CE + 0.02 · aux, as HF adds it
        back = ours.to_hf().eval()
        assert type(back).__name__ == "MixtralForCausalLM"
        assert max_diff(back(IDX).logits, out.logits) < 1e-5
        # load_balancing_loss on its own = HF's function on the same router logits
        r = [torch.randn(26, 4) for _ in range(3)]
        assert abs(load_balancing_loss(r, 2).item()
                   - load_balancing_loss_func(tuple(r), 4, 2).item()) < 1e-6
    counts = ours.expert_counts()
    assert counts.shape == (2, 4) and counts.sum(dim=1).tolist() == [2 * 13 * 2] * 2


def test_load_balancing_loss_is_top_k_when_balanced_and_larger_when_not():
    uniform = [torch.zeros(8, 4)]  # every expert equally likely
    assert abs(load_balancing_loss(uniform, 1).item() - 1.0) < 1e-6
    collapsed = [torch.tensor([[5.0, 0, 0, 0]]).repeat(8, 1)]  # everything to expert 0
    assert load_balancing_loss(collapsed, 1).item() > 3.0
    with pytest.raises(TypeError, match="router_logits"):
        load_balancing_loss(torch.zeros(8, 4), 1)
    with pytest.raises(ValueError, match="top_k"):
        load_balancing_loss(uniform, 5)


# --- the pieces --------------------------------------------------------------------------------

def test_rope_matches_hf_and_depends_only_on_the_position_difference():
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    hf_rope = LlamaRotaryEmbedding(transformers.LlamaConfig(
        hidden_size=64, num_attention_heads=4, rope_theta=1000.0))
    rope = RotaryEmbedding(16, theta=1000.0)
    pos = torch.arange(40)
    cos, sin = rope(pos)
    hf_cos, hf_sin = hf_rope(torch.zeros(1), pos[None])
    assert max_diff(cos, hf_cos[0]) < 1e-6 and max_diff(sin, hf_sin[0]) < 1e-6
    q, k = torch.randn(1, 1, 40, 16), torch.randn(1, 1, 40, 16)
    hq, hk = apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
    assert max_diff(apply_rope(q, cos, sin), hq) < 1e-6 and max_diff(apply_rope(k, cos, sin), hk) < 1e-6
    # the same q and k vectors at positions (m, n): their score depends on m - n only
    qv, kv = torch.randn(16), torch.randn(16)

    def score(m, n):
        c, s = rope(torch.tensor([m, n]))
        qr = apply_rope(qv.view(1, 1, 1, 16), c[:1], s[:1])
        kr = apply_rope(kv.view(1, 1, 1, 16), c[1:], s[1:])
        return (qr * kr).sum().item()

    for m, n, shift in ((5, 2, 7), (9, 9, 20), (3, 11, 30)):
        assert abs(score(m, n) - score(m + shift, n + shift)) < 1e-4
    assert abs(score(5, 2) - score(5, 4)) > 1e-3  # ... and does depend on it
    x = torch.randn(2, 3, 40, 16)
    assert torch.allclose(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1), atol=1e-5)
    assert torch.equal(rotate_half(torch.tensor([1.0, 2, 3, 4])), torch.tensor([-3.0, -4, 1, 2]))


def test_repeat_kv_rmsnorm_swiglu_against_torch():
    x = torch.randn(2, 3, 5, 4)
    assert torch.equal(repeat_kv(x, 4), x.repeat_interleave(4, dim=1))
    assert repeat_kv(x, 1) is x
    norm = perturb(RMSNorm(8, eps=1e-6))
    h = torch.randn(4, 8)
    assert torch.allclose(norm(h), F.rms_norm(h, (8,), norm.weight, eps=1e-6), atol=1e-6)
    mlp = SwiGLU(8, 12)
    ref = mlp.down_proj(F.silu(h @ mlp.gate_proj.weight.T) * (h @ mlp.up_proj.weight.T))
    assert torch.allclose(mlp(h), ref, atol=1e-6)
    # Llama's widths: 7B's 11008 from n_embd=4096, SmolLM2-135M's 1536 from 576
    assert swiglu_hidden(4096) == 11008 and swiglu_hidden(576) == 1536
    assert swiglu_hidden(64, multiple_of=32) == 192


def test_param_counts_match_hf_on_the_meta_device():
    llama2_7b = dict(vocab_size=32000, block_size=4096, n_layer=32, n_head=32, n_embd=4096)
    with torch.device("meta"):
        ours = Llama(LlamaConfig(**llama2_7b))
        theirs = transformers.LlamaForCausalLM(transformers.LlamaConfig(
            vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
            num_attention_heads=32))
        mixtral = Llama(LlamaConfig(vocab_size=32000, n_layer=32, n_head=32, n_kv_head=8,
                                    n_embd=4096, intermediate_size=14336, n_experts=8))
    assert ours.num_params() == theirs.num_parameters() == 6_738_415_616  # Llama 2 7B
    assert ours.num_params(non_embedding=True) == 6_738_415_616 - 2 * 32000 * 4096
    total, active = mixtral.num_params(), mixtral.num_params(active=True)
    assert round(total / 1e9, 1) == 46.7 and round(active / 1e9, 1) == 12.9  # Mixtral 8x7B
    assert total - active == 32 * 6 * 3 * 4096 * 14336


def test_flops_per_token_palm_formula_with_window_and_experts():
    m = small()
    cfg = m.config
    n = m.num_params(non_embedding=True) + V * 32
    assert m.flops_per_token(16) == 6 * n + 12 * 2 * 4 * 8 * 16
    assert m.flops_per_token() == 6 * n + 12 * 2 * 4 * 8 * cfg.block_size
    w = small(sliding_window=5)
    assert w.flops_per_token(16) == 6 * n + 12 * 2 * 4 * 8 * 5
    moe = small(n_experts=4, n_experts_per_tok=1)
    dense_part = moe.num_params(non_embedding=True) - 2 * 3 * (3 * 32 * 48)  # 3 idle experts
    assert moe.flops_per_token(16) == 6 * (dense_part + V * 32) + 12 * 2 * 4 * 8 * 16
    with pytest.raises(ValueError, match="seq_len"):
        m.flops_per_token(0)


# --- generation and the KV cache ---------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(), dict(n_kv_head=1, sliding_window=5),
                                dict(qk_norm=True, n_experts=3, n_experts_per_tok=2)])
def test_cached_greedy_equals_uncached_past_block_size(kw):
    m = small(**kw)
    idx = IDX[:, :5]
    a = m.generate(idx, 25, temperature=0)  # 30 tokens > block_size 24: the window slides
    b = m.generate(idx, 25, temperature=0, use_cache=False)
    assert a.shape == (2, 30) and torch.equal(a, b)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    s1 = m.generate(idx, 10, temperature=0.8, top_k=20, top_p=0.9, generator=g1)
    s2 = m.generate(idx, 10, temperature=0.8, top_k=20, top_p=0.9, generator=g2, use_cache=False)
    assert torch.equal(s1, s2)


def test_kv_cache_logits_and_shapes_and_hf_generate():
    m = small(n_kv_head=1)
    cache = [[] for _ in m.model.layers]
    with torch.no_grad():
        m._forward_cached(IDX[:, :7], cache)
        last = m._forward_cached(IDX[:, 7:10], cache)  # several tokens after a cache
        assert max_diff(last, m(IDX[:, :10])[0][:, -1]) < 1e-5
    k, v = cache[0]
    assert k.shape == v.shape == (2, 1, 10, 8)  # n_kv_head = 1 head cached, not n_head = 4
    hf = m.to_hf().eval()
    theirs = hf.generate(IDX[:, :5], max_new_tokens=12, do_sample=False,
                         attention_mask=torch.ones_like(IDX[:, :5]), pad_token_id=0)
    assert torch.equal(m.generate(IDX[:, :5], 12, temperature=0), theirs)
    m.train()
    m.generate(IDX[:, :2], 2)
    assert m.training  # generate ran in eval mode and restored train mode


# --- save / load, training ---------------------------------------------------------------------

def test_save_pretrained_then_from_pretrained(tmp_path, capsys):
    ours = small(tie_word_embeddings=True)
    ours.to_hf().save_pretrained(tmp_path / "m")
    loaded = Llama.from_pretrained(tmp_path / "m")
    assert "local folder" in loaded.source and "local folder" in capsys.readouterr().out
    assert loaded.config == ours.config
    with torch.no_grad():
        assert max_diff(loaded(IDX)[0], ours(IDX)[0]) < 1e-6
    auto = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "m").eval()
    with torch.no_grad():
        assert max_diff(auto(IDX).logits, ours(IDX)[0]) < 1e-5
    with pytest.raises(ValueError, match="name_or_path"):
        Llama.from_pretrained(tmp_path)  # a folder without config.json
    with pytest.raises(ValueError, match="name_or_path"):
        Llama.from_pretrained("not a hub name!")
    with pytest.raises(TypeError, match="name_or_path"):
        Llama.from_pretrained(3)
    with pytest.raises(TypeError, match="revision"):
        Llama.from_pretrained(tmp_path / "m", revision=1)


def test_from_pretrained_hub_name_is_pinned_and_never_runs_remote_code(monkeypatch, capsys):
    from llmcourse.llama import PINNED_REVISIONS

    calls = []
    hf = hf_model("llama", num_hidden_layers=1)

    def fake(name, **kw):  # stands in for the download (no network in tests)
        calls.append((name, kw))
        if name.startswith("missing/"):
            raise OSError("not cached and offline")
        return hf

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake)
    m = Llama.from_pretrained("HuggingFaceTB/SmolLM2-135M")
    rev = PINNED_REVISIONS["HuggingFaceTB/SmolLM2-135M"]
    assert calls[-1] == ("HuggingFaceTB/SmolLM2-135M", dict(revision=rev, trust_remote_code=False))
    assert m.source == f"Hugging Face Hub HuggingFaceTB/SmolLM2-135M @ {rev}"
    assert m.source in capsys.readouterr().out
    assert len(rev) == 40 and int(rev, 16) >= 0  # a commit, not a branch
    Llama.from_pretrained("someone/other", verbose=False)
    assert calls[-1][1]["revision"] == "main"
    with pytest.raises(ValueError, match="missing/model"):
        Llama.from_pretrained("missing/model", revision="abc", verbose=False)


def test_mixtral_save_pretrained_round_trip(tmp_path):
    ours = small(n_experts=3, n_experts_per_tok=2)
    ours.to_hf().save_pretrained(tmp_path / "moe")
    loaded = Llama.from_pretrained(tmp_path / "moe", verbose=False)
    with torch.no_grad():
        assert max_diff(loaded(IDX)[0], ours(IDX)[0]) < 1e-6


@pytest.mark.parametrize("kw", [dict(), dict(n_experts=4, n_experts_per_tok=2, sliding_window=8)])
def test_trainer_lowers_the_loss(tmp_path, kw):
    from llmcourse.train import TrainConfig, Trainer

    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=16, block_size=16, n_layer=2, n_head=4, n_kv_head=2,
                              n_embd=32, multiple_of=16, **kw))
    pattern = torch.arange(64) % 7 + 3  # a periodic sequence: learnable in a few steps

    def get_batch(g: torch.Generator):
        start = torch.randint(0, 40, (8,), generator=g)
        rows = torch.stack([pattern[s:s + 17] for s in start.tolist()])
        return rows[:, :-1], rows[:, 1:]

    cfg = TrainConfig(max_steps=30, lr=1e-2, warmup_steps=3, eval_every=0, log_every=5,
                      ckpt_every=0, out_dir=None, progress=False, device="cpu")
    records = Trainer(model, cfg, get_batch).fit()
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert losses[-1] < 0.5 * losses[0]
    if kw:
        assert model.last_aux_loss is not None and model.expert_counts().sum() > 0


# --- bad inputs --------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,error", [
    ("vocab_size", 0, ValueError), ("n_layer", 2.0, TypeError), ("n_head", True, TypeError),
    ("n_kv_head", 3, ValueError), ("n_kv_head", 0, ValueError), ("head_dim", 7, ValueError),
    ("n_embd", 30, ValueError), ("intermediate_size", 0, ValueError),
    ("rope_theta", 0.0, ValueError), ("rope_theta", float("nan"), ValueError),
    ("rope_theta", "1e4", TypeError), ("rms_norm_eps", -1e-5, ValueError),
    ("tie_word_embeddings", 1, TypeError), ("qk_norm", "yes", TypeError),
    ("sliding_window", 0, ValueError), ("sliding_window", 2.5, TypeError),
    ("n_experts", 0, ValueError), ("n_experts_per_tok", 0, ValueError),
    ("router_aux_loss_coef", -0.1, ValueError), ("dropout", 1.0, ValueError),
])
def test_config_rejects_bad_values(field, value, error):
    base = dict(n_head=4, n_embd=32)
    with pytest.raises(error, match=field):
        LlamaConfig(**{**base, field: value})


def test_config_defaults_and_relations():
    cfg = LlamaConfig(n_head=4, n_embd=32)
    assert (cfg.n_kv_head, cfg.head_dim, cfg.intermediate_size) == (4, 8, 256)
    assert LlamaConfig(n_head=4, n_embd=30, head_dim=8).head_dim == 8  # Qwen3-style head_dim
    with pytest.raises(ValueError, match="n_experts_per_tok"):
        LlamaConfig(n_head=4, n_embd=32, n_experts=2, n_experts_per_tok=3)
    with pytest.raises(TypeError, match="config"):
        Llama({"n_layer": 2})


def test_forward_and_generate_reject_bad_inputs():
    m = small()
    logits, loss = m(IDX)
    assert logits.shape == (2, 13, V) and loss is None
    targets = IDX.clone()
    targets[0, :4] = -100
    mask = targets != -100
    assert torch.allclose(m(IDX, targets)[1], F.cross_entropy(logits[mask], targets[mask]),
                          atol=1e-6)
    assert torch.equal(m(IDX.to(torch.int16))[0], logits)  # narrow ids are widened
    with pytest.raises(TypeError, match="idx"):
        m([[1, 2]])
    with pytest.raises(ValueError, match="block_size"):
        m(torch.zeros(1, 25, dtype=torch.long))
    with pytest.raises(ValueError, match="token ids"):
        m(torch.full((1, 3), V))
    with pytest.raises(ValueError, match="idx"):
        m(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="targets"):
        m(IDX, IDX[:, :5])
    with pytest.raises(ValueError, match="targets"):
        m(IDX, torch.full_like(IDX, V))
    with pytest.raises(TypeError, match="return_attentions"):
        m(IDX, return_attentions=1)
    for kw, name in ((dict(max_new_tokens=-1), "max_new_tokens"),
                     (dict(max_new_tokens=2, temperature=-1.0), "temperature"),
                     (dict(max_new_tokens=2, top_k=0), "top_k"),
                     (dict(max_new_tokens=2, top_p=0.0), "top_p"),
                     (dict(max_new_tokens=2, use_cache="yes"), "use_cache"),
                     (dict(max_new_tokens=2, generator=0), "generator")):
        with pytest.raises((TypeError, ValueError), match=name):
            m.generate(IDX, **kw)
    with pytest.raises(TypeError, match="non_embedding"):
        m.num_params(non_embedding=1)


def test_from_hf_and_to_hf_reject_unsupported_models():
    with pytest.raises(TypeError, match="LlamaForCausalLM"):
        Llama.from_hf(transformers.GPT2LMHeadModel(transformers.GPT2Config(
            n_embd=16, n_layer=1, n_head=2, vocab_size=50)))
    with pytest.raises(ValueError, match="attention_bias"):
        Llama.from_hf(hf_model("llama", attention_bias=True, num_hidden_layers=1))
    scaled = hf_model("llama", num_hidden_layers=1, rope_parameters=dict(
        rope_type="linear", factor=2.0, rope_theta=500.0))
    with pytest.raises(ValueError, match="RoPE"):
        Llama.from_hf(scaled)
    with pytest.raises(ValueError, match="router_jitter_noise"):
        Llama.from_hf(hf_model("mixtral", num_hidden_layers=1, num_local_experts=2,
                               router_jitter_noise=0.1))
    with pytest.raises(ValueError, match="qk_norm"):
        small(n_experts=2, qk_norm=True).to_hf()
