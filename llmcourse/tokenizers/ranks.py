"""From a token → rank table (what tiktoken stores) back to the ordered merges of a BPE.

tiktoken does not store merges. It stores every token's bytes with a *rank* — the order the
merges were learned in — and encodes by repeatedly joining the two adjacent pieces whose
concatenation has the lowest rank. The same vocabulary written as merges (pair of ids → new id)
is what :class:`~llmcourse.tokenizers.BPETokenizer` uses. Each token of rank ``r`` is the merge of
the two pieces that BPE, allowed only ranks below ``r``, leaves of its bytes.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["merges_from_ranks"]


def _bpe_below(token: bytes, max_rank: int, ranks: Mapping[bytes, int]) -> list[bytes]:
    """tiktoken's byte-pair merge of ``token`` using only ranks below ``max_rank``."""
    parts = [token[i:i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best, best_rank = -1, max_rank
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best, best_rank = i, rank
        if best < 0:
            break
        parts[best:best + 2] = [parts[best] + parts[best + 1]]
    return parts


def merges_from_ranks(ranks: Mapping[bytes, int]) -> tuple[list[tuple[int, int]], list[int]]:
    """Recover ``(merges, byte_order)`` from a byte-level BPE's ``{token bytes: rank}`` table.

    ``byte_order[i]`` is the byte value that id ``i`` (``i < 256``) stands for — cl100k does not
    give byte ``b`` the id ``b`` — and ``merges[k]`` is the pair of ids that makes id
    ``256 + k``. The ranks must be ``0 … n-1`` with the 256 single bytes first (true of GPT-2's
    r50k and GPT-4's cl100k); anything else is a ``ValueError``.

    >>> merges_from_ranks({bytes([b]): b for b in range(256)} | {b"ab": 256, b"abc": 257})[0]
    [(97, 98), (256, 99)]
    """
    if not isinstance(ranks, Mapping):
        raise TypeError(f"ranks must be a mapping of token bytes to ranks, got {type(ranks).__name__}")
    by_rank: dict[int, bytes] = {}
    for token, rank in ranks.items():
        if not isinstance(token, bytes) or isinstance(rank, bool) or not isinstance(rank, int):
            raise TypeError(f"ranks must map bytes to int, got {token!r}: {rank!r}")
        if rank in by_rank:
            raise ValueError(f"ranks gives the rank {rank} to two tokens")
        by_rank[rank] = token
    if len(by_rank) < 256 or sorted(by_rank) != list(range(len(by_rank))):
        raise ValueError("ranks must be 0 … n-1 with at least the 256 single bytes")
    if sorted(by_rank[r] for r in range(256)) != [bytes([b]) for b in range(256)]:
        raise ValueError("ranks must give the 256 single bytes the ranks 0 … 255 (a byte-level BPE)")
    byte_order = [by_rank[r][0] for r in range(256)]
    merges: list[tuple[int, int]] = []
    for rank in range(256, len(by_rank)):
        token = by_rank[rank]
        # usually only one split has both halves ranked below this token: that is the merge
        splits = [i for i in range(1, len(token))
                  if ranks.get(token[:i], rank) < rank and ranks.get(token[i:], rank) < rank]
        if len(splits) == 1:
            left, right = token[:splits[0]], token[splits[0]:]
        else:  # several candidates: replay BPE with the earlier ranks only
            parts = _bpe_below(token, rank, ranks)
            if len(parts) != 2:
                raise ValueError(f"ranks is not a BPE: the token {token!r} (rank {rank}) is not the "
                                 "merge of two tokens of lower rank")
            left, right = parts
        merges.append((ranks[left], ranks[right]))
    return merges, byte_order
