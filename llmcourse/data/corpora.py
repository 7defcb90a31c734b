"""Corpora the course trains on, offline first.

Offline corpora are built at run time from files every CPython ships, so the course runs with no
network at all:

* ``"python-reference"``: the Python language reference (``pydoc_data.topics``), ~465 KB of prose.
* ``"python-docstrings"``: docstrings of the standard library, in a fixed order (about 1.3 MB on CPython 3.11).

Online corpora are downloaded once, checked against a sha256 and cached:

* ``"tiny-shakespeare"``: Karpathy's char-rnn corpus (1.1 MB).

The exact text differs a little between Python versions; chapters never print counts that
depend on it in checked outputs.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import io
import os
import pkgutil
import sys
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

OFFLINE_CORPORA = ("python-reference", "python-docstrings")
ONLINE_CORPORA = {
    "tiny-shakespeare": (
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
    ),
}
CORPORA = OFFLINE_CORPORA + tuple(ONLINE_CORPORA)

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


def _python_reference() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip() for k in sorted(topics)) + "\n"


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


def load_corpus(name: str) -> str:
    """Return a corpus as one string. See the module docstring for the names.

    Raises ``ValueError`` for an unknown name (listing the valid ones) and ``ConnectionError``
    when an online corpus cannot be fetched (naming the offline ones).
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    return _load_corpus(name)


@functools.cache
def _load_corpus(name: str) -> str:
    if name == "python-reference":
        return _python_reference()
    if name == "python-docstrings":
        return "\n\n".join(d.text for d in stdlib_docstrings()) + "\n"
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
