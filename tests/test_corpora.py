"""Tests of the code corpus (``python-stdlib-code``) and of the streamed hub corpora
(``tinystories``, ``fineweb-edu``), with a fake ``datasets.load_dataset``: no network."""

from __future__ import annotations

import ast
import json
import sysconfig
from pathlib import Path

import pytest

from llmcourse.data import (
    CODE_HEADER,
    CORPORA,
    HUB_CORPORA,
    OFFLINE_CORPORA,
    approx_tokens,
    corpus_documents,
    hub_revision,
    load_corpus,
    split_code_corpus,
    stdlib_code_files,
    stdlib_code_skipped,
)
from llmcourse.data import corpora as data
from llmcourse.env import HUB_REVISIONS


# ----------------------------------------------------------------------------- the code corpus
def test_code_corpus_is_large_stable_and_sorted():
    text = load_corpus("python-stdlib-code")
    assert len(text.encode("utf-8")) > 5_000_000
    assert load_corpus("python-stdlib-code") == text
    data._stdlib_code_scan.cache_clear()  # built again from the files: the same text
    assert data._join([f.document for f in stdlib_code_files()]) == text
    files = stdlib_code_files()
    paths = [f.path for f in files]
    assert paths == sorted(paths) and len(set(paths)) == len(paths)
    assert "asyncio/tasks.py" in paths and "json/decoder.py" in paths
    assert text.startswith(f"{CODE_HEADER}{paths[0]}\n") and text.endswith("\n")
    assert "python-stdlib-code" in OFFLINE_CORPORA and "python-stdlib-code" in CORPORA


def test_code_corpus_holds_no_tests_packages_or_build_files():
    root = Path(sysconfig.get_paths()["stdlib"])
    for f in stdlib_code_files():
        parts = f.path.split("/")
        assert f.path.endswith(".py") and not Path(f.path).is_absolute()
        assert not {"test", "tests", "idle_test", "site-packages", "dist-packages",
                    "__pycache__"} & set(parts[:-1]), f.path
        assert not parts[0].startswith("config-"), f.path
        assert (root / f.path).is_file()
    paths = {f.path for f in stdlib_code_files()}
    assert not any(p.startswith(("test/", "lib2to3/tests/", "idlelib/idle_test/")) for p in paths)
    for path, reason in stdlib_code_skipped():  # each file is kept or skipped with a reason
        assert path not in paths and reason


def test_code_files_are_python_and_split_back_into_documents():
    files = stdlib_code_files()
    parsed = 0
    for f in files:
        try:
            ast.parse(f.text)
            parsed += 1
        except SyntaxError:
            pass
    assert parsed > 0.95 * len(files)
    text = load_corpus("python-stdlib-code")
    docs = split_code_corpus(text)
    assert docs == [f.document for f in files] == list(corpus_documents("python-stdlib-code"))
    assert all(d.startswith(CODE_HEADER) for d in docs)
    assert all(f.text.strip() for f in files)  # empty files are skipped, not kept
    with pytest.raises(ValueError, match="python-stdlib-code"):
        split_code_corpus("import os\n")
    with pytest.raises(TypeError, match="text"):
        split_code_corpus(None)


def test_every_corpus_is_its_documents_joined():
    for name in ("python-reference", "python-docstrings", "python-stdlib-code"):
        assert load_corpus(name) == "\n\n".join(corpus_documents(name)) + "\n", name


def test_offline_budget_takes_whole_documents():
    full = corpus_documents("python-stdlib-code")
    for budget in (20_000, 123_457):
        text = load_corpus("python-stdlib-code", max_tokens=budget)
        assert approx_tokens(text) <= budget
        docs = split_code_corpus(text)
        assert docs == list(full[:len(docs)])  # a prefix of whole files
        nxt = "\n\n".join(full[:len(docs) + 1]) + "\n"
        assert approx_tokens(nxt) > budget  # stopped before the one that would exceed it
    assert load_corpus("python-reference", max_tokens=10**9) == load_corpus("python-reference")
    with pytest.raises(ValueError, match="max_tokens=1 is smaller than the first document"):
        load_corpus("python-stdlib-code", max_tokens=1)


def test_approx_tokens():
    assert approx_tokens("") == 0
    assert approx_tokens("abcd") == 1 and approx_tokens("abcde") == 2
    assert approx_tokens("é") == 1  # 2 bytes
    with pytest.raises(TypeError, match="text"):
        approx_tokens(b"abc")


def test_bad_arguments():
    for bad in (0, -5):
        with pytest.raises(ValueError, match="max_tokens"):
            load_corpus("python-stdlib-code", max_tokens=bad)
    for bad in (2.5, "100", True):
        with pytest.raises(TypeError, match="max_tokens"):
            load_corpus("python-reference", max_tokens=bad)
    with pytest.raises(ValueError, match="max_tokens is required"):
        load_corpus("tinystories")
    with pytest.raises(ValueError, match="python-stdlib-code"):
        load_corpus("python-stdlib")
    with pytest.raises(TypeError, match="name"):
        corpus_documents(3)
    with pytest.raises(ValueError, match="name"):
        hub_revision("python-reference")


# ----------------------------------------------------------------------------- hub corpora
def test_hub_corpora_are_pinned():
    assert set(HUB_CORPORA) == {"tinystories", "fineweb-edu"} and set(HUB_CORPORA) <= set(CORPORA)
    assert HUB_CORPORA["fineweb-edu"].config == "sample-10BT"
    for name, spec in HUB_CORPORA.items():
        assert hub_revision(name) == HUB_REVISIONS[spec.repo] and len(hub_revision(name)) == 40


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    monkeypatch.delenv("LLMCOURSE_ONLINE", raising=False)
    return tmp_path


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """Online, with ``datasets.load_dataset`` replaced by a generator of rows; records calls."""
    import datasets

    monkeypatch.setenv("LLMCOURSE_CACHE", str(tmp_path))
    monkeypatch.setenv("LLMCOURSE_ONLINE", "1")
    calls = []
    rows = [{"text": f"  Story {i}: " + "once upon a time " * (i % 7 + 1) + "\n\nThe end.  ",
             "id": i} for i in range(200)]
    rows.insert(3, {"text": "   \n"})  # an empty row: skipped

    def load_dataset(path, name=None, **kwargs):
        calls.append({"path": path, "name": name, **kwargs})
        return (dict(r) for r in rows)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls, rows, tmp_path


@pytest.mark.parametrize("name", sorted(HUB_CORPORA))
def test_hub_corpus_offline_is_a_connection_error(offline, name):
    with pytest.raises(ConnectionError, match="python-stdlib-code") as err:
        load_corpus(name, max_tokens=1_000)
    assert "LLMCOURSE_ONLINE=1" in str(err.value) and "python-reference" in str(err.value)


@pytest.mark.parametrize("name", sorted(HUB_CORPORA))
def test_hub_corpus_streams_a_budget_of_whole_documents_and_caches_it(fake_hub, monkeypatch, name):
    import datasets

    calls, rows, cache = fake_hub
    spec = HUB_CORPORA[name]
    text = load_corpus(name, max_tokens=500)
    assert calls == [{"path": spec.repo, "name": spec.config, "split": "train", "streaming": True,
                      "revision": HUB_REVISIONS[spec.repo]}]
    assert approx_tokens(text) <= 500
    docs = list(corpus_documents(name, max_tokens=500))
    assert text == "\n\n".join(docs) + "\n"
    whole = [r["text"].strip() for r in rows if r["text"].strip()]
    assert docs == whole[:len(docs)] and 0 < len(docs) < len(whole)  # whole rows, in order
    assert approx_tokens("\n\n".join(whole[:len(docs) + 1]) + "\n") > 500
    index = json.loads(next((cache / "hub").glob("*.json")).read_text())
    assert index["revision"] == hub_revision(name) and index["documents"] == len(docs)

    # the second call, even offline, reads the cache and never streams
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("streamed again"))
    monkeypatch.delenv("LLMCOURSE_ONLINE")
    assert load_corpus(name, max_tokens=500) == text
    assert corpus_documents(name, max_tokens=500) == tuple(docs)
    with pytest.raises(ConnectionError):  # another budget is another cache entry
        load_corpus(name, max_tokens=501)
    assert not list((cache / "hub").glob(".*.tmp"))


def test_hub_cache_damaged_is_streamed_again(fake_hub):
    calls, _, cache = fake_hub
    text = load_corpus("tinystories", max_tokens=300)
    txt = next((cache / "hub").glob("*.txt"))
    txt.write_text(text[:-5], encoding="utf-8")  # a damaged copy: not trusted
    assert load_corpus("tinystories", max_tokens=300) == text and len(calls) == 2


def test_hub_budget_smaller_than_the_first_document(fake_hub):
    _, _, cache = fake_hub
    with pytest.raises(ValueError, match="max_tokens=2 is smaller than the first document"):
        load_corpus("fineweb-edu", max_tokens=2)
    assert not (cache / "hub").exists() or not list((cache / "hub").iterdir())


def test_hub_rows_without_text_and_network_errors(monkeypatch, fake_hub):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: iter([{"story": "x"}]))
    with pytest.raises(ValueError, match="column 'text'"):
        load_corpus("tinystories", max_tokens=100)

    def refuse(*a, **k):
        raise OSError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    with pytest.raises(ConnectionError, match="no route to host.*python-reference"):
        load_corpus("fineweb-edu", max_tokens=100)

    def broken_stream(*a, **k):
        yield {"text": "one story"}
        raise OSError("connection reset")

    monkeypatch.setattr(datasets, "load_dataset", broken_stream)
    with pytest.raises(ConnectionError, match="connection reset"):
        load_corpus("fineweb-edu", max_tokens=100)
    _, _, cache = fake_hub
    assert not (cache / "hub").exists() or not list((cache / "hub").iterdir())
