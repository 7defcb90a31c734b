import hashlib
import io

import pytest

from llmcourse.data import corpora as data
from llmcourse.data import load_corpus, stdlib_docstrings, train_val_split


def test_python_reference_is_large_and_stable():
    text = load_corpus("python-reference")
    assert len(text) > 400_000
    assert load_corpus("python-reference") == text
    assert "assert" in text and "lambda" in text


def test_python_docstrings_deterministic_order():
    docs = stdlib_docstrings()
    assert len(docs) > 3_000
    names = [d.qualname for d in docs]
    assert len(names) == len(set(names)), "each object's docstring appears once"
    assert any(d.qualname == "posixpath.join" for d in docs)
    text = load_corpus("python-docstrings")
    assert len(text) > 1_000_000
    assert {d.kind for d in docs} == {"module", "class", "function", "method"}


def test_unknown_name_lists_valid():
    with pytest.raises(ValueError, match="python-reference, python-docstrings, python-stdlib-code, tiny-shakespeare"):
        load_corpus("wikipedia")
    with pytest.raises(TypeError):
        load_corpus(None)


def test_online_corpus_offline_names_offline_ones(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    monkeypatch.setenv("LLMCOURSE_OFFLINE", "1")
    with pytest.raises(ConnectionError, match="python-reference"):
        data._download("tiny-shakespeare")


class _Resp(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_download_checks_sha_and_caches(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    monkeypatch.delenv("LLMCOURSE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    payload = b"First Citizen:\nBefore we proceed any further, hear me speak.\n"
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda url, timeout: _Resp(payload))
    with pytest.raises(ValueError, match="sha256"):
        data._download("tiny-shakespeare")  # the real hash does not match our fake payload
    assert not list(tmp_path.iterdir()), "a file failing its check is never cached"
    url, _ = data.ONLINE_CORPORA["tiny-shakespeare"]
    monkeypatch.setitem(data.ONLINE_CORPORA, "tiny-shakespeare",
                        (url, hashlib.sha256(payload).hexdigest()))
    assert data._download("tiny-shakespeare") == payload.decode()
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: 1 / 0)
    assert data._download("tiny-shakespeare") == payload.decode(), "second call uses the cache"


def test_network_failure_is_connection_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    monkeypatch.delenv("LLMCOURSE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def fail(*a, **k):
        raise data.urllib.error.URLError("no route")

    monkeypatch.setattr(data.urllib.request, "urlopen", fail)
    with pytest.raises(ConnectionError, match="offline corpora"):
        data._download("tiny-shakespeare")


def test_train_val_split():
    a, b = train_val_split("abcdefghij", 0.2)
    assert (a, b) == ("abcdefgh", "ij")
    x, y = train_val_split(list(range(100)), 0.1)
    assert x == list(range(90)) and y == list(range(90, 100))
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="val_fraction"):
            train_val_split("abcdef", bad)
    with pytest.raises(TypeError, match="val_fraction"):
        train_val_split("abcdef", "0.1")
    with pytest.raises(ValueError, match="too short"):
        train_val_split("ab", 0.1)
    with pytest.raises(TypeError, match="data"):
        train_val_split(42, 0.1)


def test_docstrings_ignore_methods_other_packages_patch_into_stdlib(monkeypatch):
    import logging

    def warning_twice(self, msg):
        """Not the standard library's: a third-party package patched it in."""

    monkeypatch.setattr(logging.Logger, "warning_twice", warning_twice, raising=False)
    docs = data._module_docstrings("logging")
    names = {d.qualname for d in docs}
    assert "logging.Logger.warning" in names
    assert "logging.Logger.warning_twice" not in names
