"""Checkers for chapter 04 (the transformer and GPT)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from llmcourse.exercises import Case, check_fn, run_checks
from llmcourse.model import GPTConfig, next_token_probs, param_count


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
