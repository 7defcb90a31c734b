"""Data parallelism you can run on a laptop: 2 processes, gloo on CPU, our GPT.

Launch it with torchrun (what a multi-GPU job does, minus the GPUs)::

    python -m torch.distributed.run --nproc_per_node=2 --master_port=29511 \\
        -m llmcourse.ddp_demo --steps 5 --out ddp.json

Every process (a *rank*) builds the same model from the same seed, takes its own slice of each
global batch, and computes gradients on it; :class:`~torch.nn.parallel.DistributedDataParallel`
averages the gradients across ranks (an all-reduce) during ``backward``, so every rank applies
the same update. Rank 0 then checks two things and writes them to ``--out`` (JSON):

* the ranks' parameters are *identical* after training (they never drift apart);
* they equal, to float rounding, a single process trained on the whole global batch —
  data parallelism changes where the work happens, not the maths.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from llmcourse._checks import check_int, check_module, check_number, check_path
from llmcourse._io import atomic_write_text
from llmcourse.model import GPT, GPTConfig

CONFIG = dict(vocab_size=256, block_size=32, n_layer=2, n_head=2, n_embd=32)


def free_port() -> int:
    """A TCP port on localhost that nothing listens on now (for ``--master_port``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def global_batches(steps: int, batch: int, block: int, seed: int = 1) -> list[torch.Tensor]:
    """The same ``steps`` batches of bytes of the Python reference on every rank."""
    check_int("steps", steps, min=1)
    check_int("batch", batch, min=1)
    check_int("block", block, min=1, max=100_000)
    check_int("seed", seed, min=0)
    from llmcourse.data import load_corpus

    data = torch.tensor(list(load_corpus("python-reference")[:200_000].encode("utf-8")[:150_000]),
                        dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        starts = torch.randint(0, len(data) - block - 1, (batch,), generator=g)
        out.append(torch.stack([data[s: s + block + 1] for s in starts.tolist()]))
    return out  # each (batch, block + 1): inputs [:, :-1], targets [:, 1:]


def train(model: torch.nn.Module, batches: list[torch.Tensor], lr: float) -> list[float]:
    """AdamW steps on ``batches``; returns the losses."""
    check_module("model", model)
    if not isinstance(batches, (list, tuple)) or not all(
            isinstance(b, torch.Tensor) for b in batches):
        raise TypeError("batches must be a list of (batch, block + 1) token tensors")
    for b in batches:
        if b.dim() != 2 or b.size(1) < 2:
            raise ValueError(f"batches must hold (batch, block + 1) tensors, got {tuple(b.shape)}")
    check_number("lr", lr, min=0.0, min_open=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for xy in batches:
        _, loss = model(xy[:, :-1], xy[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # under DDP: gradients are all-reduced (averaged) here
        opt.step()
        losses.append(loss.item())
    return losses


def flat_params(model: torch.nn.Module) -> torch.Tensor:
    """Every parameter of ``model``, flattened into one 1-D tensor (in ``parameters()`` order)."""
    check_module("model", model)
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def main(argv: list[str] | None = None) -> dict:
    """The command line: train under DDP, compare with one process, write rank 0's JSON."""
    if argv is not None and (not isinstance(argv, (list, tuple))
                             or not all(isinstance(a, str) for a in argv)):
        raise TypeError(f"argv must be a list of str or None, got {type(argv).__name__}")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="global batch (sequences)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=None, help="rank 0 writes its JSON here")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1:
        parser.error("--steps and --batch must be >= 1")
    if not math.isfinite(args.lr) or args.lr <= 0:
        parser.error(f"--lr must be a finite number > 0, got {args.lr}")

    torch.set_num_threads(1)
    if "RANK" not in os.environ:  # run alone (world of 1) when not started by torchrun
        os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    try:
        if args.batch % world:
            raise ValueError(f"--batch ({args.batch}) must be divisible by the world size {world}")
        batches = global_batches(args.steps, args.batch, CONFIG["block_size"])
        per_rank = args.batch // world
        mine = [b[rank * per_rank:(rank + 1) * per_rank] for b in batches]  # my slice

        torch.manual_seed(0)  # same initial weights on every rank (DDP also broadcasts rank 0's)
        model = DDP(GPT(GPTConfig(**CONFIG)))
        losses = train(model, mine, args.lr)

        mine_flat = flat_params(model.module)
        gathered = [torch.empty_like(mine_flat) for _ in range(world)]
        dist.all_gather(gathered, mine_flat)
        local_losses = torch.tensor(losses)
        dist.all_reduce(local_losses)  # sum of the ranks' losses → mean below
        result = None
        if rank == 0:
            torch.manual_seed(0)
            single = GPT(GPTConfig(**CONFIG))
            single_losses = train(single, batches, args.lr)
            ref = flat_params(single)
            result = {
                "world_size": world,
                "steps": args.steps,
                "global_batch": args.batch,
                "per_rank_batch": per_rank,
                "n_params": int(mine_flat.numel()),
                "max_diff_between_ranks": max(float((g - gathered[0]).abs().max())
                                              for g in gathered),
                "max_diff_vs_single_process": float((gathered[0] - ref).abs().max()),
                "ddp_losses": (local_losses / world).tolist(),
                "single_losses": single_losses,
            }
            if args.out is not None:  # atomic: a reader never sees a half-written file
                atomic_write_text(args.out, json.dumps(result, indent=1))
            print(json.dumps(result))
        dist.barrier()
        return result or {}
    finally:
        dist.destroy_process_group()


def launch(nproc: int = 2, *, steps: int = 5, batch: int = 8, out: str | Path,
           timeout: float = 300) -> dict:
    """Run this module under torchrun with ``nproc`` CPU processes; return rank 0's JSON."""
    import subprocess

    check_int("nproc", nproc, min=1)
    check_int("steps", steps, min=1)
    check_int("batch", batch, min=1)
    if batch % nproc:
        raise ValueError(f"batch ({batch}) must be divisible by nproc ({nproc})")
    out = check_path("out", out)
    check_number("timeout", timeout, min=0.0, min_open=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--master_port", str(free_port()), "-m", "llmcourse.ddp_demo",
           "--steps", str(steps), "--batch", str(batch), "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(Path(out).read_text())


if __name__ == "__main__":
    main()
