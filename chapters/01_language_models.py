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
# - count models (bigram, trigram), why they need smoothing, how to sample from them, and how
#   *perplexity* on held-out text measures them;
# - the same bigram as a tiny neural network trained with cross-entropy — it lands on the counts;
# - an LSTM language model in PyTorch that beats the bigram;
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
import math
import time

import plotly.graph_objects as go
import torch
import torch.nn as nn
import torch.nn.functional as F

import llmcourse
from llmcourse.data import load_corpus, train_val_split
from llmcourse.data.batching import get_batch, make_blocks
from llmcourse.ngram import NGramLM
from llmcourse.tokenizers import CharTokenizer

device, prof = llmcourse.setup(seed=0)
print(llmcourse.env_report())

# %% [markdown]
# ## Text as a sequence of tokens
#
# A language model works on *tokens*. In this chapter a token is one character (chapter 02 builds
# better ones). Our corpus is the Python language reference, which ships with Python; the profile
# decides how much of it we use. The last 10 % is held out: text the models never train on.

# %%
text = load_corpus("python-reference")[: prof.corpus_chars]
tok = CharTokenizer.train(text)
V = tok.vocab_size
train_text, val_text = train_val_split(text, val_fraction=0.1)
train_ids = torch.tensor(tok.encode(train_text))
val_ids = torch.tensor(tok.encode(val_text))
ids = tok.encode("def f(x):")
print(f"{len(ids)} tokens:", tok.tokens("def f(x):"), "->", repr(tok.decode(ids)))
assert tok.decode(tok.encode(val_text)) == val_text

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
# than the same letters reversed:

# %%
def sentence_logprob(lm: NGramLM, sentence: str) -> float:
    ids = tok.encode(sentence)
    return sum(math.log(lm.probs(ids[:t])[ids[t]]) for t in range(1, len(ids)))  # chain rule


smoothed = NGramLM(2, V, alpha=0.1).fit(train_ids)
s_fwd, s_rev = "the value of the object", "the value of the object"[::-1]
lp_fwd, lp_rev = sentence_logprob(smoothed, s_fwd), sentence_logprob(smoothed, s_rev)
print(f"log P({s_fwd!r}) > log P({s_rev!r}): {lp_fwd > lp_rev}")
assert lp_fwd > lp_rev + 5
assert math.isclose(lp_fwd, float(smoothed.log_probs(tok.encode(s_fwd)).sum()), rel_tol=1e-9)

# %% [markdown]
# ### Smoothing
#
# With raw counts, a pair that never occurred in training has probability **zero**, and a single
# such pair in the held-out text makes its perplexity infinite. *Add-α smoothing* pretends every
# pair was seen α extra times: $P(b \mid a) = (\text{count}(a,b) + α) / (\text{count}(a) + αV)$.
# More context (trigram) fits better but sees more unseen combinations, so it needs smoothing more.

# %% tags=["nbval-ignore-output"]
results = {}
for order in (1, 2, 3):
    for alpha in (0.0, 0.01, 0.1, 1.0):
        lm = NGramLM(order, V, alpha=alpha).fit(train_ids)
        results[order, alpha] = (lm.nll(train_ids), lm.perplexity(val_ids))
        print(f"order {order}  alpha {alpha:<5}  train nll {results[order, alpha][0]:.3f}  "
              f"held-out perplexity {results[order, alpha][1]:.2f}")

# %%
assert math.isinf(results[2, 0.0][1]) and math.isinf(results[3, 0.0][1])  # unsmoothed: infinite
assert results[3, 0.1][1] < results[2, 0.1][1] < results[1, 0.1][1] < V  # more context helps
assert results[3, 1.0][1] > results[3, 0.1][1]  # too much smoothing hurts the trigram
bigram = NGramLM(2, V, alpha=0.1).fit(train_ids)
trigram = NGramLM(3, V, alpha=0.1).fit(train_ids)
bigram_ppl = bigram.perplexity(val_ids)

# %% [markdown]
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

# %%
with torch.no_grad():
    p_neural = F.softmax(emb.weight, dim=-1)
seen = counts.sum(1) > 100  # rows with enough data to pin the estimate down
gap = (p_neural[seen] - bigram_raw.prob_table()[seen].float()).abs().max().item()
print(f"largest gap between neural and count probabilities: below 0.01? {gap < 0.01}")
assert gap < 0.01

# %% [markdown]
# ## An LSTM language model
#
# The bigram forgets everything but the last character. A recurrent network carries a state
# along the sequence. The classic PyTorch recipe is `Embedding → LSTM → Linear`; two details matter:
# `batch_first=True` (tensors are `(batch, time, features)`), and targets are the inputs **shifted
# by one** — exactly what `llmcourse.data.get_batch` returns.

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

# %%
torch.manual_seed(0)
d_hidden = prof.pick(ci=128, cpu=256, gpu=512)
steps = prof.pick(ci=150, cpu=1_500, gpu=3_000)
block, batch = prof.pick(ci=64, cpu=128, gpu=256), prof.pick(ci=16, cpu=32, gpu=64)
lstm = LSTMLanguageModel(V, d_embed=32, d_hidden=d_hidden).to(device)
opt = torch.optim.AdamW(lstm.parameters(), lr=1e-2)
g = torch.Generator().manual_seed(0)
losses, t0 = [], time.perf_counter()
for _step in range(steps):
    xb, yb = get_batch(train_ids, block, batch, generator=g, device=device)
    logits, _ = lstm(xb)
    loss = F.cross_entropy(logits.reshape(-1, V), yb.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(lstm.parameters(), 1.0)
    opt.step()
    losses.append(loss.item())
train_seconds = time.perf_counter() - t0


@torch.no_grad()
def lstm_nll(ids: torch.Tensor, block_size: int = 256) -> float:
    """Mean next-token NLL over every position of ``ids`` (consecutive blocks, fresh state each)."""
    lstm.eval()
    xv, yv = make_blocks(ids, block_size, device=device)
    logits, _ = lstm(xv)
    lstm.train()
    return F.cross_entropy(logits.reshape(-1, V), yv.reshape(-1)).item()


lstm_ppl = math.exp(lstm_nll(val_ids))

# %% tags=["nbval-ignore-output"]
print(f"{steps} steps in {train_seconds:.0f} s; held-out perplexity: LSTM {lstm_ppl:.2f}, "
      f"bigram {bigram_ppl:.2f}, trigram {trigram.perplexity(val_ids):.2f}")
go.Figure(go.Scatter(y=losses, mode="lines")).update_layout(
    title="LSTM training loss", xaxis_title="step", yaxis_title="nats/char", height=300)

# %%
assert lstm_ppl < bigram_ppl, (lstm_ppl, bigram_ppl)
assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10

# %% [markdown]
# ## Try it: next-token distributions, side by side
#
# Type a prefix: the bars show the ten most likely next characters under the bigram (which only
# sees the last character) and the LSTM (which reads the whole prefix). After `"def "` the bigram
# sees only a space and guesses another space (indentation makes runs of spaces common in this
# text), while the LSTM, which has read `def`, expects the letter that starts a function name;
# after `"retur"` only the LSTM knows an `n` comes next.

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
# The widget is driven from code too — here is what it shows for `"retur"`:

# %%
after_def = explorer.update("def ")
print("after 'def ': the bigram's top guess is", repr(after_def["bigram"][0][0]))
assert after_def["bigram"][0][0] == " "  # it sees one space, and spaces come in runs (indentation)
assert after_def["LSTM"][0][0].isalpha()  # it has read "def": a function name starts
top = explorer.update("retur")
print("bigram's top guess:", repr(top["bigram"][0][0]), "| LSTM's top guess:", repr(top["LSTM"][0][0]))
assert [list(t.x) for t in explorer.fig.data] == [[show_token(c) for c, _ in top[m]] for m in ("bigram", "LSTM")]
assert abs(sum(explorer.fig.data[0].y) - sum(p for _, p in top["bigram"])) < 1e-9
assert top["LSTM"][0][0] == "n"

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
print(f"masked positions: {int(mask.sum())} of {len(ids)}; loss averages over exactly those: "
      f"{torch.allclose(loss_masked, manual)}")
assert torch.allclose(loss_masked, manual)

acc_both = (log_p_both.argmax(-1) == ids[pos]).float().mean().item()
acc_left = (log_p_left.argmax(-1) == ids[pos]).float().mean().item()

# %% tags=["nbval-ignore-output"]
print(f"accuracy on masked characters: both neighbours {acc_both:.0%}, left neighbour only {acc_left:.0%}")

# %%
assert acc_both > acc_left + 0.1  # seeing both sides is a much easier task ...

# %% [markdown]
# Seeing both sides makes the masked task much easier — that is why encoders like BERT make good
# *representations* of text. But a masked model cannot *generate* text left to right, and it learns
# from only 15 % of positions per pass; a causal model learns from every position and generates
# naturally, which is why GPT-style models won for generation.
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
# - Count models are language models; smoothing keeps unseen events from getting probability zero;
#   held-out perplexity compares models fairly.
# - A neural bigram trained with cross-entropy converges to the counts; an LSTM that reads the whole
#   prefix beats the bigram's held-out perplexity after a few seconds of training.
# - Causal LMs predict every next token; masked LMs predict hidden tokens from both sides, with
#   `-100` labels excluding all other positions from the loss.
#
# Next: **02 · Tokens and embeddings** — better tokens than characters, and how ids become vectors.
