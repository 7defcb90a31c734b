"""The data path, from text to training batches.

* ``corpora``: the texts the course trains on, offline first (:func:`load_corpus`,
  :func:`stdlib_docstrings`, :func:`train_val_split`).
* ``batching``: a stream of token ids → ``(x, y)`` pairs shifted by one (:func:`make_blocks`,
  :func:`get_batch`), as chapters 01–06 use them.
* ``packing``: the pretraining pipeline of chapter 07 and ``python -m llmcourse.pretrain``: a BPE
  tokenizer, batched tokenisation and packing, a memory-mapped token file, and the
  deterministic ``get_batch(generator)`` the :class:`llmcourse.train.Trainer` resumes exactly.
"""

from llmcourse.data.batching import as_token_tensor, get_batch, make_blocks
from llmcourse.data.corpora import (
    CORPORA,
    OFFLINE_CORPORA,
    ONLINE_CORPORA,
    Docstring,
    cache_dir,
    load_corpus,
    stdlib_docstrings,
    train_val_split,
)
from llmcourse.data.packing import (
    EOS,
    blocks_loader,
    make_get_batch,
    open_token_file,
    pack_blocks,
    token_stream,
    tokenize_dataset,
    train_bpe,
    write_token_file,
)

__all__ = [
    "CORPORA",
    "EOS",
    "OFFLINE_CORPORA",
    "ONLINE_CORPORA",
    "Docstring",
    "as_token_tensor",
    "blocks_loader",
    "cache_dir",
    "get_batch",
    "load_corpus",
    "make_blocks",
    "make_get_batch",
    "open_token_file",
    "pack_blocks",
    "stdlib_docstrings",
    "token_stream",
    "tokenize_dataset",
    "train_bpe",
    "train_val_split",
    "write_token_file",
]
