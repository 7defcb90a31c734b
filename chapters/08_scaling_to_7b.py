# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Scaling to 7B: what training a large model really takes
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/08_scaling_to_7b.ipynb)
#
# **What you will learn**
# - where the memory of a training run goes — weights, gradients, Adam states, activations —
#   and why a 7B model does not fit one 80 GB GPU with plain mixed-precision AdamW (and what
#   changes that);
# - mixed precision, ZeRO/FSDP sharding and gradient checkpointing (measured on our GPT);
# - how FLOPs turn into steps, GPU-hours and dollars, checked against what Meta and Microsoft
#   published, and why MFU is not the whole story when layers are recomputed;
# - how scaling laws are fitted — Kaplan's power law and Chinchilla's IsoFLOP curves, both on
#   the CPU — and how data parallelism works (we run it);
# - what a real run adds on top: data at web scale, deduplication, loss spikes, restarts.
#
# **Prerequisites:** chapters 04 (the GPT, its parameter and FLOP counts) and 07 (a training
# loop, mixed precision, MFU). Everything here runs on a CPU.

# %% tags=["hide-input"]
import sys

if "google.colab" in sys.modules:  # on Colab only: install the course package
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "llmcourse[offline] @ git+https://github.com/llmcourse/llmcourse@v0.2.0"], check=True)

# %% tags=["nbval-ignore-output"]
import llmcourse

device, prof = llmcourse.setup(seed=0)
print(llmcourse.env_report())

# %% [markdown]
# ## 1 · How many parameters?
#
# A "7B" model is a list of matrices. `llmcourse.scaling.count_params` counts them weight by
# weight for two families: GPT-2 (learned positions, LayerNorm, biases, tied output head) and
# Llama (rotary positions, RMSNorm, no biases, SwiGLU MLP with three matrices, optional
# grouped-query attention, untied head). First a check against our own `GPT` and the published
# size of GPT-2 small:

# %%
import math

import torch

from llmcourse.model import GPT, GPTConfig
from llmcourse.scaling import PRESETS, count_params

gpt2 = count_params(**PRESETS["GPT-2 124M"])
print(f"GPT-2 small: {gpt2:,} parameters")
assert gpt2 == 124_439_808  # the published count

small = GPTConfig(vocab_size=101, block_size=32, n_layer=3, n_head=4, n_embd=48)
assert count_params(arch="gpt2", vocab_size=101, max_seq_len=32, n_layer=3, n_heads=4,
                    d_model=48) == GPT(small).num_params()  # formula == the real module

# %% [markdown]
# Llama-2-7B: d = 4096, 32 layers, 32 heads, SwiGLU width 11008, vocabulary 32000, untied
# head. Per layer: attention 4·d² = 67 M, MLP 3·d·11008 = 135 M; times 32, plus two 131 M
# embedding matrices (input and output):

# %%
for name in PRESETS:
    print(f"{name:>12}: {count_params(**PRESETS[name]) / 1e9:6.3f} B")
n7 = count_params(**PRESETS["Llama-2-7B"])
assert abs(n7 - 6.74e9) / 6.74e9 < 0.001  # Touvron et al. 2023: 6.74e9

# %% [markdown]
# ## 2 · The memory budget of a 7B model
#
# Training keeps, for every parameter:
#
# | what | precision | bytes |
# |---|---|---|
# | weights used in forward/backward | bf16 | 2 |
# | gradients | bf16 | 2 |
# | master copy of the weights | fp32 | 4 |
# | Adam momentum *m* | fp32 | 4 |
# | Adam variance *v* | fp32 | 4 |
#
# That is **16 bytes per parameter** — the ZeRO paper (Rajbhandari et al. 2020) writes it
# 2Ψ + 2Ψ + KΨ with K = 12 optimizer bytes. On top come the **activations**: the tensors the
# forward pass saves for backward. Korthikanti et al. (2022) count them per transformer layer
# of GPT-3, in bytes with 16-bit activations, for sequence length *s*, micro-batch *b*, width
# *h* and *a* heads: s·b·h·(34 + 5·a·s/h). Llama is not GPT-3: it has no dropout and a SwiGLU
# MLP of width *f*. Counting the same tensors:
#
# | saved for backward, per layer | GPT-3 (Korthikanti) | Llama-style |
# |---|---|---|
# | attention: norm output, Q, K, V, output-projection input | 10·sbh | 10·sbh (less with GQA) |
# | attention scores: the softmax output | 2·as²b | 2·as²b |
# | … its 1-byte dropout mask and the dropped-out copy | 3·as²b | — |
# | MLP: norm output, then GELU's input and output (f = 4h) / SwiGLU's four s·b·f tensors | 2·sbh + 16·sbh | 2·sbh + 8·sbf |
# | two 1-byte dropout masks | 2·sbh | — |
# | the two norms' inputs | 4·sbh | 4·sbh |
# | **total** | **34·sbh + 5·as²b** | **(16 + 8f/h)·sbh + 2·as²b** |
#
# Without FlashAttention a Llama layer keeps its softmax output, 2·a·s²·b bytes, once; with it,
# the scores never exist in memory at all.

# %%
from llmcourse.scaling import activation_bytes_per_layer, bytes_per_param, fits, training_memory

bpp = bytes_per_param("mixed", "adamw")
print(bpp, "→", sum(bpp.values()), "bytes per parameter")
assert sum(bpp.values()) == 16

llama7 = PRESETS["Llama-2-7B"]
shape7 = dict(seq_len=4096, micro_batch=1, n_layer=llama7["n_layer"], d_model=llama7["d_model"],
              n_heads=llama7["n_heads"], arch="llama", d_ff=llama7["d_ff"])
layer7 = {k: v for k, v in shape7.items() if k != "n_layer"}
sbh = 4096 * 1 * 4096
gpt3_layer = activation_bytes_per_layer(seq_len=4096, micro_batch=1, d_model=4096, n_heads=32)
llama_layer = activation_bytes_per_layer(**layer7)
print(f"one layer at s = 4096: GPT-3 count {gpt3_layer / sbh:.1f}·sbh = {gpt3_layer / 1e9:.2f} GB, "
      f"Llama-style {llama_layer / sbh:.1f}·sbh = {llama_layer / 1e9:.2f} GB")
assert gpt3_layer == sbh * (34 + 5 * 32 * 4096 / 4096)
assert llama_layer == sbh * (16 + 8 * 11008 / 4096) + 2 * 32 * 4096**2
assert abs(llama_layer / gpt3_layer - 101.5 / 194) < 1e-12  # about half

mem = training_memory(n7, **shape7)
for k, v in mem.items():
    print(f"{k:>11}: {v / 1e9:7.1f} GB")
assert not fits(mem, "H100") and not fits(mem, "H200")  # not even 141 GB

# %% [markdown]
# 108 GB of model states alone: with mixed-precision AdamW and every byte on the GPU, a 7B model
# cannot be trained on one 80 GB GPU, whatever the batch. The activations at 4096 tokens add
# half as much again, almost two thirds of them attention scores. Recomputation trades them for compute
# (Korthikanti et al.): **selective** recomputes the attention scores in backward (or never
# stores them: FlashAttention), **full** keeps only each layer's input and re-runs the layer in
# backward. A recomputed layer needs room while its gradients are computed — the **working
# set**: one layer's activations (full) or one layer's scores (selective).

# %%
import plotly.graph_objects as go

strategies = ("none", "selective", "full")
budgets = {r: training_memory(n7, **shape7, recompute=r) for r in strategies}
fig = go.Figure()
for part in ("weights", "grads", "optimizer", "activations", "working_set"):
    fig.add_bar(name=part.replace("_", " "), x=list(strategies),
                y=[budgets[r][part] / 1e9 for r in strategies])
fig.add_hline(y=80, line_dash="dash", annotation_text="one A100/H100: 80 GB")
fig.update_layout(barmode="stack", height=380, width=620, yaxis_title="GB per GPU",
                  xaxis_title="activation recomputation", title="Llama-2-7B, 1 GPU, s = 4096")
fig

# %%
for r, b in budgets.items():
    print(f"{r:>9}: {b['activations'] / 1e9:5.1f} GB stored + {b['working_set'] / 1e9:4.2f} GB "
          f"working set → peak {b['peak'] / 1e9:5.1f} GB")
assert [round(b["peak"] / 1e9, 1) for b in budgets.values()] == [162.3, 129.0, 110.6]
assert budgets["none"]["activations"] == 32 * llama_layer
assert budgets["selective"]["working_set"] == 2 * 32 * 4096**2  # one layer's softmax output
assert budgets["full"]["working_set"] == llama_layer - 2 * sbh  # one layer, less the input it kept
for i, b in enumerate(budgets.values()):  # each drawn bar stacks up to its peak
    assert math.isclose(sum(bar.y[i] for bar in fig.data) * 1e9, b["peak"], rel_tol=1e-12)
assert abs(64 * sbh / llama_layer - 0.63) < 0.01  # the scores' share of a layer

# %% [markdown]
# **Not on one GPU — as configured.** Three standard tricks change the bytes per parameter:
#
# - **8-bit optimizers** (Dettmers et al. 2022, bitsandbytes' `AdamW8bit`): Adam's two states in
#   1 byte each, 10 bytes per parameter with the fp32 master copy;
# - **offloading** (ZeRO-Offload, Ren et al. 2021): the master weights and Adam states live in
#   CPU memory and the Adam step runs on the CPU; the GPU keeps the bf16 weights and gradients
#   (4 bytes per parameter, 27 GB), and every step moves gradients and weights over PCIe;
# - **LoRA** (Hu et al. 2021, chapter 09): freeze the weights (bf16, 13.5 GB) and train small
#   low-rank adapters — fine-tuning, not pretraining from scratch.

# %%
eight_bit = training_memory(n7, **shape7, recompute="full", optimizer="adamw8bit")
print(f"8-bit AdamW, full recomputation: peak {eight_bit['peak'] / 1e9:.1f} GB")
assert sum(bytes_per_param("mixed", "adamw8bit").values()) == 10
assert fits(eight_bit, "A100") and not fits(budgets["full"], "A100")

# %% [markdown]
# ## 3 · Mixed precision: why keep an fp32 copy?
#
# bf16 has the range of fp32 but only 8 bits of mantissa: near 1.0 its spacing is 2⁻⁷ ≈ 0.008.
# An Adam step of lr × (update) ≈ 1e-4 added to a bf16 weight of 1.0 is simply lost. So the
# optimizer updates an fp32 master copy, and the bf16 weights are re-cast from it
# (Micikevicius et al. 2018). The cost is the extra 4 bytes per parameter.

# %%
w16, w32 = torch.tensor(1.0, dtype=torch.bfloat16), torch.tensor(1.0)
for _ in range(100):  # a hundred small updates
    w16 += 1e-4
    w32 += 1e-4
print(f"bf16 weight: {w16.item():.4f}   fp32 master: {w32.item():.4f}")
assert w16.item() == 1.0 and abs(w32.item() - 1.01) < 1e-4
for p in ("mixed", "fp32", "bf16"):
    print(f"{p:>5}: {bytes_per_param(p, 'adamw')}")

# %% [markdown]
# ## 4 · ZeRO and FSDP: shard the model states
#
# In plain data parallelism every GPU holds all 16 bytes/parameter. ZeRO removes that
# redundancy in stages: **stage 1** shards the optimizer states over the N GPUs, **stage 2**
# also the gradients, **stage 3** also the weights (gathered layer by layer when needed —
# PyTorch's FSDP `FULL_SHARD` is stage 3). The paper's worked example (figure 1): Ψ = 7.5 B
# parameters on N = 64 GPUs goes from 120 GB to 31.4 / 16.6 / 1.9 GB per GPU.

# %%
zero_paper = {0: 120.0, 1: 31.4, 2: 16.6, 3: 1.9}
zero = {st: training_memory(7.5e9, zero_stage=st, n_gpus=64, activations=False) for st in zero_paper}
psi, n_dp = 7.5e9, 64
exact = {0: 16 * psi, 1: 4 * psi + 12 * psi / n_dp, 2: 2 * psi + 14 * psi / n_dp, 3: 16 * psi / n_dp}
for stage, published in zero_paper.items():
    got = zero[stage]["total"]
    print(f"ZeRO stage {stage}: {got / 1e9:7.3f} GB per GPU (paper: {published})")
    assert math.isclose(got, exact[stage], rel_tol=1e-12)
    assert abs(got / 1e9 - published) <= 0.05  # the paper's figure, to the decimal it prints
    assert stage == 3 or abs(got / 1e9 / published - 1) < 0.005  # and to 0.5 %

# %% [markdown]
# Stage 3 is 1.875 GB, which the paper prints as 1.9 (1.3 % off; the other stages agree to
# 0.5 %). As a picture:

# %%
stages = [f"stage {st}" for st in zero]
fig = go.Figure()
for part in ("weights", "grads", "optimizer"):
    fig.add_bar(name=part, x=stages, y=[zero[st][part] / 1e9 for st in zero])
fig.add_scatter(name="paper, figure 1", x=stages, y=list(zero_paper.values()), mode="markers",
                marker=dict(symbol="line-ew-open", size=40, color="black", line_width=2))
fig.update_layout(barmode="stack", height=380, width=620, yaxis_title="GB per GPU",
                  title="ZeRO: Ψ = 7.5 B parameters on 64 GPUs, mixed-precision Adam")
fig

# %%
heights = [sum(bar.y[i] for bar in fig.data[:3]) for i in range(4)]
assert all(math.isclose(h * 1e9, exact[st], rel_tol=1e-12) for h, st in zip(heights, zero))
assert all(abs(h - paper) <= 0.05 for h, paper in zip(heights, fig.data[3].y))
optimizer_share = [bar for bar in fig.data if bar.name == "optimizer"][0].y
assert math.isclose(optimizer_share[0], 90) and math.isclose(optimizer_share[1], 90 / 64)  # 12Ψ / N

# %% [markdown]
# Sharding buys memory with communication: stage 1–2 move as many bytes as plain data
# parallelism (a reduce-scatter plus an all-gather instead of an all-reduce), stage 3 about
# 1.5× more. Sharding does **not** shrink activations — each GPU still runs its own
# micro-batch. For those we recompute.

# %% [markdown]
# ## 5 · Gradient checkpointing, measured on our GPT
#
# Autograd keeps the tensors each operation needs for backward. We can see every one of them:
# `torch.autograd.graph.saved_tensors_hooks` calls a hook on each tensor saved for backward, and
# `llmcourse.scaling.saved_activation_bytes` counts their bytes (each storage once, parameters
# left out). That is exactly the activation memory between forward and backward —
# deterministic, unlike reading the process's memory. With `checkpoint=True` each block runs
# under `torch.utils.checkpoint.checkpoint`: forward without saving anything but the block's
# input, and the block is recomputed during backward.

# %%
from llmcourse.scaling import saved_activation_bytes

llmcourse.seed_everything(0)
cfg = GPTConfig(vocab_size=96, block_size=128, n_layer=4, n_head=4, n_embd=64)
net = GPT(cfg)
B, T = 8, 128
idx, tgt = torch.randint(0, 96, (B, T)), torch.randint(0, 96, (B, T))

plain = saved_activation_bytes(net, idx, tgt)
grads_plain = [p.grad.clone() for p in net.parameters()]
net.zero_grad()
ckpt = saved_activation_bytes(net, idx, tgt, checkpoint=True)
# recomputation changes the memory, not the maths: the same gradients
assert all(torch.allclose(p.grad, g, atol=1e-6) for p, g in zip(net.parameters(), grads_plain))

# %% [markdown]
# Compare with the formulas for a GPT layer **without dropout** (our GPT's dropout is 0: no
# masks, so 32·sbh), doubled because our GPT trains in fp32 (4 bytes, not 2). Our attention is
# PyTorch's fused `scaled_dot_product_attention`, which never stores the T×T score matrix —
# that is "selective recomputation" by design (it is what FlashAttention does). To separate the
# blocks from what lies outside them (embeddings, final norm, logits), we also measure a model
# twice as deep: the difference is four blocks' worth.

# %% tags=["nbval-ignore-output"]
kw = dict(seq_len=T, micro_batch=B, d_model=cfg.n_embd, n_heads=cfg.n_head, dropout=False)
formula = {r: 2 * cfg.n_layer * activation_bytes_per_layer(**kw, recompute=r) for r in strategies}
llmcourse.seed_everything(0)
deeper = GPT(GPTConfig(vocab_size=96, block_size=128, n_layer=8, n_head=4, n_embd=64))
per_block = (saved_activation_bytes(deeper, idx, tgt) - plain) / 4
print(f"measured, no checkpointing: {plain / 1e6:6.2f} MB   formula selective: "
      f"{formula['selective'] / 1e6:6.2f} MB   (none, with T×T scores: {formula['none'] / 1e6:.2f})")
print(f"  of which one block: {per_block / 1e6:.3f} MB measured, "
      f"{formula['selective'] / cfg.n_layer / 1e6:.3f} MB formula; outside the blocks: "
      f"{(plain - cfg.n_layer * per_block) / 1e6:.2f} MB")
print(f"measured, checkpointing:    {ckpt / 1e6:6.2f} MB   formula full:      "
      f"{formula['full'] / 1e6:6.2f} MB   (+ the embedding/head outside the blocks)")
print(f"checkpointing keeps {plain / ckpt:.1f}× fewer activation bytes")

# %%
assert abs(per_block / (formula["selective"] / cfg.n_layer) - 1) < 0.02  # 32·sbh a block, measured
assert plain > formula["selective"]  # plus the embeddings, final norm and logits
assert ckpt >= formula["full"]  # every block keeps at least its input…
assert plain > 5 * ckpt  # …and checkpointing saves a lot

# %% [markdown]
# Those are the bytes kept between forward and backward. The **peak** memory of a step also
# holds the gradients, the logits and — with checkpointing — one block recomputed during
# backward. `peak_rss_of_training_step` measures it: one forward + backward in a fresh
# process, reading the process's peak resident memory before and after (with glibc's dynamic
# mmap threshold switched off, so freed buffers really go back to the OS and the reading is the
# same on every run).

# %% tags=["nbval-ignore-output"]
import sys

from llmcourse.scaling import peak_rss_of_training_step

gpt_fields = {f: getattr(cfg, f) for f in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd")}
peak = {ck: peak_rss_of_training_step(gpt_fields, batch_size=B, seq_len=T, checkpoint=ck)
        for ck in (False, True)}
for ck, r in peak.items():
    print(f"checkpointing {'on ' if ck else 'off'}: peak +{r['peak_increase'] / 1e6:5.1f} MB, "
          f"of which saved for backward {r['saved'] / 1e6:5.1f} MB")

# %%
assert peak[False]["saved"] == plain and peak[True]["saved"] == ckpt  # the same step, measured again
if sys.platform == "linux":  # macOS's allocator keeps freed memory: its peak reading is looser
    assert peak[False]["peak_increase"] > 0.8 * plain  # without checkpointing, activations are the peak
    assert peak[True]["peak_increase"] < 0.6 * peak[False]["peak_increase"]  # checkpointing lowers it

# %% [markdown]
# The price: each block's forward runs twice, so a training step does about 4/3 of the FLOPs
# (8·N·D instead of 6·N·D) — which is why large runs prefer selective recomputation or
# FlashAttention when the memory allows.
#
# ## 6 · Compute: FLOPs, tokens, GPU-hours, dollars
#
# Training costs about **6 FLOPs per parameter per token**: 2 for the forward matmuls, 4 for
# backward (Kaplan et al. 2020). Attention adds 12·L·d·T per token (PaLM, Chowdhery et al.
# 2022, appendix B) — small next to 6N unless the context is long. Hoffmann et al. (2022,
# "Chinchilla") found the compute-optimal budget at about **20 tokens per parameter**.

# %%
from llmcourse.scaling import (
    chinchilla_tokens,
    gpu_hours,
    implied_mfu,
    training_cost,
    training_flops,
    training_time,
)

print(f"Chinchilla-optimal for 7B: {chinchilla_tokens(n7) / 1e9:.0f} B tokens; "
      f"Llama 2 used 2,000 B (15× more: a smaller model that is cheaper to serve)")
flops_6nd = training_flops(6.74e9, 2e12)
flops_full = training_flops(6.74e9, 2e12, seq_len=4096, n_layer=32, d_model=4096)
print(f"6ND: {flops_6nd:.3e} FLOPs; with attention at 4096 tokens: {flops_full:.3e}")
assert chinchilla_tokens(70e9) == 1.4e12  # Chinchilla itself: 70 B parameters, 1.4 T tokens

# %% [markdown]
# **Steps.** Llama 2 trained with a global batch of 4M tokens per optimizer step (Touvron et al.
# 2023, table 1) — we take 1,024 sequences of its 4,096-token context, 4,194,304. `batch_plan` turns a token budget into steps,
# and a number of GPUs into gradient-accumulation steps (each GPU runs `micro_batch` sequences
# per forward/backward and accumulates until the global batch is reached):

# %%
from llmcourse.scaling import LLAMA2_GLOBAL_BATCH_TOKENS, batch_plan

plan = batch_plan(2e12, global_batch_tokens=LLAMA2_GLOBAL_BATCH_TOKENS, seq_len=4096,
                  micro_batch=1, n_gpus=256)
print(f"{LLAMA2_GLOBAL_BATCH_TOKENS:,} tokens per step: {plan['steps']:,} steps for 2 T tokens; "
      f"on 256 GPUs, {plan['accumulation_steps']} micro-batches accumulated per GPU and step")
assert LLAMA2_GLOBAL_BATCH_TOKENS == 1024 * 4096
assert plan["steps"] == math.ceil(2e12 / (1024 * 4096)) == 476_838
assert plan["accumulation_steps"] * 256 == 1024

# %% [markdown]
# With 2,048 GPUs the 1,024 sequences of a step do not even give each GPU one: large runs then
# split each model replica over several GPUs (tensor and pipeline parallelism, section 9), so
# the number of data-parallel replicas — not of GPUs — divides the batch.
#
# **Time.** `training_time` returns **wall-clock hours** on `n_gpus` GPUs; GPU-hours (what
# papers report) are hours × n_gpus, `gpu_hours(...)` directly. MFU (model FLOPs utilisation)
# is the fraction of the GPU's dense bf16 peak (312 TFLOP/s for an A100) that the run achieves.
#
# **Check against the published figure.** Meta reports 184,320 A100-80GB GPU-hours for
# Llama-2-7B (Touvron et al. 2023, table 2).

# %%
hours = training_time(flops_6nd, gpu="A100", n_gpus=1, mfu=0.4)
print(f"Llama-2-7B at MFU 0.4: {hours:,.0f} A100-hours (published: 184,320)")
assert math.isclose(hours, 6 * 6.74e9 * 2e12 / (312e12 * 0.4) / 3600, rel_tol=1e-9)
assert hours == gpu_hours(flops_6nd, gpu="A100", mfu=0.4)  # one GPU: wall-clock = GPU-hours
wall = training_time(flops_6nd, gpu="A100", n_gpus=2048, mfu=0.4)
print(f"on 2,048 A100s: {wall / 24:.1f} days of wall-clock time")
assert math.isclose(wall * 2048, hours, rel_tol=1e-12)

mfu_6nd = implied_mfu(flops_6nd, 184_320, gpu="A100")
mfu_full = implied_mfu(flops_full, 184_320, gpu="A100")
print(f"MFU implied by the published hours: {mfu_6nd:.3f} (6ND), {mfu_full:.3f} (with attention)")
assert math.isclose(mfu_6nd, 8.088e22 / (184_320 * 3600 * 312e12), rel_tol=1e-3)
assert math.isclose(gpu_hours(flops_6nd, gpu="A100", mfu=mfu_6nd), 184_320, rel_tol=1e-9)
assert math.isclose(gpu_hours(flops_full, gpu="A100", mfu=mfu_full), 184_320, rel_tol=1e-9)
assert abs(mfu_6nd - 0.391) < 5e-4 and abs(mfu_full - 0.453) < 5e-4

# %% [markdown]
# So Meta's run sustained roughly **39 % of the A100's peak** counting 6·N·D, or 45 %
# counting the attention FLOPs too — typical of a well-tuned large run (PaLM reported 46 %).
# The published hours also include everything our formula ignores: restarts after failures,
# evaluation, checkpointing, slower nodes.
#
# **MFU vs HFU.** MFU counts the FLOPs the *model* needs. With recomputation the GPUs do more:
# full recomputation runs every forward twice, 8·N·D instead of 6·N·D. The **hardware FLOPs
# utilisation** (HFU) counts those too (PaLM, Chowdhery et al. 2022, defined MFU against it;
# Korthikanti et al. 2022 report both): the same run, the same hours, a higher HFU. MFU is the
# honest measure of progress; HFU says how busy the chips were.

# %%
from llmcourse.scaling import hardware_flops

shape_flops = dict(seq_len=4096, n_layer=32, d_model=4096)
for r in strategies:
    hw = hardware_flops(6.74e9, 2e12, recompute=r, **shape_flops)
    hfu = implied_mfu(hw, 184_320, gpu="A100")
    print(f"recompute {r:>9}: {hw:.3e} hardware FLOPs → HFU {hfu:.3f} at MFU {mfu_full:.3f}")
assert hardware_flops(6.74e9, 2e12, recompute="full") == 8 * 6.74e9 * 2e12  # 8·N·D
assert math.isclose(implied_mfu(hardware_flops(6.74e9, 2e12, recompute="full", **shape_flops),
                                184_320, gpu="A100"), mfu_full * 4 / 3, rel_tol=1e-12)

# %% [markdown]
# In dollars (illustrative on-demand prices in `GPU_PRICES_USD`; real contracts differ a lot):

# %%
for gpu in ("A100", "H100", "H200"):
    cost = training_cost(flops_6nd, gpu=gpu, mfu=0.4)
    print(f"{gpu:>5}: {gpu_hours(flops_6nd, gpu=gpu, mfu=0.4):>9,.0f} GPU-hours, ~${cost / 1e3:,.0f} k")

# %% [markdown]
# ## 7 · The calculator
#
# Put it together: pick a model, a cluster, a ZeRO stage, a recomputation strategy and a global
# batch; the bars show memory per GPU (with the recomputation working set) against the card's
# capacity, and the text the steps, the HFU that the chosen MFU implies, the time and the cost.
# (On a static page the controls do not move — run the notebook.)

# %% tags=["nbval-ignore-output"]
from llmcourse.widgets import ScalingCalculator

calc = ScalingCalculator("Llama-2-7B", gpu="A100")
calc

# %% [markdown]
# We drive the controls from code, the way you would with the mouse, and check that the
# figure and the labels follow. One GPU: it does not fit. 64 GPUs with ZeRO-3 and full
# recomputation: it does, and the wall-clock time drops 64×.

# %%
before = dict(calc.result)
assert not before["fits"] and math.isclose(before["peak_gb"] * 1e9, budgets["none"]["peak"])
assert before["steps"] == plan["steps"] and before["accumulation_steps"] == 1024
calc.controls["n_gpus"].value = 64
calc.controls["zero_stage"].value = 3
calc.controls["recompute"].value = "full"
after = calc.result
print(calc.fig.layout.title.text)
print([f"{d.name} {d.y[0]:.2f} GB" for d in calc.fig.data])
print(f"{after['steps']:,} steps, {after['accumulation_steps']} micro-batches per GPU and step, "
      f"HFU {after['hfu']:.3f} at MFU 0.4")
assert after["fits"] and "fits in 80 GB" in calc.summary.value
assert abs(sum(d.y[0] for d in calc.fig.data) - after["peak_gb"]) < 1e-9
assert abs(after["hours"] * 64 - before["hours"]) < 1e-6 * before["hours"]
assert after["accumulation_steps"] == 1024 // 64 and after["steps"] == before["steps"]
assert math.isclose(after["hfu"], 0.4 * after["hardware_flops"] / after["flops"])
assert math.isclose(after["hfu"], 0.4 * 4 / 3, rel_tol=1e-12)  # full: every forward twice

# %% [markdown]
# The same numbers as a static plotly figure (`calc.fig`), e.g. for a report:

# %%
calc.fig

# %% [markdown]
# ## 8 · Scaling laws on the CPU
#
# Kaplan et al. (2020) found that loss falls as a power of model size, L(N) ≈ (N_c / N)^α,
# over seven orders of magnitude. We can see the start of it in a minute: train GPTs of a few
# widths on the same tokens (bytes of the Python reference), average the last evaluations,
# and fit a line in log-log space. N counts the non-embedding parameters, as the paper does.

# %%
import numpy as np

from llmcourse.data import load_corpus, train_val_split

text = load_corpus("python-reference")
train_text, val_text = train_val_split(text, val_fraction=0.1)
train_ids = torch.tensor(list(train_text.encode("utf-8")), dtype=torch.long)
val_ids = torch.tensor(list(val_text.encode("utf-8")), dtype=torch.long)
SL_T, SL_B = 64, 16
SL_STEPS = prof.pick(ci=300, cpu=1_000, gpu=3_000)
SL_WIDTHS = prof.pick(ci=(8, 16, 32, 64), cpu=(8, 16, 32, 64, 128), gpu=(16, 32, 64, 128, 256))


def get_batch(data, gen):
    ix = torch.randint(0, len(data) - SL_T - 1, (SL_B,), generator=gen).tolist()
    xy = torch.stack([data[i: i + SL_T + 1] for i in ix]).to(device)
    return xy[:, :-1], xy[:, 1:]


val_batches = [get_batch(val_ids, torch.Generator().manual_seed(123)) for _ in range(16)]


def train_tiny(width, steps=SL_STEPS, lr=2e-3, seed=0, warmup=20):
    """Train a 2-layer GPT of this width; return (non-embedding params, final val loss)."""
    llmcourse.seed_everything(seed)
    model = GPT(GPTConfig(vocab_size=256, block_size=SL_T, n_layer=2,
                          n_head=max(1, width // 16), n_embd=width)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    gen, every, evals = torch.Generator().manual_seed(seed), steps // 20, []
    for step in range(steps):  # linear warmup, cosine to 10 %
        scale = min(1.0, (step + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
        for group in opt.param_groups:
            group["lr"] = lr * scale
        _, loss = model(*get_batch(train_ids, gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if (step + 1) % every == 0 and step + 1 > steps - 4 * every:  # the last 4 evaluations
            model.eval()
            with torch.no_grad():
                evals.append(np.mean([model(x, y)[1].item() for x, y in val_batches]))
            model.train()
    return model.num_params(non_embedding=True), float(np.mean(evals))


threads = torch.get_num_threads()
torch.set_num_threads(1)  # tiny models: one thread is as fast and never oversubscribes the CPU
runs = [train_tiny(w) for w in SL_WIDTHS]
torch.set_num_threads(threads)

# %% tags=["nbval-ignore-output"]
from llmcourse.scaling import fit_power_law

params, losses = zip(*runs)
law = fit_power_law(params, losses)
for w, (n, loss) in zip(SL_WIDTHS, runs):
    print(f"width {w:>3}: {n:>8,} non-embedding params → val loss {loss:.3f} nats/byte")
print(f"fit: L(N) = {law['a']:.2f} · N^-{law['alpha']:.3f}   R² = {law['r2']:.3f}")
print("(Kaplan et al. 2020 found α_N ≈ 0.076 for large models trained to convergence)")

# %%
assert law["r2"] >= 0.9  # a straight line in log-log space
assert law["alpha"] > 0 and losses[-1] < losses[0]  # bigger is better

grid = np.geomspace(min(params), max(params), 50)
fig = go.Figure()
fig.add_scatter(x=list(params), y=list(losses), mode="markers", name="measured",
                marker_size=10)
fig.add_scatter(x=grid, y=law["a"] * grid ** -law["alpha"], mode="lines",
                name=f"fit α = {law['alpha']:.3f}, R² = {law['r2']:.2f}")
fig.update_layout(xaxis_type="log", yaxis_type="log", height=380, width=620,
                  xaxis_title="non-embedding parameters N", yaxis_title="validation loss",
                  title=f"Same {SL_STEPS * SL_B * SL_T:,} tokens, {len(SL_WIDTHS)} model sizes")
fig

# %% [markdown]
# Careful with what this shows: a fixed token budget, short runs, one learning rate, no
# irreducible-loss term. A fixed number of tokens favours the big models; a fixed number of
# **FLOPs** does not, and that is the question a lab with a budget asks.
#
# ### Chinchilla's law: parameters *and* tokens
#
# Hoffmann et al. (2022) fitted one law to about 400 runs (§3.3):
# L(N, D) = E + A/N^α + B/D^β, with E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28 (nats
# per token of their data and tokenizer). E is the entropy of text that no model removes; A/N^α
# is what a finite model leaves, B/D^β what finite data leaves. With a budget of C ≈ 6·N·D
# FLOPs, more parameters means fewer tokens, so along an **IsoFLOP** curve the loss has a
# minimum, at N_opt = G·(C/6)^(β/(α+β)) with G = (αA/(βB))^(1/(α+β)) (their equation 4).

# %%
from llmcourse.scaling import CHINCHILLA_LAW, chinchilla_loss, chinchilla_optimal

print(CHINCHILLA_LAW)
C_chinchilla = 6 * 70e9 * 1.4e12  # Chinchilla: 70 B parameters, 1.4 T tokens
opt = chinchilla_optimal(C_chinchilla)
at_70b = chinchilla_loss(70e9, 1.4e12)
print(f"Chinchilla, 70 B on 1.4 T tokens: predicted loss {at_70b:.4f}")
print(f"the law's optimum for the same {C_chinchilla:.2e} FLOPs: {opt['n_params'] / 1e9:.0f} B "
      f"parameters on {opt['n_tokens'] / 1e12:.2f} T tokens ({opt['tokens_per_param']:.0f} per "
      f"parameter), loss {opt['loss']:.4f}")
C_llama = 6 * 6.74e9 * 2e12
llama_opt = chinchilla_optimal(C_llama)
at_llama = chinchilla_loss(6.74e9, 2e12)
print(f"Llama-2-7B on 2 T tokens: {at_llama:.4f}; the law's optimum for its FLOPs: "
      f"{llama_opt['n_params'] / 1e9:.1f} B parameters, loss {llama_opt['loss']:.4f}")

# %%
assert math.isclose(at_70b, 1.69 + 406.4 / 70e9**0.34 + 410.7 / 1.4e12**0.28, rel_tol=1e-12)
assert math.isclose(6 * opt["n_params"] * opt["n_tokens"], C_chinchilla, rel_tol=1e-12)
for f in (0.5, 0.9, 1.1, 2.0):  # any other split of the same FLOPs predicts a higher loss
    n = f * opt["n_params"]
    assert chinchilla_loss(n, C_chinchilla / (6 * n)) > opt["loss"]
assert 0 < at_70b - opt["loss"] < 0.01  # a flat valley: 2.2× the optimal size costs < 0.01 nats
assert 0 < at_llama - llama_opt["loss"] < 0.01  # Llama-2-7B: half the optimal size, +0.007 nats
assert 0.5 < 6.74e9 / llama_opt["n_params"] < 0.52

# %% [markdown]
# Two lessons. The valley is **flat**: Chinchilla is 2.2× the law's optimal size and loses less
# than 0.01 nats for it, and Llama-2-7B — half the optimal size for its FLOPs, on 297 tokens
# per parameter — loses 0.007 nats, in exchange for a model that is half as expensive to run
# for every user afterwards. And the printed constants **do not reproduce** the paper's famous
# 20 tokens per parameter: at Chinchilla's own budget they put the optimum at about 93.
# Besiroglu et al. (2024, "Chinchilla Scaling: A replication attempt") traced that to rounding
# of the printed constants and a fit that stopped before converging; the 20 comes from the
# paper's other two methods. One of them, IsoFLOP profiles, we can run.
#
# The law's IsoFLOP curves, with the closed-form optimum on each:

# %%
budgets_law = (1e20, 1e21, 1e22, 1e23, 1e24)
sizes = np.geomspace(1e7, 1e12, 201)
fig = go.Figure()
for C in budgets_law:
    fig.add_scatter(x=sizes, y=[chinchilla_loss(n, C / (6 * n)) for n in sizes], mode="lines",
                    name=f"C = {C:.0e}")
optima = [chinchilla_optimal(C) for C in budgets_law]
fig.add_scatter(x=[o["n_params"] for o in optima], y=[o["loss"] for o in optima],
                mode="markers", marker=dict(size=10, color="black"), name="optimum (eq. 4)")
fig.update_layout(xaxis_type="log", height=380, width=620, yaxis_range=[1.8, 4.0],
                  xaxis_title="parameters N", yaxis_title="predicted loss (nats/token)",
                  title="Chinchilla's law along IsoFLOP curves (C = 6·N·D)")
fig

# %%
grid_step = math.log(sizes[1] / sizes[0])
for curve, o in zip(fig.data[:-1], optima):
    best = sizes[int(np.argmin(curve.y))]  # the lowest point drawn on each curve…
    assert abs(math.log(best / o["n_params"])) <= grid_step  # …is the closed-form optimum
exponent = math.log(optima[-1]["n_params"] / optima[0]["n_params"]) / math.log(1e4)
assert math.isclose(exponent, 0.28 / (0.34 + 0.28), rel_tol=1e-9)  # N_opt ∝ C^(β/(α+β)) = C^0.45

# %% [markdown]
# ### A toy IsoFLOP fit
#
# Hoffmann et al.'s approach 2: fix a budget of FLOPs, train models of several sizes on exactly
# that budget (the smaller ones see more tokens), and fit a parabola of loss against log N; its
# vertex is the compute-optimal size for that budget. We reuse `train_tiny`, counting FLOPs per
# token with our GPT's `flops_per_token` (6N plus attention), so each model trains for
# C / (FLOPs per token × tokens per step) steps, with a learning rate and a short warmup that
# suit these tiny models and short runs. The profile sets the budgets: one under `ci`, two (a
# factor of 2 apart) otherwise.

# %%
from llmcourse.scaling import isoflop_optimum


def flops_per_token(width):
    return GPT(GPTConfig(vocab_size=256, block_size=SL_T, n_layer=2, n_head=max(1, width // 16),
                         n_embd=width)).flops_per_token(SL_T)


ISO_LR = 5e-3
ISO_C = flops_per_token(32) * SL_B * SL_T * 100  # 100 steps of the width-32 model
ISO_WIDTHS = (8, 12, 16, 24, 32)
ISO_BUDGETS = prof.pick(ci=(1.0,), cpu=(1.0, 2.0), gpu=(1.0, 2.0))  # multiples of ISO_C
threads = torch.get_num_threads()
torch.set_num_threads(1)
iso_runs = {}
for mult in ISO_BUDGETS:
    C = mult * ISO_C
    steps = [round(C / (flops_per_token(w) * SL_B * SL_T)) for w in ISO_WIDTHS]
    iso_runs[C] = [(w, k, *train_tiny(w, steps=k, lr=ISO_LR, warmup=5))
                   for w, k in zip(ISO_WIDTHS, steps)]
torch.set_num_threads(threads)
iso_fits = {C: isoflop_optimum([r[2] for r in runs], [r[3] for r in runs])
            for C, runs in iso_runs.items()}

# %% tags=["nbval-ignore-output"]
for C, runs in iso_runs.items():
    print(f"C = {C:.2e} FLOPs: " + ", ".join(f"width {w} ({k} steps) {loss:.3f}"
                                           for w, k, _, loss in runs))
    print(f"   parabola's vertex: N_opt ≈ {iso_fits[C]['n_opt']:,.0f} non-embedding parameters, "
          f"loss {iso_fits[C]['loss_opt']:.3f}")

# %%
fig = go.Figure()
for C, runs in iso_runs.items():
    ns, losses_c = [r[2] for r in runs], [r[3] for r in runs]
    f = iso_fits[C]
    grid = np.geomspace(min(ns), max(ns), 50)
    fig.add_scatter(x=ns, y=losses_c, mode="markers", marker_size=9, name=f"C = {C:.1e}")
    fig.add_scatter(x=grid, y=f["loss_opt"] + f["curvature"] * np.log(grid / f["n_opt"]) ** 2,
                    mode="lines", line_dash="dot", showlegend=False)
    fig.add_scatter(x=[f["n_opt"]], y=[f["loss_opt"]], mode="markers",
                    marker=dict(symbol="star", size=14, color="black"), showlegend=False)
fig.update_layout(xaxis_type="log", height=380, width=620, xaxis_title="non-embedding parameters N",
                  yaxis_title="validation loss (nats/byte)",
                  title="Toy IsoFLOP profiles: same FLOPs, different sizes")
fig

# %%
for C, i in zip(iso_runs, range(0, len(fig.data), 3)):
    points, _curve, star = fig.data[i: i + 3]
    assert min(points.x) < star.x[0] < max(points.x)  # a valley inside the sizes tried…
    assert star.y[0] < min(points.y) + 0.02  # …whose bottom is at most a little above the best run
    assert min(points.y) < points.y[0] and min(points.y) < points.y[-1]  # measured: a U, not a slope
    assert iso_fits[C]["curvature"] > 0
optimal_sizes = [iso_fits[C]["n_opt"] for C in iso_runs]
assert optimal_sizes == sorted(optimal_sizes)  # a bigger budget wants a bigger model

# %% [markdown]
# Each budget has its valley: too small a model cannot use the FLOPs, too big a one sees too few
# tokens. With more than one budget the vertex moves to bigger models as the budget grows — the
# trend that Hoffmann et al. measured over four orders of magnitude, fitting
# N_opt ∝ C^0.49–0.50 (approaches 1 and 2), and that made them train Chinchilla. Our toy is far
# from that: byte-level text, a few hundred steps, one seed, a learning rate tuned for none of
# the sizes, and a fixed schedule shape; read its numbers as a demonstration of the method, not
# as a measurement of an exponent.
#
# ## 9 · Data parallelism, for real: two processes
#
# Data-parallel training runs one process per GPU. Each holds a full model replica, takes its
# slice of the global batch, and during `backward` the gradients are **all-reduced**
# (averaged) across processes, so every replica takes the same step. `torchrun` starts the
# processes and tells each its `RANK` and `WORLD_SIZE`. The same works on a CPU with the
# `gloo` backend: `llmcourse.ddp_demo` trains our GPT for a few steps on 2 processes, then
# checks that the replicas are identical and equal to one process trained on the whole batch.
# (`llmcourse.train.Trainer` does the same under torchrun, with NCCL on GPUs.)

# %%
import json
import os
import subprocess
import tempfile
from pathlib import Path

from llmcourse.ddp_demo import free_port

out_file = Path(tempfile.mkdtemp()) / "ddp.json"
cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
       "--master_port", str(free_port()), "-m", "llmcourse.ddp_demo",
       "--steps", "5", "--batch", "8", "--out", str(out_file)]
proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                      env={**os.environ, "OMP_NUM_THREADS": "1"})
assert proc.returncode == 0, proc.stderr[-2000:]
ddp = json.loads(out_file.read_text())
print(f"world size {ddp['world_size']}: each rank trains on {ddp['per_rank_batch']} of "
      f"{ddp['global_batch']} sequences per step, {ddp['steps']} steps")
print("replicas identical after training:", ddp["max_diff_between_ranks"] == 0.0)
print("equal to one process on the full batch (max |Δ| < 1e-4):",
      ddp["max_diff_vs_single_process"] < 1e-4)

# %% tags=["nbval-ignore-output"]
print("DDP losses:   ", [round(x, 4) for x in ddp["ddp_losses"]])
print("single losses:", [round(x, 4) for x in ddp["single_losses"]])
print(f"max |Δparam| vs one process: {ddp['max_diff_vs_single_process']:.1e}")

# %%
assert ddp["max_diff_between_ranks"] == 0.0
assert ddp["max_diff_vs_single_process"] < 1e-4
assert np.allclose(ddp["ddp_losses"], ddp["single_losses"], atol=1e-4)

# %% [markdown]
# The parameters differ from the single process only by float rounding (summing gradients in a
# different order). On a GPU cluster the same script runs with `--nproc_per_node=8` per node,
# `backend="nccl"`, and a few hundred nodes; ZeRO/FSDP replace DDP when the model states do
# not fit, and tensor/pipeline parallelism split single layers or the stack of layers when even
# that is not enough (Megatron-LM, Shoeybi et al. 2019; Narayanan et al. 2021).
#
# ## 10 · What a real run adds
#
# The arithmetic above is the easy part. The Llama 2, OPT and BLOOM reports spend most of their
# pages on the rest:
#
# - **Data at web scale.** Trillions of tokens from Common Crawl need language identification,
#   quality filtering and PII removal; see *The RefinedWeb dataset* (Penedo et al. 2023) and
#   *FineWeb* (Penedo et al. 2024) for open pipelines, and *Dolma* (Soldaini et al. 2024).
# - **Deduplication.** Exact and near-duplicate documents (MinHash/LSH) inflate memorisation
#   and waste compute: *Deduplicating Training Data Makes Language Models Better* (Lee et al.
#   2022).
# - **Loss spikes.** Large runs diverge suddenly; remedies are lower learning rates, gradient
#   clipping, z-loss, QK-norm, skipping bad batches and rolling back to a checkpoint (PaLM §5.1;
#   OPT-175B logbook, Zhang et al. 2022).
# - **Failures and restarts.** At thousands of GPUs a node fails every few hours: frequent
#   asynchronous checkpoints, automatic restarts and spare nodes (Llama 3 report, Dubey et al.
#   2024, §3.3.4: 466 interruptions in 54 days).
# - **Evaluation and decisions.** Ablations at small scale, scaling-law fits to choose the
#   final size, and evaluation suites run on checkpoints during training.

# %% [markdown]
# ## Exercises
#
# ### 1. Model-state memory under ZeRO
#
# Write `model_state_bytes(n_params, zero_stage, n_gpus)`: bytes per GPU of weights,
# gradients and optimizer states for mixed-precision AdamW (no activations), for ZeRO stages
# 0–3. Do not call `llmcourse.scaling`.

# %%
from llmcourse.exercises.scaling import check_gpu_hours, check_model_state_bytes


def model_state_bytes(n_params: float, zero_stage: int, n_gpus: int) -> float:
    raise NotImplementedError  # your code here


check_model_state_bytes(model_state_bytes)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# 2 + 2 + 12 bytes per parameter; stage ≥ 1 divides the 12 by N, stage ≥ 2 also the
# gradients' 2, stage 3 also the weights' 2.
# </details>

# %% jupyter={"source_hidden": true}
def model_state_bytes_solution(n_params: float, zero_stage: int, n_gpus: int) -> float:
    weights = 2 * n_params / (n_gpus if zero_stage >= 3 else 1)
    grads = 2 * n_params / (n_gpus if zero_stage >= 2 else 1)
    optimizer = 12 * n_params / (n_gpus if zero_stage >= 1 else 1)
    return weights + grads + optimizer


assert check_model_state_bytes(model_state_bytes_solution)

# %% [markdown]
# A common mistake — sharding everything at every stage — must fail the checker:

# %%
assert not check_model_state_bytes(lambda n, stage, gpus: 16 * n / gpus)

# %% [markdown]
# ### 2. GPU-hours from first principles
#
# Write `gpu_hours_6nd(n_params, n_tokens, peak_flops, mfu)`: the GPU-hours to train
# `n_params` parameters on `n_tokens` tokens with the 6·N·D rule on a GPU of peak
# `peak_flops` FLOP/s running at utilisation `mfu`.

# %%
def gpu_hours_6nd(n_params: float, n_tokens: float, peak_flops: float, mfu: float) -> float:
    raise NotImplementedError  # your code here


check_gpu_hours(gpu_hours_6nd)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# FLOPs = 6·N·D; achieved FLOP/s = peak × MFU; divide, then seconds → hours.
# </details>

# %% jupyter={"source_hidden": true}
def gpu_hours_6nd_solution(n_params, n_tokens, peak_flops, mfu):
    return 6 * n_params * n_tokens / (peak_flops * mfu) / 3600


assert check_gpu_hours(gpu_hours_6nd_solution)
assert not check_gpu_hours(lambda n, d, peak, mfu: 2 * n * d / (peak * mfu) / 3600)  # forward only

# %% [markdown]
# ### 3. (open) Plan a run
#
# With the calculator: what is the smallest number of H100s that trains Llama-2-13B at 4096
# tokens with ZeRO-3 and selective recomputation in under 30 days on its Chinchilla-optimal
# budget? And on 2 T tokens?
#
# ## Summary
#
# - Mixed-precision AdamW needs **16 bytes per parameter** before activations: 108 GB for a
#   7B model, more than any single GPU; 8-bit optimizer states, offloading or LoRA change that.
# - A Llama-style layer without dropout keeps (16 + 8f/h)·sbh + 2·as²b bytes of activations
#   without FlashAttention: 54.5 GB for Llama-2-7B at 4,096 tokens, about half the GPT-3 count.
# - ZeRO/FSDP shard optimizer states, gradients, then weights over N GPUs (120 → 31.4 / 16.6 /
#   1.9 GB for the paper's 7.5B on 64 GPUs); recomputation shrinks activations (measured here:
#   several times fewer saved bytes, identical gradients).
# - Compute ≈ 6·N·D FLOPs; GPU-hours = FLOPs / (peak × MFU) / 3600. Llama-2-7B's published
#   184,320 A100-hours imply an MFU of about 0.39–0.45; recomputation adds FLOPs that the
#   hardware does and MFU does not count (HFU = MFU × 4/3 with full recomputation).
# - A global batch of 4M tokens makes Llama 2's 2 T tokens 476,838 optimizer steps.
# - Loss falls as a power law of size — visible even in tiny CPU runs; at a fixed FLOP budget it
#   has a valley (IsoFLOP), and Chinchilla's law L = E + A/N^α + B/D^β says where — with a flat
#   bottom, which is why smaller, longer-trained models like Llama-2-7B cost little loss.
#
# Next: **09 · Fine-tuning** — instead of paying for pretraining, adapt a pretrained model.
