"""What a run reports and how it is measured: the ``metrics.jsonl`` records (appended as the
run goes, read back by :func:`read_metrics`, trimmed on resume so no step is logged twice),
tokens/s over training time only (evaluating and saving left out), MFU from the model's FLOPs
per token and this GPU's peak (:func:`peak_flops_here`), and the memory high-water mark.

How the throughput is counted (per logging window, summed over the ranks):

* tokens are the input tokens processed, padding left out (:mod:`llmcourse.train.tokens`);
* FLOPs are, per batch, ``tokens · model.flops_per_token(T)`` with ``T`` the batch's own
  sequence length (the attention term grows with it); a model without ``flops_per_token`` gets
  ``6·N``, ``N`` its non-embedding parameters (an output head tied to the embedding counts: it
  is a matmul), and no attention term;
* MFU is FLOPs/s over the peak of the GPUs in use: distinct GPUs, not processes, in case ranks
  share one; ``None`` on CPU/MPS and on a GPU :mod:`llmcourse.hardware` does not list (logged
  once, with the reason);
* the first window of a compiled model (``TrainConfig.compile``) holds the compilation, so its
  ``tokens_per_s`` and ``mfu`` are ``None``;
* the window's time ends with one ``torch.cuda.synchronize``; the steps inside it do not wait
  for the GPU (one host read per step, the loss and gradient norm together).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from llmcourse.train.distributed import DistInfo, _gpu_count, _unwrap
from llmcourse.train.tokens import _processed_tokens, _seq_len

logger = logging.getLogger(__name__)
_REPORTED: set[str] = set()  # reasons for a missing MFU already logged


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


def _emit(trainer: Any, record: dict, records: list[dict]) -> None:
    """Keep ``record`` (this call's ``records``, the trainer's history); on rank 0 append it to
    ``metrics.jsonl`` and hand it to the callbacks."""
    records.append(record)
    trainer.state.history.append(record)
    if not trainer.dist.is_main:
        return
    if trainer.out_dir is not None:
        _append_record(trainer.out_dir, record)
    for cb in trainer.callbacks:
        cb(record)


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


def _non_embedding_params(model: nn.Module) -> int:
    """Parameters outside ``nn.Embedding`` tables, plus any ``nn.Linear`` weight tied to one
    (a tied output head), each counted once."""
    embedding = {id(p) for m in model.modules() if isinstance(m, nn.Embedding)
                 for p in m.parameters()}
    n = sum(p.numel() for p in model.parameters() if id(p) not in embedding)
    heads = {id(m.weight): m.weight.numel() for m in model.modules()
             if isinstance(m, nn.Linear) and id(m.weight) in embedding}
    return n + sum(heads.values())


def _flops_per_token_fn(model: nn.Module) -> Callable[[int | None], float]:
    """``T → training FLOPs per token`` of ``model`` at sequence length ``T`` (``None``: the
    model's default): its ``flops_per_token``, else ``6·N`` non-embedding parameters."""
    inner = _unwrap(model)
    if hasattr(inner, "flops_per_token"):
        def fpt(seq_len: int | None) -> float:
            try:
                return float(inner.flops_per_token(seq_len) if seq_len else
                             inner.flops_per_token())
            except (TypeError, ValueError):
                return float(inner.flops_per_token())
        return fpt
    n = _non_embedding_params(inner)
    return lambda seq_len: 6.0 * n


def _report_once(reason: str) -> None:
    if reason not in _REPORTED:
        _REPORTED.add(reason)
        logger.warning(reason)


def peak_flops_here(device: torch.device | str, precision: str) -> float | None:
    """Peak FLOP/s of this GPU in this precision (fp32 counts as tf32 on GPUs that have it), or
    ``None`` on CPU/MPS, on a GPU :mod:`llmcourse.hardware` does not list, or in a precision
    the GPU has no peak for (the last two logged once, with the reason)."""
    if isinstance(device, str):
        device = torch.device(device)
    if not isinstance(device, torch.device):
        raise TypeError(f"device must be a torch.device or str, got {type(device).__name__}")
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a str, got {type(precision).__name__}")
    if precision not in ("fp32", "tf32", "bf16", "fp16"):
        raise ValueError(f"precision must be one of fp32, tf32, bf16, fp16; got {precision!r}")
    if device.type != "cuda":
        return None
    from llmcourse.hardware import GPU_SPECS, current_gpu, peak_flops

    gpu = current_gpu()
    if gpu is None:
        _report_once(f"MFU not reported: GPU {torch.cuda.get_device_name(device)!r} is not in "
                     f"llmcourse.hardware.GPU_SPECS ({', '.join(GPU_SPECS)}); add its "
                     "data-sheet peak FLOP/s there")
        return None
    for p in ((precision,) if precision != "fp32" else ("tf32", "fp32")):
        try:
            return peak_flops(gpu, p)
        except ValueError:
            continue
    _report_once(f"MFU not reported: {gpu} has no {precision} peak in llmcourse.hardware")
    return None


def _progress_bar(total: int, initial: int):
    """A ``tqdm.auto`` bar over optimiser steps."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", dynamic_ncols=True)


def _progress(bar: Any, out: dict) -> None:
    """Advance the progress bar (``None``: none shown) by a step, showing its loss and lr."""
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{out['loss']:.3f}", lr=f"{out['lr']:.2e}", refresh=False)


class _Throughput:
    """Tokens/s, MFU and peak memory of the training time between two logged steps (see the
    module docstring for what is counted)."""

    def __init__(self, model: nn.Module, device: torch.device, precision: str, dist: DistInfo,
                 compiled: bool = False) -> None:
        self.device, self.dist = device, dist
        self.peak = peak_flops_here(device, precision)
        self.gpus = _gpu_count(device, dist)  # a collective under DDP on CUDA (every rank)
        self._fpt, self._fpt_at = _flops_per_token_fn(model), {}
        self.skip_window = compiled  # the first window after torch.compile holds compilation
        self.start()

    def start(self, reset_memory: bool = False) -> None:
        """Open a window: count tokens, FLOPs and time from now (``reset_memory``: and the GPU
        memory high-water mark, as :meth:`Trainer.fit` does when it starts)."""
        if reset_memory and self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.t0, self.tokens, self.flops = time.perf_counter(), 0, 0.0

    def count(self, batch: Any) -> None:
        """Add a (this rank's) micro-batch's processed tokens and their FLOPs; no host sync."""
        n, seq_len = _processed_tokens(batch), _seq_len(batch)
        if seq_len not in self._fpt_at:
            self._fpt_at[seq_len] = self._fpt(seq_len)
        self.tokens = self.tokens + n
        self.flops = self.flops + n * self._fpt_at[seq_len]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the time spent inside this context out of the window."""
        t = time.perf_counter()
        yield
        self.t0 += time.perf_counter() - t

    def close(self) -> dict:
        """``tokens_per_s``, ``mfu`` (``None`` without a known peak, and both ``None`` in the
        first window of a compiled model) and ``memory_mb`` of the window; a new window opens.
        Under DDP a collective: every rank closes its window at the same step."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - self.t0
        tokens, flops = float(self.tokens), float(self.flops)  # once per window
        if self.dist.enabled:  # the window's tokens and FLOPs of every rank
            import torch.distributed as tdist

            both = torch.tensor([tokens, flops], dtype=torch.float64, device=self.device)
            tdist.all_reduce(both, op=tdist.ReduceOp.SUM)
            tokens, flops = both.tolist()
        tps = tokens / dt if dt > 0 else None
        mfu = flops / dt / (self.peak * self.gpus) if (tps and self.peak) else None
        if self.skip_window:
            tps = mfu = None
            self.skip_window = False
        out = {"tokens_per_s": tps, "mfu": mfu, "memory_mb": round(_memory_mb(self.device), 1)}
        self.start()
        return out
