"""Tests of llmcourse.train: exact resume, NaN guard, checkpoint safety, schedules, API."""

from __future__ import annotations

import json
import math
import random
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

from llmcourse.data import make_get_batch
from llmcourse.model import GPT, GPTConfig
from llmcourse.train import (
    SAFE_PICKLE_GLOBALS,
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    list_checkpoints,
    lr_at,
    pickle_globals,
    read_metrics,
)

VOCAB, BLOCK = 64, 16


def tiny_gpt(seed: int = 0, dropout: float = 0.1) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=2, n_head=2, n_embd=32,
                         dropout=dropout))


def data(batch_size: int = 8):
    tokens = torch.randint(VOCAB, (5_000,), generator=torch.Generator().manual_seed(1))
    return make_get_batch(tokens, batch_size=batch_size, block_size=BLOCK)


class NoisyGPT(GPT):
    """Uses Python's and NumPy's RNG in forward too, so resume must restore them."""

    def forward(self, idx, targets=None):
        logits, loss = super().forward(idx, targets)
        if loss is not None:
            loss = loss * (1 + 1e-3 * random.random()) * (1 + 1e-3 * float(np.random.rand()))
        return logits, loss


def cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(max_steps=40, lr=3e-3, warmup_steps=5, log_every=5, ckpt_every=20, keep_last=2,
                progress=False, device="cpu", out_dir=str(tmp_path), eval_every=0)
    base.update(kw)
    return TrainConfig(**base)


def assert_same_state(a: Trainer, b: Trainer) -> None:
    for (na, pa), (nb, pb) in zip(a.raw_model.named_parameters(), b.raw_model.named_parameters()):
        assert na == nb
        assert torch.equal(pa, pb), f"parameter {na} differs"
    sa, sb = a.optimizer.state_dict(), b.optimizer.state_dict()
    assert sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        for name, v in sa["state"][k].items():
            assert torch.equal(v, sb["state"][k][name]), f"optimizer state {k}/{name} differs"


def make_noisy(seed):
    torch.manual_seed(seed)
    return NoisyGPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=2, n_head=2, n_embd=32,
                              dropout=0.1))


def test_resume_is_bitwise_exact(tmp_path):
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(123)
    straight = Trainer(make_noisy(0), cfg(tmp_path / "a"), data())
    straight.fit()

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(123)
    first = Trainer(make_noisy(0), cfg(tmp_path / "b"), data())
    first.fit(until=20)  # "interrupted" after step 20's checkpoint
    assert [p.name for p in list_checkpoints(tmp_path / "b")] == ["step_000020"]
    # a new process: different weights, different RNG state until the checkpoint restores them
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    resumed = Trainer(make_noisy(7), cfg(tmp_path / "b"), data(), resume=True)
    assert resumed.state.step == 20
    resumed.fit()
    assert resumed.state.step == 40
    assert_same_state(straight, resumed)
    # the metrics after the resume equal those of the straight run
    a = [r["loss"] for r in read_metrics(tmp_path / "a") if r["step"] > 20]
    b = [r["loss"] for r in read_metrics(tmp_path / "b") if r["step"] > 20]
    assert a == b and len(a) == 4


def test_resume_without_restoring_rng_would_differ(tmp_path):
    """The test above can fail: skipping the data-generator state changes the result."""
    torch.manual_seed(123)
    straight = Trainer(tiny_gpt(0), cfg(tmp_path / "a", max_steps=10, ckpt_every=5), data())
    straight.fit()
    torch.manual_seed(123)
    first = Trainer(tiny_gpt(0), cfg(tmp_path / "b", max_steps=10, ckpt_every=5), data())
    first.fit(until=5)
    resumed = Trainer(tiny_gpt(0), cfg(tmp_path / "b", max_steps=10, ckpt_every=5), data(),
                      resume=True)
    resumed.train_stream.generator.manual_seed(0)  # lose the data position
    resumed.fit()
    p1 = straight.raw_model.lm_head.weight
    p2 = resumed.raw_model.lm_head.weight
    assert not torch.equal(p1, p2)


def test_resume_with_iterable_data_and_hf_style_model(tmp_path):
    class HFStyle(nn.Module):
        def __init__(self):
            super().__init__()
            self.gpt = tiny_gpt(0, dropout=0.0)

        def forward(self, input_ids, labels):
            class Out:
                pass

            out = Out()
            out.logits, out.loss = self.gpt(input_ids, labels)
            return out

    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": torch.randint(VOCAB, (4, BLOCK), generator=g),
                "labels": torch.randint(VOCAB, (4, BLOCK), generator=g)} for _ in range(7)]
    c = cfg(tmp_path / "a", max_steps=12, ckpt_every=6)
    a = Trainer(HFStyle(), c, batches)
    a.fit()
    c = cfg(tmp_path / "b", max_steps=12, ckpt_every=6)
    Trainer(HFStyle(), c, batches).fit(until=6)
    b = Trainer(HFStyle(), c, batches, resume=True)
    assert b.train_stream.consumed == 6
    b.fit()
    assert_same_state(a, b)
    assert a.state.tokens == 12 * 4 * BLOCK


def test_grad_accumulation_equals_bigger_batch(tmp_path):
    g = torch.Generator().manual_seed(0)
    big = [tuple(torch.randint(VOCAB, (8, BLOCK), generator=g) for _ in range(2)) for _ in range(3)]
    small = [(x[i:i + 4], y[i:i + 4]) for x, y in big for i in (0, 4)]
    a = Trainer(tiny_gpt(0, 0.0), cfg(None, out_dir=None, max_steps=3, ckpt_every=0), big)
    a.fit()
    b = Trainer(tiny_gpt(0, 0.0), cfg(None, out_dir=None, max_steps=3, ckpt_every=0, grad_accum=2),
                small)
    b.fit()
    for pa, pb in zip(a.raw_model.parameters(), b.raw_model.parameters()):
        assert torch.allclose(pa, pb, atol=1e-5), (pa - pb).abs().max()


class ExplodingGPT(GPT):
    explode_at = 7
    calls = 0

    def forward(self, idx, targets=None):
        logits, loss = super().forward(idx, targets)
        ExplodingGPT.calls += 1
        if ExplodingGPT.calls > self.explode_at:
            loss = loss * float("inf")
        return logits, loss


def test_nan_guard_names_the_step_and_keeps_the_checkpoint(tmp_path):
    ExplodingGPT.calls = 0
    torch.manual_seed(0)
    model = ExplodingGPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=1, n_head=2, n_embd=16))
    t = Trainer(model, cfg(tmp_path, max_steps=20, ckpt_every=5), data())
    with pytest.raises(NonFiniteLossError, match=r"loss is inf at step 8.*step_000005"):
        t.fit()
    ckpts = list_checkpoints(tmp_path)
    assert [p.name for p in ckpts] == ["step_000005"]
    # the weights were not updated with the bad step, and the checkpoint still loads
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert t.state.step == 7  # steps are counted as in metrics.jsonl: 7 done, the 8th failed
    torch.manual_seed(1)
    other = GPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=1, n_head=2, n_embd=16))
    fresh = Trainer(other, cfg(tmp_path, max_steps=20, ckpt_every=5), data(), resume=True)
    assert fresh.state.step == 5


def test_nan_guard_on_inf_learning_rate(tmp_path, monkeypatch):
    import llmcourse.train.loop as loop

    t = Trainer(tiny_gpt(), cfg(tmp_path, max_steps=10, ckpt_every=0), data())
    real = loop.lr_at
    monkeypatch.setattr(loop, "lr_at", lambda s, c: math.inf if s == 3 else real(s, c))
    with pytest.raises(NonFiniteLossError, match="learning rate is inf at step 4"):
        t.fit()


def test_checkpoint_files_hold_no_arbitrary_pickles(tmp_path):
    t = Trainer(tiny_gpt(), cfg(tmp_path, max_steps=4, ckpt_every=2), data())
    t.fit()
    ckpt = list_checkpoints(tmp_path)[-1]
    assert {p.name for p in ckpt.iterdir()} == {"model.safetensors", "state.pt", "meta.json"}
    found = pickle_globals(ckpt / "state.pt")
    assert found and found <= SAFE_PICKLE_GLOBALS, found - SAFE_PICKLE_GLOBALS
    state = torch.load(ckpt / "state.pt", weights_only=True)
    assert state["step"] == 4
    json.loads((ckpt / "meta.json").read_text())


def test_pickle_scan_detects_a_foreign_class(tmp_path):
    torch.save({"when": __import__("datetime").date(2020, 1, 1), "t": torch.ones(2)},
               tmp_path / "bad.pt")
    found = pickle_globals(tmp_path / "bad.pt")
    assert "datetime date" in found and not found <= SAFE_PICKLE_GLOBALS
    with pytest.raises(Exception):  # noqa: B017 - the unpickler refuses it
        torch.load(tmp_path / "bad.pt", weights_only=True)


def test_keep_last_and_atomic_temp_dirs_are_ignored(tmp_path):
    t = Trainer(tiny_gpt(), cfg(tmp_path, max_steps=8, ckpt_every=2, keep_last=2), data())
    t.fit()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000006", "step_000008"]
    # a half-written save (killed before the rename) is never taken for a checkpoint
    half = tmp_path / "checkpoints" / ".tmp-step_000010-xyz"
    half.mkdir()
    (half / "state.pt").write_bytes(b"garbage")
    assert list_checkpoints(tmp_path)[-1].name == "step_000008"
    r = Trainer(tiny_gpt(), cfg(tmp_path, max_steps=8), data(), resume=True)
    assert r.state.step == 8


def test_metrics_records(tmp_path):
    t = Trainer(tiny_gpt(), cfg(tmp_path, max_steps=6, log_every=3, eval_every=3, ckpt_every=0,
                              eval_iters=2), data(), val_data=data())
    seen = []
    t.callbacks.append(seen.append)
    t.fit()
    recs = read_metrics(tmp_path / "metrics.jsonl")
    assert recs == seen
    train = [r for r in recs if r["kind"] == "train"]
    assert [r["step"] for r in train] == [3, 6]
    for r in train:
        assert {"step", "loss", "lr", "tokens_per_s", "mfu", "memory_mb"} <= r.keys()
        assert r["mfu"] is None and r["tokens_per_s"] > 0 and r["memory_mb"] > 0
    evals = [r for r in recs if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [3, 6]
    # evaluation is deterministic and does not consume training randomness
    assert t.evaluate() == t.evaluate()


def test_lr_schedules():
    c = TrainConfig(max_steps=100, lr=1.0, warmup_steps=10, min_lr=0.1)
    assert lr_at(0, c) == pytest.approx(0.1)
    assert lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(10, c) == pytest.approx(1.0)
    assert lr_at(55, c) == pytest.approx(0.55)
    assert lr_at(100, c) == pytest.approx(0.1)
    lin = TrainConfig(max_steps=100, lr=1.0, warmup_steps=10, min_lr=0.1, schedule="linear")
    assert lr_at(55, lin) == pytest.approx(0.55)
    const = TrainConfig(max_steps=100, lr=1.0, warmup_steps=0, schedule="constant")
    assert lr_at(99, const) == 1.0
    with pytest.raises(ValueError, match="step"):
        lr_at(-1, c)


@pytest.mark.parametrize("kw, match", [
    (dict(max_steps=0), "max_steps"), (dict(lr=-1.0), "lr"), (dict(lr=float("nan")), "lr"),
    (dict(schedule="step"), "schedule"), (dict(precision="fp8"), "precision"),
    (dict(grad_accum=1.5), "grad_accum"), (dict(min_lr=5.0, lr=1.0), "min_lr"),
    (dict(betas=(0.9, 1.5)), "betas"), (dict(strategy="zero3"), "strategy"),
])
def test_config_validation(kw, match):
    with pytest.raises((ValueError, TypeError), match=match):
        TrainConfig(**kw)


def test_trainer_bad_inputs(tmp_path):
    with pytest.raises(TypeError, match="model"):
        Trainer("gpt", TrainConfig(), data())
    with pytest.raises(TypeError, match="config"):
        Trainer(tiny_gpt(), {"lr": 1}, data())
    with pytest.raises(TypeError, match="train_data"):
        Trainer(tiny_gpt(), TrainConfig(device="cpu"), 42)
    with pytest.raises(ValueError, match="fp16"):
        Trainer(tiny_gpt(), TrainConfig(device="cpu", precision="fp16"), data())
    t = Trainer(tiny_gpt(), TrainConfig(device="cpu", progress=False, max_steps=2), data())
    with pytest.raises(ValueError, match="until"):
        t.fit(until=5)
    with pytest.raises(ValueError, match="out_dir"):
        t.save_checkpoint()
    with pytest.raises(ValueError, match="checkpoint directory"):
        t.load_checkpoint(tmp_path)

    class NoLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, x, y):
            return self.w * 0

    t = Trainer(NoLoss(), TrainConfig(device="cpu", progress=False, max_steps=1), data())
    with pytest.raises(TypeError, match="loss"):
        t.fit()


def test_schedule_checker_accepts_the_trainer_schedule_and_rejects_a_wrong_one(capsys):
    from llmcourse.exercises.pretraining import check_warmup_cosine

    def ours(step, max_steps, lr, warmup, min_lr):
        return lr_at(step, TrainConfig(max_steps=max_steps, lr=lr, warmup_steps=warmup, min_lr=min_lr))

    assert check_warmup_cosine(ours)
    assert not check_warmup_cosine(lambda s, m, lr, w, mn: lr)
    assert "warmup_cosine" in capsys.readouterr().out


def test_benchmark_script_runs_both_sides():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "trainer_vs_loop.py"
    spec = importlib.util.spec_from_file_location("trainer_vs_loop", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(VOCAB, (2, BLOCK), generator=g),) * 2 for _ in range(2)]
    cpu = torch.device("cpu")
    assert mod.plain_loop(tiny_gpt(0, 0.0), batches, 2, cpu, "fp32") > 0
    assert mod.trainer_run(tiny_gpt(0, 0.0), batches, 2, cpu, "fp32") > 0


def test_a_crash_during_save_leaves_the_last_checkpoint_intact(tmp_path, monkeypatch):
    t = Trainer(tiny_gpt(), cfg(tmp_path, max_steps=4, ckpt_every=2), data())
    t.fit(until=2)
    before = {p.name: p.read_bytes() for p in list_checkpoints(tmp_path)[-1].iterdir()}

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000002"]
    assert {p.name: p.read_bytes() for p in list_checkpoints(tmp_path)[-1].iterdir()} == before
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".tmp")]


def test_bf16_autocast_on_cpu_trains(tmp_path):
    t = Trainer(tiny_gpt(0, 0.0), cfg(tmp_path, max_steps=10, ckpt_every=0, precision="bf16"), data())
    recs = t.fit()
    assert t.precision == "bf16" and recs[-1]["loss"] < recs[0]["loss"]


def test_tokens_per_second_leaves_out_evaluation_and_checkpoints(tmp_path, monkeypatch):
    # a clock that jumps 1,000 s whenever the trainer evaluates or saves: if either were
    # counted as training time, some window would take over 1,000 s
    jump, offset, real = 1_000.0, [0.0], time.perf_counter
    monkeypatch.setattr(time, "perf_counter", lambda: real() + offset[0])
    t = Trainer(tiny_gpt(), cfg(tmp_path, max_steps=8, log_every=2, eval_every=1, ckpt_every=3),
                data(), val_data=data())

    def slow(fn):
        def wrapped(*a, **k):
            offset[0] += jump
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(t, "evaluate", slow(t.evaluate))
    monkeypatch.setattr(t, "save_checkpoint", slow(t.save_checkpoint))
    records = [r for r in t.fit() if r["kind"] == "train"]
    assert [r["step"] for r in records] == [2, 4, 6, 8]
    window_tokens = 2 * 8 * BLOCK  # log_every × batch × block
    for r in records:
        assert window_tokens / r["tokens_per_s"] < jump / 2, r


def test_resume_after_a_crash_does_not_duplicate_metrics(tmp_path):
    torch.manual_seed(0)
    first = Trainer(tiny_gpt(), cfg(tmp_path, max_steps=20, log_every=5, ckpt_every=10), data())
    first.fit(until=15)  # dies after logging step 15; the last checkpoint is step 10
    assert [r["step"] for r in read_metrics(tmp_path)] == [5, 10, 15]
    resumed = Trainer(tiny_gpt(), cfg(tmp_path, max_steps=20, log_every=5, ckpt_every=10), data(),
                      resume=True)
    assert resumed.state.step == 10
    resumed.fit()
    assert [r["step"] for r in read_metrics(tmp_path)] == [5, 10, 15, 20]


def test_saving_the_same_step_again_replaces_it_whole(tmp_path):
    t = Trainer(tiny_gpt(), cfg(tmp_path, max_steps=5, ckpt_every=5), data())
    t.fit()
    t.save_checkpoint()
    root = tmp_path / "checkpoints"
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000005"]
    assert sorted(p.name for p in root.iterdir()) == ["step_000005"]  # no temp or old copies left


def test_fastest_precision_measures_and_leaves_model_and_rng_alone():
    from llmcourse.train import fastest_precision

    model = tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = data()(torch.Generator().manual_seed(0))
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    best, times = fastest_precision(model, (x, y), steps=1)
    assert torch.equal(torch.rand(3), expected_next)  # the global RNG was not consumed
    assert set(times) == {"fp32", "bf16"} and best == min(times, key=times.get)
    assert all(t > 0 for t in times.values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="fp16 needs a CUDA GPU|precision='fp16'"):
        fastest_precision(model, (x, y), candidates=("fp16",))
    with pytest.raises(ValueError, match="steps"):
        fastest_precision(model, (x, y), steps=0)
    with pytest.raises(TypeError, match="batch"):
        fastest_precision(model, x)
