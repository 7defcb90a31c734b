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
# # 07 · Pretraining: data, a real training loop, and what makes it work
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/07_pretraining.ipynb)
#
# **What you will learn**
# - where pretraining data comes from and how it is cleaned: exact deduplication by hashing,
#   near-duplicates with MinHash and LSH (written here, checked against `datasketch`), and
#   rule-based quality filters;
# - how text becomes training batches: a tokenizer, packing, a memory-mapped token file,
#   deterministic sampling — and how many tokens and epochs a run really sees;
# - what decides whether a run works: the learning rate (a sweep), the schedule (cosine,
#   warmup–stable–decay, constant), the optimiser (AdamW vs Muon) and gradient clipping (a loss
#   spike, with and without it);
# - what a real training loop adds: accumulation, mixed precision, checkpoints that resume
#   *exactly*, a NaN guard, tokens per second and MFU;
# - the other pretraining objective: masked language modelling (BERT).
#
# **Prerequisites:** chapters 04 (the GPT) and 06 (cross-entropy, AdamW).
#
# Everything here is in `llmcourse.data` (corpora, dedup, quality, packing), `llmcourse.train`
# (the `Trainer`) and `python -m llmcourse.pretrain` (the same run from a terminal, on one or
# many GPUs).

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
# ## 1. The corpus: Python's own source code
#
# Every Python installation holds a real code corpus: the standard library's source, about
# 12 MB in 730 files once the test suites are left out. The course pretrains on it offline (it is
# on every laptop and on Colab, no download); online (`LLMCOURSE_ONLINE=1`) the `cpu` and `gpu`
# profiles stream a real web-scale corpus instead — TinyStories or FineWeb-Edu, at a pinned
# revision, up to a token budget (`load_corpus("fineweb-edu", max_tokens=...)`). The data card
# (`docs/data_card.md`) says what each corpus is, its size and its licence (the standard library
# is under the PSF License).
#
# A corpus is a list of **documents** — here one per file. We shuffle the files by a hash of
# their path (a fixed order that mixes the library, instead of its first letters) and take as
# many as the profile allows.

# %%
import hashlib

from llmcourse.data import corpus_documents, stdlib_code_files
from llmcourse.env import online

files = stdlib_code_files()  # sorted by path, every call the same
print(f"{len(files)} files, {sum(len(f.text) for f in files) / 1e6:.1f} M characters; e.g.",
      [f.path for f in files[100:103]])
assert sum(len(f.text) for f in files) > 5_000_000

CODE_CHARS = prof.pick(ci=1_000_000, cpu=4_000_000, gpu=None)  # None: all of it
shuffled = sorted(files, key=lambda f: hashlib.sha1(f.path.encode()).hexdigest())
pool = []  # the files this profile trains on
for f in shuffled:
    if CODE_CHARS is not None and sum(len(p.text) for p in pool) >= CODE_CHARS:
        break
    pool.append(f)
print(f"this profile's pool: {len(pool)} files, {sum(len(f.text) for f in pool):,} characters")

# %% [markdown]
# ## 2. Cleaning the data
#
# Real pretraining corpora are full of copies: mirrored pages, vendored libraries, generated
# files. Copies waste compute, make a model memorise (and regurgitate) them, and — when a copy
# lands on both sides of the train/validation split — make validation lie. Every serious data
# pipeline (GPT-3, Gopher, The Pile, FineWeb, The Stack) removes **exact duplicates**, then
# **near-duplicates**, then filters by **quality** rules. We do all three on the whole code
# corpus (every profile: it takes seconds).
#
# ### Exact duplicates: hash a normalised text
#
# Two documents are exact duplicates when their text is the same after a light normalisation
# (Unicode NFC, lower case, runs of whitespace as one space). A hash of that text is a key:
# equal keys, equal documents — one pass, no pairwise comparison.

# %%
import unicodedata
from collections import defaultdict

from llmcourse.data import exact_duplicates


def normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


by_key = defaultdict(list)  # sha1 of the normalised text -> indices of the files that have it
for i, f in enumerate(files):
    by_key[hashlib.sha1(normalise(f.text).encode()).hexdigest()].append(i)
exact = [ids for ids in by_key.values() if len(ids) > 1]
print([[files[i].path for i in ids] for ids in exact])
assert exact == exact_duplicates([f.text for f in files])  # the package's version

# %% [markdown]
# Two pairs, both real: `__phello__` is a test package whose two files are the same, and two
# packages have the same one-line `__init__.py`. Exact hashing misses everything else: a single
# changed character gives another hash.
#
# ### Near-duplicates: MinHash
#
# A document becomes a set of **shingles** (here: its runs of 5 consecutive words). The
# similarity of two sets is their Jaccard index $J(A, B) = |A ∩ B| / |A ∪ B|$. Comparing every
# pair of documents is quadratic — 266,000 pairs here, $10^{18}$ for a web crawl. MinHash makes
# each document a short **signature**: apply a random hash function $h$ to every shingle and keep
# the minimum. The key fact: the two minima are equal exactly when the shingle with the smallest
# hash of $A ∪ B$ is in both sets, so
#
# $$P\big(\min h(A) = \min h(B)\big) = J(A, B).$$
#
# With 128 hash functions the share of equal entries estimates $J$. The classic hash family is
# $h(x) = (a·x + b) \bmod p$ with $p = 2^{61}-1$ and random $a, b$, on a 32-bit hash of each
# shingle:

# %%
import struct

import numpy as np

from llmcourse.data import MinHash, jaccard, shingles

MERSENNE, MAX32 = np.uint64((1 << 61) - 1), np.uint64((1 << 32) - 1)


def sha1_32(s: str) -> int:  # a 32-bit hash of a shingle: the first 4 bytes of its SHA-1
    return struct.unpack("<I", hashlib.sha1(s.encode("utf-8")).digest()[:4])[0]


def minhash(shingle_set: set[str], num_perm: int = 128, seed: int = 1) -> np.ndarray:
    gen = np.random.RandomState(seed)  # the same (a, b) pairs for every document
    a, b = np.array([(gen.randint(1, MERSENNE, dtype=np.uint64),
                      gen.randint(0, MERSENNE, dtype=np.uint64)) for _ in range(num_perm)]).T
    h = np.array([sha1_32(s) for s in shingle_set], dtype=np.uint64)[:, None]  # (n_shingles, 1)
    with np.errstate(over="ignore"):  # a*h wraps around 2^64 before the mod p, as in datasketch
        return (((h * a + b) % MERSENNE) & MAX32).min(axis=0)  # (num_perm,)


cp = {f.path: f for f in files}
A, B = shingles(cp["encodings/cp850.py"].text), shingles(cp["encodings/cp858.py"].text)
sig_a, sig_b = minhash(A), minhash(B)
print(f"{len(A):,} and {len(B):,} shingles; exact Jaccard {jaccard(A, B):.3f}, "
      f"MinHash estimate {(sig_a == sig_b).mean():.3f}")
assert np.array_equal(sig_a, MinHash(128, seed=1, scheme="legacy")(A))  # the package's
assert abs((sig_a == sig_b).mean() - jaccard(A, B)) < 0.1

# %% [markdown]
# `datasketch`, the library most pipelines use, gives the same signature bit for bit. (Since
# version 2 its default is a faster 32-bit variant, `scheme="affine32"`: the shingle hash is
# mixed once, then permuted by $a·x + b \bmod 2^{32}$; the package implements both, and the rest
# of the chapter uses the default.)

# %%
import datasketch

ref = datasketch.MinHash(num_perm=128, seed=1, scheme="legacy")
ref.update_batch([s.encode("utf-8") for s in A])
ref32 = datasketch.MinHash(num_perm=128, seed=1)
ref32.update_batch([s.encode("utf-8") for s in A])
print(ref.hashvalues[:3], ref32.hashvalues.dtype)
assert np.array_equal(ref.hashvalues, sig_a)
assert np.array_equal(ref32.hashvalues, MinHash(128, seed=1)(A))

# %% [markdown]
# ### LSH: find the candidate pairs without comparing all of them
#
# **Locality-sensitive hashing** cuts each signature into $b$ bands of $r$ rows and puts every
# band in a hash table; documents that share a bucket in any band are candidates. A pair with
# similarity $s$ becomes a candidate with probability $1 - (1 - s^r)^b$: an S-curve, steep around
# the threshold. `datasketch` picks $(b, r)$ to balance false positives and negatives; for a
# threshold of 0.8 and 128 permutations that is 9 bands of 13 rows.

# %%
import plotly.graph_objects as go

from llmcourse.data import lsh_candidates, lsh_params, minhash_signatures

BANDS, ROWS = lsh_params(threshold=0.8, num_perm=128)
s_grid = np.linspace(0, 1, 101)
fig = go.Figure(go.Scatter(x=s_grid, y=1 - (1 - s_grid**ROWS) ** BANDS, name=f"b={BANDS}, r={ROWS}"))
fig.add_vline(x=0.8, line_dash="dot")
fig.update_layout(height=280, xaxis_title="Jaccard similarity of a pair",
                  yaxis_title="P(candidate)", margin=dict(t=30, b=40))
print((BANDS, ROWS))
assert (BANDS, ROWS) == (9, 13) and [t.name for t in fig.data] == ["b=9, r=13"]
fig

# %% [markdown]
# The banding itself is a dictionary per band:

# %%
import itertools

texts = [f.text for f in files]
sigs = minhash_signatures(texts, num_perm=128)  # (730, 128) uint32, all files (a few seconds)


def candidates(sigs: np.ndarray, bands: int, rows: int) -> set[tuple[int, int]]:
    pairs = set()
    for t in range(bands):
        buckets = defaultdict(list)  # this band's bytes -> documents
        for i, band in enumerate(sigs[:, t * rows:(t + 1) * rows]):  # band: (rows,)
            buckets[band.tobytes()].append(i)
        for ids in buckets.values():
            pairs.update(itertools.combinations(ids, 2))
    return pairs


cand = candidates(sigs, BANDS, ROWS)
lsh = datasketch.MinHashLSH(threshold=0.8, num_perm=128, params=(BANDS, ROWS))
for i, row in enumerate(sigs):
    lsh.insert(i, datasketch.MinHash(num_perm=128, seed=1, hashvalues=row, scheme="affine32"))
ref_cand = {(min(i, j), max(i, j)) for i, row in enumerate(sigs)
            for j in lsh.query(datasketch.MinHash(num_perm=128, seed=1, hashvalues=row, scheme="affine32")) if j != i}
print(f"{len(cand)} candidate pairs out of {len(files) * (len(files) - 1) // 2:,}")
assert cand == lsh_candidates(sigs, BANDS, ROWS) == ref_cand  # ours = package = datasketch

# %% [markdown]
# Candidates are only candidates: each is checked with the exact Jaccard of its shingle sets.

# %%
sets = [shingles(t) for t in texts]
near = sorted((round(jaccard(sets[i], sets[j]), 3), files[i].path, files[j].path)
              for i, j in cand if jaccard(sets[i], sets[j]) >= 0.8)[::-1]
for row in near[:6]:
    print(row)
print(f"... {len(near)} pairs at Jaccard ≥ 0.8")
assert {(a, b) for _, a, b in near} >= {("encodings/cp850.py", "encodings/cp858.py")}

# %% [markdown]
# Almost all are character-map codecs (`encodings/cp850.py` and `cp858.py` differ in one table
# entry: € replaced ı). LSH trades recall for speed: pairs just above the threshold can fall
# through the bands. Comparing every pair of the 120-odd codec files by brute force shows the
# price:

# %%
enc = [i for i, f in enumerate(files) if f.path.startswith("encodings/")]
true = {(i, j) for i, j in itertools.combinations(enc, 2) if jaccard(sets[i], sets[j]) >= 0.8}
found = {p for p in cand if p in true}
missed = sorted(round(jaccard(sets[i], sets[j]), 3) for i, j in true - found)
print(f"{len(enc)} codec files: {len(true)} pairs at ≥ 0.8, LSH found {len(found)}; "
      f"the missed ones have Jaccard {missed}")
assert found and missed and max(missed) < 0.9  # what LSH misses sits near the threshold

# %% [markdown]
# More permutations (256: 17 bands of 15 rows) find almost all of them, at twice the cost.
# `near_duplicates(texts)` in `llmcourse.data` is this whole pipeline; a **cluster** of
# near-duplicates (files linked by pairs) keeps its first file (`clusters`, `dedup_near`).
#
# ### Quality filters: rules
#
# Deduplication removes copies; quality filters remove text not worth learning from. Gopher's
# rules (Rae et al. 2021) are simple statistics with thresholds: between 50 and 100,000 words, a
# mean word length of 3–10 characters, at most 10% symbols (`#`, `…`), at most 90% of lines
# starting with a bullet, at least two of *the, be, to, of, and, that, have, with*, at most 30%
# duplicate lines — and a dozen repetition rules. Here are four of them, on the page, on the
# language reference's topics and on a planted bullet list:

# %%
from llmcourse.data import gopher_rules

STOP = {"the", "be", "to", "of", "and", "that", "have", "with"}


def my_rules(text: str) -> dict[str, bool]:
    words, lines = text.split(), [ln for ln in text.splitlines() if ln.strip()]
    return {"word_count": 50 <= len(words) <= 100_000,
            "mean_word_length": 3 <= sum(map(len, words)) / max(1, len(words)) <= 10,
            "stop_words": len(STOP & {w.lower() for w in words}) >= 2,
            "bullet_lines": sum(ln.lstrip().startswith(("•", "-", "*")) for ln in lines)
                            <= 0.9 * max(1, len(lines))}


topics = list(corpus_documents("python-reference")) + ["\n".join(f"- item {i}" for i in range(80))]
ours = [my_rules(t) for t in topics]
theirs = [{k: v for k, v in gopher_rules(t).items() if k in ours[0]} for t in topics]
dropped = [i for i, r in enumerate(ours) if not all(r.values())]
print(f"{len(topics)} documents; dropped by these four rules: {len(dropped)}, e.g. "
      f"{topics[dropped[0]][:40]!r} {[k for k, v in ours[dropped[0]].items() if not v]}")
assert ours == theirs and len(topics) - 1 in dropped

# %% [markdown]
# Gopher's rules are for prose: on code they drop over half of the files (too few stop words,
# too many repeated n-grams; 322 of 730 kept, measured when this chapter was written — the
# check takes 15 s, so it is not rerun here). Code corpora (Codex, The Stack, CodeParrot) use their own rules —
# very long lines, few alphanumeric characters, and the marker of a **generated file** in its
# first lines. That last rule is the one that fires on the standard library:

# %%
from collections import Counter

from llmcourse.data import clusters, code_filter

kept_q, why = code_filter(texts)
print(f"code filter drops {len(why)} of {len(files)} files:",
      Counter(r for reasons in why.values() for r in reasons),
      "e.g.", [files[i].path for i in list(why)[:3]], "and", files[max(why)].path)
print(files[min(why)].text.splitlines()[0])  # the first line of the first one dropped
assert all("not_autogenerated" in r for r in why.values())

# %% [markdown]
# What the three steps remove from the whole corpus, in order (each applied to what the
# previous one kept):

# %%
after_exact = sorted(set(range(len(files))) - {i for ids in exact for i in ids[1:]})
near_pairs = [(i, j) for i, j in cand if i in after_exact and j in after_exact
              and jaccard(sets[i], sets[j]) >= 0.8]  # the LSH pairs above, confirmed
after_near = [g[0] for g in clusters(len(files), near_pairs) if g[0] in after_exact]  # first of each cluster
after_filter = [i for i in after_near if i not in why]
steps_ = {"raw": list(range(len(files))), "exact dedup": after_exact,
          "near dedup (0.8)": after_near, "code filter": after_filter}
for name, ids in steps_.items():
    print(f"{name:18} {len(ids):4} files {sum(len(texts[i]) for i in ids) / 1e6:6.2f} M characters")
clean_paths = {files[i].path for i in after_filter}
assert len(after_exact) == len(files) - 2 and len(after_filter) < len(after_near) < len(after_exact)
del sets  # 730 sets of 1.2 M shingles: kept alive, they slow every later training step ~3×

# %% [markdown]
# About 10% of the files and 17% of the characters go — almost all of them tables of one kind.
# The data card records these figures. Section 10 measures what the cleaning changes for a model.
#
# (The `del sets` above is not tidiness. Python's garbage collector walks every live container
# object from time to time, and training creates objects at every step: with the 730 shingle
# sets still alive, each later training step in this notebook ran about 3× slower — measured.)
#
# ## 3. From documents to batches
#
# The profile's pool, cleaned, split by **file** (the last 10% of the shuffled files are the
# validation set: code from a file the model never saw, not lines interleaved with its training
# data). Online, the streamed corpus replaces it. Then a tokenizer: a byte-level BPE trained on
# the training split with Hugging Face `tokenizers` (chapter 02 built BPE by hand; this is the
# fast library version). `<|endoftext|>` is token 0: it separates documents.

# %%
import torch

from llmcourse.data.packing import (
    EOS,
    make_get_batch,
    open_token_file,
    pack_blocks,
    token_stream,
    tokenize_dataset,
    train_bpe,
    write_token_file,
)

STREAMED = prof.pick(ci=None, cpu=("tinystories", 5_000_000), gpu=("fineweb-edu", 100_000_000))
if online() and STREAMED:  # Colab: a real corpus, streamed once and cached
    CORPUS, budget = STREAMED
    docs_all = list(corpus_documents(CORPUS, max_tokens=budget))
else:
    CORPUS = "python-stdlib-code"
    docs_all = [f.document for f in pool if f.path in clean_paths]  # "# file: <path>\n<source>"
n_val = max(1, len(docs_all) // 10)
docs = {"train": docs_all[:-n_val], "val": docs_all[-n_val:]}
VOCAB = prof.pick(ci=512, cpu=2048, gpu=4096)
tok = train_bpe(docs["train"], vocab_size=VOCAB)
code = "def add(a, b):\n    return a + b\n"
print(CORPUS, {k: len(v) for k, v in docs.items()}, f"{len(tok.encode(code).ids)} tokens:",
      tok.encode(code).tokens[:8], "| <|endoftext|> =", tok.token_to_id(EOS))
assert tok.get_vocab_size() == VOCAB and tok.decode(tok.encode(code).ids) == code

# %% [markdown]
# Documents have all sorts of lengths, but a GPU wants a rectangular batch. **Packing**
# concatenates the documents, each followed by `<|endoftext|>`, and cuts the stream into blocks
# of `block_size + 1` tokens: the inputs are a block's first `block_size` tokens, the targets the
# same block shifted by one. No padding, no wasted compute. Both steps are `datasets` batched
# maps, so they scale to corpora that do not fit in memory.

# %%
BLOCK = prof.gpt["block_size"]
tokenized = {name: tokenize_dataset(d, tok) for name, d in docs.items()}
blocks = pack_blocks(tokenized["train"], block_size=BLOCK)
print(blocks.column_names, len(blocks[0]["input_ids"]))
first = blocks[0]["input_ids"]
assert len(first) == BLOCK + 1
flat = [t for row in tokenized["train"]["input_ids"][:50] for t in row]
assert first == flat[: BLOCK + 1]  # packing keeps the order and loses nothing but the tail

# %% [markdown]
# For a large corpus, the token ids go to a flat binary file (`uint16` when the vocabulary has
# at most 65,536 tokens) that is **memory-mapped**: the operating system pages in only what a
# batch reads. A batch is `batch_size` random windows; the random numbers come from a
# `torch.Generator` we own, so the same generator state gives the same batch — the key to
# resuming a run exactly.

# %%
import tempfile
from pathlib import Path

work = Path(tempfile.mkdtemp(prefix="ch07-"))
for name, ds in tokenized.items():
    write_token_file(token_stream(ds), work / f"{name}.bin", vocab_size=VOCAB)
train_tokens, val_tokens = open_token_file(work / "train.bin"), open_token_file(work / "val.bin")
print(type(train_tokens).__name__, train_tokens.dtype)

BATCH = prof.batch_size
get_batch = make_get_batch(train_tokens, BATCH, BLOCK)
get_val_batch = make_get_batch(val_tokens, BATCH, BLOCK)
x, y = get_batch(torch.Generator().manual_seed(0))
x2, _ = get_batch(torch.Generator().manual_seed(0))
print(tuple(x.shape), tuple(y.shape))
assert torch.equal(x, x2) and torch.equal(x[:, 1:], y[:, :-1])

# %% [markdown]
# Before training anything, know what the run will see: its tokens against the corpus's
# (**epochs**: more than a few and the model memorises instead of generalising) and against the
# model's parameters (Chinchilla's compute-optimal is about 20 tokens per parameter; chapter 08).

# %%
import math

from llmcourse.model import GPT, GPTConfig
from llmcourse.pretrain import run_plan


def new_model(seed: int = 0, size: dict | None = None) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, **(size or prof.gpt), dropout=0.0))


STEPS = prof.pick(ci=150, cpu=250, gpu=5000)
model = new_model()
plan = run_plan(len(train_tokens), BATCH * BLOCK, STEPS, model.num_params())
print(f"{CORPUS}: {len(train_tokens):,} training tokens; the main run (section 9) sees "
      f"{plan['run_tokens']:,} = {plan['epochs']:.2f} epochs; {plan['params']:,} parameters, "
      f"{plan['tokens_per_param']:.1f} tokens per parameter")
assert plan["epochs"] < 4  # not memorisation

# %% [markdown]
# ## 4. The model, before training
#
# The GPT of chapter 04, at the profile's size. Before training it is a uniform guesser: its
# loss is about $\ln V$ and its samples are noise. For code there is a sharper test than the
# loss: does Python's own parser accept what the model writes? We sample snippets and count the
# share of their complete lines that `ast.parse` accepts (a line ending in `:` gets a `pass` body;
# blank and comment lines are skipped).

# %%
import ast
import warnings


def sample(m: GPT, prompt: str = "def ", n: int = 40) -> str:
    idx = torch.tensor([tok.encode(prompt).ids], device=next(m.parameters()).device)
    out = m.generate(idx, n, temperature=0.8, top_k=50, generator=torch.Generator(idx.device).manual_seed(0))
    return tok.decode(out[0].tolist())


def parses(line: str) -> bool:
    try:
        with warnings.catch_warnings():  # invalid escape sequences warn
            warnings.simplefilter("ignore")
            ast.parse(line + (" pass" if line.endswith(":") else ""))
        return True
    except (SyntaxError, ValueError):
        return False


def parse_share(m: GPT, n: int = 64, length: int = 48) -> float:
    """The share of complete, non-comment lines in n sampled snippets that ast.parse accepts."""
    start = torch.full((n, 1), tok.token_to_id(EOS), device=next(m.parameters()).device)
    out = m.generate(start, length, temperature=0.7, top_k=20,
                     generator=torch.Generator(start.device).manual_seed(0))
    lines = [ln.strip() for row in out.tolist() for ln in tok.decode(row[1:]).split("\n")[:-1]]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    return sum(map(parses, lines)) / max(1, len(lines))


with torch.no_grad():
    loss0 = model(x, y)[1].item()
share0 = parse_share(model)
print(f"loss {loss0:.1f} ≈ ln V = {math.log(VOCAB):.1f}; lines that parse: {share0:.0%}")
assert abs(loss0 - math.log(VOCAB)) < 0.5 and parses("x = f(a, b)") and not parses("x = (")

# %% tags=["nbval-ignore-output"]
print(sample(model))

# %% [markdown]
# ## 5. The learning rate, the schedule and the optimiser
#
# Nothing matters more for a run than the learning rate. Almost every LLM run warms up (tiny
# steps while Adam's moment estimates are still noisy) and then decays. `lr_at(step, cfg)` is the
# schedule the `Trainer` follows. **Warmup–stable–decay** (`schedule="wsd"`, MiniCPM, 2024;
# used by DeepSeek and others) holds the peak until the last `decay_frac` of the run (20%) and
# then decays — so one long constant run can be branched into decayed models of any length,
# and a run can be extended without restarting.

# %%
from llmcourse.train import TrainConfig, lr_at

steps = list(range(0, 1000, 5))
fig = go.Figure()
for sched in ("cosine", "linear", "constant", "wsd"):
    c = TrainConfig(max_steps=1000, lr=1e-3, warmup_steps=100, schedule=sched)
    fig.add_scatter(x=steps, y=[lr_at(s, c) for s in steps], name=sched)
fig.update_layout(height=300, xaxis_title="step", yaxis_title="learning rate",
                  margin=dict(t=30, b=40))
cos = TrainConfig(max_steps=1000, lr=1e-3, warmup_steps=100)
wsd = TrainConfig(max_steps=1000, lr=1e-3, warmup_steps=100, schedule="wsd")
assert lr_at(0, cos) == 1e-5 and lr_at(99, cos) == 1e-3  # linear warm-up
assert abs(lr_at(550, cos) - 5.5e-4) < 1e-12 and abs(lr_at(1000, cos) - 1e-4) < 1e-12
assert lr_at(799, wsd) == 1e-3 and lr_at(1000, wsd) == 1e-4 and lr_at(900, wsd) < 1e-3
assert [t.name for t in fig.data] == ["cosine", "linear", "constant", "wsd"]
fig

# %% [markdown]
# Which choices pay off is an experiment, so we run them. To afford a dozen runs on a laptop
# they use a small model (2 layers, 32 wide, 8 sequences of 64 tokens a step, 200 steps: seconds
# each; on a GPU the profile's model at 1,000 steps). Every run starts from the same weights and
# draws the same batches (the `Trainer` seeds its own generator), so the runs differ only in what
# we change; each is scored by its loss on the validation files.
#
# **A learning-rate sweep.** AdamW with warm-up and cosine decay, at peak rates a factor of 3 apart:

# %%
from llmcourse.train import Trainer

EXP = prof.pick(ci=None, cpu=None, gpu=prof.gpt) or dict(n_layer=2, n_head=2, n_embd=32, block_size=64)
EXP_STEPS, EXP_BATCH = prof.pick(ci=200, cpu=200, gpu=1000), prof.pick(ci=8, cpu=8, gpu=BATCH)
exp_batch = make_get_batch(train_tokens, EXP_BATCH, EXP["block_size"])
exp_val = make_get_batch(val_tokens, 32, EXP["block_size"])


def exp_run(model: torch.nn.Module | None = None, steps: int = EXP_STEPS, data=exp_batch,
            **kw) -> tuple[float, list[dict], torch.nn.Module]:
    """Train (a fresh copy of the small model unless `model` is given) on `data`; return
    (validation loss, metrics records, model)."""
    kw = {"lr": 3e-3, "warmup_steps": steps // 10, **kw}
    c = TrainConfig(max_steps=steps, log_every=1, eval_iters=10, precision=prof.precision,
                    progress=False, **kw)
    t = Trainer(model or new_model(seed=0, size=EXP), c, data, val_data=exp_val)
    records = t.fit()
    return t.evaluate(), records, t.raw_model


LRS = prof.pick(ci=None, cpu=[1e-3, 1e-2, 1e-1], gpu=[3e-4, 1e-3, 3e-3, 1e-2]) or [1e-3, 3e-3, 1e-2]
sweep = {lr: exp_run(lr=lr) for lr in LRS}
fig = go.Figure(go.Scatter(x=LRS, y=[v for v, *_ in sweep.values()], mode="lines+markers"))
fig.update_layout(height=300, xaxis_type="log", xaxis_title="peak learning rate (AdamW)",
                  yaxis_title="validation loss", margin=dict(t=30, b=40))
best_lr = min(sweep, key=lambda lr: sweep[lr][0])
assert len(fig.data[0].x) == len(LRS)
fig

# %% tags=["nbval-ignore-output"]
print({f"{lr:g}": round(v, 3) for lr, (v, *_) in sweep.items()}, "best:", best_lr)

# %%
assert best_lr not in (LRS[0], LRS[-1])  # a U: the best rate is inside the sweep
assert min(sweep[LRS[0]][0], sweep[LRS[-1]][0]) > sweep[best_lr][0] + 0.1

# %% [markdown]
# The **U-curve**: too small a rate and the run has not got far in its budget; too large and
# the steps overshoot, so the loss stalls high. The bottom is broad on a log scale (a factor of
# 3 either side costs little) — which is why people sweep in factors of 3 and why the rate
# that works for a small model is the starting guess for a bigger one (smaller: chapter 08).
#
# **Schedules.** At the best rate: constant, cosine and WSD. The WSD run *is* the constant run
# until 80% of its steps, so we do not train it again: we resume the constant run's checkpoint
# with the schedule changed and train only the decay — and the same for a run half as long, from
# the checkpoint at 40%.

# %%
const_dir = work / "constant"
const_val, const_recs, _ = exp_run(lr=best_lr, schedule="constant", out_dir=str(const_dir),
                                ckpt_every=EXP_STEPS * 2 // 5, keep_last=3, eval_every=EXP_STEPS // 10)
const_curve = {r["step"]: r["val_loss"] for r in const_recs if r["kind"] == "eval"}


def wsd_branch(length: int) -> tuple[float, list[dict]]:
    """WSD over `length` steps = the constant run until 0.8 * length, then its decay."""
    c = TrainConfig(max_steps=length, lr=best_lr, warmup_steps=EXP_STEPS // 10, schedule="wsd",
                    log_every=1, eval_iters=10, precision=prof.precision, progress=False,
                    resume_allow=("schedule", "max_steps", "ckpt_every", "keep_last", "eval_every"))
    t = Trainer(new_model(seed=1, size=EXP), c, exp_batch, val_data=exp_val,
                resume=const_dir / "checkpoints" / f"step_{length * 4 // 5:06d}")
    records = t.fit()
    return t.evaluate(), records


half_val, _ = wsd_branch(EXP_STEPS // 2)
wsd_val, wsd_recs = wsd_branch(EXP_STEPS)
cos_val = sweep[best_lr][0]
results = {"constant": const_val, "cosine": cos_val, "wsd": wsd_val}
print("constant run evaluated at steps", sorted(const_curve))
assert sorted(const_curve) == list(range(EXP_STEPS // 10, EXP_STEPS + 1, EXP_STEPS // 10))
assert wsd_recs[0]["step"] == EXP_STEPS * 4 // 5 + 1 and wsd_recs[0]["lr"] > 0.9 * best_lr  # the branch starts at the peak rate...
assert wsd_recs[-1]["lr"] < best_lr / 5  # ...and decays to the end

# %% tags=["nbval-ignore-output"]
print({k: round(v, 3) for k, v in results.items()},
      f"| half length: constant {const_curve[EXP_STEPS // 2]:.3f}, wsd {half_val:.3f}")

# %%
assert min(const_val, wsd_val) < cos_val  # spending the run near the peak pays at this length
decay_gain_full = const_val - wsd_val
decay_gain_half = const_curve[EXP_STEPS // 2] - half_val

# %% [markdown]
# What these runs show, honestly:
#
# - **Cosine ends highest.** The model is far from converged, and cosine spends most of the run
#   well below its peak: progress given up. The constant rate and WSD, at the peak for most of
#   the run, end lower.
# - **At these lengths the decay does not pay.** The "gain" of WSD's decay over staying
#   constant (below) is not positive at half the length nor at the full length: while the loss
#   is limited by the distance still to go, every smaller step is progress given up. Decay pays
#   once the loss is limited by the noise of the steps instead, and shrinking them lets it
#   settle — that is, once the run is long for its model. When this chapter was written, a run
#   3× longer with a model 2× wider (600 steps of the 64-wide model, 16 sequences a step) had
#   crossed over: WSD 3.01, constant 3.10, cosine 3.13. Every LLM run is long in this sense
#   (Hägele et al. 2024: WSD matches cosine at every length; MiniCPM); the `gpu` profile's
#   1,000-step runs of the profile's model are the place to see it in this notebook.
# - WSD gave both lengths for the price of one constant run and two short decays; cosine would
#   need a new run for each length, because its shape depends on `max_steps`.

# %% tags=["nbval-ignore-output"]
print(f"gain of the decay: {decay_gain_half:+.3f} at half length, {decay_gain_full:+.3f} at full")

# %%
assert decay_gain_full < 0.02 and decay_gain_half < 0.02  # no gain from decaying at these lengths

# %% [markdown]
# **AdamW vs Muon.** Muon (Jordan et al. 2024; Moonlight, Kimi K2) updates each weight matrix
# with its momentum *orthogonalised* (five Newton–Schulz iterations): every direction of the
# matrix moves by the same amount, instead of a few dominant ones taking all of the step.
# Embeddings, the output head, norms and biases stay on AdamW. `TrainConfig(optimizer="muon")`;
# the same run and cosine schedule, at 3× AdamW's best rate (Muon's updates are scaled to AdamW's
# size, but it tolerates larger rates; at AdamW's own best rate it was ahead too when this chapter
# was written, by less):

# %%
muon_val, muon_recs, _ = exp_run(lr=3 * best_lr, optimizer="muon")

# %% tags=["nbval-ignore-output"]
print(f"AdamW at its best rate {best_lr:g}: {sweep[best_lr][0]:.3f}; Muon at {3 * best_lr:g}: {muon_val:.3f}")

# %%
assert muon_val < sweep[best_lr][0] - 0.1

# %% [markdown]
# At this size Muon reaches a clearly lower loss in the same steps. Honestly weighed: the gap
# is largest for small models and short runs; at scale the reported gain is about 2× in
# compute-efficiency (Moonlight) or less, Muon's step costs more (on a GPU a few percent; on
# this CPU 1.3–1.8× AdamW's, because PyTorch runs the Newton–Schulz iterations in bf16, which
# CPUs without bf16 instructions emulate), and it needs its own learning-rate tuning. The main
# run below uses it, because here it wins.
#
# ## 6. A loss spike, and gradient clipping
#
# Large runs see **loss spikes**: a bad batch, an fp16 overflow, an unlucky step. One huge
# gradient can undo hours of training: the step itself is huge, and Adam's second-moment
# estimate $v$ jumps with it, so for the next ~50 steps every update is shrunk. **Clipping**
# rescales the gradient when its norm exceeds a limit (`grad_clip=1.0`, the `Trainer`'s default).
# We inject a spike — at its 50th step the model's loss is multiplied by 1,000 — and train twice,
# with and without clipping:

# %%
from plotly.subplots import make_subplots


class Spiky(GPT):
    """A GPT whose training loss is multiplied by `factor` at one forward pass."""

    def __init__(self, config: GPTConfig, at: int, factor: float = 1000.0) -> None:
        super().__init__(config)
        self.calls, self.at, self.factor = 0, at, factor

    def forward(self, idx, targets=None):
        logits, loss = super().forward(idx, targets)
        if self.training and targets is not None:
            self.calls += 1
            if self.calls == self.at:
                loss = loss * self.factor
        return logits, loss


SPIKE_STEPS, SPIKE_AT = 120, 50
spike = {}
for clip in (1.0, None):
    torch.manual_seed(0)
    spiky = Spiky(GPTConfig(vocab_size=VOCAB, **EXP, dropout=0.0), at=SPIKE_AT)
    _, recs_, _ = exp_run(spiky, steps=SPIKE_STEPS, lr=best_lr, grad_clip=clip)
    spike["clipped" if clip else "not clipped"] = recs_
fig = make_subplots(rows=1, cols=2, subplot_titles=("gradient norm (before clipping)", "training loss"))
for name, recs_ in spike.items():
    fig.add_scatter(x=[r["step"] for r in recs_], y=[r["grad_norm"] for r in recs_], name=name,
                    legendgroup=name, row=1, col=1)
    fig.add_scatter(x=[r["step"] for r in recs_], y=[min(r["loss"], 8) for r in recs_], name=name,
                    legendgroup=name, showlegend=False, row=1, col=2)
fig.add_hline(y=1.0, line_dash="dot", row=1, col=1)
fig.update_yaxes(type="log", row=1, col=1)
fig.update_layout(height=320, margin=dict(t=40, b=40))
assert [t.name for t in fig.data] == ["clipped", "clipped", "not clipped", "not clipped"]
fig

# %%
norms = [r["grad_norm"] for r in spike["clipped"]]
spike_norm, typical = norms[SPIKE_AT - 1], sorted(norms)[len(norms) // 2]
print(f"at the spike the gradient norm is {spike_norm:.0f}, a typical step's {typical:.1f}")
assert spike_norm > 100 * typical  # the injected spike is there


def mean_loss(recs_: list[dict], first: int, last: int) -> float:  # steps first..last
    return sum(r["loss"] for r in recs_[first - 1:last]) / (last - first + 1)

# %% tags=["nbval-ignore-output"]
print({name: (round(mean_loss(r, SPIKE_AT - 10, SPIKE_AT - 1), 3),
              round(mean_loss(r, SPIKE_STEPS - 29, SPIKE_STEPS), 3)) for name, r in spike.items()},
      "(mean loss of the 10 steps before the spike, and of the last 30 steps)")

# %%
before = {name: mean_loss(r, SPIKE_AT - 10, SPIKE_AT - 1) for name, r in spike.items()}
after = {name: mean_loss(r, SPIKE_STEPS - 29, SPIKE_STEPS) for name, r in spike.items()}
assert abs(before["clipped"] - before["not clipped"]) < 0.05  # level before the spike
assert after["not clipped"] > after["clipped"] + 0.1  # far apart after it

# %% [markdown]
# Level before the spike (clipping also trimmed a few of the first, largest gradients, so the
# two runs are not bit-identical); then the unclipped run jumps and stays behind to the end,
# while the clipped one barely notices: its spike step was scaled down to a normal-sized step. The
# norm before clipping is what the `Trainer` logs (`grad_norm`), so spikes show up in the
# metrics either way. Clipping is not a cure for a learning rate that is too high (the sweep's
# right end was clipped too) — it is insurance against the rare bad step. The `Trainer` also
# stops a run whose loss or gradient becomes NaN or infinite (section 12).
#
# ## 7. Gradient accumulation equals a bigger batch — when the tokens are counted
#
# A batch that does not fit in memory can be split into micro-batches: add up their gradients
# and take one optimiser step. With packed blocks every micro-batch holds the same number of
# target tokens, so dividing each micro-batch's loss by the number of micro-batches $k$ gives the
# big batch's gradient, up to float rounding:

# %% tags=["nbval-ignore-output"]
m = new_model()
m.zero_grad()
m(x, y)[1].backward()  # one batch of BATCH rows
big = [p.grad.clone() for p in m.parameters()]

m.zero_grad()
half = BATCH // 2
for xs, ys in ((x[:half], y[:half]), (x[half:], y[half:])):  # two micro-batches
    (m(xs, ys)[1] / 2).backward()  # gradients add up in .grad
acc = [p.grad.clone() for p in m.parameters()]
err = max((a - b).abs().max().item() for a, b in zip(big, acc))
print(f"largest difference from the big batch's gradient: {err:.0e}")
assert err < 1e-6

# %% [markdown]
# That is true only for **equal token counts**. When targets are masked (`-100`: padding, a
# prompt in fine-tuning), each micro-batch's loss is a mean over its *own* targets, and loss/k
# gives a token in a sparse micro-batch more weight than one in a full micro-batch. The right
# weight is each micro-batch's share of the step's targets — what `TrainConfig(grad_accum=k)`
# does (chapter 10 needs it for SFT):

# %%
y_masked = y.clone()
y_masked[:half, BLOCK // 4:] = -100  # the first micro-batch keeps a quarter of its targets
m.zero_grad()
m(x, y_masked)[1].backward()
big = [p.grad.clone() for p in m.parameters()]
counts = [(ys != -100).sum() for ys in (y_masked[:half], y_masked[half:])]
for weights, name in (([0.5, 0.5], "loss / k"), ([c / sum(counts) for c in counts], "token-weighted")):
    m.zero_grad()
    for w, xs, ys in zip(weights, (x[:half], x[half:]), (y_masked[:half], y_masked[half:])):
        (m(xs, ys)[1] * w).backward()
    err = max((a - p.grad).abs().max().item() for a, p in zip(big, m.parameters()))
    print(f"{name:15} largest gradient error {err:.1e}")
    assert (err < 1e-6) == (name == "token-weighted")

# %% [markdown]
# ## 8. Mixed precision
#
# GPUs multiply 16-bit numbers several times faster than 32-bit ones. **Autocast** runs the
# matrix multiplications in 16 bits and keeps the weights, the optimizer state and sensitive
# operations (softmax, losses, norms) in fp32:
#
# - **bf16** (A100, L4, H100…) has fp32's range with fewer digits: it just works.
# - **fp16** (T4, older GPUs) has a narrow range: small gradients underflow to zero. A
#   `GradScaler` multiplies the loss by a large factor before `backward()`, divides the
#   gradients back before the step, and skips steps whose gradients overflowed.
# - On **CPU** it depends on the chip: with native bf16 instructions (AVX512-BF16, AMX) bf16
#   was 15–20% faster on the course's 2-core AMD EPYC; without them it is emulated and slower.
#   `precision="auto"` keeps fp32 on CPU, where exact, portable results matter more than a
#   modest speed-up. To choose by speed instead, `fastest_precision(model, batch)` times a
#   training step in each precision on *your* machine and returns the faster one to pass as
#   `TrainConfig(precision=...)` — the cell below does it.
#
# TF32 (fp32 matmuls on tensor cores) is switched on for Ampere and newer GPUs.

# %%
from llmcourse.train import autocast_context, resolve_precision

m = new_model()
with torch.no_grad():
    logits32, l32 = m(x, y)
    with autocast_context("bf16", torch.device("cpu")):
        logits16, l16 = m(x, y)
gap = (logits16.float() - logits32).abs().max().item()
print(resolve_precision("auto", torch.device("cpu")), logits16.dtype, f"loss fp32 {l32.item():.2f}, bf16 {l16.item():.2f}")
assert logits16.dtype == torch.bfloat16 and resolve_precision("auto", torch.device("cpu")) == "fp32"
assert 1e-4 < gap < 0.1  # it did run in bf16 (not identical to fp32), and stayed close

# %% tags=["nbval-ignore-output"]
import time

from llmcourse.hardware import native_bf16
from llmcourse.train import fastest_precision

mixed = "fp16" if device.type == "cuda" and not native_bf16() else "bf16"
fastest, times = fastest_precision(new_model(), (x, y), device=device, candidates=("fp32", mixed),
                                   steps=2)
print({p: f"{1000 * t:.1f} ms/step" for p, t in times.items()}, f"→ fastest here: {fastest}",
      f"| auto picks {resolve_precision('auto', device)}")

# %%
assert set(times) == {"fp32", mixed} and all(t > 0 for t in times.values())

# %% [markdown]
# ## 9. Training with the `Trainer`
#
# `Trainer(model, TrainConfig(...), train_data, val_data)` runs the loop: schedule, the
# optimiser (AdamW with weight decay on matrices only, fused on CUDA; or Muon), accumulation,
# clipping, mixed precision, evaluation, metrics and checkpoints. The data is our
# `get_batch(generator)`; an iterable or a `DataLoader` of batches works too. The dashboard below
# updates live while it trains. This is the profile's model, with Muon (section 5).

# %%
from llmcourse.train import read_metrics
from llmcourse.widgets import Dashboard

run_dir = work / "run"
cfg = TrainConfig(max_steps=STEPS, optimizer="muon", lr=prof.pick(ci=1e-2, cpu=6e-3, gpu=3e-3),
                  warmup_steps=STEPS // 10, eval_every=STEPS // 4, eval_iters=prof.eval_iters,
                  log_every=max(1, STEPS // 40), ckpt_every=STEPS // 2, out_dir=str(run_dir),
                  precision=prof.precision, compile=prof.compile and device.type == "cuda",
                  progress=False)
dash = Dashboard()
trainer = Trainer(model, cfg, get_batch, val_data=get_val_batch, callbacks=[dash.update])
val_before = trainer.evaluate()

# %% tags=["nbval-ignore-output"]
dash.widget

# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
history = trainer.fit()
train_seconds = time.perf_counter() - t0
val_after = trainer.evaluate()
share1 = parse_share(model)
print(f"{STEPS} steps in {train_seconds:.0f} s; val loss {val_before:.2f} → {val_after:.2f}; "
      f"lines that parse {share0:.0%} → {share1:.0%}")

# %%
recs = read_metrics(run_dir)
assert {r["kind"] for r in recs} == {"train", "eval"} and recs == dash.records
assert val_after < val_before - 1.0  # it learned
assert recs[-1]["step"] == STEPS and trainer.state.tokens == STEPS * BATCH * BLOCK
assert CORPUS != "python-stdlib-code" or share1 > max(2 * share0, share0 + 0.08)  # it writes Python
fig = dash.figure()  # the same plot without a live kernel: figure_from_metrics(run_dir)
assert [t.name for t in fig.data] == ["train loss", "val loss", "lr", "tokens/s"]
fig

# %% [markdown]
# The parser agrees with the loss: the share of lines Python accepts rose several-fold. At the
# `ci` size the samples are still far from working code (run with `LLMCOURSE_PROFILE=gpu` to see
# functions that make sense):

# %% tags=["nbval-ignore-output"]
print(sample(model, n=60))

# %% [markdown]
# ## 10. Did the cleaning pay?
#
# Two runs of the small model, the same steps, scored on the same (clean) validation files: the
# sweep's run at the best rate, which trained on the cleaned pool, and the same run on the raw
# pool (duplicates and generated tables included). And each model's loss on the files the
# cleaning removed. (In the `ci` profile's pool near-deduplication removes one file of a pair and
# the filter six more — all generated codec tables — so the two steps are measured together.)

# %%
val_heads = {d.split("\n", 1)[0] for d in docs["val"]}  # "# file: <path>" of the validation files
raw_train = [f.document for f in pool if f.document.split("\n", 1)[0] not in val_heads]
removed = [f.document for f in pool if f.path not in clean_paths]


def tokens_of(documents: list[str], name: str):
    write_token_file(token_stream(tokenize_dataset(documents, tok)), work / f"{name}.bin",
                     vocab_size=VOCAB)
    return open_token_file(work / f"{name}.bin")


def loss_on(m: GPT, tokens, n: int = 10) -> float:
    get, g = make_get_batch(tokens, 32, EXP["block_size"]), torch.Generator().manual_seed(0)
    with torch.no_grad():
        return sum(m(*get(g))[1].item() for _ in range(n)) / n


cleaning = {}
if CORPUS == "python-stdlib-code" and removed:
    removed_tokens, raw_tokens = tokens_of(removed, "removed"), tokens_of(raw_train, "raw")
    raw_val, _, raw_model = exp_run(lr=best_lr, data=make_get_batch(raw_tokens, EXP_BATCH, EXP["block_size"]))
    clean_val, _, clean_model = sweep[best_lr]
    cleaning = {"raw": (len(raw_tokens), raw_val, loss_on(raw_model, removed_tokens)),
                "clean": (len(train_tokens), clean_val, loss_on(clean_model, removed_tokens))}
print(f"{len(removed)} of the pool's {len(pool)} files removed by the cleaning")

# %% tags=["nbval-ignore-output"]
for name, (n, val, rem) in cleaning.items():
    print(f"{name:5}: {n:,} training tokens, val loss {val:.3f}, loss on the removed files {rem:.3f}")

# %%
if cleaning:
    assert cleaning["raw"][2] < cleaning["clean"][2] - 0.3  # it learned the tables...
    assert cleaning["raw"][2] < cleaning["raw"][1] - 0.5  # ...which are easy
    assert cleaning["raw"][1] < cleaning["clean"][1]  # and here the raw pool was *better*

# %% [markdown]
# What this shows, and what it cannot:
#
# - The removed files are easy: repetitive tables, with a loss far below that of real code. A
#   model trained on the raw pool learns them, and a validation set that contained them would
#   look better than the model is — a reason to clean the validation data too.
# - On real code the raw pool gave the *lower* validation loss here. Both runs saw the same
#   number of tokens, so it is not "more data"; a likely reason is that at 200 steps the small
#   model is still learning surface syntax (quotes, commas, indentation), which the regular
#   tables teach quickly. It is a warning about small ablations, not a verdict on cleaning: at
#   scale the measured effects point the other way (FineWeb's deduplication and filters each
#   raised downstream scores in ablations of 1.8 B-parameter models on 28 B tokens; Lee et al.
#   2022 found that deduplicated training data makes models emit memorised text ten times less
#   often). Data decisions are made with runs big enough to see them.
#
# (The data card records what the cleaning removes: `docs/data_card.md`.)

# %% [markdown]
# ## 11. Interrupt and resume — exactly
#
# Long runs get interrupted. A checkpoint holds everything the next step depends on: the
# weights (`model.safetensors`), the optimizer's moments, the step (so the schedule continues),
# the RNG states of torch, NumPy and Python, and the data generator's state (so the next batch
# is the batch the uninterrupted run would have drawn). Then resuming is not "about the same":
# on a CPU it is **bit for bit** the same run. (Some GPU kernels are not deterministic, so on a
# GPU a resumed run matches only up to float rounding; this demo runs on the CPU everywhere.)
#
# Bit-for-bit needs the CPU and fp32 whatever the profile, so the demo uses a small fixed model
# (the `ci` profile's GPT) and small batches: a few seconds on any machine, instead of the
# profile's model crawling on a laptop's cores.

# %%
TINY = llmcourse.profile("ci").gpt  # 2 layers, 64 wide, blocks of 64 tokens, on every profile
get_tiny_batch = make_get_batch(train_tokens, 8, TINY["block_size"])


def short_run(out: str, until: int | None = None, resume: bool = False) -> Trainer:
    c = TrainConfig(max_steps=40, lr=3e-3, warmup_steps=4, log_every=5, ckpt_every=20,
                    out_dir=out, progress=False, device="cpu", precision="fp32")
    torch.manual_seed(1 if resume else 0)  # the resumed run starts from other weights...
    m = GPT(GPTConfig(vocab_size=VOCAB, **TINY, dropout=0.0))
    t = Trainer(m, c, get_tiny_batch, resume=resume)  # ...which the checkpoint overwrites
    t.fit(until=until)
    return t


straight = short_run(str(work / "straight"))
short_run(str(work / "interrupted"), until=20)  # stops after step 20's checkpoint
resumed = short_run(str(work / "interrupted"), resume=True)  # a fresh model, then the checkpoint
same = all(torch.equal(a, b) for a, b in zip(straight.raw_model.parameters(),
                                             resumed.raw_model.parameters()))
losses_a = [r["loss"] for r in read_metrics(work / "straight") if r["step"] > 20]
losses_b = [r["loss"] for r in read_metrics(work / "interrupted") if r["step"] > 20]
print("identical weights:", same, "| identical losses after the resume:", losses_a == losses_b)
assert same and losses_a == losses_b

# %% [markdown]
# Checkpoints are written to a temporary directory that is renamed into place (a rename is
# atomic), so a kill during a save never damages the previous checkpoint; the last
# `keep_last` are kept. And they contain **no pickled Python objects**: weights are
# safetensors, the rest is tensors and plain containers that `torch.load(weights_only=True)`
# reads. We can check what the pickle inside `state.pt` references:

# %%
from llmcourse.train import SAFE_PICKLE_GLOBALS, list_checkpoints, pickle_globals

ckpt = list_checkpoints(run_dir)[-1]
print(ckpt.name, sorted(p.name for p in ckpt.iterdir()))
refs = pickle_globals(ckpt / "state.pt")
print(sorted(refs))
assert refs <= SAFE_PICKLE_GLOBALS
state = torch.load(ckpt / "state.pt", weights_only=True)
assert state["step"] == STEPS

# %% [markdown]
# ## 12. The NaN guard
#
# A learning rate too high, a bad batch, an fp16 overflow: the loss becomes `nan` and every
# weight after it is garbage. The `Trainer` checks the loss and the gradient norm every step and
# stops *before* the update, naming the step, with the last good checkpoint untouched. Here a
# model whose loss turns infinite at its 13th forward pass:

# %%
from llmcourse.train import NonFiniteLossError


class Exploding(GPT):
    calls = 0

    def forward(self, idx, targets=None):
        logits, loss = super().forward(idx, targets)
        Exploding.calls += 1
        return logits, (loss * float("inf") if Exploding.calls > 12 else loss)


torch.manual_seed(0)
boom = Exploding(GPTConfig(vocab_size=VOCAB, **prof.gpt))
c = TrainConfig(max_steps=30, lr=1e-3, ckpt_every=10, out_dir=str(work / "boom"), progress=False)
try:
    Trainer(boom, c, get_batch).fit()
except NonFiniteLossError as err:
    print(str(err).split(" Last good")[0])
    print("checkpoints kept:", [p.name for p in list_checkpoints(work / "boom")])
assert [p.name for p in list_checkpoints(work / "boom")] == ["step_000010"]
assert all(torch.isfinite(p).all() for p in boom.parameters())

# %% [markdown]
# ## 13. Throughput and MFU
#
# **Tokens per second** is what you pay for. **MFU** (model FLOPs utilisation) says how much of
# the hardware's peak it is: training costs about $6N + 12 L H Q T$ FLOPs per token (PaLM's
# formula: $6N$ for the forward and backward matmuls of $N$ parameters, plus attention over
# $T$ positions), so
#
# $$\text{MFU} = \frac{\text{tokens/s} \times \text{FLOPs per token}}{\text{peak FLOP/s}}.$$
#
# Good GPU runs reach 40–60%. On a CPU there is no meaningful peak, so the `Trainer` logs
# `mfu=None` there.

# %%
from llmcourse.hardware import peak_flops

fpt = model.flops_per_token()
print(f"our model: {fpt:,} FLOPs per token")
with torch.device("meta"):  # sizes only: no memory, no initialisation
    gpt2 = GPT(GPTConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304))
fpt2 = gpt2.flops_per_token()
print(f"GPT-2 124M: {fpt2 / 1e9:.2f} GFLOPs per token")
for gpu, tps in (("T4", 20_000), ("A100", 180_000), ("H100", 450_000)):
    prec = "fp16" if gpu == "T4" else "bf16"
    print(f"  {gpu} {prec}: {tps:>7,} tokens/s would be MFU {tps * fpt2 / peak_flops(gpu, prec):.0%}")
assert abs(fpt2 / 1e9 - 0.85) < 0.05
del gpt2

# %% tags=["nbval-ignore-output"]
# the first window after torch.compile (gpu profile) reports None: compilation is not throughput
train_recs = [r for r in recs if r["kind"] == "train" and r["tokens_per_s"] is not None]
tps = sorted(r["tokens_per_s"] for r in train_recs)[len(train_recs) // 2]
print(f"this run: {tps:,.0f} tokens/s (median), {tps * fpt / 1e9:.2f} GFLOP/s, "
      f"MFU {train_recs[-1]['mfu']}, memory {train_recs[-1]['memory_mb']:.0f} MB")

# %%
assert all(r["tokens_per_s"] > 0 for r in train_recs)
assert device.type == "cuda" or all(r["mfu"] is None for r in train_recs)

# %% [markdown]
# ## 14. The same run from a terminal, on one GPU or many
#
# `python -m llmcourse.pretrain` runs this chapter's pipeline end to end and writes metrics,
# checkpoints, `model.safetensors` and a Hugging Face copy that `from_pretrained` loads:
#
# ```bash
# python -m llmcourse.pretrain --preset gpu --out runs/gpu          # ~10 M parameters
# python -m llmcourse.pretrain --preset gpu --out runs/gpu --resume # after an interruption
# torchrun --nproc_per_node=4 -m llmcourse.pretrain --preset gpt2-124m --out runs/124m
# ```
#
# Under `torchrun` (or `accelerate launch --multi_gpu`) the same `Trainer` wraps the model in
# PyTorch's `DistributedDataParallel`: each process takes its slice of every global batch, and
# gradients are averaged across processes — so N processes compute what one would (the test
# suite checks it with 2 CPU processes). A model too big for one GPU's memory takes
# `--strategy fsdp` (`TrainConfig(strategy="fsdp")`): PyTorch's FSDP shards parameters, gradients
# and optimizer state across the processes (chapter 08 counts what that saves). Here is the `ci`
# preset, in-process:

# %% tags=["nbval-ignore-output"]
from llmcourse.pretrain import main as pretrain_main

summary = pretrain_main(["--preset", "ci", "--out", str(work / "cli"), "--max-steps", "20",
                         "--quiet"])
print(summary)

# %%
print(sorted(p.name for p in (work / "cli").iterdir()))
from transformers import AutoModelForCausalLM

hf = AutoModelForCausalLM.from_pretrained(work / "cli" / "hf")
print(type(hf).__name__)
assert summary["step"] == 20 and (work / "cli" / "model.safetensors").is_file()

# %% [markdown]
# ## 15. Masked-language-model pretraining (BERT)
#
# GPT learns to predict the **next** token. BERT learns to fill in **blanks**: pick 15% of the
# positions; replace 80% of them with `[MASK]`, 10% with a random token, leave 10% unchanged;
# the loss is cross-entropy at the picked positions only (every other label is `-100`, which
# the loss ignores). The model sees both sides of each blank: an encoder, not a generator.
#
# Masking by hand, driven by our generator:

# %%
MASK_ID = VOCAB  # one extra token after the BPE vocabulary
MLM_VOCAB = VOCAB + 1


def mask_tokens(ids: torch.Tensor, generator: torch.Generator, p: float = 0.15):
    """BERT masking: returns (inputs, labels) with labels -100 except at the picked positions."""
    labels = ids.clone()
    picked = torch.rand(ids.shape, generator=generator) < p
    labels[~picked] = -100
    inputs = ids.clone()
    r = torch.rand(ids.shape, generator=generator)
    inputs[picked & (r < 0.8)] = MASK_ID  # 80%: [MASK]
    rand = picked & (r >= 0.8) & (r < 0.9)  # 10%: a random token; 10%: unchanged
    inputs[rand] = torch.randint(VOCAB, (int(rand.sum()),), generator=generator)
    return inputs, labels


ids = torch.from_numpy(np.asarray(train_tokens[:64 * 256], dtype=np.int64)).view(256, 64)
inp, lab = mask_tokens(ids, torch.Generator().manual_seed(0))
picked = lab != -100
print(f"picked {picked.float().mean():.2f}, of which [MASK] {(inp[picked] == MASK_ID).float().mean():.1f}")
assert abs(picked.float().mean() - 0.15) < 0.01
assert torch.equal(lab[picked], ids[picked]) and torch.equal(inp[~picked], ids[~picked])
assert abs((inp[picked] == MASK_ID).float().mean() - 0.8) < 0.03

# %% [markdown]
# Hugging Face's `DataCollatorForLanguageModeling` implements the same rules (with its own
# random numbers): the same statistics, the same `-100` convention.

# %%
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast

hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=EOS, mask_token="[MASK]")
hf_mask = hf_tok.convert_tokens_to_ids("[MASK]")
collator = DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15, seed=0)
batch = collator([{"input_ids": row.tolist()} for row in ids])
picked_hf = batch["labels"] != -100
print(hf_mask == MASK_ID, f"picked {picked_hf.float().mean():.2f}")
assert hf_mask == MASK_ID  # "[MASK]" was added as token VOCAB, like ours
assert abs(picked_hf.float().mean() - 0.15) < 0.01
assert torch.equal(batch["labels"][picked_hf], ids[picked_hf])
assert abs((batch["input_ids"][picked_hf] == MASK_ID).float().mean() - 0.8) < 0.03

# %% [markdown]
# A tiny `BertForMaskedLM`, trained with the very same `Trainer` (it returns an output with a
# `.loss`, and batches are dicts):

# %%
from transformers import BertConfig, BertForMaskedLM

MLM_LEN = 64


def get_mlm_batch(generator: torch.Generator) -> dict:
    xb, _ = make_get_batch(train_tokens, BATCH, MLM_LEN)(generator)
    inputs, labels = mask_tokens(xb, generator)
    return {"input_ids": inputs, "labels": labels}


torch.manual_seed(0)
bert = BertForMaskedLM(BertConfig(vocab_size=MLM_VOCAB, hidden_size=prof.gpt["n_embd"],
                                  num_hidden_layers=prof.gpt["n_layer"],
                                  num_attention_heads=prof.gpt["n_head"],
                                  intermediate_size=4 * prof.gpt["n_embd"],
                                  max_position_embeddings=MLM_LEN, type_vocab_size=1,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
MLM_STEPS = prof.pick(ci=200, cpu=400, gpu=5000)
mlm = Trainer(bert, TrainConfig(max_steps=MLM_STEPS, lr=prof.pick(ci=3e-3, cpu=1e-3, gpu=1e-3),
                                warmup_steps=MLM_STEPS // 10, log_every=max(1, MLM_STEPS // 10),
                                precision=prof.precision, progress=False),
              get_mlm_batch, val_data=get_mlm_batch)
mlm_before = mlm.evaluate()

# %% tags=["nbval-ignore-output"]
mlm.fit()
mlm_after = mlm.evaluate()
counts = np.bincount(np.asarray(train_tokens), minlength=VOCAB).astype(np.float64)
freq = counts[counts > 0] / counts.sum()
unigram = float(-(freq * np.log(freq)).sum())  # the loss of guessing by token frequency alone
print(f"masked-LM loss {mlm_before:.2f} → {mlm_after:.2f} (token frequencies alone: {unigram:.2f})")

# %%
assert mlm_after < unigram - 0.1  # below the unigram baseline: it uses the context

# %% [markdown]
# A masked-LM first learns token frequencies — a loss that merely *drops* could be just that,
# so the baseline to beat is the unigram entropy (the loss of always guessing by frequency). Below
# it, the model is reading the context around each blank. With `LLMCOURSE_PROFILE=gpu` (and on a
# GPU, minutes) the blanks are filled with what fits.

# %% [markdown]
# Fill in the blank: mask one word of a sentence and ask for the five most likely tokens there.

# %% tags=["nbval-ignore-output"]
def fill_blank(sentence: str, blank: str, k: int = 5) -> list[str]:
    before, after = sentence.split(blank, 1)
    ids_ = tok.encode(before).ids + [MASK_ID] + tok.encode(after).ids
    bert.eval()
    with torch.no_grad():
        logits = bert(input_ids=torch.tensor([ids_], device=mlm.device)).logits[0]
    pos = ids_.index(MASK_ID)
    return [tok.decode([i]) for i in logits[pos, :VOCAB].topk(k).indices.tolist()]


for s, b in (("    def __init__(self, name):\n        self.name = name\n", " self"),
             ("for i in range(len(items)):\n    print(items[i])\n", " range")):
    print(repr(s.replace(b, " [MASK]", 1)), "→", fill_blank(s, b))

# %% [markdown]
# ## Exercises
#
# **1. Warm-up + cosine.** Write `warmup_cosine(step, max_steps, lr, warmup, min_lr)`: a linear
# warm-up where step 0 gets `lr / warmup` and step `warmup - 1` gets `lr`, then a cosine from
# `lr` down to `min_lr` at `max_steps` (and `min_lr` after it).

# %%
from llmcourse.exercises.pretraining import check_pack, check_warmup_cosine


def warmup_cosine(step: int, max_steps: int, lr: float, warmup: int, min_lr: float) -> float:
    raise NotImplementedError  # your code here


check_warmup_cosine(warmup_cosine)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Warm-up is `lr * (step + 1) / warmup`; afterwards the progress through the decay is
# `(step - warmup) / (max_steps - warmup)`, clipped at 1, and the cosine goes from 1 to 0 over it.
# </details>

# %% jupyter={"source_hidden": true}
def warmup_cosine_solution(step, max_steps, lr, warmup, min_lr):
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


assert check_warmup_cosine(warmup_cosine_solution)

# %% [markdown]
# A schedule that forgets to stop at `max_steps` (the cosine comes back up) fails the checker:

# %%
def cosine_that_comes_back(step, max_steps, lr, warmup, min_lr):
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, max_steps - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


assert not check_warmup_cosine(cosine_that_comes_back)

# %% [markdown]
# **2. Packing.** Write `pack(docs, block_size, eos)`: append `eos` to each document (a list of
# token ids), concatenate them all, cut the stream into blocks of `block_size + 1` tokens, and
# drop the tail that does not fill a block.

# %%
def pack(docs: list[list[int]], block_size: int, eos: int) -> list[list[int]]:
    raise NotImplementedError  # your code here


check_pack(pack)

# %% [markdown]
# <details><summary><b>Solution</b></summary>
#
# Flatten with the separators, then slice every `block_size + 1` tokens up to the last full block.
# </details>

# %% jupyter={"source_hidden": true}
def pack_solution(docs, block_size, eos):
    flat = [t for d in docs for t in [*d, eos]]
    n = block_size + 1
    return [flat[i:i + n] for i in range(0, len(flat) // n * n, n)]


assert check_pack(pack_solution)

# %% [markdown]
# Forgetting the separator glues documents together — and the checker notices:

# %%
def pack_without_eos(docs, block_size, eos):
    flat = [t for d in docs for t in d]
    n = block_size + 1
    return [flat[i:i + n] for i in range(0, len(flat) // n * n, n)]


assert not check_pack(pack_without_eos)

# %% [markdown]
# **3. (Open)** Run the chapter with `LLMCOURSE_PROFILE=gpu` on Colab (online: it streams
# FineWeb-Edu), then redo section 5 on the real run: where is the bottom of the U now, does WSD's
# decay gain grow further with the length, and how much of Muon's lead is left?
#
# ## Summary
#
# - Pretraining data is cleaned before it is used: exact duplicates by hashing, near-duplicates
#   by MinHash + LSH (a signature's equal entries estimate the Jaccard similarity; bands find the
#   candidates; the exact check confirms them), then quality rules (Gopher's for prose, others
#   for code). Know the run's epochs and tokens per parameter before it starts.
# - Then: tokenize, **pack** into fixed blocks, memory-map, draw batches from a generator you own.
# - Sweep the learning rate (a U on a log scale); decay pays more the longer the run, and WSD
#   gives every length from one constant run; Muon beat AdamW at this size; clipping turns a
#   loss spike into a normal step.
# - A real loop: warm-up + decay, AdamW (decay on matrices) or Muon, accumulation (= a bigger
#   batch when each micro-batch is weighted by its tokens), clipping, bf16 (or fp16 +
#   GradScaler), a NaN guard.
# - Checkpoints: safetensors + plain-tensor state, atomic, and a resume that is bit-for-bit.
# - Throughput in tokens/s; MFU = achieved FLOP/s ÷ peak; `None` on CPU.
# - Masked-LM (BERT) is the same machinery with a different objective.
#
# Next: **08 · Scaling to 7B** — what it takes in memory, FLOPs and GPU-hours to go big.
