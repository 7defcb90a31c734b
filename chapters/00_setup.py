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
# # 00 · Setting up: how this course works
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/00_setup.ipynb)
#
# **What you will learn**
# - what the course covers, and in which order to read it;
# - how to check your environment: versions, device (CPU, CUDA GPU or Apple MPS), profile;
# - how *profiles* let the same notebook run in seconds on a laptop and for real on a GPU;
# - how every number in the course is checked, and how exercises and their checkers work.
#
# **Prerequisites:** Python and a little NumPy. No GPU needed: every chapter runs on a CPU.

# %% [markdown]
# ## The setup cell
#
# Every chapter starts with the same cell. On Colab it installs the course package (elsewhere
# it does nothing: you installed it with `make lab`). Then it seeds every random number
# generator, picks the device and the profile, and quiets library logging.

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
# ## The map of the course
#
# | Chapter | What you learn | Helper module |
# |---|---|---|
# | 00 setup | environment, profiles, checks, exercises | `llmcourse.env`, `llmcourse.profiles` |
# | 01 language models | probability of text, n-grams, perplexity, a neural bigram, an LSTM | `llmcourse.ngram`, `llmcourse.widgets` |
# | 02 tokens and embeddings | BPE from scratch, real tokenizers, embeddings, positions (RoPE) | `llmcourse.tokenizers` |
# | 03 attention | dot-product attention, masks, heads, attention in a real model | `llmcourse.attention`, `llmcourse.widgets` |
# | 04 transformer and GPT | blocks, parameter and FLOP counts, GPT-2 equivalence, sampling | `llmcourse.model` |
# | 05 modern decoders | RMSNorm, SwiGLU, RoPE, grouped-query attention, mixture of experts; a Llama equal to Hugging Face | `llmcourse.llama` |
# | 06 cross-entropy and optimisation | the loss, its gradient, SGD → AdamW | `llmcourse.model` |
# | 07 pretraining | a real training loop: mixed precision, checkpoints, resume, MFU | `llmcourse.train` |
# | 08 scaling to 7B | memory, FLOPs, GPU-hours, ZeRO, scaling laws | `llmcourse.scaling` |
# | 09 fine-tuning | a real pretrained encoder, LoRA, instruction tuning | `llmcourse.finetune` |
# | 10 post-training | SFT that stops, DPO, RL with a verifiable reward (GRPO), reward hacking | `llmcourse.align` |
# | 11 evaluation and limits | metrics done right, calibration, bias, memorisation | `llmcourse.evaluate` |
# | 12 inference | memory-bound decoding, quantisation, speculative decoding, batching, a chat widget | `llmcourse.inference` |
#
# Read them in order: each chapter uses what the previous ones built.

# %% [markdown]
# The same map as a picture: five parts, each built on the one before.

# %%
import plotly.graph_objects as go

COURSE = [  # (chapter, title, part)
    ("00", "setup", "foundations"), ("01", "language models", "foundations"),
    ("02", "tokens and embeddings", "foundations"), ("03", "attention", "the model"),
    ("04", "transformer and GPT", "the model"), ("05", "modern decoders", "the model"),
    ("06", "cross-entropy and optimisation", "training"), ("07", "pretraining", "training"),
    ("08", "scaling to 7B", "training"), ("09", "fine-tuning", "adapting"),
    ("10", "post-training", "adapting"), ("11", "evaluation and limits", "using it"),
    ("12", "inference", "using it"),
]
PARTS = ["foundations", "the model", "training", "adapting", "using it"]
fig = go.Figure(go.Scatter(
    x=[int(n) for n, _, _ in COURSE], y=[PARTS.index(part) for _, _, part in COURSE],
    mode="markers+text", text=[f"{n} {t}" for n, t, _ in COURSE], textposition="top center",
    marker=dict(size=18, color=[PARTS.index(part) for _, _, part in COURSE],
                colorscale="Viridis"), hoverinfo="text"))
fig.update_layout(title="The map of the course", height=380, showlegend=False,
                  xaxis=dict(title="chapter", dtick=1, range=[-1, 13.5]),
                  yaxis=dict(tickvals=list(range(len(PARTS))), ticktext=PARTS, range=[-0.6, 4.8]),
                  margin=dict(l=90, r=20, t=50, b=40))
fig.show()

# %%
# every chapter once, in order, and every part used
assert [int(t.split()[0]) for t in fig.data[0].text] == list(range(len(COURSE)))
assert set(part for _, _, part in COURSE) == set(PARTS)
print(len(COURSE), "chapters in", len(PARTS), "parts")

# %% [markdown]
# ## Device
#
# `llmcourse.get_device()` returns CUDA if there is a GPU, then Apple's MPS, then the CPU.
# The environment variable `LLMCOURSE_DEVICE` overrides the choice, and asking for a device
# that is not there is an error, never a silent fallback.

# %%
print(device.type in ("cpu", "cuda", "mps"))
assert llmcourse.get_device("cpu").type == "cpu"

# %% [markdown]
# ## Profiles: one notebook, CPU to GPU
#
# Training a model takes seconds or hours depending on its size. Instead of editing numbers,
# you pick a *profile* with `LLMCOURSE_PROFILE`:
#
# - `ci`: the 2-core machine that tests the course — tiny models, seconds per chapter;
# - `cpu`: a laptop — small models, a few minutes;
# - `gpu`: Colab (T4/L4/A100) or better — the real thing, in bf16 or fp16.
#
# The default is `gpu` when CUDA is present, else `cpu`. A profile is a frozen dataclass: its
# sizes are read, never changed by a chapter.

# %% tags=["nbval-ignore-output"]
print(prof)

# %%
for name in llmcourse.PROFILE_NAMES:
    p = llmcourse.profile(name)
    print(f"{p.name:>4}: GPT {dict(p.gpt)}, batch {p.batch_size}, steps {p.max_steps}")

# sizes grow from ci to cpu to gpu
sizes = [llmcourse.profile(n).gpt["n_embd"] for n in llmcourse.PROFILE_NAMES]
assert sizes == sorted(sizes) and len(set(sizes)) == 3
assert llmcourse.profile("ci").pick(ci=1, cpu=2, gpu=3) == 1

# %% [markdown]
# A profile name that does not exist is an error that tells you the valid ones. The cell below
# is *meant* to fail (nbval checks that it does):

# %% tags=["raises-exception"]
llmcourse.profile("tpu")

# %% [markdown]
# ## The data: real text, offline
#
# Language models learn from text. This course runs with no network: its default corpus is the
# Python language reference, which ships inside every Python installation
# (`pydoc_data.topics`). A second corpus is made of the standard library's docstrings. Online,
# `load_corpus("tiny-shakespeare")` downloads Karpathy's Shakespeare once and checks its sha256.

# %%
from llmcourse.data import CORPORA, load_corpus, train_val_split

text = load_corpus("python-reference")
train_text, val_text = train_val_split(text, val_fraction=0.1)
print("corpora:", CORPORA)
assert len(text) > 400_000
assert train_text + val_text == text  # a split loses nothing
assert abs(len(val_text) / len(text) - 0.1) < 1e-3

# %% [markdown]
# The exact text depends a little on your Python version, so we do not print its length in a
# checked output. Here is a glimpse (this cell's output is not compared):

# %% tags=["nbval-ignore-output"]
print(f"{len(text):,} characters; it starts:\n")
print(text[:300])

# %% [markdown]
# ## How outputs are checked
#
# Every chapter is tested by `pytest --nbval`: the notebook is run top to bottom and each cell's
# output must equal the stored one. Two rules make that strict test honest:
#
# 1. **Numbers that teach something are asserted**, not just printed: a loss below a bound, two
#    implementations equal to `1e-5`, a round trip exact. A test that cannot fail is a defect.
# 2. Outputs that legitimately vary (timings, training curves, versions) live in cells tagged
#    `nbval-ignore-output` (a cell tag: JupyterLab shows it in the property inspector, not in the
#    code), followed by a cell that asserts the property that matters.
#
# For instance, softmax over *equal* scores is uniform — whatever some tutorials print:

# %%
import torch

p = torch.softmax(torch.tensor([2.0, 2.0, 2.0]), dim=-1)
print(p)
assert torch.allclose(p, torch.full((3,), 1 / 3))

# %% [markdown]
# ## Exercise: softmax
#
# Write `softmax(x)` over the last dimension of a tensor, without calling `torch.softmax`.
# The checker runs it on hidden cases (including huge scores, where a naive `exp` overflows)
# and tells you what is wrong. Replace the `raise` line with your code and run the cell.

# %%
from llmcourse.exercises import check_softmax


def softmax(x: torch.Tensor) -> torch.Tensor:
    raise NotImplementedError  # your code here


check_softmax(softmax)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Subtract the row maximum before exponentiating: it leaves the result unchanged (it cancels in
# the ratio) and keeps `exp` from overflowing.
# </details>

# %% jupyter={"source_hidden": true}
def softmax_solution(x: torch.Tensor) -> torch.Tensor:
    z = x - x.max(dim=-1, keepdim=True).values
    e = z.exp()
    return e / e.sum(dim=-1, keepdim=True)


assert check_softmax(softmax_solution)

# %% [markdown]
# A checker is itself tested: a naive softmax that overflows must fail it.

# %%
def naive_softmax(x: torch.Tensor) -> torch.Tensor:
    return x.exp() / x.exp().sum(dim=-1, keepdim=True)


assert not check_softmax(naive_softmax)

# %% [markdown]
# ## Running on a GPU (Colab)
#
# 1. Click the *Open in Colab* badge at the top of a chapter.
# 2. *Runtime → Change runtime type → GPU* (T4 is free; L4/A100 are faster).
# 3. Run the setup cell: it installs the course, and the profile becomes `gpu` by itself.
#
# Nothing else changes: the same cells train bigger models, in bf16 or fp16, with fused kernels.
#
# ## Summary
#
# - `llmcourse.setup()` seeds, picks the device and profile, and quiets logs.
# - Profiles (`ci`, `cpu`, `gpu`) scale a chapter without editing it.
# - Every number that teaches something is checked with `assert`; exercises have checkers.
#
# Next: **01 · Language models** — what it means to assign a probability to text.
