"""A verifiable task made by the course: multi-digit arithmetic in a chat format.

Everything post-training needs, small enough to read in one sitting:

* :class:`Problem` and :func:`make_splits` — ``a + b`` / ``a - b`` problems, deterministic from a
  seed, with train and held-out splits that share no problem (``a+b`` and ``b+a`` count as the
  same problem, so they always land in the same split);
* :class:`ChatTokenizer` — the course's :class:`~llmcourse.tokenizers.CharTokenizer` plus four
  special tokens ``<|pad|>``, ``<|user|>``, ``<|assistant|>``, ``<|end|>`` (one id each);
* :func:`chat_prompt` / :func:`chat_text` — the chat template;
* :func:`parse_answer` and the rewards: :func:`correctness_reward` (the verifier: 1 if the answer
  is right and the model stopped, else 0) and two flawed ones that can be hacked,
  :func:`format_reward` (pays for any well-formed number) and :func:`length_reward` (pays per
  digit).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmcourse._checks import (
    check_bool,
    check_choice,
    check_int,
    check_int_list,
    check_items,
    check_number,
    check_str,
)
from llmcourse.finetune import split_of
from llmcourse.tokenizers import CharTokenizer

__all__ = [
    "ASSISTANT", "CHARS", "END", "OPS", "PAD", "REWARDS", "SPECIAL_TOKENS", "USER", "ChatTokenizer",
    "Problem", "chat_prompt", "chat_text", "correctness_reward", "format_reward", "length_reward",
    "make_splits", "parse_answer",
]

PAD, USER, ASSISTANT, END = "<|pad|>", "<|user|>", "<|assistant|>", "<|end|>"
SPECIAL_TOKENS = (PAD, USER, ASSISTANT, END)
CHARS = "0123456789+-"
OPS = ("+", "-")
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(s) for s in SPECIAL_TOKENS) + ")")
_NUMBER_RE = re.compile(r"-?\d+")


@dataclass(frozen=True)
class Problem:
    """``a op b`` with ``op`` in ``{"+", "-"}`` (subtraction keeps ``a >= b``)."""

    a: int
    op: str
    b: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "a", check_int("a", self.a, min=0))  # numpy ints -> int
        object.__setattr__(self, "b", check_int("b", self.b, min=0))
        check_choice("op", self.op, OPS)
        if self.op == "-" and self.a < self.b:
            raise ValueError(f"a must be >= b for a subtraction (answers are not negative), "
                             f"got {self.a}-{self.b}")

    @property
    def question(self) -> str:
        """The user's message, e.g. ``"12+345"``."""
        return f"{self.a}{self.op}{self.b}"

    @property
    def result(self) -> int:
        return self.a + self.b if self.op == "+" else self.a - self.b

    @property
    def answer(self) -> str:
        """The assistant's message, e.g. ``"357"``."""
        return str(self.result)

    @property
    def key(self) -> str:
        """What two problems are compared by: ``a+b`` and ``b+a`` share a key."""
        a, b = (min(self.a, self.b), max(self.a, self.b)) if self.op == "+" else (self.a, self.b)
        return f"{a}{self.op}{b}"


def make_splits(n_train: int, n_test: int, digits: int = 3, ops: Sequence[str] = ("+",),
                seed: int = 0, test_share: float = 0.2) -> dict[str, list[Problem]]:
    """``{"train": [...], "test": [...]}``: distinct problems with operands in ``[0, 10**digits)``.

    Problems are drawn with ``random.Random(seed)``; each one's split is decided by a hash of its
    :attr:`Problem.key` (a share ``test_share`` of all problems is held out). So no problem (nor
    its mirror ``b+a``) is in both splits, a problem held out under one seed is never trained on
    under another, and the held-out list of a seed does not change with ``n_train``. Raises
    ``ValueError`` if the task has too few problems.
    """
    check_int("n_train", n_train, min=1)
    check_int("n_test", n_test, min=1)
    check_int("digits", digits, min=1, max=18)
    check_int("seed", seed, min=0)
    if isinstance(ops, str) or not isinstance(ops, Sequence) or not ops:
        raise TypeError(f"ops must be a non-empty sequence of {OPS}, got {ops!r}")
    ops = tuple(ops)
    if any(op not in OPS for op in ops) or len(set(ops)) != len(ops):
        raise ValueError(f"ops must hold distinct operators from {OPS}, got {ops!r}")
    check_number("test_share", test_share, min=0.0, max=1.0, min_open=True, max_open=True)
    want = {"train": n_train, "test": n_test}
    fractions = (1.0 - test_share, 0.0, test_share)
    rng, hi = random.Random(seed), 10 ** digits
    splits: dict[str, list[Problem]] = {"train": [], "test": []}
    seen: set[str] = set()
    space = hi * hi  # ordered pairs; a generous cap on the draws before giving up
    for _ in range(20 * (n_train + n_test) + space * (4 + 2 * math.ceil(math.log(space)))):
        a, b, op = rng.randrange(hi), rng.randrange(hi), rng.choice(ops)
        if op == "-" and a < b:
            a, b = b, a
        p = Problem(a, op, b)
        if p.key in seen:
            continue
        seen.add(p.key)
        s = "test" if split_of(p.key, fractions) == "test" else "train"
        if len(splits[s]) < want[s]:
            splits[s].append(p)
        if all(len(splits[k]) == want[k] for k in want):
            break
    else:
        raise ValueError(f"the task with digits={digits}, ops={ops} has too few distinct problems "
                         f"for n_train={n_train}, n_test={n_test} (found "
                         f"{len(splits['train'])} and {len(splits['test'])})")
    assert not {p.key for p in splits["train"]} & {p.key for p in splits["test"]}
    return splits


class ChatTokenizer:
    """Characters of the task (a :class:`CharTokenizer`) plus the chat's special tokens.

    Ids ``0..3`` are ``<|pad|>``, ``<|user|>``, ``<|assistant|>``, ``<|end|>``; the characters
    follow. A special token written in the text is one id, never its characters.

    >>> tok = ChatTokenizer()
    >>> tok.encode("<|user|>1+2<|end|>")
    [1, 5, 14, 6, 3]
    """

    def __init__(self, chars: str = CHARS) -> None:
        check_str("chars", chars)
        self.chars = CharTokenizer(chars)  # validates: single, distinct characters
        self.special = SPECIAL_TOKENS
        self.pad_id, self.user_id, self.assistant_id, self.end_id = range(len(SPECIAL_TOKENS))
        self.itos = list(SPECIAL_TOKENS) + self.chars.itos
        self.name = "chat-char"

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; special tokens first, then character by character."""
        check_str("text", text)
        n = len(self.special)
        out: list[int] = []
        for piece in _SPECIAL_RE.split(text):
            if piece in self.special:
                out.append(self.special.index(piece))
            elif piece:
                out.extend(i + n for i in self.chars.encode(piece))
        return out

    def decode(self, ids: Sequence[int]) -> str:
        ids = check_int_list("ids", ids, min=0)
        bad = [i for i in ids if i >= self.vocab_size]
        if bad:
            raise ValueError(f"ids must be < vocab_size={self.vocab_size}, got {bad[0]}")
        return "".join(self.itos[i] for i in ids)

    def tokens(self, text: str) -> list[str]:
        return [self.itos[i] for i in self.encode(text)]

    def to_hf(self):
        """The same tokenizer as a ``transformers.PreTrainedTokenizerFast`` (same ids).

        For Hugging Face tools (TRL, lm-evaluation-harness): ``save_pretrained`` it next to a
        model exported with :meth:`llmcourse.model.GPT.to_hf`.
        """
        from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        vocab = {t: i for i, t in enumerate(self.itos)}
        backend = Tokenizer(models.WordLevel(vocab, unk_token=PAD))
        backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
        backend.decoder = decoders.Fuse()
        backend.add_special_tokens(list(self.special))
        return PreTrainedTokenizerFast(
            tokenizer_object=backend, pad_token=PAD, eos_token=END, bos_token=USER,
            unk_token=PAD, additional_special_tokens=[USER, ASSISTANT],
            clean_up_tokenization_spaces=False)

    def __repr__(self) -> str:
        return f"ChatTokenizer(vocab_size={self.vocab_size})"


def _check_tok(tok: object) -> ChatTokenizer:
    if not isinstance(tok, ChatTokenizer):
        raise TypeError(f"tok must be a ChatTokenizer, got {type(tok).__name__}")
    return tok


def _check_problems(problems: object) -> list[Problem]:
    return check_items("problems", problems, Problem, "Problem objects")


def chat_prompt(question: str) -> str:
    """What the model is given: ``<|user|>question<|end|><|assistant|>``."""
    check_str("question", question, empty=False)
    return f"{USER}{question}{END}{ASSISTANT}"


def chat_text(question: str, answer: str) -> str:
    """A whole conversation: the prompt, the answer, and the end token that stops generation."""
    check_str("answer", answer)
    return f"{chat_prompt(question)}{answer}{END}"


def parse_answer(completion: str, require_end: bool = True) -> int | None:
    """The integer the assistant answered, or ``None`` if there is none.

    ``completion`` is the generated text after the prompt. The answer is what comes before the
    first ``<|end|>``; it must be an integer and nothing else. With ``require_end`` a completion
    that never stopped has no answer.
    """
    check_str("completion", completion)
    check_bool("require_end", require_end)
    head, found, _ = completion.partition(END)
    if require_end and not found:
        return None
    return int(head) if _NUMBER_RE.fullmatch(head) else None


def _check_reward_args(completion: str, problem: Problem) -> None:
    check_str("completion", completion)
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem, got {type(problem).__name__}")


def correctness_reward(completion: str, problem: Problem) -> float:
    """The verifier: 1.0 if the parsed answer equals the problem's result, else 0.0."""
    _check_reward_args(completion, problem)
    return float(parse_answer(completion) == problem.result)


def format_reward(completion: str, problem: Problem) -> float:
    """A flawed reward: 1.0 for any well-formed, stopped integer answer — right or wrong."""
    _check_reward_args(completion, problem)
    return float(parse_answer(completion) is not None)


def length_reward(completion: str, problem: Problem, per_digit: float = 0.1) -> float:
    """A flawed reward: pays ``per_digit`` for every digit generated before the end (or the end
    of the completion) — longer answers earn more, so RL learns to ramble instead of to add."""
    _check_reward_args(completion, problem)
    check_number("per_digit", per_digit, min=0.0, min_open=True)
    head = completion.partition(END)[0]
    return per_digit * sum(c.isdigit() for c in head)


REWARDS: dict[str, Callable[[str, Problem], float]] = {
    "correct": correctness_reward, "format": format_reward, "length": length_reward}
