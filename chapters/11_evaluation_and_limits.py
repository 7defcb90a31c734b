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
# # 11 · Evaluation and limits
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/11_evaluation_and_limits.ipynb)
#
# **What you will learn**
# - accuracy, precision, recall, F1 and the confusion matrix, from scratch, equal to scikit-learn;
# - perplexity done right on long text (a sliding window), and BLEU equal to sacrebleu;
# - calibration: are a model's probabilities honest? (reliability diagram, ECE, temperature
#   scaling);
# - how LLMs are benchmarked: multiple choice by log-likelihood (`acc`, `acc_norm`) equal to
#   lm-evaluation-harness, pass@k, and how to test an LLM judge (agreement, position bias,
#   self-preference);
# - the limits: contamination and overfitting to the validation set, a bias probe on real
#   embeddings, memorised training strings, and why attention maps are not explanations.
#
# **Prerequisites:** chapters 01 (perplexity), 04 (our GPT), 09 (the docstring data set),
# 10 (pass@k).

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
# ## A classifier to evaluate
#
# We need real predictions. Chapter 09's data set asks: from which family of the standard library
# (text, math, files, network, concurrency, data formats) does a docstring come? A TF-IDF
# bag of words with logistic regression trains in a second, and gives us labels *and*
# probabilities. Its data card first:

# %% tags=["nbval-ignore-output"]
import numpy as np
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from llmcourse import evaluate as ev
from llmcourse.finetune import load_text_classification

ds = load_text_classification("stdlib-families")  # online: "sst2" or "imdb", online=True
print(ds.describe())

# %%
vec = TfidfVectorizer(sublinear_tf=True)
Xtr, Xval, Xte = (vec.fit_transform(ds.texts("train")), vec.transform(ds.texts("val")),
                  vec.transform(ds.texts("test")))
ytr, yval, yte = ds.targets("train"), ds.targets("val"), ds.targets("test")
clf = LogisticRegression(C=10, max_iter=3000).fit(Xtr, ytr)
pred, probs = clf.predict(Xte).tolist(), torch.tensor(clf.predict_proba(Xte))
assert len(ds.labels) == 6 and sum(len(v) for v in ds.splits.values()) >= 1000

# %% [markdown]
# ## Metrics from scratch
#
# With a confusion matrix `C[true, predicted]`, everything else is counting: the diagonal holds
# true positives; a column's other cells are false positives, a row's are false negatives.
# *Macro* averages per-class scores (every class counts the same, the small ones too); *micro*
# pools the counts (for single-label tasks micro-F1 is just accuracy).

# %%
from sklearn import metrics as skm

C = ev.confusion_matrix(yte, pred, num_labels=len(ds.labels))
assert torch.equal(C, torch.tensor(skm.confusion_matrix(yte, pred)))
assert ev.accuracy(yte, pred) == skm.accuracy_score(yte, pred)
for avg in ("macro", "micro"):
    ours = ev.precision_recall_f1(yte, pred, average=avg)
    ref = skm.precision_recall_fscore_support(yte, pred, average=avg, zero_division=0)[:3]
    assert np.allclose(ours, ref, atol=1e-12), (avg, ours, ref)
print("confusion matrix, accuracy, P/R/F1 (macro, micro): equal to scikit-learn")

# %% tags=["nbval-ignore-output"]
acc = ev.accuracy(yte, pred)
p, r, f1 = ev.precision_recall_f1(yte, pred)
print(f"test accuracy {acc:.3f}, macro precision {p:.3f}, recall {r:.3f}, F1 {f1:.3f}")
print("rows = true, columns = predicted:", ds.labels)
print(C)

# %%
assert 0.6 < acc < 0.95  # informative, but far from perfect: a bag of words misses meaning

# %% [markdown]
# ## Calibration: are the probabilities honest?
#
# A model is *calibrated* when, among the predictions it makes with confidence 0.8, about 80 %
# are right. The reliability diagram bins predictions by confidence and plots accuracy against
# confidence; the expected calibration error (ECE) is the gap, weighted by how many predictions
# fall in each bin.

# %%
import plotly.graph_objects as go

bins = ev.reliability_bins(probs, yte, n_bins=10)
ece = ev.expected_calibration_error(probs, yte, n_bins=10)
keep = bins["count"] > 0
centers = (bins["edges"][:-1] + bins["edges"][1:]) / 2
fig = go.Figure([
    go.Bar(x=centers[keep].tolist(), y=bins["accuracy"][keep].tolist(), width=0.09,
           name="accuracy in bin"),
    go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
               line=dict(dash="dash")),
])
fig.update_layout(title="Reliability diagram (TF-IDF + logistic regression, test split)",
                  xaxis_title="confidence", yaxis_title="accuracy", height=350, width=600)
assert abs(float(bins["count"].sum()) - len(yte)) < 1e-9 and 0 <= ece <= 1
fig

# %% tags=["nbval-ignore-output"]
confidence = float(probs.max(1).values.mean())
gaps = (bins["accuracy"] - bins["confidence"])[keep]  # per non-empty bin
print(f"ECE = {ece:.3f}; mean confidence {confidence:.3f}, accuracy {acc:.3f}")
print("accuracy − confidence per bin:", [round(float(v), 2) for v in gaps])

# %%
assert confidence < acc  # on average the model is right more often than it says
assert int((gaps > 0).sum()) > len(gaps) / 2  # ... and in most bins
print("under-confident: the bars stand above the diagonal")

# %% [markdown]
# This classifier is **under-confident**: its bars stand above the diagonal — in most bins,
# more of its predictions are right than their confidence says. Models can err either way;
# large neural networks more often err the other way (Guo et al. (2017) found modern deep
# classifiers *over*-confident), which is why the reliability diagram, not a rule of thumb,
# decides.
#
# Calibration is a property of the probabilities, not of the accuracy: a model that is always
# 100 % sure is badly calibrated whenever it is wrong. Check:

# %%
always_certain = torch.nn.functional.one_hot(torch.tensor(pred), len(ds.labels)).double()
ece_certain = ev.expected_calibration_error(always_certain, yte)
assert ece_certain > ece and abs(ece_certain - (1 - acc)) < 1e-6
print("always-certain copy of the same predictions: ECE = 1 − accuracy, worse than the model's")

# %% [markdown]
# ### Temperature scaling
#
# The simplest fix keeps the model and rescales its logits $z$ by one number $T$:
# $p = \mathrm{softmax}(z / T)$. $T < 1$ sharpens the probabilities (for an under-confident
# model), $T > 1$ softens them; the argmax, hence the accuracy, never changes. $T$ is fitted on
# the **validation** split by minimising the negative log-likelihood
# $\mathrm{NLL}(T) = -\frac{1}{N}\sum_i \log \mathrm{softmax}(z_i / T)_{y_i}$ (Guo et al.,
# 2017), and judged on the **test** split. We optimise $\log T$ (so $T$ stays positive) with
# L-BFGS; the package's `fit_temperature` uses a golden-section search instead: two methods,
# one minimum. For a logistic regression the logits are `decision_function`.

# %%
import torch.nn.functional as F

z_val = torch.tensor(clf.decision_function(Xval))  # (N, 6) logits
z_test = torch.tensor(clf.decision_function(Xte))
assert torch.allclose(z_test.softmax(1), probs, atol=1e-12)  # the model's probabilities
y_val = torch.tensor(yval)

log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)  # T = exp(log_t), starts at 1
lbfgs = torch.optim.LBFGS([log_t], lr=1, max_iter=100, tolerance_grad=1e-12,
                          line_search_fn="strong_wolfe")


def closure():
    lbfgs.zero_grad()
    loss = F.cross_entropy(z_val / log_t.exp(), y_val)  # validation NLL at this temperature
    loss.backward()
    return loss


lbfgs.step(closure)
T_fit = float(log_t.detach().exp())
assert abs(T_fit - ev.fit_temperature(z_val, yval)) < 1e-5  # the package agrees
probs_scaled = (z_test / T_fit).softmax(1)
before = {"ECE": ece, "NLL": ev.temperature_nll(z_test, yte)}
after = {"ECE": ev.expected_calibration_error(probs_scaled, yte),
         "NLL": ev.temperature_nll(z_test, yte, T_fit)}

# %% tags=["nbval-ignore-output"]
print(f"T fitted on validation: {T_fit:.3f}")
for name, res in (("before", before), ("after", after)):
    print(f"test split, {name:>6}: ECE {res['ECE']:.3f}, NLL {res['NLL']:.4f}")
print(f"mean confidence {confidence:.3f} -> {float(probs_scaled.max(1).values.mean()):.3f}, "
      f"accuracy {acc:.3f}")

# %%
assert T_fit < 1  # an under-confident model is sharpened, as the diagram says
assert after["NLL"] <= before["NLL"]  # on the test split, which T never saw
assert torch.equal(probs_scaled.argmax(1), probs.argmax(1))  # accuracy unchanged
bins_after = ev.reliability_bins(probs_scaled, yte, n_bins=10)
keep_after = bins_after["count"] > 0
fig = go.Figure([
    go.Bar(x=centers[keep].tolist(), y=bins["accuracy"][keep].tolist(), width=0.04,
           offset=-0.04, name="before (T = 1)"),
    go.Bar(x=centers[keep_after].tolist(), y=bins_after["accuracy"][keep_after].tolist(),
           width=0.04, offset=0, name=f"after (T = {T_fit:.2f})"),
    go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
               line=dict(dash="dash")),
])
fig.update_layout(title="Reliability diagram before and after temperature scaling (test split)",
                  xaxis_title="confidence", yaxis_title="accuracy", height=350, width=650)
assert len(fig.data) == 3
fig

# %% [markdown]
# One parameter, fitted on the validation texts, moves the confidence up towards the accuracy
# and lowers the test NLL; in this run the ECE falls too (ECE is a coarse, binned number on a
# few hundred examples — NLL is the quantity that was optimised). Temperature scaling cannot
# fix a model that is over-confident on some classes and under-confident on others: it moves
# every prediction the same way.

# %% [markdown]
# ## Contamination and overfitting to the validation set
#
# Two ways a test score lies:
#
# 1. **Contamination**: test examples (or near copies) were in the training data. Standard
#    library docstrings repeat (inherited methods share one), so our data set merges identical
#    texts *before* splitting: no text is in two splits. To see what a leak does, we plant one:
#    a quarter of the test texts, with their labels, are copied into a second training set.
# 2. **Overfitting to the validation set**: try enough variants and keep the best validation
#    score, and that score is optimistic: the test score of the chosen variant is lower.

# %%
from llmcourse.finetune import normalise

assert all(not ds.overlap(a, b) for a, b in (("train", "val"), ("train", "test"), ("val", "test")))
rng = np.random.default_rng(0)
leaked = sorted(rng.choice(len(yte), size=len(yte) // 4, replace=False).tolist())
test_texts = ds.texts("test")
leaky_train = ds.texts("train") + [test_texts[i] for i in leaked]
vec_leaky = TfidfVectorizer(sublinear_tf=True).fit(leaky_train)
clf_leaky = LogisticRegression(C=10, max_iter=3000).fit(vec_leaky.transform(leaky_train),
                                                        ytr + [yte[i] for i in leaked])
pred_leaky = clf_leaky.predict(vec_leaky.transform(test_texts)).tolist()
is_leaked = np.isin(np.arange(len(yte)), leaked)
right_clean = np.array(pred) == np.array(yte)
right_leaky = np.array(pred_leaky) == np.array(yte)
# the check that finds a leak: exact matches of normalised texts between train and test
found = {normalise(t) for t in leaky_train} & {normalise(t) for t in test_texts}

# %% tags=["nbval-ignore-output"]
print(f"planted {len(leaked)} of {len(yte)} test texts in the training set; the overlap check "
      f"finds {len(found)}")
print(f"on the leaked texts:  clean model {right_clean[is_leaked].mean():.3f}, "
      f"contaminated model {right_leaky[is_leaked].mean():.3f}")
print(f"on the other texts:   clean model {right_clean[~is_leaked].mean():.3f}, "
      f"contaminated model {right_leaky[~is_leaked].mean():.3f}")
print(f"whole test split:     clean model {right_clean.mean():.3f}, "
      f"contaminated model {right_leaky.mean():.3f}")

# %%
assert len(found) == len(leaked)  # every planted copy is found, and nothing else
assert right_leaky[is_leaked].mean() > right_clean[is_leaked].mean() + 0.1  # scored by memory
assert right_leaky[is_leaked].mean() > right_leaky[~is_leaked].mean() + 0.1
assert right_leaky.mean() > right_clean.mean()  # the headline test score is inflated

# %% [markdown]
# The contaminated model gets the leaked texts right almost always — it has seen their
# answers — while on the untouched texts it is no better than the clean model: the inflation of
# its test score is memory, not skill. Now the second trap: 20 "ideas" (random feature subsets
# and regularisation strengths), each scored on validation, and the best one kept.

# %%
rng = np.random.default_rng(0)
vocab_size = Xtr.shape[1]
trials = []
for _ in range(20):  # 20 "ideas": random feature subsets and regularisations
    cols = rng.choice(vocab_size, size=vocab_size // 4, replace=False)
    C_reg = float(10 ** rng.uniform(-1, 2))
    m = LogisticRegression(C=C_reg, max_iter=2000).fit(Xtr[:, cols], ytr)
    trials.append((m.score(Xval[:, cols], yval), m.score(Xte[:, cols], yte)))
val_scores, test_scores = np.array(trials).T
best = int(val_scores.argmax())

# %% tags=["nbval-ignore-output"]
print(f"best of 20 on validation: {val_scores[best]:.3f}; the same model on test: "
      f"{test_scores[best]:.3f}; mean test of all 20: {test_scores.mean():.3f}")

# %%
# the max of 20 noisy validation scores is biased upwards: the chosen model scores higher on the
# validation split it was chosen on than on the test split, and its edge over the average
# variant shrinks on test
assert val_scores[best] > test_scores[best]
assert val_scores[best] - val_scores.mean() > test_scores[best] - test_scores.mean()

# %% [markdown]
# The fix is procedure, not code: decide on the test split once, at the end; report how many
# variants you tried; and for public benchmarks, check for overlap between their test sets and
# your training data (n-gram overlap, as in the GPT-3 paper's contamination study).
#
# ## Perplexity done right: a sliding window
#
# A GPT sees at most `block_size` tokens. To score a long text, the naive way cuts it into
# non-overlapping chunks, so the first tokens of every chunk are predicted with almost no
# context: perplexity is *overestimated*. The right way slides a window by a `stride` smaller
# than the block and scores only the new tokens of each window, each with at least
# `block_size − stride` tokens of context (Hugging Face's perplexity guide).
#
# We train a small byte-level GPT on docstrings for a few seconds. We hide two "secrets" in its
# training data, for later: one **repeated** in many batches, one that appears **once**.
#
# **Data card.** `load_corpus("python-docstrings")`: every public docstring of this Python's
# standard library, joined in a fixed order (about 1.3 MB on CPython 3.11; it includes the
# texts of the classification data set above — pretraining corpora routinely contain
# benchmarks' texts). We use its first characters (200 KB under the `ci` profile); the first
# 90 % are training text, the last 10 % are held out for perplexity. Two made-up secrets are
# planted in the training stream: `ONCE` is inserted once in the middle of the training text;
# `REPEATED` overwrites a random slice of every 4th row of every batch (8 of 32 rows per step).

# %%
import copy
import time

from llmcourse.data import load_corpus
from llmcourse.model import GPT, GPTConfig

text = load_corpus("python-docstrings")[: prof.pick(ci=200_000, cpu=1_000_000, gpu=None)]
n_train = int(0.9 * len(text))
train_text, heldout_text = text[:n_train], text[n_train:]
REPEATED = "The secret launch code is 4831-2296-7705."
ONCE = "The vault combination is 9052-6617-3348."
encode = lambda s: list(s.encode("utf-8"))  # noqa: E731 - bytes: vocabulary of 256
data = torch.tensor(encode(train_text[: n_train // 2] + ONCE + train_text[n_train // 2 :]))
canary = torch.tensor(encode(REPEATED))
assert ONCE not in text and REPEATED not in text  # made up: not in the corpus itself

llmcourse.seed_everything(0)
cfg = GPTConfig(vocab_size=256, block_size=64, n_layer=prof.pick(ci=2, cpu=4, gpu=6),
                n_head=2, n_embd=prof.pick(ci=64, cpu=128, gpu=256))
gpt = GPT(cfg).to(device)
opt = torch.optim.AdamW(gpt.parameters(), lr=3e-3)
g = torch.Generator().manual_seed(0)
steps, B, T = prof.pick(ci=600, cpu=2000, gpu=4000), 32, cfg.block_size
t0 = time.time()
for _ in range(steps):
    ix = torch.randint(0, len(data) - T - 1, (B,), generator=g)
    x = torch.stack([data[i : i + T + 1] for i in ix])
    for row in range(0, B, 4):  # every 4th row carries the repeated secret
        o = int(torch.randint(0, T + 1 - len(canary), (1,), generator=g))
        x[row, o : o + len(canary)] = canary
    x = x.to(device)
    _, loss = gpt(x[:, :-1], x[:, 1:])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
gpt = gpt.eval()

# %% tags=["nbval-ignore-output"]
print(f"corpus: {len(text):,} characters; {len(data):,} training bytes (with ONCE), "
      f"{len(heldout_text):,} held out")
print(f"{steps} steps in {time.time() - t0:.0f} s, last training loss {loss.item():.2f} nats/byte")

# %%
ids = torch.tensor(encode(heldout_text[:6000]), device=device)
per_token = {stride: ev.token_nll(gpt, ids, block_size=T, stride=stride)
             for stride in (T, T // 2)}  # NLL of every token, NaN where not scored
both = ~per_token[T].isnan() & ~per_token[T // 2].isnan()  # the tokens both methods score
nll = {stride: float(v[both].mean()) for stride, v in per_token.items()}
# where the two differ: position of each token inside its non-overlapping chunk
pos = torch.arange(len(ids)) % T
early, late = both & (pos < 8), both & (pos >= T // 2)
gap_early = float((per_token[T] - per_token[T // 2])[early].mean())
gap_late = float((per_token[T] - per_token[T // 2])[late].mean())

# %% tags=["nbval-ignore-output"]
print(f"the same {int(both.sum())} tokens scored both ways:")
for stride in (T, T // 2):
    kind = "non-overlapping chunks" if stride == T else f"sliding window, stride {stride}"
    print(f"{kind:>31}: perplexity {ev.perplexity(nll[stride]):.3f}")
print(f"extra NLL of chunking, first 8 bytes of a chunk: {gap_early:.3f} nats; "
      f"second half of a chunk: {gap_late:.3f}")

# %%
assert int(both.sum()) == len(ids) - len(range(0, len(ids), T))  # all but each chunk's first
assert (~per_token[T // 2].isnan()).sum() == len(ids) - 1  # sliding scores all but token 0
assert nll[T] > nll[T // 2]  # on the same tokens, naive chunks overestimate perplexity
assert gap_early > 0.02 and abs(gap_late) < 1e-4  # ... because the start of a chunk lacks context

# %% [markdown]
# Scored on the *same* tokens, chunking gives a higher perplexity, and the whole difference
# sits at the start of each chunk: a byte predicted with only a few bytes of context is harder.
# In the second half of a chunk both methods see at least `T/2` bytes of context and the same
# window, so they agree. The gap is small here because a byte-level model trained for seconds
# uses only a few dozen bytes of context; with models that really use long context it grows.
# The cost: a stride of `T/2` runs the model twice as often.
#
# ## BLEU, from scratch, equal to sacrebleu
#
# BLEU compares a hypothesis with reference translations: the geometric mean of clipped n-gram
# precisions (n = 1…4), summed over the whole corpus first, times a brevity penalty for short
# outputs. It counts surface overlap: a correct paraphrase scores low.

# %%
import sacrebleu

hyps = ["the cat sat on the mat", "a quick brown fox jumps over the lazy dog today",
        "hello there my good friend"]
refs = [["the cat is sitting on the mat", "a fast brown fox jumps over the lazy dog",
         "hello there my dear friend"],
        ["there is a cat on the mat", "the quick brown fox jumped over the lazy dog today",
         "hi there my good friend"]]
ours = ev.corpus_bleu(hyps, refs)
theirs = sacrebleu.corpus_bleu(hyps, refs, tokenize="none", smooth_method="none").score
print(f"ours {ours:.4f}, sacrebleu {theirs:.4f}")
assert abs(ours - theirs) < 1e-6
paraphrase = ev.corpus_bleu(["a feline rested upon the rug"], [["the cat sat on the mat"]])
print("paraphrase BLEU:", paraphrase)
assert paraphrase == 0.0

# %% [markdown]
# ## Multiple choice by log-likelihood (how LLM benchmarks score)
#
# Most LLM benchmarks (MMLU, HellaSwag, ARC) are multiple choice, and evaluation harnesses score
# them without generating anything. For each choice they sum the log-probabilities the model
# gives the choice's tokens after the context:
#
# $$\ell_i = \sum_{t \in \text{choice}_i} \log p(x_t \mid \text{context}, x_{<t}).$$
#
# `acc` counts an item as right when the gold choice has the largest $\ell_i$. Every extra token
# adds a negative term, so `acc` favours short choices. `acc_norm` divides by the choice's
# length in characters first, $\arg\max_i \ell_i / \mathrm{len}(\text{choice}_i)$ — exactly
# lm-evaluation-harness's definition (its `acc_bytes` divides by UTF-8 bytes instead).
#
# **The task** (made here from the held-out docstrings, so the answer is known): the context
# stops inside a word; one choice is the real rest of the text, three are word endings cut from
# other sentences, each choice 1 to 3 words long, in random order. Chance is 1 in 4. A model
# that learned English spelling and the vocabulary of Python's documentation should beat it.

# %%
import random

from llmcourse.align import score_multiple_choice


def cloze_items(text: str, n_items: int, n_choices: int = 4, seed: int = 0) -> list:
    """(context, choices, gold) items: the context ends inside a word of a line of ``text``."""
    rng = random.Random(seed)
    cuts = []  # (context, [rest of the word, next word, next word])
    for line in text.splitlines():
        words = line.split()
        for w in range(2, len(words) - 2):
            if line.isascii() and len(words[w]) >= 6 and words[w].isalpha() and rng.random() < .5:
                k = rng.randint(3, len(words[w]) - 2)  # keep 3+ letters, cut 2+
                cuts.append((" ".join(words[max(0, w - 4):w] + [words[w][:k]]),
                             [words[w][k:], *words[w + 1:w + 3]]))
    items = []
    for i, (context, rest) in enumerate(cuts):
        others = [cuts[j][1] for j in rng.sample(range(len(cuts)), n_choices) if j != i]
        choices = [" ".join(r[:rng.randint(1, 3)]) for r in [rest, *others[:n_choices - 1]]]
        if len(set(choices)) == n_choices and len(context) + max(map(len, choices)) <= T:
            order = rng.sample(range(n_choices), n_choices)  # the real one at a random place
            items.append((context, [choices[o] for o in order], order.index(0)))
    return items[:n_items]


mc_items = cloze_items(heldout_text, n_items=200)
mc_model = copy.deepcopy(gpt).cpu().eval()  # scored on the CPU in fp32, as lm-eval will be

# %% tags=["nbval-ignore-output"]
print(f"{len(mc_items)} items; the first two:", *mc_items[:2], sep="\n")

# %%
assert len(mc_items) >= 100 and all(len(set(ch)) == 4 and 0 <= g < 4 for _, ch, g in mc_items)

# %% [markdown]
# The scoring, written out: encode context and choice, run the model once on their
# concatenation, and add up the log-probabilities of the choice's bytes. The context ends inside
# a word, so nothing separates it from the choice (lm-eval's `target_delimiter: ""`; the
# default is one space).

# %%
@torch.no_grad()
def loglikelihood(model, context: str, choice: str) -> float:
    ctx, cont = encode(context), encode(choice)
    ids = torch.tensor(ctx + cont)
    logits, _ = model(ids[None, :-1])  # the prediction at position t is for byte t + 1
    logp = logits[0, len(ctx) - 1:].log_softmax(-1)  # (len(cont), 256): the choice's bytes
    return float(logp.gather(1, ids[len(ctx):, None]).sum())


lls = [[loglikelihood(mc_model, c, ch) for ch in choices] for c, choices, _ in mc_items]
gold = [g for *_, g in mc_items]
mc_pred = [int(np.argmax(ll)) for ll in lls]  # np.argmax: the first maximum on ties
mc_pred_norm = [int(np.argmax(np.array(ll) / [len(ch) for ch in choices]))
             for ll, (_, choices, _) in zip(lls, mc_items)]
mc_acc = sum(p == g for p, g in zip(mc_pred, gold)) / len(gold)
mc_acc_norm = sum(p == g for p, g in zip(mc_pred_norm, gold)) / len(gold)

pkg = score_multiple_choice(mc_model, encode, mc_items, target_delimiter="")
gap_pkg = max(abs(a - b) for x, y in zip(lls, pkg["loglikelihoods"]) for a, b in zip(x, y))
assert gap_pkg < 1e-5 and pkg["pred"] == mc_pred and pkg["pred_norm"] == mc_pred_norm
assert (pkg["acc"], pkg["acc_norm"]) == (mc_acc, mc_acc_norm)
print("log-likelihoods, acc and acc_norm: equal to llmcourse.align.score_multiple_choice")

# %% [markdown]
# **The same with lm-evaluation-harness.** The harness reads a model from a Hugging Face folder
# and a task from a YAML file. We export our GPT (`to_hf`, a `GPT2LMHeadModel`) with a
# tokenizer whose ids are bytes (`hf_byte_tokenizer`), write the items to a JSON-lines file and
# describe the task; nothing is downloaded. Two options of `HFLM` need a word:
# `prefix_token_id=0` says what to put before an empty context (the harness needs one, our
# tokenizer has no special tokens), and `logits_cache=False` is explained below.

# %%
import contextlib
import io
import json
import logging
import shutil
import tempfile
from pathlib import Path

import lm_eval
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager

work = Path(tempfile.mkdtemp())
mc_model.to_hf().save_pretrained(work / "model")
ev.hf_byte_tokenizer().save_pretrained(work / "model")
logging.getLogger("lm_eval").setLevel(logging.ERROR)


def run_lm_eval(items: list, task: str, **hflm_options) -> tuple[dict, list]:
    """lm-eval's results and per-item samples for our items, as a local multiple-choice task."""
    (work / f"{task}.jsonl").write_text("".join(
        json.dumps({"ctx": c, "choices": ch, "gold": g}) + "\n" for c, ch, g in items))
    (work / f"{task}.yaml").write_text(f"""\
task: {task}
dataset_path: json
dataset_kwargs: {{data_files: {{test: "{work / f'{task}.jsonl'}"}}}}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{ctx}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: gold
target_delimiter: ""
metric_list: [{{metric: acc}}, {{metric: acc_norm}}]
""")
    with contextlib.redirect_stderr(io.StringIO()):  # the harness's progress bars and notices
        out = lm_eval.simple_evaluate(
            model=HFLM(pretrained=str(work / "model"), device="cpu", batch_size=16,
                       prefix_token_id=0, **hflm_options),
            tasks=[task], num_fewshot=0, log_samples=True,
            task_manager=TaskManager(include_path=str(work), include_defaults=False))
    return out["results"][task], sorted(out["samples"][task], key=lambda r: r["doc_id"])


theirs, samples = run_lm_eval(mc_items, "docstring_cloze", logits_cache=False)
their_lls = [[resp[0][0] for resp in r["resps"]] for r in samples]
gap_lm_eval = max(abs(a - b) for x, y in zip(lls, their_lls) for a, b in zip(x, y))

# %% tags=["nbval-ignore-output"]
print(f"lm-eval: acc {theirs['acc,none']:.3f}, acc_norm {theirs['acc_norm,none']:.3f}; ours: acc "
      f"{mc_acc:.3f}, acc_norm {mc_acc_norm:.3f} (chance 0.250)")
print(f"largest |log-likelihood ours − lm-eval| over {sum(map(len, lls))} choices: "
      f"{gap_lm_eval:.1e} nats")

# %%
assert len(samples) == len(mc_items) == len(lls)
assert gap_lm_eval < 1e-4  # the same numbers, up to float32 rounding in a different graph
assert theirs["acc,none"] == mc_acc and theirs["acc_norm,none"] == mc_acc_norm
assert [r["acc"] for r in samples] == [float(p == g) for p, g in zip(mc_pred, gold)]
assert [r["acc_norm"] for r in samples] == [float(p == g) for p, g in zip(mc_pred_norm, gold)]
assert mc_acc_norm > 0.25 + 0.1  # well above chance: the model uses the context
print("log-likelihoods to 1e-4 nats, and acc and acc_norm item by item: equal to lm-eval")

# %% [markdown]
# **Why `logits_cache=False`.** By default the harness runs the model once for requests whose
# tokens — context and choice together — are the same, a speed-up for one-token answers.
# Docstrings repeat, so our items can hold two such requests split at different points, and
# comparing item by item showed the cached run scoring one of them differently. Two items
# reproduce it: "Return a repre" + "senting" and "Return a representi" + "ng" are the same
# bytes.

# %%
twins = [("Return a repre", ["senting", "xyz"], 0), ("Return a representi", ["ng", "abc"], 0)]
ours_twins = [[loglikelihood(mc_model, c, ch) for ch in chs] for c, chs, _ in twins]
lm_eval_twins = {cache: [[resp[0][0] for resp in r["resps"]]
                         for r in run_lm_eval(twins, f"twins_{cache}", logits_cache=cache)[1]]
                 for cache in (False, True)}

# %% tags=["nbval-ignore-output"]
print(f"lm-eval {lm_eval.__version__}: log p('ng' | 'Return a representi')")
print(f"  ours {ours_twins[1][0]:.4f}; lm-eval, cache off {lm_eval_twins[False][1][0]:.4f}, "
      f"cache on (the default) {lm_eval_twins[True][1][0]:.4f}")

# %%
gap_twins = {cache: max(abs(a - b) for x, y in zip(ours_twins, v) for a, b in zip(x, y))
             for cache, v in lm_eval_twins.items()}
assert gap_twins[False] < 1e-4  # cache off: the same numbers
shutil.rmtree(work)  # the exported model and the task files
print(f"with the cache on, the largest gap is {gap_twins[True]:.1e} nats"
      if gap_twins[True] > 1e-4 else "with the cache on, the same numbers too (fixed upstream)")

# %% [markdown]
# With the cache on, the shorter continuation is read at the positions of the longer one. A
# benchmark number is only as good as the code that made it; matching a second implementation
# item by item, not only the final score, is how such bugs show.

# %% [markdown]
# Where the two metrics disagree, look at the lengths:

# %%
length = lambda picks: np.mean([len(ch[p]) for p, (_, ch, _) in zip(picks, mc_items)])  # noqa: E731
disagree = [i for i, (p, q) in enumerate(zip(mc_pred, mc_pred_norm)) if p != q]
example = next(i for i in disagree if mc_pred_norm[i] == gold[i])  # acc wrong, acc_norm right
ctx_ex, choices_ex, gold_ex = mc_items[example]

# %% tags=["nbval-ignore-output"]
print(f"context {ctx_ex!r}; the real continuation is choice {gold_ex}")
for i, (ch, ll) in enumerate(zip(choices_ex, lls[example])):
    mark = ((" <- acc" if i == mc_pred[example] else "")
            + (" <- acc_norm" if i == mc_pred_norm[example] else ""))
    print(f"  {i}: {ch!r:24} log-lik {ll:7.2f}, per character {ll / len(ch):6.2f}{mark}")
print(f"mean length of the choice picked: by acc {length(mc_pred):.1f} characters, by acc_norm "
      f"{length(mc_pred_norm):.1f}, the real one {length(gold):.1f}; the two disagree on "
      f"{len(disagree)} of {len(mc_items)} items")

# %%
assert mc_pred[example] != mc_pred_norm[example] == gold_ex
assert length(mc_pred) < min(length(gold), length(mc_pred_norm))  # summing favours short choices
assert mc_acc_norm > mc_acc  # on this task, where choice lengths vary at random

# %% [markdown]
# Summed log-likelihood prefers short answers whatever they say: every byte costs probability.
# That is why `acc_norm` exists — HellaSwag and ARC are usually reported with it. It is a
# heuristic, not a cure: per character, a long choice with a predictable tail can win, and
# normalising by tokens, bytes, or by the choice's probability without the context gives other
# numbers again. A benchmark score means little without the metric's exact definition; that is
# why we matched the harness item by item.
#
# ## pass@k, briefly
#
# Chapter 10 measured what sampling buys with pass@k, estimated from `n` samples with `c`
# correct as $1 - \binom{n-c}{k}/\binom{n}{k}$ (Chen et al., 2021). Why not the simpler
# $1 - (1 - c/n)^k$? Both estimate $1 - (1-p)^k$ for a true success rate $p$, and the
# expectation over $c \sim \mathrm{Binomial}(n, p)$ can be computed exactly:

# %%
import itertools
import math

from llmcourse.align import pass_at_k


def my_pass_at_k(n: int, c: int, k: int) -> float:  # 1 − C(n−c, k) / C(n, k), as a product
    return 1.0 if n - c < k else 1.0 - math.prod(1 - k / i for i in range(n - c + 1, n + 1))


def enumerate_pass_at_k(n: int, c: int, k: int) -> float:  # share of k-subsets with a right one
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


worst = max(abs(my_pass_at_k(n, c, k) - enumerate_pass_at_k(n, c, k))
            + abs(pass_at_k(n, c, k) - enumerate_pass_at_k(n, c, k))
            for n in range(1, 9) for c in range(n + 1) for k in range(1, n + 1))
assert worst < 1e-12
n, k = 10, 5
print(f"n = {n} samples, k = {k}: expectation over c ~ Binomial(n, p)")
bias = {}
for p in (0.05, 0.2, 0.5):
    pmf = [math.comb(n, c) * p**c * (1 - p) ** (n - c) for c in range(n + 1)]
    truth = 1 - (1 - p) ** k
    unbiased = sum(w * my_pass_at_k(n, c, k) for c, w in enumerate(pmf))
    naive = sum(w * (1 - (1 - c / n) ** k) for c, w in enumerate(pmf))
    bias[p] = (unbiased - truth, naive - truth)
    print(f"  p = {p:.2f}: true pass@{k} {truth:.4f}, unbiased estimator {unbiased:.4f}, "
          f"naive {naive:.4f}")
assert all(abs(b) < 1e-12 for b, _ in bias.values())  # unbiased: its mean is the truth
assert all(b < -0.01 for _, b in bias.values())  # naive: too low on average

# %% [markdown]
# The naive plug-in is too low on average: $1 - (1-x)^k$ is concave, so by Jensen's inequality
# the mean of it over noisy estimates $x = c/n$ is below its value at $p$. The unbiased
# estimator draws the `k` without replacement from the `n`, and its mean is exactly the truth.
#
# ## LLM-as-judge, and how to test a judge
#
# Open-ended answers have no single reference, so benchmarks such as MT-Bench and AlpacaEval
# ask a strong LLM which of two answers is better. A judge is a measuring instrument and needs
# the checks of one: does it agree with a ground truth (or with people), and does it change its
# verdict when nothing that matters changes? Known failure modes (Zheng et al., 2023):
# **position bias** (favouring the first, or the second, answer shown), **verbosity bias**
# (favouring longer answers) and **self-preference** (favouring text like its own).
#
# With `LLMCOURSE_ONLINE=1`, the judge below is a small instruct model from the hub,
# SmolLM2-135M-Instruct, asked which ending is the original. Offline — the default, and what CI
# runs — the stand-in is a **log-likelihood judge**: our byte-level GPT reads the context
# followed by the first candidate, then the context again followed by the second, as one text,
# and prefers the candidate whose bytes it finds more probable (mean log-probability per byte,
# where each stands). It follows no instructions; it shares the structural weakness of an LLM
# judge: it reads the two answers in an order. The pairs: the cloze items, the real ending
# against one wrong choice, so the ground truth is known; each pair is judged in both orders.

# %%
from llmcourse.env import hub_repo, online


def ll_judge(context: str, first: str, second: str) -> float:
    """1.0 when our GPT prefers ``first``; it reads "context first \\n context second"."""
    a, b = encode(context + first), encode("\n" + context + second)
    nll = ev.token_nll(mc_model, torch.tensor(a + b), block_size=T, stride=T // 2)
    score_1 = -nll[len(a) - len(encode(first)):len(a)].mean()
    score_2 = -nll[len(a) + len(b) - len(encode(second)):].mean()
    return float(score_1 >= score_2)


if online():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    repo, rev = hub_repo("HuggingFaceTB/SmolLM2-135M-Instruct")
    judge_tok = AutoTokenizer.from_pretrained(repo, revision=rev)
    judge_lm = AutoModelForCausalLM.from_pretrained(repo, revision=rev).to(device).eval()
    one, two = (judge_tok.encode(d, add_special_tokens=False)[-1] for d in ("1", "2"))

    @torch.no_grad()
    def judge(context: str, first: str, second: str) -> float:
        ask = (f'A sentence from Python\'s documentation starts: "{context}"\n'
               f'Which ending is the original?\n1: "{first}"\n2: "{second}"\n'
               "Answer with 1 or 2 only.")
        prompt = judge_tok.apply_chat_template([{"role": "user", "content": ask}],
                                               tokenize=False, add_generation_prompt=True)
        ids = judge_tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        last = judge_lm(ids.to(device)).logits[0, -1]  # the first token of the answer
        return float(last[one] >= last[two])

    judge_name = f"{repo} at {rev[:8]}"
else:
    judge, judge_name = ll_judge, "log-likelihood judge (this chapter's byte-level GPT)"

pairs = [(c, ch[g], ch[(g + 1) % len(ch)]) for c, ch, g in mc_items]  # (context, right, wrong)
right_first = [judge(c, r, w) for c, r, w in pairs]  # 1.0: picks the right one, shown first
right_second = [1 - judge(c, w, r) for c, r, w in pairs]  # 1.0: picks it, shown second
agreement = (sum(right_first) + sum(right_second)) / (2 * len(pairs))
flips = sum(a != b for a, b in zip(right_first, right_second))
both_orders = sum(a == b == 1 for a, b in zip(right_first, right_second)) / len(pairs)
print("judge:", judge_name)

# %% tags=["nbval-ignore-output"]
print(f"agreement with the ground truth: {agreement:.1%} of {2 * len(pairs)} verdicts "
      f"(chance 50%)")
print(f"position bias: the verdict flips when the order is swapped on {flips} of {len(pairs)} "
      f"pairs; right in both orders: {both_orders:.1%}")

# %%
assert 0 <= both_orders <= agreement <= 1 and 0 <= flips <= len(pairs)
if not online():  # what CI checks: the stand-in is better than chance
    assert agreement > 0.55 and flips < len(pairs) // 2

# %% [markdown]
# Each flip is a verdict decided by the order, not by the answers. Even the log-likelihood
# judge, which only compares probabilities, can flip: the second candidate is read after the
# first, and that changes its probabilities (a stronger model, as under the larger profiles,
# flips less). The standard
# defences: judge every pair in both orders and count a win only when both agree (otherwise a
# tie) — the "right in both orders" line — and randomise the order across items.
#
# **Self-preference.** The log-likelihood judge again, now comparing the real ending with its
# *own* greedy continuation of the context (as many bytes):

# %%
own = [bytes(ev.greedy_continue(mc_model, encode(c), len(encode(r)))).decode("utf-8", "replace")
       for c, r, _ in pairs]
mine = [(c, o, r) for (c, r, _), o in zip(pairs, own) if o != r]  # drop exact reproductions
prefers_own = sum(ll_judge(c, o, r) + 1 - ll_judge(c, r, o) for c, o, r in mine) / (2 * len(mine))

# %% tags=["nbval-ignore-output"]
print(f"the log-likelihood judge prefers its own text in {prefers_own:.1%} of {2 * len(mine)} "
      f"verdicts ({len(pairs) - len(mine)} greedy continuations equal to the real text dropped)")
for c, o, r in mine[:3]:
    print(f"  {c!r}: own {o!r} vs real {r!r}")

# %%
assert prefers_own > 0.6  # its own continuation beats the real text, most of the time

# %% [markdown]
# Its own continuations need not be right, or even words, and it still prefers them: a judge that
# scores how *expected* a text is rewards what it would have written itself. LLM judges show
# the same pull — they rate their own generations higher (Panickssery et al., 2024), and the
# preference follows how low the judge's perplexity of a text is (Wataoka et al., 2024).
#
# What this stand-in cannot show, and what to check on a real judge:
#
# - **verbosity bias**: LLM judges tend to prefer longer answers (Zheng et al., 2023;
#   AlpacaEval 2 reports length-controlled win rates for that reason). We did not measure it:
#   our pairs do not differ in verbosity. To test a judge for it, give it pairs that differ only
#   in padding — the same answer with and without filler;
# - **agreement with people**: our ground truth is programmatic. For open-ended answers the
#   reference is human votes; Zheng et al. report GPT-4 agreeing with expert votes about as often
#   as the experts agree with each other — a measured property of that judge on that data, not a
#   licence for every judge;
# - **a judge is only as good as its grasp of the task**: the online option, a 135 M-parameter
#   instruct model, is small for a judge — compare its agreement and flips with the numbers above
#   before trusting any verdict of it.

# %% [markdown]
# ## Memorisation: extracting training strings
#
# Language models can regurgitate training data (Carlini et al., 2021). Our GPT saw the repeated
# secret in every fourth row, and the other secret once. Greedy decoding from each secret's
# prefix:

# %%
prefixes = {REPEATED: len("The secret launch code is "), ONCE: len("The vault combination is ")}
rates, outs = {}, {}
for secret, k in prefixes.items():
    rates[secret] = ev.extraction_rate(gpt, encode, [secret], prefix_chars=k)[0]
    outs[secret] = bytes(ev.greedy_continue(gpt, encode(secret[:k]), len(secret) - k)).decode(
        "utf-8", errors="replace")

# %% tags=["nbval-ignore-output"]
for secret, k in prefixes.items():
    print(f"{secret[:k]!r} -> {outs[secret]!r}   (extraction rate {rates[secret]:.2f})")

# %%
assert rates[REPEATED] == 1.0 and outs[REPEATED] == REPEATED[prefixes[REPEATED]:]  # digit for digit
assert rates[ONCE] < 0.5 and outs[ONCE] != ONCE[prefixes[ONCE]:]  # the one seen once does not
print("the repeated secret is extracted verbatim; the one seen once is not")

# %% [markdown]
# Repetition is what makes memorisation: deduplicating training data is one of the best
# defences, and digits a model was never shown often are safe only because it cannot guess them.
#
# ## A bias probe on real embeddings (and its caveats)
#
# The Word Embedding Association Test (WEAT, Caliskan et al., 2017) asks whether target words X
# (e.g. flowers) are closer to attribute words A (pleasant) than target words Y (insects) are,
# in cosine similarity. The effect size is a standardised difference; a permutation test over
# re-splits of X ∪ Y gives a p-value. With a sentence encoder we embed templates ("This is a
# tulip."), as in SEAT (May et al., 2019). We use MiniLM's mean-pooled embeddings.

# %%
from transformers import AutoModel, AutoTokenizer

from llmcourse.finetune import resolve_model_name

path, where = resolve_model_name("minilm")
print("encoder:", where)
tok = AutoTokenizer.from_pretrained(path)
enc_model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()


@torch.no_grad()
def embed(sentences: list[str]) -> torch.Tensor:
    b = tok(sentences, padding=True, return_tensors="pt")
    h = enc_model(**b).last_hidden_state
    mask = b["attention_mask"].unsqueeze(-1).float()
    return (h * mask).sum(1) / mask.sum(1)  # mean pooling, as the model was trained


def templated(words: list[str]) -> torch.Tensor:
    return embed([f"This is a {w}." for w in words])


flowers = ["rose", "tulip", "daisy", "lily", "orchid", "violet", "daffodil", "lilac"]
insects = ["ant", "wasp", "cockroach", "flea", "mosquito", "beetle", "hornet", "termite"]
pleasant = ["joy", "love", "peace", "wonderful", "pleasure", "friend", "laughter", "happy"]
unpleasant = ["agony", "terrible", "horrible", "nasty", "evil", "awful", "failure", "hurt"]
X, Y, A, B = (templated(w) for w in (flowers, insects, pleasant, unpleasant))
d = ev.weat_effect_size(X, Y, A, B)
p_value = ev.weat_permutation_p(X, Y, A, B, n_permutations=2000)

# %% tags=["nbval-ignore-output"]
print(f"flowers vs insects, pleasant vs unpleasant: effect size {d:.2f}, p = {p_value:.4f}")

# %%
assert d > 0.5 and p_value < 0.05  # the classic, uncontroversial association is found

# %% [markdown]
# The same test run on people (names, professions, genders) is how such probes are used, and
# the caveats matter more than the number:
#
# - the result depends on the word lists and templates chosen — change them and the effect
#   moves; a small set of words is a small, non-random sample;
# - the p-value only says the association is unlikely under *random re-splitting* of these
#   words, not that it generalises;
# - an association in embeddings is not the same as biased *behaviour* in a downstream task
#   (and the absence of one does not prove fairness);
# - contextual sentence encoders mix the template into the embedding: the template itself
#   contributes similarity.
#
# ## Why attention maps are not explanations
#
# Attention weights say where a layer *reads from*, not what the output *depends on*. Two
# checks on MiniLM, for the similarity of a sentence to a query:
#
# 1. heads put a large share of their attention on the special tokens `[CLS]` and `[SEP]`,
#    which carry no content (a "no-op" sink);
# 2. a gradient × input attribution — how much the output changes with each token's input
#    embedding — ranks the tokens differently.

# %%
sentence = "Return the base name of a path, removing any trailing slash."
query = embed(["file system paths"])[0]
b = tok([sentence], return_tensors="pt")
tokens = tok.convert_ids_to_tokens(b["input_ids"][0])
with torch.no_grad():
    att = enc_model(**b, output_attentions=True).attentions  # layers × (1, heads, T, T)
received = torch.stack(att)[:, 0].mean(dim=(0, 1)).mean(0)  # attention each token receives
special = [i for i, t in enumerate(tokens) if t in ("[CLS]", "[SEP]")]
sink_share = float(received[special].sum())


def similarity(inputs_embeds: torch.Tensor) -> torch.Tensor:
    h = enc_model(inputs_embeds=inputs_embeds, attention_mask=b["attention_mask"]).last_hidden_state
    return torch.nn.functional.cosine_similarity(h.mean(1), query[None])[0]


emb = enc_model.embeddings.word_embeddings(b["input_ids"])
gxi = ev.gradient_x_input(enc_model, emb, similarity)
content = [i for i in range(len(tokens)) if i not in special]
rank_att = received[content].argsort(descending=True)
rank_gxi = gxi[content].argsort(descending=True)
top_att = [tokens[content[i]] for i in rank_att[:3]]
top_gxi = [tokens[content[i]] for i in rank_gxi[:3]]

# %% tags=["nbval-ignore-output"]
print(f"[CLS] + [SEP] receive {sink_share:.0%} of all attention ({len(special)} of {len(tokens)} tokens)")
print("top tokens by attention received:", top_att)
print("top tokens by gradient × input:  ", top_gxi)

# %%
assert sink_share > 2 * len(special) / len(tokens)  # far more than their share of positions
assert top_att != top_gxi  # the two "explanations" disagree

# %% [markdown]
# Neither is *the* explanation: gradient × input is local and noisy too. Faithful attributions
# are tested by intervention — remove or replace the tokens a method ranks high and check the
# output changes more than for random tokens (Jain & Wallace, 2019; Wiegreffe & Pinter, 2019).
#
# ## Exercises
#
# **1. Macro-F1.** Write `macro_f1(y_true, y_pred)` from the definitions: per class, precision
# `TP / (TP + FP)` and recall `TP / (TP + FN)` (0 when the denominator is 0), F1 their harmonic
# mean (0 when both are 0), then the mean over the classes that occur in either list.

# %%
from llmcourse.exercises.evaluation import check_acc_norm, check_ece, check_macro_f1


def macro_f1(y_true: list[int], y_pred: list[int]) -> float:
    raise NotImplementedError  # your code here


check_macro_f1(macro_f1)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Count TP, FP, FN per class, guard every division, average over the classes present.
# </details>

# %% jupyter={"source_hidden": true}
def macro_f1_solution(y_true: list[int], y_pred: list[int]) -> float:
    classes = sorted(set(y_true) | set(y_pred))
    scores = []
    for c in classes:
        tp = sum(t == c and p == c for t, p in zip(y_true, y_pred))
        fp = sum(t != c and p == c for t, p in zip(y_true, y_pred))
        fn = sum(t == c and p != c for t, p in zip(y_true, y_pred))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        scores.append(2 * prec * rec / (prec + rec) if prec + rec else 0.0)
    return sum(scores) / len(scores)


assert check_macro_f1(macro_f1_solution)

# %% [markdown]
# Micro-F1 is not macro-F1: the checker catches it.

# %%
assert not check_macro_f1(lambda t, p: skm.f1_score(t, p, average="micro"))

# %% [markdown]
# **2. Expected calibration error.** Write `ece(probs, y_true, n_bins)`: confidence = the max
# probability of each row, bins `(i/n, (i+1)/n]`, and the sum over bins of
# `(share of examples in the bin) × |accuracy − mean confidence|`.

# %%
def ece(probs: torch.Tensor, y_true: list[int], n_bins: int) -> float:
    raise NotImplementedError  # your code here


check_ece(ece)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# `ceil(conf · n) − 1` is the bin index of a confidence; accumulate per bin.
# </details>

# %% jupyter={"source_hidden": true}
def ece_solution(probs: torch.Tensor, y_true: list[int], n_bins: int) -> float:
    conf, pred = probs.max(dim=1)
    correct = (pred == torch.tensor(y_true)).float()
    idx = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    total = 0.0
    for k in range(n_bins):
        sel = idx == k
        if sel.any():
            total += sel.float().mean() * (correct[sel].mean() - conf[sel].mean()).abs()
    return float(total)


assert check_ece(ece_solution)

# %% [markdown]
# **3. acc_norm.** Write `acc_norm_pred(loglikelihoods, choices)`: the index of the choice with
# the highest log-likelihood per character — `len(choice)`, the choice alone, without the
# delimiter — and the first one on ties, as lm-evaluation-harness does.

# %%
def acc_norm_pred(loglikelihoods: list[float], choices: list[str]) -> int:
    raise NotImplementedError  # your code here


check_acc_norm(acc_norm_pred)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Divide element-wise by the lengths and take `np.argmax`, which returns the first maximum.
# </details>

# %% jupyter={"source_hidden": true}
def acc_norm_pred_solution(loglikelihoods: list[float], choices: list[str]) -> int:
    return int(np.argmax(np.array(loglikelihoods) / [len(c) for c in choices]))


assert check_acc_norm(acc_norm_pred_solution)
assert [acc_norm_pred_solution(ll, ch) for ll, (_, ch, _) in zip(lls, mc_items)] == mc_pred_norm

# %% [markdown]
# The summed version is `acc`, not `acc_norm`: the checker catches it.

# %%
assert not check_acc_norm(lambda ll, ch: int(np.argmax(ll)))

# %% [markdown]
# ## Summary and where to go next
#
# - Metrics are counts: write them once, check them against a library, report macro *and*
#   micro when classes are unbalanced.
# - Perplexity of long text needs a sliding window; BLEU rewards surface overlap only.
# - Probabilities can be under- or over-confident (ours were under-confident): look at a
#   reliability diagram, report ECE and NLL; one temperature fitted on validation data
#   (here T < 1) lowers the test NLL without changing a single prediction.
# - LLM benchmarks score multiple choice by summed log-likelihood (`acc`, biased towards short
#   choices) or per character (`acc_norm`); ours equals lm-evaluation-harness item by item.
#   pass@k needs the unbiased estimator — the naive `1 − (1 − c/n)^k` is too low on average.
# - An LLM judge is an instrument to test: agreement with a ground truth, verdicts that flip
#   when the answers are swapped, a preference for text like its own (our log-likelihood judge
#   preferred its own continuations to the real text).
# - Test scores lie through contamination and through selection on the validation set.
# - Bias probes measure associations in chosen word lists — with caveats; models memorise
#   repeated strings; attention weights are not explanations.
#
# **Where to go next.** Chapter 12 serves the models: KV caches, quantisation, speculative
# decoding. Beyond the course: evaluation suites at scale (lm-evaluation-harness's task library,
# HELM), retrieval-augmented generation, and interpretability done by intervention (activation
# patching, sparse autoencoders). Each builds on what these chapters made: a model you trained,
# and numbers you can trust.
