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
# # 10 · Post-training: SFT that stops, DPO, and RL with a verifiable reward
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/10_post_training.ipynb)
#
# **What you will learn**
# - how a next-token predictor becomes an assistant that answers and *stops*: a chat template,
#   special tokens, supervised fine-tuning (SFT) with the prompt masked by `-100`;
# - why gradient accumulation must count tokens, not micro-batches;
# - DPO: learning from preference pairs without a reward model, and what its `β` does;
# - reinforcement learning with a *verifiable* reward (GRPO): group-normalised advantages, a
#   clipped ratio, a KL penalty to a frozen reference — and how a flawed reward gets hacked;
# - pass@k with the unbiased estimator, and what RL does to pass@1 and to pass@k.
#
# **Prerequisites:** chapters 04 (the GPT and `generate`), 06 (cross-entropy, `-100`, KL),
# 07 (the `Trainer`) and 09 (fine-tuning, the loss on the response only).
#
# Everything runs on a task the course makes itself — two-digit additions in a chat format — so
# every answer can be checked by a program, and a model small enough to post-train in seconds on
# a CPU. The code is in `llmcourse.align`.

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

# %%
import copy
import math
import random
import re
import time

import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from llmcourse import align
from llmcourse.align import (
    ChatTokenizer,
    Problem,
    chat_prompt,
    chat_text,
    make_splits,
    parse_answer,
)
from llmcourse.model import GPT, GPTConfig
from llmcourse.train import TrainConfig, Trainer

threads = torch.get_num_threads()
torch.set_num_threads(1)  # tiny models: one CPU thread is as fast and never oversubscribes the CPU
CPU = "cpu"  # a 100k-parameter model gains nothing from a GPU: these runs stay on the CPU

# %% [markdown]
# ## 1. A task whose answers a program can check
#
# `make_splits` draws distinct problems `a + b` with `a, b < 100` and sends each one to the
# training or the held-out split by a hash of the problem (with `a + b` and `b + a` counted as
# one problem), so no held-out problem — nor its mirror — is ever trained on.

# %%
splits = make_splits(4000, 500, digits=2, seed=0)
train, test = splits["train"], splits["test"]
assert not {p.key for p in train} & {p.key for p in test}  # held out means never seen
print(len(train), "training problems,", len(test), "held out; e.g.",
      [p.question for p in train[:4]], "|", [p.question for p in test[:4]])

# %% [markdown]
# A **chat template** turns a conversation into one string the model reads. Ours is the
# smallest that has what real ones (ChatML, Llama 3's) have: a marker for each role and an
# end-of-turn token. The tokenizer knows the markers as **special tokens** — one id each,
# never split into characters.

# %%
tok = ChatTokenizer()
print(tok, "special tokens:", {s: tok.encode(s) for s in tok.special})
for p in train[:3]:
    print(repr(chat_text(p.question, p.answer)), "→", tok.encode(chat_text(p.question, p.answer)))
assert tok.encode("<|assistant|>") == [tok.assistant_id] and tok.vocab_size == 16
assert tok.decode(tok.encode(chat_text("12+34", "46"))) == "<|user|>12+34<|end|><|assistant|>46<|end|>"

# %% [markdown]
# At inference the model is given `chat_prompt(question)`, which ends with `<|assistant|>`, and
# generates until it writes `<|end|>`. A model that never learned to write `<|end|>` rambles on
# until `max_new_tokens` — the first thing SFT has to teach.
#
# ## 2. Supervised fine-tuning (SFT)
#
# SFT is next-token prediction on demonstrations. One thing changes from pretraining: the loss
# counts only the **answer** (and the end token), not the prompt — targets at prompt positions
# are set to `-100`, which `F.cross_entropy` ignores (chapter 06). Written out:

# %%
IGNORE = -100


def sft_example(tok, problem):
    prompt = tok.encode(chat_prompt(problem.question))  # <|user|>12+34<|end|><|assistant|>
    ids = prompt + tok.encode(problem.answer) + [tok.end_id]  # ... 46<|end|>
    x, y = ids[:-1], ids[1:]  # read x[t], predict y[t] = ids[t + 1]
    y = [IGNORE] * (len(prompt) - 1) + y[len(prompt) - 1:]  # prompt targets are not learned
    return x, y


x, y = sft_example(tok, train[0])
print(f"{'reads':>14} | predicts")
for a, b in zip(x, y):
    print(f"{tok.itos[a]:>14} | {'-100 (masked)' if b == IGNORE else tok.itos[b]}")
assert all(sft_example(tok, p) == align.chat_example(tok, p) for p in train)

# %% [markdown]
# The first target that counts is read at `<|assistant|>`: the model learns to answer after the
# marker and to write `<|end|>` after the answer. `align.make_sft_get_batch` pads such examples
# into batches (`-100` on padding too) in the `get_batch(generator)` form the `Trainer` of
# chapter 07 takes. We train a 2-layer GPT (4 heads, 64 wide) on all the training problems.

# %%
SFT_STEPS = prof.pick(ci=600, cpu=1000, gpu=1000)
BATCH = 64


def new_gpt(seed=0):
    llmcourse.seed_everything(seed)
    return GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=2, n_head=4,
                         n_embd=64, dropout=0.0))


def sft(problems, steps, mask_prompt=True, seed=0):
    model = new_gpt(seed)
    cfg = TrainConfig(max_steps=steps, lr=3e-3, warmup_steps=20, weight_decay=0.0, grad_accum=1,
                      log_every=steps // 10, progress=False, device=CPU, precision="fp32",
                      seed=seed)
    get_batch = align.make_sft_get_batch(tok, problems, BATCH, mask_prompt=mask_prompt)
    records = Trainer(model, cfg, get_batch).fit()
    return model.eval(), records


def answer(model, question, max_new_tokens=6):
    """The greedy completion, cut after its first <|end|>."""
    prompt = tok.encode(chat_prompt(question))
    return tok.decode(align.sample_completions(model, [prompt], max_new_tokens, tok.end_id)[0][0])


untrained = new_gpt()
t0 = time.perf_counter()
sft_model, sft_records = sft(train, SFT_STEPS)
sft_seconds = time.perf_counter() - t0

# %% tags=["nbval-ignore-output"]
sft_eval = align.task_accuracy(sft_model, tok, test)
print("before SFT:", repr(answer(untrained, test[0].question)))
print(f"{SFT_STEPS} steps in {sft_seconds:.0f} s; held out: accuracy {sft_eval['accuracy']:.1%}, "
      f"ends with <|end|>: {sft_eval['end_rate']:.1%}")
for p in test[:5]:
    print(f"  {p.question} = {p.answer:>3}   model: {answer(sft_model, p.question)!r}")

# %%
assert align.task_accuracy(untrained, tok, test)["end_rate"] < 0.2  # before: it does not stop
assert sft_eval["end_rate"] >= 0.95  # after: it stops
assert sft_eval["accuracy"] >= 0.5  # and answers most held-out sums it never saw

# %% [markdown]
# ### The ablation: the same run without masking the prompt
#
# Does masking help? Train the same model on the same batches, the prompt's tokens counted in
# the loss.

# %%
nomask_model, nomask_records = sft(train, SFT_STEPS, mask_prompt=False)

# %% tags=["nbval-ignore-output"]
nomask_eval = align.task_accuracy(nomask_model, tok, test)
print(f"held-out accuracy: masked {sft_eval['accuracy']:.1%}, not masked "
      f"{nomask_eval['accuracy']:.1%}; ends with <|end|>: {sft_eval['end_rate']:.0%} and "
      f"{nomask_eval['end_rate']:.0%}")

# %% [markdown]
# In development runs (a scratch script outside the notebook, seeds 0–2) the masked run was
# ahead after 600 steps in every seed — 85–91 % against 72–78 % — but after 1,000 steps there
# was no consistent winner: masked 91–95 %, not masked 87–94 %, the unmasked one ahead in two
# seeds of three. So here masking makes SFT *converge faster* (the whole gradient goes to the
# answer), not more accurate in the end. What masking changes for good is *what is learned*,
# and that can be measured:
#
# - the loss counts about a third of the tokens — the answer and `<|end|>`, 3–4 per
#   conversation instead of 10–11 — so the loss (and its gradient) is about the answer only;
# - the unmasked model has also learned to *write prompts*: given only `<|user|>`, it invents
#   questions. On a real assistant that is the model learning to imitate users.

# %%
X, Y = align.sft_batch(tok, train[:BATCH])
_, Y_all = align.sft_batch(tok, train[:BATCH], mask_prompt=False)
counted, counted_all = int((Y != IGNORE).sum()), int((Y_all != IGNORE).sum())
print(f"targets counted in one batch of {BATCH}: masked {counted}, not masked {counted_all}")
assert counted == sum(len(p.answer) + 1 for p in train[:BATCH])  # answer digits + <|end|>
QUESTION = re.compile(r"\d+\+\d+")


def writes_questions(model, n=200):
    """The share of n samples from <|user|> alone that are a question and its <|end|>."""
    g = torch.Generator().manual_seed(0)
    out = model.generate(torch.full((n, 1), tok.user_id), 8, temperature=1.0, generator=g)
    texts = [tok.decode(row) for row in out[:, 1:].tolist()]
    ok = [QUESTION.fullmatch(t.partition("<|end|>")[0]) and "<|end|>" in t for t in texts]
    return sum(map(bool, ok)) / n, texts[:3]


# %% tags=["nbval-ignore-output"]
for name, m in (("masked", sft_model), ("not masked", nomask_model)):
    share, examples = writes_questions(m)
    print(f"{name:>10}: {share:.0%} of samples from <|user|> are a question, e.g. {examples}")

# %%
assert writes_questions(nomask_model)[0] > 0.9 > 0.2 > writes_questions(sft_model)[0]
assert nomask_eval["end_rate"] >= 0.95

# %% [markdown]
# ### Gradient accumulation must count tokens
#
# With `-100` targets, batches hold different numbers of *counted* tokens. A model's loss is the
# mean over the counted tokens of its batch. Accumulating `k` micro-batches by
# `loss_i / k` (the usual recipe) weighs each micro-batch the same, so a token in a short
# micro-batch counts more than a token in a long one. The gradient of the big batch — every
# token weighing `1/N` — is `Σ loss_i · n_i / N`. `align.accumulation_mismatch` computes both.
# Two micro-batches: one-digit sums (2 targets each) and sums near 200 (4 targets each).

# %%
short = align.sft_batch(tok, [Problem(1, "+", 2), Problem(3, "+", 4)])
long = align.sft_batch(tok, [Problem(99, "+", 98), Problem(97, "+", 96), Problem(95, "+", 94)])
out = align.accumulation_mismatch(sft_model, [short, long])
n1, n2 = out["tokens"]
N = n1 + n2
print(f"counted tokens: {n1} and {n2}; a token of the short micro-batch weighs "
      f"1/(2·{n1}) = {1 / (2 * n1):.3f} per micro-batch, 1/N = {1 / N:.3f} per token")

# one batch with all five conversations: the gradient we want
T = max(short[0].size(1), long[0].size(1))
Xb = torch.cat([F.pad(x, (0, T - x.size(1)), value=tok.pad_id) for x, _ in (short, long)])
Yb = torch.cat([F.pad(y, (0, T - y.size(1)), value=IGNORE) for _, y in (short, long)])
sft_model.zero_grad()
sft_model(Xb, Yb)[1].backward()
big = torch.cat([p.grad.flatten() for p in sft_model.parameters()])
sft_model.zero_grad(set_to_none=True)
err_token = (out["per_token"] - big).abs().max().item()
rel_batch = ((out["per_micro_batch"] - big).norm() / big.norm()).item()

# %% tags=["nbval-ignore-output"]
print(f"per token vs one big batch: max |diff| {err_token:.0e}; "
      f"per micro-batch vs one big batch: {rel_batch:.0%} of the gradient's norm")

# %%
assert (n1, n2) == (4, 12) and err_token < 1e-6 and rel_batch > 0.05

# %% [markdown]
# The fix is to divide each micro-batch's *summed* loss by the step's total number of counted
# tokens (Hugging Face's `Trainer` does this since transformers 4.46). The runs in this chapter
# use one micro-batch per step, so they are not affected.
#
# ## 3. The starting point for DPO and RL: SFT on few demonstrations
#
# Demonstrations are expensive (someone has to write the answers); prompts and a program that
# checks an answer are cheap. So post-training starts from a model fine-tuned on a *few*
# demonstrations — here 300 — and improves it on other prompts, for which it is only told
# whether its own answers were right (RL) or which of two of its answers is better (DPO).

# %%
DEMOS = 300
demos, prompts = train[:DEMOS], train[DEMOS:]  # prompts: no answer is ever shown for these
BASE_STEPS = 800
base, _ = sft(demos, BASE_STEPS)
assert not {p.key for p in demos} & {p.key for p in prompts}


def sample_counts(model, problems, n, seed=0, temperature=1.0):
    """How many of n sampled answers are right, per problem."""
    g = torch.Generator().manual_seed(seed)
    ids = [tok.encode(chat_prompt(p.question)) for p in problems]
    comps = align.sample_completions(model, ids, 5, tok.end_id, n, temperature, g)
    return [sum(parse_answer(tok.decode(c)) == p.result for c in group)
            for p, group in zip(problems, comps)]


SAMPLES = 8  # answers sampled per held-out problem


def held_out(model, n=SAMPLES, seed=0):
    """Greedy accuracy, the share that stops, and pass@1 of n samples at temperature 1."""
    res = align.task_accuracy(model, tok, test)
    res["counts"] = sample_counts(model, test, n, seed)  # right answers per problem, out of n
    res["pass@1"] = sum(res["counts"]) / (n * len(test))
    return res


base_eval = held_out(base)
other_seeds = [sample_counts(base, test, SAMPLES, seed=s) for s in (1, 2, 3)]
noise = [sum(c) / (SAMPLES * len(test)) for c in other_seeds]
# pass@1's standard error: each problem's count is binomial(SAMPLES, p), p from all four seeds
runs = [base_eval["counts"], *other_seeds]
pooled = [sum(cs) / (SAMPLES * len(runs)) for cs in zip(*runs)]
std_err = math.sqrt(sum(p * (1 - p) / SAMPLES for p in pooled)) / len(test)

# %% tags=["nbval-ignore-output"]
print(f"SFT on {DEMOS} demonstrations: greedy accuracy {base_eval['accuracy']:.1%}, pass@1 of "
      f"samples {base_eval['pass@1']:.1%} (other sampling seeds: "
      f"{', '.join(f'{v:.1%}' for v in noise)}), stops {base_eval['end_rate']:.0%}; "
      f"standard error of pass@1 {std_err:.2%}")

# %%
sampling_noise = max(noise + [base_eval["pass@1"]]) - min(noise + [base_eval["pass@1"]])
assert base_eval["end_rate"] >= 0.95 and 0.2 < base_eval["accuracy"] < sft_eval["accuracy"]
assert std_err < 0.006  # 4,000 samples: pass@1 is measured to about half a point
assert 0 < sampling_noise < 5 * std_err  # the seeds differ, and by no more than sampling explains

# %% [markdown]
# ## 4. DPO: learning from preferences
#
# RLHF (InstructGPT, 2022) fits a reward model to human preferences and then runs RL against
# it. **Direct Preference Optimisation** (Rafailov et al., 2023) skips both: for a prompt `x`
# with a preferred answer `y_w` and a rejected one `y_l`, it raises the policy's log-ratio to a
# frozen *reference model* (a copy of the SFT model) on `y_w` and lowers it on `y_l`:
#
# $$\mathcal{L} = -\log\sigma\Big(\beta\big[(\log\pi(y_w|x)-\log\pi_{\text{ref}}(y_w|x)) - (\log\pi(y_l|x)-\log\pi_{\text{ref}}(y_l|x))\big]\Big)$$
#
# `β · log-ratio` is DPO's *implicit reward*; the loss is a logistic regression that the chosen
# answer's reward beats the rejected one's.
#
# **Pairs from the model's own samples.** For each of 1,500 prompts, sample 8 answers from the
# SFT model; where at least one is right and one is a wrong number, the right one is chosen and
# a wrong one rejected. The verifier stands in for the human who ranks them.

# %%
def own_pairs(model, problems, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = [tok.encode(chat_prompt(p.question)) for p in problems]
    comps = align.sample_completions(model, ids, 5, tok.end_id, n, 1.0, g)
    rng, pairs = random.Random(seed), []
    for p, group in zip(problems, comps):
        texts = [tok.decode(c) for c in group]
        right = [t for t in texts if parse_answer(t) == p.result]
        wrong = [t for t in texts if parse_answer(t) not in (None, p.result)]
        if right and wrong:
            strip = lambda t: t.partition("<|end|>")[0]  # noqa: E731
            pairs.append((p, strip(right[0]), strip(rng.choice(wrong))))
    return pairs


pairs = own_pairs(base, prompts[:1500])
test_pairs = own_pairs(base, test, seed=1)  # held-out pairs, to measure preference accuracy

# %% tags=["nbval-ignore-output"]
print(len(pairs), "training pairs, e.g.", [f"{p.question}: {c} > {r}" for p, c, r in pairs[:3]])

# %%
assert all(c == p.answer != r for p, c, r in pairs) and len(pairs) > 300

# %% [markdown]
# The loss, written from the formula, against `llmcourse.align.dpo_loss`. The package's loss is
# checked against TRL's own `DPOTrainer` (its `_compute_loss` on a batch it collated itself) to
# `1e-6` in `tests/test_align_dpo.py`; importing TRL alone costs about 6 s of CPU, more than
# this chapter's budget can spare, so that comparison lives in the test.

# %%
def my_dpo_loss(pc, pr, rc, rr, beta):
    """pc, pr: policy log p(chosen), log p(rejected); rc, rr: the reference's. All (B,)."""
    margin = (pc - rc) - (pr - rr)  # (B,)
    return -F.logsigmoid(beta * margin).mean()  # logsigmoid: no overflow for large margins


ids, targets = align.dpo_batch(tok, pairs[:32])  # (64, T): 32 chosen rows, then 32 rejected
with torch.no_grad():
    pc, pr = align.sequence_logps(base, ids, targets).chunk(2)
    noisy = copy.deepcopy(base)
    for prm in noisy.parameters():
        prm.add_(0.01 * torch.randn_like(prm))
    rc, rr = align.sequence_logps(noisy, ids, targets).chunk(2)
losses = {beta: (my_dpo_loss(pc, pr, rc, rr, beta).item(),
                 align.dpo_loss(pc, pr, rc, rr, beta)[0].item()) for beta in (0.1, 1.0)}

# %% tags=["nbval-ignore-output"]
for beta, (ours, theirs) in losses.items():
    print(f"β = {beta}: loss {ours:.4f}, package {theirs:.4f}")

# %%
assert all(abs(ours - theirs) < 1e-6 for ours, theirs in losses.values())
assert abs(my_dpo_loss(pc, pr, pc, pr, 0.1) - math.log(2)) < 1e-6  # policy == reference: log 2

# %% [markdown]
# Training: the policy starts as a copy of the SFT model, the reference is a frozen copy, 32
# pairs per step. We try two values of `β` — TRL's default 0.1 and 1.0 — and measure
# preference accuracy on held-out pairs (the share whose implicit reward ranks the right answer
# higher), how far the policy moved from the reference (the KL of its samples), and held-out
# answers.

# %%
DPO_STEPS = 100  # every profile: the β comparison below was measured at this size
DPO_BETAS = (0.1, 1.0)


def seq_kl(model, ref, problems, n=4):
    """KL(model || ref) per answer, estimated on the model's own samples."""
    ro = align.rollout(model, tok, problems, align.correctness_reward, group_size=n,
                       generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        return float((align.sequence_logps(model, ro.ids, ro.targets)
                      - align.sequence_logps(ref, ro.ids, ro.targets)).mean())


def preference_accuracy(model, ref, pairs):
    ids, targets = align.dpo_batch(tok, pairs)
    with torch.no_grad():
        pc, pr = align.sequence_logps(model, ids, targets).chunk(2)
        rc, rr = align.sequence_logps(ref, ids, targets).chunk(2)
    return float(((pc - rc) > (pr - rr)).float().mean())


def train_dpo(beta, steps=DPO_STEPS, seed=0):
    llmcourse.seed_everything(seed)
    policy, ref = copy.deepcopy(base).train(), copy.deepcopy(base).eval()
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-4, weight_decay=0.0)
    rng, log = random.Random(seed), []
    for _ in range(steps):
        batch = align.dpo_batch(tok, rng.sample(pairs, 32))
        log.append(align.dpo_step(policy, ref, opt, batch, beta=beta))
    policy.eval()
    return policy, {"train pref. acc.": sum(r["reward_accuracy"] for r in log[-10:]) / 10,
                    "margin": sum(r["margin"] for r in log[-10:]) / 10,
                    "held-out pref. acc.": preference_accuracy(policy, ref, test_pairs),
                    "KL to SFT": seq_kl(policy, ref, test[:200]), **held_out(policy)}


t0 = time.perf_counter()
dpo_runs = {beta: train_dpo(beta) for beta in DPO_BETAS}
dpo_seconds = time.perf_counter() - t0

# %% tags=["nbval-ignore-output"]
cols = ("train pref. acc.", "held-out pref. acc.", "margin", "KL to SFT", "accuracy", "pass@1")
print(f"{DPO_STEPS} steps per β, {dpo_seconds:.0f} s in all")
print(f"{'':>8}" + "".join(f"{c:>20}" for c in cols))
rows = {"SFT": {"accuracy": base_eval["accuracy"], "pass@1": base_eval["pass@1"]}}
rows.update({f"β = {beta}": r for beta, (_, r) in dpo_runs.items()})
for name, r in rows.items():
    cells = ("" if c not in r else f"{r[c]:.2f}" if c in ("margin", "KL to SFT") else f"{r[c]:.1%}"
             for c in cols)
    print(f"{name:>8}" + "".join(f"{v:>20}" for v in cells))

# %%
(dpo_small, r_small), (dpo_model, r_dpo) = dpo_runs[0.1], dpo_runs[1.0]
assert min(r_small["train pref. acc."], r_dpo["train pref. acc."]) > 0.6  # DPO does its job...
assert min(r_small["held-out pref. acc."], r_dpo["held-out pref. acc."]) > 0.55  # ...held out too
assert r_small["KL to SFT"] > 1.5 * r_dpo["KL to SFT"]  # small β: the policy moves much further
assert r_small["accuracy"] < base_eval["accuracy"] < r_dpo["accuracy"]  # ...and gets worse
assert r_dpo["pass@1"] > base_eval["pass@1"] + 0.02  # β = 1 improves on the SFT model

# %% [markdown]
# DPO does what its loss says with both values: the implicit reward ranks the right answer
# higher on most pairs, held-out pairs included. But with `β = 0.1` the policy drifts far from
# the SFT model and its answers get *worse*: the loss only asks the chosen answer to beat the
# rejected one *relative to the reference*, which it can also achieve by lowering both
# (often reported on reasoning data: Pang et al., 2024, who add the chosen answer's NLL — TRL's
# `loss_type=["sigmoid", "sft"]`). A larger `β` makes the loss saturate after a smaller move —
# the implicit KL constraint is tighter — and here that is what keeps the gain. The ranking is
# not luck: in development runs with other seeds (other pairs, other batches) `β = 0.1` gave
# 43 % and 40 % greedy accuracy and `β = 1` gave 60 % and 58 %, against the SFT model's 50 %.
#
# ## 5. RL with a verifiable reward: GRPO
#
# The reward is the verifier: 1 if the answer parses, is right and ends with `<|end|>`, else 0.
# **GRPO** (Shao et al., 2024) needs no value network: for each prompt it samples a *group* of
# `G` answers and uses each reward relative to its group as the advantage,
#
# $$A_i = \frac{r_i - \operatorname{mean}(r_{1..G})}{\operatorname{std}(r_{1..G}) + \epsilon},$$
#
# then maximises PPO's clipped surrogate on every answer token, minus a KL penalty to the
# frozen SFT model (the "k3" estimator, always ≥ 0):
#
# $$\ell_t = -\min\big(\rho_t A,\ \operatorname{clip}(\rho_t, 1-\varepsilon, 1+\varepsilon)A\big) + \beta\,\big(e^{d_t} - d_t - 1\big),\quad \rho_t = \frac{\pi(y_t)}{\pi_{\text{old}}(y_t)},\ d_t = \log\pi_{\text{ref}}(y_t) - \log\pi(y_t)$$
#
# averaged over each answer's tokens, then over answers. Written out, and checked against the
# package (which is checked against TRL's `GRPOTrainer._compute_loss` in
# `tests/test_align_grpo.py`, values and gradients):

# %%
def my_group_advantages(rewards, G, eps=1e-4):
    r = rewards.view(-1, G)  # (N prompts, G answers)
    return ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + eps)).flatten()  # (N·G,)


def my_grpo_loss(logps, old_logps, ref_logps, adv, mask, eps=0.2, beta=0.04):
    """logps, old_logps, ref_logps, mask: (B, T) per answer token; adv: (B,)."""
    ratio = torch.exp(logps - old_logps)  # (B, T)
    surrogate = torch.min(ratio * adv[:, None], ratio.clamp(1 - eps, 1 + eps) * adv[:, None])
    d = ref_logps - logps
    per_token = -surrogate + beta * (torch.exp(d) - d - 1)  # (B, T)
    return ((per_token * mask).sum(1) / mask.sum(1)).mean()


ro = align.rollout(base, tok, prompts[:16], align.correctness_reward, group_size=8,
                   generator=torch.Generator().manual_seed(0))
adv = my_group_advantages(ro.rewards, 8)
assert torch.allclose(adv, align.group_advantages(ro.rewards, 8), atol=1e-6)

policy = copy.deepcopy(base)
with torch.no_grad():  # pretend the policy has moved: a sampling policy and a reference
    old = align.token_logps(noisy, ro.ids, ro.targets)
    ref = align.token_logps(base, ro.ids, ro.targets)
logps = align.token_logps(policy, ro.ids, ro.targets).requires_grad_()
ours = my_grpo_loss(logps, old, ref, adv, ro.mask)
theirs, stats = align.grpo_loss(logps, old, ref, adv, ro.mask, epsilon=0.2, beta=0.04)
g_ours, g_theirs = (torch.autograd.grad(v, logps)[0] for v in (ours, theirs))

# %% tags=["nbval-ignore-output"]
print("rewards of the first two groups:", ro.rewards[:16].tolist())
print("their advantages:", [round(a, 2) for a in adv[:16].tolist()])
print(f"loss {ours.item():.4f} vs package {theirs.item():.4f}; "
      f"max gradient diff {(g_ours - g_theirs).abs().max().item():.0e}")

# %%
assert abs(ours.item() - theirs.item()) < 1e-6 and torch.allclose(g_ours, g_theirs, atol=1e-7)
assert (adv.view(-1, 8).sum(1).abs() < 1e-5).all()  # advantages sum to 0 within each group

# %% [markdown]
# A group whose answers all got the same reward has advantage 0: it teaches nothing (the
# second group above). With 8 samples per prompt and an SFT model that is right about half the
# time, most groups are mixed.
#
# Training: 16 prompts × 8 samples per step, learning rate `3e-4`, KL coefficient `0.04`,
# prompts from the 3,700 for which the model never saw an answer.

# %%
GRPO_STEPS = prof.pick(ci=300, cpu=500, gpu=500)


def train_grpo(reward_fn, steps, beta=0.04, seed=0, start=base):
    llmcourse.seed_everything(seed)
    policy, ref = copy.deepcopy(start).train(), copy.deepcopy(start).eval()
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-4, weight_decay=0.0)
    g, rng, log = torch.Generator().manual_seed(seed), random.Random(seed), []
    for _ in range(steps):
        log.append(align.grpo_step(policy, ref, opt, tok, rng.sample(prompts, 16), reward_fn,
                                   group_size=8, beta=beta, generator=g))
    return policy.eval(), log


t0 = time.perf_counter()
grpo_model, grpo_log = train_grpo(align.correctness_reward, GRPO_STEPS)
grpo_seconds = time.perf_counter() - t0
grpo_eval = held_out(grpo_model)

# %% tags=["nbval-ignore-output"]
print(f"{GRPO_STEPS} GRPO steps in {grpo_seconds:.0f} s")
for name, r in (("SFT", base_eval), ("GRPO", grpo_eval)):
    print(f"{name:>5}: greedy accuracy {r['accuracy']:.1%}, pass@1 {r['pass@1']:.1%}, "
          f"stops {r['end_rate']:.0%}")

# %% [markdown]
# Is the gain real? In development the same 300-step run was repeated with seeds 0, 1 and 2
# (the seed changes the prompts drawn and the answers sampled): held-out pass@1 rose from the
# SFT model's 47.5 % (mean of three sampling seeds, 47.4–47.7 %) to 54.3 %, 58.4 % and 58.9 %,
# greedy accuracy from 50.0 % to 59.0 %, 63.0 % and 63.2 %. The smallest gain, 6.7 points, is
# about fifteen standard errors of pass@1 (0.4 points); the assertion sits between the gain and
# five standard errors.
#
# Even the CPU changes these numbers: a machine whose floating-point kernels are AVX2 rather than
# AVX-512 rounds differently, the runs drift apart, and there the SFT model scored 41.9 % and GRPO
# 55.7 %. Every assertion in this chapter is written to hold on both.

# %%
GRPO_MARGIN = 0.04  # below the smallest seed's gain (6.7 points), above five standard errors
assert sampling_noise < 5 * std_err < GRPO_MARGIN < grpo_eval["pass@1"] - base_eval["pass@1"]
assert grpo_eval["accuracy"] > base_eval["accuracy"] and grpo_eval["end_rate"] >= 0.95

# %% [markdown]
# ### Reward hacking, and what the KL term does about it
#
# RL optimises the reward it is given, not the one we meant. `align.length_reward` pays 0.1 per
# digit — a plausible-looking proxy ("longer sums have more digits") that is wrong. The same
# GRPO run with it, once with the usual KL coefficient and once with a large one:

# %%
HACK_STEPS = 160  # the hack sets in after 60 to 130 steps (seeds and CPUs differ): see below
hacked, hack_log = train_grpo(align.length_reward, HACK_STEPS, beta=0.04)
held, held_log = train_grpo(align.length_reward, HACK_STEPS, beta=2.0)
hack_eval, held_eval = held_out(hacked), held_out(held)


def first(log, key, n=10):
    return sum(r[key] for r in log[:n]) / n


def last(log, key, n=10):
    return sum(r[key] for r in log[-n:]) / n


# %% tags=["nbval-ignore-output"]
for name, log, r in (("β = 0.04", hack_log, hack_eval), ("β = 2", held_log, held_eval)):
    print(f"{name:>8}: reward {first(log, 'reward'):.2f} → {last(log, 'reward'):.2f}, answer "
          f"length {first(log, 'length'):.2f} → {last(log, 'length'):.2f} tokens, KL "
          f"{last(log, 'kl'):.2f}; held out: accuracy {r['accuracy']:.1%}, pass@1 "
          f"{r['pass@1']:.1%}, stops {r['end_rate']:.0%}")
print("hacked answers:", [answer(hacked, p.question) for p in test[:4]])

# %%
assert last(hack_log, "reward") > first(hack_log, "reward") + 0.15  # the reward is climbed...
assert last(hack_log, "length") > first(hack_log, "length") + 1.0  # ...by longer answers...
assert hack_eval["accuracy"] < 0.1 < 0.4 < base_eval["accuracy"]  # ...that are wrong
assert abs(last(held_log, "length") - first(held_log, "length")) < 0.2  # β = 2: no explosion
assert held_eval["accuracy"] > base_eval["accuracy"] - 0.06  # and the accuracy mostly kept

# %% [markdown]
# With `β = 0.04` the policy found the loophole, and suddenly (the red curves below): the reward
# creeps up for a while, then jumps to its maximum within about twenty steps. When the jump comes
# depends on the seed and even on the CPU's rounding — after 60 to 130 steps in development,
# hence 160 steps here. The hacked policy stops writing `<|end|>` and fills the budget
# with digits — maximal reward, no correct answer, a large KL to the SFT
# model. A strong KL penalty holds it at the SFT model — but it holds *everything* there, the
# useful updates too. The KL term limits the damage; only a reward that checks what we mean
# (here: the verifier) fixes it.

# %%
fig = make_subplots(rows=1, cols=3, subplot_titles=("reward", "answer length (tokens)",
                                                    "KL to the SFT model"))
runs = {"verifier, β = 0.04": grpo_log, "length reward, β = 0.04": hack_log,
        "length reward, β = 2": held_log}
for color, (name, log) in zip(("#1f77b4", "#d62728", "#2ca02c"), runs.items()):
    for col, key in enumerate(("reward", "length", "kl"), start=1):
        fig.add_trace(go.Scatter(y=[r[key] for r in log], name=name, legendgroup=name,
                                 showlegend=col == 1, line=dict(color=color)), row=1, col=col)
fig.update_xaxes(title_text="GRPO step")
fig.update_layout(height=340, width=1000, title="GRPO with the verifier and with a hackable reward")
assert len(fig.data) == 9 and [len(t.y) for t in fig.data[:3]] == [GRPO_STEPS] * 3
fig

# %% [markdown]
# ## 6. pass@k
#
# With `n` samples per problem of which `c` are right, the chance that at least one of `k`
# answers is right is estimated without bias by drawing the `k` *without replacement* from the
# `n` (Chen et al., 2021):
#
# $$\text{pass@}k = 1 - \binom{n-c}{k}\Big/\binom{n}{k} = 1 - \prod_{i=n-c+1}^{n}\Big(1 - \frac{k}{i}\Big),$$
#
# the product form never builds the huge binomials. `1 - (1 - c/n)^k` looks similar and is biased.

# %%
import itertools


def my_pass_at_k(n, c, k):
    if n - c < k:
        return 1.0  # every k-subset holds a right answer
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def brute_force(n, c, k):  # the share of k-subsets of the n samples with a right one
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


worst = max(abs(my_pass_at_k(n, c, k) - brute_force(n, c, k))
            + abs(align.pass_at_k(n, c, k) - brute_force(n, c, k))
            for n in range(1, 11) for c in range(n + 1) for k in range(1, n + 1))
print(f"n ≤ 10, every c and k: max |estimator − enumeration| = {worst:.0e}")
print(f"n=10, c=3, k=5: unbiased {align.pass_at_k(10, 3, 5):.4f}, naive "
      f"{1 - (1 - 3 / 10) ** 5:.4f}")
assert worst < 1e-12

# %% [markdown]
# pass@k of the SFT, DPO and GRPO models, from 16 samples per held-out problem:

# %%
KS, N_SAMPLES = (1, 2, 4, 8, 16), 16
models = {"SFT (300 demos)": base, "DPO (β = 1)": dpo_model, "GRPO": grpo_model}
counts = {name: sample_counts(m, test, N_SAMPLES, seed=7) for name, m in models.items()}
curves = {name: [sum(align.pass_at_k(N_SAMPLES, c, k) for c in cs) / len(cs) for k in KS]
          for name, cs in counts.items()}

# %% tags=["nbval-ignore-output"]
for name, ys in curves.items():
    print(f"{name:>16}: " + ", ".join(f"pass@{k} {v:.1%}" for k, v in zip(KS, ys)))

# %%
sft_c, grpo_c = curves["SFT (300 demos)"], curves["GRPO"]
assert all(a <= b + 1e-12 for ys in curves.values() for a, b in zip(ys, ys[1:]))  # grows with k
assert all(g > s + 0.03 for g, s in zip(grpo_c, sft_c))  # RL lifts pass@k at every k here
fig = go.Figure([go.Scatter(x=list(KS), y=ys, name=name, mode="lines+markers")
                 for name, ys in curves.items()])
fig.update_layout(xaxis=dict(type="log", title="k", tickvals=list(KS)), yaxis_title="pass@k",
                  height=360, width=620, title="Held-out pass@k")
assert [t.name for t in fig.data] == list(models)
fig

# %% [markdown]
# pass@k for a large `k` is what a model *can* do, pass@1 what it does. Here RL (and DPO) raise
# both, pass@16 by as much as pass@1: trained on 3,700 prompts whose answers it was never shown,
# the model learned sums it could not do before, not only to pick its best guess more often.
# That is not a law: on large reasoning models trained on problems they could mostly solve
# already, Yue et al. (2025) found RL raising pass@1 while pass@k at large `k` stayed level or
# fell — RL sharpening the distribution rather than widening it. Measure both.
#
# ## 7. The picture: what each step bought

# %%
bars = {"SFT, 300 demos": base_eval, "+ DPO (β = 1)": r_dpo, "+ GRPO": grpo_eval,
        f"SFT, {len(train)} demos": sft_eval}
fig = go.Figure([go.Bar(x=list(bars), y=[r["accuracy"] for r in bars.values()],
                        name="greedy accuracy"),
                 go.Bar(x=list(bars)[:3], y=[r["pass@1"] for r in list(bars.values())[:3]],
                        name="pass@1 (samples)")])
fig.update_layout(barmode="group", yaxis=dict(title="held-out", tickformat=".0%"), height=380,
                  width=700, title="Held-out accuracy after each stage")
assert [len(t.x) for t in fig.data] == [4, 3]
fig

# %% [markdown]
# ## 8. The same with TRL, on a real instruct model
#
# Libraries do all of this for Hugging Face models: TRL's `SFTTrainer` (a prompt-completion
# dataset trains on the completion only — our `-100` mask) and `DPOTrainer` (the loss above).
# On Colab with `LLMCOURSE_ONLINE=1`, `resolve_instruct_model` gives the hub's SmolLM2-135M-
# Instruct; offline, the same cells run on our SFT model exported to a Hugging Face folder
# (`GPT.to_hf` and the tokenizer with our chat template). Under the `ci` profile this section
# only resolves the model: importing TRL costs more than the chapter's budget allows, and
# `tests/test_align_trl_path.py` runs these cells on the local copy (TRL's SFT labels are our
# `-100` targets, its DPO loss is ours to `1e-6`).

# %% tags=["nbval-ignore-output"]
import tempfile

from llmcourse.align import trl_path

RUN_TRL = prof.pick(ci=False, cpu=True, gpu=True)
local = trl_path.export_chat_model(base, tok, tempfile.mkdtemp(prefix="ch10-"))
name, where = trl_path.resolve_instruct_model(trl_path.DEFAULT_INSTRUCT_MODEL, local=local)
print(f"model: {name} ({where} copy)")
if RUN_TRL:
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    rev = llmcourse.env.hub_repo(name)[1] if where == "hub" else None  # the pinned commit
    hf_model = AutoModelForCausalLM.from_pretrained(name, revision=rev)
    hf_tok = AutoTokenizer.from_pretrained(name, revision=rev)
    common = dict(report_to="none", bf16=False, logging_steps=5, save_strategy="no",
                  disable_tqdm=True, per_device_train_batch_size=16, use_cpu=device.type == "cpu")
    steps = 20 if where == "local" else 200
    sft_trainer = SFTTrainer(model=hf_model, processing_class=hf_tok,
                             train_dataset=trl_path.sft_dataset(demos),
                             args=SFTConfig(output_dir=str(local / "sft"), max_steps=steps,
                                            learning_rate=1e-4, **common))
    sft_trainer.remove_callback(PrinterCallback)  # no log line every 5 steps
    sft_trainer.train()
    # the reference is the model after SFT: without ref_model=, TRL would load it from the
    # model's folder — the weights from before this SFT
    ref_model = copy.deepcopy(sft_trainer.model).eval()
    dpo_trainer = DPOTrainer(model=sft_trainer.model, ref_model=ref_model, processing_class=hf_tok,
                             train_dataset=trl_path.dpo_dataset(pairs),
                             args=DPOConfig(output_dir=str(local / "dpo"), max_steps=steps,
                                            beta=1.0, learning_rate=2e-4, **common))
    dpo_trainer.remove_callback(PrinterCallback)
    dpo_trainer.train()
    print({k: round(v, 3) for k, v in dpo_trainer.state.log_history[-2].items()
           if k in ("loss", "rewards/accuracies", "rewards/margins")})
    print("held out (50 problems):", trl_path.hf_task_accuracy(dpo_trainer.model, hf_tok, test[:50]))
else:
    print("ci profile: TRL is not imported here; tests/test_align_trl_path.py runs this path")

# %%
assert where in ("local", "hub") and (where == "hub" or (local / "config.json").is_file())

# %% [markdown]
# ## Exercises
#
# **1. The DPO loss.** Write `dpo(pc, pr, rc, rr, beta)`: the batch mean of
# `-log σ(β·((pc − rc) − (pr − rr)))` for tensors of summed log-probs.

# %%
from llmcourse.exercises.post_training import (
    check_dpo_loss,
    check_group_advantages,
    check_pass_at_k,
)


def dpo(pc, pr, rc, rr, beta):
    raise NotImplementedError  # your code here


check_dpo_loss(dpo)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# The margin is the chosen log-ratio minus the rejected one; use `F.logsigmoid`, which stays
# finite where `torch.log(torch.sigmoid(x))` underflows to `-inf`.
# </details>

# %% jupyter={"source_hidden": true}
def dpo_solution(pc, pr, rc, rr, beta):
    return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean()


assert check_dpo_loss(dpo_solution)

# %% [markdown]
# The usual mistake — `log(sigmoid(x))` — is right for ordinary margins and fails on a large
# one, and the checker says so:

# %%
def dpo_unstable(pc, pr, rc, rr, beta):
    return -torch.log(torch.sigmoid(beta * ((pc - rc) - (pr - rr)))).mean()


assert not check_dpo_loss(dpo_unstable)

# %% [markdown]
# **2. Group-normalised advantages.** Write `advantages(rewards, G)`: `rewards` holds `G`
# adjacent rewards per prompt; return `(r − group mean) / (group std + 1e-4)`.

# %%
def advantages(rewards, G):
    raise NotImplementedError  # your code here


check_group_advantages(advantages)

# %% [markdown]
# <details><summary><b>Solution</b></summary>
#
# `view(-1, G)`, subtract the mean and divide by the std along dimension 1 (`torch.std` is the
# sample std, as TRL uses), flatten.
# </details>

# %% jupyter={"source_hidden": true}
assert check_group_advantages(my_group_advantages)

# %% [markdown]
# Normalising over the whole batch instead of per group mixes easy and hard prompts — caught:

# %%
def advantages_whole_batch(rewards, G):
    return (rewards - rewards.mean()) / (rewards.std() + 1e-4)


assert not check_group_advantages(advantages_whole_batch)

# %% [markdown]
# **3. pass@k.** Write `pass_k(n, c, k)`, the unbiased estimator.

# %%
def pass_k(n, c, k):
    raise NotImplementedError  # your code here


check_pass_at_k(pass_k)

# %% [markdown]
# <details><summary><b>Solution</b></summary>
#
# `1 − C(n−c, k)/C(n, k)`, as the product `1 − Π_{i=n−c+1}^{n} (1 − k/i)`; 1 when `n − c < k`.
# </details>

# %% jupyter={"source_hidden": true}
assert check_pass_at_k(my_pass_at_k)

# %% [markdown]
# Sampling *with* replacement, `1 − (1 − c/n)^k`, is the usual mistake — caught:

# %%
assert not check_pass_at_k(lambda n, c, k: 1 - (1 - c / n) ** k)

# %% [markdown]
# **4. (Open)** Add the chosen answer's NLL to the DPO loss (`loss + α · NLL(chosen)`, TRL's
# `loss_type=["sigmoid", "sft"]`) and rerun section 4 with `β = 0.1`: does it stop the
# drift? Compare with training on the chosen answers alone (α only): what does the preference
# add on this task?
#
# ## Summary
#
# - A chat template with special tokens, and SFT with the prompt's targets at `-100`, give a
#   model that answers and **stops**. Masking made SFT converge faster here but not more
#   accurate in the end; it changes what is learned (the loss is about the answer; the
#   unmasked model also learns to write prompts).
# - Gradient accumulation must weigh micro-batches by their counted tokens.
# - DPO learns from pairs with no reward model; `β` is its leash: too small and the policy
#   drifts and gets worse even as preference accuracy rises.
# - GRPO with a verifiable reward improves held-out pass@1 beyond seed noise, from prompts with
#   no demonstrations; a hackable reward is hacked, suddenly, after about a hundred steps — a
#   strong KL holds the model back, but only a correct reward fixes it.
# - pass@k is estimated without bias by the product formula; report it next to pass@1 — here RL
#   raised both.
#
# Next: **11 · Evaluation and limits** — how to measure models when no program can check the
# answer.

# %%
torch.set_num_threads(threads)
