"""Group Relative Policy Optimisation (Shao et al., 2024, DeepSeekMath), written plainly.

For each prompt, sample a *group* of ``G`` completions, score each with a verifiable reward,
and use the reward relative to the group as the advantage — no value network::

    A_i = (r_i - mean(r_group)) / (std(r_group) + eps)

The policy loss is PPO's clipped surrogate per completion token, plus a KL penalty to a frozen
reference model with the "k3" estimator ``exp(ref - logp) - (ref - logp) - 1`` (always >= 0)::

    loss_t = -min(ρ_t A, clip(ρ_t, 1-ε, 1+ε) A) + β · KL_t,   ρ_t = π(y_t) / π_old(y_t)

as TRL's ``GRPOTrainer`` computes it (``loss_type="grpo"``: mean over each completion's
tokens, then over completions; ``"bnpo"``: mean over all completion tokens of the batch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from llmcourse._checks import (
    check_bool,
    check_callable,
    check_choice,
    check_int,
    check_module,
    check_number,
    check_tensor,
)
from llmcourse.align import task
from llmcourse.align.evals import sample_completions
from llmcourse.align.logprobs import IGNORE, token_logps
from llmcourse.align.task import ChatTokenizer, Problem, chat_prompt, parse_answer

__all__ = [
    "LOSS_TYPES", "Rollout", "group_advantages", "grpo_loss", "grpo_step", "kl_k3", "rollout",
]

LOSS_TYPES = ("grpo", "bnpo")


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-4,
                     scale: bool = True) -> torch.Tensor:
    """Rewards minus their group's mean, divided by the group's std (+ ``eps``), shape ``(N·G,)``.

    ``rewards`` is ``(N·G,)`` with each prompt's ``G = group_size`` completions adjacent (or
    ``(N, G)``). The std is the sample std (Bessel-corrected), and ``eps = 1e-4``, as in TRL. A
    group whose completions all got the same reward has advantage 0: nothing to learn from it.
    ``scale=False`` skips the division (Dr. GRPO).
    """
    check_tensor("rewards", rewards, ndim=(1, 2), dtype="float", shape="(N*G,) or (N, G)")
    check_int("group_size", group_size, min=2)
    flat = rewards.reshape(-1)
    if flat.numel() == 0 or flat.numel() % group_size:
        raise ValueError(f"rewards must hold a positive multiple of group_size={group_size} "
                         f"values, got {flat.numel()}")
    if rewards.dim() == 2 and rewards.size(1) != group_size:
        raise ValueError(f"rewards of shape (N, G) must have G = group_size = {group_size}")
    if not bool(torch.isfinite(flat).all()):
        raise ValueError("rewards must be finite")
    check_number("eps", eps, min=0.0)
    check_bool("scale", scale)
    groups = flat.view(-1, group_size)  # (N, G)
    adv = groups - groups.mean(dim=1, keepdim=True)
    if scale:
        adv = adv / (groups.std(dim=1, keepdim=True) + eps)  # sample std (unbiased)
    return adv.reshape(-1)


def kl_k3(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token KL(π || π_ref) estimate ``exp(ref - logp) - (ref - logp) - 1`` (>= 0, unbiased
    for tokens sampled from π; Schulman's "k3")."""
    check_tensor("logps", logps, dtype="float")
    check_tensor("ref_logps", ref_logps, dtype="float")
    if logps.shape != ref_logps.shape:
        raise ValueError(f"ref_logps must have the shape of logps {tuple(logps.shape)}, got "
                         f"{tuple(ref_logps.shape)}")
    d = ref_logps - logps
    return torch.exp(d) - d - 1


def grpo_loss(logps: torch.Tensor, old_logps: torch.Tensor, ref_logps: torch.Tensor | None,
              advantages: torch.Tensor, mask: torch.Tensor, epsilon: float = 0.2,
              beta: float = 0.04, loss_type: str = "grpo") -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO loss over completion tokens, and statistics (``kl``, ``clip_ratio``).

    Args:
        logps: ``(B, T)`` log-probs of the sampled tokens under the policy (with gradients).
        old_logps: ``(B, T)`` the same under the policy that sampled them (detached); equal to
            ``logps`` on the first update, so the ratio is 1 and only its gradient counts.
        ref_logps: ``(B, T)`` under the frozen reference; may be ``None`` when ``beta == 0``
            (given, the KL is measured and reported even when it is not penalised).
        advantages: ``(B,)`` one per completion (:func:`group_advantages`).
        mask: ``(B, T)`` 1 on completion tokens, 0 on prompt and padding.
        epsilon: the clip range; ``beta``: the KL coefficient (0: no reference needed).
        loss_type: ``"grpo"`` (per-sequence token mean, then mean) or ``"bnpo"`` (token mean).
    """
    for name, t in (("logps", logps), ("old_logps", old_logps), ("mask", mask)):
        check_tensor(name, t, ndim=2, shape="(batch, time)")
        if t.shape != logps.shape:
            raise ValueError(f"{name} has shape {tuple(t.shape)}, logps {tuple(logps.shape)}")
    check_tensor("logps", logps, dtype="float")
    check_tensor("advantages", advantages, ndim=1, dtype="float", shape="(batch,)")
    if advantages.shape != logps.shape[:1]:
        raise ValueError(f"advantages must have shape ({logps.size(0)},), one per completion, "
                         f"got {tuple(advantages.shape)}")
    epsilon = check_number("epsilon", epsilon, min=0.0, min_open=True)
    beta = check_number("beta", beta, min=0.0)
    check_choice("loss_type", loss_type, LOSS_TYPES)
    if beta > 0 and ref_logps is None:
        raise ValueError("ref_logps must be given when beta > 0 (the KL penalty needs them)")
    if ref_logps is not None and (not isinstance(ref_logps, torch.Tensor)
                                  or ref_logps.shape != logps.shape):
        raise ValueError("ref_logps must be None or a tensor shaped like logps")
    mask = mask.to(logps.dtype)
    adv = advantages.to(logps.dtype).unsqueeze(1)  # (B, 1)
    ratio = torch.exp(logps - old_logps.detach())  # (B, T)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon)
    per_token = -torch.min(ratio * adv, clipped * adv)  # (B, T)
    kl = kl_k3(logps, ref_logps.detach()) if ref_logps is not None else torch.zeros_like(logps)
    if beta > 0:
        per_token = per_token + beta * kl
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    else:
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    with torch.no_grad():
        n = mask.sum().clamp(min=1.0)
        is_clipped = ((ratio < 1 - epsilon) & (adv < 0)) | ((ratio > 1 + epsilon) & (adv > 0))
        stats = {"kl": float((kl * mask).sum() / n),
                 "clip_ratio": float((is_clipped.to(mask.dtype) * mask).sum() / n)}
    return loss, stats


@dataclass
class Rollout:
    """A group of sampled completions per problem, ready for :func:`grpo_loss`."""

    ids: torch.Tensor  # (N·G, T) prompt + completion, right-padded
    targets: torch.Tensor  # (N·G, T) completion tokens; -100 on the prompt and padding
    rewards: torch.Tensor  # (N·G,)
    correct: torch.Tensor  # (N·G,) 1.0 where the answer is right (whatever the reward pays)
    texts: list[str]  # the completions, decoded
    group_size: int

    @property
    def mask(self) -> torch.Tensor:
        return (self.targets != IGNORE).float()


def rollout(model: nn.Module, tok: ChatTokenizer, problems: Sequence[Problem],
            reward_fn: Callable[[str, Problem], float], group_size: int = 8,
            max_new_tokens: int | None = None, temperature: float = 1.0,
            generator: torch.Generator | None = None) -> Rollout:
    """Sample ``group_size`` completions per problem and score them with ``reward_fn``."""
    task._check_tok(tok)
    problems = task._check_problems(problems)
    check_callable("reward_fn", reward_fn, ": (completion, problem) -> float")
    check_int("group_size", group_size, min=2)
    check_number("temperature", temperature, min=0.0, min_open=True)
    if max_new_tokens is not None:
        check_int("max_new_tokens", max_new_tokens, min=1)
    if max_new_tokens is None:
        max_new_tokens = max(len(p.answer) for p in problems) + 2
    prompts = [tok.encode(chat_prompt(p.question)) for p in problems]
    limit = getattr(getattr(model, "config", None), "block_size", None)
    longest = max(len(x) for x in prompts) + max_new_tokens - 1  # the scored sequence
    if limit is not None and longest > limit:
        raise ValueError(f"max_new_tokens={max_new_tokens} is too many: the longest prompt "
                         f"({longest - max_new_tokens + 1} tokens) plus the completion must fit "
                         f"in block_size + 1 = {limit + 1} tokens to be scored")
    comps = sample_completions(model, prompts, max_new_tokens, tok.end_id, group_size,
                               temperature, generator)
    rows, texts, rewards, correct = [], [], [], []
    for p, prompt, group in zip(problems, prompts, comps):
        for c in group:
            text = tok.decode(c)
            r = reward_fn(text, p)
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r):
                raise ValueError(f"reward_fn must return a finite number, got {r!r}")
            full = prompt + c
            rows.append((full[:-1], [IGNORE] * (len(prompt) - 1) + c))
            texts.append(text)
            rewards.append(float(r))
            correct.append(float(parse_answer(text) == p.result))
    T = max(len(x) for x, _ in rows)
    ids = torch.full((len(rows), T), tok.pad_id, dtype=torch.long)
    targets = torch.full((len(rows), T), IGNORE, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, :len(x)] = torch.tensor(x)
        targets[i, :len(y)] = torch.tensor(y)
    device = next(model.parameters()).device
    return Rollout(ids.to(device), targets.to(device), torch.tensor(rewards), torch.tensor(correct),
                   texts, group_size)


def grpo_step(policy: nn.Module, ref_model: nn.Module | None, optimizer: torch.optim.Optimizer,
              tok: ChatTokenizer, problems: Sequence[Problem],
              reward_fn: Callable[[str, Problem], float], group_size: int = 8,
              beta: float = 0.04, epsilon: float = 0.2, inner_steps: int = 1,
              temperature: float = 1.0, loss_type: str = "grpo", max_new_tokens: int | None = None,
              generator: torch.Generator | None = None, grad_clip: float | None = 1.0,
              ) -> dict[str, float]:
    """Sample, score, and take ``inner_steps`` optimiser steps on the same rollout (GRPO's μ; the
    ratio and its clip matter from the second one on). ``beta`` is the KL coefficient; with
    ``beta=0`` a ``ref_model`` is optional and, if given, the KL to it is still reported.
    Returns mean reward, accuracy (of the answers, whatever ``reward_fn`` pays), loss, KL to the
    reference, clip ratio and mean completion length (tokens), all of the sampled rollout."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got "
                        f"{type(optimizer).__name__}")
    check_module("policy", policy)
    check_int("inner_steps", inner_steps, min=1)
    beta = check_number("beta", beta, min=0.0)
    if beta > 0 and not isinstance(ref_model, nn.Module):
        raise TypeError("ref_model must be an nn.Module when beta > 0 (or pass beta=0)")
    if ref_model is not None and not isinstance(ref_model, nn.Module):
        raise TypeError(f"ref_model must be an nn.Module or None, got {type(ref_model).__name__}")
    if grad_clip is not None:
        grad_clip = check_number("grad_clip", grad_clip, min=0.0, min_open=True)
    ro = rollout(policy, tok, problems, reward_fn, group_size, max_new_tokens, temperature,
                 generator)
    adv = group_advantages(ro.rewards, group_size).to(ro.ids.device)
    mask = ro.mask
    with torch.no_grad():
        ref = None if ref_model is None else token_logps(ref_model, ro.ids, ro.targets, temperature)
        # the sampling policy's log-probs; with one update per rollout they are the first
        # forward's own (detached), so that forward is not run twice
        old = token_logps(policy, ro.ids, ro.targets, temperature) if inner_steps > 1 else None
    for _ in range(inner_steps):
        logps = token_logps(policy, ro.ids, ro.targets, temperature)
        if old is None:
            old = logps.detach()
        loss, stats = grpo_loss(logps, old, ref, adv, mask, epsilon, beta, loss_type)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(policy.parameters(), grad_clip)
        optimizer.step()
    return {"reward": float(ro.rewards.mean()), "accuracy": float(ro.correct.mean()),
            "loss": loss.item(), "kl": stats["kl"], "clip_ratio": stats["clip_ratio"],
            "length": float(mask.sum(-1).mean())}
