"""SFT data for the chat task (prompt masked with -100) and token-weighted gradient accumulation."""

import pytest
import torch
import torch.nn.functional as F

from llmcourse.align import sft
from llmcourse.align.task import END, ChatTokenizer, Problem, chat_prompt, make_splits
from llmcourse.model import GPT, GPTConfig

TOK = ChatTokenizer()


def tiny_gpt(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = dict(vocab_size=TOK.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16)
    return GPT(GPTConfig(**{**cfg, **kw}))


def test_chat_example_masks_exactly_the_prompt():
    p = Problem(12, "+", 345)
    ids, targets = sft.chat_example(TOK, p)
    full = TOK.encode(chat_prompt("12+345") + "357" + END)
    assert ids == full[:-1] and len(targets) == len(ids)
    kept = [t for t in targets if t != -100]
    assert kept == TOK.encode("357" + END)  # the answer and the end token, nothing else
    first = next(i for i, t in enumerate(targets) if t != -100)
    assert ids[first] == TOK.assistant_id  # the first learned token is read after <|assistant|>
    assert all(t == -100 for t in targets[:first])
    ids2, unmasked = sft.chat_example(TOK, p, mask_prompt=False)
    assert ids2 == ids and unmasked == full[1:]  # the ablation learns the prompt too
    assert sft.chat_example(TOK, p, answer="358")[1][-4:] == TOK.encode("358" + END)
    with pytest.raises(TypeError, match="mask_prompt"):
        sft.chat_example(TOK, p, mask_prompt=1)
    with pytest.raises(TypeError, match="problem"):
        sft.chat_example(TOK, "12+345")
    with pytest.raises(TypeError, match="tok"):
        sft.chat_example(object(), p)


def test_sft_batch_padding_changes_no_loss():
    probs = [Problem(1, "+", 2), Problem(123, "+", 456), Problem(50, "-", 7)]
    X, Y = sft.sft_batch(TOK, probs)
    assert X.shape == Y.shape and X.dtype == torch.long
    short = len(sft.chat_example(TOK, probs[0])[0])
    assert (X[0, short:] == TOK.pad_id).all() and (Y[0, short:] == -100).all()
    model = tiny_gpt()
    _, loss = model(X, Y)
    # reference: each conversation alone, unpadded; the batch loss is the mean over all targets
    nll, n = 0.0, 0
    for p in probs:
        x, y = (torch.tensor([v]) for v in sft.chat_example(TOK, p))
        logits, _ = model(x)
        nll += F.cross_entropy(logits[0], y[0], ignore_index=-100, reduction="sum").item()
        n += int((y != -100).sum())
    assert loss.item() == pytest.approx(nll / n, abs=1e-6)
    with pytest.raises(ValueError, match="problems must not be empty"):
        sft.sft_batch(TOK, [])
    with pytest.raises(TypeError, match="problems must hold Problem"):
        sft.sft_batch(TOK, ["1+2"])


def test_get_batch_is_reproducible_and_trains_with_the_trainer():
    from llmcourse.train import TrainConfig, Trainer

    probs = make_splits(200, 10, digits=2, seed=0)["train"]
    gb = sft.make_sft_get_batch(TOK, probs, batch_size=16)
    a = gb(torch.Generator().manual_seed(3))
    b = gb(torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[0].shape[0] == 16
    model = tiny_gpt()
    cfg = TrainConfig(max_steps=30, lr=3e-3, progress=False, log_every=10, device="cpu")
    records = Trainer(model, cfg, train_data=gb).fit()
    losses = [r["loss"] for r in records if r["kind"] == "train"]
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="batch_size"):
        sft.make_sft_get_batch(TOK, probs, batch_size=0)
    with pytest.raises(TypeError, match="generator"):
        gb(3)


def _micro_batches():
    probs = [Problem(1, "+", 2), Problem(3, "+", 4), Problem(123, "+", 4567),
             Problem(98765, "+", 43210)]
    tok = ChatTokenizer()
    return [sft.sft_batch(tok, probs[:2]), sft.sft_batch(tok, probs[2:])]


def _grad_of(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_accumulation_per_token_is_the_big_batch_gradient():
    model = tiny_gpt()
    mbs = _micro_batches()
    out = sft.accumulation_mismatch(model, mbs)
    assert out["tokens"] == [int((y != -100).sum()) for _, y in mbs]
    assert out["tokens"][0] < out["tokens"][1]
    # reference 1: one batch holding every row, loss = mean over all target tokens
    T = max(x.size(1) for x, _ in mbs)
    X = torch.cat([F.pad(x, (0, T - x.size(1)), value=TOK.pad_id) for x, _ in mbs])
    Y = torch.cat([F.pad(y, (0, T - y.size(1)), value=-100) for _, y in mbs])
    assert torch.allclose(out["per_token"], _grad_of(model, model(X, Y)[1]), atol=1e-6)
    # reference 2: the mean of the micro-batches' own gradients (what dividing by k gives)
    g = [_grad_of(model, model(x, y)[1]) for x, y in mbs]
    assert torch.allclose(out["per_micro_batch"], (g[0] + g[1]) / 2, atol=1e-6)
    # and the two differ when the micro-batches hold different token counts
    assert not torch.allclose(out["per_micro_batch"], out["per_token"], atol=1e-4)


def test_accumulation_agrees_when_counts_match_and_keeps_grads():
    model = tiny_gpt()
    x, y = sft.sft_batch(TOK, [Problem(11, "+", 22), Problem(33, "+", 44)])
    x2, y2 = sft.sft_batch(TOK, [Problem(55, "+", 11), Problem(20, "+", 30)])
    model(x, y)[1].backward()
    before = [p.grad.clone() for p in model.parameters()]
    out = sft.accumulation_mismatch(model, [(x, y), (x2, y2)])
    assert out["tokens"][0] == out["tokens"][1]
    assert torch.allclose(out["per_micro_batch"], out["per_token"], atol=1e-7)
    assert all(torch.equal(p.grad, b) for p, b in zip(model.parameters(), before))
    with pytest.raises(ValueError, match="micro_batches"):
        sft.accumulation_mismatch(model, [])
    with pytest.raises(ValueError, match="no target token"):
        sft.accumulation_mismatch(model, [(x, torch.full_like(y, -100))])
    with pytest.raises(TypeError, match=r"micro_batches\[0\]"):
        sft.accumulation_mismatch(model, [x])
    with pytest.raises(TypeError, match="model"):
        sft.accumulation_mismatch("gpt", [(x, y)])


def test_the_trainer_accumulates_per_token():
    """llmcourse.train.Trainer's grad_accum step has the per-token gradient, not the per-batch one."""
    from llmcourse.train import TrainConfig, Trainer

    mbs = _micro_batches()
    model = tiny_gpt()
    out = sft.accumulation_mismatch(model, mbs)
    cfg = TrainConfig(max_steps=1, grad_accum=2, grad_clip=None, lr=1e-3, progress=False,
                      device="cpu", precision="fp32")
    step = Trainer(model, cfg, train_data=mbs).train_step()
    assert step["grad_norm"] == pytest.approx(out["per_token"].norm().item(), rel=1e-5)
    assert step["grad_norm"] != pytest.approx(out["per_micro_batch"].norm().item(), rel=1e-3)


@pytest.mark.slow
def test_sft_with_the_trainer_answers_held_out_sums_and_stops():
    """What chapter 10 relies on (about 11 s on one CPU thread): 500 demonstrations of 2-digit
    sums, 600 steps -> 85 % held-out accuracy, every answer ends with <|end|>."""
    from llmcourse.align.evals import task_accuracy
    from llmcourse.train import TrainConfig, Trainer

    splits = make_splits(500, 200, digits=2, seed=0)
    model = tiny_gpt(0, block_size=16, n_layer=2, n_head=4, n_embd=64)
    cfg = TrainConfig(max_steps=600, lr=3e-3, warmup_steps=20, weight_decay=0.0, progress=False,
                      log_every=600, device="cpu", precision="fp32")
    Trainer(model, cfg, train_data=sft.make_sft_get_batch(TOK, splits["train"], 64)).fit()
    res = task_accuracy(model, TOK, splits["test"])
    assert res["accuracy"] >= 0.75 and res["end_rate"] >= 0.95, res
