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
# - calibration: are a model's probabilities honest? (reliability diagram, ECE);
# - the limits: contamination and overfitting to the validation set, a bias probe on real
#   embeddings, memorised training strings, and why attention maps are not explanations.
#
# **Prerequisites:** chapters 01 (perplexity), 04 (our GPT), 09 (the docstring data set).

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
print(f"ECE = {ece:.3f}; mean confidence {float(probs.max(1).values.mean()):.3f}, accuracy {acc:.3f}")

# %% [markdown]
# Calibration is a property of the probabilities, not of the accuracy: a model that is always
# 100 % sure is badly calibrated whenever it is wrong. Check:

# %%
overconfident = torch.nn.functional.one_hot(torch.tensor(pred), len(ds.labels)).double()
ece_certain = ev.expected_calibration_error(overconfident, yte)
assert ece_certain > ece and abs(ece_certain - (1 - acc)) < 1e-6
print("always-certain copy of the same predictions: ECE = 1 − accuracy, worse than the model's")

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
from llmcourse.exercises.evaluation import check_ece, check_macro_f1


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
# ## Summary and where to go next
#
# - Metrics are counts: write them once, check them against a library, report macro *and*
#   micro when classes are unbalanced.
# - Perplexity of long text needs a sliding window; BLEU rewards surface overlap only.
# - Probabilities can be over-confident: look at a reliability diagram, report ECE.
# - Test scores lie through contamination and through selection on the validation set.
# - Bias probes measure associations in chosen word lists — with caveats; models memorise
#   repeated strings; attention weights are not explanations.
#
# **Where to go next.** Evaluation harnesses (EleutherAI's *lm-evaluation-harness*, HELM),
# preference tuning (RLHF, DPO) after the SFT of chapter 09, retrieval-augmented generation,
# quantisation and efficient inference (KV caches, speculative decoding), and interpretability
# done by intervention (activation patching, sparse autoencoders). Each builds on what these
# chapters made: a model you trained, and numbers you can trust.
