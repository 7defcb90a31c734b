"""Tokens/s of llmcourse's Trainer vs a plain PyTorch loop: same model, same batches, same run.

    python benchmarks/trainer_vs_loop.py                  # ci-sized GPT on the CPU
    python benchmarks/trainer_vs_loop.py --size cpu --steps 30
    python benchmarks/trainer_vs_loop.py --device cuda --size gpu

Both sides do the same work per step: forward, backward, gradient clipping at 1.0, AdamW step
(decay on matrices only, fused on CUDA), zero_grad. The Trainer adds its schedule, the NaN
guard (one loss read per step), metrics and the batch plumbing. The two are run alternately
``--rounds`` times (the machine's load changes the same way for both) and the best round of
each is compared (like ``timeit``: noise only ever slows a round down); medians are printed too. Prints one line per side and the ratio Trainer / loop (≥ 1.0 means no overhead).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from llmcourse.model import GPT, GPTConfig
from llmcourse.profiles import profile
from llmcourse.train import TrainConfig, Trainer, autocast_context, resolve_precision


def make_model(size: str, vocab: int) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab, **profile(size).gpt, dropout=0.0))


def plain_loop(model: GPT, batches: list, steps: int, device: torch.device, precision: str) -> float:
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.95),
                            **({"fused": True} if device.type == "cuda" else {}))
    model.train()
    tokens = 0
    for i in range(steps + 1):
        if i == 1:  # the first step warms up allocators and kernels
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0, tokens = time.perf_counter(), 0
        x, y = batches[i % len(batches)]
        x, y = x.to(device), y.to(device)
        with autocast_context(precision, device):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        tokens += x.numel()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return tokens / (time.perf_counter() - t0)


def trainer_run(model: GPT, batches: list, steps: int, device: torch.device, precision: str) -> float:
    cfg = TrainConfig(max_steps=steps + 1, lr=1e-3, warmup_steps=0, schedule="constant",
                      log_every=10**9, progress=False, device=str(device), precision=precision,
                      grad_clip=1.0)
    trainer = Trainer(model, cfg, batches)
    trainer.fit(until=1)  # the same warm-up step as the loop
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    trainer.fit()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batches[0][0].numel() / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=["ci", "cpu", "gpu"], default="ci", help="model size (a profile's GPT)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto")
    args = ap.parse_args()
    device = torch.device(args.device)
    precision = resolve_precision(args.precision, device)
    prof = profile(args.size)
    vocab, block = 2048, prof.gpt["block_size"]
    bs = args.batch_size or prof.batch_size
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randint(vocab, (bs, block), generator=g),
                torch.randint(vocab, (bs, block), generator=g)) for _ in range(8)]
    loop, ours = [], []
    for _ in range(args.rounds):
        loop.append(plain_loop(make_model(args.size, vocab).to(device), batches, args.steps, device, precision))
        ours.append(trainer_run(make_model(args.size, vocab), batches, args.steps, device, precision))
    lm, tm = max(loop), max(ours)
    print(f"device {device.type}, precision {precision}, threads {torch.get_num_threads()}, "
          f"model {args.size} ({make_model(args.size, vocab).num_params():,} params), batch {bs}x{block}, "
          f"{args.steps} steps x {args.rounds} rounds")
    for name, best, runs in (("plain loop", lm, loop), ("Trainer", tm, ours)):
        print(f"{name:<10} : best {best:>10,.0f} tokens/s, median {statistics.median(runs):>10,.0f} "
              f"(rounds: {', '.join(f'{v:,.0f}' for v in runs)})")
    print(f"ratio Trainer / loop: {tm / lm:.3f} (best rounds), "
          f"{statistics.median(ours) / statistics.median(loop):.3f} (medians)")


if __name__ == "__main__":
    main()
