"""Speculative decoding (Leviathan et al. 2023, "Fast Inference from Transformers via Speculative
Decoding"; Chen et al. 2023, "Accelerating Large Language Model Decoding with Speculative
Sampling").

A small *draft* model proposes ``k`` tokens one by one; the large *target* model scores all of
them in one forward pass (which costs about as much as one decoding step: decoding is
memory-bound). Draft token ``x`` drawn from ``q`` is kept with probability ``min(1, p(x)/q(x))``;
at the first rejection a token is drawn from ``norm(max(0, p - q))`` and the round ends; when
all ``k`` are kept the target's next distribution gives one more token for free. The tokens
come out distributed exactly as the target's own samples: for every token ``y``

    q(y)·min(1, p(y)/q(y)) + (1 - Σ_x min(p(x), q(x))) · max(0, p(y) - q(y)) / Z = p(y),

with ``Z = Σ_y max(0, p(y) - q(y)) = 1 - Σ_x min(p(x), q(x))``.
"""

from __future__ import annotations

import torch

from llmcourse._checks import check_bool, check_int, check_number, check_tensor
from llmcourse.model import GPT, next_token_probs

__all__ = ["acceptance_rule", "forward_with_cache", "speculative_accept",
           "speculative_generate"]


def _check_dist(x: object, name: str) -> torch.Tensor:
    check_tensor(name, x, dtype="float")
    if x.dim() < 1 or x.size(-1) == 0:
        raise ValueError(f"{name} must have a non-empty last dim (the vocabulary), got shape "
                         f"{tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()) or bool((x < 0).any()):
        raise ValueError(f"{name} must hold finite, non-negative probabilities")
    if not torch.allclose(x.sum(-1).double(), torch.ones((), dtype=torch.float64), atol=1e-4):
        raise ValueError(f"{name} must sum to 1 over its last dim, got sums {x.sum(-1)}")
    return x


def acceptance_rule(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves of the rule for target ``p`` and draft ``q`` (``(..., V)`` each).

    Returns ``(alpha, residual)``: ``alpha[x] = min(1, p[x] / q[x])``, the probability of
    keeping draft token ``x`` (1 where ``q[x] = 0``: such a token is never drafted), and
    ``residual = norm(max(0, p - q))``, what a rejection samples from (``p`` itself where
    ``p == q``, when rejection cannot happen).
    """
    p, q = _check_dist(p, "p"), _check_dist(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and "
                         f"{tuple(q.shape)}")
    return _rule(p, q)


def _rule(p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    ratio = p / torch.where(q > 0, q, torch.ones_like(q))
    alpha = torch.where(q > 0, ratio.clamp(max=1.0), torch.ones_like(q))  # min(1, p/q)
    residual = (p - q).clamp(min=0.0)  # max(0, p - q)
    z = residual.sum(-1, keepdim=True)
    residual = torch.where(z > 0, residual / torch.where(z > 0, z, torch.ones_like(z)), p)
    return alpha, residual


def speculative_accept(p: torch.Tensor, q: torch.Tensor, draft_token: int, u: float,
                       generator: torch.Generator | None = None) -> tuple[bool, int]:
    """One accept/reject decision for a 1-D target ``p`` and draft ``q`` over the vocabulary.

    ``draft_token`` was drawn from ``q``; ``u`` is a uniform number in ``[0, 1)``. Keeps it when
    ``u < min(1, p/q)`` and returns ``(True, draft_token)``; otherwise returns
    ``(False, y)`` with ``y`` sampled (with ``generator``) from ``norm(max(0, p - q))``.
    """
    p, q = _check_dist(p, "p"), _check_dist(q, "q")
    if p.dim() != 1 or p.shape != q.shape:
        raise ValueError(f"p and q must be 1-D of the same length, got {tuple(p.shape)} and "
                         f"{tuple(q.shape)}")
    draft_token = check_int("draft_token", draft_token, min=0, max=p.numel() - 1)
    if float(q[draft_token]) <= 0:
        raise ValueError(f"draft_token {draft_token} has q = 0: it cannot have been drafted")
    u = check_number("u", u, min=0.0, max=1.0, max_open=True)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return _accept(p, q, draft_token, u, generator)


def _accept(p, q, x, u, generator):
    alpha, residual = _rule(p, q)
    if u < float(alpha[x]):
        return True, x
    return False, int(torch.multinomial(residual, 1, generator=generator))


# ------------------------------------------------------------------------------ KV cache
def forward_with_cache(model: GPT, idx: torch.Tensor, cache: list[list[torch.Tensor]]
                       ) -> torch.Tensor:
    """Logits at *every* new position: run ``idx`` (B, T) after the tokens already in ``cache``
    (one ``[k, v]`` per layer, ``[]`` to start; extended in place). Returns (B, T, vocab).

    :meth:`GPT._forward_cached` keeps only the last position; verifying ``k`` drafted tokens
    needs all ``k + 1``.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a llmcourse GPT, got {type(model).__name__}")
    model._check_idx(idx)
    if not isinstance(cache, list):
        raise TypeError(f"cache must be a list of per-layer lists, got {type(cache).__name__}")
    if len(cache) != len(model.transformer.h) or not all(isinstance(c, list) for c in cache):
        raise ValueError(f"cache must be a list of {len(model.transformer.h)} per-layer lists")
    past = cache[0][0].size(2) if cache[0] else 0
    T = idx.size(1)
    if past + T > model.config.block_size:
        raise ValueError(f"cache of {past} + {T} new tokens exceeds block_size "
                         f"{model.config.block_size}")
    tr = model.transformer
    pos = torch.arange(past, past + T, device=idx.device)  # (T,)
    x = tr.drop(tr.wte(idx) + tr.wpe(pos))  # (B, T, C)
    for block, layer_cache in zip(tr.h, cache):
        x, _ = block(x, kv_cache=layer_cache)  # (B, T, C)
    return model.lm_head(tr.ln_f(x))  # (B, T, vocab)


class _Runner:
    """A model plus a KV cache of the tokens it has seen; rolls back to the common prefix."""

    def __init__(self, model: GPT, use_cache: bool) -> None:
        self.model, self.use_cache, self.calls = model, use_cache, 0
        self.cache: list[list[torch.Tensor]] = [[] for _ in model.transformer.h]
        self.seen = torch.empty(0, dtype=torch.long)

    def logits(self, seq: torch.Tensor, start: int) -> torch.Tensor:
        """Logits (T - start, vocab) at positions ``start .. T-1`` of ``seq`` (1, T)."""
        self.calls += 1
        if not self.use_cache:
            return self.model(seq)[0][0, start:]
        n = min(self.seen.numel(), start)
        differs = (self.seen[:n] != seq[0, :n].cpu()).nonzero()
        keep = int(differs[0]) if differs.numel() else n  # cached positions still valid
        for layer in self.cache:
            layer[:] = [layer[0][:, :, :keep], layer[1][:, :, :keep]] if keep and layer else []
        out = forward_with_cache(self.model, seq[:, keep:], self.cache)[0]  # (T - keep, vocab)
        self.seen = seq[0].cpu().clone()
        return out[start - keep:]


def _sample(probs: torch.Tensor, temperature: float, generator) -> int:
    if temperature == 0:
        return int(probs.argmax())
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def speculative_generate(target: GPT, draft: GPT, idx: torch.Tensor, max_new_tokens: int,
                         draft_len: int, temperature: float = 0.0,
                         generator: torch.Generator | None = None, use_cache: bool = True
                         ) -> tuple[torch.Tensor, dict]:
    """Append ``max_new_tokens`` tokens to ``idx`` (1, T) with ``draft`` proposing up to
    ``draft_len`` tokens a round and ``target`` verifying them in one forward pass.

    ``temperature=0``: greedy, the same tokens as ``target.generate(idx, n, temperature=0)``
    (up to float rounding: scoring ``k + 1`` positions in one pass could flip a near-exact tie).
    Otherwise tokens are distributed exactly as the target's samples at that temperature.
    The whole sequence must fit both models' ``block_size``. Returns ``(tokens (1, T + n),
    stats)`` with ``stats``: ``accepted`` and ``proposed`` (per round), ``acceptance_rate``
    (accepted / proposed), ``rounds``, ``target_calls``, ``draft_calls``,
    ``tokens_per_target_call``.
    """
    for name, m in (("target", target), ("draft", draft)):
        if not isinstance(m, GPT):
            raise TypeError(f"{name} must be a llmcourse GPT, got {type(m).__name__}")
    if target.config.vocab_size != draft.config.vocab_size:
        raise ValueError(f"target and draft must share a vocabulary, got vocab sizes "
                         f"{target.config.vocab_size} and {draft.config.vocab_size}")
    target._check_idx(idx)
    if idx.size(0) != 1:
        raise ValueError(f"idx must hold one sequence (1, T), got shape {tuple(idx.shape)}")
    max_new_tokens = check_int("max_new_tokens", max_new_tokens, min=0)
    draft_len = check_int("draft_len", draft_len, min=1)
    temperature = check_number("temperature", temperature, min=0.0)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    check_bool("use_cache", use_cache)
    limit = min(target.config.block_size, draft.config.block_size)
    if idx.size(1) + max_new_tokens > limit:
        raise ValueError(f"prompt ({idx.size(1)}) + max_new_tokens ({max_new_tokens}) must fit "
                         f"block_size {limit}")
    modes = target.training, draft.training
    for m in (target, draft):
        if m.training:  # (train() walks every submodule: skip it when already in eval mode)
            m.eval()
    tgt, drf = _Runner(target, use_cache), _Runner(draft, use_cache)
    rng_device = generator.device if generator is not None else idx.device
    seq = idx.long().clone()
    accepted, proposed = [], []
    try:
        while seq.size(1) - idx.size(1) < max_new_tokens:
            remaining = max_new_tokens - (seq.size(1) - idx.size(1))
            k = min(draft_len, remaining - 1)  # a round emits at most k + 1 tokens
            L = seq.size(1)
            cur, drafts, qs = seq, [], []
            for _ in range(k):  # the draft proposes k tokens autoregressively
                q = next_token_probs(drf.logits(cur, cur.size(1) - 1)[-1], temperature)  # (V,)
                x = _sample(q, temperature, generator)
                drafts.append(x)
                qs.append(q)
                cur = torch.cat([cur, torch.tensor([[x]], device=cur.device)], dim=1)
            p_all = next_token_probs(tgt.logits(cur, L - 1), temperature)  # (k + 1, V)
            new, n_ok = [], 0
            for i in range(k):
                u = float(torch.rand((), generator=generator, device=rng_device)) \
                    if temperature > 0 else 0.0
                ok, tok = _accept(p_all[i], qs[i], drafts[i], u, generator)
                new.append(tok)
                if not ok:
                    break
                n_ok += 1
            else:  # every draft kept: the target's distribution after them gives one more
                new.append(_sample(p_all[k], temperature, generator))
            accepted.append(n_ok)
            proposed.append(k)
            seq = torch.cat([seq, torch.tensor([new], device=seq.device)], dim=1)
    finally:
        for m, mode in zip((target, draft), modes):
            if mode:
                m.train()
    n_prop = sum(proposed)
    stats = {
        "accepted": accepted, "proposed": proposed,
        "acceptance_rate": sum(accepted) / n_prop if n_prop else float("nan"),
        "rounds": len(accepted), "target_calls": tgt.calls, "draft_calls": drf.calls,
        "tokens_per_target_call": max_new_tokens / tgt.calls if tgt.calls else float("nan"),
    }
    return seq, stats
