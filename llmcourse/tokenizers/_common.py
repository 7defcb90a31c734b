"""Argument checks shared by the tokenizers: a text must be a ``str``, ids a sequence of ints."""

from __future__ import annotations

import numbers
from collections.abc import Iterable


def _check_text(text: object, name: str = "text") -> str:
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a str, got {type(text).__name__}")
    return text


def _check_ids(ids: object, vocab_size: int) -> list[int]:
    """Validate ``ids`` (a sequence of ints in ``[0, vocab_size)``) and return them as a list."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        raise TypeError(f"ids must be a sequence of ints, got {type(ids).__name__}")
    if hasattr(ids, "tolist"):  # torch tensors and numpy arrays
        ids = ids.tolist()
    out = list(ids)
    for k, i in enumerate(out):
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"ids must hold ints, found {type(i).__name__} ({i!r})")
        out[k] = i = int(i)  # numpy integers too
        if not 0 <= i < vocab_size:
            raise ValueError(f"id {i} is out of range: valid ids are 0..{vocab_size - 1}")
    return out
