"""Checkers for chapter 08 (scaling to 7B): model-state memory under ZeRO, GPU-hours."""

from __future__ import annotations

from collections.abc import Callable

from llmcourse.exercises import Case, check_fn, run_checks


def _states(n: float, stage: int, gpus: int) -> float:
    # mixed-precision AdamW: 2 (bf16 weights) + 2 (grads) + 12 (fp32 master, m, v)
    w = 2 * n / (gpus if stage >= 3 else 1)
    g = 2 * n / (gpus if stage >= 2 else 1)
    o = 12 * n / (gpus if stage >= 1 else 1)
    return float(w + g + o)


def check_model_state_bytes(fn: Callable[[float, int, int], float]) -> bool:
    """``fn(n_params, zero_stage, n_gpus)`` → bytes per GPU of weights + grads + Adam states
    for mixed-precision AdamW (16 bytes/parameter before sharding)."""
    check_fn(fn)
    cases = [
        Case((1e9, 0, 1), _states(1e9, 0, 1),
             hint="mixed-precision AdamW keeps 2 + 2 + 12 = 16 bytes per parameter"),
        Case((1e9, 0, 8), _states(1e9, 0, 8),
             hint="stage 0 (plain data parallelism): every GPU holds everything"),
        Case((7.5e9, 1, 64), _states(7.5e9, 1, 64),
             hint="stage 1 shards only the 12 bytes/param of optimizer states (ZeRO: 31.4 GB)"),
        Case((7.5e9, 2, 64), _states(7.5e9, 2, 64),
             hint="stage 2 also shards the 2 bytes/param of gradients (ZeRO: 16.6 GB)"),
        Case((7.5e9, 3, 64), _states(7.5e9, 3, 64),
             hint="stage 3 shards everything: 16 bytes/param divided by the GPUs (1.9 GB)"),
    ]
    return run_checks(fn, cases, name="model_state_bytes", atol=1.0)


def check_gpu_hours(fn: Callable[[float, float, float, float], float]) -> bool:
    """``fn(n_params, n_tokens, peak_flops, mfu)`` → GPU-hours with the 6·N·D rule."""
    check_fn(fn)
    def hours(n, d, peak, mfu):
        return 6.0 * n * d / (peak * mfu) / 3600.0

    cases = [
        Case((1e9, 1e10, 1e12, 1.0), hours(1e9, 1e10, 1e12, 1.0),
             hint="training costs 6 FLOPs per parameter per token (2 forward, 4 backward)"),
        Case((6.74e9, 2e12, 312e12, 0.4), hours(6.74e9, 2e12, 312e12, 0.4),
             hint="divide by the achieved FLOP/s: peak × MFU, then seconds → hours (/3600)"),
        Case((124e6, 2.48e9, 65e12, 0.3), hours(124e6, 2.48e9, 65e12, 0.3)),
    ]
    return run_checks(fn, cases, name="gpu_hours", atol=1e-6 * hours(6.74e9, 2e12, 312e12, 0.4))
