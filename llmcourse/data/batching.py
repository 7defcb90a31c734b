"""From a stream of token ids to ``(x, y)`` training pairs for a language model.

A language model reads ``x = ids[i : i + T]`` and is asked, at every position, for the next
token: ``y = ids[i + 1 : i + T + 1]`` — the same window shifted by one. Every chapter that trains
a model uses these two helpers:

* :func:`make_blocks` cuts the whole stream into consecutive blocks (for evaluation: every
  token is predicted once);
* :func:`get_batch` draws ``batch_size`` windows at random offsets (for training).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from llmcourse._checks import check_str

__all__ = ["as_token_tensor", "get_batch", "make_blocks"]


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def _device(device: object) -> torch.device | None:
    """``device`` (``None``, a str or a ``torch.device``) as a ``torch.device``."""
    if device is None or isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a str, a torch.device or None, got {type(device).__name__}")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"device must name a torch device ('cpu', 'cuda', 'cuda:0', 'mps' ...), "
                         f"got {device!r}") from err


def as_token_tensor(ids: Sequence[int] | np.ndarray | torch.Tensor, name: str = "ids") -> torch.Tensor:
    """Return ``ids`` as a 1-D ``torch.long`` tensor (no copy when it already is one)."""
    check_str("name", name, empty=False)
    if isinstance(ids, torch.Tensor):
        t = ids
    elif isinstance(ids, np.ndarray):
        t = torch.from_numpy(ids)
    elif isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise TypeError(f"{name} must be a 1-D tensor, array or list of ints, got {type(ids).__name__}")
    else:
        try:
            t = torch.tensor(list(ids))
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(f"{name} must hold ints ({err})") from err
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D (a stream of token ids), got shape {tuple(t.shape)}")
    if t.numel() and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise TypeError(f"{name} must hold integer token ids, got dtype {t.dtype}")
    if t.numel() and int(t.min()) < 0:
        raise ValueError(f"{name} must hold non-negative token ids, found {int(t.min())}")
    return t.long()


def make_blocks(ids: Sequence[int] | np.ndarray | torch.Tensor, block_size: int,
                *, device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut a token stream into consecutive, non-overlapping ``(x, y)`` blocks.

    Returns two ``(n_blocks, block_size)`` long tensors with ``y[:, t] == x[:, t + 1]`` inside a
    block and ``y[b, -1]`` the token after block ``b``; ``n_blocks = (len(ids) - 1) // block_size``
    (a ragged tail is dropped). Every target position is used exactly once — what evaluation wants.

    >>> x, y = make_blocks([0, 1, 2, 3, 4, 5, 6], block_size=3)
    >>> x.tolist(), y.tolist()
    ([[0, 1, 2], [3, 4, 5]], [[1, 2, 3], [4, 5, 6]])
    """
    data = as_token_tensor(ids)
    block_size = _positive_int(block_size, "block_size")
    device = _device(device)
    n_blocks = (len(data) - 1) // block_size
    if n_blocks < 1:
        raise ValueError(f"ids has {len(data)} tokens: too short for one block of "
                         f"block_size={block_size} (needs block_size + 1 = {block_size + 1})")
    n = n_blocks * block_size
    x = data[:n].view(n_blocks, block_size)
    y = data[1:n + 1].view(n_blocks, block_size)
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


def get_batch(data: Sequence[int] | np.ndarray | torch.Tensor, block_size: int, batch_size: int,
              generator: torch.Generator | None = None,
              device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``batch_size`` random windows of ``block_size`` tokens and their next-token targets.

    Returns ``x, y`` of shape ``(batch_size, block_size)`` with ``y = x`` shifted by one position
    in the stream. Offsets are uniform over every valid start; pass a seeded
    ``torch.Generator`` for reproducible batches. ``device`` moves the batch (pinned memory and a
    non-blocking copy on CUDA).
    """
    data = as_token_tensor(data, "data")
    block_size = _positive_int(block_size, "block_size")
    batch_size = _positive_int(batch_size, "batch_size")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    device = _device(device)
    if len(data) < block_size + 1:
        raise ValueError(f"data has {len(data)} tokens; block_size={block_size} needs at least "
                         f"{block_size + 1}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    idx = starts[:, None] + offsets[None, :]
    x, y = data[idx], data[idx + 1]
    if device is not None:
        if device.type == "cuda":
            x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        else:
            x, y = x.to(device), y.to(device)
    return x, y
