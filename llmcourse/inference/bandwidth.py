"""Decoding is memory-bound: the bandwidth bound on tokens per second.

One decoding step of a batch of ``b`` sequences reads every weight once (shared by the batch)
and each sequence's KV cache, and produces ``b`` tokens, while doing only ``2·N`` FLOPs per
token. So

    step time >= (weight bytes + b · KV bytes per sequence) / bandwidth
    tokens/s  <= b · bandwidth / (weight bytes + b · KV bytes per sequence)

and, once the batch is large enough, ``step time >= b · 2·N / peak FLOP/s`` takes over (the
roofline). A 7B model in bf16 is ~13.5 GB: an H100's 3.35 TB/s reads it ~250 times a second,
so batch-1 decoding cannot exceed ~250 tokens/s however fast its tensor cores are.

Bandwidths: the vendors' data sheets (HBM/GDDR peak; measured copies reach 80-90 %).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from llmcourse._checks import check_int, check_number
from llmcourse.hardware import gpu_key, peak_flops

__all__ = [
    "GPU_BANDWIDTH",
    "LLAMA2_7B",
    "best_time",
    "clock_for",
    "decode_bytes_per_step",
    "decode_example_7b",
    "decode_tokens_per_s",
    "fastest_times",
    "kv_cache_bytes",
    "measure_bandwidth",
    "memory_bandwidth",
]

# Peak memory bandwidth in bytes/s (data sheets): T4 GDDR6 320 GB/s, L4 GDDR6 300 GB/s,
# A100 80GB SXM HBM2e 2,039 GB/s, A100 40GB 1,555 GB/s, H100 SXM5 HBM3 3.35 TB/s,
# H100 PCIe HBM2e 2.0 TB/s, H200 HBM3e 4.8 TB/s, H100 NVL HBM3 3.9 TB/s, H200 NVL 4.8 TB/s,
# GH200 HBM3 4.0 TB/s (96 GB) and HBM3e 4.9 TB/s (144 GB).
GPU_BANDWIDTH: dict[str, float] = {
    "T4": 320e9, "L4": 300e9, "A100": 2.039e12, "A100-40GB": 1.555e12,
    "H100-SXM": 3.35e12, "H100-PCIe": 2.0e12, "H100-NVL": 3.9e12, "H200": 4.8e12,
    "H200-NVL": 4.8e12, "GH200": 4.0e12, "GH200-144GB": 4.9e12,
}

# Llama-2-7B (Touvron et al. 2023): 6,738,415,616 parameters (llmcourse.scaling.count_params),
# 32 layers, 32 heads of 128 (no grouped-query attention at 7B), context 4096.
LLAMA2_7B = dict(n_params=6_738_415_616, n_layer=32, n_kv_heads=32, head_dim=128,
                 max_context=4096)

# bytes per weight of the schemes in the worked example; int4 with one float16 scale per
# group of 128 (GPTQ/AWQ style) adds 2/128 byte per weight
EXAMPLE_SCHEMES: dict[str, float] = {"bf16": 2.0, "int8": 1.0, "int4-g128": 0.5 + 2 / 128}


def _positive(name: str, value: object) -> float:
    return check_number(name, value, min=0.0, min_open=True)


def _as_device(device: object) -> torch.device:
    """``device`` (a str or torch.device) as a torch.device, or a TypeError/ValueError."""
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device must name a torch device, got {device!r}") from err


def clock_for(device: str | torch.device) -> Callable[[], float]:
    """The clock to time work on ``device`` with, in seconds.

    On a CPU with torch on one thread (``torch.get_num_threads() == 1``, as under ``pytest -n``)
    every kernel runs on the calling thread, so ``time.thread_time`` -- the CPU time of this
    thread -- measures the work and not the other processes that share the core (a wall clock
    there counts whatever ran while we were descheduled). Otherwise ``time.perf_counter``: with
    several threads, or on a GPU (synchronise before reading it: kernels run asynchronously).
    """
    device = _as_device(device)
    if device.type == "cpu" and torch.get_num_threads() == 1:
        return time.thread_time
    return time.perf_counter


def fastest_times(steps: dict, rounds: int, device: str | torch.device) -> dict:
    """``{key: seconds}``: the fastest of ``rounds`` timed calls of each ``steps[key]()``, on
    :func:`clock_for`'s clock, after a warm-up round that is not counted.

    The steps are timed in turn, round by round (round r of every step, then round r + 1), so a
    burst of other work on the machine slows all of them alike instead of the one being timed
    at that moment. On CUDA the device is synchronised before and after each call (kernels run
    asynchronously).
    """
    if not isinstance(steps, dict) or not steps or not all(callable(f) for f in steps.values()):
        raise TypeError("steps must be a non-empty dict of callables")
    r = check_int("rounds", rounds, min=1)
    device = _as_device(device)
    clock = clock_for(device)
    fastest = dict.fromkeys(steps, math.inf)
    for i in range(r + 1):  # round 0 is the warm-up
        for key, fn in steps.items():
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = clock()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:
                fastest[key] = min(fastest[key], clock() - t0)
    return fastest


def best_time(fn, repeats: int, device: str | torch.device) -> float:
    """The fastest of ``repeats`` timed calls of ``fn()`` in seconds, after one warm-up call
    (:func:`fastest_times` of one step)."""
    return fastest_times({"fn": fn}, repeats, device)["fn"]


def memory_bandwidth(gpu: str) -> float:
    """Peak memory bandwidth (bytes/s) of a GPU named as :func:`llmcourse.hardware.gpu_key`
    accepts (``"H100"``, ``"A100"``, ``"NVIDIA H100 80GB HBM3"``, ...)."""
    return GPU_BANDWIDTH[gpu_key(gpu)]


def kv_cache_bytes(*, n_layer: int, n_kv_heads: int, head_dim: int, context_len: int,
                   batch_size: int = 1, bytes_per_value: float = 2) -> float:
    """Bytes of the KV cache: ``2 (K and V) · layers · kv heads · head dim · tokens · batch ·
    bytes per value``. Llama-2-7B in bf16: 0.5 MiB per token, 2 GiB at 4096 tokens."""
    L = check_int("n_layer", n_layer, min=1)
    H = check_int("n_kv_heads", n_kv_heads, min=1)
    D = check_int("head_dim", head_dim, min=1)
    T = check_int("context_len", context_len, min=0)
    B = check_int("batch_size", batch_size, min=1)
    return 2 * L * H * D * T * B * _positive("bytes_per_value", bytes_per_value)


def decode_bytes_per_step(weight_bytes: float, *, batch_size: int = 1,
                          kv_bytes_per_seq: float = 0.0) -> float:
    """Bytes one decoding step reads: the weights once plus each sequence's KV cache."""
    b = check_int("batch_size", batch_size, min=1)
    kv = check_number("kv_bytes_per_seq", kv_bytes_per_seq, min=0.0)
    return _positive("weight_bytes", weight_bytes) + b * kv


def decode_tokens_per_s(weight_bytes: float, bandwidth: float, *, batch_size: int = 1,
                        kv_bytes_per_seq: float = 0.0, flops_per_token: float | None = None,
                        peak_flops_per_s: float | None = None) -> float:
    """Upper bound on generated tokens/s (all ``batch_size`` sequences together).

    ``b · bandwidth / (weight_bytes + b · kv_bytes_per_seq)``; with ``flops_per_token`` (about
    ``2·N``) and ``peak_flops_per_s`` the step time is also at least ``b · flops / peak``
    (the roofline's compute roof). Divide by ``batch_size`` for the rate of one sequence.
    """
    bw = _positive("bandwidth", bandwidth)
    b = check_int("batch_size", batch_size, min=1)
    step = decode_bytes_per_step(weight_bytes, batch_size=b, kv_bytes_per_seq=kv_bytes_per_seq) / bw
    if (flops_per_token is None) != (peak_flops_per_s is None):
        raise ValueError("give both flops_per_token and peak_flops_per_s, or neither")
    if flops_per_token is not None:
        compute = b * _positive("flops_per_token", flops_per_token) / _positive(
            "peak_flops_per_s", peak_flops_per_s)
        step = max(step, compute)
    return b / step


def decode_example_7b(gpu: str = "H100-SXM", *, batch_size: int = 1, context_len: int = 0
                      ) -> list[dict]:
    """The worked example: Llama-2-7B decoding on ``gpu``, one row per weight format.

    Each row: ``scheme``, ``bytes_per_weight``, ``weight_gb``, ``kv_gb`` (bf16 cache of
    ``batch_size`` sequences of ``context_len`` tokens), ``tokens_per_s`` (the bandwidth bound
    for the batch), ``tokens_per_s_compute`` (the bf16 compute roof, ``2·N`` FLOPs a token).
    Every weight is counted at the scheme's size (embeddings included: an approximation).
    On an H100 SXM at batch 1: bf16 13.5 GB -> ~249 tokens/s, int8 ~497, int4 ~963.
    """
    bw = memory_bandwidth(gpu)
    b = check_int("batch_size", batch_size, min=1)
    m = LLAMA2_7B
    kv = kv_cache_bytes(n_layer=m["n_layer"], n_kv_heads=m["n_kv_heads"],
                        head_dim=m["head_dim"], context_len=context_len)
    compute = peak_flops(gpu, "bf16") / (2 * m["n_params"])  # tokens/s the tensor cores allow
    rows = []
    for scheme, bpw in EXAMPLE_SCHEMES.items():
        w = m["n_params"] * bpw
        rows.append(dict(scheme=scheme, bytes_per_weight=bpw, weight_gb=w / 1e9,
                         kv_gb=b * kv / 1e9,
                         tokens_per_s=decode_tokens_per_s(w, bw, batch_size=b,
                                                          kv_bytes_per_seq=kv),
                         tokens_per_s_compute=compute))
    return rows


def measure_bandwidth(n_bytes: int = 256 * 2**20, repeats: int = 5,
                      device: str | torch.device = "cpu") -> dict[str, float]:
    """Measured memory bandwidth (bytes/s, best of ``repeats``) on ``device``.

    ``read``: ``x.sum()`` over an ``n_bytes`` float32 tensor (reads ``n_bytes``);
    ``copy``: ``y.copy_(x)`` (reads and writes ``n_bytes``: counted as ``2·n_bytes``).
    Use a tensor much larger than the last-level cache (the default, 256 MiB).
    """
    n = check_int("n_bytes", n_bytes, min=4 * 1024)
    r = check_int("repeats", repeats, min=1)
    device = _as_device(device)
    x = torch.ones(n // 4, dtype=torch.float32, device=device)
    y = torch.empty_like(x)

    t = fastest_times({"read": lambda: x.sum(), "copy": lambda: y.copy_(x)}, r, device)
    nbytes = x.nbytes
    return {"read": nbytes / t["read"], "copy": 2 * nbytes / t["copy"], "n_bytes": float(nbytes)}
