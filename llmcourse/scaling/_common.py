"""The constants and argument checks the scaling modules share."""

from __future__ import annotations

import math
from numbers import Real

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


def _check_shape(arch, d_model, n_heads, n_kv_heads, d_ff) -> tuple[int, int, int, int, bool]:
    """``(d_model, n_heads, n_kv_heads, d_ff, is_llama)`` checked: heads divide the width,
    key/value heads divide the heads, ``d_ff`` required for Llama (else 4·d_model)."""
    _check_choice("arch", arch, ARCHITECTURES)
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
    return d, H, kv, _check_int("d_ff", d_ff), llama
