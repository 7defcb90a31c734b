"""What a training run costs: parameters, FLOPs, memory per GPU, GPU-hours, dollars.

The formulas are plain Python arithmetic on numbers (no tensors); only
:func:`saved_activation_bytes`, the one measured helper, runs a model. Every formula cites where it comes from:

* Parameter counts: GPT-2 (Radford et al. 2019) and Llama 2 (Touvron et al. 2023), counted
  weight by weight; checked against the published 124,439,808 (GPT-2 small) and 6.74e9
  (Llama-2-7B).
* Training FLOPs: ``6·N·D`` (Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
  §2.1) plus the attention term ``12·L·d·T`` per token of PaLM (Chowdhery et al. 2022,
  appendix B), i.e. ``6·L·T·d`` forward+backward for ``QK^T`` and ``6·L·T·d`` for ``AV``.
* Compute-optimal tokens: about 20 tokens per parameter (Hoffmann et al. 2022, "Training
  Compute-Optimal Large Language Models", "Chinchilla", table 3).
* Model-state memory: mixed-precision Adam keeps ``2 + 2 + K`` bytes per parameter with
  ``K = 12`` (fp32 master weights, momentum, variance), and ZeRO stages 1/2/3 shard the
  optimizer states / also the gradients / also the weights over the data-parallel GPUs
  (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
  Models", §3 and figure 1).
* Activation memory per transformer layer: ``s·b·h·(34 + 5·a·s/h)`` bytes with 16-bit
  activations, ``34·s·b·h`` with selective recomputation, ``2·s·b·h`` with full recomputation
  (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
  §4, equations 1 and 2 with no tensor or sequence parallelism). The same terms, tensor by
  tensor, for a Llama-style layer (no dropout masks, RMSNorm, SwiGLU, grouped-query attention):
  ``(16 + 8·f/h)·s·b·h + 2·a·s²·b`` without FlashAttention.
* Hardware vs model FLOPs: recomputation repeats forward FLOPs that the hardware does but the
  model FLOPs utilisation (MFU, defined against the hardware FLOPs utilisation HFU by Chowdhery
  et al. 2022, §4.1 and appendix B) does not count; Korthikanti et al. (2022) report both.
* Loss as a function of parameters and tokens: Chinchilla's parametric law
  ``L = E + A/N^α + B/D^β`` with E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28 (Hoffmann et
  al. 2022, §3.3 and appendix D.2), its compute-optimal allocation (their equation 4) and the
  parabola fit of an IsoFLOP profile (their approach 2, §3.2).
* Batch plan: Llama 2 trained with a global batch of 4M tokens (Touvron et al. 2023, table 1).
* GPU peaks: :mod:`llmcourse.hardware` (the same table the training engine's MFU uses).

Why one module of about 830 lines: each function is one cited formula, and they build on each
other (memory uses bytes per parameter and activation bytes; time and cost use FLOPs) — chapter
08 and :class:`llmcourse.widgets.ScalingCalculator` read them as one table of costs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from numbers import Real

from llmcourse.hardware import GPU_SPECS, gpu_key, peak_flops

__all__ = [
    "ARCHITECTURES",
    "CHINCHILLA_TOKENS_PER_PARAM",
    "GPU_PRICES_USD",
    "OPTIMIZERS",
    "PRESETS",
    "RECOMPUTE",
    "TRAINING_PRECISIONS",
    "CHINCHILLA_LAW",
    "LLAMA2_GLOBAL_BATCH_TOKENS",
    "activation_bytes_per_layer",
    "batch_plan",
    "bytes_per_param",
    "chinchilla_loss",
    "chinchilla_optimal",
    "chinchilla_tokens",
    "count_params",
    "fit_power_law",
    "fits",
    "gpu_hours",
    "hardware_flops",
    "implied_mfu",
    "isoflop_optimum",
    "peak_rss_of_training_step",
    "saved_activation_bytes",
    "training_cost",
    "training_flops",
    "training_memory",
    "training_time",
]

ARCHITECTURES = ("gpt2", "llama")
TRAINING_PRECISIONS = ("mixed", "fp32", "bf16")
OPTIMIZERS = ("adamw", "sgd", "adamw8bit")
RECOMPUTE = ("none", "selective", "full")
CHINCHILLA_TOKENS_PER_PARAM = 20
# Hoffmann et al. 2022, §3.3 / appendix D.2: the fitted L(N, D) = E + A/N^α + B/D^β (nats/token
# on MassiveText), as printed in the paper (rounded; see chinchilla_loss).
CHINCHILLA_LAW: dict[str, float] = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
# Touvron et al. 2023, table 1: "a global batch-size of 4M tokens"; we read 4M as 1,024 sequences
# of 4,096 tokens (their context length), 4,194,304 tokens.
LLAMA2_GLOBAL_BATCH_TOKENS = 1024 * 4096

# Shapes of published models, for count_params(**PRESETS[name]) and the calculator.
PRESETS: dict[str, dict] = {
    "GPT-2 124M": dict(arch="gpt2", vocab_size=50257, n_layer=12, d_model=768, n_heads=12,
                       max_seq_len=1024),
    "GPT-2 1.5B": dict(arch="gpt2", vocab_size=50257, n_layer=48, d_model=1600, n_heads=25,
                       max_seq_len=1024),
    "Llama-2-7B": dict(arch="llama", vocab_size=32000, n_layer=32, d_model=4096, n_heads=32,
                       d_ff=11008),
    "Llama-2-13B": dict(arch="llama", vocab_size=32000, n_layer=40, d_model=5120, n_heads=40,
                        d_ff=13824),
    "Llama-2-70B": dict(arch="llama", vocab_size=32000, n_layer=80, d_model=8192, n_heads=64,
                        n_kv_heads=8, d_ff=28672),
}

# Illustrative on-demand cloud prices in USD per GPU-hour. Prices change monthly and differ
# by provider, commitment and region: pass your own ``usd_per_gpu_hour`` for a real plan.
# A100 80GB and H100 SXM: midpoints of the "typical on-demand range" ($1.49–2.49 and
# $2.49–3.99) in "H100 vs A100 Cloud Pricing" (pricegpu.pages.dev, early 2026); H100 PCIe and
# H200 placed below/above the H100 SXM accordingly (our assumption, no single source); T4 and
# L4: approximate Google Cloud on-demand GPU prices (us-central1, GPU only, 2024–2025). The NVL
# boards and the GH200 are placed by the same assumption: NVL between PCIe and SXM of their
# generation, GH200 as the SXM part of its memory size.
GPU_PRICES_USD: dict[str, float] = {
    "T4": 0.35, "L4": 0.70, "A100": 2.00, "A100-40GB": 1.50, "H100-SXM": 3.20, "H100-PCIe": 2.60,
    "H100-NVL": 2.90, "H200": 3.80, "H200-NVL": 3.50, "GH200": 3.20, "GH200-144GB": 3.80,
}

_GB = 1e9


# ----------------------------------------------------------------------------- validation
def _check_real(name: str, value, *, positive: bool = True, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if positive and (v < 0 or (v == 0 and not allow_zero)):
        raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, "
                         f"got {value!r}")
    return v


def _check_int(name: str, value, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _check_choice(name: str, value, choices) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {', '.join(map(repr, choices))}; got "
                        f"{type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


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
    _check_choice("arch", arch, ARCHITECTURES)
    V = _check_int("vocab_size", vocab_size)
    L = _check_int("n_layer", n_layer)
    d = _check_int("d_model", d_model)
    H = _check_int("n_heads", n_heads)
    if d % H:
        raise ValueError(f"d_model ({d}) must be divisible by n_heads ({H})")
    kv = H if n_kv_heads is None else _check_int("n_kv_heads", n_kv_heads)
    if H % kv:
        raise ValueError(f"n_heads ({H}) must be a multiple of n_kv_heads ({kv})")
    llama = arch == "llama"
    if d_ff is None:
        if llama:
            raise ValueError("d_ff is required for arch='llama' (e.g. 11008 for Llama-2-7B)")
        d_ff = 4 * d
    F = _check_int("d_ff", d_ff)
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


# ----------------------------------------------------------------------------- memory
def bytes_per_param(precision: str = "mixed", optimizer: str = "adamw") -> dict[str, int]:
    """Bytes per parameter of weights, gradients and optimizer states.

    * ``"mixed"`` (Micikevicius et al. 2018; ZeRO §3): 16-bit weights (2) and gradients (2);
      the optimizer keeps fp32 master weights (4) plus its states: Adam(W) momentum and
      variance (4 + 4), so ``K = 12`` and 16 bytes in all; SGD with momentum ``K = 8``.
    * ``"fp32"``: 4 + 4, Adam states 8 (16 in all); SGD momentum 4.
    * ``"bf16"``: everything in bf16 with no master copy (2 + 2, Adam 4): cheaper, and the
      rounding of small updates hurts — large runs use ``"mixed"``.

    ``optimizer="adamw8bit"``: AdamW with both states quantised to 1 byte each (Dettmers et al.
    2022, "8-bit Optimizers via Block-wise Quantization"; bitsandbytes' ``AdamW8bit``), so 2
    bytes of states instead of 8; the per-block quantisation constants (one fp32 per 2,048
    values) are left out. With ``"mixed"``: 2 + 2 + (4 + 2) = 10 bytes per parameter.
    """
    _check_choice("precision", precision, TRAINING_PRECISIONS)
    _check_choice("optimizer", optimizer, OPTIMIZERS)
    if precision == "mixed":
        w, g, master = 2, 2, 4
        state = 4
    elif precision == "fp32":
        w, g, master, state = 4, 4, 0, 4
    else:
        w, g, master, state = 2, 2, 0, 2
    if optimizer == "adamw8bit":
        return {"weights": w, "grads": g, "optimizer": master + 2}
    n_states = 2 if optimizer == "adamw" else 1
    return {"weights": w, "grads": g, "optimizer": master + n_states * state}


def _activation_terms(*, seq_len, micro_batch, d_model, n_heads, arch, d_ff, n_kv_heads,
                      dropout) -> tuple[float, float, float]:
    """``(s·b·h, linear coefficient, score coefficient)``: bytes = sbh·lin + a·s²·b·score."""
    s = _check_int("seq_len", seq_len)
    b = _check_int("micro_batch", micro_batch)
    h = _check_int("d_model", d_model)
    a = _check_int("n_heads", n_heads)
    _check_choice("arch", arch, ARCHITECTURES)
    if h % a:
        raise ValueError(f"d_model ({h}) must be divisible by n_heads ({a})")
    llama = arch == "llama"
    if d_ff is None:
        if llama:
            raise ValueError("d_ff is required for arch='llama' (e.g. 11008 for Llama-2-7B)")
        d_ff = 4 * h
    f = _check_int("d_ff", d_ff)
    kv = a if n_kv_heads is None else _check_int("n_kv_heads", n_kv_heads)
    if a % kv:
        raise ValueError(f"n_heads ({a}) must be a multiple of n_kv_heads ({kv})")
    dropout = (not llama) if dropout is None else dropout
    if not isinstance(dropout, bool):
        raise TypeError(f"dropout must be a bool or None, got {type(dropout).__name__}")
    kv_share = kv / a  # K and V are kv_share × the size of Q
    # attention: norm output (QKV input) 2, Q 2, K and V 2·kv_share each, output-projection
    # input 2; with dropout also the 1-byte mask after the output projection
    lin = 2 + 2 + 4 * kv_share + 2 + (1 if dropout else 0)
    # MLP: norm output 2; GELU: its input and output, 2·f/h each; SwiGLU: the gate's input, its
    # SiLU, the up projection and their product (the down projection's input), 2·f/h each
    lin += 2 + (8 if llama else 4) * f / h + (1 if dropout else 0)
    lin += 4  # the two norms' inputs, 2 each
    # scores: the softmax output (2 bytes, also the input of the product with V); with dropout
    # also its 1-byte mask and the dropped-out copy (2)
    score = 5 if dropout else 2
    return float(s) * b * h, lin, score


def activation_bytes_per_layer(*, seq_len: int, micro_batch: int, d_model: int, n_heads: int,
                               recompute: str = "none", arch: str = "gpt2",
                               d_ff: int | None = None, n_kv_heads: int | None = None,
                               dropout: bool | None = None) -> float:
    """Activation bytes one transformer layer keeps for backward (Korthikanti et al. 2022 §4).

    16-bit activations, 1-byte dropout masks, no tensor/sequence parallelism; ``s`` =
    ``seq_len``, ``b`` = ``micro_batch``, ``h`` = ``d_model``, ``a`` = ``n_heads``.

    The default, ``arch="gpt2"`` with dropout and a GELU MLP of width ``d_ff = 4h``, is the
    paper's count:

    * ``"none"``: ``s·b·h·(34 + 5·a·s/h)`` — 34·sbh for the linear layers, norms, GELU and
      dropouts, ``5·a·s²·b`` for the attention scores, softmax and its dropout;
    * ``"selective"``: ``34·s·b·h`` — the attention-score part is recomputed (FlashAttention
      does the same by design);
    * ``"full"``: ``2·s·b·h`` — only the layer's input; everything else is recomputed.

    ``arch="llama"`` (``d_ff`` required; ``dropout`` defaults to ``False``, as Llama trains
    without dropout) counts the same tensors for RMSNorm, rotary attention with ``n_kv_heads``
    key/value heads and a SwiGLU MLP: the dropout masks go, the attention scores keep only the
    softmax output (``2·a·s²·b`` instead of ``5·a·s²·b``), and the MLP keeps four ``s·b·f``
    tensors (the gate's input, its SiLU, the up projection, their product) as eager PyTorch
    autograd does: ``(16 + 8·f/h)·s·b·h + 2·a·s²·b`` with ``n_kv_heads = n_heads``, about half
    of the GPT-3 count for Llama-2-7B at s = 4096. ``dropout`` (a bool) overrides either default.
    """
    sbh, lin, score = _activation_terms(seq_len=seq_len, micro_batch=micro_batch,
                                        d_model=d_model, n_heads=n_heads, arch=arch, d_ff=d_ff,
                                        n_kv_heads=n_kv_heads, dropout=dropout)
    _check_choice("recompute", recompute, RECOMPUTE)
    s, h, a = seq_len, d_model, n_heads
    if recompute == "none":
        return sbh * (lin + score * a * s / h)
    if recompute == "selective":
        return lin * sbh
    return 2 * sbh


def _recompute_working_set(*, seq_len, micro_batch, d_model, n_heads, recompute, arch, d_ff,
                           n_kv_heads, dropout) -> float:
    """Bytes that exist only while one layer is recomputed during backward."""
    sbh, lin, score = _activation_terms(seq_len=seq_len, micro_batch=micro_batch,
                                        d_model=d_model, n_heads=n_heads, arch=arch, d_ff=d_ff,
                                        n_kv_heads=n_kv_heads, dropout=dropout)
    if recompute == "none":
        return 0.0
    scores = sbh * score * n_heads * seq_len / d_model
    if recompute == "selective":  # one layer's attention scores, rebuilt for its backward
        return scores
    return sbh * lin + scores - 2 * sbh  # full: the whole layer, less the input it kept


def training_memory(n_params: float, *, precision: str = "mixed", optimizer: str = "adamw",
                    zero_stage: int = 0, n_gpus: int = 1, activations: bool = True,
                    seq_len: int | None = None, micro_batch: int | None = None,
                    n_layer: int | None = None, d_model: int | None = None,
                    n_heads: int | None = None, recompute: str = "none", arch: str = "gpt2",
                    d_ff: int | None = None, n_kv_heads: int | None = None,
                    dropout: bool | None = None) -> dict[str, float]:
    """Training memory **per GPU** in bytes: ``weights``, ``grads``, ``optimizer``,
    ``activations`` and their ``total``, plus ``working_set`` and ``peak``.

    Model states follow :func:`bytes_per_param` (16 bytes/parameter for mixed-precision AdamW).
    ZeRO data parallelism over ``n_gpus`` (Rajbhandari et al. 2020): stage 1 shards the
    optimizer states, stage 2 also the gradients, stage 3 also the weights (PyTorch FSDP's
    ``FULL_SHARD`` is stage 3). Stage 0 is plain data parallelism: every GPU holds everything.

    Activations (per GPU, never sharded by ZeRO: each GPU processes its own ``micro_batch``)
    follow :func:`activation_bytes_per_layer` × ``n_layer``; they need ``seq_len``,
    ``micro_batch``, ``n_layer``, ``d_model`` and ``n_heads``, or ``activations=False``;
    ``arch``, ``d_ff``, ``n_kv_heads`` and ``dropout`` pass through (``arch="llama"`` for a
    Llama-style layer without dropout).

    ``working_set``: with recomputation, the backward pass rebuilds one layer at a time, and
    that layer's activations exist on top of the stored ones while its gradients are computed
    (Korthikanti et al. 2022 count what is stored; this is what exists on top): all of them for ``"full"`` (less the input it kept), its
    attention scores for ``"selective"``; 0 for ``"none"`` or ``activations=False``. ``peak`` =
    ``total + working_set`` is what must fit in the GPU (:func:`fits` compares it).
    Not counted: temporary buffers, the logits of the output layer, fragmentation, the CUDA
    context (~0.5–1 GB) — plan for 10–20 % more.

    >>> m = training_memory(7.5e9, zero_stage=1, n_gpus=64, activations=False)
    >>> round(m["total"] / 1e9, 1)
    31.4
    """
    N = _check_real("n_params", n_params)
    if isinstance(zero_stage, bool) or not isinstance(zero_stage, int):
        raise TypeError(f"zero_stage must be an int (0, 1, 2 or 3), got {type(zero_stage).__name__}")
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_stage must be one of 0, 1, 2, 3, got {zero_stage!r}")
    n = _check_int("n_gpus", n_gpus)
    if not isinstance(activations, bool):
        raise TypeError(f"activations must be a bool, got {type(activations).__name__}")
    bpp = bytes_per_param(precision, optimizer)
    out = {
        "weights": N * bpp["weights"] / (n if zero_stage >= 3 else 1),
        "grads": N * bpp["grads"] / (n if zero_stage >= 2 else 1),
        "optimizer": N * bpp["optimizer"] / (n if zero_stage >= 1 else 1),
        "activations": 0.0,
        "working_set": 0.0,
    }
    _check_choice("recompute", recompute, RECOMPUTE)
    if activations:
        shape = {"seq_len": seq_len, "micro_batch": micro_batch, "n_layer": n_layer,
                 "d_model": d_model, "n_heads": n_heads}
        missing = [k for k, v in shape.items() if v is None]
        if missing:
            raise ValueError(f"activations=True needs {', '.join(missing)} "
                             f"(or pass activations=False for model states only)")
        L = _check_int("n_layer", n_layer)
        layer = dict(seq_len=seq_len, micro_batch=micro_batch, d_model=d_model, n_heads=n_heads,
                     arch=arch, d_ff=d_ff, n_kv_heads=n_kv_heads, dropout=dropout)
        per_layer = activation_bytes_per_layer(**layer, recompute=recompute)
        scale = 2 if precision == "fp32" else 1  # the paper counts 16-bit activations
        out["activations"] = L * per_layer * scale
        out["working_set"] = _recompute_working_set(**layer, recompute=recompute) * scale
    out["total"] = out["weights"] + out["grads"] + out["optimizer"] + out["activations"]
    out["peak"] = out["total"] + out["working_set"]
    return out


def fits(memory: Mapping[str, float], gpu: str) -> bool:
    """Whether a :func:`training_memory` result fits the memory of one ``gpu``.

    Compares ``memory["peak"]`` (the stored bytes plus the recomputation working set) when the
    dict has it, else ``memory["total"]``.
    """
    if not isinstance(memory, Mapping):
        raise TypeError(f"memory must be a training_memory() dict, got {type(memory).__name__}")
    if "total" not in memory:
        raise ValueError(f"memory must have a 'total' entry (a training_memory() result), got "
                         f"keys {sorted(memory)}")
    total = _check_real("memory['total']", memory["total"], allow_zero=True)
    if "peak" in memory:
        total = _check_real("memory['peak']", memory["peak"], allow_zero=True)
    return total <= GPU_SPECS[gpu_key(gpu)]["memory_gb"] * _GB


# ----------------------------------------------------------------------------- scaling laws
def fit_power_law(x, y) -> dict[str, float]:
    """Least-squares fit of ``y = a · x^(-alpha)`` as a line in log-log space.

    The form of Kaplan et al. (2020), ``L(N) = (N_c / N)^alpha_N``, without an irreducible
    term. Returns ``{"a", "alpha", "r2"}``; ``r2`` is the coefficient of determination of
    the fit of ``log y`` on ``log x`` (1 = every point on the line).

    >>> f = fit_power_law([1, 10, 100], [4.0, 2.0, 1.0])
    >>> round(f["alpha"], 3), round(f["r2"], 3)
    (0.301, 1.0)
    """
    for name, v in (("x", x), ("y", y)):
        if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
            raise TypeError(f"{name} must be a sequence of numbers, got {type(v).__name__}")
    xs, ys = list(x), list(y)
    if len(xs) != len(ys) or len(xs) < 3:
        raise ValueError(f"x and y must have the same length >= 3, got {len(xs)} and {len(ys)}")
    for name, vals in (("x", xs), ("y", ys)):
        for v in vals:
            if _check_real(name, v, positive=False) <= 0:
                raise ValueError(f"{name} must hold positive numbers (log-log fit), got {v!r}")
    lx = [math.log(v) for v in xs]
    ly = [math.log(v) for v in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((u - mx) ** 2 for u in lx)
    if sxx == 0:
        raise ValueError("x must not be all equal")
    slope = sum((u - mx) * (v - my) for u, v in zip(lx, ly)) / sxx
    intercept = my - slope * mx
    ss_res = sum((v - (intercept + slope * u)) ** 2 for u, v in zip(lx, ly))
    ss_tot = sum((v - my) ** 2 for v in ly)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return {"a": math.exp(intercept), "alpha": -slope, "r2": r2}


def _law(law: Mapping[str, float] | None) -> dict[str, float]:
    if law is None:
        return dict(CHINCHILLA_LAW)
    if not isinstance(law, Mapping):
        raise TypeError(f"law must be a dict with keys {', '.join(CHINCHILLA_LAW)}, got "
                        f"{type(law).__name__}")
    if set(law) != set(CHINCHILLA_LAW):
        raise ValueError(f"law must have exactly the keys {', '.join(CHINCHILLA_LAW)}, got "
                         f"{', '.join(sorted(law))}")
    return {k: _check_real(f"law[{k!r}]", law[k], allow_zero=k == "E") for k in CHINCHILLA_LAW}


def chinchilla_loss(n_params: float, n_tokens: float, *,
                    law: Mapping[str, float] | None = None) -> float:
    """Predicted loss ``L(N, D) = E + A/N^α + B/D^β`` (Hoffmann et al. 2022, equation 2).

    ``law`` defaults to :data:`CHINCHILLA_LAW`, the fit printed in the paper (§3.3, appendix
    D.2: E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28; nats per token of MassiveText,
    their tokenizer — not comparable with other data or tokenizers). ``E`` is the entropy of
    text that no model removes; the two power laws are what a finite model and finite data
    leave on top. Besiroglu et al. (2024, "Chinchilla Scaling: A replication attempt") show
    that these rounded values bias the compute-optimal allocation: use the law for its shape.

    >>> round(chinchilla_loss(70e9, 1.4e12), 3)  # Chinchilla itself
    1.937
    """
    c = _law(law)
    N = _check_real("n_params", n_params)
    D = _check_real("n_tokens", n_tokens)
    return c["E"] + c["A"] / N ** c["alpha"] + c["B"] / D ** c["beta"]


def chinchilla_optimal(flops: float, *, law: Mapping[str, float] | None = None
                       ) -> dict[str, float]:
    """The ``N`` and ``D`` that minimise :func:`chinchilla_loss` at ``6·N·D = flops``.

    Hoffmann et al. 2022, equation 4: ``N_opt = G·(C/6)^a``, ``D_opt = (C/6)^b / G`` with
    ``G = (α·A / (β·B))^(1/(α+β))``, ``a = β/(α+β)``, ``b = α/(α+β)``. Returns ``n_params``,
    ``n_tokens``, ``tokens_per_param`` and the predicted ``loss``.
    """
    c = _law(law)
    C = _check_real("flops", flops)
    al, be = c["alpha"], c["beta"]
    G = (al * c["A"] / (be * c["B"])) ** (1.0 / (al + be))
    n = G * (C / 6.0) ** (be / (al + be))
    d = (C / 6.0) ** (al / (al + be)) / G
    return {"n_params": n, "n_tokens": d, "tokens_per_param": d / n,
            "loss": chinchilla_loss(n, d, law=c)}


def isoflop_optimum(n_params, losses) -> dict[str, float]:
    """Fit a parabola to an IsoFLOP profile, loss against ``log N`` at one compute budget.

    Hoffmann et al. 2022, approach 2 (§3.2): train models of several sizes with the same FLOPs,
    fit ``loss = c₀ + c₁·ln N + c₂·(ln N)²``, and read the compute-optimal size at the vertex,
    ``N_opt = exp(−c₁ / 2c₂)``. Returns ``n_opt``, ``loss_opt`` (the parabola's minimum) and
    ``curvature`` (``c₂``: positive for a valley). Raises ``ValueError`` when the points do not
    make a valley (``c₂ <= 0``), or when the vertex lies outside the sizes tried (an optimum
    extrapolated beyond the data is not measured).

    >>> f = isoflop_optimum([1e6, 1e7, 1e8], [3.0, 2.5, 3.0])
    >>> f"{f['n_opt']:.0e}"
    '1e+07'
    """
    for name, v in (("n_params", n_params), ("losses", losses)):
        if isinstance(v, (str, bytes)) or not isinstance(v, Iterable):
            raise TypeError(f"{name} must be a sequence of numbers, got {type(v).__name__}")
    ns, ls = list(n_params), list(losses)
    if len(ns) != len(ls) or len(ns) < 3:
        raise ValueError(f"n_params and losses must have the same length >= 3, got {len(ns)} "
                         f"and {len(ls)}")
    ns = [_check_real("n_params", v) for v in ns]
    ls = [_check_real("losses", v, positive=False) for v in ls]
    if len(set(ns)) < 3:
        raise ValueError("n_params must hold at least 3 different sizes")
    x = [math.log(v) for v in ns]
    # least squares for c0 + c1 x + c2 x², centred for conditioning: normal equations, 3 × 3
    mx = sum(x) / len(x)
    u = [v - mx for v in x]
    S = [sum(t ** k for t in u) for k in range(5)]
    T = [sum(y * t ** k for t, y in zip(u, ls)) for k in range(3)]
    M = [[S[0], S[1], S[2]], [S[1], S[2], S[3]], [S[2], S[3], S[4]]]

    def det(m):
        return (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))

    d = det(M)
    coef = []
    for k in range(3):  # Cramer's rule
        Mk = [row[:] for row in M]
        for i in range(3):
            Mk[i][k] = T[i]
        coef.append(det(Mk) / d)
    c0, c1, c2 = coef
    if c2 <= 0:
        raise ValueError(f"the losses do not make a valley in log N (curvature {c2:.3g} <= 0): "
                         f"try sizes on both sides of the optimum")
    vertex = -c1 / (2 * c2)
    if not min(u) <= vertex <= max(u):
        raise ValueError(f"the parabola's minimum lies outside the sizes tried (N ≈ "
                         f"{math.exp(vertex + mx):.3g}, tried {min(ns):.3g}–{max(ns):.3g}): "
                         f"add sizes beyond it")
    return {"n_opt": math.exp(vertex + mx), "loss_opt": c0 - c1 * c1 / (4 * c2),
            "curvature": c2}


# ----------------------------------------------------------------------------- measured
def saved_activation_bytes(model, idx, targets, *, checkpoint: bool = False) -> int:
    """Bytes of the tensors autograd saves for backward in one forward pass of our GPT.

    Measured exactly with :func:`torch.autograd.graph.saved_tensors_hooks`: every tensor
    saved for backward passes through the hook; we count each storage once (a tensor saved
    by two ops is one buffer) and leave out the parameters (they exist anyway). With
    ``checkpoint=True`` every block runs under :func:`torch.utils.checkpoint.checkpoint`
    (``use_reentrant=True``: the block's forward runs without autograd and only its input is
    saved; backward re-runs it). Returns the bytes; also runs backward so the graph is freed.
    """
    import torch
    from torch.utils.checkpoint import checkpoint as ckpt

    from llmcourse.model import GPT

    if not isinstance(model, GPT):
        raise TypeError(f"model must be an llmcourse.model.GPT, got {type(model).__name__}")
    model._check_idx(idx)
    model._check_targets(targets, idx)
    if not isinstance(checkpoint, bool):
        raise TypeError(f"checkpoint must be a bool, got {type(checkpoint).__name__}")
    idx = idx if idx.dtype in (torch.long, torch.int32) else idx.long()  # what nn.Embedding takes
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in param_storages:
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    tr = model.transformer
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        pos = torch.arange(idx.size(1), device=idx.device)
        x = tr.drop(tr.wte(idx) + tr.wpe(pos))
        for block in tr.h:
            if checkpoint:
                x = ckpt(lambda inp, blk=block: blk(inp)[0], x, use_reentrant=True)
            else:
                x = block(x)[0]
        logits = model.lm_head(tr.ln_f(x))
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)),
                                                 targets.reshape(-1).long())
    loss.backward()
    return int(sum(seen.values()))


_PEAK_SCRIPT = """
import json, resource, sys
import torch
from llmcourse.model import GPT, GPTConfig
from llmcourse.scaling import saved_activation_bytes
a = json.loads(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(1)
net = GPT(GPTConfig(**a["config"]))
idx = torch.randint(0, net.config.vocab_size, (a["batch_size"], a["seq_len"]))
tgt = torch.randint(0, net.config.vocab_size, (a["batch_size"], a["seq_len"]))
# warm up on a tiny batch: imports, thread pools and kernel set-up are not the step's memory
saved_activation_bytes(net, idx[:1, :8], tgt[:1, :8], checkpoint=a["checkpoint"])
net.zero_grad(set_to_none=True)
def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])


try:  # Linux: reset the high-water mark to the current RSS, then read it after the step
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before, unit = status_kib("VmRSS"), 1024
    peak = lambda: status_kib("VmHWM")
except OSError:  # elsewhere: the process's maximum RSS (bytes on macOS)
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before, unit = peak(), 1 if sys.platform == "darwin" else 1024
saved = saved_activation_bytes(net, idx, tgt, checkpoint=a["checkpoint"])
print(json.dumps({"peak_increase": (peak() - before) * unit, "saved": saved}))
"""


def peak_rss_of_training_step(config: dict, *, batch_size: int, seq_len: int,
                              checkpoint: bool = False) -> dict[str, int]:
    """Measure how much one forward + backward of our GPT raises the process's peak memory.

    The step runs in a fresh Python process (so earlier allocations do not hide the peak), on
    one thread, with glibc's *dynamic* mmap threshold switched off (``MALLOC_MMAP_THRESHOLD_``):
    large buffers then go back to the OS when freed, and the peak resident set size is the
    peak of live memory — the same number on every run. Returns ``{"peak_increase": bytes,
    "saved": bytes saved for backward}`` (see :func:`saved_activation_bytes`). On Linux the
    peak is the kernel's high-water mark (``VmHWM``), reset just before the step (``ru_maxrss``
    would not do: Linux carries it over from the parent process); elsewhere the process's
    maximum RSS from :mod:`resource` (less exact: other allocators keep freed memory).
    """
    import json
    import os
    import subprocess
    import sys

    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict of GPTConfig fields, got {type(config).__name__}")
    batch_size = _check_int("batch_size", batch_size)
    seq_len = _check_int("seq_len", seq_len)
    if not isinstance(checkpoint, bool):
        raise TypeError(f"checkpoint must be a bool, got {type(checkpoint).__name__}")
    from llmcourse.model import GPTConfig

    cfg = GPTConfig(**config)  # validate here, with GPTConfig's own messages
    if seq_len > cfg.block_size:
        raise ValueError(f"seq_len {seq_len} exceeds block_size {cfg.block_size}")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0",
               OMP_NUM_THREADS="1")
    args = json.dumps({"config": config, "batch_size": batch_size, "seq_len": seq_len,
                       "checkpoint": bool(checkpoint)})
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, args], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])



from llmcourse.inference.bandwidth import decode_tokens_per_s  # noqa: E402,F401 - chapter 12: decoding's bandwidth bound
