import math

import pytest
import torch

from llmcourse.hardware import GPU_SPECS
from llmcourse.model import GPT, GPTConfig
from llmcourse.scaling import (
    GPU_PRICES_USD,
    PRESETS,
    activation_bytes_per_layer,
    bytes_per_param,
    chinchilla_tokens,
    count_params,
    fit_power_law,
    fits,
    gpu_hours,
    implied_mfu,
    saved_activation_bytes,
    training_cost,
    training_flops,
    training_memory,
    training_time,
)
from llmcourse.widgets import ScalingCalculator


# --------------------------------------------------------------------------- parameters
def test_gpt2_small_exact_and_matches_our_model():
    assert count_params(**PRESETS["GPT-2 124M"]) == 124_439_808
    cfg = GPTConfig(vocab_size=101, block_size=32, n_layer=3, n_head=4, n_embd=48)
    n = count_params(arch="gpt2", vocab_size=101, max_seq_len=32, n_layer=3, n_heads=4,
                     d_model=48)
    assert n == GPT(cfg).num_params()


def test_llama_2_sizes():
    n7 = count_params(**PRESETS["Llama-2-7B"])
    assert n7 == 6_738_415_616 and abs(n7 - 6.74e9) / 6.74e9 < 0.001
    assert abs(count_params(**PRESETS["Llama-2-13B"]) - 13.0e9) / 13e9 < 0.01
    assert abs(count_params(**PRESETS["Llama-2-70B"]) - 68.98e9) / 69e9 < 0.01
    # untied head adds exactly V·d; GQA removes key/value weights
    tied = count_params(**{**PRESETS["Llama-2-7B"], "tied": True})
    assert n7 - tied == 32000 * 4096
    gqa = count_params(**{**PRESETS["Llama-2-7B"], "n_kv_heads": 8})
    assert n7 - gqa == 32 * 2 * 4096 * (4096 - 8 * 128)


@pytest.mark.parametrize("kwargs, match", [
    (dict(arch="rnn"), "arch must be one of 'gpt2', 'llama'"),
    (dict(n_layer=-1), "n_layer must be >= 1"),
    (dict(d_model=100, n_heads=12), "divisible"),
    (dict(n_kv_heads=5), "multiple of n_kv_heads"),
    (dict(arch="llama"), "d_ff is required"),
])
def test_count_params_bad_inputs(kwargs, match):
    base = dict(PRESETS["GPT-2 124M"])
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        count_params(**base)
    with pytest.raises(TypeError):
        count_params(**{**PRESETS["GPT-2 124M"], "n_layer": 2.5})


# --------------------------------------------------------------------------- compute
def test_flops_6nd_and_attention_term():
    assert training_flops(1e9, 1e10) == 6e19
    with_attn = training_flops(1e9, 1e10, seq_len=2048, n_layer=24, d_model=2048)
    assert with_attn - 6e19 == pytest.approx(12 * 24 * 2048 * 2048 * 1e10)
    # agrees with our GPT's PaLM-formula flops_per_token (6N uses the matmul parameters)
    cfg = GPTConfig(vocab_size=101, block_size=32, n_layer=3, n_head=4, n_embd=48)
    m = GPT(cfg)
    n = m.num_params(non_embedding=True) + m.lm_head.weight.numel()
    assert training_flops(n, 1, seq_len=32, n_layer=3, d_model=48) == m.flops_per_token(32)


def test_flops_bad_inputs():
    with pytest.raises(ValueError, match="n_params must be positive"):
        training_flops(-1, 10)
    with pytest.raises(ValueError, match="missing: n_layer, d_model"):
        training_flops(1e9, 1e9, seq_len=128)
    with pytest.raises(TypeError):
        training_flops("7B", 1e9)


def test_chinchilla():
    assert chinchilla_tokens(70e9) == 1.4e12  # Chinchilla: 70B params, 1.4T tokens
    with pytest.raises(ValueError):
        chinchilla_tokens(0)


def test_llama2_7b_gpu_hours_near_published():
    flops = training_flops(6.74e9, 2e12)
    hours = training_time(flops, gpu="A100", n_gpus=1, mfu=0.4)
    assert 120_000 <= hours <= 260_000
    assert hours == pytest.approx(180_021, rel=1e-3)
    assert gpu_hours(flops, gpu="A100", mfu=0.4) == hours
    # published 184,320 A100-hours → MFU ≈ 0.39 (6ND) or ≈ 0.45 with the attention term
    assert implied_mfu(flops, 184_320, gpu="A100") == pytest.approx(0.391, abs=0.002)
    full = training_flops(6.74e9, 2e12, seq_len=4096, n_layer=32, d_model=4096)
    assert implied_mfu(full, 184_320, gpu="A100") == pytest.approx(0.453, abs=0.002)


def test_time_scales_with_gpus_and_cost():
    f = 1e21
    one = training_time(f, gpu="H100", n_gpus=1)
    assert training_time(f, gpu="H100", n_gpus=8) * 8 == pytest.approx(one)
    assert training_time(f, gpu="H100-SXM", mfu=0.2) == pytest.approx(2 * one)
    assert training_cost(f, gpu="H100") == pytest.approx(one * GPU_PRICES_USD["H100-SXM"])
    assert training_cost(f, gpu="A100", usd_per_gpu_hour=1.0) == pytest.approx(
        gpu_hours(f, gpu="A100"))
    assert set(GPU_PRICES_USD) == set(GPU_SPECS)


@pytest.mark.parametrize("kwargs, match", [
    (dict(gpu="TPUv4"), "valid: T4, L4, A100"),
    (dict(gpu="A100", n_gpus=0), "n_gpus must be >= 1"),
    (dict(gpu="A100", mfu=1.5), r"mfu must be in \(0, 1\]"),
    (dict(gpu="A100", mfu=0), "mfu must be positive"),
    (dict(gpu="T4", precision="bf16"), "no bf16"),
])
def test_time_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        training_time(1e20, **kwargs)


# --------------------------------------------------------------------------- memory
def test_sixteen_bytes_per_param():
    assert sum(bytes_per_param("mixed", "adamw").values()) == 16
    assert bytes_per_param("mixed", "adamw") == {"weights": 2, "grads": 2, "optimizer": 12}
    assert sum(bytes_per_param("fp32", "adamw").values()) == 16
    assert sum(bytes_per_param("mixed", "sgd").values()) == 12
    assert sum(bytes_per_param("bf16", "adamw").values()) == 8


def test_zero_paper_7_5b_on_64_gpus():
    """ZeRO paper, figure 1: Ψ = 7.5B, N_d = 64, K = 12."""
    expected = {0: 120.0, 1: 31.4, 2: 16.6, 3: 1.9}
    for stage, gb in expected.items():
        got = training_memory(7.5e9, zero_stage=stage, n_gpus=64, activations=False)
        assert got["total"] / 1e9 == pytest.approx(gb, rel=0.10), stage
        assert got["activations"] == 0.0
        assert got["total"] == pytest.approx(
            got["weights"] + got["grads"] + got["optimizer"])


def test_sharding_is_monotone_and_one_gpu_changes_nothing():
    totals = [training_memory(7e9, zero_stage=s, n_gpus=8, activations=False)["total"]
              for s in range(4)]
    assert totals == sorted(totals, reverse=True) and len(set(totals)) == 4
    one = {training_memory(7e9, zero_stage=s, n_gpus=1, activations=False)["total"]
           for s in range(4)}
    assert one == {16 * 7e9}


def test_activation_formula():
    s, b, h, a = 2048, 1, 4096, 32
    none = activation_bytes_per_layer(seq_len=s, micro_batch=b, d_model=h, n_heads=a)
    assert none == s * b * h * (34 + 5 * a * s / h)
    assert activation_bytes_per_layer(seq_len=s, micro_batch=b, d_model=h, n_heads=a,
                                      recompute="selective") == 34 * s * b * h
    assert activation_bytes_per_layer(seq_len=s, micro_batch=b, d_model=h, n_heads=a,
                                      recompute="full") == 2 * s * b * h
    shape = dict(seq_len=4096, micro_batch=1, n_layer=32, d_model=4096, n_heads=32)
    m = {r: training_memory(6.74e9, **shape, recompute=r)["activations"]
         for r in ("none", "selective", "full")}
    assert m["none"] > m["selective"] > m["full"] > 0
    assert m["full"] == 32 * 2 * 4096 * 4096


def test_7b_does_not_fit_one_gpu_but_fits_sharded():
    shape = dict(seq_len=4096, micro_batch=1, n_layer=32, d_model=4096, n_heads=32)
    single = training_memory(6.74e9, **shape)
    assert not fits(single, "H100") and not fits(single, "H200")
    sharded = training_memory(6.74e9, **shape, zero_stage=3, n_gpus=8, recompute="full")
    assert fits(sharded, "A100")


@pytest.mark.parametrize("kwargs, match", [
    (dict(zero_stage=4), "zero_stage must be one of 0, 1, 2, 3"),
    (dict(zero_stage=-1), "zero_stage must be one of 0, 1, 2, 3"),
    (dict(precision="fp8"), "precision must be one of 'mixed', 'fp32', 'bf16'"),
    (dict(optimizer="lion"), "optimizer must be one of 'adamw', 'sgd'"),
    (dict(recompute="some"), "recompute must be one of 'none', 'selective', 'full'"),
    (dict(n_gpus=0), "n_gpus must be >= 1"),
    (dict(activations=True), "activations=True needs seq_len, micro_batch"),
])
def test_memory_bad_inputs(kwargs, match):
    base = dict(activations=False)
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        training_memory(7e9, **base)
    with pytest.raises(ValueError, match="n_params must be positive"):
        training_memory(-7e9, activations=False)


# --------------------------------------------------------------------------- measured
def test_saved_activations_checkpointing():
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=64, block_size=32, n_layer=3, n_head=2, n_embd=32)
    model = GPT(cfg)
    idx = torch.randint(0, 64, (4, 32))
    tgt = torch.randint(0, 64, (4, 32))
    plain = saved_activation_bytes(model, idx, tgt)
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    ckpt = saved_activation_bytes(model, idx, tgt, checkpoint=True)
    # identical gradients: recomputation changes memory, not maths
    for p, g in zip(model.parameters(), grads):
        assert torch.allclose(p.grad, g, atol=1e-6)
    assert plain > 3 * ckpt
    # with checkpointing each block keeps only its fp32 input: n_layer · b·s·h·4 bytes
    assert ckpt >= cfg.n_layer * 4 * 32 * 32 * 4
    assert math.isclose(saved_activation_bytes(model, idx, tgt), plain)  # deterministic
    with pytest.raises(TypeError, match="llmcourse.model.GPT"):
        saved_activation_bytes(torch.nn.Linear(2, 2), idx, tgt)


def test_fit_power_law():
    xs = [1e3, 1e4, 1e5, 1e6]
    f = fit_power_law(xs, [5.0 * x ** -0.076 for x in xs])
    assert f["alpha"] == pytest.approx(0.076) and f["a"] == pytest.approx(5.0)
    assert f["r2"] == pytest.approx(1.0)
    noisy = fit_power_law(xs, [3.0, 1.0, 2.0, 1.5])
    assert noisy["r2"] < 0.5
    with pytest.raises(ValueError, match="positive numbers"):
        fit_power_law([1, 2, 3], [1, 0, 1])
    with pytest.raises(ValueError, match="same length >= 3"):
        fit_power_law([1, 2], [1, 2])
    with pytest.raises(ValueError, match="all equal"):
        fit_power_law([2, 2, 2], [1, 2, 3])


# --------------------------------------------------------------------------- widget

def test_calculator_updates_with_controls():
    c = ScalingCalculator()
    r0 = dict(c.result)
    assert r0["model"] == "Llama-2-7B" and not r0["fits"]
    assert r0["total_gb"] == pytest.approx(sum(c.fig.data[i].y[0] for i in range(4)))
    assert r0["hours"] == pytest.approx(r0["gpu_hours"])  # one GPU
    c.controls["n_gpus"].value = 64
    c.controls["zero_stage"].value = 3
    c.controls["recompute"].value = "full"
    r = c.result
    assert r["fits"] and r["total_gb"] < 5
    assert r["hours"] * 64 == pytest.approx(r["gpu_hours"])
    assert "ZeRO-3" in c.fig.layout.title.text and "64×" in c.fig.layout.title.text
    assert "fits in 80 GB" in c.summary.value
    c.controls["model"].value = "GPT-2 124M"
    assert c.result["n_params"] == count_params(**PRESETS["GPT-2 124M"]) == 124_439_808
    c.controls["tokens"].value = 0.0  # Chinchilla
    assert c.result["tokens"] == 20 * 124_439_808


def test_calculator_bad_inputs():
    with pytest.raises(ValueError, match="Llama-2-7B"):
        ScalingCalculator("GPT-5")
    with pytest.raises(ValueError, match="A100"):
        ScalingCalculator(gpu="TPU")
    assert ScalingCalculator(gpu="H100").controls["gpu"].value == "H100-SXM"  # aliases work
    assert training_memory(1e9, activations=False)["total"] == 16e9


def test_calculator_html_bars_follow_controls():
    c = ScalingCalculator("GPT-2 124M", gpu="T4")
    html = c.bars.value
    assert "T4 16 GB" in html and "weights" in html
    c.controls["gpu"].value = "H200"
    assert "H200 141 GB" in c.bars.value and c.bars.value != html


@pytest.mark.slow
def test_peak_memory_of_a_step_with_and_without_checkpointing():
    import sys

    from llmcourse.scaling import peak_rss_of_training_step

    cfg = dict(vocab_size=96, block_size=128, n_layer=4, n_head=4, n_embd=64)
    plain = peak_rss_of_training_step(cfg, batch_size=8, seq_len=128)
    ckpt = peak_rss_of_training_step(cfg, batch_size=8, seq_len=128, checkpoint=True)
    assert plain["saved"] > 5 * ckpt["saved"] > 0
    if sys.platform == "linux":
        assert plain["peak_increase"] > 0.8 * plain["saved"]
        assert ckpt["peak_increase"] < 0.6 * plain["peak_increase"]
    with pytest.raises(ValueError, match="n_head"):
        peak_rss_of_training_step({**cfg, "n_head": 3}, batch_size=8, seq_len=128)
    with pytest.raises(ValueError, match="seq_len"):
        peak_rss_of_training_step(cfg, batch_size=8, seq_len=256)
    with pytest.raises(ValueError, match="batch_size"):
        peak_rss_of_training_step(cfg, batch_size=0, seq_len=8)
