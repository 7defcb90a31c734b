"""Count-based n-gram language models and their neural successor, the MLP LM (chapter 01).

An n-gram model predicts the next token from the ``n - 1`` tokens before it, with probabilities
read off counts::

    P(next = b | context = a) = (count(a, b) + alpha) / (count(a) + alpha * V)

``alpha`` is add-alpha (Laplace, ``alpha = 1``) smoothing: without it, any pair never seen in
training gets probability 0, and the perplexity of held-out text is infinite.

Counts are kept in a dense ``(V ** (n - 1), V)`` tensor and computed with one ``bincount``, so
fitting on a few hundred thousand tokens takes milliseconds; that suits character vocabularies
(``V`` ~ 100) for bigrams and trigrams.

:class:`MLPLanguageModel` is Bengio et al.'s (2003) neural n-gram: the ``k`` previous tokens are
looked up in one embedding table, concatenated, passed through a ``tanh`` hidden layer and a
linear layer to next-token logits. Its size grows linearly with ``k`` where the count table grows
as ``V ** k``. :func:`context_windows` cuts a token stream into its ``(k previous, next)`` pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from llmcourse._checks import check_int, check_number, check_tensor
from llmcourse.data import as_token_tensor

__all__ = ["MLPLanguageModel", "NGramLM", "context_windows", "perplexity"]

_MAX_CELLS = 50_000_000


def perplexity(nll: float) -> float:
    """Perplexity from a mean negative log-likelihood in nats per token: ``exp(nll)``.

    A perplexity of ``k`` means the model is, on average, as unsure as a uniform choice among
    ``k`` tokens.
    """
    nll = check_number("nll", nll, min=0.0, allow_inf=True)  # inf: a token had P = 0
    return math.exp(nll) if nll < 700 else math.inf


class NGramLM:
    """An n-gram language model with add-alpha smoothing.

    >>> lm = NGramLM(order=2, vocab_size=3, alpha=0.0).fit([0, 1, 0, 1, 0, 2])
    >>> lm.probs([0]).tolist()
    [0.0, 0.6666666666666666, 0.3333333333333333]
    """

    def __init__(self, order: int, vocab_size: int, alpha: float = 1.0) -> None:
        for name, value, low in (("order", order, 1), ("vocab_size", vocab_size, 1)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        # 2**64 > _MAX_CELLS: past order 64 the power is never computed (it could be huge)
        if vocab_size > 1 and (order > 64 or vocab_size ** order > _MAX_CELLS):
            need = f"{vocab_size ** order:,}" if order <= 64 else f"{vocab_size}**{order}"
            raise ValueError(
                f"order={order} with vocab_size={vocab_size} needs {need} counts; "
                f"the dense table allows {_MAX_CELLS:,}: use a smaller order or vocabulary")
        self.order = order
        self.vocab_size = vocab_size
        self.alpha = self._check_alpha(alpha)
        self.counts = torch.zeros(vocab_size ** (order - 1), vocab_size, dtype=torch.float64)

    @staticmethod
    def _check_alpha(alpha: object) -> float:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)):
            raise TypeError(f"alpha must be a float, got {type(alpha).__name__}")
        if alpha < 0 or not math.isfinite(alpha):
            raise ValueError(f"alpha must be a finite number >= 0, got {alpha}")
        return float(alpha)

    def _ids(self, ids: object, name: str = "ids") -> torch.Tensor:
        t = as_token_tensor(ids, name)
        if t.numel() and int(t.max()) >= self.vocab_size:
            raise ValueError(f"{name} holds id {int(t.max())}, outside the vocabulary 0..{self.vocab_size - 1}")
        return t

    def _context_index(self, windows: torch.Tensor) -> torch.Tensor:
        """Row index of each context (the tokens read as a base-V number)."""
        idx = torch.zeros(windows.shape[0], dtype=torch.long)
        for j in range(windows.shape[1]):
            idx = idx * self.vocab_size + windows[:, j]
        return idx

    def _windows(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.order
        if len(ids) < n:
            raise ValueError(f"ids must hold at least order={n} tokens, got {len(ids)}")
        win = ids.unfold(0, n, 1)  # (len - n + 1, n)
        return self._context_index(win[:, :-1]), win[:, -1]

    def fit(self, ids: Sequence[int] | np.ndarray | torch.Tensor) -> NGramLM:
        """Count every n-gram of ``ids`` (adds to previous counts); returns ``self``."""
        ids = self._ids(ids)
        ctx, nxt = self._windows(ids)
        flat = torch.bincount(ctx * self.vocab_size + nxt, minlength=self.counts.numel())
        self.counts += flat.view_as(self.counts).to(torch.float64)
        return self

    def prob_table(self) -> torch.Tensor:
        """All conditional distributions, ``(V ** (order - 1), V)``; rows sum to 1.

        A context never seen in training with ``alpha = 0`` gets the uniform distribution.
        """
        table = self.counts + self.alpha
        rows = table.sum(dim=1, keepdim=True)
        uniform = torch.full_like(table, 1.0 / self.vocab_size)
        return torch.where(rows > 0, table / rows.clamp_min(1e-300), uniform)

    def probs(self, context: Sequence[int]) -> torch.Tensor:
        """``P(next | context)`` over the vocabulary; only the last ``order - 1`` ids are used."""
        ctx = self._ids(context, "context")
        need = self.order - 1
        if len(ctx) < need:
            raise ValueError(f"context needs at least {need} ids for order={self.order}, got {len(ctx)}")
        row = self.counts[self._context_index(ctx[len(ctx) - need:].view(1, need))[0]] + self.alpha
        total = row.sum()
        if total <= 0:
            return torch.full((self.vocab_size,), 1.0 / self.vocab_size, dtype=torch.float64)
        return row / total

    def log_probs(self, ids: Sequence[int] | np.ndarray | torch.Tensor) -> torch.Tensor:
        """Natural-log probability of each token of ``ids`` after its first ``order - 1``."""
        ids = self._ids(ids)
        ctx, nxt = self._windows(ids)
        rows = self.counts[ctx] + self.alpha
        total = rows.sum(dim=1)
        picked = rows.gather(1, nxt[:, None])[:, 0]
        p = torch.where(total > 0, picked / total.clamp_min(1e-300),
                        torch.full_like(picked, 1.0 / self.vocab_size))
        return p.log()

    def nll(self, ids: Sequence[int] | np.ndarray | torch.Tensor) -> float:
        """Mean negative log-likelihood, in nats per predicted token (``inf`` if one has P = 0)."""
        return float(-self.log_probs(ids).mean())

    def perplexity(self, ids: Sequence[int] | np.ndarray | torch.Tensor) -> float:
        """``exp(nll)``: the held-out perplexity when ``ids`` is text the model never saw."""
        return perplexity(self.nll(ids))

    def sample(self, context: Sequence[int], n: int, *,
               generator: torch.Generator | None = None) -> list[int]:
        """Extend ``context`` by ``n`` sampled tokens (returns only the new ones)."""
        check_int("n", n, min=0)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got "
                            f"{type(generator).__name__}")
        out = [int(i) for i in self._ids(context, "context")]
        if len(out) < self.order - 1:
            raise ValueError(f"context needs at least {self.order - 1} ids for order={self.order}")
        table = self.prob_table()
        start = len(out)
        for _ in range(n):
            row = table[self._context_index(torch.tensor([out[len(out) - self.order + 1:]]))[0]] \
                if self.order > 1 else table[0]
            out.append(int(torch.multinomial(row, 1, generator=generator)))
        return out[start:]

    def __repr__(self) -> str:
        return (f"NGramLM(order={self.order}, vocab_size={self.vocab_size}, alpha={self.alpha}, "
                f"tokens_seen={int(self.counts.sum()):,})")


def context_windows(ids: Sequence[int] | np.ndarray | torch.Tensor,
                    context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ``(context previous tokens, next token)`` pair of a token stream.

    Returns ``x`` of shape ``(len(ids) - context, context)`` and ``y`` of shape
    ``(len(ids) - context,)`` with ``x[i] = ids[i : i + context]`` and ``y[i] = ids[i + context]``:
    the training examples of an n-gram model of order ``context + 1``.

    >>> x, y = context_windows([5, 6, 7, 8], context=2)
    >>> x.tolist(), y.tolist()
    ([[5, 6], [6, 7]], [7, 8])
    """
    ids = as_token_tensor(ids)
    context = check_int("context", context, min=1)
    if len(ids) <= context:
        raise ValueError(f"ids must hold more than context={context} tokens, got {len(ids)}")
    win = ids.unfold(0, context + 1, 1)  # (N, context + 1), a view: no copy
    return win[:, :-1], win[:, -1]


class MLPLanguageModel(nn.Module):
    """Bengio et al. (2003)'s neural language model: ``context`` tokens in, next-token logits out.

    ``embed`` (``V × d_embed``) is shared by the ``context`` positions; their vectors are
    concatenated (``context · d_embed``), sent through ``hidden`` and ``tanh`` (``d_hidden``), and
    ``head`` gives ``V`` logits. Parameters: ``V·d + (k·d·H + H) + (H·V + V)``. (The paper also
    had direct input-to-output connections; they are left out here.)

    >>> model = MLPLanguageModel(vocab_size=10, context=3, d_embed=4, d_hidden=8)
    >>> tuple(model(torch.zeros(2, 3, dtype=torch.long)).shape)
    (2, 10)
    """

    def __init__(self, vocab_size: int, context: int, d_embed: int, d_hidden: int) -> None:
        super().__init__()
        self.vocab_size = check_int("vocab_size", vocab_size, min=1)
        self.context = check_int("context", context, min=1)
        d_embed = check_int("d_embed", d_embed, min=1)
        d_hidden = check_int("d_hidden", d_hidden, min=1)
        self.embed = nn.Embedding(vocab_size, d_embed)  # C: (V, d)
        self.hidden = nn.Linear(context * d_embed, d_hidden)  # (k·d) -> H
        self.head = nn.Linear(d_hidden, vocab_size)  # H -> V

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        """``ctx``: ``(batch, context)`` token ids → logits ``(batch, vocab_size)``."""
        check_tensor("ctx", ctx, ndim=2, dtype="int", shape="(batch, context)")
        if ctx.shape[1] != self.context:
            raise ValueError(f"ctx must have shape (batch, context={self.context}), "
                             f"got {tuple(ctx.shape)}")
        if ctx.numel() and (int(ctx.min()) < 0 or int(ctx.max()) >= self.vocab_size):
            raise ValueError(f"ctx holds ids outside the vocabulary 0..{self.vocab_size - 1}")
        e = self.embed(ctx)  # (B, k, d)
        h = torch.tanh(self.hidden(e.flatten(1)))  # concatenate the k vectors: (B, k·d) -> (B, H)
        return self.head(h)  # (B, V)
