"""Corpora the course trains on, offline first.

Offline corpora are built at run time from files every CPython ships, so the course runs with no
network at all:

* ``"python-reference"``: the Python language reference (``pydoc_data.topics``), ~465 KB of prose.
* ``"python-docstrings"``: docstrings of the standard library, in a fixed order (about 1.3 MB on CPython 3.11).
* ``"python-stdlib-code"``: the standard library's own source code, one document per ``.py``
  file (:func:`stdlib_code_files`), about 12 MB in 730 files on CPython 3.11.7. Each document
  is ``"# file: <path>\\n"`` followed by the file's text; documents are joined by ``"\\n\\n"``
  like the other corpora's, and :func:`split_code_corpus` cuts the joined text back into files.

Online corpora are downloaded once, checked against a sha256 and cached:

* ``"tiny-shakespeare"``: Karpathy's char-rnn corpus (1.1 MB).

Hub corpora are streamed from the Hugging Face hub (``datasets.load_dataset(...,
streaming=True)``) at a pinned commit (:data:`llmcourse.env.HUB_REVISIONS`), up to a token budget
(``load_corpus(name, max_tokens=...)``, required), and cached under :func:`cache_dir`. They need
``LLMCOURSE_ONLINE=1`` (:func:`llmcourse.env.online`) unless that budget is already cached:

* ``"tinystories"``: ``roneneldan/TinyStories``, short stories in simple English (CDLA-Sharing-1.0).
* ``"fineweb-edu"``: ``HuggingFaceFW/fineweb-edu``, config ``sample-10BT``: educational web
  pages (ODC-By 1.0).

Tokens, for a budget, are counted without a tokenizer: :func:`approx_tokens` is the text's UTF-8
bytes divided by 4, rounded up (GPT-4's cl100k BPE measures 4.4 bytes a token on the English
prose of ``"python-reference"``, so the count is a slight over-estimate there; the corpus a
pretraining run really sees is counted by its own tokenizer, see :mod:`llmcourse.pretrain`).
A budget takes whole documents in stream order and stops before the first one that would make
the joined text exceed it.

Every corpus is ``"\\n\\n".join(documents) + "\\n"`` (:func:`corpus_documents`). The exact text
of the offline corpora differs a little between Python versions; chapters never print counts
that depend on it in checked outputs.

Why one module of about 520 lines: every corpus, offline, downloaded or streamed, goes through
the same three doors (:func:`corpus_documents`, :func:`load_corpus`, the token budget), and the
sources stand next to those doors so that one reading shows what text a chapter trains on.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import io
import json
import os
import pkgutil
import re
import sys
import sysconfig
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from llmcourse._checks import check_choice, check_int, check_str
from llmcourse._io import atomic_write_text

OFFLINE_CORPORA = ("python-reference", "python-docstrings", "python-stdlib-code")
ONLINE_CORPORA = {
    "tiny-shakespeare": (
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
}


@dataclass(frozen=True)
class HubCorpus:
    """A corpus streamed from the Hugging Face hub: its dataset repository, config and text
    column. The commit it is read at is pinned in :data:`llmcourse.env.HUB_REVISIONS`."""

    repo: str
    config: str | None
    column: str
    licence: str


HUB_CORPORA: dict[str, HubCorpus] = {
    "tinystories": HubCorpus("roneneldan/TinyStories", None, "text", "CDLA-Sharing-1.0"),
    "fineweb-edu": HubCorpus("HuggingFaceFW/fineweb-edu", "sample-10BT", "text", "ODC-By 1.0"),
}
CORPORA = OFFLINE_CORPORA + tuple(ONLINE_CORPORA) + tuple(HUB_CORPORA)

#: :func:`approx_tokens` counts one token per this many UTF-8 bytes (rounded up).
BYTES_PER_TOKEN = 4
#: The line that starts each document of ``"python-stdlib-code"``: ``"# file: asyncio/tasks.py"``.
CODE_HEADER = "# file: "
# folders of the standard library that are not its source: installed packages, the build
# configuration, bytecode, and the test suites (Lib/test, idlelib/idle_test, lib2to3/tests,
# tkinter/test, unittest/test, ctypes/test, distutils/tests ...)
_CODE_SKIP_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__", "test", "tests",
                             "idle_test"})

# Modules whose import has side effects (open a browser, print, need a display), that are
# private test scaffolding, or that only re-export others.
_SKIP_MODULES = {
    "antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3",
    "ensurepip", "pydoc_data", "xxsubtype", "xxlimited", "xxlimited_35", "__hello__",
    "__phello__", "_xxtestfuzz", "msilib", "winreg", "winsound", "_winapi", "nt", "msvcrt",
    "_msi", "_overlapped", "__main__", "sre_compile", "sre_constants", "sre_parse", "idle",
    "distutils", "crypt", "nis", "ossaudiodev", "spwd", "imp", "asynchat", "asyncore", "smtpd",
}


def cache_dir() -> Path:
    """Where downloads are cached: ``$LLMCOURSE_CACHE`` or ``~/.cache/llmcourse``."""
    return Path(os.environ.get("LLMCOURSE_CACHE") or Path.home() / ".cache" / "llmcourse")


@dataclass(frozen=True)
class Docstring:
    """One standard-library docstring: where it comes from and its text."""

    module: str  # the module that defines it, e.g. "posixpath" (os.path) or "email.message"
    qualname: str  # e.g. "posixpath.join"
    kind: str  # "module", "class", "function" or "method"
    text: str


@dataclass(frozen=True)
class SourceFile:
    """One source file of the standard library: its path relative to the standard library's
    folder (POSIX, e.g. ``"asyncio/tasks.py"``) and its text, decoded as UTF-8."""

    path: str
    text: str

    @property
    def document(self) -> str:
        """The file as a document of ``"python-stdlib-code"``: ``"# file: <path>\\n"`` then the
        text without its trailing whitespace."""
        return f"{CODE_HEADER}{self.path}\n{self.text.rstrip()}"


def approx_tokens(text: str) -> int:
    """The token count a budget uses: ``ceil(UTF-8 bytes / 4)`` (:data:`BYTES_PER_TOKEN`).

    Exact and cheap, the same everywhere (no tokenizer, no download), and close to what a
    byte-level BPE of English gives (GPT-4's cl100k: 4.4 bytes a token on the language
    reference): an approximation of any real tokenizer's count, documented as one.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return -(-len(text.encode("utf-8")) // BYTES_PER_TOKEN)


def _stdlib_dir() -> Path:
    root = Path(sysconfig.get_paths()["stdlib"])
    if not root.is_dir():  # pragma: no cover - e.g. an embedded Python with a zipped stdlib
        raise FileNotFoundError(f"the standard library's source folder {root} is missing, so "
                                "the corpus 'python-stdlib-code' cannot be built here")
    return root


@functools.lru_cache(maxsize=1)
def _stdlib_code_scan() -> tuple[tuple[SourceFile, ...], tuple[tuple[str, str], ...]]:
    root = _stdlib_dir()
    paths: list[str] = []
    for folder, dirs, files in os.walk(root):  # symlinked folders are not followed
        dirs[:] = [d for d in dirs if d not in _CODE_SKIP_DIRS and not d.startswith("config-")]
        rel = Path(folder).relative_to(root)
        paths.extend((rel / f).as_posix() for f in files if f.endswith(".py"))
    kept: list[SourceFile] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(paths):
        raw = (root / path).read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            skipped.append((path, f"not UTF-8 (byte {err.start})"))
            continue
        if not text.strip():
            skipped.append((path, "empty"))
        elif text.startswith(CODE_HEADER) or "\n" + CODE_HEADER in text:
            skipped.append((path, f"holds the document header {CODE_HEADER!r} at a line start"))
        else:
            kept.append(SourceFile(path, text))
    return tuple(kept), tuple(skipped)


def stdlib_code_files() -> tuple[SourceFile, ...]:
    """The standard library's ``.py`` files (the documents of ``"python-stdlib-code"``).

    All ``*.py`` files under ``sysconfig.get_paths()["stdlib"]``, sorted by their POSIX path
    relative to it, minus the folders that are not the library's own source: ``site-packages``,
    ``dist-packages``, ``config-*``, ``__pycache__`` and the test suites (any folder named
    ``test``, ``tests`` or ``idle_test``). Each file is decoded as strict UTF-8 (the encoding of
    every file on CPython 3.11). A file that does not decode, is empty or whitespace only (three
    ``__init__.py`` on 3.11.7), or holds a line starting with ``"# file: "`` (which would break
    :func:`split_code_corpus`; none does on 3.11.7) is left out, always the same way:
    :func:`stdlib_code_skipped` lists them with the reason.
    """
    return _stdlib_code_scan()[0]


def stdlib_code_skipped() -> tuple[tuple[str, str], ...]:
    """``(path, reason)`` of each standard-library ``.py`` file :func:`stdlib_code_files` left
    out (undecodable, empty, or holding the document header)."""
    return _stdlib_code_scan()[1]


def split_code_corpus(text: str) -> list[str]:
    """Cut ``load_corpus("python-stdlib-code")`` (or a budget of it) back into its documents,
    one per file, each starting with ``"# file: <path>\\n"``. No file holds that header at a line
    start (:func:`stdlib_code_files`), so the cut is exact."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text.startswith(CODE_HEADER):
        raise ValueError(f"text must start with {CODE_HEADER!r}: it is not the python-stdlib-code "
                         "corpus")
    return re.split(r"\n\n(?=" + re.escape(CODE_HEADER) + ")", text.rstrip("\n"))


def _public(name: str) -> bool:
    return not name.startswith("_")


def _stdlib_module_names() -> list[str]:
    """Public standard-library modules and their public submodules, sorted."""
    names = []
    for top in sorted(n for n in sys.stdlib_module_names if _public(n) and n not in _SKIP_MODULES):
        names.append(top)
        spec = importlib.util.find_spec(top)
        if spec is None or not spec.submodule_search_locations:
            continue
        for info in pkgutil.walk_packages(spec.submodule_search_locations, prefix=top + ".",
                                          onerror=lambda _name: None):
            parts = info.name.split(".")
            if all(_public(p) for p in parts) and not {"test", "tests", "idle_test"} & set(parts):
                names.append(info.name)
    return sorted(set(names))


@functools.lru_cache(maxsize=1)
def stdlib_docstrings() -> tuple[Docstring, ...]:
    """All public docstrings of the standard library, in a deterministic order.

    Modules come from ``sys.stdlib_module_names`` (sorted), minus those whose import has side
    effects; each module's public classes, functions and methods follow it, sorted by name.
    Only objects defined in the module itself are kept, so re-exports do not repeat.
    """
    out: list[Docstring] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated modules warn on import and on access
        for modname in _stdlib_module_names():
            out.extend(_module_docstrings(modname))
    return tuple(out)


def _module_docstrings(modname: str) -> list[Docstring]:
    out: list[Docstring] = []
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            mod = importlib.import_module(modname)
    except Exception:  # noqa: BLE001 - platform-specific modules may be missing
        return out
    if mod.__doc__:
        out.append(Docstring(modname, modname, "module", inspect.cleandoc(mod.__doc__)))
    for name in sorted(filter(_public, vars(mod))):
        obj = vars(mod)[name]
        if not (inspect.isclass(obj) or inspect.isroutine(obj)):
            continue
        owner = getattr(obj, "__module__", None) or ""
        if owner != modname and owner.lstrip("_") != modname.rsplit(".", 1)[-1]:
            continue
        kind = "class" if inspect.isclass(obj) else "function"
        doc = obj.__doc__ if isinstance(obj.__doc__, str) else None
        if doc:
            out.append(Docstring(modname, f"{modname}.{name}", kind, inspect.cleandoc(doc)))
        if kind == "class":
            for mname in sorted(filter(_public, vars(obj))):
                meth = vars(obj)[mname]
                mdoc = getattr(meth, "__doc__", None)
                # a method another package patched into a stdlib class is not the stdlib's
                # (transformers adds logging.Logger.warning_once on import)
                if getattr(meth, "__module__", owner) not in (owner, None):
                    continue
                if inspect.isroutine(meth) and isinstance(mdoc, str) and mdoc.strip():
                    out.append(Docstring(modname, f"{modname}.{name}.{mname}", "method",
                                         inspect.cleandoc(mdoc)))
    return out


def _download(name: str) -> str:
    url, sha = ONLINE_CORPORA[name]
    path = cache_dir() / f"{name}.txt"
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == sha:
        return path.read_text(encoding="utf-8")
    hint = f"offline corpora that always work: {', '.join(OFFLINE_CORPORA)}"
    if os.environ.get("LLMCOURSE_OFFLINE") or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ConnectionError(f"corpus {name!r} needs the network, but offline mode is on; {hint}")
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            raw = resp.read()
    except (urllib.error.URLError, OSError) as err:
        raise ConnectionError(f"could not download corpus {name!r} from {url} ({err}); {hint}") from err
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha:
        raise ValueError(f"corpus {name!r}: sha256 {digest} does not match the expected {sha}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(raw)
    os.replace(tmp.name, path)  # atomic: a half-written cache file is never seen
    return raw.decode("utf-8")


def corpus_documents(name: str, *, max_tokens: int | None = None) -> tuple[str, ...]:
    """The documents of a corpus, in order: what :func:`load_corpus` joins with ``"\\n\\n"``.

    ``"python-reference"``: one per topic; ``"python-docstrings"``: one per docstring;
    ``"python-stdlib-code"``: one per file (:attr:`SourceFile.document`); ``"tiny-shakespeare"``:
    its paragraphs (speeches); hub corpora: one per dataset row (stripped; empty rows are
    skipped). With ``max_tokens``, the leading documents whose joined text stays within the
    budget (see :func:`load_corpus`).
    """
    check_str("name", name)
    max_tokens = _check_budget(name, max_tokens)
    if name in HUB_CORPORA:
        return tuple(_hub_documents(name, max_tokens))
    if name == "python-reference":
        from pydoc_data.topics import topics

        docs = tuple(topics[k].strip() for k in sorted(topics))
    elif name == "python-docstrings":
        docs = tuple(d.text for d in stdlib_docstrings())
    elif name == "python-stdlib-code":
        docs = tuple(f.document for f in stdlib_code_files())
    else:  # tiny-shakespeare
        docs = tuple(p.strip() for p in _load_corpus(name).split("\n\n") if p.strip())
    return docs if max_tokens is None else tuple(_within_budget(name, docs, max_tokens))


def load_corpus(name: str, *, max_tokens: int | None = None) -> str:
    """Return a corpus as one string. See the module docstring for the names.

    ``max_tokens`` is a budget in :func:`approx_tokens` (UTF-8 bytes / 4, rounded up): the
    corpus's leading whole documents, joined like the whole corpus, such that
    ``approx_tokens(result) <= max_tokens``; it stops before the first document that would
    exceed it (so a budget smaller than the first document is a ``ValueError``). It is
    required for the hub corpora (``"tinystories"``, ``"fineweb-edu"``), whose datasets are
    streamed up to it, and optional for the others (``None``: the whole corpus, exactly as
    before budgets existed).

    A hub corpus is streamed once per (name, pinned revision, budget) and cached atomically
    under :func:`cache_dir` (``hub/<name>-<revision>-<max_tokens>t.txt`` and its ``.json``
    index), so a second call, even offline, reads the cache. Not cached and offline
    (``LLMCOURSE_ONLINE`` is not ``"1"``): ``ConnectionError`` naming the offline corpora.

    Raises ``TypeError``/``ValueError`` for a bad name (listing the valid ones) or budget, and
    ``ConnectionError`` when an online corpus cannot be fetched (naming the offline ones).
    """
    check_str("name", name)
    max_tokens = _check_budget(name, max_tokens)
    if name in HUB_CORPORA:
        return _join(_hub_documents(name, max_tokens))
    if max_tokens is None:
        return _load_corpus(name)
    return _join(corpus_documents(name, max_tokens=max_tokens))


def _join(docs: Sequence[str]) -> str:
    return "\n\n".join(docs) + "\n"


def _check_budget(name: str, max_tokens: object) -> int | None:
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; valid names: {', '.join(CORPORA)}")
    if max_tokens is None:
        if name in HUB_CORPORA:
            raise ValueError(f"max_tokens is required for the hub corpus {name!r}: it is streamed "
                             "up to that many tokens (UTF-8 bytes / 4), e.g. max_tokens=5_000_000")
        return None
    return check_int("max_tokens", max_tokens, min=1)


def _within_budget(name: str, docs, max_tokens: int):
    """Yield the leading ``docs`` (an iterable, consumed lazily) whose ``"\\n\\n"``-joined text,
    with its final ``"\\n"``, is at most ``max_tokens`` :func:`approx_tokens`."""
    limit = max_tokens * BYTES_PER_TOKEN  # ceil(n / 4) <= max_tokens  <=>  n <= 4 * max_tokens
    used = 1  # the final "\n"
    n = 0
    for doc in docs:
        size = len(doc.encode("utf-8")) + (2 if n else 0)
        if used + size > limit:
            break
        used += size
        n += 1
        yield doc
    if n == 0:
        raise ValueError(f"max_tokens={max_tokens} is smaller than the first document of corpus "
                         f"{name!r}: budgets take whole documents")


def hub_revision(name: str) -> str:
    """The pinned commit a hub corpus is read at (from :data:`llmcourse.env.HUB_REVISIONS`)."""
    from llmcourse.env import HUB_REVISIONS

    check_choice("name", name, tuple(HUB_CORPORA))
    return HUB_REVISIONS[HUB_CORPORA[name].repo]


def _hub_paths(name: str, max_tokens: int) -> tuple[Path, Path]:
    stem = f"{name}-{hub_revision(name)}-{max_tokens}t"
    folder = cache_dir() / "hub"
    return folder / f"{stem}.txt", folder / f"{stem}.json"


def _read_hub_cache(name: str, max_tokens: int) -> list[str] | None:
    """The cached documents of this budget, or ``None`` when there is no whole cache."""
    text_path, index_path = _hub_paths(name, max_tokens)
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        text = text_path.read_bytes().decode("utf-8")  # bytes: no newline translation
        lengths = index["lengths"]
        if (index["format"] != 1 or index["revision"] != hub_revision(name)
                or hashlib.sha256(text.encode("utf-8")).hexdigest() != index["sha256"]):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    docs, pos = [], 0
    for n in lengths:
        docs.append(text[pos:pos + n])
        pos += n + 2
    return docs if _join(docs) == text else None


def _hub_documents(name: str, max_tokens: int) -> list[str]:
    cached = _read_hub_cache(name, max_tokens)
    if cached is not None:
        return cached
    from llmcourse.env import online

    spec, revision = HUB_CORPORA[name], hub_revision(name)
    if not online():
        raise ConnectionError(
            f"corpus {name!r} is streamed from the Hugging Face hub ({spec.repo}), but the course "
            f"is offline and {max_tokens} tokens of it are not cached in {cache_dir() / 'hub'}; "
            f"set LLMCOURSE_ONLINE=1 to stream it, or use an offline corpus: "
            f"{', '.join(OFFLINE_CORPORA)}")
    stream = _stream_hub(name, spec, revision)
    try:
        docs = list(_within_budget(name, stream, max_tokens))
    finally:
        stream.close()  # stop streaming at the budget
    text = _join(docs)
    text_path, index_path = _hub_paths(name, max_tokens)
    text_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(text_path, text)
    index = {"format": 1, "name": name, "repo": spec.repo, "config": spec.config,
             "column": spec.column, "revision": revision, "max_tokens": max_tokens,
             "tokens": approx_tokens(text), "token_count": "ceil(UTF-8 bytes / 4)",
             "documents": len(docs), "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
             "lengths": [len(d) for d in docs]}
    atomic_write_text(index_path, json.dumps(index))  # last: the cache is whole
    return docs


def _stream_hub(name: str, spec: HubCorpus, revision: str):
    """Yield the stripped, non-empty texts of a hub dataset's train split, streamed in order."""
    import datasets

    hint = f"offline corpora that always work: {', '.join(OFFLINE_CORPORA)}"
    try:
        rows = iter(datasets.load_dataset(spec.repo, name=spec.config, split="train",
                                          streaming=True, revision=revision))
    except Exception as err:  # noqa: BLE001 - hub, HTTP and offline-mode errors of several kinds
        raise ConnectionError(f"could not stream corpus {name!r} ({spec.repo}@{revision}): "
                              f"{type(err).__name__}: {err}; {hint}") from err
    while True:
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as err:  # noqa: BLE001 - a dropped connection mid-stream
            raise ConnectionError(f"streaming corpus {name!r} ({spec.repo}@{revision}) failed: "
                                  f"{type(err).__name__}: {err}; {hint}") from err
        if not isinstance(row, dict) or not isinstance(row.get(spec.column), str):
            raise ValueError(f"corpus {name!r}: a row of {spec.repo} has no str column "
                             f"{spec.column!r} (got {type(row).__name__})")
        text = row[spec.column].strip()
        if text:
            yield text


@functools.cache
def _load_corpus(name: str) -> str:
    if name in OFFLINE_CORPORA:  # their documents are defined once, in corpus_documents
        return _join(corpus_documents(name))
    if name in ONLINE_CORPORA:
        return _download(name)
    raise ValueError(f"unknown corpus {name!r}; valid names: {', '.join(CORPORA)}")


S = TypeVar("S", str, Sequence)


def train_val_split(data: S, val_fraction: float = 0.1) -> tuple[S, S]:
    """Split a text or sequence into a leading training part and a trailing validation part.

    The split is contiguous (not shuffled): for language modelling, held-out text must be text
    the model never saw, not interleaved sentences of the same passages.
    """
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise TypeError(f"data must be a str or sequence, got {type(data).__name__}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise TypeError(f"val_fraction must be a float, got {type(val_fraction).__name__}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(data)
    cut = int(round(n * (1.0 - val_fraction)))
    if cut <= 0 or cut >= n:
        raise ValueError(f"data of length {n} is too short to split with val_fraction={val_fraction}")
    return data[:cut], data[cut:]
