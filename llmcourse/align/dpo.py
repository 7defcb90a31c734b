"""Direct Preference Optimisation (Rafailov et al., 2023), written plainly.

The loss pushes the policy's log-ratio to a frozen reference up on the chosen answer and down on
the rejected one::

    loss = -log σ(β · [(log π(y_w|x) - log π_ref(y_w|x)) - (log π(y_l|x) - log π_ref(y_l|x))])
    # y_w: the chosen answer, y_l: the rejected one

:func:`dpo_loss` matches TRL's ``DPOTrainer`` (``loss_type="sigmoid"``), including the implicit
rewards it logs. :func:`preference_pairs` builds pairs for the arithmetic task (the right answer
against a near miss), :func:`dpo_batch` lays them out as TRL does (chosen rows, then rejected
rows) and :func:`dpo_step` takes one optimiser step.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmcourse._checks import check_int, check_module, check_number, check_tensor
from llmcourse.align.logprobs import sequence_logps
from llmcourse.align.sft import chat_example
from llmcourse.align.task import ChatTokenizer, Problem, _check_problems, _check_tok
from llmcourse.finetune import collate_sft

__all__ = ["dpo_batch", "dpo_loss", "dpo_step", "perturb_answer", "preference_pairs"]


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             ref_chosen_logps: torch.Tensor, ref_rejected_logps: torch.Tensor,
             beta: float = 0.1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(loss, chosen_rewards, rejected_rewards)`` from summed sequence log-probs, each ``(B,)``.

    ``loss`` is the batch mean of ``-logsigmoid(beta * (chosen_logratio - rejected_logratio))``;
    the rewards are ``beta * logratio`` per pair, detached (DPO's implicit reward model).
    """
    named = {"policy_chosen_logps": policy_chosen_logps,
             "policy_rejected_logps": policy_rejected_logps,
             "ref_chosen_logps": ref_chosen_logps, "ref_rejected_logps": ref_rejected_logps}
    for name, t in named.items():
        check_tensor(name, t, ndim=1, dtype="float", shape="(pairs,)")
        if t.numel() == 0:
            raise ValueError(f"{name} must not be empty")
        if t.shape != policy_chosen_logps.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, policy_chosen_logps "
                             f"{tuple(policy_chosen_logps.shape)}: they must match")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} must be finite (log-probs), found NaN or inf")
    beta = check_number("beta", beta, min=0.0, min_open=True)
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (B,)
    loss = -F.logsigmoid(beta * (chosen_logratios - rejected_logratios)).mean()
    return loss, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def perturb_answer(problem: Problem, rng: random.Random) -> str:
    """A wrong answer close to the right one: one digit changed (a typical near miss)."""
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a Problem, got {type(problem).__name__}")
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random, got {type(rng).__name__}")
    right = problem.answer
    while True:
        digits = list(right)
        i = rng.randrange(len(digits))
        if digits[i] == "-":
            continue
        digits[i] = rng.choice([d for d in "0123456789" if d != digits[i]])
        wrong = "".join(digits)
        if wrong.lstrip("-")[:1] != "0" or wrong.lstrip("-") == "0":  # no leading zero
            return wrong


def preference_pairs(problems: Sequence[Problem], seed: int = 0) -> list[tuple[Problem, str, str]]:
    """``(problem, chosen, rejected)``: the right answer against :func:`perturb_answer`'s."""
    problems = _check_problems(problems)
    check_int("seed", seed)
    rng = random.Random(seed)
    return [(p, p.answer, perturb_answer(p, rng)) for p in problems]


def dpo_batch(tok: ChatTokenizer, pairs: Sequence[tuple[Problem, str, str]],
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, targets)`` of shape ``(2B, T)``: the B chosen conversations, then the B rejected
    ones, prompts masked with -100 — so :func:`~llmcourse.align.logprobs.sequence_logps` of a row
    is ``log p(answer + <|end|> | prompt)``."""
    _check_tok(tok)
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or not pairs:
        raise ValueError("pairs must be a non-empty sequence of (problem, chosen, rejected)")
    chosen, rejected = [], []
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 3 and isinstance(pair[0], Problem)
                and isinstance(pair[1], str) and isinstance(pair[2], str)):
            raise TypeError(f"pairs[{i}] must be a (Problem, chosen str, rejected str) triple")
        chosen.append(chat_example(tok, pair[0], pair[1]))
        rejected.append(chat_example(tok, pair[0], pair[2]))
    return collate_sft(chosen + rejected, pad_id=tok.pad_id)


def dpo_step(policy: nn.Module, ref_model: nn.Module, optimizer: torch.optim.Optimizer,
             batch: tuple[torch.Tensor, torch.Tensor], beta: float = 0.1) -> dict[str, float]:
    """One DPO update on a :func:`dpo_batch`. Returns the loss, mean rewards, margin and reward
    accuracy (the share of pairs whose chosen reward beats the rejected one)."""
    check_module("policy", policy)
    check_module("ref_model", ref_model)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError("batch must be the (ids, targets) pair of dpo_batch")
    ids, targets = batch
    check_tensor("ids", ids, ndim=2, dtype="int", shape="(2B, T)")
    check_tensor("targets", targets, ndim=2, dtype="int", shape="(2B, T)")
    if ids.size(0) % 2:
        raise ValueError(f"batch must hold chosen then rejected rows (an even count), got "
                         f"{ids.size(0)}")
    beta = check_number("beta", beta, min=0.0, min_open=True)
    with torch.no_grad():
        ref_c, ref_r = sequence_logps(ref_model, ids, targets).chunk(2)
    pol_c, pol_r = sequence_logps(policy, ids, targets).chunk(2)
    loss, rc, rr = dpo_loss(pol_c, pol_r, ref_c, ref_r, beta)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return {"loss": loss.item(), "chosen_reward": float(rc.mean()),
            "rejected_reward": float(rr.mean()), "margin": float((rc - rr).mean()),
            "reward_accuracy": float((rc > rr).float().mean())}
