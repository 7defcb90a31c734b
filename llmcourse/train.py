"""A small training engine: fast on GPUs, exact on CPUs, the same code on one or many devices.

The whole API is :class:`TrainConfig` + :class:`Trainer`::

    from llmcourse.train import TrainConfig, Trainer

    cfg = TrainConfig(max_steps=200, lr=3e-3, warmup_steps=20, out_dir="runs/demo")
    trainer = Trainer(model, cfg, train_data=get_batch, val_data=get_val_batch)
    trainer.fit()                    # or trainer.fit(until=100), then later Trainer(..., resume=True)

**The model** is any ``nn.Module`` whose forward returns either ``(logits, loss)`` (a tuple or
list whose second item is the scalar loss, like :class:`llmcourse.model.GPT`), an object with a
``.loss`` attribute (Hugging Face ``ModelOutput``), or a dict with a ``"loss"`` key.

**A batch** is either a tuple/list ``(inputs, targets)`` → ``model(inputs, targets)``, or a dict of
tensors (``input_ids``, ``labels``, ``attention_mask`` …) → ``model(**batch)``. Tensors are moved
to the trainer's device. Tokens per batch (for tokens/s and MFU) are ``inputs.numel()`` or
``batch["input_ids"].numel()``.

**The data** (``train_data`` / ``val_data``) is either

* a callable ``get_batch(generator: torch.Generator) -> batch`` that draws a random batch using
  only ``generator`` for randomness (see :func:`llmcourse.packing.make_get_batch`). The trainer
  owns the generator (seeded from ``TrainConfig.seed``) and checkpoints its state, so resuming
  continues the exact same stream; evaluation uses a fresh generator seeded with ``eval_seed``,
  so validation losses are comparable between evaluations and do not disturb training; or
* an iterable (a list of batches, a ``DataLoader`` …). When it is exhausted the trainer starts a
  new pass with ``iter(data)``. On resume the trainer replays and skips the batches it already
  consumed, so exact resume needs an iterable whose fresh copy yields the same sequence (a list,
  or a ``DataLoader`` built with ``generator=torch.Generator().manual_seed(s)`` in the new
  process). Evaluation takes the first ``eval_iters`` batches of ``val_data``.

Each optimiser step consumes ``grad_accum`` batches (micro-batches); the loss is divided by
``grad_accum`` so the step equals one step on the concatenated batch.

**Distributed.** Under ``torchrun --nproc_per_node=N`` or ``accelerate launch --multi_gpu
--num_processes N`` (both set ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; the latter is torchrun
underneath and works on CPU too) the trainer initialises the process group (gloo on CPU, nccl
on CUDA) and wraps the model in ``DistributedDataParallel`` — or, with
``TrainConfig(strategy="fsdp")``, shards it with FSDP2 ``fully_shard`` (each ``nn.ModuleList``
entry, then the root). ``accelerate launch --cpu --num_processes N`` is *not* supported: it
starts a single process unless MPI is installed (accelerate's multi-CPU path is ``mpirun``). Every rank draws the *same*
global batch and keeps its contiguous slice of rows (rank ``r`` of ``N`` keeps rows
``[r·B/N, (r+1)·B/N)``), so N processes see exactly the single-process batch; the batch size must
be divisible by N. Gradients are averaged by DDP, which equals the single-process gradient when
each row has the same number of counted targets (always true for packed causal-LM blocks).
Only rank 0 writes metrics and checkpoints; under FSDP the shards are gathered to rank 0 first,
so a checkpoint has the same files as a single-process one (the optimizer state is keyed by
parameter name instead of index, so resume with the same strategy).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
import pickletools
import random
import resource
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from llmcourse.hardware import native_bf16

SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
STRATEGIES = ("ddp", "fsdp")
CKPT_PREFIX = "step_"


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/inf loss or gradient; the run was stopped before saving it."""


@dataclass
class TrainConfig:
    """Everything a run needs besides the model and the data.

    Attributes:
        max_steps: optimiser steps of the whole run (the schedule is laid out over them).
        lr: peak learning rate; ``min_lr`` is where cosine/linear decay ends (default ``lr/10``).
        warmup_steps: linear warm-up from ``lr/warmup_steps`` to ``lr``.
        schedule: ``cosine``, ``linear`` or ``constant`` (after warm-up).
        weight_decay: AdamW decay for matrices (≥2-D parameters); biases, norms get none.
        betas, eps: AdamW's.
        grad_accum: micro-batches per optimiser step.
        grad_clip: max global gradient norm (``None`` or 0: no clipping).
        precision: ``auto`` (bf16 on GPUs that have it, fp16 + GradScaler on the others, fp32 on
            CPU — see :func:`resolve_precision`), ``fp32``, ``bf16`` or ``fp16``.
        compile: ``torch.compile`` the model.
        eval_every: evaluate every this many steps and at the end (0: never).
        eval_iters: batches per evaluation; ``eval_seed`` seeds them (callable data).
        log_every: write a metrics record every this many steps (and the last one).
        ckpt_every: checkpoint every this many steps and at the end (0: only when asked).
        keep_last: how many checkpoints to keep.
        out_dir: where ``metrics.jsonl`` and ``checkpoints/`` go (``None``: nowhere).
        seed: seeds the trainer's data generator (callable data). Seed the model yourself
            (:func:`llmcourse.seed_everything`) before building it.
        progress: show a ``tqdm.auto`` progress bar (rank 0 only).
        device: ``"cpu"``, ``"cuda"`` … (``None``: :func:`llmcourse.get_device`; the local GPU
            under torchrun).
        strategy: how to spread a distributed run: ``ddp`` (a full copy of the model per
            process) or ``fsdp`` (PyTorch FSDP2 ``fully_shard``: parameters, gradients and
            optimizer state sharded across processes, for models whose copy does not fit on one
            device). Ignored in a single process.
    """

    max_steps: int = 100
    lr: float = 3e-4
    min_lr: float | None = None
    warmup_steps: int = 0
    schedule: str = "cosine"
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    grad_accum: int = 1
    grad_clip: float | None = 1.0
    precision: str = "auto"
    compile: bool = False
    eval_every: int = 0
    eval_iters: int = 10
    eval_seed: int = 1234
    log_every: int = 10
    ckpt_every: int = 0
    keep_last: int = 2
    out_dir: str | None = None
    seed: int = 0
    progress: bool = True
    device: str | None = None
    strategy: str = "ddp"

    def __post_init__(self) -> None:
        def pos_int(name: str, allow_zero: bool = False) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"TrainConfig.{name} must be an int, got {type(v).__name__}")
            if v < 0 or (v == 0 and not allow_zero):
                raise ValueError(f"TrainConfig.{name} must be {'>= 0' if allow_zero else '> 0'}, got {v}")

        for name in ("max_steps", "grad_accum", "eval_iters", "log_every", "keep_last"):
            pos_int(name)
        for name in ("warmup_steps", "eval_every", "ckpt_every", "seed", "eval_seed"):
            pos_int(name, allow_zero=True)
        for name in ("lr", "weight_decay", "eps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"TrainConfig.{name} must be a finite number >= 0, got {v!r}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.min_lr is not None and not (0 <= self.min_lr <= self.lr):
            raise ValueError(f"TrainConfig.min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        if self.grad_clip is not None and (not isinstance(self.grad_clip, (int, float)) or self.grad_clip < 0):
            raise ValueError(f"TrainConfig.grad_clip must be None or >= 0, got {self.grad_clip!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"TrainConfig.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"TrainConfig.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if len(tuple(self.betas)) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"TrainConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = tuple(float(b) for b in self.betas)
        if self.out_dir is not None and not isinstance(self.out_dir, (str, os.PathLike)):
            raise TypeError(f"TrainConfig.out_dir must be a path or None, got {type(self.out_dir).__name__}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out_dir"] = None if self.out_dir is None else str(self.out_dir)
        return d


def lr_at(step: int, cfg: TrainConfig) -> float:
    """The learning rate of optimiser step ``step`` (0-based): warm-up, then the schedule.

    Warm-up rises linearly to ``lr`` over ``warmup_steps``; then ``cosine`` or ``linear`` decay
    to ``min_lr`` at ``max_steps`` (``constant`` stays at ``lr``).
    """
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    min_lr = cfg.lr / 10 if cfg.min_lr is None else cfg.min_lr
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / span)
    if cfg.schedule == "linear":
        return cfg.lr + (min_lr - cfg.lr) * progress
    return min_lr + 0.5 * (cfg.lr - min_lr) * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------- distributed
@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its ``local_rank`` on the node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device_type: str | None = None) -> DistInfo:
    """Initialise ``torch.distributed`` from the torchrun/accelerate environment variables.

    Does nothing (returns rank 0 of 1) when ``WORLD_SIZE`` is unset or 1. Backend: nccl when
    CUDA is used, gloo otherwise. Safe to call twice.
    """
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local)


# ----------------------------------------------------------------------------- precision
def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on GPUs with bf16, ``fp16`` on older GPUs (T4), ``fp32`` elsewhere.

    On CPU fp32 is the choice. bf16 speed there depends on the chip: measured on the course's
    2-core AMD EPYC (AVX512-BF16), one thread, a 0.1–1 M-parameter GPT: bf16 15–20% faster;
    CPUs without native bf16 emulate it and are slower. fp32 keeps CPU runs exact and portable
    across machines, which is what CPU profiles are for; to choose by speed instead, measure
    with :func:`fastest_precision` and pass what it returns (chapter 06 does it on your
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
                      device: torch.device | str | None = None, candidates: Iterable[str] = ("fp32", "bf16"),
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
        raise TypeError(f"batch must be an (inputs, targets) tuple or a dict, got {type(batch).__name__}")
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
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------- batches
def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _slice_rows(batch: Any, rank: int, world: int) -> Any:
    if isinstance(batch, torch.Tensor):
        n = batch.size(0)
        if n % world:
            raise ValueError(f"batch size {n} must be divisible by the world size {world}")
        k = n // world
        return batch[rank * k:(rank + 1) * k]
    if isinstance(batch, dict):
        return {k: _slice_rows(v, rank, world) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_slice_rows(v, rank, world) for v in batch)
    return batch


def batch_tokens(batch: Any) -> int:
    """Tokens in a batch: ``inputs.numel()`` of a tuple batch or ``input_ids.numel()`` of a dict."""
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0].numel()
    if isinstance(batch, dict) and isinstance(batch.get("input_ids"), torch.Tensor):
        return batch["input_ids"].numel()
    if isinstance(batch, torch.Tensor):
        return batch.numel()
    raise TypeError("a batch must be a tuple (inputs, targets) or a dict with 'input_ids', "
                    f"got {type(batch).__name__}")


def forward_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """Run ``model`` on ``batch`` and return the scalar loss (see the module docstring)."""
    if isinstance(batch, dict):
        out = model(**batch)
    elif isinstance(batch, (list, tuple)):
        out = model(*batch)
    else:
        raise TypeError(f"a batch must be a tuple/list or a dict, got {type(batch).__name__}")
    if isinstance(out, dict) and "loss" in out:
        loss = out["loss"]
    elif hasattr(out, "loss"):
        loss = out.loss
    elif isinstance(out, (tuple, list)) and len(out) >= 2:
        loss = out[1]
    else:
        raise TypeError("the model must return (logits, loss), an object with .loss or a dict "
                        f"with 'loss'; got {type(out).__name__}")
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        raise TypeError("the model's loss must be a scalar tensor (did you pass targets/labels?), "
                        f"got {type(loss).__name__}")
    return loss


class _BatchStream:
    """Draws batches from a callable or an iterable and remembers where it is."""

    def __init__(self, data: Callable | Iterable, seed: int) -> None:
        if hasattr(data, "__iter__"):
            self.kind = "iterable"
        elif callable(data):
            self.kind = "callable"
        else:
            raise TypeError("train_data must be a callable get_batch(generator) or an iterable of "
                            f"batches, got {type(data).__name__}")
        self.data = data
        self.generator = torch.Generator().manual_seed(seed)
        self.consumed = 0  # batches drawn so far (iterables)
        self._it = None

    def next(self) -> Any:
        if self.kind == "callable":
            return self.data(self.generator)
        if self._it is None:
            self._it = iter(self.data)
        try:
            batch = next(self._it)
        except StopIteration:
            self._it = iter(self.data)
            try:
                batch = next(self._it)
            except StopIteration:
                raise ValueError("the training data iterable is empty") from None
        self.consumed += 1
        return batch

    def state_dict(self) -> dict:
        return {"kind": self.kind, "generator": self.generator.get_state(), "consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        if state["kind"] != self.kind:
            raise ValueError(f"checkpoint data was a {state['kind']}, this run's is a {self.kind}")
        self.generator.set_state(state["generator"])
        if self.kind == "iterable":
            self._it, self.consumed = None, 0
            for _ in range(int(state["consumed"])):  # replay: skip what was already consumed
                self.next()


# ----------------------------------------------------------------------------- RNG state
def _rng_state() -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_state[0]), "state": torch.tensor(py_state[1], dtype=torch.int64)},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(x) for x in p["state"].tolist()), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- checkpoints
# Globals that a ``torch.save`` of tensors and plain containers may reference.
SAFE_PICKLE_GLOBALS = frozenset({
    "collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_tensor",
    "torch._utils _rebuild_parameter", "torch FloatStorage", "torch LongStorage",
    "torch IntStorage", "torch ByteStorage", "torch DoubleStorage", "torch HalfStorage",
    "torch BFloat16Storage", "torch BoolStorage", "torch CharStorage", "torch ShortStorage",
    "torch._tensor _rebuild_from_type_v2", "torch device", "torch._utils _rebuild_device_tensor_from_numpy",
    "builtins set", "__builtin__ set",
})


def pickle_globals(path: str | os.PathLike) -> set[str]:
    """The ``module name`` globals referenced by the pickle inside a ``torch.save`` file.

    A file of plain tensors and containers references only torch's rebuild functions and
    storages; anything else (a class of yours, ``os.system`` …) would run code on load.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a file")
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith("data.pkl")]
        if len(names) != 1:
            raise ValueError(f"{path} is not a torch.save zip file (no single data.pkl)")
        raw = zf.read(names[0])
    found: set[str] = set()
    strings: list[str] = []
    for op, arg, _pos in pickletools.genops(io.BytesIO(raw)):
        if op.name in ("GLOBAL", "INST"):
            found.add(str(arg))
        elif op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8"):
            strings.append(str(arg))
        elif op.name == "STACK_GLOBAL":
            found.add(" ".join(strings[-2:]))
    return found


def _unwrap(model: nn.Module) -> nn.Module:
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def list_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under ``out_dir/checkpoints``, oldest first (temp dirs excluded)."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(CKPT_PREFIX)
            and (p / "state.pt").is_file() and (p / "model.safetensors").is_file()]
    return sorted(done, key=lambda p: int(p.name[len(CKPT_PREFIX):]))


def _atomic_write_json(path: Path, obj: Any) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as f:
        json.dump(obj, f, indent=2)
    os.replace(f.name, path)


def save_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Save a model's weights as safetensors atomically (tied weights stored once)."""
    from safetensors.torch import save_model

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_model(_unwrap(model), str(tmp))
    os.replace(tmp, path)


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load safetensors weights written by :func:`save_weights` into ``model`` (strict)."""
    from safetensors.torch import load_model

    if not Path(path).is_file():
        raise ValueError(f"no weights file at {str(path)!r}")
    inner = _unwrap(model)
    load_model(inner, str(path), strict=True, device=str(next(inner.parameters()).device))
    return model


# ----------------------------------------------------------------------------- metrics
def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB → MiB


def _flops_per_token(model: nn.Module, tokens_per_row: int | None) -> float:
    inner = _unwrap(model)
    if hasattr(inner, "flops_per_token"):
        try:
            return float(inner.flops_per_token(tokens_per_row) if tokens_per_row else inner.flops_per_token())
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


# ----------------------------------------------------------------------------- trainer
@dataclass
class TrainState:
    """Counters saved with every checkpoint."""

    step: int = 0  # optimiser steps done
    tokens: int = 0  # training tokens seen (all ranks)
    best_val: float | None = None
    last_checkpoint: str | None = None
    history: list = field(default_factory=list)  # metrics records of this process


class Trainer:
    """Train ``model`` on ``train_data`` with a :class:`TrainConfig` (see the module docstring).

    Args:
        model: an ``nn.Module`` returning ``(logits, loss)``, ``.loss`` or ``{"loss": …}``.
        config: the :class:`TrainConfig`.
        train_data: a callable ``get_batch(generator)`` or an iterable of batches.
        val_data: the same kinds, for :meth:`evaluate` (optional).
        resume: continue from the latest checkpoint in ``config.out_dir`` if there is one
            (``True``), or from a given checkpoint directory (a path).
        callbacks: functions called with each metrics record (e.g. a live dashboard).

    Attributes: ``model`` (wrapped in DDP when distributed), ``optimizer``, ``scaler``,
    ``state`` (:class:`TrainState`), ``device``, ``precision``, ``dist`` (:class:`DistInfo`).
    """

    def __init__(self, model: nn.Module, config: TrainConfig, train_data: Callable | Iterable,
                 val_data: Callable | Iterable | None = None, *, resume: bool | str | os.PathLike = False,
                 callbacks: Iterable[Callable[[dict], Any]] = ()) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        if train_data is None:
            raise TypeError("train_data must be a callable get_batch(generator) or an iterable")
        self.config = cfg = config
        if cfg.device is not None:
            from llmcourse.env import get_device

            device = get_device(cfg.device)
        elif int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch.cuda.is_available():
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        else:
            from llmcourse.env import get_device

            device = get_device()
        self.dist = setup_distributed(device.type)
        if self.dist.enabled and device.type == "cuda":
            device = torch.device("cuda", self.dist.local_rank)
        self.device = device
        self.precision = resolve_precision(cfg.precision, device)
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True  # TF32 on Ampere+ (a no-op before)
            torch.backends.cudnn.allow_tf32 = True
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            if not callable(cb):
                raise TypeError(f"callbacks must be callables, got {type(cb).__name__}")

        self.fsdp = self.dist.enabled and cfg.strategy == "fsdp"
        # FSDP: a CPU replica of the full model, to read and write checkpoints in the same
        # safetensors format as a single process (rank 0 gathers the shards into it).
        self._replica = copy.deepcopy(model).to("cpu") if self.fsdp else None
        model.to(device)
        self.raw_model = model
        if self.fsdp:
            from torch.distributed.fsdp import fully_shard

            for module in list(model.modules()):
                if isinstance(module, nn.ModuleList):  # shard each block, then the rest
                    for block in module:
                        fully_shard(block)
            fully_shard(model)
        self.optimizer = self._make_optimizer(model)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.precision == "fp16")
        if self.dist.enabled and not self.fsdp:
            from torch.nn.parallel import DistributedDataParallel as DDP

            model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
        if cfg.compile:
            model = torch.compile(model)
        self.model = model
        self.train_stream = _BatchStream(train_data, cfg.seed)
        self.val_data = val_data
        self.state = TrainState()
        self.out_dir = Path(cfg.out_dir) if cfg.out_dir is not None else None
        self._fpt: float | None = None
        self._peak = peak_flops_here(device, self.precision)
        if resume:
            path = None if resume is True else Path(resume)
            if path is None:
                if self.out_dir is None:
                    raise ValueError("resume=True needs TrainConfig.out_dir (where checkpoints are)")
                if self.dist.enabled:  # rank 0 may still be writing the checkpoint other ranks look for
                    import torch.distributed as dist

                    dist.barrier()
                found = list_checkpoints(self.out_dir)
                path = found[-1] if found else None
            if path is not None:
                self.load_checkpoint(path)
            self._drop_metrics_after(self.state.step)

    def _drop_metrics_after(self, step: int) -> None:
        """On resume, forget the logged records of steps the run will redo (no duplicates)."""
        if self.out_dir is None or not self.dist.is_main:
            return
        path = self.out_dir / "metrics.jsonl"
        if not path.exists():
            return
        keep = [r for r in read_metrics(path) if r.get("step", 0) <= step]
        with tempfile.NamedTemporaryFile("w", dir=self.out_dir, delete=False, suffix=".tmp") as tmp:
            tmp.writelines(json.dumps(r) + "\n" for r in keep)
        os.replace(tmp.name, path)

    # -- set-up ---------------------------------------------------------------------------
    def _make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        cfg = self.config
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("model has no trainable parameters")
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]
        groups = [{"params": decay, "weight_decay": cfg.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        kwargs = {"fused": True} if self.device.type == "cuda" else {}
        return torch.optim.AdamW(groups, lr=lr_at(0, cfg), betas=cfg.betas, eps=cfg.eps, **kwargs)

    # -- one step -------------------------------------------------------------------------
    def _next_batch(self) -> Any:
        batch = self.train_stream.next()
        if self.dist.enabled:
            batch = _slice_rows(batch, self.dist.rank, self.dist.world_size)
        return _to_device(batch, self.device)

    def train_step(self) -> dict:
        """One optimiser step (``grad_accum`` micro-batches). Returns loss, lr, grad norm, tokens."""
        cfg, step = self.config, self.state.step
        lr = lr_at(step, cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        total = torch.zeros((), device=self.device)
        tokens = 0
        for micro in range(cfg.grad_accum):
            batch = self._next_batch()
            tokens += batch_tokens(batch)
            last_micro = micro == cfg.grad_accum - 1
            if self.fsdp:  # FSDP2: reduce-scatter gradients only on the last micro-batch
                self.raw_model.set_requires_gradient_sync(last_micro)
            sync = not self.dist.enabled or last_micro or not hasattr(self.model, "no_sync")
            ctx = contextlib.nullcontext() if sync else self.model.no_sync()
            with ctx:
                with autocast_context(self.precision, self.device):
                    loss = forward_loss(self.model, batch)
                total += loss.detach().float()
                if cfg.grad_accum > 1:
                    loss = loss / cfg.grad_accum
                self.scaler.scale(loss).backward()
        loss_value = (total / cfg.grad_accum)
        if self.dist.enabled:
            import torch.distributed as dist

            dist.all_reduce(loss_value, op=dist.ReduceOp.SUM)  # gloo has no AVG
            loss_value = loss_value / self.dist.world_size
        loss_f = float(loss_value)  # one sync per step: the NaN guard needs it
        if not math.isfinite(loss_f) or not math.isfinite(lr):
            self.optimizer.zero_grad(set_to_none=True)
            what = f"loss is {loss_f}" if not math.isfinite(loss_f) else f"learning rate is {lr}"
            raise NonFiniteLossError(
                f"{what} at step {step + 1}: training stopped before updating the weights. "
                f"Last good checkpoint: {self.state.last_checkpoint or 'none saved yet'} "
                "(lower the learning rate, check the data, or use bf16 instead of fp16).")
        self.scaler.unscale_(self.optimizer)
        if cfg.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        else:
            norm = torch.linalg.vector_norm(torch.stack(
                [p.grad.detach().float().norm() for p in self.model.parameters() if p.grad is not None]))
        if hasattr(norm, "full_tensor"):  # a DTensor under FSDP
            norm = norm.full_tensor()
        grad_norm = float(norm)
        if not math.isfinite(grad_norm) and self.precision != "fp16":
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteLossError(
                f"gradient norm is {grad_norm} at step {step + 1}: training stopped before updating "
                f"the weights. Last good checkpoint: {self.state.last_checkpoint or 'none saved yet'}.")
        self.scaler.step(self.optimizer)  # fp16: skips the step if the gradients overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        self.state.tokens += tokens * self.dist.world_size
        return {"loss": loss_f, "lr": lr, "grad_norm": grad_norm, "tokens": tokens * self.dist.world_size}

    # -- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, data: Callable | Iterable | None = None, iters: int | None = None) -> float:
        """Mean loss over ``iters`` batches of ``data`` (default: ``val_data``, ``eval_iters``)."""
        data = self.val_data if data is None else data
        if data is None:
            raise ValueError("evaluate() needs data: pass val_data to Trainer or data= here")
        iters = self.config.eval_iters if iters is None else iters
        if isinstance(iters, bool) or not isinstance(iters, int) or iters <= 0:
            raise ValueError(f"iters must be a positive int, got {iters!r}")
        was_training = self.model.training
        self.model.eval()
        if callable(data) and not hasattr(data, "__iter__"):
            gen = torch.Generator().manual_seed(self.config.eval_seed)
            batches = (data(gen) for _ in range(iters))
        else:
            batches = (b for _, b in zip(range(iters), data))
        losses = []
        for batch in batches:
            if self.dist.enabled:
                batch = _slice_rows(batch, self.dist.rank, self.dist.world_size)
            batch = _to_device(batch, self.device)
            with autocast_context(self.precision, self.device):
                losses.append(forward_loss(_unwrap(self.model), batch).float())
        if not losses:
            raise ValueError("the evaluation data gave no batches")
        mean = torch.stack(losses).mean()
        if self.dist.enabled:
            import torch.distributed as dist

            dist.all_reduce(mean, op=dist.ReduceOp.SUM)
            mean = mean / self.dist.world_size
        self.model.train(was_training)
        return float(mean)

    # -- the loop ---------------------------------------------------------------------------
    def fit(self, until: int | None = None) -> list[dict]:
        """Train until step ``until`` (default ``max_steps``; smaller values stop early — the
        schedule still spans ``max_steps``, as if the run were interrupted there).

        Returns this call's metrics records. Raises :class:`NonFiniteLossError` on NaN/inf.
        """
        cfg = self.config
        until = cfg.max_steps if until is None else until
        if isinstance(until, bool) or not isinstance(until, int) or not 0 <= until <= cfg.max_steps:
            raise ValueError(f"until must be an int in [0, max_steps={cfg.max_steps}], got {until!r}")
        main = self.dist.is_main
        bar = None
        if cfg.progress and main:
            from tqdm.auto import tqdm

            bar = tqdm(total=until, initial=self.state.step, desc="train", dynamic_ncols=True)
        records: list[dict] = []
        t0, tok0 = time.perf_counter(), 0
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            while self.state.step < until:
                out = self.train_step()
                step = self.state.step
                tok0 += out["tokens"]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{out['loss']:.3f}", lr=f"{out['lr']:.2e}", refresh=False)
                last = step == until
                record = None
                if step % cfg.log_every == 0 or last:
                    if self.device.type == "cuda":
                        torch.cuda.synchronize(self.device)
                    dt = time.perf_counter() - t0
                    tps = tok0 / dt if dt > 0 else None
                    if self._fpt is None:
                        self._fpt = _flops_per_token(self.model, self._tokens_per_row())
                    mfu = (tps * self._fpt / (self._peak * self.dist.world_size)
                           if (tps and self._peak) else None)
                    record = {"kind": "train", "step": step, "loss": out["loss"], "lr": out["lr"],
                              "grad_norm": out["grad_norm"], "tokens": self.state.tokens,
                              "tokens_per_s": tps, "mfu": mfu,
                              "memory_mb": round(_memory_mb(self.device), 1)}
                    t0, tok0 = time.perf_counter(), 0
                if cfg.eval_every and self.val_data is not None and (step % cfg.eval_every == 0 or
                                                                     step == cfg.max_steps):
                    te = time.perf_counter()
                    val = self.evaluate()
                    self.state.best_val = val if self.state.best_val is None else min(self.state.best_val, val)
                    self._emit({"kind": "eval", "step": step, "val_loss": val}, records)
                    t0 += time.perf_counter() - te  # evaluating is not training time
                if record is not None:
                    self._emit(record, records)
                if cfg.ckpt_every and (step % cfg.ckpt_every == 0 or step == cfg.max_steps):
                    ts = time.perf_counter()
                    self.save_checkpoint()
                    t0 += time.perf_counter() - ts  # nor is saving
        finally:
            if bar is not None:
                bar.close()
        return records

    def full_model(self) -> nn.Module | None:
        """The whole trained model, unwrapped (no DDP/compile wrapper), for export or sampling.

        Under FSDP this is a collective call (every rank must make it): rank 0 gets a CPU copy
        holding the gathered weights, the other ranks ``None``.
        """
        if not self.fsdp:
            return _unwrap(self.model)
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(self.raw_model,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.dist.is_main:
            return None
        self._replica.load_state_dict(full)
        return self._replica

    def _tokens_per_row(self) -> int | None:
        cfg = getattr(_unwrap(self.model), "config", None)
        return getattr(cfg, "block_size", None)

    def _emit(self, record: dict, records: list[dict]) -> None:
        records.append(record)
        self.state.history.append(record)
        if not self.dist.is_main:
            return
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        for cb in self.callbacks:
            cb(record)

    # -- checkpoints ------------------------------------------------------------------------
    def save_checkpoint(self) -> Path | None:
        """Write ``out_dir/checkpoints/step_NNNNNN/`` atomically; keep the last ``keep_last``.

        Files: ``model.safetensors`` (weights), ``state.pt`` (optimizer, scaler, RNG and data
        position: tensors and plain containers only, loadable with ``weights_only=True``) and
        ``meta.json``. Everything is written to a temporary directory that is renamed into place,
        so a kill during a save leaves the previous checkpoints untouched. Only rank 0 writes;
        the others return ``None``.
        """
        if self.out_dir is None:
            raise ValueError("save_checkpoint needs TrainConfig.out_dir")
        if self.dist.enabled:
            import torch.distributed as dist

            dist.barrier()
        weights_source, opt_state = self.full_model(), None
        if self.fsdp:  # a collective: every rank takes part, rank 0 receives the full tensors
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                get_optimizer_state_dict,
            )

            opt_state = get_optimizer_state_dict(
                self.raw_model, self.optimizer,
                options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if not self.dist.is_main:
            return None
        root = self.out_dir / "checkpoints"
        root.mkdir(parents=True, exist_ok=True)
        name = f"{CKPT_PREFIX}{self.state.step:06d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
        try:
            save_weights(weights_source, tmp / "model.safetensors")
            state = {
                "step": self.state.step, "tokens": self.state.tokens,
                "best_val": self.state.best_val,
                "optimizer": self.optimizer.state_dict() if opt_state is None else opt_state,
                "scaler": self.scaler.state_dict(),
                "rng": _rng_state(), "data": self.train_stream.state_dict(),
            }
            torch.save(state, tmp / "state.pt")
            _atomic_write_json(tmp / "meta.json", {"step": self.state.step, "config": self.config.to_dict(),
                                                   "precision": self.precision,
                                                   "world_size": self.dist.world_size})
            final = root / name
            if final.exists():  # the same step saved again: keep the old copy until the new one is in
                old = root / f".old-{name}-{os.getpid()}"
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.state.last_checkpoint = str(final)
        for old in list_checkpoints(self.out_dir)[:-self.config.keep_last]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore weights, optimizer, scaler, RNG and data position from a checkpoint dir."""
        path = Path(path)
        if not (path / "state.pt").is_file() or not (path / "model.safetensors").is_file():
            raise ValueError(f"{str(path)!r} is not a checkpoint directory (needs model.safetensors "
                             "and state.pt)")
        state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
        if self.fsdp:  # every rank reads the full checkpoint and keeps its shards
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
                set_optimizer_state_dict,
            )

            load_weights(self._replica, path / "model.safetensors")
            opts = StateDictOptions(full_state_dict=True)
            set_model_state_dict(self.raw_model, self._replica.state_dict(), options=opts)
            set_optimizer_state_dict(self.raw_model, self.optimizer, state["optimizer"], options=opts)
        else:
            load_weights(self.model, path / "model.safetensors")
            self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        self.train_stream.load_state_dict(state["data"])
        self.state.step = int(state["step"])
        self.state.tokens = int(state["tokens"])
        self.state.best_val = state["best_val"]
        self.state.last_checkpoint = str(path)


def config_fields() -> list[str]:
    """Names of :class:`TrainConfig`'s fields (for CLIs and docs)."""
    return [f.name for f in fields(TrainConfig)]
