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
# # 04 · The transformer and GPT
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/04_transformer_and_gpt.ipynb)
#
# **What you will learn**
# - how a GPT is assembled: token + position embeddings → transformer blocks → a language-model head;
# - what is inside a block (LayerNorm, attention, MLP with GELU, residual connections) and why
#   modern models normalise *before* each sub-layer (pre-norm);
# - how to count parameters and FLOPs per token by formula — and size the GPT-2 family;
# - that our short `llmcourse.model.GPT` (nanoGPT-style) **is** GPT-2: same logits as Hugging Face's model;
# - how text is generated: greedy, temperature, top-k, top-p, and why a KV cache makes it fast.
#
# **Prerequisites:** chapter 03 (attention).

# %%
# NBVAL_IGNORE_OUTPUT
import sys

if "google.colab" in sys.modules:  # on Colab only: install the course package
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "llmcourse[offline] @ git+https://github.com/llmcourse/llmcourse"], check=True)

import llmcourse

device, prof = llmcourse.setup(seed=0)
print(llmcourse.env_report())

# %%
import math
import tempfile
import time

import plotly.graph_objects as go
import torch
import torch.nn as nn
import transformers
from plotly.subplots import make_subplots
from torch.nn import functional as F

from llmcourse.model import (
    GPT,
    GPT2_SIZES,
    MLP,
    Block,
    CausalSelfAttention,
    GPTConfig,
    gpt2_config,
    next_token_probs,
    param_count,
)

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

# %% [markdown]
# ## 1. The data, as bytes
#
# To see a GPT do something, we train a tiny one on the Python language reference, one UTF-8
# **byte** per token: a vocabulary of exactly 256 (chapter 02 builds better tokenizers; bytes
# keep this chapter short, and every text can be encoded).

# %%
from llmcourse.data import load_corpus

text = load_corpus("python-reference")[: prof.corpus_chars]
encode = lambda s: list(s.encode("utf-8"))
decode = lambda ids: bytes(ids).decode("utf-8", errors="replace")
data = torch.tensor(encode(text), dtype=torch.long)
assert decode(encode("def f(x):")) == "def f(x):"
print("vocabulary: 256 byte values;", "'def' is", encode("def"))

# %% [markdown]
# ## 2. Embeddings and positions
#
# A token id becomes a vector by a table look-up (`wte`, *word token embedding*). Attention
# is blind to order, so GPT-2 adds a second learned table indexed by position (`wpe`). The sum
# is the start of the **residual stream**, the `(B, T, C)` tensor every block reads from and
# adds to.

# %%
config = GPTConfig(vocab_size=256, **prof.gpt)
torch.manual_seed(0)
wte = nn.Embedding(config.vocab_size, config.n_embd)
wpe = nn.Embedding(config.block_size, config.n_embd)
idx = data[:16].view(2, 8)  # (B=2, T=8) token ids
x = wte(idx) + wpe(torch.arange(8))  # (B, T, C): broadcast over the batch
print(tuple(idx.shape), "->", tuple(x.shape))
assert torch.equal(x[1, 3], wte.weight[idx[1, 3]] + wpe.weight[3])

# %% [markdown]
# ## 3. Inside a block
#
# **LayerNorm** rescales each token's vector to mean 0 and variance 1, then applies a learned
# gain and bias. It keeps activations in range whatever the depth. Written by hand, it equals
# `nn.LayerNorm`:

# %%
def layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(dim=-1, keepdim=True)  # (B, T, 1)
    var = x.var(dim=-1, keepdim=True, unbiased=False)  # biased variance, like PyTorch
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


ln = nn.LayerNorm(config.n_embd)
assert torch.allclose(layer_norm(x, ln.weight, ln.bias), ln(x), atol=1e-5)
y = layer_norm(x, 1.0, 0.0)
print(f"mean {y.mean(-1).abs().max():.3f}, std {y.std(-1, unbiased=False).mean():.3f}")

# %% [markdown]
# **Attention** (chapter 03) lets each position read from earlier ones. **The MLP** then works on
# each position alone: widen to `4·C`, apply GELU, project back. GPT-2 uses the tanh
# approximation of GELU (`gelu_new` in Hugging Face), which differs from the exact
# `x·Φ(x)` by less than 10⁻³ — small, but the equivalence test in section 6 would notice it.

# %%
z = torch.linspace(-4, 4, 801)
exact, tanh_approx = F.gelu(z), F.gelu(z, approximate="tanh")
manual = 0.5 * z * (1 + torch.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))
assert torch.allclose(manual, tanh_approx, atol=1e-6)
gap = (exact - tanh_approx).abs().max().item()
print(f"max |GELU - tanh-GELU| = {gap:.4f}")
assert 1e-4 < gap < 1e-3
fig = go.Figure([go.Scatter(x=z, y=exact, name="GELU (exact)"),
                 go.Scatter(x=z, y=F.relu(z), name="ReLU", line=dict(dash="dot"))])
fig.update_layout(title="GELU: a smooth ReLU", width=600, height=320, xaxis_title="x")
assert len(fig.data) == 2
fig

# %% [markdown]
# **Residual connections** add each sub-layer's output to its input: `x = x + attn(ln_1(x))`,
# then `x = x + mlp(ln_2(x))`. This is the **pre-norm** block of GPT-2 and every modern LLM.
# The original transformer (2017) was **post-norm**: `x = ln(x + attn(x))`.
#
# Why pre-norm? In a pre-norm block, the residual path is a clean identity: the input flows to
# the output unchanged, and each block only *adds* a correction. Gradients reach early layers
# through that identity path, so deep stacks train without the careful learning-rate warm-up
# post-norm needs (Xiong et al., 2020). We can see the identity directly: a block whose output
# projections are zero is exactly the identity in pre-norm — and is not in post-norm, where
# the LayerNorm sits on the residual path itself.

# %%
class PostNormBlock(nn.Module):
    """The 2017 arrangement: normalise after adding (on the residual path)."""

    def __init__(self, config):
        super().__init__()
        self.attn, self.mlp = CausalSelfAttention(config), MLP(config)
        self.ln_1, self.ln_2 = nn.LayerNorm(config.n_embd), nn.LayerNorm(config.n_embd)

    def forward(self, x):
        x = self.ln_1(x + self.attn(x)[0])
        return self.ln_2(x + self.mlp(x))


pre, post = Block(config), PostNormBlock(config)
with torch.no_grad():
    for block in (pre, post):  # silence both sub-layers
        for proj in (block.attn.c_proj, block.mlp.c_proj):
            proj.weight.zero_()
            proj.bias.zero_()
    x0 = 3 * torch.randn(2, 8, config.n_embd)
    print("pre-norm block is the identity: ", torch.equal(pre(x0)[0], x0))
    print("post-norm block is the identity:", torch.allclose(post(x0), x0, atol=1e-3))

# %% [markdown]
# ## 4. The whole GPT
#
# `llmcourse.model.GPT` stacks `n_layer` blocks between the embeddings and a final LayerNorm +
# linear head that turns each position's vector into `vocab_size` logits: scores for the next
# token. The head shares its weights with `wte` (**weight tying**). Read `llmcourse/model.py`:
# it is short, with shapes in comments.
#
# An untrained model should be almost maximally unsure: its loss is close to `ln(vocab_size)`,
# the cross-entropy of a uniform guess (chapter 05). (The text differs a little between Python
# versions, so these numbers are not stored.)

# %%
torch.manual_seed(0)
model = GPT(config).to(device)
xb, yb = data[:64].view(1, 64), data[1:65].view(1, 64)
logits, loss = model(xb.to(device), yb.to(device))
assert logits.shape == (1, 64, config.vocab_size)  # (B, T, V): a score for every next token
print(model.transformer.h[0])

# %%
# NBVAL_IGNORE_OUTPUT
print(f"initial loss {loss.item():.2f} vs ln(V) = {math.log(config.vocab_size):.2f}")

# %%
assert abs(loss.item() - math.log(config.vocab_size)) < 0.5

# %% [markdown]
# Inputs the model cannot handle are errors that say what is wrong — never a cryptic CUDA
# assert or a silent truncation:

# %% tags=["raises-exception"]
# NBVAL_RAISES_EXCEPTION
model(torch.zeros(1, config.block_size + 1, dtype=torch.long, device=device))

# %% tags=["raises-exception"]
# NBVAL_RAISES_EXCEPTION
model(torch.tensor([[1, 2, config.vocab_size]], device=device))  # an id the embedding does not have

# %% tags=["raises-exception"]
# NBVAL_RAISES_EXCEPTION
GPTConfig(vocab_size=100, n_embd=100, n_head=3)

# %% [markdown]
# ## 5. Counting parameters and FLOPs
#
# With `V` the vocabulary, `T` the context (`block_size`), `L` layers and width `C`:
#
# | part | parameters |
# |---|---|
# | token embeddings (= the tied head) | `V·C` |
# | position embeddings | `T·C` |
# | attention: `c_attn` (q, k, v) and `c_proj` | `3C² + 3C` and `C² + C` |
# | MLP: `c_fc` and `c_proj` | `4C² + 4C` and `4C² + C` |
# | two LayerNorms per block | `4C` |
# | final LayerNorm | `2C` |
#
# So each block holds `12C² + 13C` parameters: the `12C²` dominates.

# %%
def count_by_formula(V, T, L, C):
    return V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C


n = count_by_formula(config.vocab_size, config.block_size, config.n_layer, config.n_embd)
print(f"formula {n:,} | num_params() {model.num_params():,}")
assert n == model.num_params() == param_count(config)

# %% [markdown]
# The same formula gives the GPT-2 family. To be sure, we also *build* GPT-2 small on PyTorch's
# `meta` device: every tensor has a shape but no memory, so 124 M parameters cost nothing.

# %%
with torch.device("meta"):
    gpt2_small = GPT(gpt2_config("gpt2"))
assert gpt2_small.num_params() == 124_439_808 == count_by_formula(50257, 1024, 12, 768)
print(f"{'model':<12}{'layers':>7}{'width':>7}{'params':>15}{'GFLOPs/token':>14}")
for name in GPT2_SIZES:
    cfg = gpt2_config(name)
    with torch.device("meta"):
        m = GPT(cfg)
    assert m.num_params() == param_count(cfg)
    print(f"{name:<12}{cfg.n_layer:>7}{cfg.n_embd:>7}{m.num_params():>15,}"
          f"{m.flops_per_token() / 1e9:>14.2f}")

# %% [markdown]
# **FLOPs per token.** A matrix-vector product with `N` weights costs `2N` FLOPs (a multiply and
# an add each). The backward pass costs about twice the forward, so training costs `6N` FLOPs per
# token, plus attention's own matmuls (`QKᵀ` and `AV`: `12·L·C·T` for training). This is the
# PaLM formula `6N + 12·L·H·Q·T` behind `flops_per_token()` (`H·Q = C`). We check the forward
# third of it against PyTorch's FLOP counter, which counts every matmul the model really runs:

# %%
from torch.utils.flop_counter import FlopCounterMode

T = config.block_size
with FlopCounterMode(display=False) as counter, torch.no_grad():
    model(torch.zeros(1, T, dtype=torch.long, device=device), return_attentions=True)
measured = counter.get_total_flops() / T  # forward FLOPs per token
predicted = model.flops_per_token(T) / 3
print(f"forward FLOPs/token: formula {predicted:,.0f}, counted {measured:,.0f}")
assert abs(measured / predicted - 1) < 0.02  # the formula also counts biases and LayerNorms

# %% [markdown]
# ## 6. Our GPT *is* GPT-2
#
# Hugging Face's `GPT2LMHeadModel` has the same architecture with the same parameter names;
# only its linear layers (`Conv1D`) store their weight transposed. `to_hf()` copies our weights
# into it; `GPT.from_hf()` goes back. Through `save_pretrained` / `from_pretrained` the logits
# agree to float precision — so the weights you train in this course load in any tool of the
# Hugging Face ecosystem, and the real GPT-2 weights load into our model.

# %%
idx = data[: 2 * T].view(2, T).to(device)
model.eval()
with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
    ours = model(idx)[0]
    model.to_hf().save_pretrained(tmp)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp).to(device).eval()
    theirs = hf(idx).logits
    back = GPT.from_hf(hf).eval()
    again = back(idx)[0]
print(type(hf).__name__, "| max |Δ logits| < 1e-5 both ways:",
      (ours - theirs).abs().max().item() < 1e-5 and (again - ours).abs().max().item() < 1e-5)
assert (ours - theirs).abs().max() < 1e-5
assert (again - ours).abs().max() < 1e-5

# %% [markdown]
# ## 7. A quick training run
#
# To sample something readable we train our model for a few hundred steps (chapter 06 does
# this properly: schedules, evaluation, checkpoints). Each step predicts every next byte of a
# batch of random windows.

# %%
def get_batch(batch_size, block_size, generator):
    ix = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)
    x = torch.stack([data[i: i + block_size] for i in ix])  # (B, T)
    y = torch.stack([data[i + 1: i + 1 + block_size] for i in ix])  # (B, T), shifted by one
    return x.to(device), y.to(device)


steps = prof.pick(ci=80, cpu=1000, gpu=3000)
model.train()
opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
g = torch.Generator().manual_seed(0)
losses = []
for _ in range(steps):
    xb, yb = get_batch(prof.batch_size, config.block_size, g)
    _, loss = model(xb, yb)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    losses.append(loss.item())
model.eval()

# %%
# NBVAL_IGNORE_OUTPUT
print(f"loss: {losses[0]:.2f} at step 0 -> {sum(losses[-10:]) / 10:.2f} after {steps} steps")

# %%
assert sum(losses[-10:]) / 10 < losses[0] - 1.0  # it learned the bytes' statistics

# %% [markdown]
# ## 8. Sampling strategies
#
# The model gives logits for the next token; a *decoding strategy* turns them into a
# distribution and picks from it:
#
# - **greedy** (temperature 0): always the most likely token — deterministic, often repetitive;
# - **temperature** τ: `softmax(logits / τ)`; τ < 1 sharpens, τ > 1 flattens;
# - **top-k**: keep only the k most likely tokens, renormalise;
# - **top-p** (nucleus): keep the smallest set of most likely tokens whose mass reaches p.
#
# `next_token_probs` computes exactly the distribution `generate` samples from. Here are the
# distributions of the next byte after the prompt `"The "`:

# %%
prompt = torch.tensor([encode("The ")], device=device)
with torch.no_grad():
    last = model(prompt)[0][0, -1]  # (vocab,) logits for the next byte
strategies = {
    "greedy (τ=0)": dict(temperature=0.0),
    "τ = 0.5": dict(temperature=0.5),
    "τ = 1": dict(temperature=1.0),
    "τ = 2": dict(temperature=2.0),
    "top-k, k=5": dict(top_k=5),
    "top-p, p=0.9": dict(top_p=0.9),
}
dists = {name: next_token_probs(last, **kw).cpu() for name, kw in strategies.items()}
order = dists["τ = 1"].argsort(descending=True)[:20]  # the 20 most likely bytes
labels = ["␣" if i == 32 else repr(chr(i))[1:-1] if i < 128 else f"0x{i:02x}"
          for i in order.tolist()]
fig = make_subplots(rows=2, cols=3, subplot_titles=list(dists), shared_yaxes=True)
for k, (name, p) in enumerate(dists.items()):
    fig.add_trace(go.Bar(x=labels, y=p[order], name=name), row=k // 3 + 1, col=k % 3 + 1)
fig.update_layout(title='Next-byte distributions after "The "', height=520, width=900,
                  showlegend=False)
assert len(fig.data) == 6
fig

# %% [markdown]
# What the plots show, checked: every strategy gives a distribution; greedy puts all its mass on
# one token; top-k keeps at most k tokens; top-p keeps at least p of the mass; a higher
# temperature means a flatter distribution (a higher entropy).

# %%
def entropy(p):
    return -(p * p.clamp_min(1e-30).log()).sum().item()


for name, p in dists.items():
    assert abs(p.sum().item() - 1) < 1e-5, name
assert dists["greedy (τ=0)"].max() == 1.0
assert (dists["top-k, k=5"] > 0).sum() <= 5
full = dists["τ = 1"]
assert full[dists["top-p, p=0.9"] > 0].sum() >= 0.9
ents = [entropy(dists[n]) for n in ("greedy (τ=0)", "τ = 0.5", "τ = 1", "τ = 2")]
assert ents == sorted(ents)
print("entropy grows with temperature:", ents == sorted(ents))

# %% [markdown]
# And the text each strategy writes (sampling uses a seeded `torch.Generator`, so a run is
# reproducible — but not across machines, hence no stored output):

# %%
# NBVAL_IGNORE_OUTPUT
for name, kw in strategies.items():
    g = torch.Generator(device=device).manual_seed(0)
    out = model.generate(prompt, prof.pick(ci=40, cpu=80, gpu=200), generator=g, **kw)
    print(f"{name:>13}: {decode(out[0].tolist())!r}")

# %% [markdown]
# ## 9. The KV cache
#
# Generating token `t+1` needs attention over tokens `1..t`. Recomputing every position at every
# step costs `O(t)` per step for a token whose keys and values never change. The **KV cache**
# stores each layer's keys and values and feeds only the newest token through the network.
# The tokens must be *exactly* the same as with recomputation:

# %%
n_gen = config.block_size + 10  # long enough for the window to slide past block_size
a = model.generate(prompt, n_gen, temperature=0, use_cache=True)
b = model.generate(prompt, n_gen, temperature=0, use_cache=False)
assert torch.equal(a, b)
g1, g2 = torch.Generator(device=device).manual_seed(1), torch.Generator(device=device).manual_seed(1)
s1 = model.generate(prompt, n_gen, top_k=10, use_cache=True, generator=g1)
s2 = model.generate(prompt, n_gen, top_k=10, use_cache=False, generator=g2)
assert torch.equal(s1, s2)
print("cached == recomputed (greedy and sampled):", torch.equal(a, b) and torch.equal(s1, s2))

# %% [markdown]
# Hugging Face's own `generate` (with its own KV cache) on the exported model writes the same
# greedy tokens as ours — another check that the two models are one:

# %%
hf_model = model.to_hf().eval()
with torch.no_grad():
    hf_out = hf_model.generate(prompt, max_new_tokens=40, do_sample=False,
                               attention_mask=torch.ones_like(prompt), pad_token_id=0)
assert torch.equal(hf_out, model.generate(prompt, 40, temperature=0))
print("HF generate == our generate (greedy, 40 tokens):", True)

# %% [markdown]
# The model sees at most `block_size` tokens. Past that, `generate` keeps the last `block_size`
# (a sliding window); since every position then shifts, the cache is rebuilt from the window.
# The speed-up grows with the length generated; we time a longer context than our tiny model's:

# %%
torch.manual_seed(0)
long_cfg = GPTConfig(vocab_size=256, block_size=prof.pick(ci=128, cpu=512, gpu=1024),
                     n_layer=prof.pick(ci=2, cpu=4, gpu=8), n_head=4, n_embd=128)
long_model = GPT(long_cfg).to(device).eval()
n_new = long_cfg.block_size - prompt.size(1)
timings, outputs = {}, {}
for use_cache in (False, True):
    long_model.generate(prompt, 5, temperature=0, use_cache=use_cache)  # warm-up
    t0 = time.perf_counter()
    outputs[use_cache] = long_model.generate(prompt, n_new, temperature=0, use_cache=use_cache)
    timings[use_cache] = time.perf_counter() - t0

# %%
# NBVAL_IGNORE_OUTPUT
print(f"{n_new} tokens: recompute {timings[False]:.2f} s, KV cache {timings[True]:.2f} s "
      f"-> {timings[False] / timings[True]:.1f}x faster")

# %%
assert torch.equal(outputs[True], outputs[False])

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: parameter count
# Write `gpt_params(vocab_size, block_size, n_layer, n_embd, bias)` that returns the number of
# parameters of a GPT (tied head counted once). With `bias=False` the linear layers and the
# LayerNorms have no bias.

# %%
from llmcourse.exercises.transformer import check_gpt_params, check_top_p


def gpt_params(vocab_size, block_size, n_layer, n_embd, bias=True):
    raise NotImplementedError  # your code here


check_gpt_params(gpt_params)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Embeddings `V·C + T·C`; per block `12C²` weights plus, with biases, `9C` of linear biases and
# `4C` of LayerNorm (else `2C` of LayerNorm gains); the final LayerNorm `2C` (or `C`).
# </details>

# %% jupyter={"source_hidden": true}
def gpt_params_solution(vocab_size, block_size, n_layer, n_embd, bias=True):
    C = n_embd
    per_block = 12 * C * C + (13 * C if bias else 2 * C)
    return vocab_size * C + block_size * C + n_layer * per_block + (2 * C if bias else C)


assert check_gpt_params(gpt_params_solution)

# %% [markdown]
# A count that forgets the position embeddings must fail:

# %%
assert not check_gpt_params(lambda V, T, L, C, bias=True: gpt_params_solution(V, 0, L, C, bias))

# %% [markdown]
# ### Exercise 2: nucleus (top-p) filtering
# Write `top_p_probs(probs, p)`: given a probability vector (1-D), keep the smallest set of the
# most likely tokens whose total mass is at least `p`, set the others to 0, renormalise.

# %%
def top_p_probs(probs, p):
    raise NotImplementedError  # your code here


check_top_p(top_p_probs)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Sort descending; a token is dropped when the mass of the tokens *before* it already reaches
# `p`; scatter the mask back to the original order.
# </details>

# %% jupyter={"source_hidden": true}
def top_p_probs_solution(probs, p):
    sorted_p, order = probs.sort(descending=True)
    before = sorted_p.cumsum(0) - sorted_p
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[order] = before < p
    kept = probs * keep
    return kept / kept.sum()


assert check_top_p(top_p_probs_solution)

# %% [markdown]
# Keeping tokens only while the cumulative mass is *below* p (one token too few) must fail:

# %%
def top_p_one_short(probs, p):
    sorted_p, order = probs.sort(descending=True)
    keep = torch.zeros_like(probs, dtype=torch.bool)
    keep[order] = sorted_p.cumsum(0) < p
    keep[order[0]] = True
    kept = probs * keep
    return kept / kept.sum()


assert not check_top_p(top_p_one_short)

# %% [markdown]
# ## Summary
#
# - A GPT is embeddings (tokens + positions) → `n_layer` pre-norm blocks (LayerNorm → attention →
#   residual, LayerNorm → MLP → residual) → LayerNorm → a head tied to the embeddings.
# - Each block holds `12C² + 13C` parameters; training costs about `6N + 12·L·C·T` FLOPs per token.
# - Our model and Hugging Face's GPT-2 compute the same logits: weights move both ways.
# - Decoding: greedy, temperature, top-k, top-p change the distribution sampled from; the KV
#   cache changes only the speed.
#
# Next: **05 · Cross-entropy and optimisation** — the loss we just minimised, and the optimisers.
