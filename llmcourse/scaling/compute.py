"""Parameters, training FLOPs (model and hardware), the batch plan, GPU-hours, time and cost."""

from __future__ import annotations

import math

from llmcourse.hardware import gpu_key, peak_flops
from llmcourse.scaling._common import (
    CHINCHILLA_TOKENS_PER_PARAM,
    GPU_PRICES_USD,
    LLAMA2_GLOBAL_BATCH_TOKENS,
    RECOMPUTE,
    _check_choice,
    _check_int,
    _check_real,
    _check_shape,
)


# ----------------------------------------------------------------------------- parameters
def count_params(*, arch: str = "gpt2", vocab_size: int, n_layer: int, d_model: int,
                 n_heads: int, n_kv_heads: int | None = None, d_ff: int | None = None,
                 max_seq_len: int = 1024, tied: bool | None = None,
                 bias: bool | None = None) -> int:
    """Number of trainable parameters of a decoder-only transformer, counted weight by weight.

    ``arch="gpt2"`` (Radford et al. 2019): learned position embeddings (``max_seq_len × d``),
    LayerNorms with bias, biases in every Linear, GELU MLP of width ``d_ff`` (default ``4d``),
    output head tied to the token embedding. Per layer ``4d² + 2·d·d_ff`` weights plus biases
    and norms; GPT-2 small gives exactly 124,439,808.

    ``arch="llama"`` (Touvron et al. 2023): rotary positions (no position weights), RMSNorm
    (``d`` weights, no bias), no biases, grouped-query attention (``n_kv_heads`` key/value
    heads, default ``n_heads``), SwiGLU MLP with three ``d × d_ff`` matrices (``d_ff`` is
    required), untied output head. Llama-2-7B gives 6,738,415,616 ≈ 6.74e9.

    ``tied``/``bias`` override the architecture's default.

    >>> count_params(**PRESETS["GPT-2 124M"])
    124439808
    """
    V = _check_int("vocab_size", vocab_size)
    L = _check_int("n_layer", n_layer)
    d, H, kv, F, llama = _check_shape(arch, d_model, n_heads, n_kv_heads, d_ff)
    P = _check_int("max_seq_len", max_seq_len)
    tied = (not llama) if tied is None else tied
    bias = (not llama) if bias is None else bias
    if not isinstance(tied, bool) or not isinstance(bias, bool):
        raise TypeError("tied and bias must be bools or None")

    head_dim = d // H
    kv_dim = kv * head_dim
    norm = 2 * d if (bias and not llama) else d  # LayerNorm (weight + bias) or RMSNorm
    attn = d * d + 2 * d * kv_dim + d * d  # q, k, v, output projection
    attn += (d + 2 * kv_dim + d) if bias else 0
    if llama:  # SwiGLU: gate and up (d → F), down (F → d)
        mlp = 3 * d * F + ((2 * F + d) if bias else 0)
    else:  # GELU: up (d → F), down (F → d)
        mlp = 2 * d * F + ((F + d) if bias else 0)
    per_layer = attn + mlp + 2 * norm
    embeddings = V * d + (0 if llama else P * d)
    head = 0 if tied else V * d
    return embeddings + L * per_layer + norm + head


# ----------------------------------------------------------------------------- compute
def training_flops(n_params: float, n_tokens: float, *, seq_len: int | None = None,
                   n_layer: int | None = None, d_model: int | None = None) -> float:
    """Training FLOPs (forward + backward) for ``n_params`` parameters on ``n_tokens`` tokens.

    ``6·N·D`` (Kaplan et al. 2020 §2.1: 2 FLOPs per parameter per token forward, 4 backward).
    When the shape (``seq_len``, ``n_layer``, ``d_model``, all three) is given, adds the
    attention-score term of PaLM (Chowdhery et al. 2022, appendix B): ``12·L·d·T`` FLOPs per
    token (``H·Q = d``), i.e. ``6·L·T·d`` for ``QKᵀ`` and ``6·L·T·d`` for the weighted sum of
    values, counted over the full ``T × T`` matrix (causal kernels skip half in practice; the
    papers' MFU convention keeps the full count).

    >>> f"{training_flops(6.74e9, 2e12):.3e}"
    '8.088e+22'
    """
    N = _check_real("n_params", n_params)
    D = _check_real("n_tokens", n_tokens)
    flops = 6.0 * N * D
    shape = {"seq_len": seq_len, "n_layer": n_layer, "d_model": d_model}
    given = [k for k, v in shape.items() if v is not None]
    if given and len(given) != 3:
        missing = [k for k in shape if k not in given]
        raise ValueError(f"give all of seq_len, n_layer, d_model for the attention term "
                         f"(missing: {', '.join(missing)}), or none of them")
    if given:
        T = _check_int("seq_len", seq_len)
        L = _check_int("n_layer", n_layer)
        d = _check_int("d_model", d_model)
        flops += 12.0 * L * d * T * D
    return flops


def hardware_flops(n_params: float, n_tokens: float, *, recompute: str = "none",
                   seq_len: int | None = None, n_layer: int | None = None,
                   d_model: int | None = None) -> float:
    """FLOPs the hardware executes, recomputation included (Chowdhery et al. 2022, appendix B).

    :func:`training_flops` counts the *model* FLOPs, ``6·N·D`` (+ ``12·L·d·T·D`` of attention
    with the shape): what MFU divides by the peak (Chowdhery et al. 2022, appendix B).
    Recomputation repeats forward work on top:

    * ``"full"``: every layer's forward runs twice, ``+2·N·D`` (+ ``4·L·d·T·D``), so ``8·N·D``
      in all: 4/3 of the model FLOPs without the attention term;
    * ``"selective"``: only the attention scores' forward (``QKᵀ`` and the product with V),
      ``+4·L·d·T·D`` — it needs the shape (``seq_len``, ``n_layer``, ``d_model``);
    * ``"none"``: equal to :func:`training_flops`.

    The hardware FLOPs utilisation is ``HFU = MFU × hardware_flops / training_flops``: the
    fraction of the peak the GPUs really compute at, recomputation counted.

    >>> hardware_flops(1e9, 1e10, recompute="full") / training_flops(1e9, 1e10)
    1.3333333333333333
    """
    flops = training_flops(n_params, n_tokens, seq_len=seq_len, n_layer=n_layer,
                           d_model=d_model)
    _check_choice("recompute", recompute, RECOMPUTE)
    shaped = seq_len is not None
    if recompute == "selective" and not shaped:
        raise ValueError("recompute='selective' repeats the attention-score FLOPs: give seq_len, "
                         "n_layer and d_model")
    attention_forward = 4.0 * n_layer * d_model * seq_len * float(n_tokens) if shaped else 0.0
    if recompute == "full":
        return flops + 2.0 * float(n_params) * float(n_tokens) + attention_forward
    if recompute == "selective":
        return flops + attention_forward
    return flops


def batch_plan(n_tokens: float, *, global_batch_tokens: int = LLAMA2_GLOBAL_BATCH_TOKENS,
               seq_len: int = 4096, micro_batch: int = 1, n_gpus: int = 1) -> dict[str, int]:
    """Optimizer steps and gradient accumulation for a run of ``n_tokens`` tokens.

    Each optimizer step consumes ``global_batch_tokens`` tokens (Llama 2: 4M, i.e. 1,024
    sequences of 4,096 tokens; Touvron et al. 2023, table 1), split over ``n_gpus`` data-parallel
    GPUs that each run ``micro_batch`` sequences per forward/backward and accumulate gradients
    over ``accumulation_steps`` of them. Returns ``sequences_per_step`` (global batch in
    sequences), ``accumulation_steps`` (rounded up when the GPUs do not divide the batch evenly:
    the batch then grows to ``sequences_per_step_used``), and ``steps`` (rounded up).

    >>> plan = batch_plan(2e12, n_gpus=256)  # Llama 2's batch and tokens on 256 GPUs
    >>> plan["accumulation_steps"], plan["steps"]
    (4, 476838)
    """
    D = _check_real("n_tokens", n_tokens)
    G = _check_int("global_batch_tokens", global_batch_tokens)
    s = _check_int("seq_len", seq_len)
    b = _check_int("micro_batch", micro_batch)
    n = _check_int("n_gpus", n_gpus)
    if G % s:
        raise ValueError(f"global_batch_tokens ({G}) must be a multiple of seq_len ({s})")
    sequences = G // s
    if sequences < b * n:
        raise ValueError(f"global_batch_tokens ({G}) is {sequences} sequences, fewer than "
                         f"micro_batch × n_gpus ({b} × {n} = {b * n}): lower n_gpus or "
                         f"micro_batch, or raise global_batch_tokens")
    accumulation = -(-sequences // (b * n))
    used = accumulation * b * n
    return {"sequences_per_step": sequences, "accumulation_steps": accumulation,
            "sequences_per_step_used": used, "steps": math.ceil(D / (used * s))}


def chinchilla_tokens(n_params: float) -> float:
    """Compute-optimal training tokens: 20 per parameter (Hoffmann et al. 2022, table 3)."""
    return CHINCHILLA_TOKENS_PER_PARAM * _check_real("n_params", n_params)


def _check_mfu(mfu) -> float:
    m = _check_real("mfu", mfu)
    if not 0 < m <= 1:
        raise ValueError(f"mfu must be in (0, 1] (a fraction of the peak), got {mfu!r}")
    return m


def gpu_hours(flops: float, *, gpu: str, mfu: float = 0.4, precision: str = "bf16") -> float:
    """GPU-hours to do ``flops`` at ``mfu`` × the peak of ``gpu`` in ``precision``.

    GPU-hours do not depend on how many GPUs share the work (perfect data-parallel scaling
    assumed; the MFU absorbs communication losses). Papers report this number.
    """
    f = _check_real("flops", flops)
    m = _check_mfu(mfu)
    return f / (peak_flops(gpu, precision) * m) / 3600.0


def training_time(flops: float, *, gpu: str, n_gpus: int = 1, mfu: float = 0.4,
                  precision: str = "bf16") -> float:
    """Wall-clock **hours** to do ``flops`` on ``n_gpus`` GPUs of kind ``gpu``.

    ``training_time(...) × n_gpus == gpu_hours(...)``: with ``n_gpus=1`` the two are equal.
    ``mfu`` is the model FLOPs utilisation, the achieved fraction of the dense peak
    (:func:`llmcourse.hardware.peak_flops`); 0.3–0.5 is typical of well-tuned large runs.
    """
    n = _check_int("n_gpus", n_gpus)
    return gpu_hours(flops, gpu=gpu, mfu=mfu, precision=precision) / n


def implied_mfu(flops: float, reported_gpu_hours: float, *, gpu: str,
                precision: str = "bf16") -> float:
    """The MFU that a published GPU-hour figure implies: ``flops / (hours·3600·peak)``."""
    f = _check_real("flops", flops)
    h = _check_real("reported_gpu_hours", reported_gpu_hours)
    return f / (h * 3600.0 * peak_flops(gpu, precision))


def training_cost(flops: float, *, gpu: str, mfu: float = 0.4, precision: str = "bf16",
                  usd_per_gpu_hour: float | None = None) -> float:
    """Dollars: :func:`gpu_hours` × a price per GPU-hour (default :data:`GPU_PRICES_USD`)."""
    key = gpu_key(gpu)
    price = GPU_PRICES_USD[key] if usd_per_gpu_hour is None else _check_real(
        "usd_per_gpu_hour", usd_per_gpu_hour)
    return gpu_hours(flops, gpu=key, mfu=mfu, precision=precision) * price
