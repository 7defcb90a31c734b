"""Checkpoints: what a run saves, how it is written safely, and how it is read back.

A checkpoint is a directory ``out_dir/checkpoints/step_NNNNNN/`` holding ``model.safetensors``
(the weights, :func:`save_weights`), ``state.pt`` (optimizer, scaler, the RNG states of torch,
numpy and Python, the data position and :class:`TrainState`'s counters: tensors and plain
containers only, loadable with ``weights_only=True``; :func:`pickle_globals` lists what its
pickle references, :data:`SAFE_PICKLE_GLOBALS` what it may) and ``meta.json`` (the
:class:`~llmcourse.train.TrainConfig` and the model's configuration). Only rank 0 writes; under
FSDP the shards are gathered first, so the files are those of a single process.

**Crash safety.** A save writes a temporary directory ``.tmp-step_NNNNNN-<random>``, fsyncs
every file and the directory, renames it into place and fsyncs the parent, so a kill or a power
cut leaves the earlier checkpoints whole; :func:`list_checkpoints` lists the complete ones,
oldest first. What a killed save leaves behind (its ``.tmp-step_*`` directory, or the
``.old-step_*`` copy of a step being saved again) is removed when the next :class:`Trainer`
starts in the same ``out_dir``. Weights that are not finite are never saved.

**Resume.** ``Trainer(..., resume=True)`` continues from the newest checkpoint that reads
back whole; a newer one that does not (truncated, corrupt, non-finite weights) is skipped with
a warning naming it. A checkpoint is refused (``ValueError`` naming each differing field, old
-> new) when this run differs from the one that saved it: in the model's configuration, or in
a :class:`~llmcourse.train.TrainConfig` field that changes the weights a run produces (every
field except those in :data:`RUN_INDEPENDENT`: ``lr``, the schedule, ``max_steps``,
``grad_accum``, ``seed``, the optimizer …, and the precision as resolved, so ``auto`` and
``fp32`` are the same on a CPU). An intended change is allowed by naming it:
``TrainConfig(max_steps=1000, resume_allow=("max_steps",))`` (model fields as
``"model.<name>"``).

Why one module of about 510 lines: writing and reading a checkpoint are one contract (what is
saved is what resume checks and restores); they stay side by side so a change to one is seen
against the other.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickletools
import random
import re
import shutil
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn as nn

from llmcourse._checks import check_module, check_path
from llmcourse._io import atomic_write_text, fsync_path, temp_path
from llmcourse.train.distributed import _barrier, _mean_over_ranks, _unwrap

if TYPE_CHECKING:
    from llmcourse.train.loop import Trainer

CKPT_PREFIX = "step_"
_CKPT_NAME = re.compile(r"^step_(\d+)$")
# what a killed save leaves: .tmp-step_NNNNNN-<mkdtemp letters> (being written) and
# .old-step_NNNNNN-<pid> (the previous copy of a step that was being saved again)
_STALE_NAME = re.compile(r"^\.(tmp|old)-step_(\d+)-[A-Za-z0-9_]+$")
_FILES = ("model.safetensors", "state.pt", "meta.json")
_STATE_KEYS = ("step", "tokens", "best_val", "optimizer", "scaler", "rng", "data")

# TrainConfig fields that do not change the weights a run produces: they may differ on resume.
# Every other field (and any field added later) must match, or be named in resume_allow.
RUN_INDEPENDENT = frozenset({
    "eval_every", "eval_iters", "eval_seed", "log_every", "ckpt_every", "keep_last", "out_dir",
    "progress", "device", "compile", "strategy", "resume_allow",
})
# keys of a model configuration that are run-time switches, not the model (Hugging Face)
_MODEL_SWITCHES = frozenset({
    "transformers_version", "use_cache", "return_dict", "output_attentions",
    "output_hidden_states", "torchscript", "attn_implementation",
})


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


class _Unreadable(ValueError):
    """A checkpoint whose files do not read back whole (resume falls back past it)."""


class _ResumeMismatch(ValueError):
    """A checkpoint saved by a different run; ``names`` are the settings that differ."""

    def __init__(self, message: str, names: tuple[str, ...]) -> None:
        super().__init__(message)
        self.names = names


def pickle_globals(path: str | os.PathLike) -> set[str]:
    """The ``module name`` globals referenced by the pickle inside a ``torch.save`` file.

    A file of plain tensors and containers references only torch's rebuild functions and
    storages; anything else (a class of yours, ``os.system`` …) would run code on load.
    """
    path = check_path("path", path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("data.pkl")]
            if len(names) != 1:
                raise ValueError(f"path {str(path)!r} is not a torch.save zip file (no single "
                                 "data.pkl)")
            raw = zf.read(names[0])
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"path {str(path)!r} is not a readable torch.save zip file "
                         f"({type(err).__name__}: {err})") from err
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


def _is_complete(path: Path) -> bool:
    return path.is_dir() and all((path / name).is_file() for name in _FILES)


def list_checkpoints(out_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under ``out_dir/checkpoints``, oldest first (temp dirs excluded)."""
    root = check_path("out_dir", out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if _CKPT_NAME.match(p.name) and _is_complete(p)]
    return sorted(done, key=lambda p: int(p.name[len(CKPT_PREFIX):]))


def _remove_stale_saves(out_dir: Path) -> list[str]:
    """Clean up after saves that were killed: remove ``.tmp-step_*`` directories, and for a
    ``.old-step_N-*`` copy either remove it (``step_N`` is whole) or put it back as ``step_N``
    (the kill came between the two renames of a re-save). Touches nothing else. Returns the
    names it removed or restored."""
    root = out_dir / "checkpoints"
    if not root.is_dir():
        return []
    done = []
    for p in sorted(root.iterdir()):
        m = _STALE_NAME.match(p.name)
        if not m or p.is_symlink() or not p.is_dir():
            continue
        final = root / f"{CKPT_PREFIX}{m[2]}"
        if m[1] == "old" and not final.exists() and _is_complete(p):
            os.replace(p, final)
        else:
            shutil.rmtree(p)
        done.append(p.name)
    if done:
        fsync_path(root)
    return done


def save_weights(model: nn.Module, path: str | os.PathLike) -> None:
    """Save a model's weights as safetensors atomically and durably (temp file, fsync, rename,
    fsync of the folder); tied weights are stored once."""
    from safetensors.torch import save_model

    check_module("model", model)
    path = check_path("path", path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        save_model(_unwrap(model), str(tmp))
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load safetensors weights written by :func:`save_weights` into ``model`` (strict).

    A file that cannot be read, or whose tensors do not fit ``model``, raises ``ValueError``
    naming the file.
    """
    from safetensors.torch import load_model

    check_module("model", model)
    path = check_path("path", path)
    if not path.is_file():
        raise ValueError(f"no weights file at path {str(path)!r}")
    inner = _unwrap(model)
    device = next(iter(inner.parameters()), torch.empty(0)).device
    try:
        load_model(inner, str(path), strict=True, device=str(device))
    except RuntimeError as err:  # missing/unexpected keys or other shapes: another model
        raise ValueError(f"the weights in {path} do not fit this {type(inner).__name__}: "
                         f"{err}") from err
    except Exception as err:  # noqa: BLE001 - SafetensorError, OSError …: a damaged file
        raise ValueError(f"weights file {path} cannot be read ({type(err).__name__}: {err})"
                         ) from err
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


def _model_config(model: nn.Module) -> dict | None:
    """The model's configuration as JSON values (a dataclass, an object with ``to_dict`` such
    as a Hugging Face config, or a dict), without private keys and run-time switches; ``None``
    when the model has no ``config``."""
    cfg = getattr(_unwrap(model), "config", None)
    if callable(getattr(cfg, "to_dict", None)):
        d = cfg.to_dict()
    elif dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        d = dataclasses.asdict(cfg)
    elif isinstance(cfg, dict):
        d = dict(cfg)
    else:
        return None
    d = {k: v for k, v in d.items()
         if isinstance(k, str) and not k.startswith("_") and k not in _MODEL_SWITCHES}
    return json.loads(json.dumps(d, sort_keys=True, default=str))


def _meta(trainer: Trainer) -> dict:
    model = _unwrap(trainer.raw_model)
    return {"step": trainer.state.step, "config": trainer.config.to_dict(),
            "precision": trainer.precision, "world_size": trainer.dist.world_size,
            "model": {"class": f"{type(model).__module__}.{type(model).__qualname__}",
                      "config": _model_config(model)}}


def _nonfinite_weights(trainer: Trainer) -> list[str]:
    """Names of parameters holding NaN/inf, agreed by every rank (one sync; FSDP: local
    shards, then a reduction, so that all ranks stop together)."""
    params = [(n, p.to_local() if hasattr(p, "to_local") else p)
              for n, p in trainer.raw_model.named_parameters()]
    if not params:
        return []
    ok = torch.stack([torch.isfinite(p.detach()).all() for _, p in params])
    bad = (~ok).sum().float()
    if trainer.dist.enabled:
        bad = _mean_over_ranks(bad.to(trainer.device), trainer.dist)
    if float(bad) == 0:
        return []
    names = [n for (n, _), good in zip(params, ok.tolist()) if not good]
    return names or ["(on another rank)"]


def _save_trainer(trainer: Trainer) -> Path | None:
    """:meth:`Trainer.save_checkpoint`: write the trainer's checkpoint, keep the last few."""
    from llmcourse.train.config import NonFiniteLossError

    if trainer.out_dir is None:
        raise ValueError("save_checkpoint needs TrainConfig.out_dir")
    _barrier(trainer.dist)
    bad = _nonfinite_weights(trainer)
    if bad:
        last = trainer.state.last_checkpoint or "none saved yet"
        raise NonFiniteLossError(
            f"weights are not finite after step {trainer.state.step} ({', '.join(bad[:3])}"
            f"{' …' if len(bad) > 3 else ''}): checkpoint not saved. Last good checkpoint: "
            f"{last}.")
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
        save_weights(weights_source, tmp / "model.safetensors")  # fsynced
        state = {
            "step": trainer.state.step, "tokens": trainer.state.tokens,
            "best_val": trainer.state.best_val,
            "optimizer": trainer.optimizer.state_dict() if opt_state is None else opt_state,
            "scaler": trainer.scaler.state_dict(),
            "rng": _rng_state(), "data": trainer.train_stream.state_dict(),
        }
        torch.save(state, tmp / "state.pt")
        fsync_path(tmp / "state.pt")
        atomic_write_text(tmp / "meta.json", json.dumps(_meta(trainer), indent=2, default=str))
        fsync_path(tmp)  # the directory's entries, before it is renamed into place
        final = root / name
        if final.exists():  # the same step saved again: keep the old copy until the new one is in
            old = root / f".old-{name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            fsync_path(root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        fsync_path(root)  # the rename survives a crash
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    trainer.state.last_checkpoint = str(final)
    for old in list_checkpoints(trainer.out_dir)[:-trainer.config.keep_last]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _read_checkpoint(path: Path) -> tuple[dict, dict]:
    """``(meta, state)`` of a checkpoint directory, after checking that every file reads back
    whole and that the weights are finite; raises :class:`_Unreadable` naming the file."""
    missing = [n for n in _FILES if not (path / n).is_file()]
    if missing:
        raise _Unreadable(f"{str(path)!r} is not a checkpoint directory (needs "
                          f"{', '.join(_FILES)}; missing: {', '.join(missing)})")
    meta_file, state_file, weights_file = path / "meta.json", path / "state.pt", path / _FILES[0]
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or not isinstance(meta.get("config", {}), dict):
            raise ValueError("not a JSON object with a 'config' object")
    except (OSError, ValueError) as err:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise _Unreadable(f"checkpoint file {meta_file} cannot be read ({err})") from err
    try:
        state = torch.load(state_file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - truncated zip, EOFError, refused pickle …
        raise _Unreadable(f"checkpoint file {state_file} cannot be read "
                          f"({type(err).__name__}: {err})") from err
    lacking = [k for k in _STATE_KEYS if not isinstance(state, dict) or k not in state]
    if lacking:
        raise _Unreadable(f"checkpoint file {state_file} lacks {', '.join(lacking)}")
    from safetensors import safe_open

    bad = []
    try:
        with safe_open(str(weights_file), framework="pt") as f:
            for key in f.keys():  # one tensor at a time: no second copy of the model in memory
                t = f.get_tensor(key)
                if t.is_floating_point() and not torch.isfinite(t).all():
                    bad.append(key)
    except Exception as err:  # noqa: BLE001 - SafetensorError, OSError: a damaged file
        raise _Unreadable(f"checkpoint file {weights_file} cannot be read "
                          f"({type(err).__name__}: {err})") from err
    if bad:
        raise _Unreadable(f"checkpoint file {weights_file} holds non-finite weights "
                          f"({', '.join(bad[:3])}{' …' if len(bad) > 3 else ''})")
    return meta, state


_ABSENT = object()


def _show(value: Any) -> str:
    return "(absent)" if value is _ABSENT else repr(value)


def _differences(trainer: Trainer, meta: dict) -> list[tuple[str, Any, Any]]:
    """``(name, saved, now)`` for every run-shaping setting that differs from the checkpoint's:
    TrainConfig fields (those the checkpoint recorded; ``precision`` as resolved, so ``auto``
    and ``fp32`` on a CPU are the same) and ``model.<key>`` of the model's configuration (when
    both have one)."""
    saved = meta.get("config") or {}
    now = json.loads(json.dumps(trainer.config.to_dict(), default=str))
    out = [(k, saved[k], now[k]) for k in now
           if k not in RUN_INDEPENDENT and k != "precision" and k in saved and saved[k] != now[k]]
    if "precision" in meta and meta["precision"] != trainer.precision:
        out.append(("precision", meta["precision"], trainer.precision))
    saved_model = (meta.get("model") or {}).get("config")
    now_model = _model_config(trainer.raw_model)
    if isinstance(saved_model, dict) and now_model is not None:
        for k in sorted(set(saved_model) | set(now_model)):
            a, b = saved_model.get(k, _ABSENT), now_model.get(k, _ABSENT)
            if a != b:
                out.append((f"model.{k}", a, b))
    return out


def _check_same_run(trainer: Trainer, path: Path, meta: dict) -> None:
    allowed = set(getattr(trainer.config, "resume_allow", ()) or ())
    diffs = [d for d in _differences(trainer, meta) if d[0] not in allowed]
    if diffs:
        names = tuple(sorted(name for name, _, _ in diffs))
        raise _ResumeMismatch(
            f"cannot resume from {path}: it was saved by a different run; "
            + ", ".join(f"{name} {_show(a)} -> {_show(b)}" for name, a, b in diffs)
            + ". Resume with the settings it was saved with, or allow an intended change with "
            f"TrainConfig(resume_allow={names!r})", names)


def _load_trainer(trainer: Trainer, path: str | os.PathLike) -> None:
    """:meth:`Trainer.load_checkpoint`: restore everything :func:`_save_trainer` wrote.

    Every file is read and checked before anything is changed: a damaged checkpoint raises
    ``ValueError`` naming its file and leaves the trainer as it was; so does one saved by a
    different run (see the module docstring).
    """
    try:
        _load(trainer, check_path("path", path))
    except _Unreadable as err:  # a plain ValueError for the caller
        raise ValueError(str(err)) from err.__cause__


def _load(trainer: Trainer, path: Path) -> None:
    meta, state = _read_checkpoint(path)
    _check_same_run(trainer, path, meta)
    try:
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
    except (KeyError, RuntimeError) as err:  # e.g. another optimizer's state
        raise ValueError(f"checkpoint {path} does not fit this trainer: "
                         f"{type(err).__name__}: {err}") from err
    _set_rng_state(state["rng"])
    trainer.train_stream.load_state_dict(state["data"])
    trainer.state.step = int(state["step"])
    trainer.state.tokens = int(state["tokens"])
    trainer.state.best_val = state["best_val"]
    trainer.state.last_checkpoint = str(path)


def _start(trainer: Trainer, resume: bool | str | os.PathLike | None) -> None:
    """What ``Trainer(..., resume=resume)`` does with its ``out_dir``: remove what killed saves
    left there (rank 0), then load the checkpoint to continue from: the directory ``resume``
    names, or with ``True`` the newest in ``out_dir`` that reads back whole (warning about
    each newer one that does not); none yet: a fresh start."""
    if resume is not None and not isinstance(resume, (bool, str, os.PathLike)):
        raise TypeError("resume must be a bool or a checkpoint directory (str or os.PathLike), "
                        f"got {type(resume).__name__}")
    if trainer.out_dir is not None and trainer.dist.is_main:
        _remove_stale_saves(trainer.out_dir)
    if not resume:
        return
    if resume is not True:
        trainer.load_checkpoint(resume)
        return
    if trainer.out_dir is None:
        raise ValueError("resume=True needs TrainConfig.out_dir (where checkpoints are)")
    _barrier(trainer.dist)  # rank 0 may still be writing or restoring what others look for
    found = list_checkpoints(trainer.out_dir)
    for path in reversed(found):
        try:
            _load(trainer, path)
            return
        except _Unreadable as err:
            if trainer.dist.is_main:
                warnings.warn(f"skipping checkpoint {path.name}: {err}; trying the one before it",
                              RuntimeWarning, stacklevel=3)
    if found:
        raise ValueError(f"resume=True: none of the {len(found)} checkpoints in "
                         f"{trainer.out_dir / 'checkpoints'} can be read (see the warnings); "
                         "move them away to start afresh")
