"""Which number format a run computes in: :func:`resolve_precision` turns ``auto`` into bf16,
fp16 (with a GradScaler) or fp32 for the device, :func:`autocast_context` applies it,
:func:`fastest_precision` measures the choice on this machine instead of assuming it, and on
CUDA the fp32 matmuls left run on TF32 tensor cores.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn as nn

from llmcourse.hardware import native_bf16
from llmcourse.train.batches import _to_device, forward_loss
from llmcourse.train.config import PRECISIONS


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on GPUs with bf16, ``fp16`` on older GPUs (T4), ``fp32`` elsewhere.

    On CPU fp32 is the choice. bf16 speed there depends on the chip: measured on the course's
    2-core AMD EPYC (AVX512-BF16), one thread, a 0.1–1 M-parameter GPT: bf16 15–20% faster;
    CPUs without native bf16 emulate it and are slower. fp32 keeps CPU runs exact and portable
    across machines, which is what CPU profiles are for; to choose by speed instead, measure
    with :func:`fastest_precision` and pass what it returns (chapter 07 does it on your
    machine). Asking for fp16 on CPU is an error.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if native_bf16() else "fp16"
        return "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision='fp16' needs a CUDA GPU (GradScaler); device is {device.type}")
    return precision


def fastest_precision(model: nn.Module, batch: Any, *,
                      device: torch.device | str | None = None,
                      candidates: Iterable[str] = ("fp32", "bf16"),
                      steps: int = 3) -> tuple[str, dict[str, float]]:
    """Time a training step (forward, backward, AdamW) in each precision; return the fastest.

    ``batch`` is one batch as the :class:`Trainer` takes it. For CPUs, where the answer
    depends on the chip (bf16 is faster with AVX512-BF16/AMX and slower where it is
    emulated): ``prec, times = fastest_precision(model, (x, y))``, then
    ``TrainConfig(precision=prec)``. ``auto`` stays fp32 on CPU so that runs are exact and the
    same on every machine; this is the measured alternative. The model is copied (its weights
    and the global RNG are left as they were); ``times`` holds seconds per step.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(batch, (tuple, list, dict)):
        raise TypeError("batch must be an (inputs, targets) tuple or a dict, "
                        f"got {type(batch).__name__}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    candidates = tuple(candidates)
    if not candidates:
        raise ValueError("candidates must name at least one precision")
    times: dict[str, float] = {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for precision in candidates:
            precision = resolve_precision(precision, device)
            m = copy.deepcopy(model).to(device).train()
            opt = torch.optim.AdamW(m.parameters(), lr=1e-6)
            on_device = _to_device(batch, device)
            for i in range(steps + 1):  # the first step warms up (allocations, kernel choice)
                if i == 1:
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    t0 = time.perf_counter()
                with autocast_context(precision, device):
                    loss = forward_loss(m, on_device)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[precision] = (time.perf_counter() - t0) / steps
    return min(times, key=times.get), times


def autocast_context(precision: str, device: torch.device):
    """The autocast context for ``precision`` (a no-op for fp32)."""
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a str, got {type(precision).__name__}")
    if precision not in ("fp32", "bf16", "fp16"):  # "fp8" is not fp16; "auto": resolve it first
        raise ValueError("precision must be 'fp32', 'bf16' or 'fp16' (resolve 'auto' with "
                         f"resolve_precision), got {precision!r}")
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _fast_fp32_matmuls(device: torch.device) -> None:
    """On CUDA, let fp32 matmuls use TF32 tensor cores (Ampere+; a no-op on older GPUs):
    ``torch.set_float32_matmul_precision("high")``, the API that replaces the legacy
    ``torch.backends.cuda.matmul.allow_tf32`` flag (PyTorch warns when the two are mixed).
    cuDNN convolutions use TF32 by default. Nothing changes on other devices."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")
