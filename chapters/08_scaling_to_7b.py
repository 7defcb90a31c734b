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
#   and why a 7B model does not fit one 80 GB GPU;
# - mixed precision, ZeRO/FSDP sharding and gradient checkpointing (measured on our GPT);
# - how FLOPs turn into GPU-hours and dollars, checked against what Meta and Microsoft published;
# - how a scaling law is fitted (we fit one on the CPU) and how data parallelism works (we run it);
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
# forward pass saves for backward. Korthikanti et al. (2022) count them per transformer layer,
# in bytes, for sequence length *s*, micro-batch *b*, width *h* and *a* heads:
# s·b·h·(34 + 5·a·s/h) — the 5·a·s²·b part is the attention-score matrices.

# %%
from llmcourse.scaling import bytes_per_param, fits, training_memory

bpp = bytes_per_param("mixed", "adamw")
print(bpp, "→", sum(bpp.values()), "bytes per parameter")
assert sum(bpp.values()) == 16

llama7 = PRESETS["Llama-2-7B"]
shape7 = dict(seq_len=4096, micro_batch=1, n_layer=llama7["n_layer"],
              d_model=llama7["d_model"], n_heads=llama7["n_heads"])
mem = training_memory(n7, **shape7)
for k, v in mem.items():
    print(f"{k:>11}: {v / 1e9:7.1f} GB")
assert not fits(mem, "H100") and not fits(mem, "H200")  # not even 141 GB

# %% [markdown]
# 108 GB of model states alone: a 7B model cannot be trained on one 80 GB GPU, whatever the
# batch. The activations at 4096 tokens are as large again, and mostly the attention matrices.
# Here is the budget with the three recomputation strategies of Korthikanti et al.:

# %%
import plotly.graph_objects as go

strategies = ("none", "selective", "full")
budgets = {r: training_memory(n7, **shape7, recompute=r) for r in strategies}
fig = go.Figure()
for part in ("weights", "grads", "optimizer", "activations"):
    fig.add_bar(name=part, x=list(strategies), y=[budgets[r][part] / 1e9 for r in strategies])
fig.add_hline(y=80, line_dash="dash", annotation_text="one A100/H100: 80 GB")
fig.update_layout(barmode="stack", height=380, width=620, yaxis_title="GB per GPU",
                  xaxis_title="activation recomputation", title="Llama-2-7B, 1 GPU, s = 4096")
fig

# %%
assert [round(b["total"] / 1e9) for b in budgets.values()] == [212, 126, 109]
assert budgets["full"]["activations"] < 0.1 * budgets["none"]["activations"]

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
for stage, published in zero_paper.items():
    got = training_memory(7.5e9, zero_stage=stage, n_gpus=64, activations=False)["total"] / 1e9
    print(f"ZeRO stage {stage}: {got:6.2f} GB per GPU (paper: {published})")
    assert abs(got - published) / published < 0.10

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
from llmcourse.scaling import activation_bytes_per_layer, saved_activation_bytes

llmcourse.seed_everything(0)
cfg = GPTConfig(vocab_size=96, block_size=128, n_layer=4, n_head=4, n_embd=64)
net = GPT(cfg)
B, T = 8, 128
idx, tgt = torch.randint(0, 96, (B, T)), torch.randint(0, 96, (B, T))

plain = saved_activation_bytes(net, idx, tgt)
grads_plain = [p.grad.clone() for p in net.parameters()]
net.zero_grad()
ckpt = saved_activation_bytes(net, idx, tgt, checkpoint=True)
assert all(torch.allclose(p.grad, g, atol=1e-6) for p, g in zip(net.parameters(), grads_plain))
print("same gradients with and without checkpointing: True")

# %% [markdown]
# Compare with the formulas, doubled because our GPT trains in fp32 (4 bytes, not 2). Our
# attention is PyTorch's fused `scaled_dot_product_attention`, which never stores the T×T
# score matrix — that is "selective recomputation" by design (it is what FlashAttention does):

# %% tags=["nbval-ignore-output"]
kw = dict(seq_len=T, micro_batch=B, d_model=cfg.n_embd, n_heads=cfg.n_head)
formula = {r: 2 * cfg.n_layer * activation_bytes_per_layer(**kw, recompute=r) for r in strategies}
print(f"measured, no checkpointing: {plain / 1e6:6.2f} MB   formula selective: "
      f"{formula['selective'] / 1e6:6.2f} MB   (none, with T×T scores: {formula['none'] / 1e6:.2f})")
print(f"measured, checkpointing:    {ckpt / 1e6:6.2f} MB   formula full:      "
      f"{formula['full'] / 1e6:6.2f} MB   (+ the embedding/head outside the blocks)")
print(f"checkpointing keeps {plain / ckpt:.1f}× fewer activation bytes")

# %%
assert abs(plain / formula["selective"] - 1) < 0.15  # the paper's 34·sbh, measured
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
# `training_time` returns **wall-clock hours** on `n_gpus` GPUs; GPU-hours (what papers
# report) are hours × n_gpus, `gpu_hours(...)` directly. MFU (model FLOPs utilisation) is the
# fraction of the GPU's dense bf16 peak (312 TFLOP/s for an A100) that the run achieves.
#
# **Check against the published figure.** Meta reports 184,320 A100-80GB GPU-hours for
# Llama-2-7B (Touvron et al. 2023, table 2).

# %%
hours = training_time(flops_6nd, gpu="A100", n_gpus=1, mfu=0.4)
print(f"Llama-2-7B at MFU 0.4: {hours:,.0f} A100-hours (published: 184,320)")
assert 120_000 <= hours <= 260_000
assert hours == gpu_hours(flops_6nd, gpu="A100", mfu=0.4)  # one GPU: wall-clock = GPU-hours
wall = training_time(flops_6nd, gpu="A100", n_gpus=2048, mfu=0.4)
print(f"on 2,048 A100s: {wall / 24:.1f} days of wall-clock time")

mfu_6nd = implied_mfu(flops_6nd, 184_320, gpu="A100")
mfu_full = implied_mfu(flops_full, 184_320, gpu="A100")
print(f"MFU implied by the published hours: {mfu_6nd:.2f} (6ND), {mfu_full:.2f} (with attention)")
assert 0.35 < mfu_6nd < 0.42 and 0.42 < mfu_full < 0.48

# %% [markdown]
# So Meta's run sustained roughly **39 % of the A100's peak** counting 6·N·D, or 45 %
# counting the attention FLOPs too — typical of a well-tuned large run (PaLM reported 46 %).
# The published hours also include everything our formula ignores: restarts after failures,
# evaluation, checkpointing, slower nodes. In dollars (illustrative on-demand prices in
# `GPU_PRICES_USD`; real contracts differ a lot):

# %%
for gpu in ("A100", "H100", "H200"):
    cost = training_cost(flops_6nd, gpu=gpu, mfu=0.4)
    print(f"{gpu:>5}: {gpu_hours(flops_6nd, gpu=gpu, mfu=0.4):>9,.0f} GPU-hours, ~${cost / 1e3:,.0f} k")

# %% [markdown]
# ## 7 · The calculator
#
# Put it together: pick a model, a cluster, a ZeRO stage and a recomputation strategy; the bars
# show memory per GPU against the card's capacity, and the text the time and cost.
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
assert not before["fits"] and before["total_gb"] > 200
calc.controls["n_gpus"].value = 64
calc.controls["zero_stage"].value = 3
calc.controls["recompute"].value = "full"
after = calc.result
print(calc.fig.layout.title.text)
print([f"{d.name} {d.y[0]:.2f} GB" for d in calc.fig.data])
assert after["fits"] and "fits in 80 GB" in calc.summary.value
assert abs(sum(d.y[0] for d in calc.fig.data) - after["total_gb"]) < 1e-9
assert abs(after["hours"] * 64 - before["hours"]) < 1e-6 * before["hours"]

# %% [markdown]
# The same numbers as a static plotly figure (`calc.fig`), e.g. for a report:

# %%
calc.fig

# %% [markdown]
# ## 8 · A scaling law on the CPU
#
# Kaplan et al. (2020) found that loss falls as a power of model size, L(N) ≈ (N_c / N)^α,
# over seven orders of magnitude. We can see the start of it in a minute: train GPTs of four
# widths on the same tokens (bytes of the Python reference), average the last evaluations,
# and fit a line in log-log space. N counts the non-embedding parameters, as the paper does.

# %%
import math

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


def train_tiny(width, steps=SL_STEPS, lr=2e-3, seed=0):
    """Train a 2-layer GPT of this width; return (non-embedding params, final val loss)."""
    llmcourse.seed_everything(seed)
    model = GPT(GPTConfig(vocab_size=256, block_size=SL_T, n_layer=2,
                          n_head=max(1, width // 16), n_embd=width)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    gen, every, evals = torch.Generator().manual_seed(seed), steps // 20, []
    for step in range(steps):  # warmup 20 steps, cosine to 10 %
        scale = min(1.0, (step + 1) / 20) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
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
                  title=f"Same {SL_STEPS * SL_B * SL_T:,} tokens, four model sizes")
fig

# %% [markdown]
# Careful with what this shows: a fixed token budget, short runs, one learning rate, no
# irreducible-loss term. Real scaling-law studies (Kaplan et al. 2020; Hoffmann et al. 2022)
# train hundreds of models to fit L(N, D) jointly and choose N and D for a compute budget C ≈
# 6ND; that is where "20 tokens per parameter" comes from.
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
#   7B model, more than any single GPU.
# - ZeRO/FSDP shard optimizer states, gradients, then weights over N GPUs (120 → 31.4 / 16.6 /
#   1.9 GB for the paper's 7.5B on 64 GPUs); recomputation shrinks activations (measured here:
#   several times fewer saved bytes, identical gradients).
# - Compute ≈ 6·N·D FLOPs; GPU-hours = FLOPs / (peak × MFU) / 3600. Llama-2-7B's published
#   184,320 A100-hours imply an MFU of about 0.39–0.45.
# - Loss falls as a power law of size — visible even in tiny CPU runs.
#
# Next: **09 · Fine-tuning** — instead of paying for pretraining, adapt a pretrained model.
