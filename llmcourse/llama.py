"""The modern decoder (Llama, Mistral, Qwen3, Mixtral) in the style of nanoGPT: shapes in comments.

Each piece replaces one piece of :mod:`llmcourse.model`'s GPT-2:

============================  ================================================================
GPT-2 (``model.py``)          here
============================  ================================================================
``nn.LayerNorm``              :class:`RMSNorm` (no mean, no bias)
``MLP`` (4·d, GELU)           :class:`SwiGLU` (⅔·4·d, SiLU gate × up) or :class:`MoE` of them
learned positions ``wpe``     :class:`RotaryEmbedding` + :func:`apply_rope` on q and k
multi-head attention          :class:`Attention`: grouped-query (:func:`repeat_kv`), optional
                              QK-norm (Qwen3) and sliding window (Mistral)
biases, tied head             no biases, untied head (``tie_word_embeddings``)
============================  ================================================================

Parameter names are Hugging Face's (``model.layers.0.self_attn.q_proj.weight`` …), so
:meth:`Llama.to_hf` / :meth:`Llama.from_hf` are a copy (experts aside): the same logits as
``LlamaForCausalLM``, ``MistralForCausalLM``, ``Qwen3ForCausalLM`` and ``MixtralForCausalLM``.
:class:`Llama` keeps :class:`llmcourse.model.GPT`'s contract (``forward(idx, targets) ->
(logits, loss)``, ``generate``, ``flops_per_token``), so :class:`llmcourse.train.Trainer` trains it.

Why one module of about 560 lines: the config, every piece and the model stand in the order
chapter 05 builds them, as :mod:`llmcourse.model` does for GPT-2, so the two read side by side;
the Hugging Face conversion (names, configs, checkpoints) is in :mod:`llmcourse.llama_hf`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn import functional as F

from llmcourse._checks import (
    check_bool,
    check_int,
    check_number,
    check_tensor,
    check_type,
)
from llmcourse.model import GPT, decode

# Hub models that from_pretrained pins (name -> commit), so a course run gets the same weights.
PINNED_REVISIONS = {
    "HuggingFaceTB/SmolLM2-135M": "93efa2f097d58c2a74874c7e644dbc9b0cee75a2",
}



def _optional_int(name: str, value, min: int = 1) -> int | None:
    return None if value is None else check_int(name, value, min=min)


def swiglu_hidden(n_embd: int, multiple_of: int = 256) -> int:
    """Llama's SwiGLU width: ⅔ of GPT's ``4·n_embd`` (three matrices instead of two, so the
    same parameters), rounded up to a multiple of ``multiple_of``. ``n_embd=4096`` → 11008."""
    check_int("n_embd", n_embd, min=1)
    check_int("multiple_of", multiple_of, min=1)
    hidden = 2 * 4 * n_embd // 3  # exact in integers: 4096 -> 10922
    return multiple_of * math.ceil(hidden / multiple_of)


@dataclass
class LlamaConfig:
    """Sizes and options of a :class:`Llama`. ``None`` fields are filled in at construction.

    * ``n_kv_head``: key/value heads of grouped-query attention, dividing ``n_head``
      (``None`` → ``n_head``, plain multi-head attention; ``1`` is multi-query attention).
    * ``head_dim``: ``None`` → ``n_embd // n_head`` (Qwen3 sets it independently); even (RoPE).
    * ``intermediate_size``: ``None`` → :func:`swiglu_hidden` ``(n_embd, multiple_of)``.
    * ``rope_theta``: RoPE's base; ``sliding_window``: each token sees itself and the
      ``sliding_window - 1`` tokens before it (Mistral), ``None`` → all of them.
    * ``qk_norm``: RMSNorm over ``head_dim`` on q and k before RoPE (Qwen3).
    * ``n_experts``: ``None`` → a dense SwiGLU; else a mixture of that many SwiGLU experts,
      ``n_experts_per_tok`` per token (Mixtral: 8, 2), trained with the load-balancing loss
      times ``router_aux_loss_coef`` added to the loss.
    * ``dropout``: on the attention probabilities (Hugging Face's ``attention_dropout``).
    """

    vocab_size: int = 32000
    block_size: int = 2048  # longest context (Hugging Face: max_position_embeddings)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_kv_head: int | None = None
    head_dim: int | None = None
    intermediate_size: int | None = None
    multiple_of: int = 256
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    qk_norm: bool = False
    sliding_window: int | None = None
    n_experts: int | None = None
    n_experts_per_tok: int = 2
    router_aux_loss_coef: float = 0.01  # Switch Transformer's alpha
    dropout: float = 0.0

    def __post_init__(self) -> None:
        own = "LlamaConfig."
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "multiple_of",
                     "n_experts_per_tok"):
            setattr(self, name, check_int(own + name, getattr(self, name), min=1))
        for name in ("n_kv_head", "head_dim", "intermediate_size", "sliding_window", "n_experts"):
            setattr(self, name, _optional_int(own + name, getattr(self, name)))
        for name in ("tie_word_embeddings", "qk_norm"):
            check_bool(own + name, getattr(self, name))
        self.rope_theta = check_number(own + "rope_theta", self.rope_theta, min=0.0, min_open=True)
        self.rms_norm_eps = check_number(own + "rms_norm_eps", self.rms_norm_eps, min=0.0,
                                         min_open=True)
        self.router_aux_loss_coef = check_number(own + "router_aux_loss_coef",
                                                 self.router_aux_loss_coef, min=0.0)
        self.dropout = check_number(own + "dropout", self.dropout, min=0.0, max=1.0,
                                    max_open=True)
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.n_head % self.n_kv_head:
            raise ValueError(f"{own}n_kv_head ({self.n_kv_head}) must divide n_head "
                             f"({self.n_head})")
        if self.head_dim is None:
            if self.n_embd % self.n_head:
                raise ValueError(f"{own}n_embd ({self.n_embd}) must be divisible by n_head "
                                 f"({self.n_head}), or set head_dim")
            self.head_dim = self.n_embd // self.n_head
        if self.head_dim % 2:
            raise ValueError(f"{own}head_dim must be even (RoPE rotates pairs), got "
                             f"{self.head_dim}")
        if self.intermediate_size is None:
            self.intermediate_size = swiglu_hidden(self.n_embd, self.multiple_of)
        if self.n_experts is not None and self.n_experts_per_tok > self.n_experts:
            raise ValueError(f"{own}n_experts_per_tok ({self.n_experts_per_tok}) must be <= "
                             f"n_experts ({self.n_experts})")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --------------------------------------------------------------------------------------------
# The pieces
# --------------------------------------------------------------------------------------------

class RMSNorm(nn.Module):
    """``x / sqrt(mean(x²) + eps) · weight``: LayerNorm without the mean and the bias.

    Computed in float32 and cast back before the weight, as Hugging Face's ``LlamaRMSNorm``.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        check_int("dim", dim, min=1)
        check_number("eps", eps, min=0.0, min_open=True)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)  # (..., dim)
        return self.weight * h.to(x.dtype)


class SwiGLU(nn.Module):
    """The gated MLP: ``down(silu(gate(x)) · up(x))``, no biases (Shazeer 2020)."""

    def __init__(self, n_embd: int, hidden: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(n_embd, hidden, bias=False)
        self.up_proj = nn.Linear(n_embd, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # (..., C)


class RotaryEmbedding(nn.Module):
    """RoPE's angles: position ``m`` turns pair ``i`` of q and k by ``m · theta^(-2i/d)``.

    ``forward(positions)`` returns ``(cos, sin)``, each ``(T, head_dim)``, in Hugging Face's
    layout: the frequencies twice, ``[f_0 … f_{d/2-1}, f_0 … f_{d/2-1}]``, to go with
    :func:`rotate_half` (which pairs dimension ``i`` with ``i + d/2``).
    """

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        check_int("head_dim", head_dim, min=2)
        if head_dim % 2:
            raise ValueError(f"head_dim must be even (RoPE rotates pairs), got {head_dim}")
        check_number("theta", theta, min=0.0, min_open=True)
        inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (d/2,), not a weight

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions[:, None].float() * self.inv_freq.float()[None, :]  # (T, d/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (T, d)
        return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """``[x1, x2] -> [-x2, x1]`` over the last dim: a 90° turn of each pair ``(x_i, x_{i+d/2})``."""
    check_tensor("x", x)
    if x.dim() == 0 or x.shape[-1] % 2:
        raise ValueError(f"x must have an even last dim (pairs to rotate), got shape {tuple(x.shape)}")
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (B, nh, T, hs) by the angles of its positions (``cos``/``sin`` (T, hs))."""
    check_tensor("cos", cos)
    check_tensor("sin", sin)
    return x * cos.to(x.dtype) + rotate_half(x) * sin.to(x.dtype)  # (B, nh, T, hs)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, n_kv, T, hs) -> (B, n_kv · n_rep, T, hs): each key/value head serves ``n_rep`` query
    heads (head ``h`` uses kv head ``h // n_rep``), like ``repeat_interleave`` on dim 1."""
    check_int("n_rep", n_rep, min=1)
    check_tensor("x", x, ndim=4, shape="(B, n_kv, T, hs)")
    if n_rep == 1:
        return x
    B, n_kv, T, hs = x.shape
    return x[:, :, None].expand(B, n_kv, n_rep, T, hs).reshape(B, n_kv * n_rep, T, hs)


def causal_mask(T: int, past: int = 0, sliding_window: int | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean (T, past + T) mask, ``True`` = may attend: query ``i`` (at position ``past + i``)
    sees keys ``j <= past + i``, and with a window only ``j > past + i - sliding_window``."""
    check_int("T", T, min=1)
    check_int("past", past, min=0)
    _optional_int("sliding_window", sliding_window)
    q = torch.arange(past, past + T, device=device)[:, None]  # (T, 1) query positions
    k = torch.arange(past + T, device=device)[None, :]  # (1, past + T) key positions
    mask = k <= q
    if sliding_window is not None:
        mask = mask & (k > q - sliding_window)
    return mask


class Attention(nn.Module):
    """Causal self-attention with RoPE, grouped-query heads and optional QK-norm / window."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        C, hs = config.n_embd, config.head_dim
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, hs
        self.sliding_window, self.dropout = config.sliding_window, config.dropout
        self.q_proj = nn.Linear(C, config.n_head * hs, bias=False)
        self.k_proj = nn.Linear(C, config.n_kv_head * hs, bias=False)  # fewer heads: GQA
        self.v_proj = nn.Linear(C, config.n_kv_head * hs, bias=False)
        self.o_proj = nn.Linear(config.n_head * hs, C, bias=False)
        if config.qk_norm:  # Qwen3: one RMSNorm over head_dim, shared by all heads
            self.q_norm = RMSNorm(hs, config.rms_norm_eps)
            self.k_norm = RMSNorm(hs, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                kv_cache: list[torch.Tensor] | None = None, return_attention: bool = False):
        """``cos``/``sin`` (T, hs): the angles of x's positions. ``kv_cache``: ``[]`` or ``[k, v]``
        (B, n_kv_head, past, hs) of earlier tokens, after RoPE; extended in place with x's."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_head, self.head_dim)  # (B, T, nh, hs)
        k = self.k_proj(x).view(B, T, self.n_kv_head, self.head_dim)  # (B, T, nkv, hs)
        v = self.v_proj(x).view(B, T, self.n_kv_head, self.head_dim)  # (B, T, nkv, hs)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, hs)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)  # positions enter here only
        past = 0
        if kv_cache:
            past = kv_cache[0].size(2)
            k = torch.cat([kv_cache[0], k], dim=2)  # (B, nkv, past + T, hs)
            v = torch.cat([kv_cache[1], v], dim=2)  # (B, nkv, past + T, hs)
        if kv_cache is not None:
            kv_cache[:] = [k, v]  # the cache holds n_kv_head heads: n_head / n_kv_head smaller
        n_rep = self.n_head // self.n_kv_head
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)  # (B, nh, past + T, hs)
        windowed = self.sliding_window is not None and past + T > self.sliding_window
        att = None
        p = self.dropout if self.training else 0.0
        if return_attention:  # explicit path: the weights are what a widget shows
            mask = causal_mask(T, past, self.sliding_window, x.device)  # (T, past + T)
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # (B, nh, T, past + T)
            att = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
            y = F.dropout(att, p) @ v  # (B, nh, T, hs)
        elif not windowed and (past == 0 or T == 1):  # plain causal, or one token sees all
            y = F.scaled_dot_product_attention(q, k, v, is_causal=past == 0, dropout_p=p)
        else:
            mask = causal_mask(T, past, self.sliding_window, x.device)  # (T, past + T)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).reshape(B, T, self.n_head * self.head_dim)  # (B, T, nh·hs)
        return self.o_proj(y), att  # (B, T, C)


class MoE(nn.Module):
    """Mixtral's sparse mixture of experts: a router picks ``top_k`` SwiGLU experts per token and
    mixes their outputs with a softmax over the chosen experts' router logits.

    ``forward(x)`` returns ``(y, router_logits)``; ``router_logits`` (B·T, n_experts) feed
    :func:`load_balancing_loss`. ``last_counts`` holds how many tokens each expert got in the
    last forward (each token counted ``top_k`` times).
    """

    def __init__(self, n_embd: int, hidden: int, n_experts: int, top_k: int) -> None:
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(n_embd, n_experts, bias=False)  # the router
        self.experts = nn.ModuleList(SwiGLU(n_embd, hidden) for _ in range(n_experts))
        self.last_counts: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, C = x.shape
        x = x.reshape(B * T, C)  # (N, C): routing is per token
        logits = self.gate(x)  # (N, E)
        top_logits, top_idx = logits.topk(self.top_k, dim=-1)  # (N, k) each
        weights = top_logits.float().softmax(dim=-1)  # (N, k), sums to 1 over the chosen
        y = torch.zeros_like(x)  # (N, C)
        for e, expert in enumerate(self.experts):
            token, slot = torch.where(top_idx == e)  # the tokens routed to expert e
            # an expert with no tokens still runs (on 0 rows): its weights stay in the graph
            out = expert(x[token]) * weights[token, slot, None]  # (n_e, C)
            y.index_add_(0, token, out.to(y.dtype))
        self.last_counts = torch.bincount(top_idx.flatten(), minlength=len(self.experts)).detach()
        return y.view(B, T, C), logits


def load_balancing_loss(router_logits: Sequence[torch.Tensor], top_k: int) -> torch.Tensor:
    """The Switch / Mixtral auxiliary loss ``E · Σ_e f_e · P_e`` over all layers' tokens.

    ``f_e``: the fraction of (token, slot) assignments that went to expert ``e`` per token (sums
    to ``top_k``); ``P_e``: the mean router probability of ``e``. Uniform routing gives
    ``top_k``; the gradient flows through ``P``. ``router_logits``: one (N, E) tensor per layer.
    Equals Hugging Face's ``load_balancing_loss_func`` (no attention mask).
    """
    if isinstance(router_logits, torch.Tensor) or not isinstance(router_logits, Sequence) \
            or not router_logits:
        raise TypeError("router_logits must be a non-empty sequence of (tokens, n_experts) tensors")
    if any(not isinstance(t, torch.Tensor) or t.dim() != 2 or not t.is_floating_point()
           or t.shape[1] != router_logits[0].shape[1] for t in router_logits):
        raise ValueError("router_logits must all be float tensors (tokens, n_experts) with the "
                         "same n_experts")
    E = router_logits[0].shape[1]
    check_int("top_k", top_k, min=1)
    if top_k > E:
        raise ValueError(f"top_k must be <= n_experts ({E}), got {top_k}")
    logits = torch.cat(list(router_logits), dim=0)  # (L·N, E)
    probs = logits.float().softmax(dim=-1)  # (L·N, E)
    chosen = probs.topk(top_k, dim=-1).indices  # (L·N, k)
    f = F.one_hot(chosen, E).float().sum(dim=1).mean(dim=0)  # (E,) assignments per token
    P = probs.mean(dim=0)  # (E,)
    return E * (f * P).sum()


class DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)) (RMSNorm, SwiGLU or MoE)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps)
        self.self_attn = Attention(config)
        self.post_attention_layernorm = RMSNorm(config.n_embd, config.rms_norm_eps)
        if config.n_experts is None:
            self.mlp = SwiGLU(config.n_embd, config.intermediate_size)
        else:
            self.mlp = MoE(config.n_embd, config.intermediate_size, config.n_experts,
                           config.n_experts_per_tok)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, kv_cache=None,
                return_attention: bool = False):
        """Return ``(x, attention weights or None, router logits or None)``."""
        a, att = self.self_attn(self.input_layernorm(x), cos, sin, kv_cache, return_attention)
        x = x + a  # (B, T, C)
        m = self.mlp(self.post_attention_layernorm(x))
        router_logits = None
        if isinstance(m, tuple):
            m, router_logits = m  # (B, T, C), (B·T, E)
        return x + m, att, router_logits  # (B, T, C)


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

class Llama(nn.Module):
    """A Llama-style decoder-only transformer (also Mistral, Qwen3, Mixtral by configuration)."""

    # the checks of ids and targets and the loss are GPT's (they read only config.vocab_size /
    # block_size)
    _check_idx = GPT._check_idx
    _check_targets = GPT._check_targets
    _lm_loss = GPT._lm_loss

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = check_type("config", config, LlamaConfig)
        self.model = nn.ModuleDict(dict(
            embed_tokens=nn.Embedding(config.vocab_size, config.n_embd),  # no position table
            layers=nn.ModuleList(DecoderLayer(config) for _ in range(config.n_layer)),
            norm=RMSNorm(config.n_embd, config.rms_norm_eps),
            rotary_emb=RotaryEmbedding(config.head_dim, config.rope_theta),  # no weights
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.model.embed_tokens.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled residual projections
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        self.last_aux_loss: torch.Tensor | None = None

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    # ----------------------------------------------------------------------------------------
    # Counting
    # ----------------------------------------------------------------------------------------

    def num_params(self, non_embedding: bool = False, active: bool = False) -> int:
        """Parameters, each counted once (a tied head is the embedding).

        ``non_embedding=True`` leaves out the token embedding and the output head (the
        vocabulary matrices). ``active=True`` counts, in a mixture of experts, only the
        ``n_experts_per_tok`` experts a token uses (Mixtral 8x7B: 47 B total, 13 B active).
        """
        check_bool("non_embedding", non_embedding)
        check_bool("active", active)
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.model.embed_tokens.weight.numel()
            if not self.config.tie_word_embeddings:
                n -= self.lm_head.weight.numel()
        cfg = self.config
        if active and cfg.n_experts is not None:
            per_expert = sum(p.numel() for p in self.model.layers[0].mlp.experts[0].parameters())
            n -= cfg.n_layer * (cfg.n_experts - cfg.n_experts_per_tok) * per_expert
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token, PaLM's 6·N + 12·L·H·Q·T (as :meth:`GPT.flops_per_token`).

        N: the active non-embedding parameters plus the output head. The attention term counts
        query heads (GQA saves memory, not these FLOPs) and, with a sliding window, at most
        ``sliding_window`` keys per query (T is the sequence length, default ``block_size``).
        """
        cfg = self.config
        T = cfg.block_size if seq_len is None else check_int("seq_len", seq_len, min=1)
        if cfg.sliding_window is not None:
            T = min(T, cfg.sliding_window)
        n = self.num_params(non_embedding=True, active=True) + self.lm_head.weight.numel()
        return 6 * n + 12 * cfg.n_layer * cfg.n_head * cfg.head_dim * T

    def expert_counts(self) -> torch.Tensor | None:
        """(n_layer, n_experts) tokens routed to each expert in the last forward (``None`` for a
        dense model or before any forward): the histogram of how balanced the routing is."""
        if self.config.n_experts is None or self.model.layers[0].mlp.last_counts is None:
            return None
        return torch.stack([layer.mlp.last_counts for layer in self.model.layers])

    # ----------------------------------------------------------------------------------------
    # Forward
    # ----------------------------------------------------------------------------------------

    def _run(self, idx: torch.Tensor, past: int, cache=None, return_attentions: bool = False):
        """Embed, run the layers with positions ``past …``, final norm: (B, T, C) and extras."""
        T = idx.size(1)
        x = self.model.embed_tokens(idx)  # (B, T, C): no position embedding is added
        cos, sin = self.model.rotary_emb(torch.arange(past, past + T, device=idx.device))
        attentions, router_logits = [], []
        for i, layer in enumerate(self.model.layers):
            x, att, r = layer(x, cos, sin, None if cache is None else cache[i], return_attentions)
            attentions.append(att)
            router_logits.append(r)
        return self.model.norm(x), attentions, router_logits

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                return_attentions: bool = False):
        """Return ``(logits, loss)``; with ``return_attentions=True`` also a tuple of per-layer
        attention weights ``(B, n_head, T, T)`` (the slower, explicit path).

        ``targets`` (B, T) gives the cross-entropy loss (positions set to -100 are ignored); a
        mixture of experts adds ``router_aux_loss_coef`` × :func:`load_balancing_loss` (kept,
        detached, in ``last_aux_loss``), as ``MixtralForCausalLM`` with ``output_router_logits``.
        """
        self._check_idx(idx)
        check_bool("return_attentions", return_attentions)
        idx = idx if idx.dtype in (torch.long, torch.int32) else idx.long()  # nn.Embedding's
        x, attentions, router_logits = self._run(idx, 0, None, return_attentions)
        logits = self.lm_head(x)  # (B, T, vocab)
        loss = None if targets is None else self._lm_loss(logits, targets, idx)
        if loss is not None and self.config.n_experts is not None:
            aux = load_balancing_loss(router_logits, self.config.n_experts_per_tok)
            self.last_aux_loss = aux.detach()
            loss = loss + self.config.router_aux_loss_coef * aux
        if return_attentions:
            return logits, loss, tuple(attentions)
        return logits, loss

    # ----------------------------------------------------------------------------------------
    # Generation, with and without a KV cache
    # ----------------------------------------------------------------------------------------

    def _forward_cached(self, idx: torch.Tensor, cache: list[list[torch.Tensor]]) -> torch.Tensor:
        """Run ``idx`` (B, T) after the tokens in ``cache`` (one ``[k, v]`` per layer, empty lists
        to start; extended in place); return the last position's logits (B, vocab)."""
        past = cache[0][0].size(2) if cache[0] else 0
        if past + idx.size(1) > self.config.block_size:  # guarded by generate()
            raise ValueError(f"cache of {past} + {idx.size(1)} new tokens exceeds block_size "
                             f"{self.config.block_size}")
        x, _, _ = self._run(idx, past, cache)  # RoPE angles of positions past, past + 1, …
        return self.lm_head(x[:, -1, :])  # (B, vocab)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Append ``max_new_tokens`` tokens to ``idx`` (B, T); return (B, T + new).

        The same contract as :meth:`llmcourse.model.GPT.generate`: ``temperature=0`` is greedy,
        otherwise sampling from :func:`llmcourse.model.next_token_probs` (temperature, top-k,
        top-p) with ``generator``; eval mode during the call; ``use_cache=True`` feeds only the
        newest token and reuses the cached keys/values (``n_kv_head`` heads per layer, already
        rotated to their positions), giving the tokens of ``use_cache=False``; past
        ``block_size`` tokens the context is cropped to the last ``block_size`` and the cache
        rebuilt.
        """
        self._check_idx(idx)
        return decode(self, idx, max_new_tokens, temperature, top_k, top_p, use_cache, generator)

    # ----------------------------------------------------------------------------------------
    # Hugging Face interoperability (the conversion itself is in llmcourse.llama_hf)
    # ----------------------------------------------------------------------------------------

    def hf_config(self):
        """The Hugging Face config of the equivalent model (:func:`llmcourse.llama_hf.hf_config`):
        ``MixtralConfig`` with experts, ``Qwen3Config`` with QK-norm, ``MistralConfig`` with a
        sliding window, else ``LlamaConfig``."""
        from llmcourse import llama_hf

        return llama_hf.hf_config(self.config)

    def to_hf(self):
        """Return the equivalent Hugging Face model, same logits (:func:`llmcourse.llama_hf.to_hf`);
        ``save_pretrained`` / ``AutoModelForCausalLM.from_pretrained`` then work on our weights."""
        from llmcourse import llama_hf

        return llama_hf.to_hf(self)

    @classmethod
    def from_hf(cls, model) -> Llama:
        """Build a Llama from a Hugging Face ``LlamaForCausalLM``, ``MistralForCausalLM``,
        ``Qwen3ForCausalLM`` or ``MixtralForCausalLM`` (:func:`llmcourse.llama_hf.from_hf`)."""
        from llmcourse import llama_hf

        return llama_hf.from_hf(model)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, revision: str | None = None,
                        verbose: bool = True) -> Llama:
        """Load a Hugging Face Llama-family model from a local folder or a Hub name (pinned in
        :data:`PINNED_REVISIONS`); never runs remote code
        (:func:`llmcourse.llama_hf.from_pretrained`)."""
        from llmcourse import llama_hf

        return llama_hf.from_pretrained(name_or_path, revision, verbose)
