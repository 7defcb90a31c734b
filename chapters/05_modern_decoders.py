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
# # 05 · Modern decoders: from GPT-2 to Llama, Qwen and Mixtral
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/05_modern_decoders.ipynb)
#
# **What you will learn**
# - the changes from GPT-2 (2019) to Llama (2023), one at a time, each written on the page next
#   to the GPT-2 piece it replaces and checked against PyTorch and Hugging Face: **RMSNorm**,
#   **SwiGLU**, **RoPE** inside attention, **grouped-query attention**, no biases, an untied
#   head;
# - what Qwen3 (**QK-norm**) and Mistral (**sliding-window attention**) add;
# - a **mixture of experts** (Mixtral): a top-k router, expert MLPs, the load-balancing loss,
#   and what it buys at equal *active* parameters;
# - a whole Llama assembled on the page that computes the same logits as
#   `llmcourse.llama.Llama` and Hugging Face's `LlamaForCausalLM`, and loads real checkpoints;
# - what a short run can and cannot say about the GPT-2 block vs the Llama block.
#
# **Prerequisites:** chapter 04 (the GPT-2 block: LayerNorm, GELU MLP, learned positions,
# multi-head attention, the KV cache), chapter 02 (rotary positions), chapter 03 (attention).

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
import shutil
import tempfile
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn as nn
import transformers
from IPython.display import SVG
from plotly.subplots import make_subplots
from torch.nn import functional as F
from transformers.models.llama.modeling_llama import (
    LlamaMLP,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
)
from transformers.models.llama.modeling_llama import repeat_kv as hf_repeat_kv
from transformers.models.mixtral.modeling_mixtral import load_balancing_loss_func

import llmcourse.llama as pkg  # the package's versions of everything written below
from llmcourse.llama import Llama, LlamaConfig, swiglu_hidden
from llmcourse.model import GPT, MLP, GPTConfig

transformers.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
# this chapter's models are small: on a CPU one thread is (nearly) as fast as two for them, and
# is not slowed down by other programs competing for the cores
torch.set_num_threads(prof.pick(ci=1, cpu=1, gpu=torch.get_num_threads()))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()

# %% [markdown]
# ## 1. What changed since GPT-2
#
# Llama (Touvron et al., 2023) kept GPT-2's skeleton — token embeddings, a stack of pre-norm
# blocks with residual connections, a final norm and a linear head — and replaced almost every
# part inside it. Mistral, Qwen3 and Mixtral are Llama plus one or two options. The picture is
# drawn by the code below (orange: what changed).

# %% tags=["hide-input"]
def block_diagram() -> str:
    """GPT-2's decoder next to Llama's, as an SVG string (orange: replaced in Llama)."""
    gpt2 = ["token embedding + learned position table", "LayerNorm (mean, variance, bias)",
            "multi-head attention (biases)", "+", "LayerNorm", "MLP 4·d, GELU (biases)", "+",
            "final LayerNorm", "head tied to the embedding"]
    llama = ["token embedding only (no position table)", "RMSNorm (no mean, no bias)",
             "grouped-query attention, RoPE on q and k", "+", "RMSNorm",
             "SwiGLU ⅔·4·d, SiLU gate × up", "+", "final RMSNorm", "untied output head"]
    box_w, box_h, gap, top = 300, 30, 14, 40
    y_of = [top + i * (box_h + gap) for i in range(len(gpt2))]
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="760" height="470" '
           'font-family="sans-serif" font-size="12">',
           '<defs><marker id="arr" markerWidth="8" markerHeight="8" refX="6" refY="4" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>']
    for col, (title, rows) in enumerate((("GPT-2 (2019)", gpt2), ("Llama (2023)", llama))):
        x0 = 40 + col * 380
        cx, right = x0 + box_w / 2, x0 + box_w + 10  # centre line; the residual path's x
        out.append(f'<text x="{cx}" y="22" text-anchor="middle" font-size="15" '
                   f'font-weight="bold">{title}</text>')
        block_top, block_bottom = y_of[1] - 8, y_of[6] + box_h + 6
        out.append(f'<rect x="{x0 - 14}" y="{block_top}" width="{box_w + 40}" '
                   f'height="{block_bottom - block_top}" fill="none" stroke="#999" '
                   'stroke-dasharray="5,4" rx="8"/>')
        out.append(f'<text x="{x0 + box_w + 22}" y="{block_bottom - 6}" text-anchor="end" '
                   'fill="#777">× n_layer</text>')
        for i, label in enumerate(rows):
            y = y_of[i]
            if label == "+":
                out.append(f'<circle cx="{cx}" cy="{y + box_h / 2}" r="11" fill="#fff" '
                           'stroke="#555"/>')
                out.append(f'<text x="{cx}" y="{y + box_h / 2 + 5}" text-anchor="middle" '
                           'font-size="16">+</text>')
                start = y_of[i - 2] - gap / 2  # the residual: around the norm and sub-layer
                out.append(f'<polyline points="{cx},{start} {right},{start} {right},'
                           f'{y + box_h / 2} {cx + 12},{y + box_h / 2}" fill="none" '
                           'stroke="#555" marker-end="url(#arr)"/>')
            else:
                fill = "#fdd9b5" if col == 1 else "#dbe8f6"
                out.append(f'<rect x="{x0}" y="{y}" width="{box_w}" height="{box_h}" rx="5" '
                           f'fill="{fill}" stroke="#555"/>')
                out.append(f'<text x="{cx}" y="{y + box_h / 2 + 4}" '
                           f'text-anchor="middle">{label}</text>')
            if i < len(rows) - 1:
                out.append(f'<line x1="{cx}" y1="{y + box_h}" x2="{cx}" '
                           f'y2="{y + box_h + gap - 1}" stroke="#555" marker-end="url(#arr)"/>')
    out.append('<text x="40" y="455" fill="#555">Both: pre-norm blocks with residual '
               'connections, x + attn(norm(x)), then x + mlp(norm(x)). Positions enter Llama '
               'only inside attention.</text>')
    out.append("</svg>")
    return "\n".join(out)


svg = block_diagram()
assert svg.count("<rect") == 2 + 2 * 7 and svg.count("#fdd9b5") == 7  # 7 Llama parts changed
assert svg.count("<polyline") == 4  # two residual connections per block, per model
SVG(svg)

# %% [markdown]
# | GPT-2 (`llmcourse.model`) | Llama (`llmcourse.llama`) | section |
# |---|---|---|
# | `nn.LayerNorm` | `RMSNorm` | 2 |
# | `MLP`: 4·d, GELU | `SwiGLU`: ⅔·4·d, SiLU gate × up | 3 |
# | learned position table `wpe` | RoPE on q and k, inside attention | 4 |
# | multi-head attention | grouped-query attention (`n_kv_head`) | 5 |
# | — | QK-norm (Qwen3), sliding window (Mistral) | 6, 7 |
# | biases, tied head | no biases, untied head | 9 |
# | one MLP | a mixture of experts (Mixtral) | 13 |
#
# The package's module keeps Hugging Face's parameter names (`model.layers.0.self_attn.q_proj`),
# so the page's classes below use them too: a `state_dict` moves between the page, the package
# and Hugging Face without renaming.

# %% [markdown]
# ## 2. RMSNorm instead of LayerNorm
#
# LayerNorm (chapter 04) re-centres each token's vector (subtracts its mean), rescales it to
# unit variance, then applies a gain and a bias. **RMSNorm** (Zhang & Sennrich, 2019) keeps only
# the rescaling: divide by the root mean square, multiply by a gain.
#
# $$\mathrm{RMSNorm}(x) = \frac{x}{\sqrt{\tfrac{1}{d}\sum_i x_i^2 + \epsilon}} \odot w
# \qquad \text{vs} \qquad
# \mathrm{LayerNorm}(x) = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} \odot w + b$$
#
# One reduction instead of two, half the parameters, and the same quality in Zhang & Sennrich's
# experiments: the re-centring was not what made LayerNorm work.

# %%
class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))  # a gain, no bias

    def forward(self, x):
        inv_rms = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (B, T, 1)
        return x * inv_rms * self.weight  # (B, T, C)


torch.manual_seed(0)
C = 64
x = torch.randn(2, 8, C) * 3 + 1  # (B, T, C), mean 1: not centred
ours = RMSNorm(C)
with torch.no_grad():
    ours.weight.copy_(torch.rand(C) + 0.5)  # a gain that is not all ones
references = {"llmcourse.llama.RMSNorm": pkg.RMSNorm(C), "torch.nn.RMSNorm": nn.RMSNorm(C, eps=1e-5),
              "transformers LlamaRMSNorm": LlamaRMSNorm(C, eps=1e-5)}
with torch.no_grad():
    for name, ref in references.items():
        ref.load_state_dict(ours.state_dict())  # the same gain
        d = max_diff(ours(x), ref(x))
        print(f"ours vs {name:<26}: max |Δ| = {d:.6f}")
        assert d < 1e-6

# %% [markdown]
# The difference from LayerNorm is exactly the mean: on a vector whose mean is already zero the
# two agree (LayerNorm's variance *is* the mean square then); on our vectors, whose mean is 1,
# they do not. And RMSNorm has `C` parameters per norm, LayerNorm `2C`.

# %%
ln = nn.LayerNorm(C, elementwise_affine=False)
rms = RMSNorm(C)
centred = x - x.mean(dim=-1, keepdim=True)
with torch.no_grad():
    print(f"mean-zero input: max |RMSNorm − LayerNorm| = {max_diff(rms(centred), ln(centred)):.6f}")
    print(f"mean-one input:  max |RMSNorm − LayerNorm| = {max_diff(rms(x), ln(x)):.2f}")
    assert max_diff(rms(centred), ln(centred)) < 1e-5 and max_diff(rms(x), ln(x)) > 0.1
n_ln = sum(p.numel() for p in nn.LayerNorm(C).parameters())
n_rms = sum(p.numel() for p in RMSNorm(C).parameters())
print(f"parameters: LayerNorm {n_ln}, RMSNorm {n_rms}")
assert (n_ln, n_rms) == (2 * C, C)

# %% [markdown]
# ## 3. SwiGLU instead of the GELU MLP
#
# GPT-2's MLP widens each token to `4·d`, applies GELU, and projects back: two matrices,
# `8d²` weights. Llama's **SwiGLU** (Shazeer, 2020) has *three*: a **gate** and an **up**
# projection to a hidden width `h`, multiplied element-wise after the gate goes through SiLU
# (`x·σ(x)`), then a **down** projection:
#
# $$\mathrm{SwiGLU}(x) = W_\text{down}\,\big(\mathrm{SiLU}(W_\text{gate}\,x) \odot W_\text{up}\,x\big)$$
#
# The gate lets each hidden unit switch another one on or off (a *gated linear unit*). Three
# matrices of `d·h` cost `3dh`; to keep GPT-2's `8d²`, `h = 8d/3` — **⅔ of 4·d**. Llama rounds
# it up to a multiple of 256 (fast matrix shapes): for `d = 4096` that is 11,008, the hidden
# width of Llama 1 and 2 7B.

# %%
class SwiGLU(nn.Module):
    def __init__(self, n_embd: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(n_embd, hidden, bias=False)
        self.up_proj = nn.Linear(n_embd, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, n_embd, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # (B, T, C)


def hidden_width(d: int, multiple_of: int = 256) -> int:
    h = 2 * 4 * d // 3  # ⅔ of GPT-2's 4·d (integer arithmetic: 4096 -> 10922)
    return multiple_of * math.ceil(h / multiple_of)


def n_weights(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


print(f"{'d':>5} {'⅔·4·d':>8} {'h':>6} {'GPT-2 MLP 8d²':>15} {'SwiGLU 3dh':>13} {'ratio':>7}")
for d, multiple in ((768, 256), (4096, 256), (576, 256)):
    h = hidden_width(d, multiple)
    assert h == swiglu_hidden(d, multiple)  # the package's rule
    with torch.device("meta"):  # shapes only: no memory for the 4096-wide ones
        gpt_mlp = MLP(GPTConfig(n_embd=d, n_head=1, bias=False))
        swiglu = SwiGLU(d, h)
    assert n_weights(gpt_mlp) == 8 * d * d and n_weights(swiglu) == 3 * d * h
    print(f"{d:>5} {8 * d / 3:>8.1f} {h:>6} {8 * d * d:>15,} {3 * d * h:>13,} "
          f"{3 * d * h / (8 * d * d):>7.4f}")
assert hidden_width(4096) == 11008  # Llama-2-7B's intermediate_size
assert 3 * 768 * hidden_width(768) == 8 * 768**2  # 8·768/3 = 2048 exactly: the same count
assert abs(3 * 4096 * 11008 / (8 * 4096**2) - 1) < 0.01  # the rounding costs < 1 %

# %% [markdown]
# (SmolLM2-135M, which section 11 loads, is 576 wide and uses 1536 = ⅔·4·576 exactly, not the
# multiple of 256: the rule is a default, not a law.) On the page, equal to the package's and to
# Hugging Face's `LlamaMLP`:

# %%
torch.manual_seed(0)
ours = SwiGLU(C, 96)
hf_cfg = transformers.LlamaConfig(hidden_size=C, intermediate_size=96, hidden_act="silu")
theirs = {"llmcourse.llama.SwiGLU": pkg.SwiGLU(C, 96), "transformers LlamaMLP": LlamaMLP(hf_cfg)}
with torch.no_grad():
    for name, ref in theirs.items():
        ref.load_state_dict(ours.state_dict(), strict=True)  # same names: gate/up/down_proj
        d = max_diff(ours(x), ref(x))
        print(f"ours vs {name:<24}: max |Δ| = {d:.6f}")
        assert d < 1e-6

# %% [markdown]
# SiLU is a smooth ReLU like GELU (the two curves almost overlap); the change that matters is the
# gate, the product of two projections.

# %%
z = torch.linspace(-5, 5, 201)
fig = go.Figure([go.Scatter(x=z, y=F.gelu(z, approximate="tanh"), name="GELU (GPT-2)"),
                 go.Scatter(x=z, y=F.silu(z), name="SiLU = x·σ(x) (Llama's gate)")])
fig.update_layout(width=600, height=300, xaxis_title="x", margin=dict(t=30, b=40))
assert torch.allclose(F.silu(z), z * torch.sigmoid(z)) and len(fig.data) == 2
fig

# %% [markdown]
# ## 4. RoPE: positions inside attention
#
# GPT-2 adds a learned position vector to each token at the bottom of the network
# (`wpe`, `block_size·d` parameters, and no position past `block_size`). Llama has no position
# table: **RoPE** (Su et al., 2021) rotates each query and key by an angle proportional to its
# position, *inside every attention layer*, just before the scores. Chapter 02 rotated the pairs
# `(x₀, x₁), (x₂, x₃), …`; Llama's code (and Hugging Face's) pairs dimension `i` with `i + d/2`
# instead, with a helper `rotate_half`: `[x₁, x₂] → [−x₂, x₁]` (the two halves). Pair `i` turns by
# `m·θ^(−2i/d)` at position `m` (θ = 10,000 in Llama 2; 500,000 in Llama 3).

# %%
def rope_cos_sin(positions, head_dim: int, theta: float = 10000.0):
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)  # (hs/2,)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (T, hs/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, hs): pair i and i + hs/2 share an angle
    return angles.cos(), angles.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)  # the two halves of the head dimension
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x, cos, sin):  # x (B, nh, T, hs), cos/sin (T, hs)
    return x * cos + rotate_half(x) * sin  # (B, nh, T, hs)


T, hs = 12, 16
torch.manual_seed(0)
q, k = torch.randn(2, 4, T, hs), torch.randn(2, 4, T, hs)  # (B, nh, T, hs)
cos, sin = rope_cos_sin(torch.arange(T), hs)
q_rot, k_rot = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

pkg_cos, pkg_sin = pkg.RotaryEmbedding(hs)(torch.arange(T))
hf_rope = LlamaRotaryEmbedding(config=transformers.LlamaConfig(
    hidden_size=4 * hs, num_attention_heads=4, head_dim=hs, rope_theta=10000.0))
hf_cos, hf_sin = hf_rope(q, torch.arange(T)[None])  # (1, T, hs)
hf_q, hf_k = apply_rotary_pos_emb(q, k, hf_cos, hf_sin)
checks = {"package apply_rope": max_diff(q_rot, pkg.apply_rope(q, pkg_cos, pkg_sin)),
          "transformers apply_rotary_pos_emb, q": max_diff(q_rot, hf_q),
          "transformers apply_rotary_pos_emb, k": max_diff(k_rot, hf_k)}
for name, d in checks.items():
    print(f"ours vs {name:<37}: max |Δ| = {d:.6f}")
    assert d < 1e-6
assert torch.allclose(q_rot.norm(dim=-1), q.norm(dim=-1), atol=1e-5)  # a rotation keeps lengths

# %% [markdown]
# Why rotations: turning `q` by `m·ω` and `k` by `n·ω` leaves `q·k` depending on `n − m` only
# (rotations compose: `R(mω)ᵀR(nω) = R((n − m)ω)`). The same query and key, placed at many
# positions with the same offset, give the same score; a different offset gives another one:

# %%
def score(m: int, n: int, q1, k1) -> float:  # q1, k1: (hs,); query at m, key at n
    c, s = rope_cos_sin(torch.tensor([m, n]), hs)
    qm = apply_rope(q1[None, None, None], c[:1], s[:1])
    kn = apply_rope(k1[None, None, None], c[1:], s[1:])
    return (qm * kn).sum().item()


q1, k1 = q[0, 0, 0], k[0, 0, 0]
for offset in (3, 10):
    scores = [score(m, m + offset, q1, k1) for m in (0, 7, 50, 300)]
    print(f"offset {offset:>2}: q·k at m = 0, 7, 50, 300 ->", " ".join(f"{s:+.3f}" for s in scores))
    assert max(scores) - min(scores) < 1e-3  # depends only on the offset
assert abs(score(0, 3, q1, k1) - score(0, 10, q1, k1)) > 0.1  # ...and does depend on it

# %% [markdown]
# Chapter 02's interleaved pairs and the halves here are the *same* RoPE up to an order of the
# head's dimensions: put the even dimensions first and the odd ones second, and one becomes the
# other. (This is why converting Meta's original Llama checkpoints to Hugging Face's format
# permutes the rows of `q_proj` and `k_proj` once; after that, no one thinks about it.)

# %%
def rope_interleaved(x, positions, theta: float = 10000.0):  # chapter 02's version
    d = x.shape[-1]
    inv_freq = 1.0 / theta ** (torch.arange(0, d, 2).float() / d)
    ang = positions.float()[:, None] * inv_freq[None, :]  # (T, d/2)
    x_even, x_odd = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x_even * ang.cos() - x_odd * ang.sin()
    out[..., 1::2] = x_even * ang.sin() + x_odd * ang.cos()
    return out


perm = torch.cat([torch.arange(0, hs, 2), torch.arange(1, hs, 2)])  # evens, then odds
d = max_diff(rope_interleaved(q, torch.arange(T))[..., perm], apply_rope(q[..., perm], cos, sin))
print(f"interleaved RoPE, permuted, vs rotate_half RoPE: max |Δ| = {d:.6f}")
assert d < 1e-5

# %% [markdown]
# ## 5. Grouped-query attention and the KV cache it saves
#
# In multi-head attention (MHA) every query head has its own key and value head. While
# generating, every layer's keys and values of every past token sit in the **KV cache**
# (chapter 04): at long contexts the cache, not the weights, fills the GPU. **Grouped-query
# attention** (GQA; Ainslie et al., 2023) keeps all the query heads but only `n_kv_head` key/value
# heads, each shared by a group of `n_head / n_kv_head` query heads. Its two ends:
# `n_kv_head = n_head` is MHA, `n_kv_head = 1` is **multi-query attention** (MQA; Shazeer, 2019).
#
# Before the scores, each key/value head is repeated for the query heads of its group:
# `repeat_kv` turns `(B, n_kv, T, hs)` into `(B, n_head, T, hs)`, query head `h` reading kv head
# `h // (n_head / n_kv_head)` — the order of `repeat_interleave`, not of `repeat`.

# %%
def repeat_kv(x, n_rep: int):  # (B, n_kv, T, hs) -> (B, n_kv·n_rep, T, hs)
    B, n_kv, T, hs = x.shape
    x = x[:, :, None, :, :].expand(B, n_kv, n_rep, T, hs)  # a view: no copy yet
    return x.reshape(B, n_kv * n_rep, T, hs)


kv = torch.randn(2, 2, T, hs)  # 2 key/value heads
rep = repeat_kv(kv, 3)  # for 6 query heads
assert torch.equal(rep, kv.repeat_interleave(3, dim=1))
assert torch.equal(rep, pkg.repeat_kv(kv, 3)) and torch.equal(rep, hf_repeat_kv(kv, 3))
assert not torch.equal(rep, kv.repeat(1, 3, 1, 1))  # [k0, k1, k0, k1, ...]: the wrong groups
print("query head -> kv head:", [h // 3 for h in range(6)])

# %% [markdown]
# The cache holds, per token, a key and a value (`2`) for each layer, kv head and head
# dimension: `2 · n_layer · n_kv_head · head_dim · bytes` — `n_head` does not appear. Two
# configurations at an 8,192-token context in bf16 (2 bytes), one sequence: a Llama-2-7B-like
# model (32 layers, 32 heads, MHA, 4096 wide) and a Llama-3-8B-like one (the same, but 8 kv
# heads). We compute the formula, then *build* one layer of each on PyTorch's `meta` device (shapes
# without memory), run 8,192 tokens through it and measure the cache it really keeps.

# %%
def kv_cache_bytes(n_layer, n_kv_head, head_dim, context, bytes_per_value=2, batch=1):
    return 2 * n_layer * n_kv_head * head_dim * context * bytes_per_value * batch


CONTEXT, GiB = 8192, 2**30
configs = {"Llama-2-7B-like (MHA, 32 kv heads)": 32, "Llama-3-8B-like (GQA, 8 kv heads)": 8,
           "MQA (1 kv head)": 1}
cache_gib = {}
for name, n_kv in configs.items():
    cfg = LlamaConfig(vocab_size=32000, block_size=CONTEXT, n_layer=32, n_head=32, n_embd=4096,
                      n_kv_head=n_kv)
    with torch.device("meta"):
        layer = pkg.Attention(cfg).to(torch.bfloat16)  # one layer: q, k, v, o projections
        cos_m, sin_m = pkg.RotaryEmbedding(cfg.head_dim)(torch.arange(CONTEXT))
        cache = []
        layer(torch.empty(1, CONTEXT, 4096, dtype=torch.bfloat16), cos_m, sin_m, kv_cache=cache)
    measured = cfg.n_layer * sum(t.numel() * t.element_size() for t in cache)  # all 32 layers
    formula = kv_cache_bytes(32, n_kv, 128, CONTEXT)
    assert measured == formula
    cache_gib[name] = formula / GiB
    print(f"{name:<36} KV cache at {CONTEXT:,} tokens, bf16: {formula / GiB:5.2f} GiB "
          f"({formula // CONTEXT // 1024} KiB per token)")
assert cache_gib["Llama-2-7B-like (MHA, 32 kv heads)"] == 4.0
assert cache_gib["Llama-3-8B-like (GQA, 8 kv heads)"] == 1.0  # 4x smaller: 32 / 8

# %% [markdown]
# Four times fewer bytes per token means four times the batch (or the context) in the same
# memory — and, because generating one token reads the whole cache, less memory traffic per
# token (chapter 12). The weights are 2 bytes × ~7 B ≈ 13 GiB in bf16: at 8k tokens, an MHA cache
# is already a third of that per sequence. GQA also saves parameters (`k_proj` and `v_proj` are
# `n_kv_head/n_head` as large), but not attention FLOPs: every query head still scores every key.

# %%
fig = go.Figure(go.Bar(x=list(cache_gib), y=list(cache_gib.values()),
                       text=[f"{v:.2f} GiB" for v in cache_gib.values()], textposition="outside"))
fig.update_layout(title=f"KV cache of one {CONTEXT:,}-token sequence, 32 layers, bf16",
                  yaxis_title="GiB", width=650, height=330, margin=dict(t=40, b=40))
assert list(fig.data[0].y) == [4.0, 1.0, 0.125]
fig

# %% [markdown]
# ## 6. QK-norm (Qwen3)
#
# The attention score is `q·k/√d`. Nothing bounds it: if training grows the query and key
# weights, the scores grow with the *square* of that growth, the softmax saturates to one-hot,
# and its gradient vanishes — a known cause of loss spikes in large runs (Dehghani et al., 2023).
# **QK-norm** (used by Qwen3, OLMo 2, Gemma 3) applies an RMSNorm over `head_dim` to every head's
# query and key, before RoPE. A normalised vector of `hs` entries has length `√hs`, so (with the
# norm's gain at 1) `|q·k|/√hs ≤ √hs`, however large the weights become:

# %%
torch.manual_seed(0)
Wq, Wk = torch.randn(C, hs) / math.sqrt(C), torch.randn(C, hs) / math.sqrt(C)
qk_norm = RMSNorm(hs, eps=1e-6)  # shared by all heads: hs parameters each for q and k
tokens = torch.randn(T, C)
print(f"{'weight scale':>12} {'max |score|, plain':>19} {'max |score|, QK-norm':>21}")
plain_max, normed_max = [], []
with torch.no_grad():
    for s in (1, 3, 10, 30):
        q_s, k_s = tokens @ (s * Wq), tokens @ (s * Wk)  # (T, hs)
        plain = (q_s @ k_s.T / math.sqrt(hs)).abs().max().item()
        normed = (qk_norm(q_s) @ qk_norm(k_s).T / math.sqrt(hs)).abs().max().item()
        plain_max.append(plain)
        normed_max.append(normed)
        print(f"{s:>12} {plain:>19.1f} {normed:>21.2f}")
assert plain_max[-1] / plain_max[0] > 800  # 30² = 900 times larger
assert max(normed_max) - min(normed_max) < 1e-3 and max(normed_max) <= math.sqrt(hs)

# %% [markdown]
# ## 7. Sliding-window attention (Mistral)
#
# A causal mask lets token `i` see keys `0 … i`. Mistral 7B's **sliding window** lets it see only
# the last `w` of them: `i − w < j ≤ i`. Each layer's cost per token is bounded by `w`, and so is
# the KV cache (a rolling buffer of `w` tokens per layer). Information still travels further:
# each layer passes it `w − 1` positions on, so after `L` layers a token can depend on
# `L·(w − 1)` tokens before it (Mistral: 32 layers × 4,096 ≈ 131k tokens).

# %%
def causal_mask(T: int, sliding_window: int | None = None):
    i = torch.arange(T)[:, None]  # (T, 1) query positions
    j = torch.arange(T)[None, :]  # (1, T) key positions
    mask = j <= i  # causal: True = may attend
    if sliding_window is not None:
        mask = mask & (j > i - sliding_window)  # only the last `sliding_window` keys
    return mask  # (T, T)


W = 4
full, window = causal_mask(T), causal_mask(T, W)
assert torch.equal(full, pkg.causal_mask(T)) and torch.equal(window, pkg.causal_mask(T, 0, W))
assert window.sum(dim=1).tolist() == [min(i + 1, W) for i in range(T)]  # keys per query
fig = make_subplots(rows=1, cols=2, subplot_titles=("causal (GPT-2, Llama)",
                                                    f"sliding window w = {W} (Mistral)"))
for col, m in enumerate((full, window), start=1):
    fig.add_trace(go.Heatmap(z=m.int().tolist(), colorscale=[[0, "#f4f4f4"], [1, "#2b6cb0"]],
                             showscale=False, xgap=1, ygap=1), row=1, col=col)
fig.update_yaxes(autorange="reversed", title_text="query position i", col=1)
fig.update_xaxes(title_text="key position j")
fig.update_layout(width=760, height=380, margin=dict(t=40, b=40))
assert [int(sum(map(sum, t.z))) for t in fig.data] == [T * (T + 1) // 2, int(window.sum())]
fig

# %% [markdown]
# ## 8. The attention layer, assembled
#
# Everything of sections 4–7 in one module: projections without biases (`k_proj` and `v_proj`
# have only `n_kv_head` heads), optional QK-norm, RoPE on q and k, `repeat_kv`, the (windowed)
# causal mask, softmax, and the output projection. The scores are written out, as in the
# package's explicit path (`return_attention=True`, the one that returns the weights); its
# default path calls PyTorch's fused `scaled_dot_product_attention`, which sums in another order
# and so agrees only to float32 rounding (about 1e-7 here).

# %%
class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        C, hs = cfg.n_embd, cfg.head_dim
        self.n_head, self.n_kv_head, self.hs = cfg.n_head, cfg.n_kv_head, hs
        self.sliding_window = cfg.sliding_window
        self.q_proj = nn.Linear(C, cfg.n_head * hs, bias=False)
        self.k_proj = nn.Linear(C, cfg.n_kv_head * hs, bias=False)  # fewer heads: GQA
        self.v_proj = nn.Linear(C, cfg.n_kv_head * hs, bias=False)
        self.o_proj = nn.Linear(cfg.n_head * hs, C, bias=False)
        self.qk_norm = cfg.qk_norm
        if cfg.qk_norm:  # Qwen3
            self.q_norm, self.k_norm = RMSNorm(hs, cfg.rms_norm_eps), RMSNorm(hs, cfg.rms_norm_eps)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.hs)  # (B, T, nh, hs)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.hs)  # (B, T, nkv, hs)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.hs)  # (B, T, nkv, hs)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)  # over head_dim, before RoPE
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, hs)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # positions enter here, only
        n_rep = self.n_head // self.n_kv_head
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, nh, T, hs)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.hs)  # (B, nh, T, T)
        mask = causal_mask(T, self.sliding_window).to(x.device)
        att = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, self.n_head * self.hs)  # (B, T, nh·hs)
        return self.o_proj(y)  # (B, T, C)


small = dict(vocab_size=97, block_size=32, n_layer=2, n_head=4, n_embd=C, n_kv_head=2)
for options in (dict(), dict(qk_norm=True), dict(sliding_window=W)):
    cfg = LlamaConfig(**small, **options)
    torch.manual_seed(0)
    ours, theirs = Attention(cfg), pkg.Attention(cfg)
    if cfg.qk_norm:  # gains that are not all ones, so a missing norm would show
        nn.init.uniform_(ours.q_norm.weight, 0.5, 1.5)
        nn.init.uniform_(ours.k_norm.weight, 0.5, 1.5)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    c, s = rope_cos_sin(torch.arange(T), cfg.head_dim)
    xt = torch.randn(2, T, C)  # (B, T, C)
    with torch.no_grad():
        y = ours(xt, c, s)
        d_explicit = max_diff(y, theirs(xt, c, s, return_attention=True)[0])
        d_fused = max_diff(y, theirs(xt, c, s)[0])
    print(f"attention {str(options) or '(GQA)':<26}: ours vs package, explicit {d_explicit:.6f}, "
          f"fused {d_fused:.5f}")
    assert d_explicit < 1e-6 and d_fused < 1e-5

# %% [markdown]
# GQA is MHA whose heads in a group happen to share their keys and values: give an MHA layer the
# GQA layer's `k_proj`/`v_proj` rows, each kv head copied to the query heads of its group
# (`repeat_interleave` again), and the two compute the same output.

# %%
torch.manual_seed(0)
gqa = Attention(LlamaConfig(**small))  # 4 query heads, 2 kv heads
mha = Attention(LlamaConfig(**{**small, "n_kv_head": 4}))
hs_ = gqa.hs
with torch.no_grad():
    mha.q_proj.weight.copy_(gqa.q_proj.weight)
    mha.o_proj.weight.copy_(gqa.o_proj.weight)
    for name in ("k_proj", "v_proj"):
        w = getattr(gqa, name).weight.view(2, hs_, C)  # (n_kv, hs, C)
        getattr(mha, name).weight.copy_(w.repeat_interleave(2, dim=0).reshape(4 * hs_, C))
    xt = torch.randn(2, T, C)
    d = max_diff(gqa(xt, c, s), mha(xt, c, s))
print(f"GQA vs MHA with shared k/v heads: max |Δ| = {d:.6f}; "
      f"k_proj + v_proj weights {2 * n_weights(gqa.k_proj):,} vs {2 * n_weights(mha.k_proj):,}")
assert d < 1e-6 and n_weights(mha.k_proj) == 2 * n_weights(gqa.k_proj)

# %% [markdown]
# The window's reach, measured: stack `L` attention layers with residuals, use a window `w`, and
# ask autograd which input positions the last token's output depends on. Exactly the last
# `L·(w − 1) + 1` (itself included):

# %%
torch.manual_seed(0)
n_stack, T_long = 3, 24
stack = nn.ModuleList(Attention(LlamaConfig(**{**small, "block_size": T_long}, sliding_window=W))
                      for _ in range(n_stack))
c_long, s_long = rope_cos_sin(torch.arange(T_long), stack[0].hs)
h0 = torch.randn(1, T_long, C, requires_grad=True)
h = h0
for layer in stack:
    h = h + layer(h, c_long, s_long)  # (1, T, C)
h[0, -1].sum().backward()
reached = (h0.grad[0].abs().sum(dim=-1) > 0).nonzero().flatten().tolist()
print(f"{n_stack} layers, window {W}: the last token depends on positions {reached[0]}…{reached[-1]}")
assert reached == list(range(T_long - 1 - n_stack * (W - 1), T_long))

# %% [markdown]
# ## 9. No biases, an untied head — and the whole count
#
# GPT-2 has a bias in every linear layer and LayerNorm; Llama has none. They were never many
# parameters (GPT-2 small: about 0.1 M of 124 M); removing them simplifies the code, and was
# reported to help training stability at scale (PaLM). GPT-2 also **ties** its output head to
# the token embedding; Llama 2 and 3 give the head its own matrix (`V·d` more parameters),
# while small models such as SmolLM2 tie it, since there the embedding is a large share.
#
# Built on the `meta` device, the package's `Llama` reproduces the published parameter counts
# exactly — a check of every shape above.

# %%
with torch.device("meta"):
    gpt2_small = GPT(GPTConfig())  # 124 M
n_bias = sum(p.numel() for n, p in gpt2_small.named_parameters() if n.endswith(".bias"))
assert n_bias == 12 * 11 * 768 + 768  # per block 3C + C + 4C + C (linear) + 2C (LayerNorm)
print(f"GPT-2 small: {n_bias:,} bias parameters of {gpt2_small.num_params():,} "
      f"({100 * n_bias / gpt2_small.num_params():.2f} %)")

famous = {  # name: (config, published count)
    "Llama-2-7B": (LlamaConfig(vocab_size=32000, block_size=4096, n_layer=32, n_head=32,
                               n_embd=4096, intermediate_size=11008), 6_738_415_616),
    "Llama-3-8B": (LlamaConfig(vocab_size=128256, block_size=8192, n_layer=32, n_head=32,
                               n_embd=4096, n_kv_head=8, intermediate_size=14336,
                               rope_theta=500000.0), 8_030_261_248),
    "SmolLM2-135M": (LlamaConfig(vocab_size=49152, block_size=8192, n_layer=30, n_head=9,
                                 n_embd=576, n_kv_head=3, intermediate_size=1536,
                                 rope_theta=100000.0, tie_word_embeddings=True), 134_515_008),
}
for name, (cfg, published) in famous.items():
    with torch.device("meta"):
        m = Llama(cfg)
    head = "tied" if cfg.tie_word_embeddings else f"untied, +{cfg.vocab_size * cfg.n_embd / 1e6:.0f} M"
    print(f"{name:<13} {m.num_params():>14,} parameters (head {head})")
    assert m.num_params() == published
    assert not any(n.endswith(".bias") for n, _ in m.named_parameters())

# %% [markdown]
# ## 10. The whole Llama, on the page
#
# The block is GPT-2's pre-norm block with the new parts; the model is embeddings → blocks →
# final RMSNorm → head. RoPE's angles are computed once per forward and passed to every layer.

# %%
class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.n_embd, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.n_embd, cfg.rms_norm_eps)
        self.mlp = SwiGLU(cfg.n_embd, cfg.intermediate_size)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)  # (B, T, C)
        m = self.mlp(self.post_attention_layernorm(x))
        if isinstance(m, tuple):  # a mixture of experts also returns its router logits (§13)
            m = m[0]
        return x + m  # (B, T, C)


class PageLlama(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.model = nn.ModuleDict(dict(
            embed_tokens=nn.Embedding(cfg.vocab_size, cfg.n_embd),  # no position table
            layers=nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer)),
            norm=RMSNorm(cfg.n_embd, cfg.rms_norm_eps),
        ))
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_word_embeddings:
            self.model.embed_tokens.weight = self.lm_head.weight

    def forward(self, idx):
        B, T = idx.shape
        cos, sin = rope_cos_sin(torch.arange(T, device=idx.device), self.cfg.head_dim,
                                self.cfg.rope_theta)
        x = self.model.embed_tokens(idx)  # (B, T, C)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        return self.lm_head(self.model.norm(x))  # (B, T, vocab)


def randomise(model: nn.Module, seed: int = 1, scale: float = 0.05) -> nn.Module:
    """Noise on every parameter, so unit gains cannot hide a norm applied in the wrong place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return model

# %% [markdown]
# GQA on, RoPE base 500,000 like Llama 3: load the package model's `state_dict` into the page
# model (strict: every name matches) and compare logits — with the package's explicit attention
# path (the same arithmetic as the page: equal to 1e-6, in fact bit for bit) and with its fused
# default (float32 rounding apart). Then export the package model to Hugging Face (`to_hf()`: a
# `LlamaForCausalLM`) and back (`from_hf`), and compare again.

# %%
cfg = LlamaConfig(vocab_size=97, block_size=32, n_layer=2, n_head=4, n_embd=C, n_kv_head=2,
                  rope_theta=500000.0)
torch.manual_seed(0)
package_model = randomise(Llama(cfg)).eval()
page_model = PageLlama(cfg).eval()
page_model.load_state_dict(package_model.state_dict(), strict=True)
hf_model = package_model.to_hf().eval()
idx = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    logits_page = page_model(idx)
    diffs = {
        "llmcourse.llama.Llama, explicit attention": package_model(idx, return_attentions=True)[0],
        "llmcourse.llama.Llama, fused attention": package_model(idx)[0],
        f"transformers {type(hf_model).__name__}": hf_model(idx).logits,
        "Llama.from_hf(that model)": Llama.from_hf(hf_model).eval()(idx)[0],
    }
    diffs = {name: max_diff(logits_page, other) for name, other in diffs.items()}
print(type(hf_model).__name__, f"| kv heads {hf_model.config.num_key_value_heads} of "
      f"{hf_model.config.num_attention_heads} query heads")
for name, d in diffs.items():
    print(f"page vs {name:<42}: max |Δ logits| = {d:.5f}")
assert diffs["llmcourse.llama.Llama, explicit attention"] < 1e-6
assert all(d < 1e-5 for d in diffs.values())

# %% [markdown]
# The same page model with QK-norm is a Qwen3, with a sliding window a Mistral: `to_hf()` picks
# the Hugging Face class from the configuration, and the logits agree again.

# %%
for options in (dict(qk_norm=True), dict(sliding_window=8)):
    cfg_o = LlamaConfig(**{**cfg.to_dict(), **options})
    torch.manual_seed(0)
    pkg_o = randomise(Llama(cfg_o)).eval()
    page_o = PageLlama(cfg_o).eval()
    page_o.load_state_dict(pkg_o.state_dict(), strict=True)
    hf_o = pkg_o.to_hf().eval()
    with torch.no_grad():
        lp = page_o(idx)
        d_pkg = max_diff(lp, pkg_o(idx, return_attentions=True)[0])
        d_hf = max_diff(lp, hf_o(idx).logits)
    print(f"{str(options):<22} -> {type(hf_o).__name__:<18}: page vs package {d_pkg:.6f}, "
          f"vs Hugging Face {d_hf:.5f}")
    assert d_pkg < 1e-6 and d_hf < 1e-5

# %% [markdown]
# ## 11. Real weights: SmolLM2
#
# Because the names and the arithmetic are Hugging Face's, a real checkpoint loads:
# `Llama.from_pretrained(name_or_folder)` reads a Hugging Face model (a Hub name, pinned to a
# commit, or a local `save_pretrained` folder; never remote code) and says which copy it used.
# Online (`LLMCOURSE_ONLINE=1`) this cell loads `HuggingFaceTB/SmolLM2-135M`. Offline — always
# in CI and here — the *same code path* runs on a Hugging Face-format checkpoint the cell saves
# from a random initialisation of SmolLM2's shape (fewer layers under the `ci` profile) into a
# temporary folder.

# %% tags=["nbval-ignore-output"]
SMOL = "HuggingFaceTB/SmolLM2-135M"
workdir = Path(tempfile.mkdtemp(prefix="ch05-"))
if llmcourse.env.online():
    ours_real = Llama.from_pretrained(SMOL)
    hf_real = transformers.AutoModelForCausalLM.from_pretrained(  # float32, as ours (the
        SMOL, revision=pkg.PINNED_REVISIONS[SMOL], dtype=torch.float32)  # default is bf16 here)
    tok_real = transformers.AutoTokenizer.from_pretrained(SMOL, revision=pkg.PINNED_REVISIONS[SMOL])
    prompt = torch.tensor([tok_real.encode("The transformer architecture")])
else:
    standin = transformers.LlamaConfig(  # SmolLM2-135M's config.json, layers cut for ci
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_attention_heads=9,
        num_key_value_heads=3, num_hidden_layers=prof.pick(ci=2, cpu=6, gpu=30),
        max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
        tie_word_embeddings=True, bos_token_id=0, eos_token_id=0, initializer_range=0.2)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(standin).save_pretrained(workdir / "smollm2-standin")
    ours_real = Llama.from_pretrained(workdir / "smollm2-standin")
    hf_real = transformers.AutoModelForCausalLM.from_pretrained(workdir / "smollm2-standin")
    tok_real = None
    prompt = torch.tensor([[1, 504, 3121, 22, 4600, 1025, 4893]])  # any token ids will do
shutil.rmtree(workdir, ignore_errors=True)  # both models are in memory now

# %% [markdown]
# Greedy decoding (temperature 0): our `generate` (with its own KV cache of `n_kv_head` heads)
# and Hugging Face's must write the same tokens. The cell also compares the logits on the whole
# generated text; the next one prints the smallest gap between the two largest logits — equal
# argmaxes need that gap to be larger than the float error between the two implementations.

# %%
N_NEW = 20
hf_real.eval()
hf_real.generation_config.eos_token_id = None  # never stop early: compare all N_NEW tokens
ours_out = ours_real.generate(prompt, N_NEW, temperature=0)
with torch.no_grad():
    hf_out = hf_real.generate(prompt, max_new_tokens=N_NEW, do_sample=False,
                              attention_mask=torch.ones_like(prompt), pad_token_id=0)
    logits_real = ours_real(ours_out[:, :-1])[0]  # (1, T, V)
    d_real = max_diff(logits_real, hf_real(ours_out[:, :-1]).logits)
source = "the Hugging Face Hub" if ours_real.source.startswith("Hugging Face Hub") else \
    "a local Hugging Face-format folder (offline stand-in)"
print(f"weights from {source}; {ours_real.num_params():,} parameters")
same = (ours_out[0, prompt.size(1):] == hf_out[0, prompt.size(1):]).sum().item()
print(f"greedy: {same} of {N_NEW} new tokens equal to Hugging Face's")
assert torch.equal(ours_out, hf_out) and same == N_NEW and d_real < 1e-3

# %% tags=["nbval-ignore-output"]
top2 = logits_real[0, prompt.size(1) - 1:].topk(2, dim=-1).values  # (N_NEW, 2)
margin = (top2[:, 0] - top2[:, 1]).min().item()
print("new tokens:", ours_out[0, prompt.size(1):].tolist())
print(f"max |Δ logits| ours vs Hugging Face {d_real:.1e}; smallest top-2 gap {margin:.4f}")
if tok_real is not None:
    print(tok_real.decode(ours_out[0]))

# %% [markdown]
# ## 12. GPT-2 block vs Llama block, measured
#
# Does the Llama block learn better than GPT-2's? At the same parameter count, same data, same
# steps, same seed, with the `Trainer` (chapter 07 builds it; here it is AdamW with warm-up and a
# cosine schedule). Data: the Python language reference with a small byte-level BPE. Both heads
# are tied (as in SmolLM2) so that the comparison is about the blocks; the Llama uses GQA with
# half as many kv heads, and its SwiGLU width is chosen to match GPT-2's total parameter count
# (which includes GPT-2's position table).

# %%
from llmcourse.data import load_corpus, make_get_batch, train_bpe, train_val_split
from llmcourse.train import TrainConfig, Trainer

text = load_corpus("python-reference")[: prof.corpus_chars]
train_text, val_text = train_val_split(text, val_fraction=0.1)
VOCAB = prof.pick(ci=512, cpu=1024, gpu=4096)
tok = train_bpe(train_text, vocab_size=VOCAB)
train_ids = np.array(tok.encode(train_text).ids, dtype=np.int64)
val_ids = np.array(tok.encode(val_text).ids, dtype=np.int64)
SIZE = prof.pick(ci=dict(n_layer=2, n_head=2, n_embd=64, block_size=64),
                 cpu=dict(n_layer=3, n_head=4, n_embd=96, block_size=128),
                 gpu=dict(n_layer=6, n_head=6, n_embd=384, block_size=256))
BATCH = prof.pick(ci=16, cpu=16, gpu=64)
STEPS = prof.pick(ci=150, cpu=300, gpu=2000)
SEEDS = prof.pick(ci=(0, 1), cpu=(0,), gpu=(0, 1, 2))  # model seeds; the batches are the same
get_batch = make_get_batch(train_ids, BATCH, SIZE["block_size"])
g_val = torch.Generator().manual_seed(1234)
val_batches = [make_get_batch(val_ids, BATCH, SIZE["block_size"])(g_val) for _ in range(8)]

counts = np.bincount(train_ids, minlength=VOCAB) + 1  # add-one smoothing
unigram = float(-np.log(counts / counts.sum())[val_ids].mean())  # the no-context baseline


def new_gpt(seed: int) -> GPT:
    llmcourse.seed_everything(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, **SIZE))


def new_llama(seed: int, hidden: int, **moe) -> Llama:
    llmcourse.seed_everything(seed)
    return Llama(LlamaConfig(vocab_size=VOCAB, **SIZE, n_kv_head=max(1, SIZE["n_head"] // 2),
                             intermediate_size=hidden, tie_word_embeddings=True, **moe))


target = new_gpt(0).num_params()
per_width = 3 * SIZE["n_embd"] * SIZE["n_layer"]  # parameters per unit of SwiGLU width
rest = new_llama(0, 2).num_params() - 2 * per_width
HIDDEN = 2 * round((target - rest) / per_width / 2)  # even: halves into two experts (§13)
n_gpt, n_llama = target, new_llama(0, HIDDEN).num_params()
print(f"GPT-2 block: {n_gpt:,} parameters | Llama block (SwiGLU width {HIDDEN}): {n_llama:,} "
      f"({100 * (n_llama / n_gpt - 1):+.1f} %)")
assert abs(n_llama / n_gpt - 1) < 0.03

# %%
@torch.no_grad()
def val_loss(model) -> float:
    """Mean cross-entropy on the fixed validation batches (the MoE's auxiliary loss left out)."""
    model.eval()
    dev = next(model.parameters()).device
    losses = [F.cross_entropy(model(x.to(dev))[0].view(-1, VOCAB), y.to(dev).view(-1)).item()
              for x, y in val_batches]
    return sum(losses) / len(losses)


def train(model) -> float:
    cfg_t = TrainConfig(max_steps=STEPS, lr=3e-3, warmup_steps=STEPS // 10, log_every=STEPS,
                        precision=prof.precision, device=str(device), progress=False,
                        seed=0)  # seed=0: every run draws the same batches
    Trainer(model, cfg_t, get_batch).fit()
    return val_loss(model)


results = {"GPT-2 block": [], "Llama block": []}
for seed in SEEDS:
    results["GPT-2 block"].append(train(new_gpt(seed)))
    results["Llama block"].append(train(new_llama(seed, HIDDEN)))

# %% tags=["nbval-ignore-output"]
print(f"unigram baseline (no context): {unigram:.3f} nats/token; {STEPS} steps, seeds {SEEDS}")
for name, v in results.items():
    print(f"{name:<12} val loss", "  ".join(f"{x:.3f}" for x in v), f"| mean {np.mean(v):.3f}")
diff = np.mean(results["Llama block"]) - np.mean(results["GPT-2 block"])
print(f"Llama − GPT-2: {diff:+.3f} nats (mean over seeds)")
if len(SEEDS) > 1:
    spread = max(max(v) - min(v) for v in results.values())
    print(f"largest seed-to-seed spread of one block: {spread:.3f} nats")

# %%
for name, v in results.items():
    assert all(x < unigram - 0.3 for x in v), name  # every run learned beyond token frequencies

# %% [markdown]
# What this shows, honestly: both blocks learn (every run ends well below the unigram baseline,
# which knows only how frequent each token is). Which one is better is **not** settled by a run
# this short and small: when this chapter was written (`ci` profile), GPT-2's block won with one
# model seed (4.49 vs 4.70 nats) and Llama's with the other (4.48 vs 4.96): the two blocks
# differed by less than two seeds of the *same* block did. Under the `cpu` profile (a wider model,
# 300 steps, the whole corpus, one seed) Llama's block ended 0.30 nats lower — a hint, which one
# seed cannot make a proof. The published evidence comes from runs thousands of times larger:
# Narang et al. (2021) found that most proposed transformer modifications did not carry over
# across code bases and scales, and the GLU variants (SwiGLU among them) and RMSNorm were among
# the few that did, by a few percent of loss. Run with `LLMCOURSE_PROFILE=gpu` for a longer, wider
# comparison. Llama's block also won for reasons a loss curve does not show: RoPE extends past the
# trained length with rescaling, GQA makes serving cheap, and one architecture serves from 135 M
# parameters (SmolLM2) to 405 B (Llama 3.1).

# %% [markdown]
# ## 13. Mixture of experts (Mixtral)
#
# A **mixture of experts** (MoE; Shazeer et al., 2017; Switch Transformer; Mixtral 8x7B, 2024)
# replaces the MLP by `E` expert MLPs and a **router**, a linear layer that scores the experts
# for each token. Each token goes through its **top-k** experts only (Mixtral: 2 of 8), mixed
# with the softmax of their router logits. So the model has `E` MLPs' worth of parameters but
# each token pays for `k`: more capacity at the same compute per token.

# %%
class MoE(nn.Module):
    def __init__(self, n_embd: int, hidden: int, n_experts: int, top_k: int):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(n_embd, n_experts, bias=False)  # the router
        self.experts = nn.ModuleList(SwiGLU(n_embd, hidden) for _ in range(n_experts))

    def forward(self, x):
        B, T, C = x.shape
        x = x.reshape(B * T, C)  # (N, C): each token is routed on its own
        logits = self.gate(x)  # (N, E)
        top_logits, top_idx = logits.topk(self.top_k, dim=-1)  # (N, k)
        weights = top_logits.softmax(dim=-1)  # (N, k): over the chosen experts, sums to 1
        y = torch.zeros_like(x)  # (N, C)
        for e, expert in enumerate(self.experts):
            token, slot = torch.where(top_idx == e)  # the tokens that chose expert e
            y.index_add_(0, token, expert(x[token]) * weights[token, slot, None])
        return y.view(B, T, C), logits

# %% [markdown]
# A router left alone tends to collapse onto a few experts (they get more tokens, so they get
# better, so they get more tokens). The **load-balancing loss** (Switch Transformer; Mixtral's
# `router_aux_loss_coef` × it is added to the loss) is `E · Σₑ fₑ·Pₑ`, with `fₑ` the fraction of
# token assignments that went to expert `e` and `Pₑ` its mean router probability. Balanced
# routing gives `k`; sending every token to the same `k` experts gives `E`.

# %%
def load_balancing_loss(router_logits: list, top_k: int):
    logits = torch.cat(router_logits, dim=0)  # (L·N, E): all layers' tokens
    E = logits.shape[-1]
    probs = logits.softmax(dim=-1)  # (L·N, E)
    chosen = probs.topk(top_k, dim=-1).indices  # (L·N, k)
    f = F.one_hot(chosen, E).float().sum(dim=1).mean(dim=0)  # (E,) assignments per token
    P = probs.mean(dim=0)  # (E,) mean router probability
    return E * (f * P).sum()


torch.manual_seed(0)
rl = [torch.randn(50, 4), torch.randn(50, 4)]  # two layers, 50 tokens, 4 experts
ours_aux = load_balancing_loss(rl, 2)
d_pkg = abs(ours_aux - pkg.load_balancing_loss(rl, 2)).item()
d_hf = abs(ours_aux - load_balancing_loss_func(tuple(rl), num_experts=4, top_k=2)).item()
balanced = load_balancing_loss([torch.zeros(40, 4)], 2)  # every expert equally likely
collapsed = load_balancing_loss([torch.tensor([[9.0, 9.0, 0.0, 0.0]]).repeat(40, 1)], 2)
print(f"aux loss {ours_aux:.4f}; vs package {d_pkg:.6f}, vs transformers {d_hf:.6f}")
print(f"balanced: {balanced:.3f} (= k), collapsed onto 2 experts: {collapsed:.3f} (≈ E)")
assert d_pkg < 1e-6 and d_hf < 1e-6
assert abs(balanced - 2) < 1e-6 and abs(collapsed - 4) < 1e-3

# %% [markdown]
# The page MoE in the page model equals the package's, and the package's exports to Hugging
# Face's `MixtralForCausalLM` with the same logits (Mixtral 8x7B itself, counted on the meta
# device: 46.7 B parameters, 12.9 B active per token).

# %%
cfg_moe = LlamaConfig(**{**cfg.to_dict(), "n_experts": 4, "n_experts_per_tok": 2,
                         "intermediate_size": 48})
torch.manual_seed(0)
pkg_moe = randomise(Llama(cfg_moe)).eval()
page_moe = PageLlama(cfg_moe)
for layer in page_moe.model.layers:  # swap the dense SwiGLU for the page MoE
    layer.mlp = MoE(cfg_moe.n_embd, cfg_moe.intermediate_size, 4, 2)
page_moe.load_state_dict(pkg_moe.state_dict(), strict=True)
page_moe.eval()
hf_moe = pkg_moe.to_hf().eval()
with torch.no_grad():
    lp = page_moe(idx)
    d_pkg = max_diff(lp, pkg_moe(idx, return_attentions=True)[0])
    d_hf = max_diff(lp, hf_moe(idx).logits)
print(f"MoE page vs package {d_pkg:.6f}, vs transformers {type(hf_moe).__name__} {d_hf:.5f}")
assert d_pkg < 1e-6 and d_hf < 1e-5

mixtral = LlamaConfig(vocab_size=32000, block_size=32768, n_layer=32, n_head=32, n_embd=4096,
                      n_kv_head=8, intermediate_size=14336, rope_theta=1e6, n_experts=8,
                      n_experts_per_tok=2)
with torch.device("meta"):
    m = Llama(mixtral)
total, active = m.num_params(), m.num_params(active=True)
print(f"Mixtral 8x7B: {total / 1e9:.1f} B parameters, {active / 1e9:.1f} B active per token")
assert (round(total / 1e9, 1), round(active / 1e9, 1)) == (46.7, 12.9)

# %% [markdown]
# ### A small MoE against a dense model with the same active parameters
#
# The dense model is section 12's Llama block (SwiGLU width `h`). The MoE has 4 experts of width
# `h/2` and routes each token to 2 of them: per token, the same MLP parameters are used
# (`2 · 3·d·h/2 = 3·d·h`), plus the tiny router; in total it holds twice the MLP parameters. Same
# steps, same batches, same seeds; the validation loss leaves out the auxiliary loss.

# %%
EXPERTS, TOP_K = 4, 2
moe_kw = dict(n_experts=EXPERTS, n_experts_per_tok=TOP_K)
dense_model, moe_model = new_llama(0, HIDDEN), new_llama(0, HIDDEN // 2, **moe_kw)
n_dense, n_active, n_total = (dense_model.num_params(), moe_model.num_params(active=True),
                              moe_model.num_params())
router = SIZE["n_layer"] * SIZE["n_embd"] * EXPERTS
print(f"dense {n_dense:,} | MoE {n_active:,} active (+{router:,} router), {n_total:,} in total")
assert n_active - router == n_dense and n_total > 1.3 * n_dense

results["MoE, same active"] = []
for seed in SEEDS:
    moe_model = new_llama(seed, HIDDEN // 2, **moe_kw)
    results["MoE, same active"].append(train(moe_model))
with torch.no_grad():
    moe_model(torch.cat([x for x, _ in val_batches]).to(device))  # route every validation token
load = moe_model.expert_counts().cpu()  # (n_layer, E): assignments per expert, last seed's

# %% tags=["nbval-ignore-output"]
for name in ("Llama block", "MoE, same active"):
    v = results[name]
    print(f"{name:<17} val loss", "  ".join(f"{x:.3f}" for x in v), f"| mean {np.mean(v):.3f}")
print("expert load per layer (share of assignments):",
      [[round(float(v), 2) for v in row] for row in load / load.sum(dim=1, keepdim=True)])

# %%
n_val_tokens = sum(x.numel() for x, _ in val_batches)
assert load.shape == (SIZE["n_layer"], EXPERTS)
assert (load.sum(dim=1) == TOP_K * n_val_tokens).all()  # each token counted k times per layer
assert (load > 0).all()  # no expert is dead
assert all(x < unigram - 0.3 for x in results["MoE, same active"])
share = (load / load.sum(dim=1, keepdim=True)).numpy()
fig = go.Figure([go.Bar(x=[f"expert {e}" for e in range(EXPERTS)], y=share[i],
                        name=f"layer {i}") for i in range(SIZE["n_layer"])])
fig.add_hline(y=1 / EXPERTS, line_dash="dash", annotation_text="balanced")
fig.update_layout(barmode="group", title="Which experts the trained router picks (validation tokens)",
                  yaxis_title="share of assignments", width=650, height=340, margin=dict(t=40, b=40))
assert len(fig.data) == SIZE["n_layer"]
fig

# %% [markdown]
# Honestly again: the MoE ends about where the dense model does — when this chapter was written,
# 0.30 nats lower with one seed and 0.05 higher with the other (`ci`), 0.05 lower under `cpu` —
# within the seed noise of section 12. Each expert sees only part of the tokens, and a few
# hundred steps are not enough for capacity to matter. The router uses every expert, unevenly
# (the auxiliary loss, at Mixtral's coefficient 0.01, pulls towards balance without forcing it).
# The case for MoE is made at scale — Mixtral 8x7B matches or beats Llama-2-70B with 13 B active
# parameters — and it is a case about *compute*: a trillion-parameter model whose tokens each
# cost a 30 B one.

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: RMSNorm
# Write `rms_norm(x, weight, eps)`: normalise `x` over its last dimension by its root mean
# square (with `eps` inside the square root), then multiply by `weight`.

# %%
from llmcourse.exercises.modern_decoders import (
    check_repeat_kv,
    check_rms_norm,
    check_top_k_routing,
)


def rms_norm(x, weight, eps):
    raise NotImplementedError  # your code here


check_rms_norm(rms_norm)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# `x / sqrt(mean(x², last dim) + eps) · weight` — section 2's `forward`.
# </details>

# %% jupyter={"source_hidden": true}
def rms_norm_solution(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


assert check_rms_norm(rms_norm_solution)

# %% [markdown]
# Subtracting the mean first (LayerNorm without the bias) must fail, and so must forgetting
# `eps`:

# %%
def rms_norm_centred(x, weight, eps):
    x = x - x.mean(dim=-1, keepdim=True)
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight


def rms_norm_no_eps(x, weight, eps):
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True)) * weight


assert not check_rms_norm(rms_norm_centred)
assert not check_rms_norm(rms_norm_no_eps)

# %% [markdown]
# ### Exercise 2: `repeat_kv` for grouped-query attention
# Write `repeat_kv(x, n_rep)`: `(B, n_kv, T, hs) → (B, n_kv·n_rep, T, hs)`, each key/value head
# repeated `n_rep` times in a row, so that query head `h` reads kv head `h // n_rep`.

# %%
def repeat_kv_exercise(x, n_rep):
    raise NotImplementedError  # your code here


check_repeat_kv(repeat_kv_exercise)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# `x.repeat_interleave(n_rep, dim=1)`, or section 5's `expand` + `reshape`, which avoids a copy
# until the reshape.
# </details>

# %% jupyter={"source_hidden": true}
assert check_repeat_kv(lambda x, n_rep: x.repeat_interleave(n_rep, dim=1))

# %% [markdown]
# `x.repeat(1, n_rep, 1, 1)` has the right shape and the wrong groups (`[k0, k1, k0, k1, …]`):
# a model trained with one order and run with the other mixes up its heads. It must fail:

# %%
assert not check_repeat_kv(lambda x, n_rep: x.repeat(1, n_rep, 1, 1))

# %% [markdown]
# ### Exercise 3: top-k routing
# Write `route(router_logits, k)` for router logits `(N, E)`: return `(weights, experts)`, both
# `(N, k)`: the `k` experts with the largest logits per token, in descending order (as
# `torch.topk` gives them), and their mixing weights, which sum to 1 per token.

# %%
def route(router_logits, k):
    raise NotImplementedError  # your code here


check_top_k_routing(route)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# `top, experts = router_logits.topk(k, dim=-1)`, then `weights = top.softmax(dim=-1)`.
# Mixtral's code takes the softmax over all experts, picks the top k, and renormalises them to
# sum to 1 — the same numbers.
# </details>

# %% jupyter={"source_hidden": true}
def route_solution(router_logits, k):
    top, experts = router_logits.topk(k, dim=-1)
    return top.softmax(dim=-1), experts


def route_mixtral_style(router_logits, k):  # softmax over all, pick, renormalise: equal
    w, experts = router_logits.softmax(dim=-1).topk(k, dim=-1)
    return w / w.sum(dim=-1, keepdim=True), experts


assert check_top_k_routing(route_solution) and check_top_k_routing(route_mixtral_style)

# %% [markdown]
# Taking the softmax over *all* experts and keeping the chosen probabilities without
# renormalising gives weights that sum to less than 1 (some MoE models do this on purpose, e.g.
# with `norm_topk_prob=False`; Mixtral does not). Against Mixtral's rule it must fail:

# %%
def route_not_renormalised(router_logits, k):
    w, experts = router_logits.softmax(dim=-1).topk(k, dim=-1)
    return w, experts


assert not check_top_k_routing(route_not_renormalised)

# %% [markdown]
# ## Summary
#
# - Llama = GPT-2's pre-norm skeleton with **RMSNorm** (no mean, no bias), **SwiGLU** (three
#   matrices at ⅔·4·d: the same parameters as GPT-2's MLP), **RoPE** on q and k inside attention
#   (scores depend on the offset only; no position table), **grouped-query attention** (fewer
#   kv heads: a 4× smaller KV cache for Llama 3 8B), no biases and an untied head.
# - **QK-norm** (Qwen3) bounds the attention scores; a **sliding window** (Mistral) bounds each
#   layer's reach and cache, while `L` layers still reach `L·(w − 1)` tokens back.
# - A **mixture of experts** routes each token to its top-k expert MLPs; the load-balancing loss
#   keeps the router from collapsing; the gain is capacity at the same active compute.
# - Our page model, `llmcourse.llama.Llama` and Hugging Face's Llama / Qwen3 / Mistral / Mixtral
#   compute the same logits, so real checkpoints (SmolLM2) load and generate the same tokens.
# - At a few hundred thousand parameters and a few hundred steps, the architectures are within
#   seed noise of each other: their advantages are measured at scale.
#
# Next: **06 · Cross-entropy and optimisation** — the loss all these models minimise, and the
# optimisers that minimise it.
