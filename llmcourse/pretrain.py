"""Pretrain a GPT (or a Llama-style model) from the command line.

    python -m llmcourse.pretrain --preset ci --out runs/ci              # seconds on a CPU
    python -m llmcourse.pretrain --preset cpu --out runs/cpu            # a laptop, minutes
    python -m llmcourse.pretrain --preset gpu --out runs/gpu            # ~10 M params, T4: minutes
    python -m llmcourse.pretrain --preset gpt2-124m --out runs/124m     # GPT-2 small, a real GPU
    python -m llmcourse.pretrain --preset cpu --out runs/cpu --resume   # continue where it stopped
    python -m llmcourse.pretrain --preset ci --arch llama --out runs/llama  # RoPE, RMSNorm, SwiGLU, GQA
    torchrun --nproc_per_node=4 -m llmcourse.pretrain --preset gpu --out runs/ddp   # DDP
    torchrun --nproc_per_node=8 -m llmcourse.pretrain --preset gpt2-124m --strategy fsdp --out runs/fsdp

Writes ``OUT/metrics.jsonl``, ``OUT/checkpoints/step_*/``, ``OUT/tokenizer.json``,
``OUT/data/{train,val}.bin`` (the tokenised corpus, memory-mapped; ``OUT/data/source.json``
records what made it, and it is reused only by a run that would make the same: see
:func:`prepare_data`), and at the end ``OUT/model.safetensors`` + ``OUT/config.json`` and ``OUT/hf/`` (a Hugging Face
``GPT2LMHeadModel``, or with ``--arch llama`` a ``LlamaForCausalLM``, + tokenizer:
``AutoModelForCausalLM.from_pretrained("OUT/hf")``).

The corpus: ``ci`` trains on 200,000 characters of the language reference; ``cpu``, ``gpu`` and
``gpt2-124m`` on the standard library's source code (``"python-stdlib-code"``, ~12 MB) offline,
and with ``LLMCOURSE_ONLINE=1`` on a streamed, cached budget of a hub corpus instead
(``cpu``: 5 M tokens of TinyStories; ``gpu``: 100 M and ``gpt2-124m``: 350 M tokens of
FineWeb-Edu; tokens counted as UTF-8 bytes / 4, see :func:`llmcourse.data.load_corpus`):
:func:`corpus_plan`. Before training, every run prints one line (:func:`run_plan`): the corpus
and its copy, its tokens (by the run's own tokenizer), the tokens the run will see and so the
epochs, the parameters and the tokens per parameter; ``--quiet`` prints nothing, and the summary
``main`` returns holds the same figures (``"plan"``, ``"plan_line"``).

The tokenizer is a byte-level BPE trained on the corpus with Hugging Face ``tokenizers``
(deterministic, well under a second); the model is :class:`llmcourse.model.GPT` or, with
``--arch llama``, :class:`llmcourse.llama.Llama` of the same depth and width (half as many
key/value heads as query heads, a SwiGLU of ⅔·4·d rounded to 32: about GPT's parameters).

``--resume`` refuses a run that differs from the checkpoint's (another preset, ``--max-steps``,
``--seed``, ``--arch`` …: see :mod:`llmcourse.train.checkpoint`); ``--allow-change max_steps``
(repeatable) accepts an intended change, e.g. extending a ``wsd`` run.

Why one module of about 560 lines: ``python -m llmcourse.pretrain`` is one program, read top to
bottom in the order a run goes (preset → corpus plan → tokenised data → model → training →
export); splitting it would send the reader of a single command across files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from llmcourse._checks import check_path
from llmcourse._io import atomic_write_text, fsync_path, remove_stale_temps
from llmcourse.data import (
    CORPORA,
    HUB_CORPORA,
    ONLINE_CORPORA,
    open_token_file,
    token_stream,
    tokenize_dataset,
    train_bpe,
    write_token_file,
)
from llmcourse.train import TrainConfig, Trainer, config_fields, list_checkpoints, save_weights
from llmcourse.train.checkpoint import _ResumeMismatch


@dataclass(frozen=True)
class Preset:
    """Sizes of one pretraining run."""

    corpus: tuple[str, ...]
    corpus_chars: int | None
    vocab_size: int  # BPE vocabulary to train
    model_vocab: int | None  # pad the embedding to this (None: the tokenizer's size)
    n_layer: int
    n_head: int
    n_embd: int
    block_size: int
    batch_size: int
    grad_accum: int
    max_steps: int
    lr: float
    warmup_steps: int
    eval_every: int
    eval_iters: int
    ckpt_every: int
    log_every: int
    dropout: float = 0.0
    precision: str = "auto"
    compile: bool = False
    #: with LLMCOURSE_ONLINE=1, train on this online corpus instead of ``corpus`` ...
    online_corpus: str | None = None
    #: ... cut to this budget (``load_corpus(online_corpus, max_tokens=...)``; hub corpora need one)
    online_tokens: int | None = None

    def __post_init__(self) -> None:
        from llmcourse._checks import check_bool, check_choice, check_int, check_number

        if isinstance(self.corpus, str) or not isinstance(self.corpus, tuple) or not self.corpus:
            raise TypeError(f"Preset.corpus must be a non-empty tuple of corpus names, got "
                            f"{self.corpus!r}")
        for name in self.corpus:
            check_choice("Preset.corpus", name, CORPORA)
        if self.corpus_chars is not None:
            check_int("Preset.corpus_chars", self.corpus_chars, min=1)
        check_int("Preset.vocab_size", self.vocab_size, min=258)
        if self.model_vocab is not None:
            check_int("Preset.model_vocab", self.model_vocab, min=self.vocab_size)
        for name in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "grad_accum",
                     "max_steps", "eval_iters", "log_every"):
            check_int(f"Preset.{name}", getattr(self, name), min=1)
        for name in ("warmup_steps", "eval_every", "ckpt_every"):
            check_int(f"Preset.{name}", getattr(self, name), min=0)
        check_number("Preset.lr", self.lr, min=0, min_open=True)
        check_number("Preset.dropout", self.dropout, min=0, max=1, max_open=True)
        check_choice("Preset.precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        check_bool("Preset.compile", self.compile)
        if self.online_corpus is not None:
            check_choice("Preset.online_corpus", self.online_corpus,
                         (*ONLINE_CORPORA, *HUB_CORPORA))
        if self.online_tokens is not None:
            check_int("Preset.online_tokens", self.online_tokens, min=1)
            if self.online_corpus is None:
                raise ValueError("Preset.online_tokens is the budget of Preset.online_corpus, "
                                 "which is None")
        if self.online_corpus in HUB_CORPORA and self.online_tokens is None:
            raise ValueError(f"Preset.online_tokens is required with the hub corpus "
                             f"{self.online_corpus!r} (it is streamed up to that budget)")


PRESETS: dict[str, Preset] = {
    "ci": Preset(corpus=("python-reference",), corpus_chars=200_000, vocab_size=512, model_vocab=None,
                 n_layer=2, n_head=2, n_embd=64, block_size=64, batch_size=16, grad_accum=1,
                 max_steps=60, lr=3e-3, warmup_steps=10, eval_every=30, eval_iters=4,
                 ckpt_every=30, log_every=10),
    # sees 1,000 x 32 x 128 = 4.1 M tokens: about one epoch of either corpus
    "cpu": Preset(corpus=("python-stdlib-code",), corpus_chars=None, vocab_size=2048,
                  model_vocab=None, n_layer=4, n_head=4, n_embd=128, block_size=128,
                  batch_size=32, grad_accum=1, max_steps=1_000, lr=2e-3, warmup_steps=50,
                  eval_every=100, eval_iters=20, ckpt_every=200, log_every=20,
                  online_corpus="tinystories", online_tokens=5_000_000),
    # sees 5,000 x 64 x 256 = 82 M tokens: one epoch online, many of the 12 MB offline corpus
    "gpu": Preset(corpus=("python-stdlib-code",), corpus_chars=None,
                  vocab_size=8192, model_vocab=None, n_layer=6, n_head=6, n_embd=384,
                  block_size=256, batch_size=64, grad_accum=1, max_steps=5_000, lr=1e-3,
                  warmup_steps=200, eval_every=250, eval_iters=50, ckpt_every=1_000,
                  log_every=50, dropout=0.1, compile=True,
                  online_corpus="fineweb-edu", online_tokens=100_000_000),
    # sees 5,000 x 16 x 1,024 x 4 = 328 M tokens: about one epoch online
    "gpt2-124m": Preset(corpus=("python-stdlib-code",), corpus_chars=None,
                        vocab_size=50257, model_vocab=50304, n_layer=12, n_head=12, n_embd=768,
                        block_size=1024, batch_size=16, grad_accum=4, max_steps=5_000, lr=6e-4,
                        warmup_steps=200, eval_every=500, eval_iters=20, ckpt_every=1_000,
                        log_every=10, compile=True,
                        online_corpus="fineweb-edu", online_tokens=350_000_000),
}


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


VAL_FRACTION = 0.1
_DATA_FILES = ("train.bin", "train.bin.json", "val.bin", "val.bin.json", "source.json")
_OUT_FILES = ("tokenizer.json", "config.json", "model.safetensors")


def corpus_plan(preset: Preset, online: bool | None = None) -> dict:
    """Which corpus a run of ``preset`` trains on, and which copy: ``"online"`` (the preset's
    ``online_corpus`` at its budget, when ``online`` or, with ``online=None``,
    :func:`llmcourse.env.online`) or ``"offline"`` (its ``corpus``). ``source`` says where the
    text comes from: the hub repository at its pinned commit, the download URL, or the Python
    version whose standard library the offline corpora are made of (their text depends on it)."""
    import platform

    from llmcourse._checks import check_bool
    from llmcourse.data import hub_revision
    from llmcourse.env import online as env_online

    if not isinstance(preset, Preset):
        raise TypeError(f"preset must be a Preset, got {type(preset).__name__}")
    use_online = env_online() if online is None else check_bool("online", online)
    if use_online and preset.online_corpus is not None:
        name = preset.online_corpus
        if name in HUB_CORPORA:
            spec = HUB_CORPORA[name]
            source = f"{spec.repo}{'/' + spec.config if spec.config else ''}@{hub_revision(name)}"
        else:
            source = ONLINE_CORPORA[name][0]
        return {"copy": "online", "corpus": [name], "max_tokens": preset.online_tokens,
                "corpus_chars": preset.corpus_chars, "source": [source]}
    return {"copy": "offline", "corpus": list(preset.corpus), "max_tokens": None,
            "corpus_chars": preset.corpus_chars,
            "source": [ONLINE_CORPORA[n][0] if n in ONLINE_CORPORA
                       else f"CPython {platform.python_version()}" for n in preset.corpus]}


def data_key(preset: Preset, online: bool | None = None) -> dict:
    """What makes a run's tokenised data: the corpus (:func:`corpus_plan`: names, copy, source,
    budget) and its cut, the tokenizer and the vocabulary, the split, the block size. Two
    presets with the same key make the same data."""
    plan = corpus_plan(preset, online)
    return {"format": 2, "corpus": plan["corpus"], "copy": plan["copy"], "source": plan["source"],
            "max_tokens": plan["max_tokens"], "corpus_chars": preset.corpus_chars,
            "tokenizer": "byte-level BPE (tokenizers) trained on the documents, <|endoftext|> = 0",
            "vocab_size": preset.vocab_size, "block_size": preset.block_size,
            "documents": "paragraphs", "val_fraction": VAL_FRACTION}


def run_plan(n_train_tokens: int, tokens_per_step: int, max_steps: int, n_params: int) -> dict:
    """The arithmetic of a run: ``run_tokens = tokens_per_step * max_steps``, ``epochs =
    run_tokens / n_train_tokens`` (passes over the training split) and ``tokens_per_param =
    run_tokens / n_params`` (Chinchilla's compute-optimal is about 20).

    ``tokens_per_step`` is the global batch: ``batch_size * block_size * grad_accum`` (the
    course's batch size is global: under torchrun each process takes its slice of it, so the
    number of processes does not multiply it).

    >>> run_plan(1_000, 100, 30, 150)["epochs"]
    3.0
    """
    from llmcourse._checks import check_int

    n_train_tokens = check_int("n_train_tokens", n_train_tokens, min=1)
    tokens_per_step = check_int("tokens_per_step", tokens_per_step, min=1)
    max_steps = check_int("max_steps", max_steps, min=1)
    n_params = check_int("n_params", n_params, min=1)
    run_tokens = tokens_per_step * max_steps
    return {"train_tokens": n_train_tokens, "tokens_per_step": tokens_per_step,
            "max_steps": max_steps, "run_tokens": run_tokens,
            "epochs": run_tokens / n_train_tokens, "params": n_params,
            "tokens_per_param": run_tokens / n_params}


def _human(n: float) -> str:
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.3g} {unit}"
    return f"{n:.3g}"


def plan_line(corpus: dict, plan: dict, *, val_tokens: int, preset: Preset, processes: int = 1) -> str:
    """The line a run prints before training: corpus, copy, tokens, epochs, parameters."""
    names = " + ".join(corpus["corpus"])
    budget = f", budget {corpus['max_tokens']:,} tokens (UTF-8 bytes/4)" if corpus["max_tokens"] else ""
    cut = f", first {corpus['corpus_chars']:,} chars" if corpus["corpus_chars"] else ""
    procs = f", split over {processes} processes" if processes > 1 else ""
    return (f"pretrain: corpus {names} ({corpus['copy']} copy: {', '.join(corpus['source'])}"
            f"{budget}{cut}): {plan['train_tokens'] + val_tokens:,} tokens ({plan['train_tokens']:,} "
            f"train, {val_tokens:,} val); the run sees {plan['max_steps']:,} steps x "
            f"{preset.batch_size} batch x {preset.block_size} block x {preset.grad_accum} accum"
            f"{procs} = {plan['run_tokens']:,} tokens = {plan['epochs']:.3g} epochs; model "
            f"{_human(plan['params'])} parameters, {plan['tokens_per_param']:.3g} tokens per "
            "parameter")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cache_problem(preset: Preset, out: Path) -> str | None:
    """Why ``out``'s tokenised data cannot be reused for ``preset`` (``None``: it can). The
    data is reused only when ``data/source.json`` holds this preset's :func:`data_key`, the
    tokenizer is the one it names (sha256) and both token files read back whole."""
    tok_path, data, source = out / "tokenizer.json", out / "data", out / "data" / "source.json"
    if not source.is_file():
        return "data/source.json (what made the data) is missing"
    try:
        info = json.loads(source.read_text(encoding="utf-8"))
        saved, digest = info["key"], info["tokenizer_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"data/source.json cannot be read ({err})"
    now = data_key(preset)
    if saved != now:
        return "it was made for another preset: " + ", ".join(
            f"{k} {saved.get(k)!r} -> {now.get(k)!r}" for k in now if saved.get(k) != now.get(k))
    if not tok_path.is_file() or _sha256(tok_path) != digest:
        return "tokenizer.json is not the tokenizer the data was made with"
    for name in ("train.bin", "val.bin"):
        try:
            open_token_file(data / name)
        except ValueError as err:
            return f"data/{name} cannot be read ({err})"
    return None


def prepare_data(preset: Preset, out: str | Path):
    """Train (or reload) the tokenizer and tokenise the corpus into ``out/data/{train,val}.bin``.

    The corpus is :func:`corpus_plan`'s (an online budget is streamed once and cached, see
    :func:`llmcourse.data.load_corpus`). Documents are the corpus's paragraphs (``"\\n\\n"``
    apart); the tokenizer is trained on the training split's; the last 10% of the text is
    the validation split.
    What made the data (:func:`data_key`, the tokenizer's sha256) is stored in
    ``out/data/source.json``, written last; data is reused only when it matches this preset,
    so a ``--preset cpu`` run never trains on the ``ci`` data left in its folder. Otherwise it
    is rebuilt, with a line on stderr saying why (when there was data to replace). Returns
    ``(tokenizer, train_tokens, val_tokens)`` (the token arrays are memory-mapped).
    """
    from tokenizers import Tokenizer

    from llmcourse.data import load_corpus, train_val_split

    key = data_key(preset)
    out = check_path("out", out)
    tok_path, data = out / "tokenizer.json", out / "data"
    problem = _cache_problem(preset, out)
    if problem is None:
        return (Tokenizer.from_file(str(tok_path)), open_token_file(data / "train.bin"),
                open_token_file(data / "val.bin"))
    if any((data / name).exists() for name in _DATA_FILES):
        print(f"prepare_data: rebuilding {data}: {problem}", file=sys.stderr, flush=True)
    data.mkdir(parents=True, exist_ok=True)
    (data / "source.json").unlink(missing_ok=True)  # no old key next to half-new data
    remove_stale_temps(data, _DATA_FILES)
    remove_stale_temps(out, _OUT_FILES)
    fsync_path(data)
    corpus = corpus_plan(preset)
    text = "\n\n".join(load_corpus(name, max_tokens=corpus["max_tokens"])
                       for name in corpus["corpus"])
    if preset.corpus_chars is not None:
        text = text[:preset.corpus_chars]
    train_text, val_text = train_val_split(text, val_fraction=VAL_FRACTION)
    del text
    parts = {name: [d for d in part.split("\n\n") if d.strip()]
             for name, part in (("train", train_text), ("val", val_text))}
    del train_text, val_text
    tok = train_bpe(parts["train"], vocab_size=preset.vocab_size)  # documents: in parallel
    vocab = tok.get_vocab_size()
    for name, docs in parts.items():
        ids = tokenize_dataset(docs, tok)
        write_token_file(token_stream(ids), data / f"{name}.bin", vocab_size=max(vocab, 2))
    _atomic_text(tok_path, tok.to_str())
    made = {"key": key, "tokenizer_sha256": _sha256(tok_path),
            "preset": next((n for n, p in PRESETS.items() if data_key(p) == key), None),
            "python": sys.version.split()[0]}
    atomic_write_text(data / "source.json", json.dumps(made, indent=2))  # last: the data is whole
    return tok, open_token_file(data / "train.bin"), open_token_file(data / "val.bin")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m llmcourse.pretrain", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="ci", help="run size (default: ci)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--max-steps", type=int, default=None, help="optimiser steps (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the model and the data order")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --out")
    p.add_argument("--stop-at", type=int, default=None,
                   help="stop after this step as if interrupted (the schedule still spans --max-steps)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: the best available)")
    p.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--compile", dest="compile", action="store_true", default=None)
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--arch", default="gpt", choices=ARCHS,
                   help="GPT-2 (llmcourse.model) or Llama-style (llmcourse.llama); default gpt")
    p.add_argument("--strategy", default="ddp", choices=["ddp", "fsdp"],
                   help="under torchrun: replicate (ddp) or shard (fsdp) the model")
    p.add_argument("--allow-change", action="append", default=[], metavar="SETTING",
                   help="with --resume, accept this setting changed from the checkpoint's (a "
                        "TrainConfig field such as max_steps, or model.<key>); repeatable")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    return p


ARCHS = ("gpt", "llama")


def build_model(preset: Preset, vocab_size: int, arch: str = "gpt") -> torch.nn.Module:
    """The model of a run: a :class:`~llmcourse.model.GPT` or, for ``arch="llama"``, a
    :class:`~llmcourse.llama.Llama` of the same depth, width and context, with RoPE, RMSNorm,
    half as many key/value heads as query heads (when ``n_head`` is even), a SwiGLU of
    ⅔·4·``n_embd`` rounded up to 32, and, like GPT and the small Llamas (SmolLM2), a tied head,
    so that both have about the same parameters. Seed before calling it."""
    from llmcourse._checks import check_choice, check_int

    if not isinstance(preset, Preset):
        raise TypeError(f"preset must be a Preset, got {type(preset).__name__}")
    check_int("vocab_size", vocab_size, min=1)
    check_choice("arch", arch, ARCHS)
    if arch == "gpt":
        from llmcourse.model import GPT, GPTConfig

        return GPT(GPTConfig(vocab_size=vocab_size, block_size=preset.block_size,
                             n_layer=preset.n_layer, n_head=preset.n_head, n_embd=preset.n_embd,
                             dropout=preset.dropout))
    from llmcourse.llama import Llama, LlamaConfig

    n_kv_head = preset.n_head // 2 if preset.n_head % 2 == 0 else preset.n_head
    return Llama(LlamaConfig(vocab_size=vocab_size, block_size=preset.block_size,
                             n_layer=preset.n_layer, n_head=preset.n_head, n_embd=preset.n_embd,
                             n_kv_head=n_kv_head, multiple_of=32, tie_word_embeddings=True,
                             dropout=preset.dropout))


def _check_checkpoint_arch(model: torch.nn.Module, out: Path, arch: str) -> None:
    """Stop with a clear message when --resume finds checkpoints of another --arch."""
    from safetensors import safe_open

    for ckpt in reversed(list_checkpoints(out)):
        try:
            with safe_open(str(ckpt / "model.safetensors"), framework="pt") as f:
                saved = set(f.keys())
            break
        except Exception:  # noqa: BLE001, S112 - damaged: the Trainer warns and skips it
            continue
    else:
        return
    if not saved <= set(model.state_dict()):
        raise SystemExit(f"{out} holds checkpoints of another model than --arch {arch} "
                         "(pass the --arch it was started with)")


def main(argv: list[str] | None = None) -> dict:
    """Run the CLI; returns a summary dict (steps, final losses, paths)."""
    from llmcourse.data import make_get_batch
    from llmcourse.env import seed_everything

    if argv is not None and (isinstance(argv, str) or not isinstance(argv, (list, tuple))
                             or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str (command-line arguments), got {argv!r}")
    args = build_parser().parse_args(argv)
    preset = PRESETS[args.preset]
    for name in args.allow_change:
        if name not in config_fields() and not name.startswith("model."):
            raise SystemExit(f"--allow-change {name!r}: not a TrainConfig field ("
                             f"{', '.join(config_fields())}) or model.<key>")
    if args.allow_change and not args.resume:
        raise SystemExit("--allow-change only applies with --resume")
    if args.max_steps is not None:
        if args.max_steps <= 0:
            raise SystemExit(f"--max-steps must be positive, got {args.max_steps}")
        preset = replace(preset, max_steps=args.max_steps,
                         warmup_steps=min(preset.warmup_steps, max(1, args.max_steps // 10)),
                         eval_every=min(preset.eval_every, args.max_steps),
                         ckpt_every=min(preset.ckpt_every, args.max_steps))
    if args.seed < 0:
        raise SystemExit(f"--seed must be >= 0, got {args.seed}")
    if args.stop_at is not None and not 0 < args.stop_at <= preset.max_steps:
        raise SystemExit(f"--stop-at must be in [1, max_steps={preset.max_steps}], got {args.stop_at}")
    out = Path(args.out)
    if not args.resume and list_checkpoints(out):
        raise SystemExit(f"{out} already holds checkpoints: pass --resume to continue, or another --out")
    if list_checkpoints(out) and (out / "data" / "source.json").is_file():
        problem = _cache_problem(preset, out)  # the checkpoints' data position needs their data
        if problem is not None and problem.startswith("it was made for another preset"):
            raise SystemExit(f"--resume: the checkpoints in {out} belong to a run whose data "
                             f"{problem[len('it was '):]}; pass the --preset it was started "
                             "with, or another --out")
    out.mkdir(parents=True, exist_ok=True)
    if args.quiet:
        import datasets

        datasets.disable_progress_bars()
    from llmcourse.train import setup_distributed

    device_type = torch.device(args.device).type if args.device else (
        "cuda" if torch.cuda.is_available() else "cpu")
    dist_info = setup_distributed(device_type)  # no-op in a single process
    if dist_info.is_main:  # what a killed export left (checkpoints: the Trainer cleans them)
        remove_stale_temps(out, _OUT_FILES)
    if dist_info.enabled:  # rank 0 tokenises; the others wait, then read its files
        import torch.distributed as dist

        if dist_info.is_main:
            prepare_data(preset, out)
        dist.barrier()
    tok, train_tokens, val_tokens = prepare_data(preset, out)
    vocab = preset.model_vocab or tok.get_vocab_size()
    seed_everything(args.seed)
    model = build_model(preset, vocab, args.arch)
    if args.resume:
        _check_checkpoint_arch(model, out, args.arch)
    corpus = corpus_plan(preset)
    plan = run_plan(len(train_tokens), preset.batch_size * preset.block_size * preset.grad_accum,
                    preset.max_steps, sum(p.numel() for p in model.parameters()))
    line = plan_line(corpus, plan, val_tokens=len(val_tokens), preset=preset,
                     processes=dist_info.world_size)
    if not args.quiet and dist_info.is_main:
        print(line, flush=True)
    cfg = TrainConfig(
        max_steps=preset.max_steps, lr=preset.lr, warmup_steps=preset.warmup_steps,
        grad_accum=preset.grad_accum, precision=args.precision or preset.precision,
        compile=preset.compile if args.compile is None else args.compile,
        eval_every=preset.eval_every, eval_iters=preset.eval_iters, log_every=preset.log_every,
        ckpt_every=preset.ckpt_every, keep_last=2, out_dir=str(out), seed=args.seed,
        progress=not args.quiet, device=args.device, strategy=args.strategy,
        resume_allow=tuple(args.allow_change))
    if cfg.compile and (args.device or ("cuda" if torch.cuda.is_available() else "cpu")) == "cpu":
        cfg = replace(cfg, compile=False)  # compiling a tiny CPU model costs more than it saves
    try:
        trainer = Trainer(model, cfg, make_get_batch(train_tokens, preset.batch_size,
                                                     preset.block_size),
                          val_data=make_get_batch(val_tokens, preset.batch_size, preset.block_size),
                          resume=args.resume)
    except _ResumeMismatch as err:
        raise SystemExit(f"{err.args[0].split('. Resume with')[0]}. Pass the options it was "
                         "started with, or --allow-change NAME for each intended change "
                         f"({', '.join(err.names)})") from err
    start = trainer.state.step
    records = trainer.fit(until=args.stop_at)
    if args.stop_at is not None and args.stop_at < preset.max_steps and not (
            trainer.state.last_checkpoint or "").endswith(f"{args.stop_at:06d}"):
        trainer.save_checkpoint()  # an interruption at a step that was not a checkpoint
    summary = {"preset": args.preset, "arch": args.arch, "start_step": start, "step": trainer.state.step,
               "tokens": trainer.state.tokens, "out": str(out),
               "train_loss": next((r["loss"] for r in reversed(records) if r["kind"] == "train"), None),
               "val_loss": next((r["val_loss"] for r in reversed(records) if r["kind"] == "eval"), None),
               "plan": {"corpus": corpus["corpus"], "copy": corpus["copy"],
                        "source": corpus["source"], "max_tokens": corpus["max_tokens"],
                        "corpus_tokens": plan["train_tokens"] + len(val_tokens),
                        "val_tokens": len(val_tokens), **plan},
               "plan_line": line}
    if trainer.state.step == preset.max_steps:
        full = trainer.full_model()  # under FSDP a collective; the model on rank 0
        if trainer.dist.is_main:
            export(full, tok, out)
            summary["model"] = str(out / "model.safetensors")
    if trainer.dist.enabled:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    if not args.quiet and trainer.dist.is_main:
        print(json.dumps(summary))
    return summary


def export(model, tokenizer, out: str | Path) -> None:
    """Write ``model.safetensors`` + ``config.json`` and a Hugging Face copy in ``out/hf``."""
    from llmcourse._checks import check_module

    check_module("model", model)
    if not callable(getattr(tokenizer, "token_to_id", None)):
        raise TypeError("tokenizer must be a tokenizers.Tokenizer (see prepare_data), got "
                        f"{type(tokenizer).__name__}")
    if not hasattr(getattr(model, "config", None), "to_dict"):
        raise TypeError(f"model must have a .config with to_dict() (GPT, Llama), got "
                        f"{type(model).__name__}")
    out = check_path("out", out)
    save_weights(model, out / "model.safetensors")
    _atomic_text(out / "config.json", json.dumps(
        {"model": f"{type(model).__module__}.{type(model).__qualname__}",
         "config": model.config.to_dict(),
         "tokenizer": "tokenizer.json"}, indent=2))
    from transformers import PreTrainedTokenizerFast

    from llmcourse.data import EOS

    hf = model.to_hf() if hasattr(model, "to_hf") else None
    if hf is not None:
        hf.config.eos_token_id = hf.config.bos_token_id = tokenizer.token_to_id(EOS)
        hf.save_pretrained(out / "hf")
        PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS,
                                model_max_length=model.config.block_size).save_pretrained(out / "hf")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
