"""Streaming generation: yield each new token id the moment it is chosen (a chat UI's loop).

:func:`generate_stream` is :meth:`llmcourse.model.GPT.generate` turned inside out: the same KV
cache, the same sampling (:func:`llmcourse.model.next_token_probs`), the same sliding window
past ``block_size``, but a Python generator, so a caller can show a token before the next one
exists, and stop at an end-of-text token.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from llmcourse._checks import check_int
from llmcourse.model import GPT, _check_sampling, next_token_probs

__all__ = ["generate_stream"]


def generate_stream(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, *,
                    temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None, eos_id: int | None = None,
                    generator: torch.Generator | None = None) -> Iterator[int]:
    """Yield up to ``max_new_tokens`` token ids continuing ``idx`` (1, T), one at a time.

    ``model`` is a llmcourse :class:`~llmcourse.model.GPT` or :class:`~llmcourse.llama.Llama`
    (anything with ``config.block_size`` and the ``_forward_cached`` KV-cache step). Each step
    feeds only the newest token through the network; the tokens equal
    ``model.generate(idx, max_new_tokens, temperature, top_k, top_p, generator=generator)``
    (with the same generator state). With ``eos_id`` the stream stops right after yielding
    that id. The model runs in eval mode and gets its mode back when the generator finishes or
    is closed.
    """
    from llmcourse.llama import Llama

    if not isinstance(model, (GPT, Llama)):
        raise TypeError(f"model must be a llmcourse GPT or Llama, got {type(model).__name__}")
    model._check_idx(idx)
    if idx.size(0) != 1:
        raise ValueError(f"idx must hold one sequence (1, T), got shape {tuple(idx.shape)}")
    check_int("max_new_tokens", max_new_tokens, min=0)
    _check_sampling(temperature, top_k, top_p)
    if eos_id is not None:
        check_int("eos_id", eos_id, min=0, max=model.config.vocab_size - 1)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    return _stream(model, idx.long(), max_new_tokens, temperature, top_k, top_p, eos_id,
                   generator)


@torch.no_grad()  # on a generator function: grad is off inside each step, not in the caller
def _stream(model, idx, max_new_tokens, temperature, top_k, top_p, eos_id, generator):
    # a separate generator function, so that bad arguments raise at the call, not at next()
    was_training = model.training
    model.eval()
    try:
        bs = model.config.block_size
        n_layers = len(model.transformer.h if isinstance(model, GPT) else model.model.layers)
        cache = None
        for _ in range(max_new_tokens):
            if cache is None or idx.size(1) > bs:  # first step, or the window slid
                cache = [[] for _ in range(n_layers)]
                logits = model._forward_cached(idx[:, -bs:], cache)  # (1, vocab)
            else:  # only the newest token goes through the network
                logits = model._forward_cached(idx[:, -1:], cache)  # (1, vocab)
            probs = next_token_probs(logits, temperature, top_k, top_p)  # (1, vocab)
            if temperature == 0:
                nxt = probs.argmax(dim=-1, keepdim=True)  # (1, 1)
            else:
                nxt = torch.multinomial(probs, num_samples=1, generator=generator)  # (1, 1)
            idx = torch.cat([idx, nxt], dim=1)
            token = int(nxt)
            yield token
            if token == eos_id:
                return
    finally:
        model.train(was_training)
