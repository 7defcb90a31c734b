"""Exact and near deduplication (llmcourse.data.dedup) on a corpus with planted duplicates,
checked against brute force and against datasketch (signatures bit for bit, LSH candidates)."""

import random

import datasketch
import numpy as np
import pytest
from datasketch.lsh import _optimal_param

from llmcourse.data import dedup
from llmcourse.data.dedup import (
    MinHash,
    clusters,
    dedup_exact,
    dedup_near,
    estimate_jaccard,
    exact_duplicates,
    jaccard,
    lsh_candidates,
    lsh_params,
    minhash_signatures,
    near_duplicates,
    normalize,
    shingles,
)

N_BASE, N_WORDS = 30, 200
_rng = random.Random(0)
VOCAB = sorted({"".join(_rng.choice("bcdfghklmnprstvz") + _rng.choice("aeiou") for _ in range(3))
                for _ in range(3000)})


def _words(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(VOCAB) for _ in range(n)]


def _edit(words: list[str], n_edits: int, start: int = 20) -> list[str]:
    """``n_edits`` words replaced, 40 apart (each changes 5 shingles, no two the same)."""
    out = list(words)
    for e in range(n_edits):
        out[start + 40 * e] = f"edited{start}_{e}"
    return out


def _corpus() -> tuple[list[str], dict]:
    rng = random.Random(1)
    base = [_words(rng, N_WORDS) for _ in range(N_BASE)]  # 30 unrelated documents
    docs = [" ".join(w) for w in base]
    # 30, 31: exact copies of 0 and 1, differing in case and layout only
    docs.append("  " + docs[0].upper().replace(" ", "\n", 7) + "\n")
    docs.append(docs[1].replace(" ", "\t ", 50).title())
    # 32..35: near copies of 2..5, 1 or 2 words edited: Jaccard 191/201 = 0.95 or 186/206 = 0.90
    for src, n_edits in ((2, 1), (3, 1), (4, 2), (5, 2)):
        docs.append(" ".join(_edit(base[src], n_edits)))
    # 36: a far copy of 10: its first half, then 100 new words (Jaccard 96/296 = 0.32)
    docs.append(" ".join(base[10][:100] + _words(rng, 100)))
    planted = {"exact": [(0, 30), (1, 31)], "near": [(2, 32), (3, 33), (4, 34), (5, 35)],
               "far": (10, 36)}
    return docs, planted


DOCS, PLANTED = _corpus()


def test_normalize_and_exact_duplicates():
    assert normalize("  Cafe\u0301?\n\tNO  ") == normalize("caf\u00e9?  no") == "caf\u00e9? no"
    assert normalize("e\u0301") == "\u00e9"  # NFC: the composed form
    assert exact_duplicates(DOCS) == [[0, 30], [1, 31]]
    assert dedup_exact(DOCS) == [i for i in range(len(DOCS)) if i not in (30, 31)]
    assert exact_duplicates(["b", "a", " B", "a\n", "c", "A"]) == [[0, 2], [1, 3, 5]]


def test_shingles():
    assert shingles("a b c d e f", k=5) == {"a b c d e", "b c d e f"}
    assert shingles("The  CAT sat", k=5) == {"the cat sat"}  # shorter than k: one shingle
    assert shingles(" \n ", k=5) == set() and shingles("", k=1) == set()
    assert shingles("x y x y", k=1) == {"x", "y"}
    assert len(shingles(DOCS[0])) == N_WORDS - 4


def test_jaccard():
    assert jaccard({1, 2, 3}, {2, 3, 4}) == 0.5
    assert jaccard(set(), set()) == 1.0 and jaccard({1}, set()) == 0.0
    sets = [shingles(d) for d in DOCS]
    assert jaccard(sets[2], sets[32]) == pytest.approx(191 / 201)
    assert jaccard(sets[4], sets[34]) == pytest.approx(186 / 206)
    assert jaccard(*(sets[i] for i in PLANTED["far"])) == pytest.approx(96 / 296)


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 7)])
def test_signatures_equal_datasketch(scheme, num_perm, seed):
    docs = DOCS[:3] + ["", "too short", DOCS[36]]
    sigs = minhash_signatures(docs, num_perm=num_perm, seed=seed, scheme=scheme)
    assert sigs.shape == (len(docs), num_perm)
    for doc, sig in zip(docs, sigs):
        ref = datasketch.MinHash(num_perm=num_perm, seed=seed, scheme=scheme)
        for s in shingles(doc):
            ref.update(s.encode("utf-8"))
        assert sig.dtype == ref.hashvalues.dtype
        np.testing.assert_array_equal(sig, ref.hashvalues)
    assert dedup.sha1_hash32(b"abc") == datasketch.hashfunc.sha1_hash32(b"abc")
    mh = MinHash(num_perm, seed, scheme)  # chunking does not change the signature
    np.testing.assert_array_equal(mh(shingles(DOCS[0]), chunk=7), sigs[0])


def test_estimate_jaccard():
    sets, sigs = [shingles(d) for d in DOCS], minhash_signatures(DOCS, num_perm=256)
    pairs = PLANTED["exact"] + PLANTED["near"] + [PLANTED["far"], (0, 1), (7, 8)]
    for i, j in pairs:
        est, exact = estimate_jaccard(sigs[i], sigs[j]), jaccard(sets[i], sets[j])
        assert abs(est - exact) <= 0.06, (i, j, est, exact)  # std error <= 0.03 at 256 perms
    assert estimate_jaccard(sigs[0], sigs[30]) == 1.0


@pytest.mark.parametrize("threshold,num_perm", [(0.5, 64), (0.8, 128), (0.7, 32)])
def test_lsh_params_equal_datasketch(threshold, num_perm):
    assert lsh_params(threshold, num_perm) == _optimal_param(threshold, num_perm, 0.5, 0.5)
    lsh = datasketch.MinHashLSH(threshold=threshold, num_perm=num_perm)
    assert lsh_params(threshold, num_perm) == (lsh.b, lsh.r)
    assert lsh_params(0.8, 128) == (9, 13)


@pytest.mark.parametrize("bands,rows", [(9, 13), (16, 8), (32, 4), (20, 5), (2, 1)])
def test_lsh_candidates_equal_datasketch(bands, rows):
    sigs = minhash_signatures(DOCS, num_perm=128)
    lsh = datasketch.MinHashLSH(num_perm=128, params=(bands, rows))
    minhashes = [datasketch.MinHash(seed=1, hashvalues=s, scheme="affine32") for s in sigs]
    for i, m in enumerate(minhashes):
        lsh.insert(i, m)
    ref = {(min(i, j), max(i, j)) for i, m in enumerate(minhashes) for j in lsh.query(m) if j != i}
    ours = lsh_candidates(sigs, bands, rows)
    assert ours == ref
    assert set(PLANTED["exact"]) <= ours


def test_near_duplicates_finds_the_planted_pairs():
    found = near_duplicates(DOCS, threshold=0.8)
    sets = [shingles(d) for d in DOCS]
    assert [(i, j) for i, j, _ in found] == sorted(PLANTED["exact"] + PLANTED["near"])
    for i, j, sim in found:
        assert sim == jaccard(sets[i], sets[j]) >= 0.8
    assert [sim for *_, sim in found[:2]] == [1.0, 1.0]  # the exact copies
    # brute force: no other pair of documents is above the threshold
    brute = {(i, j) for i in range(len(DOCS)) for j in range(i + 1, len(DOCS))
             if jaccard(sets[i], sets[j]) >= 0.8}
    assert brute == {(i, j) for i, j, _ in found}
    # the far copy is found at a low threshold only
    far = near_duplicates(DOCS, threshold=0.2, params=(64, 2))
    assert PLANTED["far"] in [(i, j) for i, j, _ in far]
    assert dedup_near(DOCS) == [i for i in range(len(DOCS)) if i not in range(30, 36)]


def test_clusters_chain():
    assert clusters(5, [(3, 4, 0.9), (1, 3, 0.8)]) == [[0], [1, 3, 4], [2]]
    a = [f"w{i}" for i in range(N_WORDS)]
    b = _edit(a, 1, start=50)  # J(a, b) = J(b, c) = 0.95 but J(a, c) = 0.90
    c = _edit(b, 1, start=150)
    docs = [" ".join(w) for w in (a, b, c)]
    pairs = near_duplicates(docs, threshold=0.92)
    assert [(i, j) for i, j, _ in pairs] == [(0, 1), (1, 2)]
    assert dedup_near(docs, threshold=0.92) == [0]


def test_bad_inputs():
    with pytest.raises(TypeError, match="docs"):
        exact_duplicates("just one string")
    with pytest.raises(TypeError, match="docs"):
        near_duplicates(["ok", 3])
    with pytest.raises(ValueError, match="docs"):
        minhash_signatures([])
    with pytest.raises(TypeError, match="text"):
        normalize(b"bytes")
    with pytest.raises(ValueError, match="k"):
        shingles("a b", k=0)
    with pytest.raises(TypeError, match="k"):
        shingles("a b", k=2.0)
    with pytest.raises(ValueError, match="threshold"):
        near_duplicates(["a"], threshold=0.0)
    with pytest.raises(ValueError, match="threshold"):
        lsh_params(1.5, 128)
    with pytest.raises(ValueError, match="num_perm"):
        MinHash(num_perm=0)
    with pytest.raises(ValueError, match="scheme"):
        MinHash(scheme="affine64")
    sigs = minhash_signatures(["a b c", "d e f"], num_perm=16)
    with pytest.raises(ValueError, match="bands \\* rows"):
        lsh_candidates(sigs, 4, 5)
    with pytest.raises(TypeError, match="signatures"):
        lsh_candidates(sigs.tolist(), 4, 4)
    with pytest.raises(ValueError, match="signatures"):
        lsh_candidates(sigs[0], 4, 4)
    with pytest.raises(TypeError, match="a must be a set"):
        jaccard([1], {1})
    with pytest.raises(ValueError, match="sig_a"):
        estimate_jaccard(sigs[0], sigs[0][:8])
    with pytest.raises(TypeError, match="params"):
        near_duplicates(["a b"], params=9)
    assert dedup.__doc__
