"""A GPT in the style of nanoGPT's model.py: short, readable, shapes in comments.

Architecturally identical to GPT-2 (pre-norm blocks, learned positions, tanh-GELU MLP,
tied input/output embeddings), so its weights map one-to-one onto Hugging Face's
``GPT2LMHeadModel``.

Why one module of about 510 lines: the GPT stands whole in one file, config, attention, MLP,
block, model and generation, in the order chapter 04 builds them, as nanoGPT's ``model.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
from torch.nn import functional as F

from llmcourse._checks import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_tensor,
    check_type,
)


@dataclass
class GPTConfig:
    """Sizes of a GPT. ``n_embd`` must be divisible by ``n_head``."""

    vocab_size: int = 50257
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm layers, like GPT-2

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"GPTConfig.{name} must be an int, got {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"GPTConfig.{name} must be positive, got {value}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"GPTConfig.n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        check_number("GPTConfig.dropout", self.dropout, min=0.0, max=1.0, max_open=True)
        if not isinstance(self.bias, bool):
            raise TypeError(f"GPTConfig.bias must be a bool, got {type(self.bias).__name__}")

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        _check_config(config)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, return_attention: bool = False,
                kv_cache: list[torch.Tensor] | None = None):
        """``kv_cache``: ``[]`` or ``[k, v]`` of earlier tokens; updated in place to include x's."""
        _check_hidden(x, self.n_embd)
        B, T, C = x.shape  # batch, time, channels
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # 3 × (B, T, C)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)  # (B, nh, T, hs)
        past = 0
        if kv_cache:  # New: keys/values of earlier tokens, computed once and reused
            past = kv_cache[0].size(2)
            k = torch.cat([kv_cache[0], k], dim=2)  # (B, nh, past + T, hs)
            v = torch.cat([kv_cache[1], v], dim=2)  # (B, nh, past + T, hs)
        att = None
        if return_attention:  # explicit path: the weights are what the widgets show
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, past + T)
            causal = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
            att = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
            y = self.attn_dropout(att) @ v  # (B, nh, T, hs)
        else:  # fused kernel (flash / memory-efficient attention on GPUs)
            p = self.dropout if self.training else 0.0
            if past == 0 or T == 1:  # plain causal, or one new token that sees everything
                y = F.scaled_dot_product_attention(q, k, v, is_causal=past == 0, dropout_p=p)
            else:  # several new tokens after a cache: token i sees past + i + 1 keys
                causal = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=causal, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # merge heads: (B, T, C)
        if kv_cache is not None:
            kv_cache[:] = [k, v]  # (B, nh, past + T, hs) each
        return self.resid_dropout(self.c_proj(y)), att


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        _check_config(config)
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's "gelu_new"
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_hidden(x, self.c_fc.in_features)
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        _check_config(config)
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, return_attention: bool = False, kv_cache=None):
        _check_hidden(x, self.ln_1.normalized_shape[0])
        a, att = self.attn(self.ln_1(x), return_attention, kv_cache)
        x = x + a  # (B, T, C)
        x = x + self.mlp(self.ln_2(x))  # (B, T, C)
        return x, att


class GPT(nn.Module):
    """A GPT-2-style decoder-only transformer."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = check_type("config", config, GPTConfig)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
            wpe=nn.Embedding(config.block_size, config.n_embd),  # learned positions
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        """Parameters counted once (the tied head is not counted twice).

        ``non_embedding=True`` leaves out the position embeddings (and token embeddings, which
        double as the output head), the convention of the scaling-law papers.
        """
        check_bool("non_embedding", non_embedding)
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel() + self.transformer.wte.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> int:
        """Training FLOPs per token, PaLM formula: 6·N + 12·L·H·Q·T.

        N: non-embedding parameters (plus the output head, which is a real matmul),
        L layers, H heads, Q head size, T the sequence length (default ``block_size``).
        Forward only is one third of this.
        """
        cfg = self.config
        T = cfg.block_size if seq_len is None else check_int("seq_len", seq_len, min=1)
        n = self.num_params(non_embedding=True) + self.lm_head.weight.numel()
        return 6 * n + 12 * cfg.n_layer * cfg.n_head * (cfg.n_embd // cfg.n_head) * T

    def _check_idx(self, idx: torch.Tensor) -> None:
        if not isinstance(idx, torch.Tensor):
            raise TypeError(f"idx must be a LongTensor of token ids, got {type(idx).__name__}")
        if idx.dtype not in _ID_DTYPES:
            raise ValueError(f"idx must hold integer token ids (int64, int32, int16 or uint8), "
                             f"got dtype {idx.dtype}")
        if idx.dim() != 2:
            raise ValueError(f"idx must have shape (batch, time), got {tuple(idx.shape)}")
        B, T = idx.shape
        if B == 0 or T == 0:
            raise ValueError(f"idx must hold at least one token, got shape {tuple(idx.shape)}")
        if T > self.config.block_size:
            raise ValueError(  # this wording is shown in chapter 04's stored outputs
                f"sequence length {T} exceeds block_size {self.config.block_size}; crop the input")
        # a value check reads the ids back from the device (one sync): torch.compile'd graphs
        # skip it, so that it neither breaks the graph nor stalls the GPU every step
        if not torch.compiler.is_compiling() and bool(((idx < 0) | (idx >= self.config.vocab_size)).any()):
            raise ValueError(f"token ids must be in [0, {self.config.vocab_size}), got min "
                             f"{int(idx.min())}, max {int(idx.max())}")

    def _check_targets(self, targets: torch.Tensor, idx: torch.Tensor) -> None:
        if not isinstance(targets, torch.Tensor):
            raise TypeError(f"targets must be a LongTensor of token ids, got "
                            f"{type(targets).__name__}")
        if targets.shape != idx.shape:
            raise ValueError(f"targets must have the shape of idx {tuple(idx.shape)}, got "
                             f"{tuple(targets.shape)}")
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise ValueError(f"targets must hold integer token ids, got dtype {targets.dtype}")
        V = self.config.vocab_size
        if not torch.compiler.is_compiling() and bool(
                (((targets < 0) & (targets != -100)) | (targets >= V)).any()):
            raise ValueError(f"targets must be token ids in [0, {V}) or -100 (ignored), got min "
                             f"{int(targets.min())}, max {int(targets.max())}")

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                return_attentions: bool = False):
        """Return ``(logits, loss)``; with ``return_attentions=True`` also a tuple of
        per-layer attention weights ``(B, n_head, T, T)`` (the slower, explicit path).

        ``targets`` (B, T) gives the cross-entropy loss; positions set to -100 are ignored.
        """
        self._check_idx(idx)
        check_bool("return_attentions", return_attentions)
        idx = _as_index(idx)
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)  # (B, T, C)
        x = self.transformer.drop(x)
        attentions = []
        for block in self.transformer.h:
            x, att = block(x, return_attentions)
            attentions.append(att)
        x = self.transformer.ln_f(x)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, vocab)
        loss = None if targets is None else self._lm_loss(logits, targets, idx)
        if return_attentions:
            return logits, loss, tuple(attentions)
        return logits, loss

    # ----------------------------------------------------------------------------------------
    # Generation, with and without a KV cache
    # ----------------------------------------------------------------------------------------

    def _lm_loss(self, logits: torch.Tensor, targets: torch.Tensor,
                 idx: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of ``logits`` (B, T, vocab) against ``targets`` (B, T), computed in
        float32; positions set to -100 are ignored."""
        self._check_targets(targets, idx)
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)),
                               targets.reshape(-1).long(), ignore_index=-100)

    def _forward_cached(self, idx: torch.Tensor, cache: list[list[torch.Tensor]]) -> torch.Tensor:
        """Run ``idx`` (B, T) after the tokens already in ``cache``; return the last logits.

        ``cache`` holds one ``[k, v]`` per layer (empty lists to start) and is extended in place.
        """
        past = cache[0][0].size(2) if cache[0] else 0
        B, T = idx.shape
        if past + T > self.config.block_size:  # guarded by generate(); never wrong positions
            raise ValueError(f"cache of {past} + {T} new tokens exceeds block_size "
                             f"{self.config.block_size}")
        pos = torch.arange(past, past + T, device=idx.device)  # (T,) positions after the cache
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block, layer_cache in zip(self.transformer.h, cache):
            x, _ = block(x, kv_cache=layer_cache)  # (B, T, C)
        x = self.transformer.ln_f(x[:, -1:, :])  # only the last position is needed: (B, 1, C)
        return self.lm_head(x)[:, -1, :]  # (B, vocab)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Append ``max_new_tokens`` sampled tokens to ``idx`` (B, T); return (B, T + new).

        ``temperature=0`` is greedy decoding (argmax); otherwise tokens are sampled from
        :func:`next_token_probs` (temperature, then top-k, then top-p) with ``generator``.
        The model runs in eval mode (no dropout) and is put back in its previous mode.

        With ``use_cache=True`` each step feeds only the newest token and reuses the keys and
        values of the earlier ones, giving the same tokens as recomputing everything
        (``use_cache=False``). The model sees at most ``block_size`` tokens: once the sequence
        is longer, the context is cropped to its last ``block_size`` tokens (a sliding window)
        and, since every position then shifts, the cache is rebuilt from that window each step.
        """
        self._check_idx(idx)
        return decode(self, idx, max_new_tokens, temperature, top_k, top_p, use_cache, generator)

    # ----------------------------------------------------------------------------------------
    # Hugging Face GPT-2 interoperability
    # ----------------------------------------------------------------------------------------

    def to_hf(self):
        """Return an equivalent ``transformers.GPT2LMHeadModel`` (same logits, to ~1e-6).

        ``save_pretrained`` / ``AutoModelForCausalLM.from_pretrained`` then work on our weights.
        HF's GPT-2 stores linear layers as ``Conv1D`` with the weight transposed
        (``(in, out)`` instead of ``nn.Linear``'s ``(out, in)``). GPT-2 always has biases: a
        ``bias=False`` model is exported with zero biases, which computes the same function.
        """
        from transformers import GPT2Config, GPT2LMHeadModel

        cfg = self.config
        hf_cfg = GPT2Config(
            vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
            n_layer=cfg.n_layer, n_head=cfg.n_head, n_inner=4 * cfg.n_embd,
            activation_function="gelu_new", layer_norm_epsilon=1e-5,
            resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
            tie_word_embeddings=True, bos_token_id=None, eos_token_id=None)
        hf = GPT2LMHeadModel(hf_cfg)
        ours = self.state_dict()
        new = {}
        for name, tensor in hf.state_dict().items():
            key = name  # our parameter names are HF's names
            if key in ours:
                value = ours[key]
                if any(key.endswith(w) for w in _CONV1D_WEIGHTS):
                    value = value.t()  # nn.Linear (out, in) -> Conv1D (in, out)
            elif key.endswith(".bias"):
                value = torch.zeros_like(tensor)  # bias=False: a zero bias changes nothing
            else:
                raise RuntimeError(f"no weight of ours maps onto HF's {name}")  # pragma: no cover
            if value.shape != tensor.shape:  # pragma: no cover - guarded by the config above
                raise RuntimeError(f"shape mismatch for {name}: {value.shape} vs {tensor.shape}")
            new[name] = value.detach().clone()
        hf.load_state_dict(new, strict=True)
        hf.tie_weights()
        return hf.to(self.lm_head.weight.device).train(self.training)

    @classmethod
    def from_hf(cls, model) -> GPT:
        """Build a GPT from a Hugging Face ``GPT2LMHeadModel`` (the inverse of :meth:`to_hf`).

        Raises ``ValueError`` for GPT-2 variants our model does not implement (another
        activation, inner size or LayerNorm epsilon, untied head, scaled attention options).
        """
        hf_cfg = getattr(model, "config", None)
        if getattr(hf_cfg, "model_type", None) != "gpt2" or not hasattr(model, "lm_head"):
            raise TypeError(f"model must be a transformers GPT2LMHeadModel, got "
                            f"{type(model).__name__}")
        checks = {
            "activation_function": (hf_cfg.activation_function in ("gelu_new", "gelu_pytorch_tanh"),
                                    "'gelu_new'"),
            "n_inner": (hf_cfg.n_inner in (None, 4 * hf_cfg.n_embd), "None or 4 * n_embd"),
            "layer_norm_epsilon": (hf_cfg.layer_norm_epsilon == 1e-5, "1e-5"),
            "scale_attn_weights": (getattr(hf_cfg, "scale_attn_weights", True), "True"),
            "scale_attn_by_inverse_layer_idx": (
                not getattr(hf_cfg, "scale_attn_by_inverse_layer_idx", False), "False"),
            "reorder_and_upcast_attn": (
                not getattr(hf_cfg, "reorder_and_upcast_attn", False), "False"),
        }
        for field_name, (ok, expected) in checks.items():
            if not ok:
                raise ValueError(f"model.config.{field_name}={getattr(hf_cfg, field_name)!r} is "
                                 f"not supported; expected {expected}")
        hf_sd = model.state_dict()
        wte = hf_sd["transformer.wte.weight"]
        if "lm_head.weight" in hf_sd and not torch.equal(hf_sd["lm_head.weight"], wte):
            raise ValueError("model.lm_head is not tied to the token embeddings; "
                             "GPT ties them (tie_word_embeddings=True)")
        config = GPTConfig(vocab_size=hf_cfg.vocab_size, block_size=hf_cfg.n_positions,
                           n_layer=hf_cfg.n_layer, n_head=hf_cfg.n_head, n_embd=hf_cfg.n_embd,
                           dropout=float(hf_cfg.resid_pdrop), bias=True)
        gpt = cls(config)
        new = {}
        for key, tensor in gpt.state_dict().items():
            value = hf_sd[key]  # our names are HF's names (lm_head.weight is tied to wte)
            if any(key.endswith(w) for w in _CONV1D_WEIGHTS):
                value = value.t()  # Conv1D (in, out) -> nn.Linear (out, in)
            new[key] = value.detach().clone().to(tensor.dtype)
        gpt.load_state_dict(new, strict=True)
        return gpt.to(wte.device).train(model.training)


_CONV1D_WEIGHTS = ("c_attn.weight", "c_proj.weight", "c_fc.weight")
_ID_DTYPES = (torch.long, torch.int32, torch.int16, torch.uint8)


def _check_config(config: object) -> None:
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")


def _check_hidden(x: object, n_embd: int) -> None:
    check_tensor("x", x, ndim=3, dtype="float", shape=f"(batch, time, {n_embd})")
    if x.size(-1) != n_embd:
        raise ValueError(f"x must have shape (batch, time, {n_embd}), got {tuple(x.shape)}")


def _as_index(idx: torch.Tensor) -> torch.Tensor:
    """Token ids in a dtype ``nn.Embedding`` takes (int64 or int32; int16/uint8 are widened)."""
    return idx if idx.dtype in (torch.long, torch.int32) else idx.long()

# The GPT-2 family (Radford et al., 2019): vocabulary 50257, context 1024.
GPT2_SIZES = {
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768),  # 124M
    "gpt2-medium": dict(n_layer=24, n_head=16, n_embd=1024),  # 350M
    "gpt2-large": dict(n_layer=36, n_head=20, n_embd=1280),  # 774M
    "gpt2-xl": dict(n_layer=48, n_head=25, n_embd=1600),  # 1558M
}


def gpt2_config(name: str) -> GPTConfig:
    """The :class:`GPTConfig` of a GPT-2 model: ``"gpt2"``, ``"gpt2-medium"``, ``-large``, ``-xl``."""
    check_choice("name", name, GPT2_SIZES)
    return GPTConfig(vocab_size=50257, block_size=1024, **GPT2_SIZES[name])


def param_count(config: GPTConfig) -> int:
    """Parameters of ``GPT(config)`` by formula (tied head counted once), without building it.

    Embeddings ``V·C + T·C``; per block ``12·C² + 13·C`` with biases (``12·C² + 2·C`` without:
    attention ``4·C²``, MLP ``8·C²``, LayerNorms, biases); final LayerNorm ``2·C`` (``C``).
    """
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
    V, T, L, C = config.vocab_size, config.block_size, config.n_layer, config.n_embd
    per_block = 12 * C * C + (13 * C if config.bias else 2 * C)
    return V * C + T * C + L * per_block + (2 * C if config.bias else C)


def _check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    check_number("temperature", temperature, min=0.0)
    if top_k is not None:
        check_int("top_k", top_k, min=1)
    if top_p is not None:
        check_number("top_p", top_p, min=0.0, max=1.0, min_open=True)


def next_token_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> torch.Tensor:
    """The distribution :meth:`GPT.generate` samples the next token from, over the last dim.

    * ``temperature=0``: greedy — all the mass on the argmax;
    * otherwise ``softmax(logits / temperature)``, then
    * ``top_k``: keep the ``k`` most likely tokens, renormalise;
    * ``top_p`` (nucleus): keep the smallest set of most likely tokens whose mass reaches
      ``top_p``, renormalise.
    """
    check_tensor("logits", logits, dtype="float", shape="(..., vocab)")
    if logits.dim() < 1 or logits.size(-1) == 0:
        raise ValueError(f"logits must have shape (..., vocab) with vocab >= 1, got "
                         f"{tuple(logits.shape)}")
    _check_sampling(temperature, top_k, top_p)
    logits = logits.float()
    if temperature == 0:
        return F.one_hot(logits.argmax(dim=-1), logits.size(-1)).to(logits.dtype)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (..., 1) k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = logits.softmax(dim=-1)
    if top_p is not None and top_p < 1:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        before = sorted_p.cumsum(dim=-1) - sorted_p  # mass of the more likely tokens
        drop_sorted = before >= top_p  # already enough mass without this token
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        probs = probs.masked_fill(drop, 0.0)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return probs


def decode(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
           top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """The decoding loop of :meth:`GPT.generate` and :meth:`llmcourse.llama.Llama.generate`.

    ``model`` is called as ``model(idx) -> (logits, loss)`` and has ``config.block_size``,
    ``config.n_layer`` and ``_forward_cached(idx, cache)`` (the logits of the last position,
    with ``cache`` a list of per-layer lists it fills). ``idx`` (B, T) is checked by the
    caller (its vocabulary); returns (B, T + max_new_tokens).
    """
    check_int("max_new_tokens", max_new_tokens, min=0)
    _check_sampling(temperature, top_k, top_p)
    check_bool("use_cache", use_cache)
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    was_training = model.training
    model.eval()
    try:
        idx = idx.long()
        bs = model.config.block_size
        cache = None
        for _ in range(max_new_tokens):
            if not use_cache:
                logits = model(idx[:, -bs:])[0][:, -1, :]  # recompute everything: (B, vocab)
            elif cache is None or idx.size(1) > bs:  # first step, or the window slid
                cache = [[] for _ in range(model.config.n_layer)]
                logits = model._forward_cached(idx[:, -bs:], cache)
            else:  # only the newest token goes through the network
                logits = model._forward_cached(idx[:, -1:], cache)
            probs = next_token_probs(logits, temperature, top_k, top_p)  # (B, vocab)
            if temperature == 0:
                nxt = probs.argmax(dim=-1, keepdim=True)  # (B, 1)
            else:
                nxt = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
            idx = torch.cat([idx, nxt], dim=1)
    finally:
        model.train(was_training)
    return idx
