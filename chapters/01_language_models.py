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
# # 01 · Language models: a probability distribution over text
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/01_language_models.ipynb)
#
# **What you will learn**
# - a language model assigns a probability to any text, one next token at a time (the chain rule);
# - count models (bigram, trigram), how to sample from them, and why they need smoothing — with α
#   chosen on a *validation* split and every model scored once, by *perplexity*, on a *test* split;
# - the same bigram as a tiny neural network trained with cross-entropy — it lands on the counts;
#   then Bengio's MLP language model, which reads several tokens and beats the trigram;
# - an LSTM language model in PyTorch, how many parameters such a model really has, and gradient
#   clipping measured on its training run;
# - autoregressive (next-token) versus autoencoding (masked-token) objectives, and the `-100` label
#   convention.
#
# **Prerequisites:** chapter 00; Python, a little PyTorch (tensors, `nn.Module`).

# %% tags=["hide-input"]
import sys

if "google.colab" in sys.modules:  # on Colab only: install the course package
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "llmcourse[offline] @ git+https://github.com/llmcourse/llmcourse@v0.2.0"], check=True)

# %% tags=["nbval-ignore-output"]
import copy
import math
import time

import plotly.graph_objects as go
import torch
import torch.nn as nn
import torch.nn.functional as F

import llmcourse
from llmcourse.data import load_corpus, train_val_split
from llmcourse.data.batching import get_batch
from llmcourse.ngram import NGramLM
from llmcourse.scaling import PRESETS, count_params
from llmcourse.tokenizers import CharTokenizer

device, prof = llmcourse.setup(seed=0)
print(llmcourse.env_report())

# %% [markdown]
# ## Text as a sequence of tokens
#
# A language model works on *tokens*. In this chapter a token is one character (chapter 02 builds
# better ones). Our corpus is the Python language reference, which ships with Python; the profile
# decides how much of it we use. It is cut into three contiguous parts:
#
# - **train** (80 %): what the models learn from;
# - **validation** (10 %): for choices — the smoothing α, when to stop;
# - **test** (the last 10 %): read once, at the end, for the numbers we report. A number measured
#   on text that helped make a choice is optimistic, so choices never look at it.

# %%
text = load_corpus("python-reference")[: prof.corpus_chars]
tok = CharTokenizer.train(text)
V = tok.vocab_size
rest, test_text = train_val_split(text, val_fraction=0.1)
train_text, val_text = train_val_split(rest, val_fraction=1 / 9)  # 1/9 of the 90 %: 10 % of all
train_ids, val_ids, test_ids = (torch.tensor(tok.encode(t)) for t in (train_text, val_text, test_text))
print(" / ".join(f"{name} {len(t) / len(text):.0%}" for name, t in
                 (("train", train_ids), ("validation", val_ids), ("test", test_ids))))
assert train_text + val_text + test_text == text  # contiguous, nothing lost, nothing shared
assert tok.decode(tok.encode(test_text)) == test_text

# %% [markdown]
# Text becomes numbers only through a tokenizer. A common tutorial writes
# `torch.tensor(["def", "f(x):"])` as if a tensor could hold words; here is why it is wrong: a
# tensor holds numbers, and PyTorch refuses strings —

# %% tags=["raises-exception"]
torch.tensor(["def", "f(x):"])

# %% [markdown]
# — the tokenizer maps each token to an integer id first, and the tensor holds those ids:

# %%
ids = tok.encode("def f(x):")
x = torch.tensor(ids)
print(f"{len(ids)} tokens:", tok.tokens("def f(x):"), "->", x.dtype, tuple(x.shape), "->",
      repr(tok.decode(x.tolist())))
assert x.dtype == torch.int64 and x.shape == (9,) and tok.decode(x.tolist()) == "def f(x):"
try:
    torch.tensor(["def", "f(x):"])
    raise AssertionError("torch.tensor accepted strings")
except ValueError as err:
    assert "str" in str(err)

# %% [markdown]
# ## The chain rule
#
# Any distribution over sequences factorises into next-token predictions:
#
# $$P(x_1, \dots, x_T) = P(x_1)\, P(x_2 \mid x_1) \cdots P(x_T \mid x_1, \dots, x_{T-1}) = \prod_t P(x_t \mid x_{<t}).$$
#
# A language model is a machine for the conditional $P(x_t \mid x_{<t})$. We compare models by the
# average **negative log-likelihood** per token (nats) on held-out text, or its exponential, the
# **perplexity**: a perplexity of $k$ means the model is as unsure as a uniform pick among $k$ tokens.
# A model that knows nothing (uniform over the vocabulary) has perplexity $V$:

# %%
uniform_nll = -math.log(1 / V)
print(f"uniform model: NLL = ln {V} = {uniform_nll:.3f} nats, perplexity = {math.exp(uniform_nll):.1f}")
assert math.isclose(math.exp(uniform_nll), V)

# %% [markdown]
# ## Counting: unigram, bigram, trigram
#
# The simplest models truncate the history: a **bigram** model conditions on the previous token
# only, a **trigram** on the previous two, and estimates each probability by counting:
# $P(b \mid a) = \text{count}(a, b) / \text{count}(a)$. `llmcourse.ngram.NGramLM` does this with a
# single `torch.bincount`. Below: the bigram distribution after the letter `q` — you can guess it.

# %%
bigram_raw = NGramLM(order=2, vocab_size=V, alpha=0.0).fit(train_ids)
p_after_q = bigram_raw.probs(tok.encode("q"))
best = int(p_after_q.argmax())
print(f"most likely after 'q': {tok.itos[best]!r}")
assert tok.itos[best] == "u"
assert math.isclose(float(p_after_q.sum()), 1.0)

# %% [markdown]
# A row of the count table is a distribution over the next character. Here is the whole bigram
# table for a few common characters (rows: previous character; columns: next):

# %%
show = [c for c in " etaoinsrhd(_" if c in tok.stoi]
idx = [tok.stoi[c] for c in show]
table = bigram_raw.prob_table()[idx][:, idx]
labels = [repr(c)[1:-1] if c != " " else "␣" for c in show]
fig = go.Figure(go.Heatmap(z=table.numpy().round(3), x=labels, y=labels, colorscale="Blues"))
fig.update_layout(title="bigram P(next | previous)", xaxis_title="next", yaxis_title="previous",
                  height=380, width=460, yaxis_autorange="reversed")
fig

# %%
assert torch.allclose(bigram_raw.prob_table().sum(1), torch.ones(V, dtype=torch.float64))
assert len(fig.data) == 1 and fig.data[0].z.shape == (len(show), len(show))

# %% [markdown]
# With a model in hand, the chain rule gives the probability of a whole sentence: multiply the
# next-token probabilities (add their logs, to avoid underflow). Real English scores far higher
# than the same letters reversed (the exact numbers depend on the corpus version, so they are not
# compared; the cell after checks the gap):

# %% tags=["nbval-ignore-output"]
def sentence_logprob(lm: NGramLM, sentence: str) -> float:
    ids = tok.encode(sentence)
    return sum(math.log(lm.probs(ids[:t])[ids[t]]) for t in range(1, len(ids)))  # chain rule


smoothed = NGramLM(2, V, alpha=0.1).fit(train_ids)
s_fwd, s_rev = "the value of the object", "the value of the object"[::-1]
lp_fwd, lp_rev = sentence_logprob(smoothed, s_fwd), sentence_logprob(smoothed, s_rev)
print(f"log P({s_fwd!r}) = {lp_fwd:.1f} nats\nlog P({s_rev!r}) = {lp_rev:.1f} nats\n"
      f"forward - reversed = {lp_fwd - lp_rev:.1f} nats: forward is e^{lp_fwd - lp_rev:.0f} times likelier")

# %%
assert lp_fwd > lp_rev + 5
assert math.isclose(lp_fwd, float(smoothed.log_probs(tok.encode(s_fwd)).sum()), rel_tol=1e-9)

# %% [markdown]
# ### Smoothing, with α chosen on the validation split
#
# With raw counts, a pair that never occurred in training has probability **zero**, and a single
# such pair in held-out text makes its perplexity infinite. *Add-α smoothing* pretends every
# pair was seen α extra times: $P(b \mid a) = (\text{count}(a,b) + α) / (\text{count}(a) + αV)$.
# Too little α leaves rare pairs nearly impossible; too much flattens every row towards uniform.
# α is a *choice*, so we make it on the validation split — the test split stays unread:

# %%
alphas = [0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]
val_ppl = {(order, a): NGramLM(order, V, alpha=a).fit(train_ids).perplexity(val_ids)
           for order in (1, 2, 3) for a in [0.0, *alphas]}
best_alpha = {order: min(alphas, key=lambda a: val_ppl[order, a]) for order in (1, 2, 3)}
fig = go.Figure([go.Scatter(x=alphas, y=[val_ppl[order, a] for a in alphas], mode="lines+markers",
                            name=name) for order, name in ((2, "bigram"), (3, "trigram"))])
for order in (2, 3):
    fig.add_annotation(x=math.log10(best_alpha[order]), y=val_ppl[order, best_alpha[order]],
                       text=f"best α = {best_alpha[order]}", showarrow=True, arrowhead=2)
fig.update_layout(title="validation perplexity against the smoothing α (α = 0: infinite)",
                  xaxis_type="log", xaxis_title="α", yaxis_title="validation perplexity", height=340)
fig

# %% tags=["nbval-ignore-output"]
for order, name in ((1, "unigram"), (2, "bigram"), (3, "trigram")):
    a = best_alpha[order]
    print(f"{name:<8} α = 0: {val_ppl[order, 0.0]:6.2f} | best α = {a:<5}: {val_ppl[order, a]:5.2f}"
          f" | α = 3: {val_ppl[order, 3.0]:5.2f}")

# %%
assert math.isinf(val_ppl[2, 0.0]) and math.isinf(val_ppl[3, 0.0])  # unsmoothed: infinite
for order in (2, 3):  # a true minimum inside the grid: both ends are worse
    assert alphas[0] < best_alpha[order] < alphas[-1]
    assert val_ppl[order, best_alpha[order]] < min(val_ppl[order, alphas[0]], val_ppl[order, alphas[-1]])
assert best_alpha[3] < best_alpha[2]  # trigram rows hold fewer counts: the same α flattens them more
assert val_ppl[3, best_alpha[3]] < val_ppl[2, best_alpha[2]] < val_ppl[1, best_alpha[1]] < V
assert len(fig.data) == 2 and list(fig.data[1].x) == alphas
bigram = NGramLM(2, V, alpha=best_alpha[2]).fit(train_ids)
trigram = NGramLM(3, V, alpha=best_alpha[3]).fit(train_ids)

# %% [markdown]
# More context helps — the trigram's best is far below the bigram's — but each trigram row (a pair
# of previous characters) holds fewer counts, so the same α flattens it more: its best α is smaller.
#
# ### Sampling
#
# A language model is also a *generator*: draw the next token from $P(\cdot \mid \text{context})$,
# append it, repeat. The bigram's text has the right letters and spacing but no words; the trigram
# starts to spell (the output depends on the corpus version, so it is not compared):

# %% tags=["nbval-ignore-output"]
g = torch.Generator().manual_seed(0)
for name, lm in (("bigram", bigram), ("trigram", trigram)):
    start = tok.encode("The ")
    print(f"--- {name}:\n" + tok.decode(start + lm.sample(start, 160, generator=g)))

# %%
sample = bigram.sample(tok.encode("The "), 50, generator=torch.Generator().manual_seed(0))
assert len(sample) == 50 and all(0 <= i < V for i in sample)

# %% [markdown]
# ## The bigram as a neural network
#
# A neural bigram is one embedding table $W \in \mathbb{R}^{V \times V}$: token $a$ looks up row
# $a$, read as *logits* for the next token; softmax turns them into probabilities. We train it with
# the cross-entropy loss — the mean negative log-likelihood of the true next tokens.
#
# Because the model sees only the previous token, its loss over the training stream depends on the
# data only through the bigram counts:
# $\text{loss} = -\frac{1}{N}\sum_{a,b} \text{count}(a,b) \log \text{softmax}(W_a)_b$.
# We check that identity, then train on the counts (fast: a $V \times V$ table instead of every
# token). The minimum of that loss is exactly the count model's $P(b \mid a)$.

# %%
emb = nn.Embedding(V, V)
nn.init.zeros_(emb.weight)  # start uniform
x, y = train_ids[:-1], train_ids[1:]
counts = bigram_raw.counts.float()

def count_loss(W: torch.Tensor) -> torch.Tensor:
    return -(counts * F.log_softmax(W, dim=-1)).sum() / counts.sum()

with torch.no_grad():
    emb.weight.normal_(generator=torch.Generator().manual_seed(0))
    stream_loss = F.cross_entropy(emb(x), y)
    assert torch.allclose(stream_loss, count_loss(emb.weight), atol=1e-5)
    emb.weight.zero_()

opt = torch.optim.Adam(emb.parameters(), lr=0.5)
for _step in range(300):
    loss = count_loss(emb.weight)
    opt.zero_grad()
    loss.backward()
    opt.step()

with torch.no_grad():
    neural_nll = F.cross_entropy(emb(x), y).item()  # the ordinary cross-entropy over every token
count_nll = bigram_raw.nll(train_ids)
print(f"neural bigram train loss {neural_nll:.2f} nats, count bigram {count_nll:.2f} nats")
assert abs(neural_nll - count_nll) < 0.01

# %% [markdown]
# The learned softmax rows are (almost) the normalised counts — the network rediscovered counting:

# %% tags=["nbval-ignore-output"]
with torch.no_grad():
    p_neural = F.softmax(emb.weight, dim=-1)
seen = counts.sum(1) > 100  # rows with enough data to pin the estimate down
gap = (p_neural[seen] - bigram_raw.prob_table()[seen].float()).abs().max().item()
print(f"largest gap between neural and count probabilities, over {int(seen.sum())} rows "
      f"x {V} columns: {gap:.4f}")

# %%
assert gap < 0.01

# %% [markdown]
# ## A neural n-gram: the MLP language model
#
# The neural bigram only re-learned the counts. Bengio et al. (2003) took the step counts cannot
# take: read the **k previous tokens**, look each up in one shared embedding table, **concatenate**
# the k vectors, pass them through a hidden `tanh` layer, and let a linear layer give the logits of
# the next token. A count model with k tokens of context needs $V^k$ rows (for k = 4 characters:
# 10⁸ rows of 100 counts, almost all zero); this model has $Vd + (kd \cdot H + H) + (HV + V)$
# parameters — linear in k — and contexts that look alike share what they learn, because similar
# tokens get similar vectors.

# %%
k = prof.pick(ci=4, cpu=6, gpu=8)  # tokens of context: a neural (k + 1)-gram


def windows(ids: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    w = ids.unfold(0, k + 1, 1)  # (N - k, k + 1): every run of k + 1 consecutive tokens
    return w[:, :-1], w[:, -1]  # the k previous tokens (N - k, k), the next one (N - k,)


class MLPLanguageModel(nn.Module):
    def __init__(self, vocab_size: int, context: int, d_embed: int, d_hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_embed)  # C: (V, d), shared by the k positions
        self.hidden = nn.Linear(context * d_embed, d_hidden)  # (k·d) -> H
        self.head = nn.Linear(d_hidden, vocab_size)  # H -> V

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:  # ctx: (B, k) token ids
        e = self.embed(ctx)  # (B, k, d)
        h = torch.tanh(self.hidden(e.flatten(1)))  # concatenate the k vectors: (B, k·d) -> (B, H)
        return self.head(h)  # logits: (B, V)


x_tr, y_tr = windows(train_ids, k)
x_va, y_va = windows(val_ids, k)
d_embed, d_hidden_mlp = prof.pick(ci=16, cpu=24, gpu=32), prof.pick(ci=128, cpu=256, gpu=512)
mlp = MLPLanguageModel(V, k, d_embed, d_hidden_mlp).to(device)
n_mlp = sum(p.numel() for p in mlp.parameters())
print(f"{len(x_tr):,} training windows of shape {tuple(x_tr.shape[1:])}; logits {tuple(mlp(x_tr[:2].to(device)).shape)}; "
      f"{n_mlp:,} parameters")
assert torch.equal(x_tr[:, 1:][:-1], x_tr[1:, :-1]) and torch.equal(y_tr[:-1], x_tr[1:, -1])
assert n_mlp == V * d_embed + (k * d_embed * d_hidden_mlp + d_hidden_mlp) + (d_hidden_mlp * V + V)

# %% [markdown]
# The package keeps the same model (`llmcourse.ngram.MLPLanguageModel`, with input checks) and the
# same windows (`context_windows`); loaded with our weights, it gives the same logits:

# %%
from llmcourse.ngram import MLPLanguageModel as PackageMLPLM
from llmcourse.ngram import context_windows

package_mlp = PackageMLPLM(V, k, d_embed, d_hidden_mlp).to(device)
package_mlp.load_state_dict(mlp.state_dict())
x_pkg, y_pkg = context_windows(val_ids, k)
assert torch.equal(x_pkg, x_va) and torch.equal(y_pkg, y_va)
with torch.no_grad():
    ours, theirs = mlp(x_va[:512].to(device)), package_mlp(x_va[:512].to(device))
print(f"largest difference between our logits and the package's: {(ours - theirs).abs().max():.1e}")
assert torch.equal(ours, theirs)

# %% [markdown]
# Training samples random windows; the learning rate decays along a cosine to zero (chapter 06
# explains schedules), and every few hundred steps we measure the loss on the validation windows —
# the split meant for watching training:

# %%
llmcourse.seed_everything(0)
mlp = MLPLanguageModel(V, k, d_embed, d_hidden_mlp).to(device)
mlp_steps = prof.pick(ci=2_000, cpu=5_000, gpu=20_000)
mlp_batch = prof.pick(ci=256, cpu=512, gpu=1024)
opt = torch.optim.AdamW(mlp.parameters(), lr=1e-2)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, mlp_steps)
g = torch.Generator().manual_seed(0)


@torch.no_grad()
def mlp_val_nll() -> float:
    return F.cross_entropy(mlp(x_va.to(device)), y_va.to(device)).item()


mlp_curve, t0 = [(0, mlp_val_nll())], time.perf_counter()
for step in range(1, mlp_steps + 1):
    i = torch.randint(len(x_tr), (mlp_batch,), generator=g)
    loss = F.cross_entropy(mlp(x_tr[i].to(device)), y_tr[i].to(device))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    if step % (mlp_steps // 10) == 0:
        mlp_curve.append((step, mlp_val_nll()))
mlp_seconds = time.perf_counter() - t0

# %% tags=["nbval-ignore-output"]
print(f"{mlp_steps} steps in {mlp_seconds:.0f} s; validation perplexity {math.exp(mlp_curve[0][1]):.1f} "
      f"-> {math.exp(mlp_curve[-1][1]):.2f} (trigram: {val_ppl[3, best_alpha[3]]:.2f})")
go.Figure(go.Scatter(x=[s for s, _ in mlp_curve], y=[math.exp(v) for _, v in mlp_curve],
                     mode="lines+markers")).update_layout(
    title="MLP language model: validation perplexity", xaxis_title="step",
    yaxis_title="perplexity", height=300)

# %%
assert math.isclose(math.exp(mlp_curve[0][1]), V, rel_tol=0.2)  # starts near the uniform guess
assert math.exp(mlp_curve[-1][1]) < val_ppl[3, best_alpha[3]]  # ... ends below the best count model

# %% [markdown]
# ## An LSTM language model
#
# The MLP still forgets everything older than k characters. A recurrent network carries a state
# along the whole sequence. The classic PyTorch recipe is `Embedding → LSTM → Linear`; two details
# matter: `batch_first=True` (tensors are `(batch, time, features)`), and targets are the inputs
# **shifted by one** — exactly what `llmcourse.data.get_batch` returns.

# %%
class LSTMLanguageModel(nn.Module):
    def __init__(self, vocab_size: int, d_embed: int, d_hidden: int, n_layers: int = 1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, d_embed)
        self.lstm = nn.LSTM(d_embed, d_hidden, num_layers=n_layers, batch_first=True)
        self.head = nn.Linear(d_hidden, vocab_size)

    def forward(self, idx, state=None):
        h, state = self.lstm(self.embed(idx), state)  # (B, T, d_embed) -> (B, T, d_hidden)
        return self.head(h), state  # logits: (B, T, vocab_size)


xb, yb = get_batch(train_ids, block_size=8, batch_size=2, generator=torch.Generator().manual_seed(0))
print(repr(tok.decode(xb[0])), "->", repr(tok.decode(yb[0])))
assert torch.equal(xb[:, 1:], yb[:, :-1])  # targets = inputs shifted by one

# %% [markdown]
# ### How many parameters does an LSTM have?
#
# An LSTM layer has four gates (input, forget, cell, output). Each gate has a weight matrix for the
# layer's input ($H \times d_\text{in}$), one for the previous hidden state ($H \times H$), and a
# bias. PyTorch keeps **two** bias vectors (`bias_ih` and `bias_hh`, as cuDNN does); Keras keeps
# one. So a layer has $4\,(H d_\text{in} + H^2 + 2H)$ parameters in PyTorch and
# $4\,(H d_\text{in} + H^2 + H)$ in Keras.
#
# A common tutorial calls a Keras model with a 10,000-word vocabulary, 128-wide embeddings, two
# 256-wide LSTMs and a softmax over the vocabulary a "7B model", and its own summary prints
# 100,272,760 parameters; here is why both are wrong. Its PyTorch twin, counted layer by layer:

# %%
def lstm_params(d_in: int, d_hidden: int, biases: int = 2) -> int:
    return 4 * (d_hidden * d_in + d_hidden * d_hidden + biases * d_hidden)  # 4 gates


class TutorialLSTM(nn.Module):  # the tutorial's Keras model, layer for layer
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10_000, 128)  # Keras Embedding(10000, 128)
        self.lstm_1 = nn.LSTM(128, 256, batch_first=True)  # Keras LSTM(256)
        self.lstm_2 = nn.LSTM(256, 256, batch_first=True)  # Keras LSTM(256)
        self.head = nn.Linear(256, 10_000)  # Keras Dense(10000), softmax in the loss

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, T, 10000)
        h, _ = self.lstm_1(self.embedding(idx))
        h, _ = self.lstm_2(h)
        return self.head(h)


twin = TutorialLSTM()
formula = {"embedding": 10_000 * 128, "lstm_1": lstm_params(128, 256),
           "lstm_2": lstm_params(256, 256), "head": 256 * 10_000 + 10_000}
keras = {**formula, "lstm_1": lstm_params(128, 256, biases=1), "lstm_2": lstm_params(256, 256, biases=1)}
print(f"{'layer':<10}{'formula':>12}{'PyTorch numel':>15}{'Keras':>12}")
for name, layer in twin.named_children():
    numel = sum(p.numel() for p in layer.parameters())
    print(f"{name:<10}{formula[name]:>12,}{numel:>15,}{keras[name]:>12,}")
    assert numel == formula[name], name
total, total_keras = sum(p.numel() for p in twin.parameters()), sum(keras.values())
print(f"{'total':<10}{sum(formula.values()):>12,}{total:>15,}{total_keras:>12,}")
assert twin(torch.zeros(1, 5, dtype=torch.long)).shape == (1, 5, 10_000)
assert [n for n, _ in twin.lstm_1.named_parameters()] == ["weight_ih_l0", "weight_hh_l0",
                                                          "bias_ih_l0", "bias_hh_l0"]  # two biases
assert total == sum(formula.values()) and total_keras == total - 2 * 4 * 256  # one bias less per gate

# %% [markdown]
# About 4.8 million parameters, in both frameworks. The tutorial's summary figure is not what
# these layers hold, and "7B" is off by three orders of magnitude. A real 7B configuration —
# Llama-2-7B: 32 transformer layers 4,096 wide, counted by `llmcourse.scaling.count_params`
# (chapter 08) — for comparison:

# %%
llama_7b = count_params(**PRESETS["Llama-2-7B"])
d, d_ff, n_layer, vocab = 4096, 11008, 32, 32000
per_layer = 4 * d * d + 3 * d * d_ff + 2 * d  # attention q, k, v, o + SwiGLU MLP + two RMSNorms
print(f"tutorial's summary : {100_272_760:>13,}  ({100_272_760 / total_keras:.0f} x what its layers hold)")
print(f"its layers (Keras) : {total_keras:>13,}")
print(f"Llama-2-7B         : {llama_7b:>13,}  = {n_layer} layers x {per_layer:,} + embeddings and "
      f"head 2 x {vocab:,} x {d:,} + final norm {d:,}")
print(f"Llama-2-7B / the tutorial's model = {llama_7b / total_keras:,.0f}")
assert 100_272_760 not in (total, total_keras)
assert llama_7b == n_layer * per_layer + 2 * vocab * d + d == 6_738_415_616
assert llama_7b / total_keras > 1000

# %% [markdown]
# ### Gradient clipping
#
# Backpropagation through an LSTM multiplies gradients along every time step of the block, and
# some steps — here, the first few, while the model leaves its random start — get a gradient
# several times its usual size, sometimes far more: a **spike**. A step that large can undo many
# good ones.
# **Clipping by global norm** treats all gradients as one vector $g$ and, when its norm
# $\|g\| = \sqrt{\sum_p \|\nabla_p\|^2}$ exceeds a threshold $c$, rescales it:
# $g \leftarrow g \cdot c / \|g\|$. The direction is kept; only the length is capped. Written out,
# and checked against PyTorch's `clip_grad_norm_`:

# %%
def clip_grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    norm = torch.sqrt(sum((g**2).sum() for g in grads))  # one norm over all parameters
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)  # 1.0: a small gradient is left alone
    for g in grads:
        g.mul_(scale)
    return norm  # the norm before clipping, as PyTorch returns it


llmcourse.seed_everything(0)
probe = LSTMLanguageModel(V, d_embed=32, d_hidden=64)
xb, yb = get_batch(train_ids, 64, 16, generator=torch.Generator().manual_seed(0))
F.cross_entropy(probe(xb)[0].reshape(-1, V), yb.reshape(-1)).backward()
params = list(probe.parameters())
raw = [p.grad.clone() for p in params]
norm_ours = clip_grad_norm(params, max_norm=0.1)
ours = [p.grad.clone() for p in params]
for p, r in zip(params, raw):
    p.grad.copy_(r)
norm_torch = nn.utils.clip_grad_norm_(params, max_norm=0.1)
clipped = nn.utils.parameters_to_vector(ours)
diff = (clipped - nn.utils.parameters_to_vector([p.grad for p in params])).abs().max().item()

# %% tags=["nbval-ignore-output"]
print(f"norm before: ours {norm_ours:.4f}, PyTorch {norm_torch:.4f}; after clipping to 0.1: "
      f"{clipped.norm():.4f}; largest difference between the two clipped gradients: {diff:.1e}")

# %%
assert math.isclose(norm_ours.item(), norm_torch.item(), rel_tol=1e-5) and norm_ours > 0.1
assert math.isclose(clipped.norm().item(), 0.1, rel_tol=1e-4) and diff < 1e-7
cos = F.cosine_similarity(clipped, nn.utils.parameters_to_vector(raw), dim=0).item()
assert cos > 0.9999  # same direction

# %% [markdown]
# Now the real run. We record the global norm at every step — `clip_grad_norm_` returns it, before
# clipping — and clip at $c = 0.5$, a few times the norm of a typical step of this model: Pascanu et
# al. (2013), who introduced clipping for recurrent nets, set the threshold from the average norm
# seen in training. (GPT-style training usually clips at 1.0; this small LSTM's norms sit lower.)
# The run is a function, so that we can replay its beginning below.

# %%
d_hidden = prof.pick(ci=128, cpu=256, gpu=512)
steps = prof.pick(ci=400, cpu=1_200, gpu=3_000)
block, batch = prof.pick(ci=64, cpu=128, gpu=256), prof.pick(ci=16, cpu=32, gpu=64)
max_norm = 0.5


def train_lstm(n_steps: int):
    """The first ``n_steps`` of the same seeded run (of ``steps`` in all)."""
    llmcourse.seed_everything(0)
    model = LSTMLanguageModel(V, d_embed=32, d_hidden=d_hidden).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(0)
    losses, norms = [], []
    for _step in range(n_steps):
        xb, yb = get_batch(train_ids, block, batch, generator=g, device=device)
        logits, _ = model(xb)
        loss = F.cross_entropy(logits.reshape(-1, V), yb.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norms.append(nn.utils.clip_grad_norm_(model.parameters(), max_norm).item())  # before clipping
        opt.step()
        sched.step()
        losses.append(loss.item())
    return model, opt, g, losses, norms


t0 = time.perf_counter()
lstm, _, _, losses, grad_norms = train_lstm(steps)
train_seconds = time.perf_counter() - t0
norms = torch.tensor(grad_norms)
spike = int(norms.argmax())
assert sum(p.numel() for p in lstm.parameters()) == V * 32 + lstm_params(32, d_hidden) + d_hidden * V + V

# %% tags=["nbval-ignore-output"]
print(f"{steps} steps in {train_seconds:.0f} s; gradient norm: median {norms.median():.3f}, "
      f"largest {norms.max():.3f} at step {spike} ({norms.max() / norms.median():.1f} x the median); "
      f"clipped at steps {(norms > max_norm).nonzero().flatten().tolist()}")
fig = go.Figure(go.Scatter(y=grad_norms, mode="lines", name="‖g‖ before clipping"))
fig.add_hline(y=max_norm, line_dash="dash", annotation_text=f"c = {max_norm}")
fig.update_layout(title="LSTM: global gradient norm per step", xaxis_title="step",
                  yaxis_title="‖g‖", yaxis_type="log", height=300)
fig

# %%
assert norms.max() > 2.5 * norms.median()  # a spike, well above the typical step
assert norms.max() > max_norm and 1.5 < max_norm / norms.median() < 5  # c: a few times typical
assert norms.median() < 1.0
assert 0 < int((norms > max_norm).sum()) < 0.1 * steps  # clipping is rare: insurance, not the regime
assert spike < 0.05 * steps  # the spike comes in the first steps
assert len(fig.data) == 1 and len(fig.data[0].y) == steps

# %% [markdown]
# What does clipping do to the step? We replay the run up to its largest gradient and take that
# step twice, from the same state: once clipped, once not.

# %%
model_0, opt_0, g_0, _, norms_0 = train_lstm(spike)  # the state just before the spike
xb, yb = get_batch(train_ids, block, batch, generator=g_0, device=device)  # the spike's batch
step = {}
for c in (math.inf, max_norm):
    model_c, opt_c = copy.deepcopy((model_0, opt_0))  # one copy: the optimizer keeps its parameters
    before = nn.utils.parameters_to_vector(model_c.parameters()).detach().clone()
    logits, _ = model_c(xb)
    F.cross_entropy(logits.reshape(-1, V), yb.reshape(-1)).backward()
    norm = nn.utils.clip_grad_norm_(model_c.parameters(), c).item()
    grad = nn.utils.parameters_to_vector([p.grad for p in model_c.parameters()]).detach().clone()
    opt_c.step()
    step[c] = dict(norm=norm, grad=grad,
                   update=nn.utils.parameters_to_vector(model_c.parameters()).detach() - before)
free, capped = step[math.inf], step[max_norm]
grad_shrink = (capped["grad"].norm() / free["grad"].norm()).item()
adam_shrink = (capped["update"].norm() / free["update"].norm()).item()
adam_cos = F.cosine_similarity(capped["update"], free["update"], dim=0).item()

# %% tags=["nbval-ignore-output"]
print(f"step {spike}: ‖g‖ = {free['norm']:.3f}, clipped to {capped['grad'].norm():.3f} "
      f"(x {grad_shrink:.2f}); plain SGD's step, -lr·g, would shrink by that same factor")
print(f"AdamW's step: ‖Δθ‖ = {free['update'].norm():.4f} unclipped, {capped['update'].norm():.4f} "
      f"clipped (x {adam_shrink:.3f}), cosine between the two {adam_cos:.3f}")

# %%
assert all(math.isclose(a, b, rel_tol=1e-3) for a, b in zip(norms_0, grad_norms))  # a true replay
assert math.isclose(free["norm"], grad_norms[spike], rel_tol=1e-3)
assert math.isclose(grad_shrink, max_norm / free["norm"], rel_tol=1e-4) and grad_shrink < 0.9
assert F.cosine_similarity(capped["grad"], free["grad"], dim=0) > 0.9999  # direction kept
assert abs(1 - adam_shrink) < 1 - grad_shrink  # Adam's step changes less than SGD's would

# %% [markdown]
# Clipping keeps the direction and caps the length of the *gradient*. With plain SGD the step is
# proportional to the gradient, so it shrinks by the same factor. AdamW divides each coordinate by
# a running root-mean-square of past gradients, which the spike inflates too, so Adam already damps
# it: its step changes far less. Clipping is cheap insurance against the rare batch that Adam's
# averages cannot absorb, which is why GPT-style training keeps it on.
#
# ### Every model on the same test text
#
# Now, once, the test split. Every model predicts exactly the same tokens — all tokens of a split
# after its first k, the context the MLP needs; the LSTM reads the split as one stream, carrying
# its state, as it would in use. The validation column is there to compare: a choice made on
# validation should carry over to text no choice has seen.

# %%
@torch.no_grad()
def split_nll(ids: torch.Tensor) -> dict[str, float]:
    """Mean NLL of every model on ``ids[k:]``: the same targets for all."""
    targets = ids[k:]
    nll = {"uniform": math.log(V)}
    for order, name in ((1, "unigram"), (2, "bigram"), (3, "trigram")):
        lm = NGramLM(order, V, alpha=best_alpha[order]).fit(train_ids)
        assert len(lm.log_probs(ids[k - order + 1:])) == len(targets)
        nll[f"{name} (α = {best_alpha[order]})"] = lm.nll(ids[k - order + 1:])
    x_ctx, y_next = windows(ids, k)
    assert torch.equal(y_next, targets)
    nll[f"MLP (k = {k})"] = F.cross_entropy(mlp(x_ctx.to(device)), y_next.to(device)).item()
    lstm.eval()
    logits, _ = lstm(ids[None, :-1].to(device))  # logits[0, t] predicts ids[t + 1]
    lstm.train()
    nll["LSTM"] = F.cross_entropy(logits[0, k - 1:], targets.to(device)).item()
    return nll


val_ppl_all = {name: math.exp(v) for name, v in split_nll(val_ids).items()}
test_ppl = {name: math.exp(v) for name, v in split_nll(test_ids).items()}
names = list(test_ppl)
uni_ppl, bi_ppl, tri_ppl, mlp_ppl, lstm_ppl = (test_ppl[n] for n in names[1:])

# %% tags=["nbval-ignore-output"]
print(f"{'':<22}{'validation':>11}{'test':>9}   perplexity (test nats/char)")
for name in names:
    print(f"{name:<22}{val_ppl_all[name]:>11.2f}{test_ppl[name]:>9.2f}   ({math.log(test_ppl[name]):.3f})")
fig = go.Figure(go.Bar(x=names, y=list(test_ppl.values()),
                       text=[f"{p:.2f}" for p in test_ppl.values()], textposition="outside"))
fig.update_layout(title=f"test perplexity on {len(test_ids) - k:,} characters (lower is better)",
                  yaxis_type="log", yaxis_title="test perplexity", height=360)
fig

# %%
for ppl in (val_ppl_all, test_ppl):  # the same verdicts on both splits
    uni, bi, tri, mlp_, lstm_ = (ppl[n] for n in names[1:])
    assert tri < bi < uni < V  # more context helps the count models
    assert mlp_ < bi and mlp_ < tri  # the MLP beats the best count model ...
    assert lstm_ < tri  # ... and so does the LSTM
    if prof.name != "ci":  # trained longer, the LSTM's whole-prefix context pays off
        assert lstm_ < mlp_
assert len(fig.data[0].x) == 6 and list(fig.data[0].y) == list(test_ppl.values())

# %% [markdown]
# Both neural models beat the best count model. The MLP gets most of the way with only k characters
# of context — embeddings let it use contexts the trigram never counted. The LSTM reads everything
# before the token; whether that puts it ahead of the MLP depends on its size and training time:
# after the `ci` profile's few seconds of training the two are close (and their order can differ
# between validation and test), while under the `cpu` profile the LSTM is clearly ahead — the
# check above asserts that only for the larger profiles.

# %% [markdown]
# ## Try it: next-token distributions, side by side
#
# Type a prefix: the bars show the ten most likely next characters under the bigram (which only
# sees the last character) and the LSTM (which reads the whole prefix). After `"def "` the bigram
# sees only a space and guesses another space (indentation makes runs of spaces common in this
# text); after `"retur"` only the LSTM, which has read the whole word so far, knows an `n` comes
# next.

# %%
from llmcourse.widgets import NextTokenWidget, show_token


def bigram_next(prefix: str) -> torch.Tensor:
    return bigram.probs(tok.encode(prefix[-1:] or "\n"))


@torch.no_grad()
def lstm_next(prefix: str) -> torch.Tensor:
    ids = torch.tensor([tok.encode(prefix or "\n")], device=device)
    logits, _ = lstm(ids)
    return F.softmax(logits[0, -1].double().cpu(), dim=-1)


explorer = NextTokenWidget({"bigram": bigram_next, "LSTM": lstm_next}, tok.itos,
                           top_k=10, prefix="The value of the ")
explorer.box

# %% [markdown]
# The widget is driven from code too — here is what it shows for `"def "` and `"retur"`:

# %%
after_def = explorer.update("def ")
print(f"after 'def ': the bigram's top guess is {after_def['bigram'][0][0]!r}, "
      f"the LSTM's {after_def['LSTM'][0][0]!r}")
assert after_def["bigram"][0][0] == " "  # it sees one space, and spaces come in runs (indentation)
top = explorer.update("retur")
print("bigram's top guess:", repr(top["bigram"][0][0]), "| LSTM's top guess:", repr(top["LSTM"][0][0]))
assert [list(t.x) for t in explorer.fig.data] == [[show_token(c) for c, _ in top[m]] for m in ("bigram", "LSTM")]
assert abs(sum(explorer.fig.data[0].y) - sum(p for _, p in top["bigram"])) < 1e-9
assert top["LSTM"][0][0] == "n" and top["bigram"][0][0] != "n"

# %% [markdown]
# ## Autoregressive vs autoencoding objectives
#
# Everything above is **autoregressive** (causal) language modelling, as in GPT: predict token $t$
# from tokens $< t$; the loss is the cross-entropy at *every* position. **Autoencoding** (masked)
# language modelling, as in BERT, hides some tokens (15 %) and predicts them from *both sides*; the
# loss is taken **only at the masked positions**.
#
# Both objectives can be written with the same `F.cross_entropy`: the label of every position the
# loss must ignore is set to **`-100`** (`ignore_index`'s default in PyTorch and the convention in
# Hugging Face). Counts give us a tiny masked model for free: predict a hidden character from its
# left *and* right neighbours with trigram counts, $P(b \mid a, \cdot, c) \propto \text{count}(a, b, c)$.

# %%
tri_counts = NGramLM(3, V, alpha=0.0).fit(train_ids).counts.view(V, V, V)  # [a, b, c] = count(a b c)
gm = torch.Generator().manual_seed(0)
ids = val_ids[:2000].clone()
mask = torch.rand(len(ids), generator=gm) < 0.15
mask[0] = mask[-1] = False  # keep both neighbours of every masked position
mask[1:] &= ~mask[:-1]  # no two masked positions side by side
labels = torch.where(mask, ids, torch.full_like(ids, -100))  # -100: no loss here
inputs = ids.clone()
inputs[mask] = V  # a [MASK] id outside the vocabulary: what a masked LM reads
assert (inputs[mask] == V).all() and torch.equal(inputs[~mask], ids[~mask])

pos = mask.nonzero()[:, 0]
left, right = ids[pos - 1], ids[pos + 1]
# autoencoding: both sides -> P(b | a, c) ∝ count(a, b, c) (+ smoothing)
both = tri_counts[left, :, right] + 0.1  # (n_masked, V): over the middle character b
log_p_both = torch.log(both / both.sum(-1, keepdim=True))
# causal: left side only (the bigram)
log_p_left = torch.log(bigram.prob_table()[left])

logits_both = torch.zeros(len(ids), V, dtype=torch.float64)
logits_both[pos] = log_p_both  # unmasked rows hold junk: their label -100 keeps them out
loss_masked = F.cross_entropy(logits_both, labels)  # ignore_index=-100 by default
manual = -log_p_both.gather(1, ids[pos][:, None]).mean()
acc_both = (log_p_both.argmax(-1) == ids[pos]).float().mean().item()
acc_left = (log_p_left.argmax(-1) == ids[pos]).float().mean().item()

# %% tags=["nbval-ignore-output"]
print(f"masked positions: {int(mask.sum())} of {len(ids)}\n"
      f"F.cross_entropy with -100 labels: {loss_masked.item():.6f} nats\n"
      f"mean over the masked positions  : {manual.item():.6f} nats")
print(f"accuracy on masked characters: both neighbours {acc_both:.0%}, left neighbour only {acc_left:.0%}")

# %%
assert torch.allclose(loss_masked, manual)  # the -100 positions are left out of the mean
assert 0.1 * len(ids) < int(mask.sum()) < 0.15 * len(ids)
assert acc_both > acc_left + 0.1  # seeing both sides is a much easier task ...

# %% [markdown]
# Seeing both sides makes the masked task much easier — that is why encoders like BERT make good
# *representations* of text. But a masked model cannot *generate* text left to right, and it learns
# from only 15 % of positions per pass; a causal model learns from every position and generates
# naturally, which is why GPT-style models won for generation.

# %% [markdown]
# **A common tutorial error, with Hugging Face's `BertForMaskedLM`.** A tutorial passes
# `labels=input_ids` (the unmasked text) and calls `optimizer.step()` without ever creating an
# optimizer. Both are wrong. With `labels=input_ids` the loss is taken at *every* position,
# most of which the model can read in its own input: it mostly learns to copy. The labels must
# be the original token at the masked positions and `-100` everywhere else. A tiny BERT
# (random weights, our characters as its vocabulary) shows the two losses differ:

# %%
from transformers import BertConfig, BertForMaskedLM

torch.manual_seed(0)
bert = BertForMaskedLM(BertConfig(vocab_size=V + 1, hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64,
                                  max_position_embeddings=len(ids))).eval()  # eval: no dropout
bert_in = inputs[None]  # (1, T): the text with [MASK] (id V) at the masked positions
with torch.no_grad():
    loss_right = bert(input_ids=bert_in, labels=labels[None]).loss  # masked positions only
    loss_wrong = bert(input_ids=bert_in, labels=ids[None]).loss  # every position: the tutorial's
    logits_b = bert(input_ids=bert_in).logits[0]  # (T, V + 1)
by_hand = F.cross_entropy(logits_b[mask], ids[mask])
everywhere = F.cross_entropy(logits_b, ids)
print(f"labels -100 except the masked positions: {loss_right.item():.4f} nats "
      f"(by hand over {int(mask.sum())} positions: {by_hand.item():.4f})")
print(f"labels = the unmasked text:             {loss_wrong.item():.4f} nats "
      f"(by hand over all {len(ids)} positions: {everywhere.item():.4f})")

# %%
assert torch.allclose(loss_right, by_hand, atol=1e-6)  # HF's loss is ours on the masked positions
assert torch.allclose(loss_wrong, everywhere, atol=1e-6)  # ... and the tutorial's is over all

# %% [markdown]
# At random weights both read about $\ln V$; the difference is what they *train* and what the
# number means. Train two copies for 150 steps on random windows of the training text, masked
# afresh each step, one with each labelling, then measure both on the held-out text above — at
# its masked positions, the only ones a masked LM is for, and at the visible ones:

# %% tags=["nbval-ignore-output"]
def train_bert(all_positions: bool, steps: int = 150) -> BertForMaskedLM:
    m = copy.deepcopy(bert).train()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        start = torch.randint(0, len(train_ids) - 256, (8,), generator=g)
        x = torch.stack([train_ids[i:i + 256] for i in start.tolist()])  # (8, 256)
        m_ = torch.rand(x.shape, generator=g) < 0.15
        y = x if all_positions else torch.where(m_, x, torch.full_like(x, -100))
        opt.zero_grad(set_to_none=True)
        m(input_ids=torch.where(m_, torch.full_like(x, V), x), labels=y).loss.backward()
        opt.step()
    return m.eval()


trained = {"labels -100 elsewhere": train_bert(False), "labels = the text": train_bert(True)}
masked_loss, copy_loss = {}, {}
with torch.no_grad():
    for name, m in trained.items():
        lg = m(input_ids=bert_in).logits[0]  # the held-out text, [MASK] at 249 positions
        masked_loss[name] = F.cross_entropy(lg[mask], ids[mask]).item()
        copy_loss[name] = F.cross_entropy(lg[~mask], ids[~mask]).item()
        print(f"{name:<22} held-out loss at masked positions {masked_loss[name]:.3f}, "
              f"at visible ones {copy_loss[name]:.3f}")

# %%
assert copy_loss["labels = the text"] < copy_loss["labels -100 elsewhere"]  # it learned to copy
# ... so the loss the tutorial reports, over all positions, is mostly copying: far below the
# loss on the masked positions that the masked-LM task is about
assert copy_loss["labels = the text"] < 0.5 * masked_loss["labels = the text"]

# %% [markdown]
# The tutorial's model learns to copy the visible tokens (their loss falls far below the masked
# ones'), and its reported loss — over every position, 85 % of them visible — says little about
# the masked task it was meant to learn. With `-100` everywhere but the masked positions, the
# loss is exactly the masked task's.

# %% [markdown]
# And the optimizer must exist before `optimizer.step()`: the step updates the parameters *it*
# was given when it was created. Without one, the tutorial's cell fails:

# %% tags=["raises-exception"]
loss_b = bert(input_ids=bert_in, labels=labels[None]).loss
loss_b.backward()
tutorial_optimizer.step()  # noqa: F821 - never created: NameError

# %%
optimizer = torch.optim.AdamW(bert.parameters(), lr=1e-3)  # first the optimizer, on the model
before = bert.cls.predictions.transform.dense.weight.detach().clone()
optimizer.step()  # uses the gradients of the backward above
moved = (bert.cls.predictions.transform.dense.weight - before).abs().max().item()
print(f"after optimizer.step(): a weight moved by up to {moved:.2e}")
assert moved > 0
#
# ## Exercises
#
# **1. Bigram counts.** Write `bigram_counts(ids, vocab_size)` returning a `(V, V)` tensor where
# `counts[a, b]` is how often token `b` follows token `a` in the list `ids`.

# %%
from llmcourse.exercises.language_models import check_bigram_counts, check_perplexity


def bigram_counts(ids: list[int], vocab_size: int) -> torch.Tensor:
    raise NotImplementedError  # your code here


check_bigram_counts(bigram_counts)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Pair each token with its successor (`zip(ids, ids[1:])`) and count — or, vectorised, index the
# flat `a * V + b` into `torch.bincount` as `NGramLM` does.
# </details>

# %% jupyter={"source_hidden": true}
def bigram_counts_solution(ids: list[int], vocab_size: int) -> torch.Tensor:
    t = torch.tensor(ids, dtype=torch.long)
    flat = t[:-1] * vocab_size + t[1:]
    return torch.bincount(flat, minlength=vocab_size * vocab_size).view(vocab_size, vocab_size)


assert check_bigram_counts(bigram_counts_solution)
assert torch.equal(bigram_counts_solution(train_ids.tolist(), V), bigram_raw.counts.long())

# %% [markdown]
# A common slip — counting `(b, a)` instead of `(a, b)` — is caught:

# %%
assert not check_bigram_counts(lambda ids, V: bigram_counts_solution(ids, V).T)

# %% [markdown]
# **2. Perplexity.** Write `perplexity(logits, targets)`: `logits` is `(N, V)`, `targets` is `(N,)`;
# return $\exp$ of the mean negative log-probability of the targets, as a float.

# %%
def perplexity(logits: torch.Tensor, targets: torch.Tensor) -> float:
    raise NotImplementedError  # your code here


check_perplexity(perplexity)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Use `log_softmax` (stable for large logits), pick each row's target, average, negate, exponentiate.
# </details>

# %% jupyter={"source_hidden": true}
def perplexity_solution(logits: torch.Tensor, targets: torch.Tensor) -> float:
    logp = F.log_softmax(logits, dim=-1)
    return math.exp(-logp[torch.arange(len(targets)), targets].mean().item())


assert check_perplexity(perplexity_solution)

# %%
assert not check_perplexity(lambda logits, targets: F.cross_entropy(logits, targets).item())  # forgot exp

# %% [markdown]
# ## Summary
#
# - A language model is $P(x_t \mid x_{<t})$; the chain rule turns it into a probability of any text.
# - Count models are language models; smoothing keeps unseen events from getting probability zero.
#   Its α is a choice, made on a validation split; the numbers we report come from a test split
#   that no choice has seen.
# - A neural bigram trained with cross-entropy converges to the counts. Bengio's MLP language model
#   — k embeddings concatenated, a `tanh` layer, a softmax — grows linearly with its context, not
#   as $V^k$, and beats the trigram on the test split; the LSTM, which reads the whole prefix, does
#   too.
# - An LSTM with a 10,000-word vocabulary and two 256-wide layers has 4.8 million parameters
#   (PyTorch counts two bias vectors per gate set, Keras one) — a 7B model is 1,400 times larger.
# - Gradient clipping rescales the whole gradient to norm $c$ when it is larger; it keeps the
#   direction. A measured spike shows it changes SGD's step by the full factor and Adam's much less.
# - Text reaches a tensor only as ids, through a tokenizer.
# - Causal LMs predict every next token; masked LMs predict hidden tokens from both sides, with
#   `-100` labels excluding all other positions from the loss.
#
# Next: **02 · Tokens and embeddings** — better tokens than characters, and how ids become vectors.
