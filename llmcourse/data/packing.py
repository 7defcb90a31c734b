"""Pretraining data: a tokenizer, ``datasets``-based tokenisation, packing, a memory-mapped token
file and deterministic batches.

The pipeline of chapter 07 and ``python -m llmcourse.pretrain``::

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from llmcourse._checks import check_bool, check_int, check_path, check_str
from llmcourse._io import atomic_write_text, fsync_path, temp_path

EOS = "<|endoftext|>"


def _check_pos_int(name: str, value: object) -> int:
    return check_int(name, value, min=1)


def _input_ids(name: str, data: object) -> Sequence:
    """The ``input_ids`` column of a ``datasets.Dataset`` or of a dict of columns."""
    import datasets

    if not isinstance(data, (datasets.Dataset, Mapping)):
        raise TypeError(f"{name} must be a datasets.Dataset (or a dict of columns) with an "
                        f"'input_ids' column, got {type(data).__name__}")
    columns = data.column_names if isinstance(data, datasets.Dataset) else list(data)
    if "input_ids" not in columns:
        raise ValueError(f"{name} must have an 'input_ids' column (see tokenize_dataset), "
                         f"got columns {columns}")
    return data["input_ids"]


def _id_array(value: object, what: str) -> np.ndarray:
    """A 1-D array of integer token ids (empty allowed); floats, bools, strings refused."""
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of int token ids, got {type(value).__name__}")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except ValueError as err:  # ragged nesting
        raise ValueError(f"{what} must be a 1-D sequence of token ids ({err})") from err
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D sequence of token ids, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":  # 2.5 is not token 2, True is not token 1
        raise TypeError(f"{what} must hold integer token ids, got dtype {arr.dtype}")
    return arr


def train_bpe(text: str | Iterable[str], vocab_size: int = 2048, *, cache: str | os.PathLike | None = None):
    """Train a byte-level BPE (``tokenizers``) on ``text``; ``<|endoftext|>`` is token 0.

    Deterministic for a given text and vocabulary size. With ``cache`` (a directory) the
    tokenizer is stored as ``bpe-<hash>.json`` and loaded from there next time.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    _check_pos_int("vocab_size", vocab_size)
    if vocab_size < 257 + 1:
        raise ValueError(f"vocab_size must be at least 258 (256 bytes + <|endoftext|>), got {vocab_size}")
    if not isinstance(text, (str, Iterable)) or isinstance(text, (bytes, bytearray)):
        raise TypeError(f"text must be a str or an iterable of str, got {type(text).__name__}")
    texts = [text] if isinstance(text, str) else list(text)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("text must be a str or an iterable of str")
    if not any(texts):
        raise ValueError("text is empty: a tokenizer needs text to learn its merges from")
    if cache is not None:
        cache = check_path("cache", cache)
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
        atomic_write_text(path, tok.to_str())
    return tok


def tokenize_dataset(texts: Sequence[str] | object, tokenizer, *, text_column: str = "text",
                     add_eos: bool = True, batch_size: int = 1000):
    """Tokenise a list of texts (or a ``datasets.Dataset`` with ``text_column``) with a batched
    ``map``; returns a ``Dataset`` with one ``input_ids`` list per text (EOS appended)."""
    import datasets

    check_str("text_column", text_column, empty=False)
    check_bool("add_eos", add_eos)
    _check_pos_int("batch_size", batch_size)
    if not (callable(getattr(tokenizer, "encode_batch", None))
            and callable(getattr(tokenizer, "token_to_id", None))):
        raise TypeError("tokenizer must be a tokenizers.Tokenizer (with encode_batch and "
                        f"token_to_id, see train_bpe), got {type(tokenizer).__name__}")
    if isinstance(texts, datasets.Dataset):
        ds = texts
        if text_column not in ds.column_names:
            raise ValueError(f"text_column {text_column!r} not in the dataset's columns {ds.column_names}")
    elif isinstance(texts, (list, tuple)) and all(isinstance(t, str) for t in texts):
        if not texts:
            raise ValueError("texts is empty")
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
    import datasets

    _check_pos_int("block_size", block_size)
    _check_pos_int("batch_size", batch_size)
    if not isinstance(dataset, datasets.Dataset):
        raise TypeError(f"dataset must be a datasets.Dataset, got {type(dataset).__name__}")
    _input_ids("dataset", dataset)
    n = block_size + 1

    def group(batch):
        flat = [t for ids in batch["input_ids"] for t in ids]
        usable = len(flat) // n * n
        return {"input_ids": [flat[i:i + n] for i in range(0, usable, n)]}

    return dataset.map(group, batched=True, batch_size=batch_size, remove_columns=dataset.column_names,
                       load_from_cache_file=False, keep_in_memory=True)


def token_stream(dataset) -> Iterable[list[int]]:
    """Each row's ``input_ids``, one after the other (to feed :func:`write_token_file`)."""
    return iter(_input_ids("dataset", dataset))


def write_token_file(chunks: Iterable[Sequence[int]], path: str | os.PathLike, *, vocab_size: int = 65536) -> Path:
    """Write token ids to a flat binary file (``uint16`` if ``vocab_size <= 65536``, else
    ``uint32``) plus ``<path>.json`` describing it; atomic and durable (temp files named
    ``.<name>.<pid>.<hex>.tmp``, fsynced, renamed). Ids must be ints in ``[0, vocab_size)``."""
    path = check_path("path", path)
    vocab_size = check_int("vocab_size", vocab_size, min=1, max=2**32)
    if isinstance(chunks, (str, bytes)) or not isinstance(chunks, Iterable):
        raise TypeError("chunks must be an iterable of token-id sequences, got "
                        f"{type(chunks).__name__}")
    dtype = np.uint16 if vocab_size <= 2**16 else np.uint32
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = path.with_name(path.name + ".json")
    tmp, tmp_meta = temp_path(path), temp_path(meta)
    n = 0
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            for k, chunk in enumerate(chunks):
                arr = _id_array(chunk, f"chunks[{k}]")
                if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
                    raise ValueError(f"token ids must be in [0, {vocab_size}), got "
                                     f"{arr.min()}..{arr.max()} in chunks[{k}]")
                f.write(arr.astype(dtype).tobytes())
                n += arr.size
            f.flush()
            os.fsync(f.fileno())
        info = {"dtype": np.dtype(dtype).name, "tokens": n, "vocab_size": vocab_size}
        with open(os.open(tmp_meta, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "w") as m:
            m.write(json.dumps(info))
            m.flush()
            os.fsync(m.fileno())
        # a kill between the two renames leaves a pair whose sizes disagree: open_token_file
        # says so
        os.replace(tmp, path)
        os.replace(tmp_meta, meta)
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp_meta.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)
    return path


def open_token_file(path: str | os.PathLike) -> np.memmap:
    """Memory-map a file written by :func:`write_token_file` (read-only; nothing is loaded)."""
    path = check_path("path", path)
    meta = path.with_name(path.name + ".json")
    if not path.is_file() or not meta.is_file():
        raise ValueError(f"no token file at path {str(path)!r} (expected it and {meta.name})")
    try:
        info = json.loads(meta.read_text())
        dtype, n = np.dtype(info["dtype"]), info["tokens"]
        if dtype not in (np.uint16, np.uint32) or isinstance(n, bool) or not isinstance(n, int) \
                or n < 0:
            raise ValueError(f"dtype {dtype} and tokens {n!r} are not uint16/uint32 and a count")
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
    batch_size = _check_pos_int("batch_size", batch_size)
    block_size = _check_pos_int("block_size", block_size)
    if isinstance(tokens, torch.Tensor):
        tokens = tokens.detach().cpu().numpy()
    elif isinstance(tokens, (str, bytes)) or not isinstance(tokens, (np.ndarray, Sequence)):
        raise TypeError("tokens must be a 1-D array, tensor or list of int token ids, got "
                        f"{type(tokens).__name__}")
    elif not isinstance(tokens, np.ndarray):  # a list: checked below, then int64
        tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tokens.shape}")
    if tokens.size and tokens.dtype.kind not in "iu":  # 2.5 is not token 2
        raise TypeError(f"tokens must hold integer token ids, got dtype {tokens.dtype}")
    if tokens.dtype.kind == "i" and tokens.size and int(tokens.min()) < 0:
        raise ValueError(f"tokens must be non-negative token ids, found {int(tokens.min())}")
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
    check_int("seed", seed, min=0, max=2**63 - 1)
    check_bool("shuffle", shuffle)
    rows = _input_ids("blocks", blocks)
    try:
        data = torch.tensor(rows)
    except (ValueError, TypeError, RuntimeError) as err:  # ragged rows, non-numbers
        raise ValueError(f"blocks must hold rows of equal length (see pack_blocks): {err}") from err
    if data.dim() != 2 or data.is_floating_point() or data.dtype == torch.bool:
        raise ValueError("blocks must hold rows of int token ids, got a tensor of shape "
                         f"{tuple(data.shape)} and dtype {data.dtype}")
    if len(data) < batch_size:
        raise ValueError(f"blocks has {len(data)} rows, fewer than batch_size={batch_size}")
    data = data.long()

    def collate(rows):
        t = torch.stack(rows)
        return t[:, :-1].contiguous(), t[:, 1:].contiguous()

    return torch.utils.data.DataLoader(list(data), batch_size=batch_size, shuffle=shuffle, drop_last=True,
                                       collate_fn=collate, generator=torch.Generator().manual_seed(seed))
