"""Checkers for chapter 02 (tokens and embeddings): one BPE merge step, the rank-ordered BPE
encode, sinusoidal positions."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import torch

from llmcourse._checks import check_int, check_number
from llmcourse.exercises import Case, check_fn, run_checks

__all__ = ["check_bpe_encode", "check_bpe_merge", "check_sinusoidal", "sinusoidal_positions"]


def check_bpe_merge(fn: Callable[[list[int], tuple[int, int], int], list[int]]) -> bool:
    """Check ``fn(ids, pair, new_id)``: every occurrence of ``pair``, left to right, becomes ``new_id``."""
    check_fn(fn)
    cases = [
        Case(([1, 2, 3, 1, 2], (1, 2), 256), [256, 3, 256]),
        Case(([5, 6, 7], (1, 2), 256), [5, 6, 7], hint="no occurrence: ids are unchanged"),
        Case(([1, 1, 1], (1, 1), 300), [300, 1],
             hint="occurrences must not overlap: scan left to right and skip past each merge"),
        Case(([1, 1, 1, 1], (1, 1), 300), [300, 300]),
        Case(([7], (7, 7), 256), [7], hint="a single token has no pair"),
        Case(([], (1, 2), 256), []),
        Case(([2, 1, 2, 1], (1, 2), 256), [2, 256, 1], hint="the pair is ordered: (1, 2) is not (2, 1)"),
    ]
    return run_checks(fn, cases, name="bpe_merge")


_WORDS = ("the of and to in is that for it as with on be by this are from or not token tokens "
          "tokenizer merge merges merged pair pairs encode encoding decode rank ranks byte bytes "
          "lower lowest new newer newest 语言 模型 语言模型 🙂 👩‍💻 x = f(x) + 1; def return 2024").split()


def _hidden_merges() -> dict[tuple[int, int], int]:
    """Merges learned on a hidden, seeded text (English-like words, code, Chinese, emoji)."""
    from llmcourse.tokenizers import BPETokenizer

    rng = random.Random(2)
    text = " ".join(rng.choice(_WORDS) for _ in range(4000))
    return dict(BPETokenizer.train(text, 360).merges)


def check_bpe_encode(fn: Callable[[str, dict[tuple[int, int], int]], list[int]]) -> bool:
    """Check ``fn(text, merges) -> ids``, the rank-ordered byte-level BPE encode.

    ``merges`` maps a pair of ids to its new id, which is also its rank (lower = learned
    earlier). The expected ids are those of :class:`llmcourse.tokenizers.BPETokenizer` with the
    same merges (GPT-2's pre-split, the identity byte order). The cases catch merging the most
    frequent pair of the text (what *training* does), merging in the dict's order, merging the
    leftmost pair, skipping the pre-split, and starting from code points instead of bytes.
    """
    from llmcourse.tokenizers import BPETokenizer

    check_fn(fn)

    def expect(text: str, merges: dict[tuple[int, int], int]) -> list[int]:
        in_rank_order = sorted(merges, key=merges.__getitem__)
        assert [merges[p] for p in in_rank_order] == list(range(256, 256 + len(merges)))
        return BPETokenizer(in_rank_order).encode(text)

    hidden = _hidden_merges()
    a, b, c = 97, 98, 99
    toy = [
        ("abcbcbc", {(a, b): 256, (b, c): 257},
         "merge the pair with the lowest rank (the smallest new id) first, not the most frequent "
         "pair of this text: training picked merges by frequency on its corpus; encoding replays "
         "them in the learned (rank) order"),
        ("abc", {(256, c): 257, (a, b): 256},
         "the rank is the new id, not the dict's order; and after each merge look again: a merge "
         "can make a new pair that has a merge too"),
        ("abc", {(b, c): 256, (a, b): 257},
         "not the leftmost pair that has a merge: the lowest-rank pair anywhere in the chunk"),
        ("ab ab", {(b, 32): 256},
         "pre-split the text first (pre_split(text)): merges never cross chunk boundaries"),
        ("é!", {(195, 169): 256},
         "start from the UTF-8 bytes (text.encode('utf-8')), not from code points (ord)"),
        ("aaaaa", {(a, a): 256, (256, 256): 257},
         "merge every occurrence left to right without overlaps, then look again"),
        ("", {(a, b): 256}, "empty text: no ids"),
    ]
    texts = ["the newest tokenizer merges the lowest rank first",
             "def encode(x):\n    return f(x) + 1  # 2024",
             "语言模型 encode 🙂 bytes; 👩‍💻 decode the tokens"]
    cases = [Case((text, merges), expect(text, merges), hint=hint) for text, merges, hint in toy]
    cases += [Case((text, hidden), expect(text, hidden),
                   hint="the same rule on real merges: pre-split, bytes, lowest rank first, repeat")
              for text in texts]
    return run_checks(fn, cases, name="bpe_encode")


def sinusoidal_positions(n_positions: int, d_model: int, base: float = 10000.0) -> torch.Tensor:
    """The Transformer's sinusoidal encoding, ``(n_positions, d_model)``.

    ``PE[p, 2i] = sin(p / base^(2i / d))`` and ``PE[p, 2i + 1] = cos(p / base^(2i / d))``.
    """
    check_int("n_positions", n_positions, min=1)
    if check_int("d_model", d_model, min=2) % 2:
        raise ValueError(f"d_model must be a positive even int, got {d_model!r}")
    check_number("base", base, min=0.0, min_open=True)
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(base) * torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe.float()


def check_sinusoidal(fn: Callable[[int, int], torch.Tensor]) -> bool:
    """Check ``fn(n_positions, d_model) -> (n_positions, d_model)`` sinusoidal encodings."""
    check_fn(fn)
    cases = [
        Case((1, 4), torch.tensor([[0.0, 1.0, 0.0, 1.0]]),
             hint="position 0: sin(0) = 0 in even columns, cos(0) = 1 in odd columns"),
        Case((3, 2), sinusoidal_positions(3, 2),
             hint="with d_model = 2 the only frequency is 1: PE[p] = [sin p, cos p]"),
        Case((16, 8), sinusoidal_positions(16, 8),
             hint="column pair i uses the frequency 1 / 10000^(2i / d_model); sin even, cos odd"),
        Case((50, 32), sinusoidal_positions(50, 32)),
    ]
    return run_checks(fn, cases, name="sinusoidal", atol=1e-4)
