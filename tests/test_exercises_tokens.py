import math
from collections import Counter

import pytest
import torch

from llmcourse.exercises.tokens import (
    check_bpe_encode,
    check_bpe_merge,
    check_sinusoidal,
    sinusoidal_positions,
)
from llmcourse.tokenizers import BPETokenizer, _merge, pre_split


def test_bpe_merge_checker(capsys):
    assert check_bpe_merge(_merge)

    def overlapping(ids, pair, new_id):  # merges overlapping occurrences: wrong
        out = list(ids)
        for i in range(len(ids) - 1):
            if (ids[i], ids[i + 1]) == pair:
                out[i] = new_id
        return [t for t in out]

    assert not check_bpe_merge(overlapping)
    assert not check_bpe_merge(lambda ids, pair, new_id: ids)
    assert "❌" in capsys.readouterr().out


def test_sinusoidal_checker():
    assert check_sinusoidal(sinusoidal_positions)
    pe = sinusoidal_positions(10, 6)
    assert math.isclose(float(pe[3, 2]), math.sin(3 / 10000 ** (2 / 6)), rel_tol=1e-6)
    swapped = lambda n, d: sinusoidal_positions(n, d)[:, [i ^ 1 for i in range(d)]]  # cos/sin swapped
    assert not check_sinusoidal(swapped)
    assert not check_sinusoidal(lambda n, d: torch.zeros(n, d))
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 3)
    with pytest.raises(ValueError, match="n_positions"):
        sinusoidal_positions(0, 4)


def _encoder(first_pair, *, split=True, start=lambda chunk: list(chunk.encode("utf-8"))):
    """A BPE encode that merges ``first_pair(ids, merges)`` until it returns None."""
    def encode(text, merges):
        out = []
        for chunk in (pre_split(text) if split else [text]):
            ids = start(chunk)
            while (pair := first_pair(ids, merges)) is not None:
                ids = _merge(ids, pair, merges[pair])
            out.extend(ids)
        return out
    return encode


def _lowest_rank(ids, merges):
    pairs = [p for p in zip(ids, ids[1:]) if p in merges]
    return min(pairs, key=merges.get) if pairs else None


def _most_frequent(ids, merges):  # what training does: the commonest pair of this text
    counts = Counter(p for p in zip(ids, ids[1:]) if p in merges)
    return max(counts, key=counts.get) if counts else None


def _leftmost(ids, merges):
    return next((p for p in zip(ids, ids[1:]) if p in merges), None)


def test_bpe_encode_checker_accepts_rank_order_and_the_package(capsys):
    assert check_bpe_encode(_encoder(_lowest_rank))
    assert check_bpe_encode(lambda text, merges: BPETokenizer(
        sorted(merges, key=merges.get)).encode(text))
    assert "all 10 hidden cases pass" in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (_encoder(_most_frequent), "not the most frequent pair"),
    (_encoder(_leftmost), "not the leftmost pair"),
    (_encoder(_lowest_rank, split=False), "pre-split"),
    (_encoder(_lowest_rank, start=lambda chunk: [ord(c) for c in chunk]), "UTF-8 bytes"),
    (lambda text, merges: [i for chunk in pre_split(text) for i in _dict_order(chunk, merges)],
     "not the dict's order"),
    (lambda text, merges: list(text.encode("utf-8")), "lowest rank"),
])
def test_bpe_encode_checker_catches_the_usual_mistakes(wrong, hint, capsys):
    assert not check_bpe_encode(wrong)
    out = capsys.readouterr().out
    assert "❌" in out and hint in out


def _dict_order(chunk, merges):  # one pass over the merges in the dict's order
    ids = list(chunk.encode("utf-8"))
    for pair, new_id in merges.items():
        ids = _merge(ids, pair, new_id)
    return ids


def test_bpe_encode_checker_reports_errors_and_stubs(capsys):
    def stub(text, merges):
        raise NotImplementedError

    assert not check_bpe_encode(stub)
    assert not check_bpe_encode(lambda text, merges: 1 / 0)
    out = capsys.readouterr().out
    assert "not implemented" in out and "ZeroDivisionError" in out
    with pytest.raises(TypeError, match="fn"):
        check_bpe_encode("not a function")
