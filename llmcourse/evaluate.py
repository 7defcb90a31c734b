"""Evaluation from scratch: classification metrics, perplexity, BLEU, calibration, probes.

Every function here is short enough to read, and chapter 11 compares each one with the
library everybody uses (scikit-learn, sacrebleu, lm-evaluation-harness). Multiple-choice
scoring by log-likelihood and pass@k live in :mod:`llmcourse.align.evals`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from llmcourse._checks import (
    check_callable,
    check_choice,
    check_int,
    check_int_list,
    check_module,
    check_number,
    check_tensor,
)


def _labels(name: str, y) -> list[int]:
    """Integer class labels (ints, numpy ints, an integer tensor); never a float or a bool, so
    probabilities passed by mistake are refused, not truncated to 0."""
    return check_int_list(name, y, min=0)


def _pair(y_true, y_pred) -> tuple[list[int], list[int]]:
    t, p = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if len(t) != len(p):
        raise ValueError(f"y_true and y_pred must have the same length, got {len(t)} and {len(p)}")
    if not t:
        raise ValueError("y_true must not be empty")
    return t, p


def confusion_matrix(y_true, y_pred, num_labels: int | None = None) -> torch.Tensor:
    """``C[i, j]`` = how many examples of true class ``i`` were predicted as ``j``."""
    t, p = _pair(y_true, y_pred)
    if num_labels is not None:
        check_int("num_labels", num_labels, min=1)
    k = num_labels if num_labels is not None else max(max(t), max(p)) + 1
    for name, labels in (("y_true", t), ("y_pred", p)):
        if max(labels) >= k:
            raise ValueError(f"{name} must hold labels in [0, num_labels={k}), got {max(labels)}")
    C = torch.zeros(k, k, dtype=torch.long)
    for a, b in zip(t, p):
        C[a, b] += 1
    return C


def accuracy(y_true, y_pred) -> float:
    """Share of predictions equal to the truth."""
    t, p = _pair(y_true, y_pred)
    return sum(a == b for a, b in zip(t, p)) / len(t)


def precision_recall_f1(y_true, y_pred, average: str = "macro",
                        num_labels: int | None = None) -> tuple[float, float, float]:
    """Precision, recall and F1, ``average`` in ``{"macro", "micro"}`` (0/0 counts as 0, like
    scikit-learn's ``zero_division=0``). Macro averages the per-class scores; micro pools counts
    (for single-label classification, micro P = R = F1 = accuracy)."""
    check_choice("average", average, ("macro", "micro"))
    C = confusion_matrix(y_true, y_pred, num_labels).double()
    tp, fp, fn = C.diag(), C.sum(0) - C.diag(), C.sum(1) - C.diag()

    def div(a, b):
        return torch.where(b > 0, a / b.clamp(min=1e-300), torch.zeros_like(a))

    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
        p, r = float(div(tp, tp + fp)), float(div(tp, tp + fn))
        return p, r, (2 * p * r / (p + r) if p + r > 0 else 0.0)
    present = (C.sum(0) + C.sum(1)) > 0  # scikit-learn averages over labels that occur
    p, r = div(tp, tp + fp), div(tp, tp + fn)
    f = div(2 * p * r, p + r)
    return float(p[present].mean()), float(r[present].mean()), float(f[present].mean())


# ----------------------------------------------------------------------------- perplexity


@torch.no_grad()
def token_nll(model: torch.nn.Module, ids: torch.Tensor, block_size: int,
              stride: int | None = None) -> torch.Tensor:
    """Per-token negative log-likelihood (nats) of a long sequence scored window by window.

    Windows of ``block_size`` tokens move by ``stride``; each window scores only the tokens not
    scored before, so every token is predicted once, with up to ``block_size - stride`` tokens
    of context before it (Hugging Face's perplexity guide). ``stride = block_size`` is the naive
    non-overlapping chunking, where the first tokens of each chunk see almost no context (and
    the first token of each chunk cannot be scored at all).
    Returns a float tensor shaped like ``ids``: ``out[t]`` is ``-log p(ids[t] | context)``, NaN
    where a token was not scored (always ``out[0]``). ``model(idx)`` must return
    ``(logits, ...)`` or logits.
    """
    check_module("model", model)
    check_tensor("ids", ids, ndim=1, dtype="int", shape="(n_tokens,)")
    check_int("block_size", block_size, min=2)
    stride = block_size if stride is None else check_int("stride", stride, min=1, max=block_size)
    if ids.numel() < 2:
        raise ValueError("ids must hold at least 2 tokens")
    was_training = model.training
    model.eval()
    n = ids.numel()
    out = torch.full((n,), float("nan"), dtype=torch.float64)
    prev_end = 0
    for begin in range(0, n, stride):
        end = min(begin + block_size, n)
        window = ids[begin:end].unsqueeze(0)
        res = model(window)
        logits = res[0] if isinstance(res, tuple) else res
        # token at position t (t >= 1) is predicted by logits at t-1
        new_from = max(prev_end, begin + 1)  # score tokens [new_from, end)
        if new_from < end:
            lp = F.log_softmax(logits[0, new_from - begin - 1 : end - begin - 1].float(), dim=-1)
            tgt = ids[new_from:end].to(lp.device)
            out[new_from:end] = -lp.gather(1, tgt.unsqueeze(1))[:, 0].double().cpu()
        prev_end = end
        if end == n:
            break
    model.train(was_training)
    return out


def sliding_window_nll(model: torch.nn.Module, ids: torch.Tensor, block_size: int,
                       stride: int | None = None) -> tuple[float, int]:
    """Mean negative log-likelihood (nats/token) of a long sequence, and how many tokens scored.

    The mean of :func:`token_nll` over the tokens it scored (see there for ``stride``).
    """
    nll = token_nll(model, ids, block_size, stride)
    scored = ~nll.isnan()
    return float(nll[scored].mean()), int(scored.sum())


def perplexity(nll: float) -> float:
    """exp(mean NLL in nats); ``inf`` for an infinite (or overflowing) NLL."""
    nll = check_number("nll", nll, min=0.0, allow_inf=True)
    return math.exp(nll) if nll < 700 else math.inf


# ----------------------------------------------------------------------------- BLEU


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[Sequence[str]],
                max_n: int = 4) -> float:
    """Corpus BLEU (0–100) on whitespace tokens, no smoothing (Papineni et al., 2002).

    ``references[k][i]`` is the k-th reference of hypothesis i (sacrebleu's layout). Clipped
    n-gram counts and lengths are summed over the corpus before the geometric mean; the
    brevity penalty uses, per sentence, the reference length closest to the hypothesis.
    """
    if isinstance(hypotheses, str) or not isinstance(hypotheses, Sequence):
        raise TypeError(f"hypotheses must be a list of strings, got {type(hypotheses).__name__}")
    if not all(isinstance(h, str) for h in hypotheses):
        raise TypeError("hypotheses must hold strings")
    if isinstance(references, str) or not isinstance(references, Sequence) or any(
            isinstance(r, str) or not isinstance(r, Sequence) for r in references):
        raise TypeError("references must be a list of reference streams (lists of strings), "
                        "e.g. [['ref of hyp 1', 'ref of hyp 2']]")
    if not all(isinstance(x, str) for r in references for x in r):
        raise TypeError("references must hold strings")
    if not references or any(len(r) != len(hypotheses) for r in references):
        raise ValueError("references must be a list of reference streams, each as long as "
                         "hypotheses")
    if not hypotheses:
        raise ValueError("hypotheses must not be empty")
    check_int("max_n", max_n, min=1)
    match, possible = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for i, hyp in enumerate(hypotheses):
        h = hyp.split()
        refs = [r[i].split() for r in references]
        hyp_len += len(h)
        ref_len += min((abs(len(r) - len(h)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            hc = _ngrams(h, n)
            best: Counter = Counter()
            for r in refs:
                best |= _ngrams(r, n)
            match[n - 1] += sum(min(c, best[g]) for g, c in hc.items())
            possible[n - 1] += max(len(h) - n + 1, 0)
    if min(match) == 0:
        return 0.0
    log_p = sum(math.log(m / p) for m, p in zip(match, possible)) / max_n
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / max(hyp_len, 1))
    return 100 * bp * math.exp(log_p)


# ----------------------------------------------------------------------------- calibration


def reliability_bins(probs: torch.Tensor, y_true, n_bins: int = 10) -> dict[str, torch.Tensor]:
    """Bin predictions by confidence (max probability): per bin, mean confidence, accuracy, count.

    ``probs`` is (N, K) class probabilities. Bins are ``(i/n, (i+1)/n]``.
    """
    check_tensor("probs", probs, ndim=2, dtype="float", shape="(N, K)")
    if probs.size(0) == 0 or probs.size(1) == 0:
        raise ValueError(f"probs must hold at least one row and one class, got "
                         f"{tuple(probs.shape)}")
    if bool(probs.isnan().any()) or bool(((probs < 0) | (probs > 1)).any()):
        raise ValueError("probs must hold probabilities in [0, 1] (no NaN)")
    check_int("n_bins", n_bins, min=1)
    y = _labels_for("probs", probs, y_true)
    conf, pred = probs.float().max(dim=1)
    correct = (pred == y).float()
    idx = (torch.ceil(conf * n_bins).long() - 1).clamp(0, n_bins - 1)
    count = torch.bincount(idx, minlength=n_bins).float()
    conf_sum = torch.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = torch.bincount(idx, weights=correct, minlength=n_bins)
    safe = count.clamp(min=1)
    return {"confidence": conf_sum / safe, "accuracy": acc_sum / safe, "count": count,
            "edges": torch.linspace(0, 1, n_bins + 1)}


def expected_calibration_error(probs: torch.Tensor, y_true, n_bins: int = 10) -> float:
    """ECE: sum over bins of (bin share) × |accuracy − confidence|."""
    b = reliability_bins(probs, y_true, n_bins)
    w = b["count"] / b["count"].sum()
    return float((w * (b["accuracy"] - b["confidence"]).abs()).sum())


def _labels_for(what: str, scores: torch.Tensor, y_true) -> torch.Tensor:
    """``y_true`` as a long tensor: one label per row of ``scores`` (N, K), each in [0, K)."""
    y = torch.tensor(_labels("y_true", y_true), dtype=torch.long)
    if y.numel() != scores.size(0):
        raise ValueError(f"y_true has {y.numel()} labels for {scores.size(0)} rows of {what}")
    if int(y.max()) >= scores.size(1):
        raise ValueError(f"y_true must hold labels in [0, {scores.size(1)}) (the columns of "
                         f"{what}), got {int(y.max())}")
    return y


def _logits_and_labels(logits, y_true) -> tuple[torch.Tensor, torch.Tensor]:
    check_tensor("logits", logits, ndim=2, dtype="float", shape="(N, K)")
    if logits.size(0) == 0 or logits.size(1) < 2:
        raise ValueError(f"logits must hold at least one row and two classes, got "
                         f"{tuple(logits.shape)}")
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits must be finite (no NaN or inf)")
    y = _labels_for("logits", logits, y_true)
    return logits.detach().double().cpu(), y


def temperature_nll(logits: torch.Tensor, y_true, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of ``y_true`` under ``softmax(logits / temperature)``.

    ``logits`` is (N, K): any scores whose softmax are the model's probabilities (for a
    scikit-learn ``LogisticRegression``, ``decision_function``; ``log(probs)`` works too).
    """
    z, y = _logits_and_labels(logits, y_true)
    t = check_number("temperature", temperature, min=0.0, min_open=True)
    return float(F.cross_entropy(z / t, y))


def fit_temperature(logits: torch.Tensor, y_true, lo: float = 1e-2, hi: float = 1e2,
                    tol: float = 1e-9) -> float:
    """Temperature scaling (Guo et al., 2017): the single ``T`` in ``[lo, hi]`` that minimises
    the NLL of ``softmax(logits / T)`` on held-out ``(logits, y_true)``.

    Fit it on a validation split and apply it to the test split: dividing every logit by the
    same ``T`` never changes the argmax, so accuracy is untouched and only the confidence moves
    (``T > 1`` softens an over-confident model, ``T < 1`` sharpens an under-confident one).
    The NLL is convex in ``1/T``, hence unimodal in ``log T``: a golden-section search on
    ``log T`` finds the minimum to ``tol`` (a minimum at a bound returns that bound).
    """
    z, y = _logits_and_labels(logits, y_true)
    lo = check_number("lo", lo, min=0.0, min_open=True)
    hi = check_number("hi", hi, min=0.0, min_open=True)
    if not lo < hi:
        raise ValueError(f"lo must be < hi, got lo={lo} and hi={hi}")
    tol = check_number("tol", tol, min=0.0, min_open=True)

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(z / math.exp(log_t), y))

    a, b = math.log(lo), math.log(hi)
    r = (math.sqrt(5) - 1) / 2
    c, d = b - r * (b - a), a + r * (b - a)
    fc, fd = nll(c), nll(d)
    while b - a > tol:
        if fc <= fd:  # the minimum lies in [a, d]
            b, d, fd = d, c, fc
            c = b - r * (b - a)
            fc = nll(c)
        else:  # in [c, b]
            a, c, fc = c, d, fd
            d = a + r * (b - a)
            fd = nll(d)
    best = min((nll(a), a), (nll(b), b), (nll((a + b) / 2), (a + b) / 2))[1]
    return math.exp(best)


def _byte_chars() -> list[str]:
    """GPT-2's printable stand-in character for each byte 0..255 (``bytes_to_unicode``)."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:  # unprintable bytes map above 255, in order
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def hf_byte_tokenizer():
    """A Hugging Face tokenizer whose ids are the UTF-8 bytes of the text (vocabulary 256).

    For byte-level course models (``encode = list(text.encode("utf-8"))``) exported with
    :meth:`llmcourse.model.GPT.to_hf`: ``save_pretrained`` it next to the model, and tools that
    read Hugging Face folders (lm-evaluation-harness) tokenise exactly as the course does. It is
    a byte-level BPE with no merges: GPT-2's tokenizer before it learned anything.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {ch: b for b, ch in enumerate(_byte_chars())}
    backend = Tokenizer(models.BPE(vocab, []))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=backend)


# ----------------------------------------------------------------------------- association test


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T


def weat_effect_size(X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor,
                     B: torch.Tensor) -> float:
    """WEAT effect size (Caliskan et al., 2017) of target sets X, Y and attribute sets A, B.

    s(w) = mean cos(w, A) − mean cos(w, B); effect = (mean s(X) − mean s(Y)) / std s(X ∪ Y).
    """
    for name, t in (("X", X), ("Y", Y), ("A", A), ("B", B)):
        check_tensor(name, t, ndim=2, shape="(n, d)")
        if t.size(0) < 1 or t.size(1) < 1:
            raise ValueError(f"{name} must be a non-empty (n, d) tensor of embeddings, got "
                             f"{tuple(t.shape)}")
        if t.size(1) != X.size(1):
            raise ValueError(f"{name} must have the embedding size d={X.size(1)} of X, got "
                             f"{tuple(t.shape)}")
    s = lambda W: _cos(W, A).mean(1) - _cos(W, B).mean(1)  # noqa: E731
    sx, sy = s(X), s(Y)
    return float((sx.mean() - sy.mean()) / torch.cat([sx, sy]).std(unbiased=True))


def weat_permutation_p(X: torch.Tensor, Y: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                       n_permutations: int = 2000, seed: int = 0) -> float:
    """One-sided permutation p-value: how often a random re-split of X ∪ Y into two sets of the
    same sizes gives a test statistic at least as large as the observed one."""
    check_int("n_permutations", n_permutations, min=1)
    check_int("seed", seed, min=0)
    weat_effect_size(X, Y, A, B)  # validates
    W = torch.cat([X, Y])
    s = _cos(W, A).mean(1) - _cos(W, B).mean(1)
    nx = X.size(0)
    observed = s[:nx].sum() - s[nx:].sum()
    g = torch.Generator().manual_seed(seed)
    hits = 0
    for _ in range(n_permutations):
        perm = torch.randperm(W.size(0), generator=g)
        stat = s[perm[:nx]].sum() - s[perm[nx:]].sum()
        hits += int(stat >= observed - 1e-12)
    return (hits + 1) / (n_permutations + 1)


# ----------------------------------------------------------------------------- memorisation


@torch.no_grad()
def greedy_continue(model: torch.nn.Module, prefix: Sequence[int], n_tokens: int,
                    block_size: int | None = None) -> list[int]:
    """Greedy (argmax) continuation of ``prefix`` by ``n_tokens`` tokens."""
    check_module("model", model)
    check_int("n_tokens", n_tokens, min=0)
    ids = check_int_list("prefix", prefix, min=0)
    if not ids:
        raise ValueError("prefix must hold at least one token")
    if block_size is not None:
        check_int("block_size", block_size, min=1)
    else:
        block_size = getattr(getattr(model, "config", None), "block_size", None) or 10**9
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    for _ in range(n_tokens):
        x = torch.tensor([ids[-block_size:]], device=device)
        out = model(x)
        logits = out[0] if isinstance(out, tuple) else out
        ids.append(int(logits[0, -1].argmax()))
    model.train(was_training)
    return ids[len(prefix):]


def extraction_rate(model: torch.nn.Module, encode: Callable[[str], list[int]],
                    secrets: Sequence[str], prefix_chars: int) -> list[float]:
    """For each string, the share of its suffix (after ``prefix_chars`` characters) that greedy
    decoding from its prefix reproduces exactly, token by token from the start (1.0: extracted)."""
    check_module("model", model)
    check_callable("encode", encode, ": str -> list[int]")
    check_int("prefix_chars", prefix_chars, min=1)
    if isinstance(secrets, str) or not isinstance(secrets, Sequence):
        raise TypeError(f"secrets must be a list of strings, got {type(secrets).__name__}")
    rates = []
    for s in secrets:
        if not isinstance(s, str):
            raise TypeError(f"secrets must hold strings, got {type(s).__name__}")
        if len(s) <= prefix_chars:
            raise ValueError(f"secrets must each be longer than prefix_chars ({prefix_chars}), "
                             f"got {s!r}")
        p = check_int_list("encode(prefix)", encode(s[:prefix_chars]), min=0)
        rest = check_int_list("encode(suffix)", encode(s[prefix_chars:]), min=0)
        if not p or not rest:
            raise ValueError(f"encode must give at least one token for the prefix and for the "
                             f"suffix of each secret, got {len(p)} and {len(rest)} for {s!r}")
        got = greedy_continue(model, p, len(rest))
        k = 0
        while k < len(rest) and got[k] == rest[k]:
            k += 1
        rates.append(k / len(rest))
    return rates


def gradient_x_input(model: torch.nn.Module | None, embeds: torch.Tensor,
                     forward: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Gradient × input attribution per token: ``|sum_d grad_d · x_d|`` of a scalar output.

    ``forward(embeds)`` must return a scalar (e.g. a logit); ``embeds`` is (T, d) or (1, T, d).
    ``model`` (an ``nn.Module`` or ``None``) is the model ``forward`` runs; only checked.
    """
    if model is not None:  # forward does the work; model is there for the record
        check_module("model", model)
    check_tensor("embeds", embeds, ndim=(2, 3), dtype="float", shape="(T, d) or (1, T, d)")
    if embeds.dim() == 3 and embeds.size(0) != 1:
        raise ValueError(f"embeds must have shape (T, d) or (1, T, d), got {tuple(embeds.shape)}")
    check_callable("forward", forward, ": embeds -> scalar tensor")
    x = embeds.detach().clone().requires_grad_(True)
    out = forward(x)
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise ValueError("forward must return a scalar tensor")
    (grad,) = torch.autograd.grad(out.sum(), x)
    return (grad * x).sum(-1).abs().detach().reshape(-1)
