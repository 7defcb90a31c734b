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
# # 06 · Cross-entropy and optimisation
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/llmcourse/llmcourse/blob/main/chapters/06_cross_entropy_and_optimization.ipynb)
#
# **What you will learn**
# - cross-entropy `H(p, q)` and KL divergence from scratch, and why a language model minimises them;
# - how to compute them without overflow (log-softmax, log-sum-exp), and the details of
#   `F.cross_entropy`: `ignore_index=-100`, label smoothing;
# - perplexity and bits per character / byte: the same loss in other units;
# - why the gradient of softmax + cross-entropy is simply `p − y`;
# - gradient descent, the learning rate, and SGD → momentum → Adam → AdamW, each written in a
#   few lines and checked against `torch.optim`.
#
# **Prerequisites:** chapter 04 (a GPT outputs logits for the next token).

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
import math

import plotly.graph_objects as go
import torch
import torch.nn as nn
from torch.nn import functional as F

# %% [markdown]
# ## 1. Cross-entropy from scratch
#
# A language model outputs a distribution `q` over the next token; the truth is a distribution
# `p` (in training: all the mass on the token that really came next). The **cross-entropy**
#
# $$H(p, q) = -\sum_x p(x)\,\ln q(x)$$
#
# is the average number of nats a code built for `q` spends on data from `p`. With a one-hot
# `p` it is just `−ln q(true token)`.
#
# The classic worked example: the vocabulary is `a, b, c`, the model predicts
# `q = (0.3, 0.6, 0.1)` and the true next word is `b`:

# %%
def cross_entropy_pq(p, q):
    return -(p * q.log()).sum(-1)


q = torch.tensor([0.3, 0.6, 0.1])
p = torch.tensor([0.0, 1.0, 0.0])  # the truth: "b"
loss = cross_entropy_pq(p, q)
print(f"H(p, q) = -ln 0.6 = {loss.item():.2f}")
assert math.isclose(loss.item(), -math.log(0.6), rel_tol=1e-6)
assert round(loss.item(), 2) == 0.51

# %% [markdown]
# The better the prediction, the lower the loss: it is 0 for a certain, correct prediction and
# grows without bound as `q(true)` → 0. Each halving of `q(true)` costs the same `ln 2` ≈ 0.69
# nats, so a confident wrong answer is punished far more than a hesitant one:

# %%
q_grid = torch.linspace(0.005, 1.0, 200)
examples = torch.tensor([1.0, 0.9, 0.6, 0.1, 0.01])
fig = go.Figure()
fig.add_scatter(x=q_grid.tolist(), y=(-q_grid.log()).tolist(), mode="lines", name="−ln q(true)")
fig.add_scatter(x=examples.tolist(), y=(-examples.log()).tolist(), mode="markers+text",
                text=[f"{v:.2f}" for v in -examples.log()], textposition="top right",
                name="examples")
fig.update_layout(title="The loss of one prediction: −ln q(true)", width=620, height=360,
                  xaxis_title="q(true): probability given to the token that came next",
                  yaxis_title="loss (nats)")
fig

# %%
curve_x, curve_y = torch.tensor(fig.data[0].x), torch.tensor(fig.data[0].y)
assert torch.allclose(curve_y, -curve_x.log())  # the curve is −ln q…
assert (curve_y.diff() < 0).all() and curve_y[-1] == 0  # …falling to exactly 0 at q = 1…
assert curve_y[0] > 5  # …and above 5 nats once q(true) < 0.7 %
marks = dict(zip(fig.data[1].x, fig.data[1].y))
assert math.isclose(marks[examples[2].item()], loss.item(), rel_tol=1e-6)  # q = 0.6: the example above
assert math.isclose(marks[examples[4].item()], math.log(100), rel_tol=1e-6)  # q = 0.01: ln 100

# %% [markdown]
# ## 2. KL divergence
#
# The **entropy** `H(p) = H(p, p)` is the irreducible part: the uncertainty of the data itself.
# What is left is the **Kullback–Leibler divergence**, the price of using `q` instead of `p`:
#
# $$H(p, q) = H(p) + \mathrm{KL}(p\,\|\,q), \qquad \mathrm{KL}(p\,\|\,q) = \sum_x p(x) \ln\frac{p(x)}{q(x)} \ge 0.$$
#
# Minimising cross-entropy over `q` is minimising KL: the best model predicts `q = p`.

# %%
def entropy(p):
    return -(p * p.log()).sum(-1)


def kl(p, q):
    return (p * (p / q).log()).sum(-1)


p = torch.tensor([0.5, 0.3, 0.2])
q = torch.tensor([0.4, 0.4, 0.2])
print(f"H(p) = {entropy(p):.4f}, KL(p||q) = {kl(p, q):.4f}, H(p,q) = {cross_entropy_pq(p, q):.4f}")
assert torch.allclose(cross_entropy_pq(p, q), entropy(p) + kl(p, q))
assert torch.allclose(kl(p, q), F.kl_div(q.log(), p, reduction="sum"))  # torch's argument order
assert kl(p, q) > 0 and kl(p, p).abs() < 1e-7
print(f"KL is not symmetric: KL(p||q) = {kl(p, q):.4f}, KL(q||p) = {kl(q, p):.4f}")

# %% [markdown]
# ## 3. Why log-softmax and log-sum-exp
#
# A model outputs **logits** `z`, and `q = softmax(z)`. Computing `softmax` then `log` breaks as
# soon as a logit is large: `exp(1000)` overflows to `inf`, and `inf / inf` is `nan`. The fix
# is algebra: `ln softmax(z)_i = z_i − logsumexp(z)`, and
# `logsumexp(z) = m + ln Σ exp(z − m)` with `m = max z` never overflows.

# %%
z = torch.tensor([1000.0, 0.0, -1000.0])
naive = (z.exp() / z.exp().sum()).log()
print("naive log(softmax):", naive)


def log_softmax(z):
    m = z.max(dim=-1, keepdim=True).values
    lse = m + (z - m).exp().sum(dim=-1, keepdim=True).log()  # log-sum-exp
    return z - lse


print("stable log_softmax:", log_softmax(z))
assert naive.isnan().any()
assert torch.allclose(log_softmax(z), F.log_softmax(z, dim=-1))
zz = torch.randn(4, 7) * 30
assert torch.allclose(log_softmax(zz), F.log_softmax(zz, dim=-1), atol=1e-5)

# %% [markdown]
# ## 4. `F.cross_entropy`, by hand
#
# PyTorch's `F.cross_entropy(logits, targets)` takes **logits** (not probabilities) and class
# indices, and averages over positions. Two options matter for language models:
#
# - `ignore_index=-100`: positions whose target is `-100` (padding, or a prompt we do not train
#   on) count for nothing — neither in the sum nor in the number we divide by;
# - `label_smoothing=ε`: the target becomes `(1 − ε)·one-hot + ε·uniform`, so the loss is
#   `(1 − ε)·NLL + ε·mean_x(−ln q(x))`, with `NLL = −ln q(true)`: the usual term weighs
#   `1 − ε`, and the mean over the whole vocabulary punishes giving any token a tiny
#   probability, which discourages over-confident logits.

# %%
def cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0):
    logp = log_softmax(logits)  # (N, V)
    keep = targets != ignore_index  # (N,)
    logp, targets = logp[keep], targets[keep]
    nll = -logp.gather(1, targets[:, None]).squeeze(1)  # -ln q(true), (N_kept,)
    smooth = -logp.mean(dim=-1)  # -mean_x ln q(x), (N_kept,)
    return ((1 - label_smoothing) * nll + label_smoothing * smooth).mean()


torch.manual_seed(0)
logits = torch.randn(12, 50) * 3  # 12 positions, vocabulary of 50
targets = torch.randint(0, 50, (12,))
targets[[0, 5, 6]] = -100  # e.g. padding
for eps in (0.0, 0.1):
    ours = cross_entropy(logits, targets, label_smoothing=eps)
    theirs = F.cross_entropy(logits, targets, ignore_index=-100, label_smoothing=eps)
    print(f"label_smoothing={eps}: ours {ours:.4f}, torch {theirs:.4f}")
    assert torch.allclose(ours, theirs, atol=1e-6)

# %% [markdown]
# The same formula written out with PyTorch's own pieces — and not "NLL plus ε times the
# mean", which is what "adds a term" would suggest:

# %%
eps, keep = 0.1, targets != -100
nll = F.cross_entropy(logits, targets)  # mean −ln q(true) over the kept positions
mean_neg_logq = -F.log_softmax(logits[keep], dim=-1).mean(dim=-1).mean()  # mean over x too
smoothed = F.cross_entropy(logits, targets, label_smoothing=eps)
print(f"NLL {nll:.4f}, mean(−ln q) {mean_neg_logq:.4f}: "
      f"(1 − ε)·NLL + ε·mean(−ln q) = {(1 - eps) * nll + eps * mean_neg_logq:.4f}, "
      f"torch {smoothed:.4f}")
assert torch.allclose(smoothed, (1 - eps) * nll + eps * mean_neg_logq, atol=1e-6)
assert not torch.allclose(smoothed, nll + eps * mean_neg_logq, atol=1e-2)

# %% [markdown]
# A GPT's logits are `(B, T, V)` and its targets `(B, T)`: flatten both, exactly like
# `GPT.forward` does.

# %%
B, T, V = 2, 5, 11
logits3, targets3 = torch.randn(B, T, V), torch.randint(0, V, (B, T))
flat = F.cross_entropy(logits3.view(-1, V), targets3.view(-1))
assert torch.allclose(flat, cross_entropy(logits3.view(-1, V), targets3.view(-1)), atol=1e-6)
assert torch.allclose(flat, F.cross_entropy(logits3.transpose(1, 2), targets3))  # (B, V, T) form

# %% [markdown]
# ## 5. Perplexity and bits
#
# The same loss in other units:
#
# - **perplexity** `exp(loss)`: the model is as unsure as a uniform choice among that many tokens;
#   a uniform guess over `V` tokens has loss `ln V` and perplexity exactly `V`;
# - **bits per token** `loss / ln 2`;
# - **bits per character / byte**: tokenizers differ (a BPE token is ~4 characters), so to compare
#   models with different tokenizers divide the *total* bits by the number of characters or
#   bytes: `loss · n_tokens / (n_bytes · ln 2)`.

# %%
V = 256
uniform_loss = F.cross_entropy(torch.zeros(1, V), torch.tensor([7])).item()
print(f"uniform over {V}: loss {uniform_loss:.4f} = ln {V}, perplexity {math.exp(uniform_loss):.1f}, "
      f"bits per byte {uniform_loss / math.log(2):.1f}")
assert math.isclose(math.exp(uniform_loss), V, rel_tol=1e-5)

# %% [markdown]
# For a real example: a *unigram* character model (each character's frequency in a text) and its
# loss on that text, in every unit.

# %%
sample = ("Cross-entropy is the loss every language model minimises: the average of "
          "minus the log-probability of the token that really came next.")
counts = torch.bincount(torch.tensor(list(sample.encode())), minlength=256).float()
probs = counts / counts.sum()
ids = torch.tensor(list(sample.encode()))
loss_u = -probs[ids].log().mean().item()  # nats per byte (= per character: ASCII text)
print(f"unigram: {loss_u:.3f} nats/char, perplexity {math.exp(loss_u):.2f}, "
      f"{loss_u / math.log(2):.3f} bits/char")
assert math.isclose(loss_u, entropy(probs[probs > 0]).item(), rel_tol=1e-5)  # = the entropy here
assert loss_u / math.log(2) < 8  # better than the 8 bits of a raw byte

# %% [markdown]
# ## 6. The gradient of softmax + cross-entropy is `p − y`
#
# With `q = softmax(z)` and a one-hot target `y`, `∂ loss / ∂ z = q − y`: the gradient pushes up
# the true token's logit by `1 − q(true)` and pushes down each other logit by its probability.
# So each component of the gradient **with respect to the logits** is between −1 and 1, however
# wrong the model is. Autograd agrees:

# %%
z = torch.randn(4, 6, requires_grad=True)
y = torch.tensor([0, 3, 5, 1])
F.cross_entropy(z, y).backward()  # mean over 4 rows: each row's gradient is divided by 4
expected = (z.softmax(-1) - F.one_hot(y, 6)) / 4
assert torch.allclose(z.grad, expected.detach(), atol=1e-7)
assert (z.grad * 4).abs().max() <= 1 and torch.allclose(z.grad.sum(-1), torch.zeros(4), atol=1e-7)

# %% [markdown]
# That bound does **not** carry over to the parameters. For the layer that makes the logits,
# `z = W x + b`, the chain rule gives `∂ loss / ∂ W = (q − y) xᵀ`: the bounded `q − y` times
# the layer's input, which can be as large as it likes. Scale the input of a real
# `nn.Linear` and watch:

# %%
torch.manual_seed(0)
head = nn.Linear(64, 10)  # an output layer: 64 features in, 10 logits out
x, y = torch.randn(8, 64), torch.randint(0, 10, (8,))
for scale in (1, 10, 100):
    head.zero_grad()
    logits_h = head(scale * x)
    logits_h.retain_grad()
    F.cross_entropy(logits_h, y, reduction="sum").backward()  # sum: each row's gradient is q − y
    print(f"input × {scale:>3}: max |∂loss/∂z| = {logits_h.grad.abs().max():.2f}, "
          f"max |∂loss/∂W| = {head.weight.grad.abs().max():.1f}")
    assert logits_h.grad.abs().max() <= 1  # bounded, whatever the input
    assert torch.allclose(head.weight.grad, logits_h.grad.T @ (scale * x), rtol=1e-4, atol=1e-4)
assert head.weight.grad.abs().max() > 100  # the weight gradient is not

# %% [markdown]
# Deeper layers multiply by more such factors, so one unlucky batch can produce a huge step.
# That is why training stays stable only with help: normalised activations, small learning
# rates, and **gradient clipping**, which rescales the whole gradient when its norm exceeds a
# limit (chapter 07).

# %% [markdown]
# ## 7. Gradient descent
#
# Training repeats `θ ← θ − η ∇J(θ)`: a small step downhill, with **learning rate** `η`. On the
# 2-D bowl `J(θ) = ½(θ₁² + 10 θ₂²)` the gradient is `(θ₁, 10 θ₂)`, so each step multiplies
# `θ₁` by `1 − η` and `θ₂` by `1 − 10η`. Hence:
#
# - `η` too small: `θ₁` crawls (`0.99` per step at `η = 0.01`);
# - `η` well chosen: fast along both axes;
# - `η > 2/10`: `|1 − 10η| > 1`, the steep direction overshoots more at each step — divergence.
#
# The steepest direction limits the learning rate; the flattest sets the speed. This mismatch
# (the *condition number*, here 10) is what momentum and Adam address.

# %%
def J(theta):
    return 0.5 * (theta[0] ** 2 + 10 * theta[1] ** 2)


def gradient_descent(lr, steps=40, start=(-4.0, 1.5)):
    theta = torch.tensor(start, requires_grad=True)
    path = [theta.detach().clone()]
    for _ in range(steps):
        (g,) = torch.autograd.grad(J(theta), theta)
        theta = (theta - lr * g).detach().requires_grad_(True)
        path.append(theta.detach().clone())
    return torch.stack(path)  # (steps + 1, 2)


paths = {lr: gradient_descent(lr) for lr in (0.01, 0.15, 0.205)}
for lr, path in paths.items():
    print(f"lr {lr:<5}: J = {J(path[0]):.2f} -> {J(path[-1]):.3g} after 40 steps")
assert J(paths[0.01][-1]) > 1  # too small: still far away
assert J(paths[0.15][-1]) < 1e-2  # well chosen: converged
assert J(paths[0.205][-1]) > J(paths[0.205][0])  # too large: diverged

# %%
def bowl_figure(paths, title):
    g1, g2 = torch.linspace(-4.5, 4.5, 91), torch.linspace(-3, 3, 61)
    zz = 0.5 * (g1[None, :] ** 2 + 10 * g2[:, None] ** 2)
    fig = go.Figure(go.Contour(x=g1, y=g2, z=zz.log1p(), showscale=False, colorscale="Blues",
                               contours=dict(showlines=False)))
    for name, path in paths.items():
        path = path.clamp(-4.5, 4.5)
        fig.add_trace(go.Scatter(x=path[:, 0], y=path[:, 1].clamp(-3, 3), mode="lines+markers",
                                 marker=dict(size=4), name=name))
    fig.update_layout(title=title, width=700, height=420, xaxis_title="θ₁", yaxis_title="θ₂")
    return fig


fig = bowl_figure({f"η = {lr}": path for lr, path in paths.items()},
                  "Gradient descent on J = ½(θ₁² + 10θ₂²)")
fig

# %% [markdown]
# The drawn paths are the closed form from the prose: after `k` steps `θ₁ = −4 (1 − η)ᵏ` and
# `θ₂ = 1.5 (1 − 10η)ᵏ` (clipped to the plotted box):

# %%
k = torch.arange(41, dtype=torch.float64)
for trace, lr in zip(fig.data[1:], paths):
    assert trace.name == f"η = {lr}"
    assert torch.allclose(torch.as_tensor(trace.x).double(), (-4 * (1 - lr) ** k).clamp(-4.5, 4.5),
                          atol=1e-4)
    assert torch.allclose(torch.as_tensor(trace.y).double(),
                          (1.5 * (1 - 10 * lr) ** k).clamp(-3, 3), atol=1e-4)
zeta = torch.as_tensor(fig.data[0].z)
i, j = divmod(zeta.argmin().item(), zeta.shape[1])
assert abs(fig.data[0].x[j]) < 1e-6 and abs(fig.data[0].y[i]) < 1e-6  # lowest contour: θ = (0, 0)

# %% [markdown]
# ## 8. SGD, momentum, Adam and AdamW in a few lines
#
# - **SGD**: `θ ← θ − η g`.
# - **Momentum**: a running sum of gradients, `b ← μ b + g`, `θ ← θ − η b`: it accelerates along
#   consistent directions and cancels oscillations.
# - **Adam**: running means of the gradient `m` and of its square `v` (bias-corrected for their
#   zero start), step `η m̂ / (√v̂ + ε)`: each parameter gets its own step size.
# - **AdamW**: Adam with *decoupled* weight decay `θ ← θ − η λ θ`, applied to the weights
#   directly rather than added to the gradient (section 9).
#
# Each is a function that updates parameters in place from their `.grad`:

# %%
@torch.no_grad()
def sgd_step(params, lr):
    for p in params:
        p -= lr * p.grad


@torch.no_grad()
def momentum_step(params, bufs, lr, mu=0.9):
    for p, b in zip(params, bufs):
        b.mul_(mu).add_(p.grad)  # b ← μ b + g
        p -= lr * b


@torch.no_grad()
def adamw_step(params, ms, vs, t, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    b1, b2 = betas
    for p, m, v in zip(params, ms, vs):
        p.mul_(1 - lr * weight_decay)  # decoupled weight decay (0: plain Adam)
        m.mul_(b1).add_((1 - b1) * p.grad)  # m ← β₁ m + (1 − β₁) g
        v.mul_(b2).add_((1 - b2) * p.grad**2)  # v ← β₂ v + (1 − β₂) g²
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)  # undo the bias of starting at 0
        p -= lr * m_hat / (v_hat.sqrt() + eps)

# %% [markdown]
# Same steps as `torch.optim`? We train a small network from the same start for 10 steps with
# ours and with PyTorch's, and compare every parameter:

# %%
torch.manual_seed(0)
X, Y = torch.randn(32, 5), torch.randn(32, 2)
template = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2))


def train(step_fn=None, torch_opt=None, steps=10):
    torch.manual_seed(1)
    net = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2))
    net.load_state_dict(template.state_dict())
    params = list(net.parameters())
    opt = torch_opt(params) if torch_opt else None
    state = dict(bufs=[torch.zeros_like(p) for p in params],
                 ms=[torch.zeros_like(p) for p in params], vs=[torch.zeros_like(p) for p in params])
    for t in range(1, steps + 1):
        for p in params:
            p.grad = None
        F.mse_loss(net(X), Y).backward()
        if opt:
            opt.step()
        else:
            step_fn(params, state, t)
    return torch.cat([p.detach().flatten() for p in params])


cases = {
    "SGD": (lambda ps, s, t: sgd_step(ps, lr=0.1),
            lambda ps: torch.optim.SGD(ps, lr=0.1)),
    "momentum": (lambda ps, s, t: momentum_step(ps, s["bufs"], lr=0.05, mu=0.9),
                 lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9)),
    "Adam": (lambda ps, s, t: adamw_step(ps, s["ms"], s["vs"], t, lr=0.01),
             lambda ps: torch.optim.Adam(ps, lr=0.01)),
    "AdamW": (lambda ps, s, t: adamw_step(ps, s["ms"], s["vs"], t, lr=0.01, weight_decay=0.1),
              lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1)),
}
start = torch.cat([p.detach().flatten() for p in template.parameters()])
for name, (ours_fn, torch_fn) in cases.items():
    ours, theirs = train(step_fn=ours_fn), train(torch_opt=torch_fn)
    assert (ours - start).abs().max() > 1e-3  # the parameters did move
    assert torch.allclose(ours, theirs, atol=1e-6), name
    print(f"{name:>8}: same parameters as torch.optim after 10 steps")

# %% [markdown]
# **How long is an Adam step?** `η·m̂ / (√v̂ + ε)`. While a coordinate's gradient keeps its sign,
# `m̂ ≈ g` and `√v̂ ≈ |g|`: the step is about `η`, whether the gradient is 10⁻³ or 10³. When
# the sign alternates, `m̂` averages the gradients towards 0 while `√v̂` still sees `|g|`, and
# the step shrinks — for a gradient of fixed size and alternating sign, to
# `(1 − β₁)/(1 + β₁) ≈ 0.053 η` once the bias correction has faded. Measured with our
# `adamw_step` (β₁ = 0.9):

# %%
def adam_step_sizes(grads, lr=0.01):
    """Length of each of Adam's steps on one parameter, in units of the learning rate."""
    p, m, v = torch.zeros(1, requires_grad=True), torch.zeros(1), torch.zeros(1)
    sizes = []
    for t, g in enumerate(grads, 1):
        before = p.detach().clone()
        p.grad = torch.tensor([g])
        adamw_step([p], [m], [v], t, lr)
        sizes.append((p.detach() - before).abs().item() / lr)
    return torch.tensor(sizes, dtype=torch.float64)


t = torch.arange(1, 61, dtype=torch.float64)
b1 = 0.9  # exact length for an alternating sign: (1−β₁)/(1+β₁) · (1 − (−β₁)ᵗ)/(1 − β₁ᵗ)
alternating_theory = (1 - b1) / (1 + b1) * (1 - (-b1) ** t) / (1 - b1**t)
for g in (1e-3, 1.0, 1e3):
    same = adam_step_sizes([g] * 60)
    flip = adam_step_sizes([g * (-1) ** i for i in range(60)])
    print(f"|g| = {g:g}: same sign {same[-10:].mean():.3f} η, "
          f"alternating sign {flip[-10:].mean():.3f} η  (mean of the last 10 steps)")
    assert torch.allclose(same, torch.ones(60, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(flip, alternating_theory, rtol=1e-3)
assert flip[-10:].mean() < 0.06  # alternating: about 5 % of η

# %% [markdown]
# On the bowl, with each optimiser's learning rate tuned a little: momentum builds speed along the
# flat direction; Adam rescales each coordinate, so its first steps are `η` long in *both*
# coordinates — a diagonal — although one gradient is almost 4× the other (the sign matters,
# not the size). Once the path crosses the valley the signs flip and the steps shrink, but nothing ties
# their length to the distance from the minimum, so Adam circles around it instead of settling:
# one reason LLM training *decays* the learning rate at the end (chapter 07).

# %%
def optimise(kind, lr, steps=60):
    theta = torch.tensor([-4.0, 1.5], requires_grad=True)
    buf, m, v = torch.zeros(2), torch.zeros(2), torch.zeros(2)
    path = [theta.detach().clone()]
    for t in range(1, steps + 1):
        theta.grad = None
        J(theta).backward()
        if kind == "SGD":
            sgd_step([theta], lr)
        elif kind == "momentum":
            momentum_step([theta], [buf], lr, mu=0.8)
        else:
            adamw_step([theta], [m], [v], t, lr)
        path.append(theta.detach().clone())
    return torch.stack(path)


opt_paths = {"SGD η=0.15": optimise("SGD", 0.15), "momentum η=0.05": optimise("momentum", 0.05),
             "Adam η=0.3": optimise("Adam", 0.3)}
for name, path in opt_paths.items():
    print(f"{name:>16}: J after 60 steps = {J(path[-1]):.1e}")
assert J(opt_paths["SGD η=0.15"][-1]) < 1e-4 and J(opt_paths["momentum η=0.05"][-1]) < 1e-4
assert J(opt_paths["Adam η=0.3"][-1]) < 0.05  # close, but still hovering
fig = bowl_figure(opt_paths, "SGD, momentum and Adam on the same bowl")
fig

# %%
traces = {trace.name: trace for trace in fig.data[1:]}
sgd_x = torch.as_tensor(traces["SGD η=0.15"].x).double()
assert torch.allclose(sgd_x, -4 * 0.85 ** torch.arange(61, dtype=torch.float64), atol=1e-4)
adam = traces["Adam η=0.3"]
first_step = (adam.x[1] - adam.x[0], adam.y[1] - adam.y[0])
assert all(abs(abs(d) - 0.3) < 1e-6 for d in first_step)  # η in both coordinates: a diagonal
late = torch.as_tensor(adam.x).diff().abs()[-10:]
assert (late < 0.1 * 0.3).all() and (late > 0.01 * 0.3).all()  # shorter, but not vanishing

# %% [markdown]
# ## 9. Weight decay
#
# Weight decay pulls every weight towards zero, a prior that prefers small weights (less
# over-fitting). With plain SGD, adding `λθ` to the gradient ("L2 regularisation") and shrinking
# the weights are the same thing. With Adam they are not: an L2 term in the gradient gets divided
# by `√v̂` like everything else, so weights with large gradients are barely decayed. **AdamW**
# (Loshchilov & Hutter, 2019) decays the weights directly: with a zero gradient, each step
# multiplies them by exactly `1 − ηλ`.

# %%
w = nn.Parameter(torch.ones(3))
opt = torch.optim.AdamW([w], lr=0.1, weight_decay=0.5)
for _ in range(5):
    w.grad = torch.zeros(3)
    opt.step()
print(f"after 5 steps with zero gradient: {w[0].item():.6f} = (1 - 0.1·0.5)^5 = {0.95**5:.6f}")
assert torch.allclose(w.detach(), torch.full((3,), 0.95**5))

adam_l2 = train(torch_opt=lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1))
adamw = train(torch_opt=lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1))
gap = (adam_l2 - adamw).abs().max().item()
print(f"Adam + L2 vs AdamW after 10 steps: parameters differ by up to {gap:.4f}")
assert gap > 1e-4  # the same λ, applied in two places, gives different steps

# %% [markdown]
# In GPT training (chapter 07) AdamW's weight decay is usually applied to the weight matrices
# only — not to biases and LayerNorm gains — through the optimiser's parameter groups.
#
# ## Exercises
#
# ### Exercise 1: bits per byte
# A model's loss is `loss` nats per token on a text of `n_tokens` tokens and `n_bytes` UTF-8 bytes.
# Write `bits_per_byte(loss, n_tokens, n_bytes)`.

# %%
from llmcourse.exercises.loss import check_bits_per_byte, check_rmsprop_step


def bits_per_byte(loss, n_tokens, n_bytes):
    raise NotImplementedError  # your code here


check_bits_per_byte(bits_per_byte)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Total nats `loss · n_tokens`, in bits `/ ln 2`, per byte `/ n_bytes`.
# </details>

# %% jupyter={"source_hidden": true}
def bits_per_byte_solution(loss, n_tokens, n_bytes):
    return loss * n_tokens / (n_bytes * math.log(2))


assert check_bits_per_byte(bits_per_byte_solution)

# %% [markdown]
# Forgetting the conversion from nats to bits must fail:

# %%
assert not check_bits_per_byte(lambda loss, n_tokens, n_bytes: loss * n_tokens / n_bytes)

# %% [markdown]
# ### Exercise 2: RMSprop
# RMSprop (Hinton, 2012) is Adam without momentum and without bias correction:
# `v ← α v + (1 − α) g²`, `θ ← θ − η g / (√v + ε)`. Write
# `rmsprop_step(param, grad, v, lr, alpha=0.99, eps=1e-8)` returning the new `(param, v)`
# (tensors; do not modify the inputs). The checker runs it for several steps against
# `torch.optim.RMSprop`.

# %%
def rmsprop_step(param, grad, v, lr, alpha=0.99, eps=1e-8):
    raise NotImplementedError  # your code here


check_rmsprop_step(rmsprop_step)

# %% [markdown]
# <details><summary><b>Solution</b> (try first!)</summary>
#
# Two lines: update the running mean of squared gradients, then divide the step by its root.
# </details>

# %% jupyter={"source_hidden": true}
def rmsprop_step_solution(param, grad, v, lr, alpha=0.99, eps=1e-8):
    v = alpha * v + (1 - alpha) * grad**2
    return param - lr * grad / (v.sqrt() + eps), v


assert check_rmsprop_step(rmsprop_step_solution)

# %% [markdown]
# Putting `ε` inside the square root, `√(v + ε)` with the same `ε = 1e-8`, is a common slip. With
# gradients of about 1 it changes nothing visible; with gradients of about 1e-5 (the checker's
# last case) `√v` ≈ 1e-6 but `√(v + 1e-8)` ≈ 1e-4: steps up to a hundred times too small.
# It must fail:

# %%
def rmsprop_eps_inside(param, grad, v, lr, alpha=0.99, eps=1e-8):
    v = alpha * v + (1 - alpha) * grad**2
    return param - lr * grad / (v + eps).sqrt(), v


assert not check_rmsprop_step(rmsprop_eps_inside)

# %% [markdown]
# ## Summary
#
# - Cross-entropy `H(p, q) = −Σ p ln q` = entropy + KL; with a one-hot truth, `−ln q(true)`.
# - Compute it from logits with log-softmax (log-sum-exp): never `log(softmax(z))`.
# - Perplexity `= exp(loss)`; bits per byte `= loss · tokens / (bytes · ln 2)` compares tokenizers.
# - The gradient with respect to the logits is `softmax − one-hot`, bounded by 1; the gradients
#   of the weights are not (they scale with the layers' inputs), hence gradient clipping.
# - Label smoothing trains on `(1 − ε)·NLL + ε·mean(−ln q)`.
# - Adam's steps are about `η` while a gradient keeps its sign, and much shorter when it flips.
# - The learning rate is bounded by the steepest direction; momentum and Adam fix the slow ones;
#   AdamW decays weights directly.
#
# Next: **07 · Pretraining** — a real training loop for our GPT.
