"""The online path of chapter 10: the same SFT and DPO with TRL on a Hugging Face model.

On Colab (``LLMCOURSE_ONLINE=1``) the chapter trains a small instruct model from the hub
(:data:`DEFAULT_INSTRUCT_MODEL`) with TRL's ``SFTTrainer`` and ``DPOTrainer``; offline, the same
cells run on a local stand-in: the chapter's own GPT exported to a Hugging Face folder.

* :func:`resolve_instruct_model` — the hub name when downloads are on, else the local folder, and
  which of the two it is;
* :func:`export_chat_model` — a :class:`~llmcourse.model.GPT` and the
  :class:`~llmcourse.align.task.ChatTokenizer` as a folder ``from_pretrained`` loads, with
  :data:`CHAT_TEMPLATE` so ``apply_chat_template`` writes the course's chat format;
* :func:`sft_dataset` / :func:`dpo_dataset` — the task as TRL's conversational
  prompt-completion and preference datasets;
* :func:`hf_task_accuracy` — greedy accuracy of a Hugging Face model on the task, through its own
  chat template (the same number as :func:`~llmcourse.align.evals.task_accuracy` for an export).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from llmcourse._checks import check_int, check_module, check_path, check_str
from llmcourse.align.task import (
    _NUMBER_RE,
    ASSISTANT,
    END,
    USER,
    ChatTokenizer,
    Problem,
    _check_problems,
    _check_tok,
)

__all__ = [
    "CHAT_TEMPLATE", "DEFAULT_INSTRUCT_MODEL", "dpo_dataset", "export_chat_model",
    "hf_task_accuracy", "resolve_instruct_model", "sft_dataset",
]

DEFAULT_INSTRUCT_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"

#: Jinja chat template of the course's format: ``<|user|>q<|end|><|assistant|>a<|end|>``; with
#: ``add_generation_prompt`` it ends on ``<|assistant|>`` — exactly :func:`~llmcourse.align.chat_prompt`.
CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}" + USER + "{{ m['content'] }}" + END
    + "{% elif m['role'] == 'assistant' %}" + ASSISTANT + "{{ m['content'] }}" + END
    + "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}" + ASSISTANT + "{% endif %}"
)


def resolve_instruct_model(name: str = DEFAULT_INSTRUCT_MODEL,
                           local: str | os.PathLike | None = None) -> tuple[str, str]:
    """``(name_or_path, where)``: the hub model ``name`` (``where="hub"``) when downloads are on
    (``LLMCOURSE_ONLINE=1``, see :func:`llmcourse.env.online`), else the local Hugging Face
    folder ``local`` (``where="local"``, e.g. from :func:`export_chat_model`).

    Raises ``ValueError`` offline when ``local`` is missing or is not a model folder.
    """
    from llmcourse.env import online

    check_str("name", name, empty=False)
    if online():
        return name, "hub"
    if local is None:
        raise ValueError(f"offline (LLMCOURSE_ONLINE is not 1) the hub model {name!r} cannot be "
                         "downloaded: pass local=, a folder from export_chat_model")
    folder = check_path("local", local)
    if not (folder / "config.json").is_file():
        raise ValueError(f"local must be a Hugging Face model folder (with config.json), got "
                         f"{str(folder)!r}")
    return str(folder), "local"


def export_chat_model(model: nn.Module, tok: ChatTokenizer, folder: str | os.PathLike) -> Path:
    """Save ``model`` (a :class:`~llmcourse.model.GPT`, via ``to_hf``) and ``tok`` (as a
    ``PreTrainedTokenizerFast`` with :data:`CHAT_TEMPLATE`) to ``folder``, as safetensors;
    returns the folder. ``AutoModelForCausalLM``/``AutoTokenizer.from_pretrained`` load it."""
    check_module("model", model)
    _check_tok(tok)
    if not hasattr(model, "to_hf"):
        raise TypeError(f"model must be an llmcourse GPT (with .to_hf), got {type(model).__name__}")
    out = check_path("folder", folder)
    hf = model.to_hf()
    for cfg in (hf.config, hf.generation_config):  # the tokenizer's special tokens, so that
        cfg.bos_token_id, cfg.eos_token_id = tok.user_id, tok.end_id  # generate() stops at
        cfg.pad_token_id = tok.pad_id  # <|end|> and TRL has nothing to realign
    hf.save_pretrained(out, safe_serialization=True)
    hf_tok = tok.to_hf()
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.save_pretrained(out)
    return out


def _user(question: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": question}]


def _assistant(answer: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": answer}]


def sft_dataset(problems: Sequence[Problem]):
    """A ``datasets.Dataset`` of conversational prompt-completion pairs (the right answer):
    ``SFTTrainer`` then trains on the completion only — the prompt masked, as ours."""
    from datasets import Dataset

    problems = _check_problems(problems)
    return Dataset.from_dict({"prompt": [_user(p.question) for p in problems],
                              "completion": [_assistant(p.answer) for p in problems]})


def dpo_dataset(pairs: Sequence[tuple[Problem, str, str]]):
    """A conversational preference ``datasets.Dataset`` (``prompt``, ``chosen``, ``rejected``)
    from ``(problem, chosen, rejected)`` triples, for ``DPOTrainer``."""
    from datasets import Dataset

    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs:
        raise ValueError("pairs must be a non-empty sequence of (problem, chosen, rejected)")
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 3 and isinstance(pair[0], Problem)
                and isinstance(pair[1], str) and isinstance(pair[2], str)):
            raise TypeError(f"pairs[{i}] must be a (Problem, chosen str, rejected str) triple")
    return Dataset.from_dict({"prompt": [_user(p.question) for p, _, _ in pairs],
                              "chosen": [_assistant(c) for _, c, _ in pairs],
                              "rejected": [_assistant(r) for _, _, r in pairs]})


@torch.no_grad()
def hf_task_accuracy(model: nn.Module, tokenizer, problems: Sequence[Problem],
                     max_new_tokens: int | None = None) -> dict[str, float]:
    """Greedy accuracy of a Hugging Face causal LM on ``problems`` through ``tokenizer``'s chat
    template, and the share of answers that end with its ``eos_token``.

    The answer is the text generated before the end token (special tokens kept, whitespace
    stripped); it must be an integer equal to the problem's result (the rule of
    :func:`~llmcourse.align.task.parse_answer`). Returns ``{"accuracy", "end_rate", "n"}``, as
    :func:`~llmcourse.align.evals.task_accuracy` does for our GPT.
    """
    check_module("model", model)
    if not hasattr(tokenizer, "apply_chat_template") or getattr(tokenizer, "eos_token_id",
                                                                None) is None:
        raise TypeError("tokenizer must be a Hugging Face tokenizer with a chat template and an "
                        "eos_token")
    problems = _check_problems(problems)
    if max_new_tokens is None:
        max_new_tokens = max(len(p.answer) for p in problems) + 2
    check_int("max_new_tokens", max_new_tokens, min=1)
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    was_training = model.training
    model.eval()
    correct = ended = 0
    try:
        for p in problems:
            text = tokenizer.apply_chat_template(_user(p.question), tokenize=False,
                                                 add_generation_prompt=True)
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
            ids = ids.to(device)  # (1, T)
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=max_new_tokens, eos_token_id=eos,
                                 pad_token_id=pad)
            new = out[0, ids.size(1):].tolist()
            stopped = eos in new
            new = new[:new.index(eos)] if stopped else new
            answer = tokenizer.decode(new, skip_special_tokens=False).strip()
            ended += stopped
            correct += stopped and _NUMBER_RE.fullmatch(answer) is not None \
                and int(answer) == p.result
    finally:
        model.train(was_training)
    return {"accuracy": correct / len(problems), "end_rate": ended / len(problems),
            "n": float(len(problems))}
