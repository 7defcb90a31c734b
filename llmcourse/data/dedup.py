"""Deduplicating a corpus: exact duplicates by hashing, near duplicates by MinHash + LSH.

A pretraining corpus scraped from the web (or from a file system) holds many copies of the same
text; training on them wastes compute and makes the model memorise them (Lee et al. 2022,
"Deduplicating Training Data Makes Language Models Better"). Two passes:

* exact: hash each document's normalised text (:func:`normalize`); documents with the same hash
  are the same document (:func:`exact_duplicates`, :func:`dedup_exact`).
* near: a document is the set of its word k-grams (:func:`shingles`); two documents are near
  duplicates when the Jaccard similarity of their sets is high. Comparing all ``n^2 / 2`` pairs is
  too slow, so each set is summarised by a MinHash signature (:class:`MinHash`, Broder 1997: the
  chance that two sets have the same minimum under a random hash permutation is their Jaccard
  similarity) and locality-sensitive hashing (:func:`lsh_candidates`, Leskovec, Rajaraman &
  Ullman, "Mining of Massive Datasets", ch. 3) proposes the pairs that share a whole band of the
  signature. The candidates are then checked with the exact Jaccard (:func:`near_duplicates`).

The signatures are bit for bit those of ``datasketch.MinHash`` (version 2: default scheme
``"affine32"``; ``"legacy"`` is the scheme of datasketch < 2), and :func:`lsh_params` is
datasketch's ``MinHashLSH`` choice of bands and rows, so the two can be checked against each other.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from llmcourse._checks import check_choice, check_int, check_items, check_number, check_str

_MERSENNE = np.uint64((1 << 61) - 1)  # the legacy scheme's prime modulus
_MAX32 = (1 << 32) - 1


def _check_docs(docs: object) -> list[str]:
    return check_items("docs", docs, str, "strs")


# ---------------------------------------------------------------------------------------------
# exact duplicates


def normalize(text: str) -> str:
    """The text exact deduplication compares: Unicode NFC (``"é"`` composed or as ``e`` + accent
    is the same text), lowercased, every run of whitespace (spaces, tabs, newlines) made one
    space, and stripped at both ends. Two documents that differ only in case or layout are then
    equal; punctuation and digits are kept."""
    check_str("text", text)
    return " ".join(unicodedata.normalize("NFC", text).lower().split())


def exact_duplicates(docs: Sequence[str]) -> list[list[int]]:
    """Groups of (two or more) indices of ``docs`` whose :func:`normalize`\\ d texts are equal,
    found by their SHA-1 digest. Each group is sorted, the groups ordered by their first index;
    a document with no copy is in no group."""
    docs = _check_docs(docs)
    groups: dict[bytes, list[int]] = defaultdict(list)  # digest -> indices, in order of first
    for i, doc in enumerate(docs):
        groups[hashlib.sha1(normalize(doc).encode("utf-8")).digest()].append(i)
    return [ids for ids in groups.values() if len(ids) > 1]


def dedup_exact(docs: Sequence[str]) -> list[int]:
    """The indices of ``docs`` to keep, in order: the first document of each group of exact
    duplicates (:func:`exact_duplicates`) and every document that has no copy."""
    dropped = {i for ids in exact_duplicates(docs) for i in ids[1:]}
    return [i for i in range(len(docs)) if i not in dropped]


# ---------------------------------------------------------------------------------------------
# near duplicates: shingles, MinHash, LSH


def shingles(text: str, k: int = 5) -> set[str]:
    """The set of word ``k``-grams ("shingles") of ``text``, each the ``k`` words joined by one
    space. Words are the whitespace-separated tokens of :func:`normalize`\\ ``(text)`` (so case and
    layout do not matter; for code a token is e.g. ``def``, ``f(x):``, ``return``). A text of fewer
    than ``k`` words (but at least one) is one shingle, all its words; an empty (or blank) text has
    no shingles: the empty set."""
    k = check_int("k", k, min=1)
    words = normalize(text).split()
    if len(words) <= k:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + k]) for i in range(len(words) - k + 1)}


def jaccard(a: set, b: set) -> float:
    """The Jaccard similarity ``|a & b| / |a | b|`` of two sets, in ``[0, 1]``; two empty sets are
    equal: 1.0 (as their MinHash signatures are)."""
    for name, s in (("a", a), ("b", b)):
        if not isinstance(s, (set, frozenset)):
            raise TypeError(f"{name} must be a set, got {type(s).__name__}")
    union = len(a | b)
    return len(a & b) / union if union else 1.0


def sha1_hash32(data: bytes) -> int:
    """The first 4 bytes of the SHA-1 digest of ``data`` as a little-endian unsigned int: the
    32-bit hash of each shingle (``datasketch.hashfunc.sha1_hash32``)."""
    return struct.unpack("<I", hashlib.sha1(data).digest()[:4])[0]


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, a bijection of uint32 that spreads the bits (datasketch's
    affine32 scheme applies it once to each shingle hash before the permutations)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)  # uint32 products wrap: arithmetic mod 2^32
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


class MinHash:
    """``num_perm`` random hash permutations drawn from ``np.random.RandomState(seed)`` exactly as
    ``datasketch.MinHash(num_perm, seed, scheme=scheme)`` draws them; calling it on a set of
    shingles gives that set's signature, equal bit for bit to datasketch's ``hashvalues`` after
    ``update(s.encode("utf-8"))`` for every shingle ``s``.

    * ``"affine32"`` (datasketch >= 2 default): ``h = fmix32(sha1_hash32(s))``, permutation ``p``
      maps it to ``(a_p * h + b_p) mod 2^32`` with ``a_p`` odd (a bijection); signatures are uint32.
    * ``"legacy"`` (datasketch < 2): ``((a_p * h + b_p) mod 2^64 mod (2^61 - 1)) & (2^32 - 1)``,
      uint64 (the ``mod 2^64`` is numpy's uint64 wrap-around, which datasketch has too).

    Signature ``p`` is the minimum over the shingles; an empty set's signature is all ``2^32 - 1``.
    """

    def __init__(self, num_perm: int = 128, seed: int = 1, scheme: str = "affine32") -> None:
        self.num_perm = check_int("num_perm", num_perm, min=1)
        self.seed = check_int("seed", seed, min=0, max=_MAX32)
        self.scheme = check_choice("scheme", scheme, ("affine32", "legacy"))
        gen = np.random.RandomState(self.seed)
        if scheme == "affine32":
            self.dtype = np.uint32
            self.a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
            self.b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)  # (num_perm,) uint32
        else:  # one (a, b) pair after the other, as datasketch draws them
            self.dtype = np.uint64
            ab = [(gen.randint(1, _MERSENNE, dtype=np.uint64), gen.randint(0, _MERSENNE, dtype=np.uint64))
                  for _ in range(num_perm)]
            self.a, self.b = np.array(ab, dtype=np.uint64).T  # (num_perm,) uint64 each

    def __call__(self, shingle_set: set[str] | Sequence[str], chunk: int = 4096) -> np.ndarray:
        """The signature of a set of strings: ``np.ndarray`` of shape ``(num_perm,)``, dtype
        uint32 (affine32) or uint64 (legacy). ``chunk`` shingles are permuted at a time, so a big
        document needs ``chunk * num_perm`` values of memory, not ``len(shingle_set) * num_perm``."""
        sig = np.full(self.num_perm, _MAX32, dtype=self.dtype)  # (num_perm,)
        # sha1_hash32 of each shingle, all at once: the 4-byte digest prefixes read as "<u4"
        digests = b"".join([hashlib.sha1(s.encode("utf-8")).digest()[:4] for s in shingle_set])
        hashes = np.frombuffer(digests, dtype="<u4").astype(self.dtype)  # (n_shingles,)
        if self.scheme == "affine32":
            hashes = _fmix32(hashes)
        for start in range(0, len(hashes), chunk):
            h = hashes[start:start + chunk, None]  # (chunk, 1)
            if self.scheme == "affine32":
                phv = h * self.a + self.b  # (chunk, num_perm), wraps mod 2^32
            else:
                phv = ((h * self.a + self.b) % _MERSENNE) & np.uint64(_MAX32)
            sig = np.minimum(sig, phv.min(axis=0))
        return sig


def minhash_signatures(docs: Sequence[str], num_perm: int = 128, k: int = 5, seed: int = 1,
                       scheme: str = "affine32") -> np.ndarray:
    """The MinHash signatures of the word-``k`` shingles of each document: ``np.ndarray`` of
    shape ``(len(docs), num_perm)``, row ``i`` equal to ``datasketch.MinHash(num_perm, seed,
    scheme=scheme)`` updated with ``shingles(docs[i], k)`` (dtype uint32, or uint64 for legacy)."""
    docs = _check_docs(docs)
    check_int("k", k, min=1)
    mh = MinHash(num_perm, seed, scheme)
    return np.stack([mh(shingles(doc, k)) for doc in docs])  # (n_docs, num_perm)


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """MinHash's estimate of the Jaccard similarity of two sets: the share of the entries of their
    signatures (same ``num_perm``, seed and scheme) that are equal."""
    for name, sig in (("sig_a", sig_a), ("sig_b", sig_b)):
        if not isinstance(sig, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(sig).__name__}")
    if sig_a.ndim != 1 or sig_a.shape != sig_b.shape or not sig_a.size:
        raise ValueError(f"sig_a and sig_b must be non-empty 1-D arrays of one shape, got "
                         f"{sig_a.shape} and {sig_b.shape}")
    return float(np.mean(sig_a == sig_b))


def _fp(threshold: float, b: int, r: int) -> float:
    from scipy.integrate import quad
    return quad(lambda s: 1 - (1 - s ** float(r)) ** float(b), 0.0, threshold)[0]


def _fn(threshold: float, b: int, r: int) -> float:
    from scipy.integrate import quad
    return quad(lambda s: 1 - (1 - (1 - s ** float(r)) ** float(b)), threshold, 1.0)[0]


@lru_cache(maxsize=64)
def _lsh_params(threshold: float, num_perm: int, fp_weight: float) -> tuple[int, int]:
    best, opt = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            err = fp_weight * _fp(threshold, b, r) + (1 - fp_weight) * _fn(threshold, b, r)
            if err < best:
                best, opt = err, (b, r)
    return opt


def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5) -> tuple[int, int]:
    """The number of bands ``b`` and rows per band ``r`` (``b * r <= num_perm``) for a Jaccard
    ``threshold``: a pair of similarity ``s`` becomes a candidate with probability
    ``1 - (1 - s^r)^b``; this picks the ``(b, r)`` that minimises ``fp_weight * P(false positive)
    + (1 - fp_weight) * P(false negative)``, each the integral of that curve below (above) the
    threshold: datasketch's ``MinHashLSH(threshold, num_perm)`` choice, the same grid search and
    the same scipy integrals, so the same answer (e.g. 0.8, 128 -> (9, 13))."""
    threshold = check_number("threshold", threshold, min=0.0, max=1.0, min_open=True)
    num_perm = check_int("num_perm", num_perm, min=1)
    fp_weight = check_number("fp_weight", fp_weight, min=0.0, max=1.0)
    return _lsh_params(threshold, num_perm, fp_weight)


def lsh_candidates(signatures: np.ndarray, bands: int, rows: int) -> set[tuple[int, int]]:
    """The candidate pairs ``(i, j)``, ``i < j``, of LSH banding: band ``t`` is the columns
    ``t*rows:(t+1)*rows`` of ``signatures`` (shape ``(n_docs, num_perm)``; columns after
    ``bands * rows`` are unused); documents whose band ``t`` is equal land in one bucket of table
    ``t``, and a pair is a candidate when it shares a bucket in any table. (The bucket key is the
    band's bytes, as in datasketch, so no two different bands collide.)"""
    if not isinstance(signatures, np.ndarray):
        raise TypeError(f"signatures must be a numpy.ndarray, got {type(signatures).__name__}")
    if signatures.ndim != 2:
        raise ValueError(f"signatures must have shape (n_docs, num_perm), got {signatures.shape}")
    bands, rows = check_int("bands", bands, min=1), check_int("rows", rows, min=1)
    if bands * rows > signatures.shape[1]:
        raise ValueError(f"bands * rows must be <= num_perm = {signatures.shape[1]}, got "
                         f"{bands} * {rows} = {bands * rows}")
    pairs: set[tuple[int, int]] = set()
    for t in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)  # band bytes -> doc indices
        for i, band in enumerate(signatures[:, t * rows:(t + 1) * rows]):  # band: (rows,)
            buckets[band.tobytes()].append(i)
        for ids in buckets.values():
            pairs.update(itertools.combinations(ids, 2))
    return pairs


def near_duplicates(docs: Sequence[str], threshold: float = 0.8, num_perm: int = 128, k: int = 5,
                    seed: int = 1, params: tuple[int, int] | None = None) -> list[tuple[int, int, float]]:
    """The pairs ``(i, j, jaccard)``, ``i < j``, of documents whose word-``k`` shingle sets have an
    exact Jaccard similarity ``>= threshold``, sorted. The pairs checked are LSH's candidates
    (:func:`lsh_candidates` with ``params = (bands, rows)``, by default :func:`lsh_params`
    ``(threshold, num_perm)``), so a pair near the threshold can be missed (a false negative of
    LSH) but no reported pair is false. Exact duplicates are pairs of Jaccard 1.0."""
    docs = _check_docs(docs)
    threshold = check_number("threshold", threshold, min=0.0, max=1.0, min_open=True)
    num_perm, k = check_int("num_perm", num_perm, min=1), check_int("k", k, min=1)
    if params is None:
        params = lsh_params(threshold, num_perm)
    elif not isinstance(params, (tuple, list)) or len(params) != 2:
        raise TypeError(f"params must be a (bands, rows) tuple, got {type(params).__name__}")
    sets = [shingles(doc, k) for doc in docs]
    mh = MinHash(num_perm, seed)
    sigs = np.stack([mh(s) for s in sets])  # (n_docs, num_perm) uint32
    out = []
    for i, j in sorted(lsh_candidates(sigs, *params)):
        sim = jaccard(sets[i], sets[j])
        if sim >= threshold:
            out.append((i, j, sim))
    return out


def clusters(n: int, pairs: Sequence[tuple]) -> list[list[int]]:
    """The connected components of the graph on ``range(n)`` whose edges are the ``(i, j, ...)``
    of ``pairs`` (union-find), each sorted, ordered by smallest index; singletons included."""
    n = check_int("n", n, min=0)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]  # path halving
            i = parent[i]
        return i

    for i, j, *_ in pairs:
        ri, rj = find(i), find(j)
        parent[max(ri, rj)] = min(ri, rj)  # the root is the smallest index
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[find(i)].append(i)
    return sorted(groups.values())


def dedup_near(docs: Sequence[str], threshold: float = 0.8, num_perm: int = 128, k: int = 5,
               seed: int = 1, params: tuple[int, int] | None = None) -> list[int]:
    """The indices of ``docs`` to keep, in order: the first document of each cluster, a cluster
    being a connected component of the :func:`near_duplicates` pairs. Clusters chain: if ``a~b``
    and ``b~c`` only ``a`` is kept, even when ``a`` and ``c`` are less similar than
    ``threshold``."""
    pairs = near_duplicates(docs, threshold, num_perm, k, seed, params)
    return [group[0] for group in clusters(len(docs), pairs)]
