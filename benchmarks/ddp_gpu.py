"""The Trainer's data-parallel path on a GPU: throughput, and whether the ranks stay identical.

    python benchmarks/ddp_gpu.py --json one.json --params one.pt                   # 1 process
    torchrun --standalone --nproc_per_node=2 benchmarks/ddp_gpu.py --backend gloo \\
        --json ddp.json --compare one.pt                                            # 2 processes
    torchrun --standalone --nproc_per_node=2 benchmarks/ddp_gpu.py --backend nccl --json nccl.json

Each process trains the same GPT (6 × 384, 256 positions, GPT-2 vocabulary) with
:class:`llmcourse.train.Trainer` on the same global batch of random tokens; the Trainer keeps
each rank's slice of rows and ``DistributedDataParallel`` all-reduces the gradients.

**More processes than GPUs.** With 2 processes and 1 GPU both ranks are put on ``cuda:0``
(``LOCAL_RANK`` is taken modulo the GPU count). NCCL refuses two ranks on one device ("Duplicate
GPU detected"), so on one GPU the 2-process run uses ``--backend gloo``: this script then creates
the gloo process group before the Trainer does (the Trainer keeps an existing group), and gloo
all-reduces the CUDA gradient buckets by staging them through host memory. What that measures:
the Trainer's DDP code path on CUDA tensors (wrapping, bucketed all-reduce, the per-rank batch
slice, identical weights on every rank) and the throughput of two processes time-sharing one GPU
with a host-memory all-reduce — a lower bound, not NCCL or NVLink performance. ``--backend nccl``
leaves process-group creation to the Trainer (NCCL on CUDA); on one GPU it is expected to fail,
and ``gpu_check.sh`` records the error it gives. ``--device cpu --size tiny`` is a dry run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from llmcourse.model import GPT, GPTConfig
from llmcourse.train import TrainConfig, Trainer

SIZES = {
    "small": dict(n_layer=6, n_head=6, n_embd=384, vocab_size=50304),
    "tiny": dict(n_layer=2, n_head=2, n_embd=32, vocab_size=256),
}


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text}")
    return value


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    """All parameters in one fp32 CPU vector (in ``parameters()`` order)."""
    return torch.cat([p.detach().float().reshape(-1).cpu() for p in model.parameters()])


def place_ranks(device: str) -> dict:
    """Put this rank on a GPU (``LOCAL_RANK`` modulo the GPU count); return where it went."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device != "cuda" or world <= 1:
        return {"gpus": torch.cuda.device_count(), "ranks_per_gpu": 1}
    gpus = torch.cuda.device_count()
    if gpus < 1:
        raise SystemExit("--device cuda but no CUDA GPU is visible")
    os.environ["LOCAL_RANK"] = str(local % gpus)  # the Trainer reads it for its device
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    return {"gpus": gpus, "ranks_per_gpu": -(-local_world // gpus)}  # ceil


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="auto", choices=["auto", "gloo", "nccl"],
                    help="auto: whatever the Trainer picks (nccl on CUDA, gloo on CPU)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--size", default="small", choices=sorted(SIZES))
    ap.add_argument("--steps", type=positive_int, default=30)
    ap.add_argument("--log-every", type=positive_int, default=5)
    ap.add_argument("--batch-size", type=positive_int, default=32, help="global batch (rows)")
    ap.add_argument("--block-size", type=positive_int, default=256)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="rank 0 writes the results here")
    ap.add_argument("--params", type=Path, default=None, help="rank 0 saves the final weights")
    ap.add_argument("--compare", type=Path, default=None,
                    help="weights saved by a 1-process run (--params) to compare against")
    args = ap.parse_args(argv)
    if args.steps <= args.log_every:
        ap.error("--steps must exceed --log-every (the first logging window is skipped)")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda but CUDA is not available")
    t_start = time.perf_counter()
    torch.set_float32_matmul_precision("high")
    placement = place_ranks(args.device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if args.batch_size % world:
        ap.error(f"--batch-size {args.batch_size} must be divisible by the world size {world}")
    if world > 1 and args.backend == "gloo" and not dist.is_initialized():
        dist.init_process_group("gloo")  # the Trainer keeps a group that already exists
    if world > 1 and args.backend == "nccl" and args.device != "cuda":
        ap.error("--backend nccl needs --device cuda")

    size = SIZES[args.size]
    torch.manual_seed(0)  # the same initial weights on every rank
    model = GPT(GPTConfig(**size, block_size=args.block_size, dropout=0.0))
    vocab, bs, block = size["vocab_size"], args.batch_size, args.block_size

    def get_batch(generator: torch.Generator):
        x = torch.randint(vocab, (bs, block + 1), generator=generator)
        return x[:, :-1], x[:, 1:]

    cfg = TrainConfig(max_steps=args.steps, lr=1e-3, warmup_steps=2, log_every=args.log_every,
                      compile=args.compile, progress=False, device=args.device, eps=1e-6)
    trainer = Trainer(model, cfg, get_batch)
    records = [r for r in trainer.fit() if r["kind"] == "train"]
    recs = records[1:]
    mine = flat_params(model)
    max_diff_ranks = 0.0
    backend = dist.get_backend() if dist.is_initialized() else None
    if trainer.dist.enabled:
        # gloo gathers CPU tensors; NCCL needs them on the GPU
        here = mine.to(trainer.device) if backend == "nccl" else mine
        gathered = [torch.empty_like(here) for _ in range(trainer.dist.world_size)]
        dist.all_gather(gathered, here)
        max_diff_ranks = max(float((g - gathered[0]).abs().max()) for g in gathered)
    result: dict = {}
    if trainer.dist.is_main:
        tps = statistics.median(r["tokens_per_s"] for r in recs)
        result = {
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
            "gpu": torch.cuda.get_device_name(trainer.device) if args.device == "cuda" else "cpu",
            "world_size": trainer.dist.world_size, "backend": backend or "none (1 process)",
            "device": str(trainer.device), **placement,
            "precision": trainer.precision, "compile": args.compile, "size": args.size,
            "params": model.num_params(), "global_batch": bs, "block_size": block,
            "steps": args.steps, "tokens_per_s": tps,
            "tokens_per_s_per_rank": tps / trainer.dist.world_size,
            "step_ms": bs * block / tps * 1e3, "mfu": statistics.median(r["mfu"] for r in recs)
            if recs[0]["mfu"] is not None else None,
            "final_loss": recs[-1]["loss"], "memory_mb": recs[-1]["memory_mb"],
            "max_diff_between_ranks": max_diff_ranks,
        }
        if args.compare is not None and args.compare.is_file():
            ref = torch.load(args.compare, weights_only=True)
            result["max_diff_vs_one_process"] = float((mine - ref).abs().max())
            result["max_abs_weight"] = float(ref.abs().max())
        if args.params is not None:
            torch.save(mine, args.params)
        result["wall_s"] = time.perf_counter() - t_start
        print(json.dumps(result))
        if args.json is not None:
            args.json.write_text(json.dumps(result, indent=1))
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    return result


if __name__ == "__main__":
    main()
