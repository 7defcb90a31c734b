"""Byte-level byte-pair encoding from scratch (chapter 02): train, encode, decode, save, and
load GPT-4's cl100k from tiktoken into the same class."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path

import regex

from llmcourse._checks import check_bool, check_int, check_path
from llmcourse._io import atomic_write_text
from llmcourse.tokenizers._common import _check_ids, _check_text
from llmcourse.tokenizers.ranks import merges_from_ranks

__all__ = ["GPT2_SPLIT_PATTERN", "BPETokenizer", "pre_split"]

#: GPT-2's pre-tokenisation regex: contractions, letter runs, digit runs, punctuation runs and
#: whitespace, each optionally led by one space. BPE merges never cross these boundaries.
GPT2_SPLIT_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
)
_FORMAT = "llmcourse-bpe"
_FORMAT_VERSION = 2  # 2 adds byte_order and special_tokens; version 1 files still load
_CACHE_SIZE = 100_000  # chunks remembered by encode (a chunk is about a word)


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


def _check_byte_order(byte_order: object) -> tuple[int, ...]:
    if byte_order is None:
        return tuple(range(256))
    if isinstance(byte_order, str) or not isinstance(byte_order, Iterable):
        raise TypeError(f"byte_order must be a sequence of 256 ints, got {type(byte_order).__name__}")
    order = tuple(byte_order)
    if any(isinstance(b, bool) or not isinstance(b, int) for b in order):
        raise TypeError("byte_order must hold ints (the byte value of each id 0-255)")
    if sorted(order) != list(range(256)):
        raise ValueError("byte_order must be a permutation of 0..255 (each byte value once)")
    return order


class BPETokenizer:
    """Byte-level byte-pair encoding, from scratch.

    The vocabulary starts with the 256 byte values (ids 0–255), so every string — Chinese,
    emoji, LaTeX, tabs — can be encoded: at worst one token per UTF-8 byte. Training then
    repeatedly merges the most frequent adjacent pair of ids into a new id (256, 257, …) until
    ``vocab_size`` is reached. Text is first pre-split with a regex (GPT-2's by default) so merges
    never cross word boundaries, which also lets training work on *unique* chunks with their
    counts instead of on the whole text.

    Encoding replays the merges by **rank**: inside each chunk, repeatedly merge the adjacent
    pair whose merge was learned first (the smallest new id), until no adjacent pair has a merge.

    ``byte_order`` (the byte value each id 0–255 stands for; identity by default) and
    ``special_tokens`` (``{text: id}``, ids above the merges) exist for loading real tokenizers:
    :meth:`from_tiktoken` fills both from a tiktoken encoding.

    >>> tok = BPETokenizer.train("low lower lowest " * 50, vocab_size=260)
    >>> tok.decode(tok.encode("slower 低")) == "slower 低"
    True
    """

    def __init__(self, merges: Sequence[tuple[int, int]] = (),
                 pattern: str = GPT2_SPLIT_PATTERN, *,
                 byte_order: Sequence[int] | None = None,
                 special_tokens: Mapping[str, int] | None = None) -> None:
        self._split = _compile(pattern)
        self.pattern = pattern
        self.byte_order = _check_byte_order(byte_order)
        self._byte_ids = [0] * 256  # byte value -> id
        for i, b in enumerate(self.byte_order):
            self._byte_ids[b] = i
        self._identity = self.byte_order == tuple(range(256))
        self.merges: dict[tuple[int, int], int] = {}
        self.vocab: dict[int, bytes] = {i: bytes([b]) for i, b in enumerate(self.byte_order)}
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
        self.special_tokens = self._check_specials(special_tokens)
        for text, i in self.special_tokens.items():
            self.vocab[i] = text.encode("utf-8")
        self._special_re = self._alternation(self.special_tokens)
        self.name = f"bpe-{self.vocab_size}"
        self._cache: dict[str, list[int]] = {}

    def _check_specials(self, special_tokens: object) -> dict[str, int]:
        if special_tokens is None:
            return {}
        if not isinstance(special_tokens, Mapping):
            raise TypeError(f"special_tokens must be a dict of str to int id, got "
                            f"{type(special_tokens).__name__}")
        first_free = 256 + len(self.merges)
        out: dict[str, int] = {}
        for text, i in special_tokens.items():
            if not isinstance(text, str) or isinstance(i, bool) or not isinstance(i, int):
                raise TypeError(f"special_tokens must map str to int, got {text!r}: {i!r}")
            if not text:
                raise ValueError("special_tokens must not hold the empty string")
            if i < first_free:
                raise ValueError(f"special_tokens[{text!r}] = {i} is a byte or merge id; special "
                                 f"ids must be at least {first_free}")
            if i in out.values():
                raise ValueError(f"special_tokens gives the id {i} twice")
            out[text] = int(i)
        return out

    @staticmethod
    def _alternation(texts: Iterable[str]) -> regex.Pattern | None:
        """A regex matching any of ``texts`` (``None`` for none); longest first, so that no
        special token that is a prefix of another wins early."""
        texts = sorted(texts, key=lambda s: (-len(s), s))
        return regex.compile("|".join(regex.escape(t) for t in texts)) if texts else None

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

    @classmethod
    def from_tiktoken(cls, encoding: object) -> BPETokenizer:
        """The BPE of a tiktoken encoding (e.g. GPT-4's cl100k) as a :class:`BPETokenizer`.

        tiktoken stores a rank per token; :func:`~llmcourse.tokenizers.merges_from_ranks` turns
        them into ordered merges (id ``256 + k`` = rank ``256 + k``), and the encoding's
        pre-tokeniser regex and special tokens are kept. :meth:`encode` then returns exactly
        tiktoken's ids. Reads the encoding's ``_mergeable_ranks``, ``_pat_str`` and
        ``_special_tokens`` (tiktoken has no public accessor for the ranks).
        """
        ranks = getattr(encoding, "_mergeable_ranks", None)
        pattern = getattr(encoding, "_pat_str", None)
        specials = getattr(encoding, "_special_tokens", None)
        if not (isinstance(ranks, dict) and isinstance(pattern, str) and isinstance(specials, dict)):
            raise TypeError("encoding must be a tiktoken.Encoding (for example "
                            "tiktoken.get_encoding('cl100k_base')), got "
                            f"{type(encoding).__name__}")
        try:
            merges, byte_order = merges_from_ranks(ranks)
        except (TypeError, ValueError) as err:
            raise ValueError(f"encoding {getattr(encoding, 'name', '?')!r} is not a byte-level "
                             f"BPE the course can load: {err}") from err
        tok = cls(merges, pattern, byte_order=byte_order, special_tokens=specials)
        tok.name = str(getattr(encoding, "name", tok.name))
        return tok

    # -- using it ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """One more than the largest id (special ids can leave unused ids below it)."""
        return max([256 + len(self.merges), *(i + 1 for i in self.special_tokens.values())])

    def _encode_chunk(self, chunk: str) -> list[int]:
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        data = chunk.encode("utf-8")
        ids = list(data) if self._identity else [self._byte_ids[b] for b in data]
        merges, never = self.merges, 1 << 62  # never: the rank of a pair without a merge
        while len(ids) >= 2:
            # the adjacent pair whose merge has the lowest rank (was learned first)
            pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, never))
            new_id = merges.get(pair)
            if new_id is None:
                break
            ids = _merge(ids, pair, new_id)
        if len(self._cache) < _CACHE_SIZE:
            self._cache[chunk] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Text → ids, special-token strings encoded as plain text (tiktoken's ``encode_ordinary``)."""
        _check_text(text)
        out: list[int] = []
        for chunk in self._chunks(text):
            out.extend(self._encode_chunk(chunk))
        return out

    def encode(self, text: str, *, allowed_special: str | Collection[str] = frozenset()) -> list[int]:
        """Text → ids: pre-split, then apply the merges inside each chunk in rank order.

        Special tokens follow tiktoken: a string in ``allowed_special`` (a set of special-token
        strings, or ``"all"``) becomes its one id; any other special-token string in ``text`` is a
        ``ValueError`` — text from a user must not smuggle in a control token. Use
        :meth:`encode_ordinary` to encode such strings as plain text.
        """
        _check_text(text)
        allowed = self._allowed(allowed_special)
        if self._special_re is not None:
            refused = self._alternation(set(self.special_tokens) - allowed)
            hit = refused.search(text) if refused is not None else None
            if hit:
                s = hit.group()
                raise ValueError(
                    f"text holds the special token {s!r} (id {self.special_tokens[s]}); pass "
                    f"allowed_special={{{s!r}}} to encode it as that one id, or use "
                    "encode_ordinary(text) to encode it as plain text")
        if not allowed:
            return self.encode_ordinary(text)
        out: list[int] = []
        start = 0
        for hit in self._alternation(allowed).finditer(text):
            out.extend(self.encode_ordinary(text[start:hit.start()]))
            out.append(self.special_tokens[hit.group()])
            start = hit.end()
        out.extend(self.encode_ordinary(text[start:]))
        return out

    def _allowed(self, allowed_special: object) -> set[str]:
        if allowed_special == "all":
            return set(self.special_tokens)
        if isinstance(allowed_special, str):
            raise TypeError(f"allowed_special must be 'all' or a set of special-token strings, "
                            f"got the str {allowed_special!r} (wrap it: {{{allowed_special!r}}})")
        if not isinstance(allowed_special, Collection) or not all(
                isinstance(s, str) for s in allowed_special):
            raise TypeError(f"allowed_special must be 'all' or a set of special-token strings, "
                            f"got {type(allowed_special).__name__}")
        unknown = sorted(set(allowed_special) - set(self.special_tokens))
        if unknown:
            raise ValueError(f"allowed_special names {unknown}, which are not special tokens of "
                             f"this tokenizer (it has {sorted(self.special_tokens) or 'none'})")
        return set(allowed_special)

    def _chunks(self, text: str) -> list[str]:
        chunks = self._split.findall(text)
        if sum(map(len, chunks)) != len(text):  # findall skips what the pattern cannot match
            raise ValueError(f"pattern {self.pattern!r} does not cover the text: characters it "
                             "matches nowhere would be lost; use a pattern that matches every "
                             "character (the default does)")
        return chunks

    def decode(self, ids: Sequence[int]) -> str:
        """Ids → text. Ids outside ``[0, vocab_size)``, or unused by any token, raise ``ValueError``.

        A slice of ids can end in the middle of a multi-byte character; such bytes are shown as
        U+FFFD (``errors="replace"``), as GPT tokenizers do.
        """
        return b"".join(self._bytes_of(i) for i in _check_ids(ids, self.vocab_size)).decode(
            "utf-8", errors="replace")

    def _bytes_of(self, i: int) -> bytes:
        try:
            return self.vocab[i]
        except KeyError:
            raise ValueError(f"id {i} is not a token of this tokenizer: no byte, merge or special "
                             "token has it") from None

    def tokens(self, text: str) -> list[str]:
        """The pieces ``text`` is cut into (partial UTF-8 characters shown as U+FFFD)."""
        return [self.vocab[i].decode("utf-8", errors="replace") for i in self.encode(text)]

    def token_bytes(self, i: int) -> bytes:
        """The bytes token ``i`` stands for."""
        return self._bytes_of(check_int("i", i, min=0, max=self.vocab_size - 1))

    # -- saving -----------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the merges, split pattern, byte order and special tokens as JSON (no pickle).

        The write is atomic (a temp file, fsync, then ``os.replace``): a crash mid-save leaves
        the previous file intact, never a truncated one.
        """
        path = check_path("path", path)
        payload = {"format": _FORMAT, "version": _FORMAT_VERSION, "pattern": self.pattern,
                   "merges": [list(p) for p in self.merges], "byte_order": list(self.byte_order),
                   "special_tokens": self.special_tokens}
        return atomic_write_text(path, json.dumps(payload))

    @classmethod
    def load(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read a tokenizer written by :meth:`save` (format version 1 or 2)."""
        path = check_path("path", path)
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"path {path} is not a saved BPETokenizer (not JSON: {err})") from err
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f"path {path} is not a saved BPETokenizer (format must be "
                             f"{_FORMAT!r})")
        if payload.get("version") not in (1, _FORMAT_VERSION):
            raise ValueError(f"path {path}: unsupported version {payload.get('version')!r}")
        if not isinstance(payload.get("merges"), list) or not isinstance(payload.get("pattern"), str):
            raise ValueError(f"path {path} is not a saved BPETokenizer (needs 'merges' and "
                             "'pattern')")
        try:
            return cls([tuple(p) for p in payload["merges"]], pattern=payload["pattern"],
                       byte_order=payload.get("byte_order"),
                       special_tokens=payload.get("special_tokens"))
        except (TypeError, ValueError) as err:
            raise ValueError(f"path {path} holds an invalid BPETokenizer: {err}") from err

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BPETokenizer) and self.merges == other.merges
                and self.pattern == other.pattern and self.byte_order == other.byte_order
                and self.special_tokens == other.special_tokens)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size})"
