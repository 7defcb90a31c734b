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

The tokenizer is a byte-level BPE trained on the corpus with Hugging Face ``tokenizers``
(deterministic, well under a second); the model is :class:`llmcourse.model.GPT` or, with
``--arch llama``, :class:`llmcourse.llama.Llama` of the same depth and width (half as many
key/value heads as query heads, a SwiGLU of ⅔·4·d rounded to 32: about GPT's parameters).

``--resume`` refuses a run that differs from the checkpoint's (another preset, ``--max-steps``,
``--seed``, ``--arch`` …: see :mod:`llmcourse.train.checkpoint`); ``--allow-change max_steps``
(repeatable) accepts an intended change, e.g. extending a ``wsd`` run.
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


PRESETS: dict[str, Preset] = {
    "ci": Preset(corpus=("python-reference",), corpus_chars=200_000, vocab_size=512, model_vocab=None,
                 n_layer=2, n_head=2, n_embd=64, block_size=64, batch_size=16, grad_accum=1,
                 max_steps=60, lr=3e-3, warmup_steps=10, eval_every=30, eval_iters=4,
                 ckpt_every=30, log_every=10),
    "cpu": Preset(corpus=("python-reference",), corpus_chars=None, vocab_size=2048, model_vocab=None,
                  n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=32, grad_accum=1,
                  max_steps=1_000, lr=2e-3, warmup_steps=50, eval_every=100, eval_iters=20,
                  ckpt_every=200, log_every=20),
    "gpu": Preset(corpus=("python-reference", "python-docstrings"), corpus_chars=None,
                  vocab_size=8192, model_vocab=None, n_layer=6, n_head=6, n_embd=384,
                  block_size=256, batch_size=64, grad_accum=1, max_steps=5_000, lr=1e-3,
                  warmup_steps=200, eval_every=250, eval_iters=50, ckpt_every=1_000,
                  log_every=50, dropout=0.1, compile=True),
    "gpt2-124m": Preset(corpus=("python-reference", "python-docstrings"), corpus_chars=None,
                        vocab_size=50257, model_vocab=50304, n_layer=12, n_head=12, n_embd=768,
                        block_size=1024, batch_size=16, grad_accum=4, max_steps=5_000, lr=6e-4,
                        warmup_steps=200, eval_every=500, eval_iters=20, ckpt_every=1_000,
                        log_every=10, compile=True),
}


def _atomic_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


VAL_FRACTION = 0.1
_DATA_FILES = ("train.bin", "train.bin.json", "val.bin", "val.bin.json", "source.json")
_OUT_FILES = ("tokenizer.json", "config.json", "model.safetensors")


def data_key(preset: Preset) -> dict:
    """What makes a run's tokenised data: the corpus and its cut, the tokenizer and the
    vocabulary, the split, the block size. Two presets with the same key make the same data."""
    if not isinstance(preset, Preset):
        raise TypeError(f"preset must be a Preset, got {type(preset).__name__}")
    return {"format": 1, "corpus": list(preset.corpus), "corpus_chars": preset.corpus_chars,
            "tokenizer": "byte-level BPE (tokenizers), <|endoftext|> = 0",
            "vocab_size": preset.vocab_size, "block_size": preset.block_size,
            "documents": "paragraphs", "val_fraction": VAL_FRACTION}


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

    Documents are the corpus's paragraphs; the last 10% of the text is the validation split.
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
    text = "\n\n".join(load_corpus(name) for name in preset.corpus)
    if preset.corpus_chars is not None:
        text = text[:preset.corpus_chars]
    train_text, val_text = train_val_split(text, val_fraction=VAL_FRACTION)
    tok = train_bpe(train_text, vocab_size=preset.vocab_size)
    vocab = tok.get_vocab_size()
    for name, part in (("train", train_text), ("val", val_text)):
        docs = [d for d in part.split("\n\n") if d.strip()]
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
               "val_loss": next((r["val_loss"] for r in reversed(records) if r["kind"] == "eval"), None)}
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
