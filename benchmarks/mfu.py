"""MFU of the Trainer on the GPT-2 124M configuration (needs a CUDA GPU).

    python benchmarks/mfu.py                         # bf16 (fp16 on T4), torch.compile, batch 16x1024
    python benchmarks/mfu.py --no-compile --batch-size 8 --steps 30

Trains GPT-2 small (12 layers, 12 heads, 768 wide, 1024 positions, vocabulary padded to 50304)
on random tokens with the course's Trainer and reports tokens/s and MFU (PaLM formula,
6N + 12·L·H·Q·T FLOPs per token, over the GPU's dense peak from ``llmcourse.hardware``) as logged
in the Trainer's metrics, skipping the first logging window (compilation, warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

from llmcourse.hardware import current_gpu
from llmcourse.model import GPT, GPTConfig
from llmcourse.train import TrainConfig, Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--block-size", type=int, default=1024)
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--log-every", type=int, default=10)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("benchmarks/mfu.py needs a CUDA GPU (MFU is not defined on a CPU)")
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=12, n_head=12, n_embd=768, block_size=args.block_size,
                          vocab_size=50304, dropout=0.0))
    vocab, bs, block = 50304, args.batch_size, args.block_size

    def get_batch(generator: torch.Generator):
        x = torch.randint(vocab, (bs, block + 1), generator=generator)
        return x[:, :-1], x[:, 1:]

    cfg = TrainConfig(max_steps=args.steps, lr=6e-4, warmup_steps=10, log_every=args.log_every,
                      precision=args.precision, compile=not args.no_compile, progress=False,
                      device="cuda")
    trainer = Trainer(model, cfg, get_batch)
    recs = [r for r in trainer.fit() if r["kind"] == "train"][1:]
    if not recs:
        sys.exit("too few steps: raise --steps above 2 x --log-every")
    tps = statistics.median(r["tokens_per_s"] for r in recs)
    mfu = statistics.median(r["mfu"] for r in recs) if recs[0]["mfu"] is not None else None
    print(f"gpu {torch.cuda.get_device_name()} ({current_gpu()}), precision {trainer.precision}, "
          f"compile {cfg.compile}, batch {bs}x{block}, params {model.num_params():,}")
    print(f"tokens/s {tps:,.0f}  MFU {'n/a (GPU not in the peak table)' if mfu is None else f'{mfu:.1%}'}  "
          f"peak memory {recs[-1]['memory_mb']:,.0f} MB  final loss {recs[-1]['loss']:.3f}")


if __name__ == "__main__":
    main()
