"""Training throughput of the course's Llama (``llmcourse.llama``) on a GPU, with the Trainer.

    python benchmarks/llama_gpu.py --json llama.json                 # ~GPT-2-small-sized Llama
    python benchmarks/llama_gpu.py --compile --steps 40

``llmcourse.llama`` is newer than this script, so the script finds its classes by name (a config
class whose name ends in ``Config`` and a model class taking it) and fills in only the config
fields it has, from common spellings (``n_layer``/``n_layers``, ``n_embd``/``dim``/``d_model``
…). A model that returns only logits is wrapped so that it returns ``(logits, loss)``, the
Trainer's contract. If the module is missing or cannot be built this way the script says why and
exits with status 3 (``gpu_check.sh`` records it as skipped). ``--device cpu --size tiny`` is a
dry run.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import inspect
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from llmcourse.train import TrainConfig, Trainer

SKIP = 3  # exit status: nothing to measure
# one value per concept, under the names a Llama config is likely to use
SIZES = {
    "small": dict(layers=12, heads=12, kv_heads=4, width=768, ffn=2048, vocab=32000),
    "tiny": dict(layers=2, heads=2, kv_heads=1, width=64, ffn=128, vocab=256),
}
SPELLINGS = {
    "layers": ("n_layer", "n_layers", "num_layers", "num_hidden_layers"),
    "heads": ("n_head", "n_heads", "num_heads", "num_attention_heads"),
    "kv_heads": ("n_kv_head", "n_kv_heads", "num_kv_heads", "num_key_value_heads", "n_kv"),
    "width": ("n_embd", "dim", "d_model", "hidden_size", "embed_dim"),
    "ffn": ("d_ff", "ffn_dim", "ffn_hidden", "intermediate_size", "hidden_dim", "mlp_dim"),
    "vocab": ("vocab_size", "n_vocab"),
    "block": ("block_size", "max_seq_len", "seq_len", "context_length", "max_position_embeddings"),
    "dropout": ("dropout", "dropout_p"),
}


class WithLoss(nn.Module):
    """Adds next-token cross-entropy to a model that returns only logits (B, T, V)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        out = self.model(idx)
        logits = out[0] if isinstance(out, (tuple, list)) else out  # (B, T, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


def config_fields(cls: type) -> set[str]:
    """Names a config class accepts (dataclass fields or ``__init__`` parameters)."""
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls) if f.init}
    return set(inspect.signature(cls).parameters) - {"self", "args", "kwargs"}


def build(size: str, block: int) -> tuple[nn.Module, str]:
    """Build the course's Llama at ``size``; return ``(model, description)``.

    Raises ``LookupError`` (with the reason) when ``llmcourse.llama`` is absent or has no
    config/model pair this script can fill in.
    """
    try:
        mod = importlib.import_module("llmcourse.llama")
    except ModuleNotFoundError as err:
        raise LookupError(f"llmcourse.llama is not in this checkout ({err})") from None
    classes = {n: c for n, c in vars(mod).items() if inspect.isclass(c) and c.__module__ == mod.__name__}
    configs = [c for n, c in classes.items() if n.endswith("Config")]
    models = [c for c in classes.values() if issubclass(c, nn.Module)]
    if not configs or not models:
        raise LookupError(f"llmcourse.llama has no *Config class and nn.Module pair: {sorted(classes)}")
    values = {**SIZES[size], "block": block, "dropout": 0.0}
    errors = []
    for cfg_cls in configs:
        accepted = config_fields(cfg_cls)
        kwargs = {}
        for concept, names in SPELLINGS.items():
            for name in names:
                if name in accepted:
                    kwargs[name] = values[concept]
                    break
        try:
            cfg = cfg_cls(**kwargs)
        except (TypeError, ValueError) as err:
            errors.append(f"{cfg_cls.__name__}({kwargs}): {err}")
            continue
        # the whole model first: "Llama", then other "Llama…" classes, then the rest
        for model_cls in sorted(models, key=lambda c: (c.__name__ != "Llama",
                                                      not c.__name__.startswith("Llama"),
                                                      c.__name__)):
            try:
                model = model_cls(cfg)
            except (TypeError, ValueError) as err:
                errors.append(f"{model_cls.__name__}(cfg): {err}")
                continue
            return model, f"{model_cls.__name__}({cfg_cls.__name__}({kwargs}))"
    raise LookupError("could not build a Llama from llmcourse.llama: " + "; ".join(errors))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--size", default="small", choices=sorted(SIZES))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    for name in ("steps", "log_every", "batch_size", "block_size"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.steps <= args.log_every:
        ap.error("--steps must exceed --log-every (the first logging window is skipped)")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda but CUDA is not available")
    t_start = time.perf_counter()
    torch.set_float32_matmul_precision("high")
    torch.manual_seed(0)
    try:
        model, what = build(args.size, args.block_size)
    except LookupError as err:
        print(f"llama: skipped: {err}")
        if args.json is not None:
            args.json.write_text(json.dumps({"skipped": str(err)}, indent=1))
        sys.exit(SKIP)
    vocab, bs, block = SIZES[args.size]["vocab"], args.batch_size, args.block_size
    probe = torch.randint(vocab, (1, 8))
    with torch.no_grad():
        out = model(probe, probe) if "targets" in inspect.signature(model.forward).parameters \
            else model(probe)
    if not (isinstance(out, (tuple, list)) and len(out) >= 2 and isinstance(out[1], torch.Tensor)):
        model = WithLoss(model)

    def get_batch(generator: torch.Generator):
        x = torch.randint(vocab, (bs, block + 1), generator=generator)
        return x[:, :-1], x[:, 1:]

    cfg = TrainConfig(max_steps=args.steps, lr=3e-4, warmup_steps=5, log_every=args.log_every,
                      compile=args.compile, progress=False, device=args.device)
    trainer = Trainer(model, cfg, get_batch)
    recs = [r for r in trainer.fit() if r["kind"] == "train"][1:]
    tps = statistics.median(r["tokens_per_s"] for r in recs)
    result = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "gpu": torch.cuda.get_device_name(trainer.device) if args.device == "cuda" else "cpu",
        "model": what, "params": sum(p.numel() for p in model.parameters()),
        "flops_per_token": "model.flops_per_token" if hasattr(model, "flops_per_token") else "6N",
        "precision": trainer.precision, "compile": args.compile, "batch_size": bs,
        "block_size": block, "steps": args.steps, "tokens_per_s": tps,
        "step_ms": bs * block / tps * 1e3,
        "mfu": statistics.median(r["mfu"] for r in recs) if recs[0]["mfu"] is not None else None,
        "final_loss": recs[-1]["loss"], "memory_mb": recs[-1]["memory_mb"],
        "wall_s": time.perf_counter() - t_start,
    }
    print(json.dumps(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
