"""Pretraining data: a tokenizer, ``datasets``-based tokenisation, packing, a memory-mapped token
file and deterministic batches.

The pipeline of chapter 06 and ``python -m llmcourse.pretrain``::

    tok = train_bpe(text, vocab_size=2048)                  # byte-level BPE (HF tokenizers)
    ids = tokenize_dataset(texts, tok)                       # datasets.Dataset, batched map
    blocks = pack_blocks(ids, block_size=64)                 # fixed-length blocks, batched map
    write_token_file(token_stream(ids), "train.bin")         # or a flat memory-mapped file
    tokens = open_token_file("train.bin")                    # np.memmap, nothing loaded in RAM
    get_batch = make_get_batch(tokens, batch_size=16, block_size=64)
    x, y = get_batch(torch.Generator().manual_seed(0))       # deterministic given the generator
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

EOS = "<|endoftext|>"


def _check_pos_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def train_bpe(text: str | Iterable[str], vocab_size: int = 2048, *, cache: str | os.PathLike | None = None):
    """Train a byte-level BPE (``tokenizers``) on ``text``; ``<|endoftext|>`` is token 0.

    Deterministic for a given text and vocabulary size. With ``cache`` (a directory) the
    tokenizer is stored as ``bpe-<hash>.json`` and loaded from there next time.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    _check_pos_int("vocab_size", vocab_size)
    if vocab_size < 257 + 1:
        raise ValueError(f"vocab_size must be at least 258 (256 bytes + <|endoftext|>), got {vocab_size}")
    texts = [text] if isinstance(text, str) else list(text)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise TypeError("text must be a str or an iterable of str")
    path = None
    if cache is not None:
        h = hashlib.sha256()
        for t in texts:
            h.update(t.encode())
        h.update(str(vocab_size).encode())
        path = Path(cache) / f"bpe-{h.hexdigest()[:16]}.json"
        if path.is_file():
            return Tokenizer.from_file(str(path))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
            pass
        tok.save(f.name)
        os.replace(f.name, path)
    return tok


def tokenize_dataset(texts: Sequence[str] | object, tokenizer, *, text_column: str = "text",
                     add_eos: bool = True, batch_size: int = 1000):
    """Tokenise a list of texts (or a ``datasets.Dataset`` with ``text_column``) with a batched
    ``map``; returns a ``Dataset`` with one ``input_ids`` list per text (EOS appended)."""
    import datasets

    if isinstance(texts, datasets.Dataset):
        ds = texts
        if text_column not in ds.column_names:
            raise ValueError(f"text_column {text_column!r} not in the dataset's columns {ds.column_names}")
    elif isinstance(texts, (list, tuple)) and all(isinstance(t, str) for t in texts):
        ds = datasets.Dataset.from_dict({text_column: list(texts)})
    else:
        raise TypeError("texts must be a list of str or a datasets.Dataset")
    eos = tokenizer.token_to_id(EOS) if add_eos else None
    if add_eos and eos is None:
        raise ValueError(f"tokenizer has no {EOS} token; pass add_eos=False")

    def encode(batch):
        encs = tokenizer.encode_batch(batch[text_column])
        return {"input_ids": [e.ids + ([eos] if add_eos else []) for e in encs]}

    return ds.map(encode, batched=True, batch_size=batch_size, remove_columns=ds.column_names,
                  load_from_cache_file=False, keep_in_memory=True)


def pack_blocks(dataset, block_size: int, *, batch_size: int = 1000):
    """Concatenate ``input_ids`` across rows and cut them into blocks of ``block_size + 1``
    tokens (one extra so ``x = block[:-1]`` and ``y = block[1:]``); a leftover shorter than a
    block is dropped (per map batch). Batched ``map``, like Hugging Face's ``run_clm`` ``group_texts``."""
    _check_pos_int("block_size", block_size)
    if "input_ids" not in getattr(dataset, "column_names", ()):
        raise ValueError("dataset must have an 'input_ids' column (see tokenize_dataset)")
    n = block_size + 1

    def group(batch):
        flat = [t for ids in batch["input_ids"] for t in ids]
        usable = len(flat) // n * n
        return {"input_ids": [flat[i:i + n] for i in range(0, usable, n)]}

    return dataset.map(group, batched=True, batch_size=batch_size, remove_columns=dataset.column_names,
                       load_from_cache_file=False, keep_in_memory=True)


def token_stream(dataset) -> Iterable[list[int]]:
    """Yield each row's ``input_ids`` (to feed :func:`write_token_file`)."""
    yield from dataset["input_ids"]


def write_token_file(chunks: Iterable[Sequence[int]], path: str | os.PathLike, *, vocab_size: int = 65536) -> Path:
    """Write token ids to a flat binary file (``uint16`` if ``vocab_size <= 65536``, else
    ``uint32``) plus ``<path>.json`` describing it; atomic (temp file + rename)."""
    path = Path(path)
    _check_pos_int("vocab_size", vocab_size)
    dtype = np.uint16 if vocab_size <= 2**16 else np.uint32
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as f:
        for chunk in chunks:
            arr = np.asarray(chunk, dtype=np.int64)
            if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
                os.unlink(f.name)
                raise ValueError(f"token ids must be in [0, {vocab_size}), got {arr.min()}..{arr.max()}")
            f.write(arr.astype(dtype).tobytes())
            n += arr.size
    meta = path.with_name(path.name + ".json")
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as m:
        m.write(json.dumps({"dtype": np.dtype(dtype).name, "tokens": n, "vocab_size": vocab_size}))
    # a kill between the two renames leaves a pair whose sizes disagree: open_token_file says so
    os.replace(f.name, path)
    os.replace(m.name, meta)
    return path


def open_token_file(path: str | os.PathLike) -> np.memmap:
    """Memory-map a file written by :func:`write_token_file` (read-only; nothing is loaded)."""
    path = Path(path)
    meta = path.with_name(path.name + ".json")
    if not path.is_file() or not meta.is_file():
        raise ValueError(f"no token file at {str(path)!r} (expected it and {meta.name})")
    try:
        info = json.loads(meta.read_text())
        dtype, n = np.dtype(info["dtype"]), int(info["tokens"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{meta.name} is not a token-file description ({err}); rewrite the file") from err
    if path.stat().st_size != n * dtype.itemsize:
        raise ValueError(f"{path.name} holds {path.stat().st_size} bytes but {meta.name} describes "
                         f"{n} {dtype.name} tokens: the pair is from different writes; rewrite it")
    return np.memmap(path, dtype=dtype, mode="r", shape=(n,))


def make_get_batch(tokens: np.ndarray | torch.Tensor | Sequence[int], batch_size: int, block_size: int,
                   ) -> Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor]]:
    """A ``get_batch(generator) -> (x, y)`` drawing ``batch_size`` random windows of
    ``block_size`` tokens (``y`` is ``x`` shifted by one), nanoGPT-style.

    Only ``generator`` decides the windows, so the same generator state gives the same batch —
    what makes :class:`llmcourse.train.Trainer` resume exactly. Works on a memmap without
    loading it. Returns CPU ``int64`` tensors.
    """
    _check_pos_int("batch_size", batch_size)
    _check_pos_int("block_size", block_size)
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.cpu().numpy()
    elif not isinstance(tokens, np.ndarray):
        tokens = np.asarray(tokens, dtype=np.int64)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tokens.shape}")
    n = len(tokens) - block_size - 1
    if n < 0:
        raise ValueError(f"need more than block_size + 1 = {block_size + 1} tokens, got {len(tokens)}")

    def get_batch(generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        starts = torch.randint(n + 1, (batch_size,), generator=generator).tolist()
        rows = np.stack([np.asarray(tokens[s:s + block_size + 1], dtype=np.int64) for s in starts])
        t = torch.from_numpy(rows)
        return t[:, :-1].contiguous(), t[:, 1:].contiguous()

    return get_batch


def blocks_loader(blocks, batch_size: int, *, seed: int = 0, shuffle: bool = True):
    """A ``DataLoader`` over packed blocks yielding ``(x, y)``, shuffled by its own seeded
    generator, so a fresh loader replays the same order (exact resume with the Trainer)."""
    _check_pos_int("batch_size", batch_size)
    data = torch.tensor(blocks["input_ids"], dtype=torch.long)

    def collate(rows):
        t = torch.stack(rows)
        return t[:, :-1].contiguous(), t[:, 1:].contiguous()

    return torch.utils.data.DataLoader(list(data), batch_size=batch_size, shuffle=shuffle, drop_last=True,
                                       collate_fn=collate, generator=torch.Generator().manual_seed(seed))
