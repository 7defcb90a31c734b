"""Argument checks shared by the package.

Each check raises ``TypeError`` for a wrong type and ``ValueError`` for a wrong value, with a
message that names the argument: ``"<name> must be ..., got ..."``. A bool is never accepted
as a number (``True`` is not ``1``), nor a float as an int (``2.5`` is not ``2``).
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch


def _got(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: object) -> str:
    return type(value).__name__


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {_kind(value)} {_got(value)}")
    return value


def check_int(name: str, value: object, *, min: int | None = None, max: int | None = None) -> int:
    """``value`` as an int (numpy ints too), in ``[min, max]`` when given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {_kind(value)} {_got(value)}")
    v = int(value)
    if (min is not None and v < min) or (max is not None and v > max):
        lo = "" if min is None else f" >= {min}"
        hi = "" if max is None else f" <= {max}"
        raise ValueError(f"{name} must be an int{lo}{' and' if lo and hi else ''}{hi}, got {v}")
    return v


def check_number(name: str, value: object, *, min: float | None = None, max: float | None = None,
                 min_open: bool = False, max_open: bool = False, allow_inf: bool = False) -> float:
    """``value`` as a float: finite (``+-inf`` only with ``allow_inf``, never NaN), in range.

    ``min_open``/``max_open`` exclude the bound itself.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_kind(value)} {_got(value)}")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    low_bad = min is not None and (v <= min if min_open else v < min)
    high_bad = max is not None and (v >= max if max_open else v > max)
    if low_bad or high_bad:
        if min is not None and max is not None:
            want = f"in {'(' if min_open else '['}{min}, {max}{')' if max_open else ']'}"
        elif min is not None:
            want = f"{'>' if min_open else '>='} {min}"
        else:
            want = f"{'<' if max_open else '<='} {max}"
        raise ValueError(f"{name} must be a number {want}, got {value!r}")
    return v


def check_str(name: str, value: object, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {_kind(value)} {_got(value)}")
    if not empty and not value.strip():
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: Iterable) -> object:
    """``value`` must be one of ``choices`` (a str when the choices are strs)."""
    choices = tuple(choices)
    if all(isinstance(c, str) for c in choices) and not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {', '.join(map(repr, choices))}; got "
                        f"{_kind(value)} {_got(value)}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def check_callable(name: str, value: object, what: str = "") -> Callable:
    if not callable(value):
        raise TypeError(f"{name} must be callable{what}, got {_kind(value)} {_got(value)}")
    return value


def check_type(name: str, value: object, cls: type) -> object:
    """``value`` if it is an instance of ``cls``, else a ``TypeError`` naming both."""
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a {cls.__name__}, got {_kind(value)}")
    return value


def check_module(name: str, value: object) -> torch.nn.Module:
    if not isinstance(value, torch.nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {_kind(value)}")
    return value


def check_path(name: str, value: object) -> Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {_kind(value)} {_got(value)}")
    if isinstance(value, str) and not value:
        raise ValueError(f"{name} must be a non-empty path, got ''")
    return Path(value)


def check_tensor(name: str, value: object, *, ndim: int | tuple[int, ...] | None = None,
                 dtype: str | None = None, shape: str = "") -> torch.Tensor:
    """A tensor with ``ndim`` dims (an int or a tuple of allowed counts) and a ``dtype`` kind:
    ``"float"`` (floating point) or ``"int"`` (integer, not bool). ``shape`` names the dims for
    the message, e.g. ``"(batch, seq_len)"``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor{' ' + shape if shape else ''}, got "
                        f"{_kind(value)}")
    dims = (ndim,) if isinstance(ndim, int) else ndim
    if dims is not None and value.dim() not in dims:
        want = shape or " or ".join(f"{d}-D" for d in dims)
        raise ValueError(f"{name} must have shape {want}, got {tuple(value.shape)}")
    if dtype == "float" and not value.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if dtype == "int" and (value.is_floating_point() or value.is_complex()
                           or value.dtype == torch.bool):
        raise ValueError(f"{name} must be an integer tensor, got dtype {value.dtype}")
    return value


def check_items(name: str, value: object, item_type: type | tuple[type, ...] | None = None,
                what: str = "items") -> list:
    """A non-empty sequence (a list or tuple; not a string) as a list; with ``item_type``, every
    item must be an instance of it. ``what`` names the items in the message."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of {what}, got {_kind(value)}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    if item_type is not None:
        for k, item in enumerate(value):
            if not isinstance(item, item_type):
                raise TypeError(f"{name} must hold {what}, found {_kind(item)} at position {k}")
    return list(value)


def check_int_list(name: str, values: object, *, min: int | None = None) -> list[int]:
    """A sequence (list, tuple, 1-D integer tensor or array) of ints as a list."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be a sequence of ints, got {_kind(values)} {_got(values)}")
    if hasattr(values, "tolist"):  # torch tensors and numpy arrays
        values = values.tolist()
        if not isinstance(values, list):
            raise ValueError(f"{name} must be 1-D, got a 0-D {_kind(values)}")
    out = list(values)
    for k, v in enumerate(out):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must hold ints, got {_kind(v)} {_got(v)} at position {k}")
        out[k] = v = int(v)
        if min is not None and v < min:
            raise ValueError(f"{name} must hold ints >= {min}, got {v} at position {k}")
    return out
