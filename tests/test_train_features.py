"""Tests of the Trainer's newer features: token-weighted gradient accumulation, the WSD schedule,
the Muon option, the throughput meter (tokens/s, MFU) and the GPU-path set-up, with mocks where
a GPU or a second process would be needed."""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from contextlib import contextmanager

import pytest
import torch
import torch.nn as nn

import llmcourse.train.metrics as metrics
from llmcourse.data import make_get_batch
from llmcourse.llama import Llama, LlamaConfig
from llmcourse.model import GPT, GPTConfig
from llmcourse.train import (
    DistInfo,
    MuonAdamW,
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    lr_at,
    muon_split,
    peak_flops_here,
    setup_distributed,
)
from llmcourse.train.distributed import _gpu_count
from llmcourse.train.metrics import _Throughput
from llmcourse.train.optim import _make_optimizer
from llmcourse.train.precision import _fast_fp32_matmuls
from llmcourse.train.tokens import _target_counter, _token_weights

VOCAB, BLOCK = 64, 16
CPU = torch.device("cpu")


def tiny_gpt(seed: int = 0, n_layer: int = 2) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=n_layer, n_head=2,
                         n_embd=32, dropout=0.0))


def cfg(**kw) -> TrainConfig:
    base = dict(max_steps=1, lr=1e-3, warmup_steps=0, grad_clip=None, progress=False,
                device="cpu", precision="fp32", log_every=1)
    return TrainConfig(**{**base, **kw})


def grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


def step_gradient(trainer: Trainer) -> tuple[list[torch.Tensor], dict]:
    """The gradient the trainer's first step hands to the optimizer, and the step's output."""
    seen = {}

    def capture(*args, **kwargs):
        seen["g"] = grads(trainer.raw_model)

    trainer.optimizer.step = capture
    out = trainer.train_step()
    return seen["g"], out


def reference_gradient(model: nn.Module, batch) -> tuple[list[torch.Tensor], float]:
    model = copy.deepcopy(model)
    model.zero_grad()
    loss = model(*batch)[1] if isinstance(batch, tuple) else model(**batch).loss
    loss.backward()
    return grads(model), float(loss.detach())


def per_micro_average(model: nn.Module, micro_batches) -> list[torch.Tensor]:
    gs = [reference_gradient(model, mb)[0] for mb in micro_batches]
    return [sum(g[i] for g in gs) / len(gs) for i in range(len(gs[0]))]


def masked_batch(rows: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(VOCAB, (rows, BLOCK), generator=g)
    y = torch.randint(VOCAB, (rows, BLOCK), generator=g)
    return x, y


# ------------------------------------------------------------------ token-weighted accumulation
def test_accumulation_is_token_weighted_with_unequal_masks():
    x, y = masked_batch()
    y[:3, 4:] = -100  # micro-batch 1: 3 rows × 4 targets = 12
    y[3:, 14:] = -100  # micro-batch 2: 3 rows × 14 targets = 42
    micro = [(x[:3], y[:3]), (x[3:], y[3:])]
    model = tiny_gpt()
    want, full_loss = reference_gradient(model, (x, y))  # the mean over all 54 targets
    naive = per_micro_average(model, micro)
    assert max_diff(want, naive) > 1e-3  # the two rules differ on this data
    got, out = step_gradient(Trainer(copy.deepcopy(model), cfg(grad_accum=2), micro))
    assert max_diff(got, want) < 1e-6
    assert out["loss"] == pytest.approx(full_loss, abs=1e-6)  # the loss whose gradient it took


def test_accumulation_with_equal_counts_is_plain_division_bit_for_bit():
    x, y = masked_batch(rows=6)
    micro = [(x[i:i + 2], y[i:i + 2]) for i in (0, 2, 4)]  # k = 3: 1/3 is not exact in binary
    model = tiny_gpt()
    got, _ = step_gradient(Trainer(copy.deepcopy(model), cfg(grad_accum=3), micro))
    ref = copy.deepcopy(model)  # the accumulation every course chapter showed: loss / k
    for mb in micro:
        (ref(*mb)[1] / 3).backward()
    assert all(torch.equal(a, b) for a, b in zip(got, grads(ref)))


@pytest.mark.slow  # importing transformers: ~4 s
def test_hugging_face_causal_lm_counts_shifted_labels():
    transformers = pytest.importorskip("transformers")
    conf = transformers.GPT2Config(vocab_size=VOCAB, n_positions=BLOCK, n_embd=16, n_layer=1,
                                   n_head=2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(conf)
    x, y = masked_batch(rows=4)
    y[1:, 10:] = -100  # rows 1-3: 10 labels, of which 9 after HF's shift; row 0 all 16 (15)
    micro = [{"input_ids": x[:1], "labels": y[:1]}, {"input_ids": x[1:], "labels": y[1:]}]
    want, _ = reference_gradient(model, {"input_ids": x, "labels": y})  # HF's own mean
    got, _ = step_gradient(Trainer(copy.deepcopy(model), cfg(grad_accum=2), micro))
    assert max_diff(got, want) < 1e-6
    # counting the unshifted labels (16 vs 30 instead of 15 vs 27) would be visibly off
    g1, g2 = (reference_gradient(model, mb)[0] for mb in micro)
    unshifted = [(16 * a + 30 * b) / 46 for a, b in zip(g1, g2)]
    assert max_diff(unshifted, want) > 10 * max_diff(got, want)


def test_ranks_are_weighted_by_their_share_of_the_global_targets(monkeypatch):
    """Two ranks × two micro-batches, simulated in one process: each rank's gradient with its
    weights, averaged as DDP does, equals the gradient of the mean over all four."""
    x, y = masked_batch(rows=8)
    for i, keep in enumerate((2, 16, 5, 9)):  # targets per row of each micro-batch
        y[2 * i:2 * i + 2, keep:] = -100
    rank_batches = [[(x[0:2], y[0:2]), (x[2:4], y[2:4])], [(x[4:6], y[4:6]), (x[6:8], y[6:8])]]
    model = tiny_gpt()
    count = _target_counter(model)
    totals = [sum(int(count(b)) for b in bs) for bs in rank_batches]
    rank_grads = []
    for r, bs in enumerate(rank_batches):
        monkeypatch.setattr(torch.distributed, "all_reduce",
                            lambda t, op=None, r=r: t.add_(totals[1 - r]))  # the other rank's N
        w = _token_weights(bs, count, DistInfo(rank=r, world_size=2))
        m = copy.deepcopy(model)
        for wi, b in zip(w, bs):
            (m(*b)[1] * wi / len(bs)).backward()
        rank_grads.append(grads(m))
    ddp = [(a + b) / 2 for a, b in zip(*rank_grads)]
    want, _ = reference_gradient(model, (x, y))
    assert max_diff(ddp, want) < 1e-6
    naive = per_micro_average(model, [b for bs in rank_batches for b in bs])
    assert max_diff(naive, want) > 1e-3


def test_token_weights_are_exactly_one_for_equal_counts_and_none_in_one_process():
    x, y = masked_batch(rows=4)
    count = _target_counter(tiny_gpt())
    batches = [(x[:2], y[:2]), (x[2:], y[2:])]
    assert torch.equal(_token_weights(batches, count, DistInfo()), torch.ones(2))
    assert _token_weights(batches[:1], count, DistInfo()) is None
    y[:2, :4] = -100  # 24 and 32 targets
    assert _token_weights(batches, count, DistInfo()).tolist() == pytest.approx([48 / 56, 64 / 56])


# ------------------------------------------------------------------ warmup-stable-decay
def test_wsd_schedule_hand_computed():
    c = TrainConfig(max_steps=100, lr=1.0, min_lr=0.1, warmup_steps=10, schedule="wsd")
    assert c.decay_frac == 0.2  # the default: decay over the last 20 steps, from step 80
    expected = {0: 0.1, 9: 1.0, 10: 1.0, 50: 1.0, 79: 1.0, 80: 1.0,
                85: 0.1 + 0.9 * (1 - math.sqrt(5 / 20)),  # 0.55
                95: 0.1 + 0.9 * (1 - math.sqrt(15 / 20)),  # 0.2205771...
                99: 0.1 + 0.9 * (1 - math.sqrt(19 / 20)), 100: 0.1}
    for step, lr in expected.items():
        assert lr_at(step, c) == pytest.approx(lr, abs=1e-12), step
    assert lr_at(85, c) == pytest.approx(0.55)
    # decay_frac·max_steps = 2.5 rounds up to 3 decay steps; min_lr defaults to lr/10
    short = TrainConfig(max_steps=10, lr=2.0, schedule="wsd", decay_frac=0.25)
    assert [lr_at(s, short) for s in (6, 7)] == [2.0, 2.0]
    assert lr_at(8, short) == pytest.approx(0.2 + 1.8 * (1 - math.sqrt(1 / 3)))
    # a warm-up longer than the stable phase: the decay starts when the warm-up ends
    late = TrainConfig(max_steps=10, lr=1.0, min_lr=0.0, warmup_steps=9, schedule="wsd",
                       decay_frac=0.5)
    assert lr_at(8, late) == 1.0 and lr_at(9, late) == 1.0 and lr_at(10, late) == 0.0


def test_existing_schedules_are_unchanged_by_decay_frac():
    for schedule in ("cosine", "linear", "constant"):
        a = TrainConfig(max_steps=50, lr=1.0, warmup_steps=5, schedule=schedule)
        b = TrainConfig(max_steps=50, lr=1.0, warmup_steps=5, schedule=schedule, decay_frac=0.9)
        assert [lr_at(s, a) for s in range(51)] == [lr_at(s, b) for s in range(51)]
    c = TrainConfig(max_steps=100, lr=1.0, warmup_steps=10, min_lr=0.1)
    assert lr_at(55, c) == pytest.approx(0.55)  # cosine half-way, as before


# ------------------------------------------------------------------ Muon
def test_muon_split_gpt_llama_and_hugging_face():
    gpt = tiny_gpt(n_layer=1)
    split = muon_split(gpt)
    assert split["muon"] == ["transformer.h.0.attn.c_attn.weight",
                             "transformer.h.0.attn.c_proj.weight",
                             "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_proj.weight"]
    # the token embedding is also the (tied) head
    assert split["adamw_decay"] == ["transformer.wte.weight", "transformer.wpe.weight"]
    assert all(n.endswith(("bias", "ln_1.weight", "ln_2.weight", "ln_f.weight"))
               for n in split["adamw_no_decay"])
    torch.manual_seed(0)
    llama = Llama(LlamaConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=1, n_head=2, n_embd=16,
                              intermediate_size=32))
    s = muon_split(llama)
    assert {n.rsplit(".", 2)[-2] for n in s["muon"]} == {"q_proj", "k_proj", "v_proj", "o_proj",
                                                         "gate_proj", "up_proj", "down_proj"}
    assert sorted(s["adamw_decay"]) == ["lm_head.weight", "model.embed_tokens.weight"]  # untied
    assert s["adamw_no_decay"] and all("norm" in n for n in s["adamw_no_decay"])
    transformers = pytest.importorskip("transformers")
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=VOCAB, n_positions=BLOCK,
                                                             n_embd=16, n_layer=1, n_head=2))
    s = muon_split(hf)  # Conv1D matrices are 2-D: Muon; the tied lm_head is found by HF's API
    assert sorted(s["adamw_decay"]) == ["transformer.wpe.weight", "transformer.wte.weight"]
    assert len(s["muon"]) == 4


def test_muon_adamw_equals_stepping_muon_and_adamw_separately():
    c = TrainConfig(optimizer="muon", lr=2e-2, weight_decay=0.1, warmup_steps=0, max_steps=10)
    a, b = tiny_gpt(), tiny_gpt()
    opt = _make_optimizer(a, c, CPU)
    assert isinstance(opt, MuonAdamW) and isinstance(opt, torch.optim.Optimizer)
    names = muon_split(b)
    params = dict(b.named_parameters())
    muon = torch.optim.Muon([params[n] for n in names["muon"]], lr=2e-2, weight_decay=0.1,
                            momentum=0.95, nesterov=True, adjust_lr_fn="match_rms_adamw")
    adamw = torch.optim.AdamW(
        [{"params": [params[n] for n in names["adamw_decay"]], "weight_decay": 0.1},
         {"params": [params[n] for n in names["adamw_no_decay"]], "weight_decay": 0.0}],
        lr=2e-2, betas=c.betas, eps=c.eps)
    x, y = masked_batch(rows=4)
    for _ in range(3):
        for m in (a, b):
            m(x, y)[1].backward()
        opt.step()
        muon.step()
        adamw.step()
        opt.zero_grad()
        b.zero_grad()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert a.lm_head.weight is a.transformer.wte.weight  # still tied


def test_muon_trains_a_small_gpt_and_resumes_exactly(tmp_path):
    tokens = (torch.arange(6_000) * 7 % 23) % VOCAB  # a learnable periodic stream
    get_batch = make_get_batch(tokens, batch_size=8, block_size=BLOCK)
    c = cfg(optimizer="muon", max_steps=30, lr=1e-2, warmup_steps=3, log_every=5, grad_clip=1.0,
            out_dir=str(tmp_path / "a"))
    t = Trainer(tiny_gpt(), c, get_batch)
    recs = t.fit()
    assert recs[-1]["loss"] < 0.5 * recs[0]["loss"], [r["loss"] for r in recs]
    assert {g["lr"] for g in t.optimizer.param_groups} == {lr_at(29, c)}  # one lr drives both
    assert t.optimizer.param_groups[0]["adjust_lr_fn"] == "match_rms_adamw"
    # a checkpoint restores both optimizers' state: resuming is bit-exact
    c2 = cfg(optimizer="muon", max_steps=6, lr=1e-2, ckpt_every=3, out_dir=str(tmp_path / "b"))
    straight = Trainer(tiny_gpt(), cfg(optimizer="muon", max_steps=6, lr=1e-2), get_batch)
    straight.fit()
    Trainer(tiny_gpt(), c2, get_batch).fit(until=3)
    resumed = Trainer(tiny_gpt(seed=5), c2, get_batch, resume=True)
    assert resumed.state.step == 3
    resumed.fit()
    assert all(torch.equal(p, q) for p, q in zip(straight.raw_model.parameters(),
                                                  resumed.raw_model.parameters()))


def test_muon_is_refused_under_fsdp(monkeypatch):
    import llmcourse.train.setup as setup

    monkeypatch.setattr(setup, "_device_and_rank", lambda name: (CPU, DistInfo(0, 2, 0)))
    with pytest.raises(ValueError, match="optimizer='muon'.*fsdp"):
        Trainer(tiny_gpt(), cfg(optimizer="muon", strategy="fsdp"), [masked_batch()])


# ------------------------------------------------------------------ host syncs per step
@contextmanager
def host_reads():
    """Count the tensor → Python reads (item, tolist, float, int, bool) that the trainer's own
    code (llmcourse/train) makes; torch's internals (CPU AdamW reads its step count) are not."""
    counts: dict[str, int] = {}
    saved = {}
    for name in ("item", "tolist", "__float__", "__int__", "__bool__", "__index__"):
        real = saved[name] = getattr(torch.Tensor, name)

        def wrapped(self, *a, _real=real, _name=name, **k):
            frame = sys._getframe(1)
            if "llmcourse/train" in frame.f_code.co_filename.replace("\\", "/"):
                key = f"{_name} {frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}"
                counts[key] = counts.get(key, 0) + 1
            return _real(self, *a, **k)

        setattr(torch.Tensor, name, wrapped)
    try:
        yield counts
    finally:
        for name, real in saved.items():
            setattr(torch.Tensor, name, real)


class DictGPT(nn.Module):
    """A Hugging Face-style model (dict batch, ``.loss``) without ``flops_per_token``."""

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        self.gpt = gpt

    def forward(self, input_ids, attention_mask, labels):
        class Out:
            pass

        out = Out()
        out.logits, out.loss = self.gpt(input_ids, labels)
        return out


def dict_batches(n: int, T: int = BLOCK, rows: int = 4):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(VOCAB, (rows, T), generator=g)
        mask = torch.ones(rows, T, dtype=torch.long)
        mask[:, T - 3:] = 0  # right padding: 3 positions a row
        labels = ids.masked_fill(mask == 0, -100)
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


@pytest.mark.parametrize("accum", [1, 3])
def test_one_host_read_per_step(accum):
    for model, data in ((tiny_gpt(), make_get_batch(torch.arange(3000) % VOCAB, 4, BLOCK)),
                        (DictGPT(tiny_gpt()), dict_batches(6))):
        t = Trainer(model, cfg(grad_accum=accum, max_steps=10, grad_clip=1.0), data)
        t.train_step()  # warm
        with host_reads() as counts:
            for _ in range(4):
                t.train_step()
        assert sum(counts.values()) == 4, counts  # the loss and grad norm, read together
        assert all(k.startswith("tolist loop.py") for k in counts), counts


# ------------------------------------------------------------------ the throughput meter
@pytest.fixture
def clock(monkeypatch):
    """time.perf_counter advances exactly 1 s per call: every logging window lasts 1 s."""
    now = [0.0]

    def tick():
        now[0] += 1.0
        return now[0]

    monkeypatch.setattr(time, "perf_counter", tick)
    monkeypatch.setattr(metrics, "peak_flops_here", lambda device, precision: 1e9)


def test_mfu_uses_the_batch_sequence_length_not_block_size(clock):
    T = 8  # rows of 8 tokens for a model whose block_size is 16
    g = torch.Generator().manual_seed(0)
    batches = [tuple(torch.randint(VOCAB, (4, T), generator=g) for _ in range(2))
               for _ in range(4)]
    model = tiny_gpt()
    recs = Trainer(model, cfg(max_steps=4, log_every=2), batches).fit()
    tokens = 2 * 4 * T  # two steps a window, 1 s each
    assert [r["tokens_per_s"] for r in recs] == [tokens, tokens]
    assert recs[0]["mfu"] == pytest.approx(tokens * model.flops_per_token(T) / 1e9, rel=1e-12)
    assert model.flops_per_token(T) < model.flops_per_token(BLOCK)  # the old, wrong count


def test_padding_is_not_counted_and_a_model_without_flops_per_token_gets_6n(clock):
    gpt = tiny_gpt()
    model = DictGPT(gpt)
    recs = Trainer(model, cfg(max_steps=2, log_every=1), dict_batches(2)).fit()
    processed = 4 * (BLOCK - 3)  # padding left out
    assert [r["tokens_per_s"] for r in recs] == [processed, processed]
    n = gpt.num_params(non_embedding=True) + gpt.lm_head.weight.numel()  # GPT's own N
    attention = 12 * 2 * 2 * 16 * BLOCK
    assert 6 * n == gpt.flops_per_token(BLOCK) - attention
    assert recs[0]["mfu"] == pytest.approx(processed * 6 * n / 1e9, rel=1e-9)


def test_first_window_after_compiling_is_left_out(clock, monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda model, **kw: model)  # no real compilation
    data = make_get_batch(torch.arange(3000) % VOCAB, 4, BLOCK)
    recs = Trainer(tiny_gpt(), cfg(max_steps=6, log_every=2, compile=True), data).fit()
    assert recs[0]["tokens_per_s"] is None and recs[0]["mfu"] is None
    assert all(r["tokens_per_s"] == 2 * 4 * BLOCK and r["mfu"] > 0 for r in recs[1:])
    plain = Trainer(tiny_gpt(), cfg(max_steps=2, log_every=2), data).fit()
    assert plain[0]["tokens_per_s"] == 2 * 4 * BLOCK  # without compile nothing is left out


def test_mfu_divides_by_distinct_gpus(clock, monkeypatch):
    class Props:
        def __init__(self, uuid):
            self.uuid = uuid

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda d: Props("GPU-a"))

    def gather(out, obj):  # four ranks, two per GPU
        out[:] = ["GPU-a", "GPU-a", "GPU-b", "GPU-b"]

    monkeypatch.setattr(torch.distributed, "all_gather_object", gather)
    four = DistInfo(rank=0, world_size=4, local_rank=0)
    assert _gpu_count(torch.device("cuda", 0), four) == 2
    assert _gpu_count(CPU, four) == 4 and _gpu_count(torch.device("cuda", 0), DistInfo()) == 1
    meter = _Throughput(tiny_gpt(), CPU, "fp32", DistInfo())
    batch = masked_batch(rows=2)
    meter.start()
    meter.count(batch)
    one = meter.close()["mfu"]
    meter.gpus = 2
    meter.count(batch)
    assert meter.close()["mfu"] == pytest.approx(one / 2)


def test_unknown_gpu_gives_no_mfu_and_one_logged_reason(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA B300 SXM6 AC")
    monkeypatch.setattr(metrics, "_REPORTED", set())
    with caplog.at_level(logging.WARNING, logger="llmcourse.train.metrics"):
        assert peak_flops_here(torch.device("cuda"), "bf16") is None
        assert peak_flops_here(torch.device("cuda"), "bf16") is None
    reasons = [r.getMessage() for r in caplog.records]
    assert len(reasons) == 1 and "B300" in reasons[0] and "GPU_SPECS" in reasons[0]
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 NVL")
    assert peak_flops_here(torch.device("cuda"), "bf16") == 835.5e12
    assert peak_flops_here(torch.device("cuda"), "fp32") == 417.5e12  # fp32 runs on TF32
    assert peak_flops_here("cpu", "bf16") is None


# ------------------------------------------------------------------ GPU-path set-up
def test_tf32_is_set_with_the_matmul_precision_api(monkeypatch):
    calls = []
    monkeypatch.setattr(torch, "set_float32_matmul_precision", calls.append)
    _fast_fp32_matmuls(CPU)
    assert calls == []
    _fast_fp32_matmuls(torch.device("cuda", 0))
    assert calls == ["high"]
    import llmcourse.train.setup as setup

    seen = []
    monkeypatch.setattr(setup, "_fast_fp32_matmuls", seen.append)
    Trainer(tiny_gpt(), cfg(), [masked_batch()])
    assert seen == [CPU]  # the trainer sets it up where it resolves the precision


def test_local_rank_beyond_the_visible_gpus_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"LOCAL_RANK=3 but this node has 2 visible CUDA"):
        setup_distributed("cuda")
    with pytest.raises(TypeError, match="device_type"):
        setup_distributed(5)


def test_nan_guard_still_names_the_step_after_the_single_read():
    class Boom(GPT):
        def forward(self, idx, targets=None):
            logits, loss = super().forward(idx, targets)
            return logits, loss * float("nan")

    torch.manual_seed(0)
    model = Boom(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=1, n_head=2, n_embd=16))
    before = [p.clone() for p in model.parameters()]
    t = Trainer(model, cfg(grad_accum=2, grad_clip=1.0), [masked_batch()])
    with pytest.raises(NonFiniteLossError, match="loss is nan at step 1"):
        t.train_step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
