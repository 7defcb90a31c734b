"""Profiles: one notebook runs in seconds on CI, minutes on a laptop, and for real on a GPU.

``LLMCOURSE_PROFILE`` picks one of ``ci`` (the 2-core CI machine), ``cpu`` (a laptop) or ``gpu``
(Colab T4/L4/A100 or better). Default: ``gpu`` when CUDA is present, else ``cpu``.
Chapters read sizes from the profile instead of hard-coding them, so scaling up is a change of
environment variable, never an edit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TypeVar

import torch

from llmcourse._checks import check_bool, check_choice, check_int

PROFILE_NAMES = ("ci", "cpu", "gpu")
PRECISIONS = ("fp32", "bf16", "fp16")
T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    """Named sizes for one kind of machine.

    Attributes:
        name: ``ci``, ``cpu`` or ``gpu``.
        precision: ``fp32`` on CPUs; ``bf16`` (or ``fp16`` on GPUs without bf16) on GPUs.
        gpt: the default small GPT (``n_layer``, ``n_head``, ``n_embd``, ``block_size``).
        batch_size: sequences per optimiser step for the small GPT.
        max_steps: optimiser steps for a chapter's main training run.
        eval_iters: batches per evaluation.
        corpus_chars: how many characters of a corpus a chapter trains on (``None``: all).
        compile: whether to ``torch.compile`` models.
    """

    name: str
    precision: str
    gpt: MappingProxyType
    batch_size: int
    max_steps: int
    eval_iters: int
    corpus_chars: int | None
    compile: bool

    def __post_init__(self) -> None:
        check_choice("name", self.name, PROFILE_NAMES)
        check_choice("precision", self.precision, PRECISIONS)
        if not isinstance(self.gpt, Mapping):
            raise TypeError(f"gpt must be a mapping of GPTConfig sizes, got "
                            f"{type(self.gpt).__name__}")
        for key in ("n_layer", "n_head", "n_embd", "block_size"):
            if key not in self.gpt:
                raise ValueError(f"gpt must give {key}, got keys {sorted(self.gpt)}")
            check_int(f"gpt[{key!r}]", self.gpt[key], min=1)
        for name in ("batch_size", "max_steps", "eval_iters"):
            check_int(name, getattr(self, name), min=1)
        if self.corpus_chars is not None:
            check_int("corpus_chars", self.corpus_chars, min=1)
        check_bool("compile", self.compile)

    def pick(self, *, ci: T, cpu: T, gpu: T) -> T:
        """Return the value for this profile: ``profile().pick(ci=200, cpu=2_000, gpu=5_000)``."""
        return {"ci": ci, "cpu": cpu, "gpu": gpu}[self.name]


def _make(name: str) -> Profile:
    if name == "ci":
        return Profile(
            name="ci", precision="fp32",
            gpt=MappingProxyType(dict(n_layer=2, n_head=2, n_embd=64, block_size=64)),
            batch_size=16, max_steps=150, eval_iters=5, corpus_chars=200_000, compile=False,
        )
    if name == "cpu":
        return Profile(
            name="cpu", precision="fp32",
            gpt=MappingProxyType(dict(n_layer=4, n_head=4, n_embd=128, block_size=128)),
            batch_size=32, max_steps=1_000, eval_iters=20, corpus_chars=None, compile=False,
        )
    from llmcourse.hardware import native_bf16

    return Profile(
        name="gpu", precision="bf16" if native_bf16() else "fp16",
        gpt=MappingProxyType(dict(n_layer=6, n_head=6, n_embd=384, block_size=256)),
        batch_size=64, max_steps=5_000, eval_iters=50, corpus_chars=None, compile=True,
    )


def profile(name: str | None = None) -> Profile:
    """Return the active :class:`Profile` (from ``name`` or ``LLMCOURSE_PROFILE``)."""
    source = "name"
    if name is None:
        name, source = os.environ.get("LLMCOURSE_PROFILE") or None, "LLMCOURSE_PROFILE"
    if name is None:
        name = "gpu" if torch.cuda.is_available() else "cpu"
    if not isinstance(name, str):
        raise TypeError(f"{source} must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in PROFILE_NAMES:
        raise ValueError(f"{source}={name!r} is not a profile; valid: {', '.join(PROFILE_NAMES)}")
    return _make(key)
