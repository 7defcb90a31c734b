"""Scaled dot-product attention and multi-head attention, written out so every step is visible.

Conventions follow PyTorch's ``torch.nn.functional.scaled_dot_product_attention``:

* ``q`` is ``(..., T, D)``, ``k`` is ``(..., S, D)``, ``v`` is ``(..., S, Dv)``; the output is
  ``(..., T, Dv)`` and the weights ``(..., T, S)``;
* a boolean ``mask`` has ``True`` where a query **may** attend to a key (torch's SDPA convention —
  the opposite of ``nn.MultiheadAttention``'s ``attn_mask``, where ``True`` means *blocked*);
  a float ``mask`` is added to the scores;
* ``is_causal=True`` lets query ``i`` see keys ``0..i`` (top-left aligned, as in torch).

A query whose every key is masked gets all-zero weights and a zero output, not ``NaN`` (a plain
softmax over a row of ``-inf`` is ``0/0 = NaN``). PyTorch's own
``F.scaled_dot_product_attention`` also returns a zero output there since release 2.5 (its "safe
softmax", pytorch/pytorch#133882; chapter 03 checks it on the installed torch).

:func:`peak_memory` measures the most tensor memory a function holds at once: chapter 03 uses it
to show that full attention's memory grows as ``T²`` and online-softmax attention's as ``T``.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from llmcourse._checks import check_bool, check_callable, check_int, check_number, check_tensor

__all__ = [
    "MultiHeadAttention",
    "causal_mask",
    "merge_heads",
    "padding_mask",
    "peak_memory",
    "scaled_dot_product_attention",
    "split_heads",
]


def _shape(x: torch.Tensor) -> tuple:
    return tuple(x.shape)


def causal_mask(T: int, S: int | None = None, *, device: torch.device | str | None = None
                ) -> torch.Tensor:
    """Boolean ``(T, S)`` mask, ``True`` on and below the diagonal: query ``i`` sees keys ``0..i``.

    >>> causal_mask(3).int().tolist()
    [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    """
    T = check_int("T", T, min=1)
    S = T if S is None else check_int("S", S, min=1)
    return torch.ones(T, S, dtype=torch.bool, device=device).tril()


def padding_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Turn a Hugging Face style ``attention_mask`` ``(B, S)`` (1 = real token, 0 = padding) into
    a boolean mask ``(B, 1, 1, S)`` that broadcasts over heads and queries (``True`` = may attend).
    """
    check_tensor("attention_mask", attention_mask, ndim=2, shape="(batch, seq_len)")
    if attention_mask.is_complex() or bool(((attention_mask != 0) & (attention_mask != 1)).any()):
        raise ValueError("attention_mask must hold only 0 (padding) and 1 (real token)")
    return attention_mask.bool()[:, None, None, :]


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    *,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(q kᵀ / √D + mask) v``, returning ``(out, weights)``.

    Args:
        q: queries ``(..., T, D)``.
        k: keys ``(..., S, D)``.
        v: values ``(..., S, Dv)``.
        mask: boolean (``True`` = may attend) or float (added to the scores), broadcastable to
            ``(..., T, S)``.
        is_causal: also apply :func:`causal_mask` (combined with ``mask`` if both are given).
        dropout_p: dropout on the weights before they multiply ``v`` (the returned weights are
            the ones *before* dropout, so their rows still sum to 1).
        scale: multiplier of the scores; default ``1 / √D``.

    Returns:
        ``out`` ``(..., T, Dv)`` and ``weights`` ``(..., T, S)``; each row of ``weights`` sums to 1
        (or is all zeros when every key of that query is masked).

    Raises:
        TypeError: an argument is not a tensor, or a mask has a dtype other than bool/float.
        ValueError: shapes or dtypes that do not fit together (the message names the shapes).
    """
    for name, x in (("q", q), ("k", k), ("v", v)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() < 2:
            raise ValueError(f"{name} must have at least 2 dims (..., seq_len, dim), got "
                             f"shape {_shape(x)}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"q, k and v must share a dtype, got q {q.dtype} {_shape(q)}, "
                         f"k {k.dtype} {_shape(k)}, v {v.dtype} {_shape(v)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must have the same last dim D: q {_shape(q)} is (..., T, D), "
                         f"k {_shape(k)} is (..., S, D)")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys S: k {_shape(k)} is "
                         f"(..., S, D), v {_shape(v)} is (..., S, Dv)")
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError as err:
        raise ValueError(f"batch dims of q {_shape(q)}, k {_shape(k)} and v {_shape(v)} do not "
                         "broadcast") from err
    for name, x in (("q", q), ("k", k), ("v", v)):
        if 0 in x.shape[-2:]:
            raise ValueError(f"{name} must have at least one position and one channel, got "
                             f"shape {_shape(x)}")
    check_bool("is_causal", is_causal)
    check_number("dropout_p", dropout_p, min=0.0, max=1.0, max_open=True)
    T, S = q.shape[-2], k.shape[-2]
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    else:
        check_number("scale", scale, min=0.0, min_open=True)

    scores = (q @ k.transpose(-2, -1)) * scale  # (..., T, S)
    allowed = None  # boolean (..., T, S) or None
    if mask is not None:
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a tensor or None, got {type(mask).__name__}")
        try:
            torch.broadcast_shapes(mask.shape, (*batch, T, S))
        except RuntimeError as err:
            raise ValueError(f"mask {_shape(mask)} does not broadcast to the scores "
                             f"{(*batch, T, S)} of q {_shape(q)} and k {_shape(k)}") from err
        if mask.dtype == torch.bool:
            allowed = mask
        elif mask.is_floating_point():
            if mask.dtype != q.dtype:
                raise ValueError(f"a float mask must have the dtype of q ({q.dtype}), got "
                                 f"mask {mask.dtype} {_shape(mask)}, q {_shape(q)}")
            if bool(mask.isnan().any()) or bool((mask == float("inf")).any()):
                raise ValueError("a float mask must not hold NaN or +inf (use -inf to block)")
            scores = scores + mask
        else:
            raise ValueError(f"mask must be bool (True = may attend) or float, got dtype "
                             f"{mask.dtype}")
    if is_causal:
        c = causal_mask(T, S, device=q.device)
        allowed = c if allowed is None else allowed & c
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    weights = torch.nan_to_num(weights, nan=0.0)  # rows with every key masked: all zeros
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """``(B, T, C)`` → ``(B, n_head, T, C // n_head)``: each head gets a slice of the channels."""
    check_tensor("x", x, ndim=3, shape="(batch, seq_len, channels)")
    check_int("n_head", n_head, min=1)
    B, T, C = x.shape
    if C % n_head:
        raise ValueError(f"channels {C} of x {_shape(x)} are not divisible by n_head {n_head}")
    return x.view(B, T, n_head, C // n_head).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, n_head, T, hs)`` → ``(B, T, n_head * hs)``: the inverse of :func:`split_heads`."""
    check_tensor("x", x, ndim=4, shape="(batch, n_head, seq_len, head_size)")
    B, H, T, hs = x.shape
    return x.transpose(1, 2).reshape(B, T, H * hs)


class MultiHeadAttention(nn.Module):
    """Multi-head attention: project, split into heads, attend, merge, project.

    Inputs are batch-first ``(B, T, C)``. ``forward`` returns ``(out, weights)`` with weights
    ``(B, n_head, T, S)`` — per head, unlike ``nn.MultiheadAttention``, which averages them by
    default. :meth:`from_torch` copies the weights of an ``nn.MultiheadAttention`` so the two can
    be compared.
    """

    def __init__(self, embed_dim: int, num_heads: int, *, bias: bool = True,
                 dropout: float = 0.0) -> None:
        super().__init__()
        check_int("embed_dim", embed_dim, min=1)
        check_int("num_heads", num_heads, min=1)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads})")
        check_bool("bias", bias)
        check_number("dropout", dropout, min=0.0, max=1.0, max_open=True)
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, float(dropout)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None,
                value: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                is_causal: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-attention when ``key``/``value`` are omitted; ``mask`` as in
        :func:`scaled_dot_product_attention` (``True`` = may attend), broadcast over heads."""
        key = query if key is None else key
        value = key if value is None else value
        for name, x in (("query", query), ("key", key), ("value", value)):
            check_tensor(name, x, ndim=3, dtype="float", shape=f"(batch, seq_len, {self.embed_dim})")
            if x.shape[-1] != self.embed_dim:
                raise ValueError(f"{name} must have shape (batch, seq_len, {self.embed_dim}), got "
                                 f"{_shape(x)}")
        if key.size(0) != query.size(0) or value.size(0) != query.size(0):
            raise ValueError(f"key and value must have the batch size of query ({query.size(0)}), "
                             f"got key {_shape(key)}, value {_shape(value)}")
        if value.size(1) != key.size(1):
            raise ValueError(f"value must have as many positions as key: key {_shape(key)}, "
                             f"value {_shape(value)}")
        q = split_heads(self.q_proj(query), self.num_heads)  # (B, H, T, hs)
        k = split_heads(self.k_proj(key), self.num_heads)  # (B, H, S, hs)
        v = split_heads(self.v_proj(value), self.num_heads)  # (B, H, S, hs)
        if mask is not None and isinstance(mask, torch.Tensor) and mask.dim() == 3:
            mask = mask[:, None]  # (B, T, S) → (B, 1, T, S): the same mask for every head
        p = self.dropout if self.training else 0.0
        y, w = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal, dropout_p=p)
        return self.out_proj(merge_heads(y)), w  # (B, T, C), (B, H, T, S)

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention) -> MultiHeadAttention:
        """A :class:`MultiHeadAttention` holding a copy of ``mha``'s weights."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha must be an nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha._qkv_same_embed_dim:
            raise ValueError("mha must have kdim == vdim == embed_dim")
        bias = mha.in_proj_bias is not None
        new = cls(mha.embed_dim, mha.num_heads, bias=bias, dropout=mha.dropout)
        E = mha.embed_dim
        with torch.no_grad():
            for i, proj in enumerate((new.q_proj, new.k_proj, new.v_proj)):
                proj.weight.copy_(mha.in_proj_weight[i * E:(i + 1) * E])
                if bias:
                    proj.bias.copy_(mha.in_proj_bias[i * E:(i + 1) * E])
            new.out_proj.weight.copy_(mha.out_proj.weight)
            if bias:
                new.out_proj.bias.copy_(mha.out_proj.bias)
        return new


class _PeakMemory(TorchDispatchMode):
    """Counts the bytes of every tensor storage an op creates, and subtracts them when freed."""

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._inside: dict[int, int] = {}  # data_ptr -> bytes, storages created while measuring
        self._outside: set[int] = set()  # storages that existed before (inputs): not counted

    def _freed(self, key: int, nbytes: int) -> None:
        if self._inside.pop(key, None) is not None:
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        for t in tree_leaves((args, kwargs)):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                key = st.data_ptr()
                if key and key not in self._inside and key not in self._outside:
                    self._outside.add(key)
                    weakref.finalize(st, self._outside.discard, key)
        out = func(*args, **kwargs)
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                st = t.untyped_storage()
                key, nbytes = st.data_ptr(), st.nbytes()
                if key and key not in self._inside and key not in self._outside:  # new memory
                    self._inside[key] = nbytes
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(st, self._freed, key, nbytes)  # when the storage dies
        return out


def peak_memory(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, int]:
    """Run ``fn(*args, **kwargs)``; return ``(result, peak)``, ``peak`` the most bytes of tensor
    memory that the call held at once.

    Every storage an operation creates during the call is counted from its creation until it is
    freed (views share their base's storage and add nothing); tensors that existed before the
    call (its inputs, a model's weights) are not counted, the result is. Exact and the same on
    every run, on any device; it sees tensor memory only (not the allocator's own caches, nor
    what a library allocates outside PyTorch's tensors).

    >>> x = torch.ones(1000)
    >>> peak_memory(lambda: x * 2 + 1)[1]  # x * 2 (4000 bytes) is alive while + 1 is computed
    8000
    """
    check_callable("fn", fn)
    with _PeakMemory() as tracker:
        result = fn(*args, **kwargs)
    return result, tracker.peak
