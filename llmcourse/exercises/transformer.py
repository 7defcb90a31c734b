"""Checkers for chapter 04 (the transformer and GPT): ``check_gpt_params``, ``check_top_p`` and
``check_kv_cache_update``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from llmcourse.exercises import Case, check_fn, run_checks
from llmcourse.model import GPT, GPTConfig, next_token_probs, param_count

__all__ = ["check_gpt_params", "check_kv_cache_update", "check_top_p"]


def check_gpt_params(fn: Callable[..., int]) -> bool:
    """Check ``fn(vocab_size, block_size, n_layer, n_embd, bias=True) -> int`` (a GPT's size)."""
    check_fn(fn)
    sizes = [(65, 64, 2, 64, True), (50257, 1024, 12, 768, True), (50257, 1024, 48, 1600, True),
             (100, 32, 3, 48, False), (1000, 256, 6, 384, False)]
    cases = [Case((V, T, L, C), param_count(GPTConfig(V, T, L, 1, C, bias=bias)),
                  kwargs=dict(bias=bias),
                  hint="count wte, wpe, each block (attention, MLP, 2 LayerNorms) and ln_f; "
                       "the head is tied to wte" + ("" if bias else "; bias=False: no biases"))
             for V, T, L, C, bias in sizes]
    return run_checks(fn, cases, name="gpt_params")


def check_top_p(fn: Callable[[torch.Tensor, float], torch.Tensor]) -> bool:
    """Check ``fn(probs, p)``: nucleus filtering of a 1-D probability vector, renormalised."""
    check_fn(fn)
    g = torch.Generator().manual_seed(0)
    probs = [torch.tensor([0.1, 0.5, 0.15, 0.25]), torch.tensor([0.1, 0.5, 0.15, 0.25]),
             torch.tensor([0.1, 0.5, 0.15, 0.25]), torch.softmax(torch.randn(50, generator=g), 0),
             torch.tensor([0.4, 0.3, 0.2, 0.1])]
    ps = [0.5, 0.7, 1.0, 0.8, 0.85]
    hints = ["the most likely token alone has 0.5: keep only it",
             "0.5 + 0.25 = 0.75 ≥ 0.7: keep two tokens, renormalised",
             "p = 1 keeps everything", "keep tokens while the mass before them is < p",
             "0.4 + 0.3 = 0.7 < 0.85: a third token is needed"]
    cases = [Case((pr, p), next_token_probs(pr.log(), top_p=p), hint=h)
             for pr, p, h in zip(probs, ps, hints)]
    return run_checks(fn, cases, name="top_p_probs")


_KV_CONFIG = GPTConfig(vocab_size=32, block_size=32, n_layer=2, n_head=2, n_embd=16)


def _kv_model() -> GPT:
    """The same small random GPT every time, with weights large enough (std 0.3) that what each
    token attends to shows in the logits."""
    model = GPT(_KV_CONFIG).eval()
    g = torch.Generator().manual_seed(1)  # a seed whose greedy text is not one repeated token
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def _generate_with_cache(update: Callable, model: GPT, idx: torch.Tensor, n: int):
    """Greedy decoding where each layer's cache is ``update(cache, k, v)``; returns the tokens
    and the logits of every step (B, n, vocab)."""
    cfg, tr = model.config, model.transformer
    C, nh = cfg.n_embd, cfg.n_head
    hs = C // nh
    caches: list = [None] * cfg.n_layer
    tokens, new, past, steps = idx, idx, 0, []
    with torch.no_grad():
        for _ in range(n):
            B, T = new.shape
            x = tr.wte(new) + tr.wpe(torch.arange(past, past + T))  # (B, T, C)
            for i, block in enumerate(tr.h):
                q, k, v = block.attn.c_attn(block.ln_1(x)).split(C, dim=2)
                q, k, v = (t.view(B, T, nh, hs).transpose(1, 2) for t in (q, k, v))
                out = update(caches[i], k, v)
                if (not isinstance(out, (tuple, list)) or len(out) != 2
                        or not all(isinstance(t, torch.Tensor) for t in out)):
                    raise ValueError("your function must return a pair (k_all, v_all) of tensors")
                for name, t in zip(("keys", "values"), out):
                    if t.dim() != 4 or (t.size(0), t.size(1), t.size(3)) != (B, nh, hs):
                        raise ValueError(f"your {name} have shape {tuple(t.shape)}; expected "
                                         f"({B}, {nh}, S, {hs}) = (B, n_head, S, head_size), "
                                         "S keys in time order along dim 2")
                caches[i] = out
                S = out[0].size(2)  # the keys the new tokens see: past + T when right
                mask = torch.ones(T, S, dtype=torch.bool).tril(S - T)  # (T, S): no future
                y = F.scaled_dot_product_attention(q, out[0], out[1], attn_mask=mask)
                x = x + block.attn.c_proj(y.transpose(1, 2).reshape(B, T, C))
                x = x + block.mlp(block.ln_2(x))
            logits = model.lm_head(tr.ln_f(x[:, -1]))  # (B, vocab)
            steps.append(logits)
            nxt = logits.argmax(-1, keepdim=True)
            tokens, new, past = torch.cat([tokens, nxt], dim=1), nxt, past + T
    return tokens, torch.stack(steps, dim=1)


def check_kv_cache_update(fn: Callable) -> bool:
    """Check ``fn(cache, k, v) -> (k_all, v_all)``, one layer's KV-cache update.

    ``cache`` is ``None`` (nothing cached yet) or the pair ``(k_past, v_past)`` that ``fn``
    returned the step before, each ``(B, n_head, S, head_size)``; ``k`` and ``v`` are the new
    tokens' ``(B, n_head, T, head_size)``. The first case decodes 12 tokens greedily with a small
    GPT whose layers keep their cache with ``fn``, and compares every step's logits and the
    tokens with generation **without** a cache (the model recomputes the whole prefix each
    step); the others pin the update itself (order in time, several new tokens, no cache).
    """
    check_fn(fn)
    model = _kv_model()
    prompt = torch.tensor([[3, 1, 4], [1, 5, 9]])  # (B=2, T=3)
    n = 12
    ref_tokens = model.generate(prompt, n, temperature=0, use_cache=False)
    with torch.no_grad():  # generation without a cache: the full prefix through the model
        ref_logits = torch.stack([model(ref_tokens[:, :t])[0][:, -1]
                                  for t in range(prompt.size(1), prompt.size(1) + n)], dim=1)

    def run(what, *args):
        if what == "generate":  # |logits with your cache - logits without a cache|, per step
            _, logits = _generate_with_cache(fn, model, prompt, n)
            return (logits - ref_logits).abs().amax(dim=(0, 2)).double().round(decimals=2)
        return fn(*args)

    def seq(start: float, T: int) -> torch.Tensor:  # (1, 1, T, 2): easy to read in a report
        return torch.arange(start, start + 2 * T, dtype=torch.float32).view(1, 1, T, 2)

    k_past, v_past, k1, v1, k2, v2 = seq(0, 3), -seq(0, 3), seq(10, 1), -seq(10, 1), \
        seq(20, 2), -seq(20, 2)
    cases = [
        Case(("generate",), torch.zeros(n, dtype=torch.float64),
             hint="these are the gaps between the logits of each generated step with your cache "
                  "and without a cache (the first step has no cache yet). Each step must see the "
                  "keys and values of every earlier token: keep the cached ones and append the "
                  "new k, v after them along dim 2"),
        Case(("update", None, k1, v1), (k1, v1),
             hint="with no cache yet (None), the cache is just the new k, v"),
        Case(("update", (k_past, v_past), k1, v1),
             (torch.cat([k_past, k1], dim=2), torch.cat([v_past, v1], dim=2)),
             hint="the past first, then the new token: torch.cat([k_past, k], dim=2)"),
        Case(("update", (k_past, v_past), k2, v2),
             (torch.cat([k_past, k2], dim=2), torch.cat([v_past, v2], dim=2)),
             hint="several new tokens at once are appended in order along dim 2 (time)"),
    ]
    return run_checks(run, cases, name="kv_cache_update", atol=1e-4)
