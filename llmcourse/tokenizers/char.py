"""Character-level tokenizer: one id per distinct character of a training text (chapter 01)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from llmcourse.tokenizers._common import _check_ids, _check_text

__all__ = ["CharTokenizer"]


class CharTokenizer:
    """One id per distinct character of a training text (ids follow sorted character order).

    >>> tok = CharTokenizer.train("hello")
    >>> tok.encode("hole"), tok.decode([0, 1])
    ([1, 3, 2, 0], 'eh')
    """

    def __init__(self, chars: Iterable[str]) -> None:
        if not isinstance(chars, Iterable):
            raise TypeError(f"chars must be an iterable of single characters, got "
                            f"{type(chars).__name__}")
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str):
                raise TypeError(f"chars must hold str characters, got {type(c).__name__} {c!r}")
            if len(c) != 1:
                raise ValueError(f"chars must be single characters, got {c!r}")
        if not chars:
            raise ValueError("chars must not be empty")
        if len(set(chars)) != len(chars):
            raise ValueError("chars must not repeat")
        self.itos: list[str] = chars
        self.stoi: dict[str, int] = {c: i for i, c in enumerate(chars)}
        self.name = "char"

    @classmethod
    def train(cls, text: str) -> CharTokenizer:
        """Build the vocabulary from the distinct characters of ``text``."""
        _check_text(text)
        if not text:
            raise ValueError("text must not be empty")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Map each character to its id; a character never seen in training is a ``ValueError``."""
        _check_text(text)
        try:
            return [self.stoi[c] for c in text]
        except KeyError as err:
            raise ValueError(
                f"text holds the character {err.args[0]!r}, which is not in this CharTokenizer's "
                f"vocabulary "
                f"({self.vocab_size} characters): a character-level vocabulary only knows the "
                "characters of its training text") from None

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self.itos[i] for i in _check_ids(ids, self.vocab_size))

    def tokens(self, text: str) -> list[str]:
        return [self.itos[i] for i in self.encode(text)]

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"
