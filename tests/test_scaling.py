import math

import pytest
import torch

from llmcourse.hardware import GPU_SPECS
from llmcourse.model import GPT, GPTConfig
from llmcourse.scaling import (
    CHINCHILLA_LAW,
    GPU_PRICES_USD,
    LLAMA2_GLOBAL_BATCH_TOKENS,
    PRESETS,
    activation_bytes_per_layer,
    batch_plan,
    bytes_per_param,
    chinchilla_loss,
    chinchilla_optimal,
    chinchilla_tokens,
    count_params,
    fit_power_law,
    fits,
    gpu_hours,
    hardware_flops,
    implied_mfu,
    isoflop_optimum,
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


LLAMA7 = dict(seq_len=4096, micro_batch=1, n_layer=32, d_model=4096, n_heads=32,
              arch="llama", d_ff=11008)


def test_llama_activations_without_dropout():
    """Korthikanti's terms without the dropout masks, for RMSNorm + SwiGLU + rotary attention."""
    s, b, h, a, f = 4096, 1, 4096, 32, 11008
    kw = dict(seq_len=s, micro_batch=b, d_model=h, n_heads=a)
    llama = activation_bytes_per_layer(**kw, arch="llama", d_ff=f)
    assert llama == pytest.approx(s * b * h * (16 + 8 * f / h) + 2 * a * s * s * b, rel=1e-12)
    # the attention scores keep only the softmax output: 2·a·s²·b bytes, not 5·a·s²·b
    selective = activation_bytes_per_layer(**kw, arch="llama", d_ff=f, recompute="selective")
    assert llama - selective == 2 * a * s * s * b
    assert selective == pytest.approx(37.5 * s * b * h)
    assert activation_bytes_per_layer(**kw, arch="llama", d_ff=f, recompute="full") == 2 * s * b * h
    # the 7B "none" figure is about half of the GPT-3 count with dropout (194 sbh → 101.5 sbh)
    gpt3 = activation_bytes_per_layer(**kw)
    assert llama / gpt3 == pytest.approx(101.5 / 194, rel=1e-9)
    # GPT layout without dropout: two 1-byte masks and 3·a·s²·b of score dropout go
    no_drop = activation_bytes_per_layer(**kw, dropout=False)
    assert gpt3 - no_drop == 2 * s * b * h + 3 * a * s * s * b
    # dropout is an override in both directions
    assert activation_bytes_per_layer(**kw, arch="llama", d_ff=f, dropout=True) == pytest.approx(
        llama + 2 * s * b * h + 3 * a * s * s * b)
    # grouped-query attention: K and V shrink to n_kv_heads / n_heads
    gqa = activation_bytes_per_layer(**kw, arch="llama", d_ff=f, n_kv_heads=8)
    assert llama - gqa == pytest.approx(2 * 2 * s * b * h * (1 - 8 / 32))


def test_per_layer_count_matches_our_gpt_measured():
    """Our GPT (dropout 0, fused attention): each extra layer saves 32·sbh (fp32: ×2), to 2 %."""
    B, T, d = 4, 64, 32
    saved = {}
    for L in (2, 4):
        torch.manual_seed(0)
        net = GPT(GPTConfig(vocab_size=50, block_size=T, n_layer=L, n_head=2, n_embd=d))
        idx, tgt = torch.randint(0, 50, (B, T)), torch.randint(0, 50, (B, T))
        saved[L] = saved_activation_bytes(net, idx, tgt)
    per_layer = (saved[4] - saved[2]) / 2
    formula = 2 * activation_bytes_per_layer(seq_len=T, micro_batch=B, d_model=d, n_heads=2,
                                             dropout=False, recompute="selective")
    assert per_layer == pytest.approx(formula, rel=0.02)
    with_masks = 2 * activation_bytes_per_layer(seq_len=T, micro_batch=B, d_model=d, n_heads=2,
                                                recompute="selective")
    assert abs(per_layer / with_masks - 1) > 0.04  # the masks' 2·sbh would be visible


def test_recompute_working_set_and_peak():
    m = {r: training_memory(6.74e9, **LLAMA7, recompute=r) for r in ("none", "selective", "full")}
    sbh = 4096 * 4096
    layer = activation_bytes_per_layer(**{k: v for k, v in LLAMA7.items() if k != "n_layer"})
    assert m["none"]["working_set"] == 0 and m["none"]["peak"] == m["none"]["total"]
    assert m["selective"]["working_set"] == 2 * 32 * 4096**2  # one layer's scores
    assert m["full"]["working_set"] == pytest.approx(layer - 2 * sbh)  # one layer, less its input
    for r in m.values():
        assert r["peak"] == pytest.approx(r["total"] + r["working_set"])
    assert m["none"]["activations"] == pytest.approx(32 * layer)
    # the old (GPT-3, dropout) count of the same model was about twice as large
    old = training_memory(6.74e9, **{k: v for k, v in LLAMA7.items() if k not in ("arch", "d_ff")})
    assert m["none"]["activations"] / old["activations"] == pytest.approx(0.523, abs=0.001)
    # fits() compares the peak: a budget between total and peak does not fit
    assert not fits({"total": 70e9, "peak": 81e9}, "A100") and fits({"total": 70e9}, "A100")
    assert training_memory(1e9, activations=False)["working_set"] == 0.0
    fp32 = training_memory(6.74e9, **LLAMA7, recompute="full", precision="fp32")
    assert fp32["working_set"] == pytest.approx(2 * m["full"]["working_set"])


def test_8bit_adam_and_a_7b_on_one_80gb_gpu():
    assert bytes_per_param("mixed", "adamw8bit") == {"weights": 2, "grads": 2, "optimizer": 6}
    assert sum(bytes_per_param("bf16", "adamw8bit").values()) == 6
    n7 = count_params(**PRESETS["Llama-2-7B"])
    full = dict(LLAMA7, recompute="full")
    assert not fits(training_memory(n7, **full), "A100")
    assert fits(training_memory(n7, **full, optimizer="adamw8bit"), "A100")


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(arch="rnn"), ValueError, "arch"),
    (dict(arch="llama"), ValueError, "d_ff is required"),
    (dict(d_ff=0), ValueError, "d_ff"),
    (dict(d_ff=2.5), TypeError, "d_ff"),
    (dict(n_kv_heads=3), ValueError, "n_kv_heads"),
    (dict(n_heads=3), ValueError, "n_heads"),
    (dict(dropout="no"), TypeError, "dropout"),
])
def test_activation_bad_inputs(kwargs, exc, match):
    base = dict(seq_len=16, micro_batch=1, d_model=8, n_heads=2)
    with pytest.raises(exc, match=match):
        activation_bytes_per_layer(**{**base, **kwargs})
    with pytest.raises(exc, match=match):
        training_memory(1e6, n_layer=2, **{**base, **kwargs})


def test_hardware_flops_counts_recomputation():
    model = training_flops(1e9, 1e10)
    assert hardware_flops(1e9, 1e10) == model
    assert hardware_flops(1e9, 1e10, recompute="full") == pytest.approx(8e19)  # 8·N·D
    shape = dict(seq_len=2048, n_layer=24, d_model=2048)
    attn = 12 * 24 * 2048 * 2048 * 1e10
    assert training_flops(1e9, 1e10, **shape) == pytest.approx(6e19 + attn)
    assert hardware_flops(1e9, 1e10, recompute="selective", **shape) == pytest.approx(
        6e19 + attn * 4 / 3)  # the attention forward (a third of its 12·L·d·T) once more
    assert hardware_flops(1e9, 1e10, recompute="full", **shape) == pytest.approx(
        (6e19 + attn) * 4 / 3)
    # HFU = MFU × hardware / model: Llama-2-7B's implied MFU with full recomputation
    flops = training_flops(6.74e9, 2e12)
    hfu = implied_mfu(hardware_flops(6.74e9, 2e12, recompute="full"), 184_320, gpu="A100")
    assert hfu == pytest.approx(implied_mfu(flops, 184_320, gpu="A100") * 4 / 3)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(recompute="some"), ValueError, "recompute"),
    (dict(recompute="selective"), ValueError, "recompute='selective'"),
    (dict(recompute=1), TypeError, "recompute"),
    (dict(seq_len=8), ValueError, "n_layer"),
])
def test_hardware_flops_bad_inputs(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        hardware_flops(1e9, 1e10, **kwargs)
    with pytest.raises(ValueError, match="n_params"):
        hardware_flops(-1, 1e10)


def test_batch_plan_llama2():
    assert LLAMA2_GLOBAL_BATCH_TOKENS == 4_194_304  # "4M tokens" = 1,024 sequences of 4,096
    plan = batch_plan(2e12)
    assert plan == {"sequences_per_step": 1024, "accumulation_steps": 1024,
                    "sequences_per_step_used": 1024, "steps": 476_838}
    assert plan["steps"] == math.ceil(2e12 / 4_194_304)
    assert batch_plan(2e12, n_gpus=256, micro_batch=2)["accumulation_steps"] == 2
    uneven = batch_plan(1e9, n_gpus=3)  # 1,024 sequences do not split over 3 GPUs
    assert uneven["accumulation_steps"] == 342 and uneven["sequences_per_step_used"] == 1026
    assert uneven["steps"] == math.ceil(1e9 / (1026 * 4096))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(global_batch_tokens=1000), ValueError, "global_batch_tokens"),
    (dict(global_batch_tokens=4e6), TypeError, "global_batch_tokens"),
    (dict(n_gpus=2048), ValueError, "micro_batch × n_gpus"),
    (dict(seq_len=0), ValueError, "seq_len"),
    (dict(micro_batch=True), TypeError, "micro_batch"),
    (dict(n_gpus=1.0), TypeError, "n_gpus"),
])
def test_batch_plan_bad_inputs(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        batch_plan(2e12, **kwargs)
    with pytest.raises(ValueError, match="n_tokens"):
        batch_plan(0)


def test_chinchilla_parametric_law():
    law = CHINCHILLA_LAW
    assert law == {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
    got = chinchilla_loss(70e9, 1.4e12)
    assert got == pytest.approx(1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28, rel=1e-12)
    assert got == pytest.approx(1.937, abs=5e-4)
    assert chinchilla_loss(1e30, 1e30) == pytest.approx(1.69, abs=1e-5)  # only E is left
    # more parameters or more tokens always lower the prediction
    assert chinchilla_loss(7e9, 2e12) < chinchilla_loss(7e9, 1e12) < chinchilla_loss(3e9, 1e12)
    custom = {**law, "E": 0.0}
    assert chinchilla_loss(1e9, 1e10, law=custom) == pytest.approx(
        chinchilla_loss(1e9, 1e10) - 1.69)


def test_chinchilla_optimal_is_the_minimum_on_the_isoflop_curve():
    C = 5.76e23  # Gopher's and Chinchilla's budget
    opt = chinchilla_optimal(C)
    assert 6 * opt["n_params"] * opt["n_tokens"] == pytest.approx(C, rel=1e-12)
    assert opt["tokens_per_param"] == pytest.approx(opt["n_tokens"] / opt["n_params"])
    for f in (0.8, 0.95, 1.05, 1.25):  # any other split of the same FLOPs predicts a higher loss
        n = opt["n_params"] * f
        assert chinchilla_loss(n, C / (6 * n)) > opt["loss"]
    # N_opt ∝ C^(β/(α+β)): ten times the compute, 10^0.452 ≈ 2.83 times the parameters
    ratio = chinchilla_optimal(10 * C)["n_params"] / opt["n_params"]
    assert ratio == pytest.approx(10 ** (0.28 / 0.62), rel=1e-9)
    # the rounded published constants put the optimum far from 20 tokens per parameter
    assert 80 < opt["tokens_per_param"] < 100


@pytest.mark.parametrize("call, exc, match", [
    (lambda: chinchilla_loss(0, 1e9), ValueError, "n_params"),
    (lambda: chinchilla_loss(1e9, "1e9"), TypeError, "n_tokens"),
    (lambda: chinchilla_loss(1e9, 1e9, law=[1, 2]), TypeError, "law"),
    (lambda: chinchilla_loss(1e9, 1e9, law={"E": 1.0}), ValueError, "law"),
    (lambda: chinchilla_loss(1e9, 1e9, law={**CHINCHILLA_LAW, "A": -1}), ValueError, "law"),
    (lambda: chinchilla_optimal(-1), ValueError, "flops"),
    (lambda: chinchilla_optimal(math.inf), ValueError, "flops"),
    (lambda: chinchilla_optimal(1e21, law={**CHINCHILLA_LAW, "beta": 0}), ValueError, "law"),
])
def test_chinchilla_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_isoflop_optimum_recovers_a_parabola():
    ns = [1e5, 3e5, 1e6, 3e6, 1e7]
    n_opt = 8e5
    losses = [2.0 + 0.3 * (math.log(n) - math.log(n_opt)) ** 2 for n in ns]
    fit = isoflop_optimum(ns, losses)
    assert fit["n_opt"] == pytest.approx(n_opt, rel=1e-9)
    assert fit["loss_opt"] == pytest.approx(2.0, abs=1e-9)
    assert fit["curvature"] == pytest.approx(0.3, rel=1e-9)
    # on the Chinchilla law's own IsoFLOP curve it finds chinchilla_optimal's answer
    C = 1e21
    opt = chinchilla_optimal(C)["n_params"]
    grid = [opt * 2.0**k for k in (-2, -1, -0.5, 0, 0.5, 1, 2)]
    fit = isoflop_optimum(grid, [chinchilla_loss(n, C / (6 * n)) for n in grid])
    assert fit["n_opt"] == pytest.approx(opt, rel=0.05)


@pytest.mark.parametrize("args, exc, match", [
    (([1e5, 1e6, 1e7], [3.0, 2.0, 1.0 + 1.5]), None, None),
    (([1e5, 1e6, 1e7], [1.0, 2.0, 1.0]), ValueError, "valley"),
    (([1e5, 1e6, 1e7], [4.0, 3.0, 2.5]), ValueError, "outside the sizes"),
    (([1e5, 1e6], [1.0, 2.0]), ValueError, "same length >= 3"),
    (([1e5, 1e5, 1e6], [1.0, 2.0, 1.0]), ValueError, "3 different sizes"),
    (([1e5, -1, 1e6], [1.0, 2.0, 1.0]), ValueError, "n_params"),
    (([1e5, 1e6, 1e7], [1.0, math.nan, 1.0]), ValueError, "losses"),
    ((5, [1.0, 2.0, 3.0]), TypeError, "n_params"),
    (([1e5, 1e6, 1e7], "abc"), TypeError, "losses"),
])
def test_isoflop_bad_inputs(args, exc, match):
    if exc is None:
        assert isoflop_optimum(*args)["curvature"] > 0
        return
    with pytest.raises(exc, match=match):
        isoflop_optimum(*args)


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


def test_calculator_batch_steps_hfu_and_working_set():
    c = ScalingCalculator()  # Llama-2-7B, 2 T tokens, 4 M-token batches, 1 A100
    r = c.result
    assert r["global_batch_tokens"] == 4_194_304 and r["steps"] == 476_838
    assert r["accumulation_steps"] == 1024 and not r["batch_grown"]
    assert "476,838 steps" in c.summary.value
    assert r["hfu"] == pytest.approx(0.4)  # no recomputation: HFU = MFU
    assert r["activations_gb"] == pytest.approx(training_memory(
        r["n_params"], **{k: v for k, v in LLAMA7.items()})["activations"] / 1e9)
    c.controls["recompute"].value = "full"
    r = c.result
    flops_ratio = r["hardware_flops"] / r["flops"]
    assert flops_ratio == pytest.approx(4 / 3, rel=1e-12)  # every forward (attention too) twice
    assert r["hfu"] == pytest.approx(0.4 * flops_ratio)
    assert r["working_set_gb"] > 0 and r["peak_gb"] == pytest.approx(
        r["total_gb"] + r["working_set_gb"])
    assert sum(d.y[0] for d in c.fig.data) == pytest.approx(r["peak_gb"])
    assert "recompute working set" in c.bars.value
    c.controls["n_gpus"].value = 256
    assert c.result["accumulation_steps"] == 4 and c.result["steps"] == 476_838
    c.controls["n_gpus"].value = 2048  # 1,024 sequences cannot feed 2,048 GPUs
    r = c.result
    assert r["batch_grown"] and r["global_batch_tokens"] == 2048 * 4096
    assert r["steps"] == math.ceil(2e12 / (2048 * 4096)) and "grown" in c.summary.value
    c.controls["global_batch"].value = 2**19
    assert c.controls["global_batch"].value == 524_288


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
