"""DPO: the loss equals TRL's DPOTrainer on the same batch; sequence log-probs; one step works."""

import copy
import math
import os
import random

import pytest
import torch
import torch.nn.functional as F

from llmcourse.align import dpo
from llmcourse.align.logprobs import sequence_logps, token_logps
from llmcourse.align.task import END, ChatTokenizer, Problem, chat_prompt, make_splits
from llmcourse.model import GPT, GPTConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TOK = ChatTokenizer()


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))


def test_dpo_loss_hand_computed():
    pc, pr = torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -1.5])
    rc, rr = torch.tensor([-1.5, -2.0]), torch.tensor([-2.0, -2.0])
    loss, cr, rj = dpo.dpo_loss(pc, pr, rc, rr, beta=0.5)
    # pair 1: chosen ratio 0.5, rejected ratio -1.0 -> margin 1.5; pair 2: 0 and 0.5 -> -0.5
    expected = (-math.log(1 / (1 + math.exp(-0.75))) - math.log(1 / (1 + math.exp(0.25)))) / 2
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert torch.allclose(cr, torch.tensor([0.25, 0.0]))
    assert torch.allclose(rj, torch.tensor([-0.5, 0.25]))
    same = torch.tensor([-4.0, -7.0])
    assert dpo.dpo_loss(same, same, same, same)[0].item() == pytest.approx(math.log(2), abs=1e-6)


def test_dpo_loss_bad_inputs():
    x = torch.zeros(3)
    with pytest.raises(ValueError, match="beta"):
        dpo.dpo_loss(x, x, x, x, beta=0)
    with pytest.raises(ValueError, match="beta"):
        dpo.dpo_loss(x, x, x, x, beta=float("nan"))
    with pytest.raises(ValueError, match="ref_rejected_logps has shape"):
        dpo.dpo_loss(x, x, x, torch.zeros(2))
    with pytest.raises(TypeError, match="policy_chosen_logps"):
        dpo.dpo_loss([0.0], x, x, x)
    with pytest.raises(ValueError, match="ref_chosen_logps must be a floating-point"):
        dpo.dpo_loss(x, x, torch.zeros(3, dtype=torch.long), x)
    with pytest.raises(ValueError, match="finite"):
        dpo.dpo_loss(x, torch.tensor([0.0, float("inf"), 0.0]), x, x)
    with pytest.raises(ValueError, match=r"must have shape \(pairs,\)"):
        dpo.dpo_loss(torch.zeros(2, 2), x, x, x)


def test_sequence_logps_is_the_sum_over_unmasked_targets():
    model = tiny_gpt()
    pairs = dpo.preference_pairs([Problem(12, "+", 34), Problem(5, "+", 678)], seed=0)
    ids, targets = dpo.dpo_batch(TOK, pairs)
    got = sequence_logps(model, ids, targets)
    assert got.shape == (4,)
    for row, (p, chosen, rejected) in enumerate(pairs + pairs):  # chosen rows, then rejected
        answer = chosen if row < 2 else rejected
        prompt = TOK.encode(chat_prompt(p.question))
        full = torch.tensor([prompt + TOK.encode(answer + END)])
        logp = F.log_softmax(model(full)[0][0], -1)  # (T, V), unpadded
        ref = sum(logp[t - 1, full[0, t]].item() for t in range(len(prompt), full.size(1)))
        assert got[row].item() == pytest.approx(ref, abs=1e-5)
    assert (token_logps(model, ids, targets)[targets == -100] == 0).all()
    with pytest.raises(ValueError, match="targets must have the shape of ids"):
        sequence_logps(model, ids, targets[:, :-1])
    with pytest.raises(ValueError, match="token ids"):
        sequence_logps(model, ids, torch.full_like(targets, TOK.vocab_size))


def test_preference_pairs_reject_a_near_miss():
    probs = make_splits(50, 5, digits=3, seed=0)["train"]
    pairs = dpo.preference_pairs(probs, seed=1)
    assert pairs == dpo.preference_pairs(probs, seed=1)
    for p, chosen, rejected in pairs:
        assert chosen == p.answer and rejected != p.answer and len(rejected) == len(chosen)
        assert sum(a != b for a, b in zip(chosen, rejected)) == 1
        assert rejected == "0" or not rejected.startswith("0")
    with pytest.raises(TypeError, match="rng"):
        dpo.perturb_answer(probs[0], 3)
    with pytest.raises(TypeError, match="seed"):
        dpo.preference_pairs(probs, seed="1")
    with pytest.raises(TypeError, match=r"pairs\[0\]"):
        dpo.dpo_batch(TOK, [("1+2", "3", "4")])


def test_dpo_step_raises_the_chosen_margin():
    probs = make_splits(16, 4, digits=2, seed=0)["train"]
    batch = dpo.dpo_batch(TOK, dpo.preference_pairs(probs, seed=0))
    policy = tiny_gpt()
    ref = copy.deepcopy(policy).eval()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-2)
    first = dpo.dpo_step(policy, ref, opt, batch, beta=0.1)
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-5)  # policy == reference
    assert first["margin"] == pytest.approx(0, abs=1e-6)
    for _ in range(10):
        last = dpo.dpo_step(policy, ref, opt, batch, beta=0.1)
    assert last["loss"] < first["loss"] and last["margin"] > 0 and last["reward_accuracy"] > 0.5
    with pytest.raises(ValueError, match="even"):
        dpo.dpo_step(policy, ref, opt, (batch[0][:3], batch[1][:3]))
    with pytest.raises(TypeError, match="optimizer"):
        dpo.dpo_step(policy, ref, "adam", batch)


@pytest.mark.slow
def test_dpo_loss_equals_trl_dpo_trainer(tmp_path):
    """TRL's own DPOTrainer._compute_loss on its own collated batch == ours on the same rows."""
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    policy, ref = tiny_gpt(0), tiny_gpt(1).eval()
    probs = make_splits(6, 2, digits=2, seed=3)["train"]
    pairs = dpo.preference_pairs(probs, seed=0)
    random.Random(0).shuffle(pairs)
    ds = Dataset.from_dict({"prompt": [chat_prompt(p.question) for p, _, _ in pairs],
                            "chosen": [c + END for _, c, _ in pairs],
                            "rejected": [r + END for _, _, r in pairs]})
    beta = 0.3
    args = DPOConfig(output_dir=str(tmp_path), report_to="none", per_device_train_batch_size=6,
                     beta=beta, use_cpu=True, bf16=False, dataloader_drop_last=False)
    trainer = DPOTrainer(model=policy.to_hf(), ref_model=ref.to_hf(), args=args, train_dataset=ds,
                         processing_class=TOK.to_hf())
    batch = next(iter(trainer.get_train_dataloader()))
    trl_loss = trainer._compute_loss(trainer.model, batch, return_outputs=False)
    metrics = trainer._metrics["train"]
    # ours, on the very rows TRL collated: (chosen rows, rejected rows), completion tokens only
    input_ids, completion = batch["input_ids"], batch["completion_mask"]
    ids = input_ids[:, :-1]
    targets = input_ids[:, 1:].masked_fill(completion[:, 1:] == 0, -100)
    pol_c, pol_r = sequence_logps(policy, ids, targets).chunk(2)
    with torch.no_grad():
        ref_c, ref_r = sequence_logps(ref, ids, targets).chunk(2)
    loss, cr, rr = dpo.dpo_loss(pol_c, pol_r, ref_c, ref_r, beta)
    assert loss.item() == pytest.approx(trl_loss.item(), abs=1e-6)
    assert cr.mean().item() == pytest.approx(metrics["rewards/chosen"][-1], abs=1e-6)
    assert rr.mean().item() == pytest.approx(metrics["rewards/rejected"][-1], abs=1e-6)
    assert pol_c.mean().item() == pytest.approx(metrics["logps/chosen"][-1], abs=1e-5)
    assert (cr > rr).float().mean().item() == pytest.approx(metrics["rewards/accuracies"][-1])
    assert loss.item() != pytest.approx(math.log(2), abs=1e-3)  # policy != ref: a real check
