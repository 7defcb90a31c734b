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

# %%

# %% [markdown]
# # 04 · The transformer and GPT
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/04_transformer_and_gpt.ipynb)
#
# **What you will learn**
# - how a GPT is assembled, written on the page in nanoGPT's style: `CausalSelfAttention` →
#   `MLP` → `Block` → `GPT` (with its loss) → `generate` → the KV cache — and checked equal to
#   the course package's `llmcourse.model.GPT` and to Hugging Face's GPT-2;
# - what is inside a block (LayerNorm, attention, an MLP with GELU, residual connections), what
#   pre-norm does and does not do for the residual stream (measured);
# - GPT-2's initialisation and weight tying, with numbers: activation scale through a deep stack,
#   parameters saved;
# - how to count parameters and FLOPs per token exactly — and size the GPT-2 family;
# - how text is generated — greedy, temperature, top-k, top-p — and what the KV cache stores,
#   how much memory it takes and how much time it saves.
#
# **Prerequisites:** chapter 03 (attention).

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
import math
import tempfile
import time

import plotly.graph_objects as go
import torch
import torch.nn as nn
import transformers
from plotly.subplots import make_subplots
from torch.nn import functional as F

import llmcourse.model  # the package's GPT: llmcourse.model.GPT, what later chapters use
from llmcourse import diagrams
from llmcourse.model import GPT2_SIZES, GPTConfig, gpt2_config, next_token_probs, param_count

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
# on a CPU, one thread: this chapter's models are small enough to gain little from more, and one
# thread is not slowed down by other programs competing for the cores
torch.set_num_threads(prof.pick(ci=1, cpu=1, gpu=torch.get_num_threads()))

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
# gain and bias. Written by hand, it equals `nn.LayerNorm`:

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
# `x·Φ(x)` by less than 10⁻³ — small, but the equivalence test in section 7 would notice it.

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
# Now the three modules of a block, as nanoGPT writes them. `CausalSelfAttention` is chapter 03's
# multi-head attention with GPT-2's layout: one `nn.Linear` `c_attn` computes the queries, keys
# and values of all heads at once (it is $W_Q$, $W_K$, $W_V$ side by side), `c_proj` is $W_O$,
# and the attention itself is PyTorch's fused `F.scaled_dot_product_attention` (chapter 03
# checked it against the formula). The optional `cache` argument is the KV cache of section 10:
# ignore it for now.

# %%
class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # W_Q|W_K|W_V
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)  # W_O
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def forward(self, x, cache=None):
        """x (B, T, C) → (B, T, C). cache: None, or the (k, v) of earlier tokens, each
        (B, nh, S, hs); returns the output and the cache extended with these T tokens."""
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 × (B, T, C)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if cache is not None:  # the earlier tokens' keys and values, computed once
            k = torch.cat([cache[0], k], dim=2)  # (B, nh, S + T, hs)
            v = torch.cat([cache[1], v], dim=2)  # (B, nh, S + T, hs)
        p = self.dropout if self.training else 0.0  # attention dropout, on the weights
        if cache is None:  # plain causal attention
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        else:  # T new tokens after S cached ones: new token i sees keys 0 … S + i
            S = k.size(2) - T
            mask = None if T == 1 else torch.ones(T, S + T, dtype=torch.bool,
                                                  device=x.device).tril(S)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # concatenate the heads: (B, T, C)
        return self.resid_dropout(self.c_proj(y)), (k, v)


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's "gelu_new"
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C) → 4C → C


class Block(nn.Module):
    """Pre-norm: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None):
        a, cache = self.attn(self.ln_1(x), cache)
        x = x + a  # (B, T, C): the attention's output is added to the residual stream
        x = x + self.mlp(self.ln_2(x))  # (B, T, C): and so is the MLP's
        return x, cache


# %% [markdown]
# The block and its residual stream. The stream (grey) runs from the input to the output; each
# sub-layer reads a *normalised copy* of it and adds its result back:

# %%
diagrams.show(diagrams.transformer_block(C=config.n_embd))

# %% [markdown]
# The block we wrote equals the package's `llmcourse.model.Block` with the same weights (same
# parameter names, so `load_state_dict` copies them):

# %%
torch.manual_seed(0)
block = Block(config)
package_block = llmcourse.model.Block(config)
package_block.load_state_dict(block.state_dict())
x0 = torch.randn(2, 8, config.n_embd)  # (B, T, C)
with torch.no_grad():
    d_block = (block(x0)[0] - package_block(x0)[0]).abs().max().item()
print(f"max |Δ| vs llmcourse.model.Block: {d_block:.5f}")
assert d_block <= 1e-6

# %% [markdown]
# **Pre-norm and post-norm.** `x = x + attn(ln_1(x))` is the **pre-norm** block of GPT-2 (and of
# most LLMs since). The original transformer (2017) was **post-norm**: `x = ln(x + attn(x))`, the
# LayerNorm sits *on* the residual stream. In a pre-norm block the residual path is a clean
# identity: each block only *adds* a correction, and gradients reach early layers through that
# identity path, so deep stacks train without the careful learning-rate warm-up post-norm needs
# (Xiong et al., 2020). We can see the identity: with both output projections set to zero, the
# pre-norm block returns its input exactly; the post-norm block does not.

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
    for b in (pre, post):  # silence both sub-layers
        for proj in (b.attn.c_proj, b.mlp.c_proj):
            proj.weight.zero_()
            proj.bias.zero_()
    x0 = 3 * torch.randn(2, 8, config.n_embd)  # a stream of std 3
    d_pre, d_post = (pre(x0)[0] - x0).abs().max().item(), (post(x0) - x0).abs().max().item()
    std_post = post(x0).std().item()
print(f"max |block(x) - x|: pre-norm {d_pre:.3f}, post-norm {d_post:.1f} "
      f"(post-norm rescales the stream to std {std_post:.2f})")
assert d_pre == 0.0 and d_post > 1.0 and abs(std_post - 1) < 0.05

# %% [markdown]
# "Pre-norm" is not the last word. Some recent models normalise the sub-layer's *output* as
# well, before adding it to the stream: Gemma 2 puts a norm before **and** after each sub-layer
# ("sandwich" norm); OLMo 2 moves the norm to after the sub-layer,
# `x = x + norm(attn(x))`, which still never normalises the stream itself. Chapter 05 (modern
# decoders) picks up what changed since GPT-2.
#
# What pre-norm does **not** do is keep the residual stream in range: the LayerNorms see copies
# of the stream, never the stream, and every block adds to it. Section 5 measures how it grows.

# %% [markdown]
# ## 4. The whole GPT
#
# The GPT stacks `n_layer` blocks between the embeddings and a final LayerNorm + linear head,
# which turns each position's vector into `vocab_size` logits: scores for the next token. The
# head shares its weight matrix with `wte` (**weight tying**). Given `targets`, `forward` also
# returns the cross-entropy loss (chapter 06); positions whose target is `-100` are ignored.

# %%
class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
            wpe=nn.Embedding(config.block_size, config.n_embd),  # learned positions
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying: one (V, C) matrix
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale the residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None):
        B, T = idx.size()
        assert T <= self.config.block_size, f"sequence of {T} > block_size"
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x, _ = block(x)  # (B, T, C)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1),
                                   ignore_index=-100)
        return logits, loss

    def forward_cached(self, idx, caches):
        """The new tokens idx (B, T), after those whose keys and values are in ``caches`` (one
        (k, v) per layer, or None for an empty cache): the next-token logits (B, V) and the
        extended caches."""
        past = 0 if caches[0] is None else caches[0][0].size(2)
        pos = torch.arange(past, past + idx.size(1), device=idx.device)  # positions after the cache
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        new_caches = []
        for block, cache in zip(self.transformer.h, caches):
            x, cache = block(x, cache)
            new_caches.append(cache)
        return self.lm_head(self.transformer.ln_f(x[:, -1])), new_caches  # (B, V)

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None,
                 use_cache=True, generator=None):
        """Append max_new_tokens tokens to idx (B, T) — greedy when temperature == 0, else
        sampled from next_token_distribution (section 9). Call model.eval() first."""
        bs, caches = self.config.block_size, None
        for _ in range(max_new_tokens):
            if not use_cache:  # recompute the whole window every step
                logits = self(idx[:, -bs:])[0][:, -1]  # (B, V)
            elif caches is None or idx.size(1) > bs:  # first step, or the window slid past bs
                logits, caches = self.forward_cached(idx[:, -bs:], [None] * self.config.n_layer)
            else:  # the KV cache: only the newest token goes through the network
                logits, caches = self.forward_cached(idx[:, -1:], caches)
            probs = next_token_distribution(logits, temperature, top_k, top_p)  # (B, V)
            if temperature == 0:
                nxt = probs.argmax(dim=-1, keepdim=True)  # (B, 1)
            else:
                nxt = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
        return idx


def next_token_distribution(logits, temperature=1.0, top_k=None, top_p=None):
    """logits (..., V) → the probabilities generate() samples from (section 9)."""
    if temperature == 0:  # greedy: all the mass on the most likely token
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).float()
    logits = logits / temperature  # < 1 sharpens, > 1 flattens
    if top_k is not None and top_k < logits.size(-1):  # keep the k most likely
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(dim=-1)
    if top_p is not None and top_p < 1:  # keep the smallest set with mass >= top_p
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p  # mass of the more likely tokens
        drop_sorted = before >= top_p  # enough mass already without this token
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


# %% [markdown]
# The stack, with this chapter's sizes:

# %%
diagrams.show(diagrams.gpt_stack(n_layer=config.n_layer, vocab_size=config.vocab_size,
                                 block_size=config.block_size, n_embd=config.n_embd))

# %% [markdown]
# **The same model as the package's.** The course package's `llmcourse.model.GPT` (what the
# later chapters train) has the same parameter names. We build it, load its `state_dict` into
# the model we just wrote, and compare logits and loss on a batch, and the greedy text both
# write:

# %%
torch.manual_seed(0)
package_model = llmcourse.model.GPT(config).to(device).eval()
model = GPT(config).to(device)
model.load_state_dict(package_model.state_dict())
model.eval()
xb, yb = data[:4 * 64].view(4, 64).to(device), data[1:4 * 64 + 1].view(4, 64).to(device)
with torch.no_grad():
    logits, loss = model(xb, yb)
    ref_logits, ref_loss = package_model(xb, yb)
d_logits = (logits - ref_logits).abs().max().item()
prompt = torch.tensor([encode("The ")], device=device)
text_ours = model.generate(prompt, 30, temperature=0)
text_package = package_model.generate(prompt, 30, temperature=0)
n_differ = (text_ours != text_package).sum().item()
print(f"{sum(p.numel() for p in model.parameters()):,} parameters | max |Δ logits| "
      f"{d_logits:.5f} | |Δ loss| {abs(loss.item() - ref_loss.item()):.5f} | "
      f"greedy text: {n_differ} of 30 tokens differ")
assert d_logits <= 1e-6 and abs(loss.item() - ref_loss.item()) <= 1e-6
assert torch.equal(text_ours, text_package)
assert logits.shape == (4, 64, config.vocab_size)  # (B, T, V): a score for every next token

# %% [markdown]
# **The loss at initialisation.** An untrained model should be almost maximally unsure: a
# uniform guess over $V$ tokens has cross-entropy $\ln V$ (chapter 06). Measured over 256 random
# windows of the text, and split by whether the next byte repeats the current one (the text
# differs a little between Python versions, so these numbers are not stored):

# %% tags=["nbval-ignore-output"]
def get_batch(batch_size, block_size, generator):
    ix = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)
    x = torch.stack([data[i: i + block_size] for i in ix])  # (B, T)
    y = torch.stack([data[i + 1: i + 1 + block_size] for i in ix])  # (B, T), shifted by one
    return x.to(device), y.to(device)


xw, yw = get_batch(256, config.block_size, torch.Generator().manual_seed(0))
with torch.no_grad():
    logits_w, loss_w = model(xw, yw)
per_pos = F.cross_entropy(logits_w.transpose(1, 2), yw, reduction="none")  # (B, T)
per_window = per_pos.mean(dim=1)  # (B,)
repeat = yw == xw  # (B, T): the next byte is the current one again
loss_new, loss_rep = per_pos[~repeat].mean().item(), per_pos[repeat].mean().item()
ln_V = math.log(config.vocab_size)
print(f"ln V = {ln_V:.3f}; initial loss over 256 windows {loss_w.item():.3f}, one window from "
      f"{per_window.min():.2f} to {per_window.max():.2f}")
print(f"where the next byte is a new one ({(~repeat).float().mean():.0%} of positions): "
      f"{loss_new:.3f}; where it repeats the current byte: {loss_rep:.3f}")

# %%
assert abs(loss_new - ln_V) <= 0.1  # a new byte: as unsure as a uniform guess
assert loss_rep < ln_V - 0.3  # a repeated byte: it reads low ...
assert per_window.min() < loss_w.item() - 0.1  # ... and so do the windows full of repeats

# %% [markdown]
# Where the next byte is a new one, the loss is $\ln V$ to within 0.1. Where it repeats the
# current byte — runs of spaces (indentation), `==`, `--` — the loss is well below $\ln V$, and so
# is the loss of a window with many repeats. Why? Weight tying. At position $t$ the logits are
# $\mathrm{ln\_f}(x_t)\, W_{te}^\top$, and $x_t$ *contains* the embedding of the input token
# $e_{\text{in}}$, so the input token's logit gets about $|e_{\text{in}}|^2 / \sigma$ extra
# ($\sigma$ the scale of $x_t$), while the others' are noise. The untrained model's favourite
# guess is "the same byte again":

# %% tags=["nbval-ignore-output"]
own = logits_w.gather(-1, xw[..., None]).squeeze(-1)  # (B, T): the input token's logit
top_is_input = (logits_w.argmax(-1) == xw).float().mean().item()
boost = (own - logits_w.mean(-1)).mean().item()
spaces = torch.full((1, config.block_size), 32, device=device)  # spaces: repeats everywhere
with torch.no_grad():
    loss_spaces = model(spaces, spaces)[1].item()
print(f"top guess = the input token at {top_is_input:.0%} of positions; its logit is "
      f"{boost:.2f} above the mean logit; loss on a run of spaces: {loss_spaces:.2f} "
      f"(ln V = {ln_V:.2f})")

# %%
assert boost > 0.3 and loss_spaces < ln_V - 0.3

# %% [markdown]
# The package's model also checks its inputs and says what is wrong — never a cryptic index
# error or a silent truncation (our page version keeps nanoGPT's bare `assert`):

# %% tags=["raises-exception"]
package_model(torch.zeros(1, config.block_size + 1, dtype=torch.long, device=device))

# %% tags=["raises-exception"]
package_model(torch.tensor([[1, 2, config.vocab_size]], device=device))  # an id it does not have

# %% tags=["raises-exception"]
GPTConfig(vocab_size=100, n_embd=100, n_head=3)

# %% [markdown]
# ## 5. Initialisation, in numbers
#
# GPT-2 draws every weight from $\mathcal N(0, 0.02^2)$, except the projections that write into
# the residual stream (`attn.c_proj`, `mlp.c_proj`), which get $0.02/\sqrt{2\,n_{\text{layer}}}$:
# each block adds two such outputs, so a stack of $n_{\text{layer}}$ blocks adds
# $2\,n_{\text{layer}}$ random terms to the stream, and the scale keeps the sum of their
# variances independent of the depth. Measured at initialisation: the standard deviation of the
# residual stream after each block of a 6- and a 24-layer stack, with and without the scale
# (random tokens, width 128):

# %%
def stream_std(n_layer: int, scaled: bool) -> list[float]:
    """Std of the residual stream after the embeddings and after each block, at init."""
    torch.manual_seed(0)
    deep = GPT(GPTConfig(vocab_size=256, block_size=64, n_layer=n_layer, n_head=4, n_embd=128))
    if not scaled:  # the same model with every residual projection at plain std 0.02
        for name, p in deep.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02)
    tokens = torch.randint(256, (8, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        x = deep.transformer.wte(tokens) + deep.transformer.wpe(torch.arange(64))
        stds = [x.std().item()]
        for blk in deep.transformer.h:
            x, _ = blk(x)
            stds.append(x.std().item())
    return stds


curves = {(L, s): stream_std(L, s) for L in (6, 24) for s in (True, False)}
for (L, s), c in curves.items():
    print(f"{L:2d} layers, {'0.02/√(2L)' if s else 'plain 0.02':>10}: embeddings {c[0]:.3f}"
          f" -> after the last block {c[-1]:.3f}")

# %%
scaled_ratio = curves[24, True][-1] / curves[6, True][-1]
plain_ratio = curves[24, False][-1] / curves[6, False][-1]
print(f"final std, 24 layers / 6 layers: {scaled_ratio:.2f} with the scale, {plain_ratio:.2f} "
      f"without (√4 = 2)")
assert abs(scaled_ratio - 1) < 0.15  # with the scale: the same whatever the depth
assert 1.6 < plain_ratio < 2.4  # without: grows like √depth
for c in curves.values():  # pre-norm: the stream grows block after block, in every variant
    assert all(b > a for a, b in zip(c, c[1:]))
assert curves[24, True][-1] > 1.4 * curves[24, True][0]  # 24 blocks: the stream has grown ...
assert curves[24, False][-1] > 5 * curves[24, False][0]  # ... and far more without the scale
fig = go.Figure([go.Scatter(y=curves[24, s], mode="lines+markers",
                            name="c_proj std 0.02/√(2·24)" if s else "c_proj std 0.02")
                 for s in (True, False)])
fig.update_layout(title="Residual stream at initialisation, 24 pre-norm blocks", height=340,
                  width=700, xaxis_title="after block (0 = embeddings)",
                  yaxis_title="std of the residual stream")
assert len(fig.data) == 2 and len(fig.data[0].y) == 25
fig

# %% [markdown]
# Two lessons. The $1/\sqrt{2\,n_{\text{layer}}}$ scale does its job: the final scale of the
# stream no longer depends on the depth (ratio ≈ 1), while plain 0.02 makes it grow like
# $\sqrt{\text{depth}}$. And in a pre-norm network the stream **grows** with depth either way —
# the LayerNorms normalise what each sub-layer *reads*, never the stream, which only ever gets
# things added; only the final `ln_f` rescales it, before the head.
#
# **Weight tying, in numbers.** The head's weight is `wte`'s: a $V \times C$ matrix stored once.
# For GPT-2 small that is a large share of the model — checked against Hugging Face's
# `GPT2LMHeadModel` built with and without tying (on PyTorch's `meta` device: shapes, no memory):

# %%
with torch.device("meta"):
    gpt2_small = GPT(gpt2_config("gpt2"))
    hf_tied = transformers.GPT2LMHeadModel(transformers.GPT2Config())
    hf_untied = transformers.GPT2LMHeadModel(transformers.GPT2Config(tie_word_embeddings=False))
n_tied = sum(p.numel() for p in gpt2_small.parameters())  # shared tensors are counted once
saved = 50257 * 768  # the head's V × C matrix
n_hf = {name: sum(p.numel() for p in m.parameters()) for name, m in
        [("tied", hf_tied), ("untied", hf_untied)]}
print(f"GPT-2 small: {n_tied:,} parameters tied, {n_tied + saved:,} untied; tying saves "
      f"{saved:,} ({saved / (n_tied + saved):.1%})")
assert n_tied == n_hf["tied"] == 124_439_808 and n_tied + saved == n_hf["untied"]

# %% [markdown]
# ## 6. Counting parameters and FLOPs
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
print(f"formula {n:,} | our GPT {sum(p.numel() for p in model.parameters()):,} | "
      f"package {package_model.num_params():,}")
assert n == sum(p.numel() for p in model.parameters()) == package_model.num_params()
assert n == param_count(config)
assert n_tied == count_by_formula(50257, 1024, 12, 768)  # GPT-2 small, built above

# %% [markdown]
# The same formula sizes the GPT-2 family (built on the `meta` device, so 1.5 B parameters cost
# nothing). The last column is the **training** cost per token, derived next:

# %%
print(f"{'model':<12}{'layers':>7}{'width':>7}{'params':>15}{'training GFLOPs/token':>23}")
for name in GPT2_SIZES:
    cfg = gpt2_config(name)
    with torch.device("meta"):
        m = llmcourse.model.GPT(cfg)
    assert m.num_params() == param_count(cfg)
    print(f"{name:<12}{cfg.n_layer:>7}{cfg.n_embd:>7}{m.num_params():>15,}"
          f"{m.flops_per_token() / 1e9:>23.2f}")

# %% [markdown]
# **FLOPs per token.** A matrix-vector product with `N` weights costs `2N` FLOPs (a multiply and
# an add each). The backward pass costs about twice the forward, so training costs `6N` FLOPs per
# token, plus attention's own matmuls (`QKᵀ` and `AV`: `12·L·C·T` for training). This is the
# PaLM formula `6N + 12·L·H·Q·T` behind `flops_per_token()` (`H·Q = C`; `N` counts every
# non-embedding parameter, biases and LayerNorm gains included, plus the head). We check the
# forward third of it against PyTorch's FLOP counter, which counts the FLOPs of every matrix
# multiply the model runs — and nothing else: not the bias additions, not the LayerNorms. Add
# those back, 2 FLOPs per bias or LayerNorm parameter, and the two agree exactly:

# %%
from torch.utils.flop_counter import FlopCounterMode

T = config.block_size
with FlopCounterMode(display=False) as counter, torch.no_grad():
    package_model(torch.zeros(1, T, dtype=torch.long, device=device), return_attentions=True)
matmul_flops = counter.get_total_flops()  # forward, all T positions: attention made explicit
L, C = config.n_layer, config.n_embd
bias_and_ln = L * 13 * C + 2 * C  # per block: 9C of biases + 4C of LayerNorm; ln_f: 2C
predicted = package_model.flops_per_token(T) * T // 3  # forward = a third of training
print(f"forward FLOPs for {T} tokens: counter {matmul_flops:,} + 2·{bias_and_ln:,}·{T} "
      f"(biases, LayerNorms) = {matmul_flops + 2 * bias_and_ln * T:,}; formula {predicted:,}")
assert matmul_flops + 2 * bias_and_ln * T == predicted

# %% [markdown]
# ## 7. Our GPT *is* GPT-2
#
# Hugging Face's `GPT2LMHeadModel` has the same architecture with the same parameter names;
# only its linear layers (`Conv1D`) store their weight transposed. The package's `to_hf()` copies
# our weights into it; `GPT.from_hf()` goes back. Through `save_pretrained` /
# `from_pretrained` the logits agree to float precision — so the weights you train in this course
# load in any tool of the Hugging Face ecosystem, and the real GPT-2 weights load into our model
# (and into the one written on this page, which takes the same `state_dict`).

# %%
idx = data[: 2 * T].view(2, T).to(device)
with torch.no_grad(), tempfile.TemporaryDirectory() as tmp:
    ours = model(idx)[0]
    package_model.to_hf().save_pretrained(tmp)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp).to(device).eval()
    theirs = hf(idx).logits
    back = GPT(config).to(device).eval()
    back.load_state_dict(llmcourse.model.GPT.from_hf(hf).state_dict())
    again = back(idx)[0]
d_hf, d_back = (ours - theirs).abs().max().item(), (again - ours).abs().max().item()
print(f"{type(hf).__name__}: max |Δ logits| {d_hf:.5f}; back from it: {d_back:.5f}")
assert d_hf < 1e-5 and d_back < 1e-5

# %% [markdown]
# ## 8. A quick training run
#
# To sample something readable we train the model written on this page for a few hundred steps
# (chapter 07 does this properly: schedules, evaluation, checkpoints). Each step predicts every
# next byte of a batch of random windows.

# %%
steps = prof.pick(ci=80, cpu=200, gpu=3000)
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
_ = package_model.load_state_dict(model.state_dict())  # the package's GPT, trained weights too

# %% tags=["nbval-ignore-output"]
print(f"loss: {losses[0]:.2f} at step 0 -> {sum(losses[-10:]) / 10:.2f} after {steps} steps")

# %%
assert sum(losses[-10:]) / 10 < losses[0] - 1.0  # it learned the bytes' statistics

# %% [markdown]
# ## 9. Sampling strategies
#
# The model gives logits for the next token; a *decoding strategy* turns them into a
# distribution and picks from it — this is `next_token_distribution` above:
#
# - **greedy** (temperature 0): always the most likely token — deterministic, often repetitive;
# - **temperature** τ: `softmax(logits / τ)`; τ < 1 sharpens, τ > 1 flattens;
# - **top-k**: keep only the k most likely tokens, renormalise;
# - **top-p** (nucleus): keep the smallest set of most likely tokens whose mass reaches p.
#
# The distributions of the next byte after the prompt `"The "`, each equal to the package's
# `next_token_probs`:

# %%
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
dists = {name: next_token_distribution(last, **kw).cpu() for name, kw in strategies.items()}
d_dist = max((dists[name] - next_token_probs(last, **kw).cpu()).abs().max().item()
             for name, kw in strategies.items())
assert d_dist <= 1e-6
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
# temperature means a flatter distribution (a higher entropy). The entropies depend on the
# training run, so they are printed but not stored:

# %%
def entropy(p):
    return -(p * p.clamp_min(1e-30).log()).sum().item() + 0.0  # + 0.0: no "-0.00" for greedy


for name, p in dists.items():
    assert abs(p.sum().item() - 1) < 1e-5, name
assert dists["greedy (τ=0)"].max() == 1.0
assert (dists["top-k, k=5"] > 0).sum() <= 5
full = dists["τ = 1"]
assert full[dists["top-p, p=0.9"] > 0].sum() >= 0.9
ents = {n_: entropy(dists[n_]) for n_ in ("greedy (τ=0)", "τ = 0.5", "τ = 1", "τ = 2")}
assert list(ents.values()) == sorted(ents.values())

# %% tags=["nbval-ignore-output"]
print("entropy (nats):", ", ".join(f"{n_} {e:.2f}" for n_, e in ents.items()))

# %% [markdown]
# And the text each strategy writes (sampling uses a seeded `torch.Generator`, so a run is
# reproducible — but not across machines, hence no stored output). The page's `generate` and
# the package's write the same tokens from the same generator:

# %% tags=["nbval-ignore-output"]
n_sample = prof.pick(ci=40, cpu=80, gpu=200)
for name, kw in strategies.items():
    out = model.generate(prompt, n_sample,
                         generator=torch.Generator(device=device).manual_seed(0), **kw)
    ref = package_model.generate(prompt, n_sample,
                                 generator=torch.Generator(device=device).manual_seed(0), **kw)
    assert torch.equal(out, ref), name
    print(f"{name:>13}: {decode(out[0].tolist())!r}")

# %% [markdown]
# ## 10. The KV cache
#
# Without a cache, the step that generates token $t+1$ runs all $t$ tokens of the prefix through
# every layer again — and recomputes, for tokens $1 \ldots t-1$, keys and values it had already
# computed at the previous step: a token's key and value depend only on it and the tokens before
# it, which never change. So step $t$ costs $t$ tokens' worth of
# projections and MLPs (plus $O(t^2)$ attention), and $n$ steps cost $O(n^2)$ tokens' worth. The
# **KV cache** keeps every layer's keys and values; each step then feeds only the newest token
# through the network — one token's projections and MLP, plus its query against the $t$ cached
# keys, $O(t)$ — for $n$ tokens' worth of projections and MLPs in all (the attention reads still
# add up to $O(n^2)$, the cheap part at these lengths), at the price of memory.

# %%
diagrams.show(diagrams.kv_cache(t=6))

# %% [markdown]
# The tokens must be *exactly* the same as with recomputation — greedy, and sampled from one
# generator, with the window sliding past `block_size`:

# %%
n_gen = config.block_size + 10  # long enough for the window to slide past block_size
a = model.generate(prompt, n_gen, temperature=0, use_cache=True)
b = model.generate(prompt, n_gen, temperature=0, use_cache=False)
g1 = torch.Generator(device=device).manual_seed(1)
g2 = torch.Generator(device=device).manual_seed(1)
s1 = model.generate(prompt, n_gen, top_k=10, use_cache=True, generator=g1)
s2 = model.generate(prompt, n_gen, top_k=10, use_cache=False, generator=g2)
pkg = package_model.generate(prompt, n_gen, temperature=0)
print(f"{n_gen} tokens: cached vs recomputed differ at {(a != b).sum().item()} (greedy) and "
      f"{(s1 != s2).sum().item()} (sampled) positions; page vs package greedy: "
      f"{(a != pkg).sum().item()}")
assert torch.equal(a, b) and torch.equal(s1, s2) and torch.equal(a, pkg)

# %% [markdown]
# **How much memory?** Per sequence, each layer stores a key and a value vector of `n_embd`
# numbers for each of `T` tokens: $2 \cdot n_{\text{layer}} \cdot T \cdot n_{\text{embd}}$
# numbers, times the bytes per number. Our model's cache after a full window, counted from its
# tensors:

# %%
with torch.no_grad():
    _, caches = model.forward_cached(data[: 2 * T].view(2, T).to(device), [None] * L)
cache_bytes = sum(k.nbytes + v.nbytes for k, v in caches)
formula_bytes = 2 * L * T * C * 4 * 2  # fp32, 2 sequences
print(f"cache of 2 sequences × {T} tokens: {cache_bytes:,} bytes; formula 2·{L}·{T}·{C}·4·2 = "
      f"{formula_bytes:,}")
assert cache_bytes == formula_bytes

# %% [markdown]
# The same formula for real models, in fp16 (2 bytes): GPT-2 small at its full 1024-token
# context, and Llama-2-7B (32 layers of width 4096 — the shape of `transformers.LlamaConfig()` —
# with every head keeping its own keys and values) at its 4096-token context:

# %%
def kv_cache_bytes(n_layer, T, n_embd, bytes_per_number):
    return 2 * n_layer * T * n_embd * bytes_per_number


llama = transformers.LlamaConfig()
assert (llama.num_hidden_layers, llama.hidden_size, llama.num_key_value_heads) == (32, 4096, 32)
with torch.device("meta"):
    llama_params = sum(p.numel() for p in transformers.LlamaForCausalLM(llama).parameters())
gpt2_kv = kv_cache_bytes(12, 1024, 768, 2)
llama_kv = kv_cache_bytes(llama.num_hidden_layers, 4096, llama.hidden_size, 2)
print(f"GPT-2 small, 1024 tokens: {gpt2_kv:,} bytes = {gpt2_kv / 2**20:.0f} MiB per sequence")
print(f"Llama-2-7B, 4096 tokens: {llama_kv:,} bytes = {llama_kv / 2**30:.0f} GiB per sequence; "
      f"a batch of 16 needs {16 * llama_kv / 2**30:.0f} GiB, more than its "
      f"{llama_params / 1e9:.2f} B fp16 weights ({2 * llama_params / 2**30:.1f} GiB)")
assert gpt2_kv == 37_748_736 and llama_kv == 2 * 2**30
assert llama_params == 6_738_415_616 and 16 * llama_kv > 2 * llama_params

# %% [markdown]
# **How much time?** We time generation with and without the cache for growing lengths, on a
# model with a longer context than our tiny one (random weights: the speed does not depend on
# what the model learned). Without the cache the time per generated token grows with the length;
# with it, it stays nearly flat, so the speed-up grows:

# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
long_cfg = GPTConfig(vocab_size=256, block_size=prof.pick(ci=256, cpu=512, gpu=1024),
                     n_layer=prof.pick(ci=2, cpu=4, gpu=8), n_head=prof.pick(ci=4, cpu=4, gpu=16),
                     n_embd=prof.pick(ci=128, cpu=128, gpu=1024))  # a GPU needs work to be busy
long_model = GPT(long_cfg).to(device).eval()
lengths = [long_cfg.block_size // 8, long_cfg.block_size // 4, long_cfg.block_size // 2,
           long_cfg.block_size - prompt.size(1)]
timings = {True: [], False: []}
for n_new in lengths:
    for use_cache in (False, True):
        long_model.generate(prompt, 4, temperature=0, use_cache=use_cache)  # warm-up
        best = float("inf")
        for _ in range(2):  # best of 2: the least disturbed by other programs
            t0 = time.perf_counter()
            long_model.generate(prompt, n_new, temperature=0, use_cache=use_cache)
            best = min(best, time.perf_counter() - t0)
        timings[use_cache].append(best)
speedups = [t_no / t_yes for t_no, t_yes in zip(timings[False], timings[True])]
for n_new, t_no, t_yes, s in zip(lengths, timings[False], timings[True], speedups):
    print(f"{n_new:5d} tokens: recompute {t_no:6.2f} s, KV cache {t_yes:6.2f} s -> {s:4.1f}x")

# %%
assert speedups[-1] > 1.5  # the cache pays off at the longest length ...
assert speedups[-1] > speedups[0]  # ... and pays off more the longer the text
fig = go.Figure(go.Scatter(x=lengths, y=speedups, mode="lines+markers"))
fig.update_layout(title="KV-cache speed-up against generated length", height=320, width=600,
                  xaxis_title="tokens generated", yaxis_title="time without / time with cache")
assert list(fig.data[0].x) == lengths
fig

# %% [markdown]
# The model sees at most `block_size` tokens. Past that, `generate` keeps the last `block_size`
# (a sliding window); since every position then shifts, the cache is rebuilt from the window and
# the speed-up is gone. Chapter 12 (inference) goes further: batching, paged caches, and grouped
# keys and values that shrink the cache.
#
# Hugging Face's own `generate` (with its own KV cache) on the exported model writes the same
# greedy tokens as ours — another check that the two models are one:

# %%
hf_model = package_model.to_hf().eval()
with torch.no_grad():
    hf_out = hf_model.generate(prompt, max_new_tokens=40, do_sample=False,
                               attention_mask=torch.ones_like(prompt), pad_token_id=0)
ours_out = model.generate(prompt, 40, temperature=0)
print(f"HF generate vs ours, 40 greedy tokens: {(hf_out != ours_out).sum().item()} differ")
assert torch.equal(hf_out, ours_out)

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: parameter count
# Write `gpt_params(vocab_size, block_size, n_layer, n_embd, bias)` that returns the number of
# parameters of a GPT (tied head counted once). With `bias=False` the linear layers and the
# LayerNorms have no bias.

# %%
from llmcourse.exercises.transformer import check_gpt_params, check_kv_cache_update, check_top_p


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
# ### Exercise 3: the KV-cache update
# Write `kv_update(cache, k, v)`, one layer's cache step: `cache` is `None` (nothing cached yet)
# or the pair `(k_past, v_past)` your function returned the step before, each
# `(B, n_head, S, head_size)`; `k` and `v` are the new tokens', `(B, n_head, T, head_size)`.
# Return the new pair. The checker decodes with a small GPT whose layers keep their cache with
# your function and compares every step with generation **without** a cache.

# %%
def kv_update(cache, k, v):
    raise NotImplementedError  # your code here


check_kv_cache_update(kv_update)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# The past first, then the new tokens, along the time dimension (dim 2) — what
# `CausalSelfAttention.forward` does above.
# </details>

# %% jupyter={"source_hidden": true}
def kv_update_solution(cache, k, v):
    if cache is None:
        return k, v
    return torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)  # (B, nh, S + T, hs)


assert check_kv_cache_update(kv_update_solution)

# %% [markdown]
# The usual bug: returning only the new keys and values, so each new token attends to itself
# alone. The first generated step is still right (there is no cache yet); every later one
# drifts from generation without a cache, and the checker shows by how much:

# %%
assert not check_kv_cache_update(lambda cache, k, v: (k, v))

# %% [markdown]
# ## Summary
#
# - A GPT is embeddings (tokens + positions) → `n_layer` pre-norm blocks (LayerNorm → attention →
#   residual, LayerNorm → MLP → residual) → LayerNorm → a head tied to the embeddings. Written on
#   this page in nanoGPT's style, it computes the same logits as `llmcourse.model.GPT` (to 1e-6)
#   and as Hugging Face's GPT-2, and writes the same greedy text.
# - Pre-norm keeps each sub-layer's *input* normalised, not the residual stream: the stream
#   grows with depth. GPT-2's $0.02/\sqrt{2\,n_{\text{layer}}}$ residual projections make its
#   final scale independent of the depth; weight tying saves 38.6 M of GPT-2 small's 163 M.
# - Each block holds `12C² + 13C` parameters; training costs `6N + 12·L·C·T` FLOPs per token —
#   exactly the forward matmuls ×3 once biases and LayerNorms are counted.
# - Decoding: greedy, temperature, top-k, top-p change the distribution sampled from. The KV
#   cache changes only the speed — at a memory cost of `2·n_layer·T·n_embd` numbers per sequence
#   (2 GiB for Llama-2-7B at 4k tokens in fp16).
#
# Next: **05 · Modern decoders** — RMSNorm, rotary positions, SwiGLU and grouped keys and values:
# what changed between GPT-2 and today's models.
