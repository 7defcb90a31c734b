"""GRPO: group advantages, the clipped loss with a k3 KL penalty (== TRL's), rollouts, a step."""

import copy
import os
import types
from collections import defaultdict

import pytest
import torch

from llmcourse.align import grpo
from llmcourse.align.task import (
    ChatTokenizer,
    Problem,
    correctness_reward,
    format_reward,
    length_reward,
    make_splits,
)
from llmcourse.model import GPT, GPTConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TOK = ChatTokenizer()


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))


def test_group_advantages_hand_computed():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv = grpo.group_advantages(r, group_size=4)
    # group 1: mean 0.25, sample std sqrt(0.25) = 0.5; group 2: all equal -> 0
    s = 0.5 + 1e-4
    expected = torch.tensor([0.75 / s, -0.25 / s, -0.25 / s, -0.25 / s, 0, 0, 0, 0])
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(grpo.group_advantages(r.view(2, 4), 4), expected, atol=1e-6)
    assert torch.allclose(grpo.group_advantages(r, 4, scale=False),
                          torch.tensor([0.75, -0.25, -0.25, -0.25, 0, 0, 0, 0]))
    # per group, not over the whole batch: shifting one group's rewards changes nothing
    shifted = r.clone()
    shifted[4:] += torch.tensor([5.0, 6.0, 7.0, 8.0])
    assert torch.allclose(grpo.group_advantages(shifted, 4)[:4], expected[:4], atol=1e-6)
    two = grpo.group_advantages(torch.tensor([2.0, 0.0]), 2)  # sample std of {2, 0} is sqrt(2)
    assert torch.allclose(two, torch.tensor([1.0, -1.0]) / (2 ** 0.5 + 1e-4), atol=1e-6)


@pytest.mark.slow
def test_group_advantages_equal_trl_formula():
    pytest.importorskip("trl")
    from trl.trainer.utils import nanstd

    torch.manual_seed(0)
    r = torch.rand(24)
    G = 6
    mean = r.view(-1, G).mean(1).repeat_interleave(G)
    std = nanstd(r.view(-1, G), dim=1).repeat_interleave(G)
    assert torch.allclose(grpo.group_advantages(r, G), (r - mean) / (std + 1e-4), atol=1e-6)


def test_group_advantages_bad_inputs():
    with pytest.raises(ValueError, match="group_size"):
        grpo.group_advantages(torch.zeros(4), 1)
    with pytest.raises(ValueError, match="multiple of group_size"):
        grpo.group_advantages(torch.zeros(5), 2)
    with pytest.raises(ValueError, match="rewards must be a floating-point"):
        grpo.group_advantages(torch.zeros(4, dtype=torch.long), 2)
    with pytest.raises(TypeError, match="rewards must be a torch.Tensor"):
        grpo.group_advantages([1.0, 0.0], 2)
    with pytest.raises(ValueError, match="finite"):
        grpo.group_advantages(torch.tensor([0.0, float("nan")]), 2)
    with pytest.raises(ValueError, match="G = group_size"):
        grpo.group_advantages(torch.zeros(2, 4), 2)


def _tensors(seed=0, B=6, T=5):
    g = torch.Generator().manual_seed(seed)
    logps = (-torch.rand(B, T, generator=g) * 3).requires_grad_()
    old = logps.detach() + 0.3 * torch.randn(B, T, generator=g)
    ref = logps.detach() + 0.5 * torch.randn(B, T, generator=g)
    adv = torch.randn(B, generator=g)
    mask = (torch.rand(B, T, generator=g) > 0.3).long()
    mask[:, 0] = 1
    return logps, old, ref, adv, mask


def test_grpo_loss_hand_written_reference():
    logps, old, ref, adv, mask = _tensors()
    eps, beta = 0.2, 0.1
    loss, stats = grpo.grpo_loss(logps, old, ref, adv, mask, eps, beta, "grpo")
    # reference, one token at a time
    total = 0.0
    for b in range(logps.size(0)):
        row = []
        for t in range(logps.size(1)):
            if mask[b, t]:
                ratio = torch.exp(logps[b, t] - old[b, t]).item()
                surrogate = min(ratio * adv[b].item(),
                                min(max(ratio, 1 - eps), 1 + eps) * adv[b].item())
                d = (ref[b, t] - logps[b, t]).item()
                row.append(-surrogate + beta * (torch.exp(torch.tensor(d)).item() - d - 1))
        total += sum(row) / len(row)
    assert loss.item() == pytest.approx(total / logps.size(0), abs=1e-6)
    assert stats["kl"] >= 0 and 0 <= stats["clip_ratio"] <= 1
    assert (grpo.kl_k3(logps, ref) >= 0).all() and (grpo.kl_k3(ref, ref) == 0).all()
    no_kl, _ = grpo.grpo_loss(logps, old, None, adv, mask, eps, beta=0.0)
    assert no_kl.item() != pytest.approx(loss.item())


def _trl_loss(logps, old, ref, adv, mask, eps, beta, loss_type):
    """TRL's GRPOTrainer._compute_loss on given per-token log-probs (a stand-in trainer object
    holds the attributes it reads; the model forward is replaced by our tensors)."""
    from trl import GRPOTrainer

    class Acc:
        def reduce(self, x, reduction="sum"):
            return x

        def gather(self, x):
            return x

    stub = types.SimpleNamespace(
        top_entropy_quantile=1.0, off_policy_mask_threshold=None, importance_sampling_level="token",
        beta=beta, args=types.SimpleNamespace(use_bias_correction_kl=False, delta=None),
        loss_type=loss_type, epsilon_low=eps, epsilon_high=eps, use_vllm=False,
        model=types.SimpleNamespace(training=True), current_gradient_accumulation_steps=1,
        _entropy_bonus_enabled=False, aux_loss_enabled=False, accelerator=Acc(),
        _metrics={"train": defaultdict(list)},
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps, torch.zeros_like(logps), None))
    B = logps.size(0)
    inputs = {"prompt_ids": torch.zeros(B, 1, dtype=torch.long),
              "prompt_mask": torch.ones(B, 1, dtype=torch.long),
              "completion_ids": torch.zeros_like(mask), "completion_mask": mask,
              "advantages": adv, "old_per_token_logps": old, "ref_per_token_logps": ref}
    return GRPOTrainer._compute_loss(stub, None, inputs), stub._metrics["train"]


@pytest.mark.slow
@pytest.mark.parametrize("loss_type", ["grpo", "bnpo"])
def test_grpo_loss_equals_trl(loss_type):
    pytest.importorskip("trl")
    for beta in (0.0, 0.04):
        logps, old, ref, adv, mask = _tensors(seed=1)
        ours, stats = grpo.grpo_loss(logps, old, ref, adv, mask, 0.2, beta, loss_type)
        g_ours = torch.autograd.grad(ours, logps)[0]
        theirs, metrics = _trl_loss(logps, old, ref, adv, mask, 0.2, beta, loss_type)
        g_theirs = torch.autograd.grad(theirs, logps)[0]
        assert ours.item() == pytest.approx(theirs.item(), abs=1e-6)
        assert torch.allclose(g_ours, g_theirs, atol=1e-7)
        assert stats["clip_ratio"] == pytest.approx(metrics["clip_ratio/region_mean"][-1], abs=1e-6)
        if beta:
            assert stats["kl"] == pytest.approx(metrics["kl"][-1], abs=1e-6)


def test_grpo_loss_bad_inputs():
    logps, old, ref, adv, mask = _tensors()
    with pytest.raises(ValueError, match="loss_type"):
        grpo.grpo_loss(logps, old, ref, adv, mask, loss_type="ppo")
    with pytest.raises(ValueError, match="epsilon"):
        grpo.grpo_loss(logps, old, ref, adv, mask, epsilon=0)
    with pytest.raises(ValueError, match="beta"):
        grpo.grpo_loss(logps, old, ref, adv, mask, beta=-1)
    with pytest.raises(ValueError, match="ref_logps"):
        grpo.grpo_loss(logps, old, None, adv, mask, beta=0.1)
    with pytest.raises(ValueError, match="advantages"):
        grpo.grpo_loss(logps, old, ref, adv[:2], mask)
    with pytest.raises(ValueError, match="mask has shape"):
        grpo.grpo_loss(logps, old, ref, adv, mask[:, :2])


def test_rollout_groups_and_scores():
    model = tiny_gpt()
    probs = [Problem(1, "+", 2), Problem(10, "+", 20), Problem(3, "+", 4)]  # two prompt lengths
    ro = grpo.rollout(model, TOK, probs, correctness_reward, group_size=4,
                      generator=torch.Generator().manual_seed(0))
    assert ro.ids.shape == ro.targets.shape and ro.ids.size(0) == 12 and len(ro.texts) == 12
    for i, text in enumerate(ro.texts):
        p = probs[i // 4]
        assert ro.rewards[i].item() == correctness_reward(text, p)
        kept = ro.targets[i][ro.targets[i] != -100].tolist()
        assert TOK.decode(kept) == text  # the scored tokens are exactly the completion
        assert kept.count(TOK.end_id) <= 1 and (TOK.end_id not in kept or kept[-1] == TOK.end_id)
    assert ro.mask.sum() == sum(len(TOK.encode(t)) for t in ro.texts)
    with pytest.raises(TypeError, match="reward_fn"):
        grpo.rollout(model, TOK, probs, "correct")
    with pytest.raises(ValueError, match="group_size"):
        grpo.rollout(model, TOK, probs, correctness_reward, group_size=1)
    with pytest.raises(ValueError, match="max_new_tokens=40 is too many"):
        grpo.rollout(model, TOK, probs, correctness_reward, group_size=2, max_new_tokens=40)
    with pytest.raises(ValueError, match="reward_fn must return"):
        grpo.rollout(model, TOK, probs, lambda c, p: None, group_size=2)


def test_higher_advantage_raises_logp_after_a_step():
    model = tiny_gpt()
    ro = grpo.rollout(model, TOK, [Problem(12, "+", 34)], correctness_reward, group_size=4,
                      generator=torch.Generator().manual_seed(0))
    adv = torch.tensor([2.0, -2.0, 0.0, 0.0])
    with torch.no_grad():
        before = grpo.token_logps(model, ro.ids, ro.targets).sum(-1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    logps = grpo.token_logps(model, ro.ids, ro.targets)
    loss, _ = grpo.grpo_loss(logps, logps.detach(), None, adv, ro.mask, beta=0.0)
    loss.backward()
    opt.step()
    with torch.no_grad():
        after = grpo.token_logps(model, ro.ids, ro.targets).sum(-1)
    assert after[0] > before[0]  # positive advantage: more likely
    assert after[1] < before[1]  # negative advantage: less likely


def test_kl_penalty_pulls_back_to_the_reference():
    policy, ref = tiny_gpt(0), tiny_gpt(1).eval()
    ro = grpo.rollout(policy, TOK, [Problem(5, "+", 6), Problem(7, "+", 8)], correctness_reward,
                      group_size=4, generator=torch.Generator().manual_seed(0))
    zero_adv = torch.zeros(8)

    def kl_after_step(beta):
        model = copy.deepcopy(policy)
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        logps = grpo.token_logps(model, ro.ids, ro.targets)
        with torch.no_grad():
            ref_logps = grpo.token_logps(ref, ro.ids, ro.targets)
        loss, stats = grpo.grpo_loss(logps, logps.detach(), ref_logps, zero_adv, ro.mask, beta=beta)
        loss.backward()
        opt.step()
        with torch.no_grad():
            new = grpo.token_logps(model, ro.ids, ro.targets)
        return float((grpo.kl_k3(new, ref_logps) * ro.mask).sum()), stats["kl"]

    moved, kl0 = kl_after_step(0.0)
    pulled, kl1 = kl_after_step(1.0)
    assert kl0 == pytest.approx(kl1) and kl0 > 0  # measured before the step, penalised or not
    assert pulled < moved  # only the KL term acts here, and it reduces the divergence


def test_grpo_step_learns_and_a_flawed_reward_is_hacked():
    torch.manual_seed(0)
    probs = make_splits(8, 2, digits=1, seed=0)["train"]
    policy = tiny_gpt()
    ref = copy.deepcopy(policy).eval()
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    hist = [grpo.grpo_step(policy, ref, opt, TOK, probs, length_reward, group_size=8, beta=0.0,
                           max_new_tokens=8, generator=gen, inner_steps=2) for _ in range(15)]
    assert set(hist[0]) == {"reward", "accuracy", "loss", "kl", "clip_ratio", "length"}
    first = sum(h["reward"] for h in hist[:3]) / 3
    last = sum(h["reward"] for h in hist[-3:]) / 3
    assert last > first  # RL climbs whatever the reward pays for (here: digits, not sums)
    with pytest.raises(TypeError, match="ref_model"):
        grpo.grpo_step(policy, None, opt, TOK, probs, format_reward, beta=0.1)
    with pytest.raises(ValueError, match="inner_steps"):
        grpo.grpo_step(policy, ref, opt, TOK, probs, format_reward, inner_steps=0)


@pytest.mark.parametrize("inner_steps", [1, 2])
def test_grpo_step_equals_a_hand_written_step(inner_steps):
    """grpo_step = rollout, advantages, then inner_steps updates of grpo_loss whose old log-probs
    are the sampling policy's (taken before the first update)."""
    probs = [Problem(12, "+", 34), Problem(5, "+", 6)]
    policy, ref = tiny_gpt(0), tiny_gpt(1).eval()
    twin = copy.deepcopy(policy)
    opt = torch.optim.SGD(policy.parameters(), lr=0.1)
    opt_twin = torch.optim.SGD(twin.parameters(), lr=0.1)
    out = grpo.grpo_step(policy, ref, opt, TOK, probs, length_reward, group_size=4,
                         beta=0.1, inner_steps=inner_steps, grad_clip=None,
                         generator=torch.Generator().manual_seed(3))
    ro = grpo.rollout(twin, TOK, probs, length_reward, group_size=4,
                      generator=torch.Generator().manual_seed(3))
    adv = grpo.group_advantages(ro.rewards, 4)
    assert adv.abs().sum() > 0  # the surrogate (and so the ratio) matters
    with torch.no_grad():
        old = grpo.token_logps(twin, ro.ids, ro.targets)
        ref_logps = grpo.token_logps(ref, ro.ids, ro.targets)
    for _ in range(inner_steps):
        loss, _ = grpo.grpo_loss(grpo.token_logps(twin, ro.ids, ro.targets), old, ref_logps, adv,
                                 ro.mask, beta=0.1)
        opt_twin.zero_grad()
        loss.backward()
        opt_twin.step()
    assert out["loss"] == pytest.approx(loss.item(), abs=1e-6)
    for a, b in zip(policy.parameters(), twin.parameters()):
        assert torch.allclose(a, b, atol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(policy.parameters(),
                                                      tiny_gpt(0).parameters()))
