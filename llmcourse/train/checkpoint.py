"""Checkpoints: what a run saves, how it is written safely, and how it is read back.

A checkpoint is a directory ``out_dir/checkpoints/step_NNNNNN/`` holding ``model.safetensors``
(the weights, :func:`save_weights`), ``state.pt`` (optimizer, scaler, the RNG states of torch,
numpy and Python, the data position and :class:`TrainState`'s counters: tensors and plain
containers only, loadable with ``weights_only=True``; :func:`pickle_globals` lists what its
pickle references, :data:`SAFE_PICKLE_GLOBALS` what it may) and ``meta.json``. It is written to
a temporary directory renamed into place, so a kill during a save leaves the earlier ones whole;
:func:`list_checkpoints` lists the complete ones, oldest first. Only rank 0 writes; under FSDP
the shards are gathered first, so the files are those of a single process.
"""

from __future__ import annotations

import io
import json
import os
import pickletools
import random
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn

from llmcourse.train.distributed import DistInfo, _barrier, _unwrap

if TYPE_CHECKING:
    from llmcourse.train.loop import Trainer

CKPT_PREFIX = "step_"


@dataclass
class TrainState:
    """Counters saved with every checkpoint."""

    step: int = 0  # optimiser steps done
    tokens: int = 0  # training tokens seen (all ranks)
    best_val: float | None = None
    last_checkpoint: str | None = None
    history: list = field(default_factory=list)  # metrics records of this process


# Globals that a ``torch.save`` of tensors and plain containers may reference.
SAFE_PICKLE_GLOBALS = frozenset({
    "collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_tensor",
    "torch._utils _rebuild_parameter", "torch FloatStorage", "torch LongStorage",
    "torch IntStorage", "torch ByteStorage", "torch DoubleStorage", "torch HalfStorage",
    "torch BFloat16Storage", "torch BoolStorage", "torch CharStorage", "torch ShortStorage",
    "torch._tensor _rebuild_from_type_v2", "torch device",
    "torch._utils _rebuild_device_tensor_from_numpy",
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


def _rng_state() -> dict:
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": int(py_state[0]),
                   "state": torch.tensor(py_state[1], dtype=torch.int64)},
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


def _save_trainer(trainer: Trainer) -> Path | None:
    """:meth:`Trainer.save_checkpoint`: write the trainer's checkpoint, keep the last few."""
    if trainer.out_dir is None:
        raise ValueError("save_checkpoint needs TrainConfig.out_dir")
    _barrier(trainer.dist)
    weights_source, opt_state = trainer.full_model(), None
    if trainer.fsdp:  # a collective: every rank takes part, rank 0 receives the full tensors
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_optimizer_state_dict,
        )

        opt_state = get_optimizer_state_dict(
            trainer.raw_model, trainer.optimizer,
            options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not trainer.dist.is_main:
        return None
    root = trainer.out_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"{CKPT_PREFIX}{trainer.state.step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    try:
        save_weights(weights_source, tmp / "model.safetensors")
        state = {
            "step": trainer.state.step, "tokens": trainer.state.tokens,
            "best_val": trainer.state.best_val,
            "optimizer": trainer.optimizer.state_dict() if opt_state is None else opt_state,
            "scaler": trainer.scaler.state_dict(),
            "rng": _rng_state(), "data": trainer.train_stream.state_dict(),
        }
        torch.save(state, tmp / "state.pt")
        _atomic_write_json(tmp / "meta.json", {"step": trainer.state.step,
                                               "config": trainer.config.to_dict(),
                                               "precision": trainer.precision,
                                               "world_size": trainer.dist.world_size})
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
    trainer.state.last_checkpoint = str(final)
    for old in list_checkpoints(trainer.out_dir)[:-trainer.config.keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _load_trainer(trainer: Trainer, path: str | os.PathLike) -> None:
    """:meth:`Trainer.load_checkpoint`: restore everything :func:`_save_trainer` wrote."""
    path = Path(path)
    if not (path / "state.pt").is_file() or not (path / "model.safetensors").is_file():
        raise ValueError(f"{str(path)!r} is not a checkpoint directory (needs model.safetensors "
                         "and state.pt)")
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    if trainer.fsdp:  # every rank reads the full checkpoint and keeps its shards
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        load_weights(trainer._replica, path / "model.safetensors")
        opts = StateDictOptions(full_state_dict=True)
        set_model_state_dict(trainer.raw_model, trainer._replica.state_dict(), options=opts)
        set_optimizer_state_dict(trainer.raw_model, trainer.optimizer, state["optimizer"],
                                 options=opts)
    else:
        load_weights(trainer.model, path / "model.safetensors")
        trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    trainer.train_stream.load_state_dict(state["data"])
    trainer.state.step = int(state["step"])
    trainer.state.tokens = int(state["tokens"])
    trainer.state.best_val = state["best_val"]
    trainer.state.last_checkpoint = str(path)


def _resume_path(resume: bool | str | os.PathLike, out_dir: Path | None,
                 dist: DistInfo) -> Path | None:
    """The checkpoint ``Trainer(..., resume=resume)`` continues from: the given directory, or
    with ``True`` the latest in ``out_dir`` (``None`` when there is none yet)."""
    if resume is not True:
        return Path(resume)
    if out_dir is None:
        raise ValueError("resume=True needs TrainConfig.out_dir (where checkpoints are)")
    _barrier(dist)  # rank 0 may still be writing the checkpoint other ranks look for
    found = list_checkpoints(out_dir)
    return found[-1] if found else None
