# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Pretraining: a real training loop
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/07_pretraining.ipynb)
#
# **What you will learn**
# - how raw text becomes training batches: a tokenizer, packing into fixed-length blocks, a
#   memory-mapped token file, deterministic sampling;
# - what a real training loop adds to `loss.backward()`: learning-rate schedules, gradient
#   accumulation, clipping, mixed precision, checkpoints that resume *exactly*, a NaN guard;
# - how fast training is: tokens per second and model FLOPs utilisation (MFU);
# - the other pretraining objective: masked language modelling (BERT).
#
# **Prerequisites:** chapters 04 (the GPT) and 06 (cross-entropy, AdamW).
#
# Everything here is in `llmcourse.train` (the `Trainer`), `llmcourse.data` (corpora, packing, batches) and
# `python -m llmcourse.pretrain` (the same run from a terminal, on one or many GPUs).

# %% tags=["hide-input"]
import sys

if "google.colab" in sys.modules:  # on Colab only: install the course package
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    "llmcourse[offline] @ git+https://github.com/llmcourse/llmcourse@v0.2.0"], check=True)

# %% tags=["nbval-ignore-output"]
import llmcourse

device, prof = llmcourse.setup(seed=0)
print(llmcourse.env_report())

# %% [markdown]
# ## 1. From text to batches
#
# We pretrain on the Python language reference (it ships with Python, so no download). First a
# tokenizer: a byte-level BPE trained on the training split with Hugging Face `tokenizers`
# (chapter 02 built BPE by hand; this one is the fast library version). `<|endoftext|>` is
# token 0: it separates documents.

# %%
import numpy as np
import torch

from llmcourse.data import load_corpus, train_val_split
from llmcourse.data.packing import (
    EOS,
    make_get_batch,
    open_token_file,
    pack_blocks,
    token_stream,
    tokenize_dataset,
    train_bpe,
    write_token_file,
)

text = load_corpus("python-reference")
if prof.corpus_chars is not None:
    text = text[: prof.corpus_chars]
train_text, val_text = train_val_split(text, val_fraction=0.1)
VOCAB = prof.pick(ci=512, cpu=2048, gpu=4096)
tok = train_bpe(train_text, vocab_size=VOCAB)
ids = tok.encode("The for statement iterates over a sequence.").ids
print(tok.decode(ids) == "The for statement iterates over a sequence.", tok.token_to_id(EOS))
assert tok.get_vocab_size() == VOCAB

# %% [markdown]
# Documents (here: paragraphs) have all sorts of lengths, but a GPU wants a rectangular batch.
# **Packing** concatenates the documents, each followed by `<|endoftext|>`, and cuts the stream
# into blocks of `block_size + 1` tokens: the inputs are a block's first `block_size` tokens, the
# targets the same block shifted by one. No padding, no wasted compute. Both steps are
# `datasets` batched maps, so they scale to corpora that do not fit in memory.

# %%
BLOCK = prof.gpt["block_size"]
docs = {name: [d for d in part.split("\n\n") if d.strip()]
        for name, part in (("train", train_text), ("val", val_text))}
tokenized = {name: tokenize_dataset(d, tok) for name, d in docs.items()}
blocks = pack_blocks(tokenized["train"], block_size=BLOCK)
print(blocks.column_names, len(blocks[0]["input_ids"]))
first = blocks[0]["input_ids"]
assert len(first) == BLOCK + 1
flat = [t for row in tokenized["train"]["input_ids"] for t in row]
assert first == flat[: BLOCK + 1]  # packing keeps the order and loses nothing but the tail

# %% [markdown]
# For a large corpus, the token ids go to a flat binary file (`uint16` when the vocabulary has
# at most 65,536 tokens) that is **memory-mapped**: the operating system pages in only what a
# batch reads. A batch is `batch_size` random windows; the random numbers come from a
# `torch.Generator` we own, so the same generator state gives the same batch — the key to
# resuming a run exactly.

# %%
import tempfile
from pathlib import Path

work = Path(tempfile.mkdtemp(prefix="ch07-"))
for name, ds in tokenized.items():
    write_token_file(token_stream(ds), work / f"{name}.bin", vocab_size=VOCAB)
train_tokens, val_tokens = open_token_file(work / "train.bin"), open_token_file(work / "val.bin")
print(type(train_tokens).__name__, train_tokens.dtype)

BATCH = prof.batch_size
get_batch = make_get_batch(train_tokens, BATCH, BLOCK)
get_val_batch = make_get_batch(val_tokens, BATCH, BLOCK)
x, y = get_batch(torch.Generator().manual_seed(0))
x2, _ = get_batch(torch.Generator().manual_seed(0))
print(tuple(x.shape), tuple(y.shape))
assert torch.equal(x, x2) and torch.equal(x[:, 1:], y[:, :-1])

# %% [markdown]
# ## 2. The model, before training
#
# The GPT of chapter 04, at the profile's size. Before training it is a uniform guesser: its
# loss is about $\ln V$ and its samples are noise.

# %%
import math

from llmcourse.model import GPT, GPTConfig


def new_model(seed: int = 0, size: dict | None = None) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, **(size or prof.gpt), dropout=0.0))


model = new_model()
print(f"{model.num_params():,} parameters; ln V = {math.log(VOCAB):.2f}")


def sample(m: GPT, prompt: str = "The for statement", n: int = 40) -> str:
    idx = torch.tensor([tok.encode(prompt).ids], device=next(m.parameters()).device)
    out = m.generate(idx, n, temperature=0.8, top_k=50, generator=torch.Generator(idx.device).manual_seed(0))
    return tok.decode(out[0].tolist())


with torch.no_grad():
    loss0 = model(x, y)[1].item()
assert abs(loss0 - math.log(VOCAB)) < 0.5

# %% tags=["nbval-ignore-output"]
print(sample(model))

# %% [markdown]
# ## 3. Learning-rate schedules
#
# AdamW's step size matters more than anything else. Almost every LLM uses a **warm-up** (tiny
# steps while Adam's moment estimates are still noisy) followed by a **decay** (big steps early,
# small steps to settle at the end). `lr_at(step, cfg)` is the schedule the `Trainer` follows.

# %%
import plotly.graph_objects as go

from llmcourse.train import TrainConfig, lr_at

steps = list(range(0, 1000, 5))
fig = go.Figure()
for sched in ("cosine", "linear", "constant"):
    c = TrainConfig(max_steps=1000, lr=1e-3, warmup_steps=100, schedule=sched)
    fig.add_scatter(x=steps, y=[lr_at(s, c) for s in steps], name=sched)
fig.update_layout(height=300, xaxis_title="step", yaxis_title="learning rate",
                  margin=dict(t=30, b=40))
cos = TrainConfig(max_steps=1000, lr=1e-3, warmup_steps=100)
assert lr_at(0, cos) == 1e-5 and lr_at(99, cos) == 1e-3  # linear warm-up
assert abs(lr_at(550, cos) - 5.5e-4) < 1e-12 and abs(lr_at(1000, cos) - 1e-4) < 1e-12
assert [t.name for t in fig.data] == ["cosine", "linear", "constant"]
fig

# %% [markdown]
# Do schedules matter in practice? Train the same model, from the same initial weights, on the
# same batches (the `Trainer` draws them from its own seeded generator), changing only the
# schedule: (a) a **constant** learning rate, (b) the `Trainer`'s **warm-up + cosine** to the same
# peak, (c) warm-up + cosine to a **10× higher** peak. Each run is short: 150 steps of the `ci`
# profile's model on a CPU (three runs of the `cpu` profile's model would cost a laptop about
# ten minutes; section 6 trains that one), 1,000 steps of the full model on a GPU.

# %%
from llmcourse.train import Trainer

SCHED_STEPS = prof.pick(ci=150, cpu=150, gpu=1000)
SCHED_SIZE = prof.pick(ci=prof.gpt, cpu=llmcourse.profile("ci").gpt, gpu=prof.gpt)
PEAK = prof.pick(ci=3e-3, cpu=3e-3, gpu=1e-3)
sched_batch = make_get_batch(train_tokens, prof.pick(ci=BATCH, cpu=16, gpu=BATCH),
                             SCHED_SIZE["block_size"])
schedules = {
    "constant": dict(lr=PEAK, schedule="constant"),
    "warm-up + cosine": dict(lr=PEAK, warmup_steps=SCHED_STEPS // 10),
    "warm-up + cosine, 10× lr": dict(lr=10 * PEAK, warmup_steps=SCHED_STEPS // 10),
}
curves = {}
for name, kw in schedules.items():
    c = TrainConfig(max_steps=SCHED_STEPS, log_every=1, precision=prof.precision,
                    progress=False, **kw)
    recs_ = Trainer(new_model(seed=0, size=SCHED_SIZE), c, sched_batch).fit()
    curves[name] = [r["loss"] for r in recs_]


def smooth(v: list[float], k: int = 10) -> list[float]:  # the mean of the last k steps
    return [sum(v[max(0, i - k + 1):i + 1]) / len(v[max(0, i - k + 1):i + 1]) for i in range(len(v))]


final = {name: smooth(v)[-1] for name, v in curves.items()}
fig = go.Figure()
for name, v in curves.items():
    fig.add_scatter(x=list(range(1, SCHED_STEPS + 1)), y=smooth(v), name=name)
fig.update_layout(height=320, xaxis_title="step", yaxis_title="training loss (mean of 10 steps)",
                  margin=dict(t=30, b=40))
assert [t.name for t in fig.data] == list(schedules) and all(len(v) == SCHED_STEPS for v in curves.values())
fig

# %% tags=["nbval-ignore-output"]
print({name: round(v, 2) for name, v in final.items()})

# %%
assert all(v < math.log(VOCAB) - 0.5 for v in final.values())  # every run learned something
assert final["warm-up + cosine, 10× lr"] > min(final["constant"], final["warm-up + cosine"])

# %% [markdown]
# What the `ci` run shows, honestly (the same held over several seeds when this chapter was
# written):
#
# - **Too high a peak is worse, warm-up or not**: at 10× the learning rate the loss stalls
#   around 5 nats, about where a model that has learned only how frequent each token is
#   gets stuck (section 11 computes that level), while the other runs go below it.
# - **At this tiny budget the constant learning rate ends lowest**: the model is far from
#   converged, so every step at a smaller learning rate is progress given up, and the cosine
#   spends almost half the run below half its peak. Decay pays off later: once the loss is limited by
#   the noise of the batches rather than by the distance still to go, shrinking the steps lets
#   it settle lower — which is why long LLM runs decay (and why the cosine is laid out over the
#   *whole* run: `max_steps` is part of the schedule). Exercise 3 compares them on a real run.
# - Warm-up matters most for big models and big learning rates, where Adam's first noisy steps
#   can throw the weights somewhere they never recover from. At this size it is not what
#   decides: at 10× the peak, runs without warm-up stalled at about the same loss as run (c).

# %% [markdown]
# ## 4. Gradient accumulation equals a bigger batch
#
# A batch that does not fit in memory can be split into micro-batches: add up their gradients
# (each loss divided by the number of micro-batches) and take one optimiser step. The gradient
# is the big batch's gradient, up to float rounding. `TrainConfig(grad_accum=k)` does this.

# %%
m = new_model()
m.zero_grad()
m(x, y)[1].backward()  # one batch of BATCH rows
big = [p.grad.clone() for p in m.parameters()]

m.zero_grad()
half = BATCH // 2
for xs, ys in ((x[:half], y[:half]), (x[half:], y[half:])):  # two micro-batches
    (m(xs, ys)[1] / 2).backward()  # gradients add up in .grad
acc = [p.grad.clone() for p in m.parameters()]
print(all(torch.allclose(a, b, atol=1e-6) for a, b in zip(big, acc)))
assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(big, acc))

# %% [markdown]
# ## 5. Mixed precision
#
# GPUs multiply 16-bit numbers several times faster than 32-bit ones. **Autocast** runs the
# matrix multiplications in 16 bits and keeps the weights, the optimizer state and sensitive
# operations (softmax, losses, norms) in fp32:
#
# - **bf16** (A100, L4, H100…) has fp32's range with fewer digits: it just works.
# - **fp16** (T4, older GPUs) has a narrow range: small gradients underflow to zero. A
#   `GradScaler` multiplies the loss by a large factor before `backward()`, divides the
#   gradients back before the step, and skips steps whose gradients overflowed.
# - On **CPU** it depends on the chip: with native bf16 instructions (AVX512-BF16, AMX) bf16
#   was 15–20% faster on the course's 2-core AMD EPYC; without them it is emulated and slower.
#   `precision="auto"` keeps fp32 on CPU, where exact, portable results matter more than a
#   modest speed-up. To choose by speed instead, `fastest_precision(model, batch)` times a
#   training step in each precision on *your* machine and returns the faster one to pass as
#   `TrainConfig(precision=...)` — the cell below does it.
#
# TF32 (fp32 matmuls on tensor cores) is switched on for Ampere and newer GPUs.

# %%
from llmcourse.train import autocast_context, resolve_precision

print(resolve_precision("auto", torch.device("cpu")))
with autocast_context("bf16", torch.device("cpu")):
    out = torch.nn.Linear(4, 4)(torch.randn(2, 4))
print(out.dtype)  # the matmul ran in bf16; the weights are still fp32
assert out.dtype == torch.bfloat16 and resolve_precision("auto", torch.device("cpu")) == "fp32"

# %% tags=["nbval-ignore-output"]
import time

from llmcourse.hardware import native_bf16
from llmcourse.train import fastest_precision

mixed = "fp16" if device.type == "cuda" and not native_bf16() else "bf16"
fastest, times = fastest_precision(new_model(), (x, y), device=device, candidates=("fp32", mixed),
                                   steps=5)
print({p: f"{1000 * t:.1f} ms/step" for p, t in times.items()}, f"→ fastest here: {fastest}",
      f"| auto picks {resolve_precision('auto', device)}")

# %%
assert fastest == min(times, key=times.get) and set(times) == {"fp32", mixed}

# %% [markdown]
# ## 6. Training with the `Trainer`
#
# `Trainer(model, TrainConfig(...), train_data, val_data)` runs the loop: schedule, AdamW with
# weight decay on matrices only (fused on CUDA), accumulation, clipping, mixed precision,
# evaluation, metrics and checkpoints. The data is our `get_batch(generator)`; an iterable or a
# `DataLoader` of batches works too. The dashboard below updates live while it trains.

# %%
from llmcourse.train import read_metrics
from llmcourse.widgets import Dashboard

STEPS = prof.pick(ci=200, cpu=250, gpu=5000)
run_dir = work / "run"
cfg = TrainConfig(max_steps=STEPS, lr=prof.pick(ci=3e-3, cpu=2e-3, gpu=1e-3),
                  warmup_steps=STEPS // 10, eval_every=STEPS // 4, eval_iters=prof.eval_iters,
                  log_every=max(1, STEPS // 40), ckpt_every=STEPS // 2, out_dir=str(run_dir),
                  precision=prof.precision, compile=prof.compile and device.type == "cuda",
                  progress=False)
model = new_model()
dash = Dashboard()
trainer = Trainer(model, cfg, get_batch, val_data=get_val_batch, callbacks=[dash.update])
val_before = trainer.evaluate()

# %% tags=["nbval-ignore-output"]
dash.widget

# %% tags=["nbval-ignore-output"]
t0 = time.perf_counter()
history = trainer.fit()
train_seconds = time.perf_counter() - t0
val_after = trainer.evaluate()
print(f"{STEPS} steps in {train_seconds:.0f} s; val loss {val_before:.2f} → {val_after:.2f}")

# %%
recs = read_metrics(run_dir)
assert {r["kind"] for r in recs} == {"train", "eval"} and recs == dash.records
assert val_after < val_before - 1.0  # it learned
assert recs[-1]["step"] == STEPS and trainer.state.tokens == STEPS * BATCH * BLOCK
fig = dash.figure()  # the same plot without a live kernel: figure_from_metrics(run_dir)
assert [t.name for t in fig.data] == ["train loss", "val loss", "lr", "tokens/s"]
fig

# %% [markdown]
# After training, samples start to look like the Python reference (at the `ci` size, only a
# little; run with `LLMCOURSE_PROFILE=gpu` to see real sentences):

# %% tags=["nbval-ignore-output"]
print(sample(model))

# %% [markdown]
# ## 7. Interrupt and resume — exactly
#
# Long runs get interrupted. A checkpoint holds everything the next step depends on: the
# weights (`model.safetensors`), the optimizer's moments, the step (so the schedule continues),
# the RNG states of torch, NumPy and Python, and the data generator's state (so the next batch
# is the batch the uninterrupted run would have drawn). Then resuming is not "about the same":
# on a CPU it is **bit for bit** the same run. (Some GPU kernels are not deterministic, so on a
# GPU a resumed run matches only up to float rounding; this demo runs on the CPU everywhere.)
#
# Bit-for-bit needs the CPU and fp32 whatever the profile, so the demo uses a small fixed model
# (the `ci` profile's GPT) and small batches: a few seconds on any machine, instead of the
# profile's model crawling on a laptop's cores.

# %%
TINY = llmcourse.profile("ci").gpt  # 2 layers, 64 wide, blocks of 64 tokens, on every profile
get_tiny_batch = make_get_batch(train_tokens, 8, TINY["block_size"])


def short_run(out: str, until: int | None = None, resume: bool = False) -> Trainer:
    c = TrainConfig(max_steps=40, lr=3e-3, warmup_steps=4, log_every=5, ckpt_every=20,
                    out_dir=out, progress=False, device="cpu", precision="fp32")
    torch.manual_seed(1 if resume else 0)  # the resumed run starts from other weights...
    m = GPT(GPTConfig(vocab_size=VOCAB, **TINY, dropout=0.0))
    t = Trainer(m, c, get_tiny_batch, resume=resume)  # ...which the checkpoint overwrites
    t.fit(until=until)
    return t


straight = short_run(str(work / "straight"))
short_run(str(work / "interrupted"), until=20)  # stops after step 20's checkpoint
resumed = short_run(str(work / "interrupted"), resume=True)  # a fresh model, then the checkpoint
same = all(torch.equal(a, b) for a, b in zip(straight.raw_model.parameters(),
                                             resumed.raw_model.parameters()))
losses_a = [r["loss"] for r in read_metrics(work / "straight") if r["step"] > 20]
losses_b = [r["loss"] for r in read_metrics(work / "interrupted") if r["step"] > 20]
print("identical weights:", same, "| identical losses after the resume:", losses_a == losses_b)
assert same and losses_a == losses_b

# %% [markdown]
# Checkpoints are written to a temporary directory that is renamed into place (a rename is
# atomic), so a kill during a save never damages the previous checkpoint; the last
# `keep_last` are kept. And they contain **no pickled Python objects**: weights are
# safetensors, the rest is tensors and plain containers that `torch.load(weights_only=True)`
# reads. We can check what the pickle inside `state.pt` references:

# %%
from llmcourse.train import SAFE_PICKLE_GLOBALS, list_checkpoints, pickle_globals

ckpt = list_checkpoints(run_dir)[-1]
print(ckpt.name, sorted(p.name for p in ckpt.iterdir()))
refs = pickle_globals(ckpt / "state.pt")
print(sorted(refs))
assert refs <= SAFE_PICKLE_GLOBALS
state = torch.load(ckpt / "state.pt", weights_only=True)
assert state["step"] == STEPS

# %% [markdown]
# ## 8. The NaN guard
#
# A learning rate too high, a bad batch, an fp16 overflow: the loss becomes `nan` and every
# weight after it is garbage. The `Trainer` checks the loss and the gradient norm every step and
# stops *before* the update, naming the step, with the last good checkpoint untouched. Here a
# model whose loss turns infinite at its 13th forward pass:

# %%
from llmcourse.train import NonFiniteLossError


class Exploding(GPT):
    calls = 0

    def forward(self, idx, targets=None):
        logits, loss = super().forward(idx, targets)
        Exploding.calls += 1
        return logits, (loss * float("inf") if Exploding.calls > 12 else loss)


torch.manual_seed(0)
boom = Exploding(GPTConfig(vocab_size=VOCAB, **prof.gpt))
c = TrainConfig(max_steps=30, lr=1e-3, ckpt_every=10, out_dir=str(work / "boom"), progress=False)
try:
    Trainer(boom, c, get_batch).fit()
except NonFiniteLossError as err:
    print(str(err).split(" Last good")[0])
    print("checkpoints kept:", [p.name for p in list_checkpoints(work / "boom")])
assert [p.name for p in list_checkpoints(work / "boom")] == ["step_000010"]
assert all(torch.isfinite(p).all() for p in boom.parameters())

# %% [markdown]
# ## 9. Throughput and MFU
#
# **Tokens per second** is what you pay for. **MFU** (model FLOPs utilisation) says how much of
# the hardware's peak it is: training costs about $6N + 12 L H Q T$ FLOPs per token (PaLM's
# formula: $6N$ for the forward and backward matmuls of $N$ parameters, plus attention over
# $T$ positions), so
#
# $$\text{MFU} = \frac{\text{tokens/s} \times \text{FLOPs per token}}{\text{peak FLOP/s}}.$$
#
# Good GPU runs reach 40–60%. On a CPU there is no meaningful peak, so the `Trainer` logs
# `mfu=None` there.

# %%
from llmcourse.hardware import peak_flops

fpt = model.flops_per_token()
print(f"our model: {fpt:,} FLOPs per token")
with torch.device("meta"):  # sizes only: no memory, no initialisation
    gpt2 = GPT(GPTConfig(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50304))
fpt2 = gpt2.flops_per_token()
print(f"GPT-2 124M: {fpt2 / 1e9:.2f} GFLOPs per token")
for gpu, tps in (("T4", 20_000), ("A100", 180_000), ("H100", 450_000)):
    prec = "fp16" if gpu == "T4" else "bf16"
    print(f"  {gpu} {prec}: {tps:>7,} tokens/s would be MFU {tps * fpt2 / peak_flops(gpu, prec):.0%}")
assert abs(fpt2 / 1e9 - 0.85) < 0.05
del gpt2

# %% tags=["nbval-ignore-output"]
# the first window after torch.compile (gpu profile) reports None: compilation is not throughput
train_recs = [r for r in recs if r["kind"] == "train" and r["tokens_per_s"] is not None]
tps = sorted(r["tokens_per_s"] for r in train_recs)[len(train_recs) // 2]
print(f"this run: {tps:,.0f} tokens/s (median), {tps * fpt / 1e9:.2f} GFLOP/s, "
      f"MFU {train_recs[-1]['mfu']}, memory {train_recs[-1]['memory_mb']:.0f} MB")

# %%
assert all(r["tokens_per_s"] > 0 for r in train_recs)
assert device.type == "cuda" or all(r["mfu"] is None for r in train_recs)

# %% [markdown]
# ## 10. The same run from a terminal, on one GPU or many
#
# `python -m llmcourse.pretrain` runs this chapter's pipeline end to end and writes metrics,
# checkpoints, `model.safetensors` and a Hugging Face copy that `from_pretrained` loads:
#
# ```bash
# python -m llmcourse.pretrain --preset gpu --out runs/gpu          # ~10 M parameters
# python -m llmcourse.pretrain --preset gpu --out runs/gpu --resume # after an interruption
# torchrun --nproc_per_node=4 -m llmcourse.pretrain --preset gpt2-124m --out runs/124m
# ```
#
# Under `torchrun` (or `accelerate launch --multi_gpu`) the same `Trainer` wraps the model in
# PyTorch's `DistributedDataParallel`: each process takes its slice of every global batch, and
# gradients are averaged across processes — so N processes compute what one would (the test
# suite checks it with 2 CPU processes). A model too big for one GPU's memory takes
# `--strategy fsdp` (`TrainConfig(strategy="fsdp")`): PyTorch's FSDP shards parameters, gradients
# and optimizer state across the processes (chapter 08 counts what that saves). Here is the `ci`
# preset, in-process:

# %% tags=["nbval-ignore-output"]
from llmcourse.pretrain import main as pretrain_main

summary = pretrain_main(["--preset", "ci", "--out", str(work / "cli"), "--max-steps", "20",
                         "--quiet"])
print(summary)

# %%
print(sorted(p.name for p in (work / "cli").iterdir()))
from transformers import AutoModelForCausalLM

hf = AutoModelForCausalLM.from_pretrained(work / "cli" / "hf")
print(type(hf).__name__)
assert summary["step"] == 20 and (work / "cli" / "model.safetensors").is_file()

# %% [markdown]
# ## 11. Masked-language-model pretraining (BERT)
#
# GPT learns to predict the **next** token. BERT learns to fill in **blanks**: pick 15% of the
# positions; replace 80% of them with `[MASK]`, 10% with a random token, leave 10% unchanged;
# the loss is cross-entropy at the picked positions only (every other label is `-100`, which
# the loss ignores). The model sees both sides of each blank: an encoder, not a generator.
#
# Masking by hand, driven by our generator:

# %%
MASK_ID = VOCAB  # one extra token after the BPE vocabulary
MLM_VOCAB = VOCAB + 1


def mask_tokens(ids: torch.Tensor, generator: torch.Generator, p: float = 0.15):
    """BERT masking: returns (inputs, labels) with labels -100 except at the picked positions."""
    labels = ids.clone()
    picked = torch.rand(ids.shape, generator=generator) < p
    labels[~picked] = -100
    inputs = ids.clone()
    r = torch.rand(ids.shape, generator=generator)
    inputs[picked & (r < 0.8)] = MASK_ID  # 80%: [MASK]
    rand = picked & (r >= 0.8) & (r < 0.9)  # 10%: a random token; 10%: unchanged
    inputs[rand] = torch.randint(VOCAB, (int(rand.sum()),), generator=generator)
    return inputs, labels


ids = torch.from_numpy(np.asarray(train_tokens[:64 * 256], dtype=np.int64)).view(256, 64)
inp, lab = mask_tokens(ids, torch.Generator().manual_seed(0))
picked = lab != -100
print(f"picked {picked.float().mean():.2f}, of which [MASK] {(inp[picked] == MASK_ID).float().mean():.1f}")
assert abs(picked.float().mean() - 0.15) < 0.01
assert torch.equal(lab[picked], ids[picked]) and torch.equal(inp[~picked], ids[~picked])
assert abs((inp[picked] == MASK_ID).float().mean() - 0.8) < 0.03

# %% [markdown]
# Hugging Face's `DataCollatorForLanguageModeling` implements the same rules (with its own
# random numbers): the same statistics, the same `-100` convention.

# %%
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerFast

hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=EOS, mask_token="[MASK]")
hf_mask = hf_tok.convert_tokens_to_ids("[MASK]")
collator = DataCollatorForLanguageModeling(hf_tok, mlm_probability=0.15, seed=0)
batch = collator([{"input_ids": row.tolist()} for row in ids])
picked_hf = batch["labels"] != -100
print(hf_mask == MASK_ID, f"picked {picked_hf.float().mean():.2f}")
assert hf_mask == MASK_ID  # "[MASK]" was added as token VOCAB, like ours
assert abs(picked_hf.float().mean() - 0.15) < 0.01
assert torch.equal(batch["labels"][picked_hf], ids[picked_hf])
assert abs((batch["input_ids"][picked_hf] == MASK_ID).float().mean() - 0.8) < 0.03

# %% [markdown]
# A tiny `BertForMaskedLM`, trained with the very same `Trainer` (it returns an output with a
# `.loss`, and batches are dicts):

# %%
from transformers import BertConfig, BertForMaskedLM

MLM_LEN = 64


def get_mlm_batch(generator: torch.Generator) -> dict:
    xb, _ = make_get_batch(train_tokens, BATCH, MLM_LEN)(generator)
    inputs, labels = mask_tokens(xb, generator)
    return {"input_ids": inputs, "labels": labels}


torch.manual_seed(0)
bert = BertForMaskedLM(BertConfig(vocab_size=MLM_VOCAB, hidden_size=prof.gpt["n_embd"],
                                  num_hidden_layers=prof.gpt["n_layer"],
                                  num_attention_heads=prof.gpt["n_head"],
                                  intermediate_size=4 * prof.gpt["n_embd"],
                                  max_position_embeddings=MLM_LEN, type_vocab_size=1,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
MLM_STEPS = prof.pick(ci=200, cpu=200, gpu=5000)
mlm = Trainer(bert, TrainConfig(max_steps=MLM_STEPS, lr=prof.pick(ci=3e-3, cpu=2e-3, gpu=1e-3),
                                warmup_steps=MLM_STEPS // 10, log_every=max(1, MLM_STEPS // 10),
                                precision=prof.precision, progress=False),
              get_mlm_batch, val_data=get_mlm_batch)
mlm_before = mlm.evaluate()

# %% tags=["nbval-ignore-output"]
mlm.fit()
mlm_after = mlm.evaluate()
counts = np.bincount(np.asarray(train_tokens), minlength=VOCAB).astype(np.float64)
freq = counts[counts > 0] / counts.sum()
unigram = float(-(freq * np.log(freq)).sum())  # the loss of guessing by token frequency alone
print(f"masked-LM loss {mlm_before:.2f} → {mlm_after:.2f} (token frequencies alone: {unigram:.2f})")

# %%
assert mlm_after < mlm_before - 0.5

# %% [markdown]
# A masked-LM first learns token frequencies (the loss plateaus near the unigram entropy),
# and only later how context decides a blank. At the `ci` size, 200 steps barely reach the
# plateau, so the guesses below are mostly frequent tokens; with `LLMCOURSE_PROFILE=gpu`
# (and on a GPU, minutes) the blanks are filled with words that fit.

# %% [markdown]
# Fill in the blank: mask one word of a sentence and ask for the five most likely tokens there.

# %% tags=["nbval-ignore-output"]
def fill_blank(sentence: str, blank: str, k: int = 5) -> list[str]:
    before, after = sentence.split(blank, 1)
    ids_ = tok.encode(before).ids + [MASK_ID] + tok.encode(after).ids
    bert.eval()
    with torch.no_grad():
        logits = bert(input_ids=torch.tensor([ids_], device=mlm.device)).logits[0]
    pos = ids_.index(MASK_ID)
    return [tok.decode([i]) for i in logits[pos, :VOCAB].topk(k).indices.tolist()]


for s, b in (("The return statement leaves the current function call.", " function"),
             ("A class definition defines a class object.", " class")):
    print(s.replace(b, " [MASK]", 1), "→", fill_blank(s, b))

# %% [markdown]
# ## Exercises
#
# **1. Warm-up + cosine.** Write `warmup_cosine(step, max_steps, lr, warmup, min_lr)`: a linear
# warm-up where step 0 gets `lr / warmup` and step `warmup - 1` gets `lr`, then a cosine from
# `lr` down to `min_lr` at `max_steps` (and `min_lr` after it).

# %%
from llmcourse.exercises.pretraining import check_pack, check_warmup_cosine


def warmup_cosine(step: int, max_steps: int, lr: float, warmup: int, min_lr: float) -> float:
    raise NotImplementedError  # your code here


check_warmup_cosine(warmup_cosine)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Warm-up is `lr * (step + 1) / warmup`; afterwards the progress through the decay is
# `(step - warmup) / (max_steps - warmup)`, clipped at 1, and the cosine goes from 1 to 0 over it.
# </details>

# %% jupyter={"source_hidden": true}
def warmup_cosine_solution(step, max_steps, lr, warmup, min_lr):
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


assert check_warmup_cosine(warmup_cosine_solution)

# %% [markdown]
# A schedule that forgets to stop at `max_steps` (the cosine comes back up) fails the checker:

# %%
def cosine_that_comes_back(step, max_steps, lr, warmup, min_lr):
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, max_steps - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))


assert not check_warmup_cosine(cosine_that_comes_back)

# %% [markdown]
# **2. Packing.** Write `pack(docs, block_size, eos)`: append `eos` to each document (a list of
# token ids), concatenate them all, cut the stream into blocks of `block_size + 1` tokens, and
# drop the tail that does not fill a block.

# %%
def pack(docs: list[list[int]], block_size: int, eos: int) -> list[list[int]]:
    raise NotImplementedError  # your code here


check_pack(pack)

# %% [markdown]
# <details><summary><b>Solution</b></summary>
#
# Flatten with the separators, then slice every `block_size + 1` tokens up to the last full block.
# </details>

# %% jupyter={"source_hidden": true}
def pack_solution(docs, block_size, eos):
    flat = [t for d in docs for t in [*d, eos]]
    n = block_size + 1
    return [flat[i:i + n] for i in range(0, len(flat) // n * n, n)]


assert check_pack(pack_solution)

# %% [markdown]
# Forgetting the separator glues documents together — and the checker notices:

# %%
def pack_without_eos(docs, block_size, eos):
    flat = [t for d in docs for t in d]
    n = block_size + 1
    return [flat[i:i + n] for i in range(0, len(flat) // n * n, n)]


assert not check_pack(pack_without_eos)

# %% [markdown]
# **3. (Open)** Run the chapter with `LLMCOURSE_PROFILE=gpu` on Colab, then compare the three
# schedules of section 3 on the real run: which gives the lowest validation loss at the end?
#
# ## Summary
#
# - Pretraining data: tokenize, **pack** into fixed blocks, memory-map, draw batches from a
#   generator you own.
# - A real loop: warm-up + cosine, AdamW with decay on matrices, accumulation (= a bigger
#   batch), clipping, bf16 (or fp16 + GradScaler), a NaN guard.
# - Checkpoints: safetensors + plain-tensor state, atomic, and a resume that is bit-for-bit.
# - Throughput in tokens/s; MFU = achieved FLOP/s ÷ peak; `None` on CPU.
# - Masked-LM (BERT) is the same machinery with a different objective.
#
# Next: **08 · Scaling to 7B** — what it takes in memory, FLOPs and GPU-hours to go big.
