"""Serving many requests: static vs continuous batching, a paged KV cache, prefix caching.

* :func:`simulate_batching`: a discrete-event simulation of one model server. Time advances by
  the cost of each step: a prefill of the admitted prompts (``prefill_cost_per_token`` per
  prompt token; it yields each request's first token) or one decode step of the running batch
  (``decode_cost(batch_size)``; one token for every running sequence).
  *Static* batching takes up to ``max_batch`` waiting requests, runs them until the longest is
  done and returns them together; *continuous* (iteration-level, Orca: Yu et al. 2022) batching
  admits waiting requests into free slots before every step and lets each finished sequence
  leave at once.
* :class:`BlockTable`: the bookkeeping of vLLM's PagedAttention (Kwon et al. 2023): the KV
  cache is cut into blocks of ``block_size`` tokens and each sequence holds a list of block
  ids, so memory grows a block at a time instead of reserving ``max_len`` per sequence. With
  ``prefix_caching=True`` full blocks are identified by their tokens (and all before them) and
  shared between sequences with the same prompt prefix.
"""

from __future__ import annotations

import math
import statistics
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from numbers import Real

import torch

from llmcourse._checks import check_int, check_number
from llmcourse.inference.bandwidth import fastest_times
from llmcourse.inference.speculative import forward_with_cache
from llmcourse.model import GPT

__all__ = ["BlockTable", "LinearCost", "Request", "kv_fragmentation", "measure_step_costs",
           "simulate_batching"]


@dataclass(frozen=True)
class Request:
    """A request arriving at time ``arrival`` with a prompt of ``prompt_len`` tokens that
    wants ``output_len`` generated tokens."""

    arrival: float
    prompt_len: int
    output_len: int

    def __post_init__(self) -> None:
        check_number("arrival", self.arrival, min=0.0)
        check_int("prompt_len", self.prompt_len, min=1)
        check_int("output_len", self.output_len, min=1)


@dataclass(frozen=True)
class LinearCost:
    """Decode step cost ``base + per_seq · batch_size`` seconds (weights read once per step,
    plus the work of each sequence)."""

    base: float
    per_seq: float

    def __post_init__(self) -> None:
        check_number("base", self.base, min=0.0)
        check_number("per_seq", self.per_seq, min=0.0)

    def __call__(self, batch_size: int) -> float:
        return self.base + self.per_seq * check_int("batch_size", batch_size, min=1)


def simulate_batching(requests: Sequence[Request], *, policy: str, max_batch: int,
                      prefill_cost_per_token: float, decode_cost: Callable[[int], float]
                      ) -> dict:
    """Serve ``requests`` with ``policy`` ``"static"`` or ``"continuous"`` batching.

    Returns ``requests`` (per request, in input order: ``arrival``, ``first_token``,
    ``finish``, ``latency = finish - arrival``, ``ttft = first_token - arrival``), and
    ``makespan`` (last finish - first arrival), ``throughput`` (output tokens / makespan),
    ``mean_latency``, ``p50_latency``, ``p90_latency`` (nearest rank), ``mean_ttft``,
    ``decode_steps``.
    """
    if policy not in ("static", "continuous"):
        raise ValueError(f"policy must be 'static' or 'continuous', got {policy!r}")
    if isinstance(requests, (str, bytes)) or not isinstance(requests, Sequence):
        raise TypeError("requests must be a sequence of Request")
    if not requests:
        raise ValueError("requests must not be empty")
    for r in requests:
        if not isinstance(r, Request):
            raise TypeError(f"requests must hold Request objects, got {type(r).__name__}")
    B = check_int("max_batch", max_batch, min=1)
    c_pre = check_number("prefill_cost_per_token", prefill_cost_per_token, min=0.0)
    if not callable(decode_cost):
        raise TypeError("decode_cost must be callable: batch_size -> seconds")

    def step_cost(b: int) -> float:
        c = decode_cost(b)
        if isinstance(c, bool) or not isinstance(c, Real) or not math.isfinite(c) or c < 0:
            raise ValueError(f"decode_cost({b}) must return a finite number >= 0, got {c!r}")
        return float(c)

    order = sorted(range(len(requests)), key=lambda i: (requests[i].arrival, i))
    waiting = deque(order)
    first, finish = [math.nan] * len(requests), [math.nan] * len(requests)
    t, steps = 0.0, 0
    running: list[list[int]] = []  # [request index, tokens still to generate]

    def admit(limit: int) -> list[int]:
        taken = []
        while waiting and len(taken) < limit and requests[waiting[0]].arrival <= t:
            taken.append(waiting.popleft())
        return taken

    while waiting or running:
        if not running and requests[waiting[0]].arrival > t:
            t = requests[waiting[0]].arrival  # idle until the next arrival
        new = admit(B - len(running))
        if new:  # prefill the new prompts: each gets its first token
            t += c_pre * sum(requests[i].prompt_len for i in new)
            for i in new:
                first[i] = t
                running.append([i, requests[i].output_len - 1])
            if policy == "static":  # decode the batch to its longest output, then return it
                n_steps = max(left for _, left in running)
                for _ in range(n_steps):
                    t += step_cost(len(running))
                steps += n_steps
                for i, _ in running:
                    finish[i] = t
                running = []
                continue
        for seq in running:  # continuous: sequences done at prefill leave at once
            if seq[1] == 0:
                finish[seq[0]] = t
        running = [s for s in running if s[1] > 0]
        if running:  # one decode step for every running sequence
            t += step_cost(len(running))
            steps += 1
            for seq in running:
                seq[1] -= 1
                if seq[1] == 0:
                    finish[seq[0]] = t
            running = [s for s in running if s[1] > 0]

    per = [dict(arrival=r.arrival, first_token=first[i], finish=finish[i],
                latency=finish[i] - r.arrival, ttft=first[i] - r.arrival)
           for i, r in enumerate(requests)]
    lat = sorted(p["latency"] for p in per)
    makespan = max(finish) - min(r.arrival for r in requests)
    tokens = sum(r.output_len for r in requests)
    return {
        "requests": per, "makespan": makespan,
        "throughput": tokens / makespan if makespan > 0 else math.inf,
        "mean_latency": statistics.fmean(lat),
        "p50_latency": lat[math.ceil(0.5 * len(lat)) - 1],
        "p90_latency": lat[math.ceil(0.9 * len(lat)) - 1],
        "mean_ttft": statistics.fmean(p["ttft"] for p in per), "decode_steps": steps,
    }


@torch.no_grad()
def measure_step_costs(model: GPT, *, prompt_len: int, batch_sizes: Sequence[int],
                       repeats: int = 3) -> dict:
    """Time a GPT's steps: ``prefill_cost_per_token`` (one ``(1, prompt_len)`` prefill divided
    by ``prompt_len``) and ``decode`` (``{batch_size: seconds}`` of one cached decode step after
    ``prompt_len`` tokens), best of ``repeats`` (all timed in turn, round by round:
    :func:`~llmcourse.inference.bandwidth.fastest_times`); ``fit``: a least-squares
    :class:`LinearCost`."""
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a llmcourse GPT, got {type(model).__name__}")
    T = check_int("prompt_len", prompt_len, min=1)
    if T + 1 > model.config.block_size:
        raise ValueError(f"prompt_len + 1 must fit block_size {model.config.block_size}")
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Sequence) \
            or not batch_sizes:
        raise ValueError("batch_sizes must be a non-empty sequence of ints")
    sizes = [check_int("batch_sizes[i]", b, min=1) for b in batch_sizes]
    r = check_int("repeats", repeats, min=1)
    device = model.lm_head.weight.device
    was_training = model.training
    model.eval()

    try:
        V = model.config.vocab_size
        prompt = torch.randint(V, (1, T), device=device)
        steps = {"prefill": lambda: forward_with_cache(model, prompt,
                                                       [[] for _ in model.transformer.h])}
        for b in sizes:
            cache: list = [[] for _ in model.transformer.h]
            forward_with_cache(model, torch.randint(V, (b, T), device=device), cache)
            nxt = torch.randint(V, (b, 1), device=device)

            def step(cache=cache, nxt=nxt):
                forward_with_cache(model, nxt, [list(layer) for layer in cache])  # same T each

            steps[b] = step
        seconds = fastest_times(steps, r, device)  # in turn, round by round
    finally:
        model.train(was_training)
    pre = seconds.pop("prefill")
    decode = seconds  # {batch size: seconds}
    xs, ys = list(decode), list(decode.values())
    if len(xs) > 1:
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        slope = max(slope, 0.0)
        fit = LinearCost(max(my - slope * mx, 0.0), slope)
    else:
        fit = LinearCost(ys[0], 0.0)
    return {"prefill_cost_per_token": pre / T, "decode": decode, "fit": fit}


# ------------------------------------------------------------------------------ paged KV
def kv_fragmentation(seq_lens: Sequence[int], *, block_size: int, max_len: int) -> dict:
    """KV slots reserved for sequences of ``seq_lens`` tokens: paged (``ceil(len / block_size)``
    blocks each) vs contiguous (``max_len`` slots each, as a static allocator must).

    Returns ``tokens``, ``paged_slots``, ``paged_waste`` (slots allocated but unused: only in
    each sequence's last block, < ``block_size``), ``contiguous_slots``, ``contiguous_waste``,
    and the wasted fractions ``paged_waste_frac``, ``contiguous_waste_frac``.
    """
    bs, M = check_int("block_size", block_size, min=1), check_int("max_len", max_len, min=1)
    if isinstance(seq_lens, (str, bytes)) or not isinstance(seq_lens, Sequence) or not seq_lens:
        raise ValueError("seq_lens must be a non-empty sequence of ints")
    lens = [check_int("seq_lens[i]", n, min=1) for n in seq_lens]
    if max(lens) > M:
        raise ValueError(f"seq_lens must be <= max_len {M}, got {max(lens)}")
    tokens = sum(lens)
    paged = sum(-(-n // bs) * bs for n in lens)
    contig = len(lens) * M
    return {"tokens": tokens, "paged_slots": paged, "paged_waste": paged - tokens,
            "contiguous_slots": contig, "contiguous_waste": contig - tokens,
            "paged_waste_frac": (paged - tokens) / paged,
            "contiguous_waste_frac": (contig - tokens) / contig}


class BlockTable:
    """Block tables of a paged KV cache with ``num_blocks`` blocks of ``block_size`` tokens.

    ``add_sequence(seq_id, tokens)`` allocates the prompt's blocks (returns how many prompt
    tokens were found in the prefix cache), ``append(seq_id, token)`` adds a generated token
    (a new block every ``block_size`` tokens), ``free(seq_id)`` releases the blocks.
    Running out of blocks raises ``RuntimeError`` and leaves the table unchanged.

    With ``prefix_caching``, a full block is keyed by ``(key of the block before, its tokens)``,
    so equal keys mean equal prefixes. A sequence reuses the cached blocks of its longest
    cached prefix (reference-counted; never written again, since only full blocks are
    shared). Freed cached blocks stay reusable until a new allocation evicts them (least
    recently freed first).
    """

    def __init__(self, num_blocks: int, block_size: int, *, prefix_caching: bool = False) -> None:
        self.num_blocks = check_int("num_blocks", num_blocks, min=1)
        self.block_size = check_int("block_size", block_size, min=1)
        if not isinstance(prefix_caching, bool):
            raise TypeError(f"prefix_caching must be a bool, got {type(prefix_caching).__name__}")
        self.prefix_caching = prefix_caching
        self._free: deque[int] = deque(range(num_blocks))  # holds no cached content
        self._evictable: OrderedDict[int, None] = OrderedDict()  # cached, refcount 0
        self._ref = [0] * num_blocks
        self._key_of: dict[int, tuple] = {}
        self._block_of: dict[tuple, int] = {}
        self._tables: dict[Hashable, list[int]] = {}
        self._tokens: dict[Hashable, list[int]] = {}
        self.hits = self.queries = 0

    # -- helpers
    def _keys(self, tokens: Sequence[int]) -> list[tuple]:
        keys, parent = [], None
        for i in range(len(tokens) // self.block_size):
            parent = (parent, tuple(tokens[i * self.block_size:(i + 1) * self.block_size]))
            keys.append(parent)
        return keys

    def _alloc(self) -> int:
        if self._free:
            b = self._free.popleft()
        else:  # evict the least recently freed cached block
            b, _ = self._evictable.popitem(last=False)
            del self._block_of[self._key_of.pop(b)]
        self._ref[b] = 1
        return b

    def _register(self, b: int, key: tuple) -> None:
        if self.prefix_caching and key not in self._block_of:
            self._key_of[b], self._block_of[key] = key, b

    def _check_seq(self, seq_id: Hashable) -> None:
        if seq_id not in self._tables:
            raise ValueError(f"unknown seq_id {seq_id!r}")

    # -- public API
    @property
    def num_free_blocks(self) -> int:
        """Blocks available to new allocations (free plus evictable cached ones)."""
        return len(self._free) + len(self._evictable)

    def block_ids(self, seq_id: Hashable) -> list[int]:
        """The physical block ids of ``seq_id``, in token order."""
        self._check_seq(seq_id)
        return list(self._tables[seq_id])

    def add_sequence(self, seq_id: Hashable, tokens: Sequence[int]) -> int:
        """Allocate blocks for a new sequence's prompt; return the number of prompt tokens
        whose KV was found in the prefix cache (a multiple of ``block_size``)."""
        if not isinstance(seq_id, Hashable) or seq_id in self._tables:
            raise ValueError(f"seq_id must be a new hashable id, got {seq_id!r}")
        if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Sequence) or not tokens:
            raise ValueError("tokens must be a non-empty sequence of token ids")
        tokens = [check_int("tokens[i]", t, min=0) for t in tokens]
        keys = self._keys(tokens)
        hit_blocks = []
        if self.prefix_caching:
            for key in keys:  # the longest cached prefix
                if key not in self._block_of:
                    break
                hit_blocks.append(self._block_of[key])
        n_blocks = -(-len(tokens) // self.block_size)
        reusable = sum(1 for b in hit_blocks if self._ref[b] == 0)  # would leave the free pool
        if n_blocks - len(hit_blocks) > self.num_free_blocks - reusable:
            raise RuntimeError(f"out of KV blocks: need {n_blocks - len(hit_blocks)}, "
                               f"{self.num_free_blocks - reusable} free")
        table = []
        for b in hit_blocks:
            if self._ref[b] == 0:
                del self._evictable[b]
            self._ref[b] += 1
            table.append(b)
        for i in range(len(hit_blocks), n_blocks):
            b = self._alloc()
            if i < len(keys):  # a full block: cache it
                self._register(b, keys[i])
            table.append(b)
        if self.prefix_caching:
            self.queries += len(keys)
            self.hits += len(hit_blocks)
        self._tables[seq_id], self._tokens[seq_id] = table, tokens
        return len(hit_blocks) * self.block_size

    def append(self, seq_id: Hashable, token: int) -> None:
        """Add one generated token to ``seq_id`` (allocating a block when the last is full)."""
        self._check_seq(seq_id)
        token = check_int("token", token, min=0)
        toks, table = self._tokens[seq_id], self._tables[seq_id]
        if len(toks) % self.block_size == 0:
            if not self.num_free_blocks:
                raise RuntimeError("out of KV blocks: cannot grow the sequence")
            table.append(self._alloc())
        toks.append(token)
        if len(toks) % self.block_size == 0:  # the last block just filled up
            self._register(table[-1], self._keys(toks)[-1])

    def free(self, seq_id: Hashable) -> None:
        """Release ``seq_id``'s blocks (cached ones stay reusable until evicted)."""
        self._check_seq(seq_id)
        for b in self._tables.pop(seq_id):
            self._ref[b] -= 1
            if self._ref[b] == 0:
                if b in self._key_of:
                    self._evictable[b] = None
                else:
                    self._free.append(b)
        del self._tokens[seq_id]

    def stats(self) -> dict:
        """``tokens`` (of live sequences, shared ones counted per sequence), ``used_blocks``
        (physical), ``used_slots``, ``waste`` (unused slots in the sequences' last blocks),
        ``shared_blocks`` (used by more than one sequence), ``hits``, ``queries`` and
        ``hit_rate`` of the prefix cache (full prompt blocks found / looked up)."""
        used = sum(1 for r in self._ref if r > 0)
        tokens = sum(len(t) for t in self._tokens.values())
        waste = sum(-(-len(t) // self.block_size) * self.block_size - len(t)
                    for t in self._tokens.values())
        return {"tokens": tokens, "used_blocks": used, "used_slots": used * self.block_size,
                "waste": waste, "shared_blocks": sum(1 for r in self._ref if r > 1),
                "hits": self.hits, "queries": self.queries,
                "hit_rate": self.hits / self.queries if self.queries else 0.0}
