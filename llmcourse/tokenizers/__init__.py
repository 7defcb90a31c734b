"""Tokenizers: text → integer ids → text.

* :class:`CharTokenizer` — one id per character seen in a training text (chapter 01).
* :class:`BPETokenizer` — byte-level byte-pair encoding written from scratch (chapter 02):
  ``BPETokenizer.train(text, vocab_size)``, ``.encode``, ``.decode``, ``.save``/``.load``.
  It works on UTF-8 *bytes*, so any Unicode text round-trips exactly — there is no unknown token.
  ``BPETokenizer.from_tiktoken(encoding)`` loads the ranks of a tiktoken encoding (GPT-4's
  cl100k) into the same class, and its ``encode`` returns tiktoken's ids.
* :func:`merges_from_ranks` — recover the ordered merges of a byte-level BPE from its
  token → rank table (what tiktoken stores).
* :func:`load_tokenizer` — real, pretrained tokenizers behind one small interface:
  ``"cl100k"`` (GPT-4's byte-level BPE, ``tiktoken``) and ``"minilm"`` (the WordPiece of
  all-MiniLM-L6-v2, a BERT-family encoder), offline copies first.

Every tokenizer here has the same small interface: ``name``, ``vocab_size``,
``encode(text) -> list[int]``, ``decode(ids) -> str`` and ``tokens(text) -> list[str]`` (the
pieces, for display). Pretrained ones also expose the library object as ``.backend``.

The package is split by concept: :mod:`~llmcourse.tokenizers.char`,
:mod:`~llmcourse.tokenizers.bpe`, :mod:`~llmcourse.tokenizers.ranks` and
:mod:`~llmcourse.tokenizers.pretrained`; everything is importable from ``llmcourse.tokenizers``.
"""

from llmcourse.tokenizers.bpe import (  # noqa: F401 - private names for tests and checkers
    _FORMAT,
    _FORMAT_VERSION,
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    _merge,
    pre_split,
)
from llmcourse.tokenizers.char import CharTokenizer
from llmcourse.tokenizers.pretrained import OFFLINE_HINT, PretrainedTokenizer, load_tokenizer
from llmcourse.tokenizers.ranks import merges_from_ranks

__all__ = [
    "GPT2_SPLIT_PATTERN",
    "OFFLINE_HINT",
    "BPETokenizer",
    "CharTokenizer",
    "PretrainedTokenizer",
    "load_tokenizer",
    "merges_from_ranks",
    "pre_split",
]
