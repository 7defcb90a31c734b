"""What a run reports and how it is measured: the ``metrics.jsonl`` records (appended as the
run goes, read back by :func:`read_metrics`, trimmed on resume so no step is logged twice),
tokens/s over training time only (evaluating and saving left out), MFU from the model's FLOPs
per token and this GPU's peak (:func:`peak_flops_here`), and the memory high-water mark.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.nn as nn

from llmcourse.train.distributed import _unwrap


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a ``metrics.jsonl`` file (a missing file reads as no records)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line being written right now
                continue
    return out


def _append_record(out_dir: Path, record: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def _drop_metrics_after(out_dir: Path, step: int) -> None:
    """On resume, forget the logged records of steps the run will redo (no duplicates)."""
    path = out_dir / "metrics.jsonl"
    if not path.exists():
        return
    keep = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    with tempfile.NamedTemporaryFile("w", dir=out_dir, delete=False, suffix=".tmp") as tmp:
        tmp.writelines(json.dumps(r) + "\n" for r in keep)
    os.replace(tmp.name, path)


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB → MiB


def _flops_per_token(model: nn.Module, tokens_per_row: int | None) -> float:
    inner = _unwrap(model)
    if hasattr(inner, "flops_per_token"):
        try:
            return float(inner.flops_per_token(tokens_per_row) if tokens_per_row
                         else inner.flops_per_token())
        except (TypeError, ValueError):
            return float(inner.flops_per_token())
    return 6.0 * sum(p.numel() for p in inner.parameters())


def peak_flops_here(device: torch.device, precision: str) -> float | None:
    """Peak FLOP/s of this GPU in this precision (fp32 counts as tf32 on GPUs that have it), or
    ``None`` on CPU/MPS or an unlisted GPU."""
    if device.type != "cuda":
        return None
    from llmcourse.hardware import current_gpu, peak_flops

    gpu = current_gpu()
    if gpu is None:
        return None
    for p in ((precision,) if precision != "fp32" else ("tf32", "fp32")):
        try:
            return peak_flops(gpu, p)
        except ValueError:
            continue
    return None


def _progress_bar(total: int, initial: int):
    """A ``tqdm.auto`` bar over optimiser steps."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True)


class _Throughput:
    """Tokens/s, MFU and peak memory of the training time between two logged steps."""

    def __init__(self, device: torch.device, precision: str, world_size: int) -> None:
        self.device, self.world_size = device, world_size
        self.peak = peak_flops_here(device, precision)
        self.flops_per_token: float | None = None  # computed at the first record
        self.start()

    def start(self) -> None:
        """Open a window: count tokens and time from now."""
        self.t0, self.tokens = time.perf_counter(), 0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the time spent inside this context out of the window."""
        t = time.perf_counter()
        yield
        self.t0 += time.perf_counter() - t

    def close(self, model: nn.Module) -> dict:
        """``tokens_per_s``, ``mfu`` (``None`` without a known peak) and ``memory_mb`` of the
        window; a new window opens."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - self.t0
        tps = self.tokens / dt if dt > 0 else None
        if self.flops_per_token is None:
            cfg = getattr(_unwrap(model), "config", None)
            self.flops_per_token = _flops_per_token(model, getattr(cfg, "block_size", None))
        mfu = (tps * self.flops_per_token / (self.peak * self.world_size)
               if (tps and self.peak) else None)
        out = {"tokens_per_s": tps, "mfu": mfu, "memory_mb": round(_memory_mb(self.device), 1)}
        self.start()
        return out
