"""Worker for tests/test_ddp.py: train a tiny GPT a few steps and save its weights.

Run as ``python tests/ddp_worker.py OUT.safetensors`` (one process) or under
``torchrun --nproc_per_node=2`` / ``accelerate launch --num_processes 2 --cpu`` (DDP on gloo).
"""

import os
import sys
from dataclasses import replace

import torch

from llmcourse.data import make_get_batch
from llmcourse.model import GPT, GPTConfig
from llmcourse.train import TrainConfig, Trainer, save_weights


def main(out: str, steps: int = 4, grad_accum: int = 1, strategy: str = "ddp",
         resume_dir: str = "") -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0))
    tokens = torch.randint(64, (4_000,), generator=torch.Generator().manual_seed(1))
    get_batch = make_get_batch(tokens, batch_size=8, block_size=16)
    # eps=1e-6: Adam divides by sqrt(v) + eps, which turns a 1-ulp difference in a near-zero
    # gradient (sums in another order across processes) into a visible weight difference.
    cfg = TrainConfig(max_steps=steps, lr=3e-3, warmup_steps=1, log_every=1, progress=False,
                      device="cpu", grad_accum=grad_accum, eps=1e-6, strategy=strategy)
    if resume_dir:  # stop half-way with a checkpoint, then continue in a fresh Trainer
        cfg = replace(cfg, out_dir=resume_dir, ckpt_every=steps // 2)
        Trainer(model, cfg, get_batch).fit(until=steps // 2)
        torch.manual_seed(1)
        model = GPT(GPTConfig(vocab_size=64, block_size=16, n_layer=2, n_head=2, n_embd=32,
                              dropout=0.0))
        trainer = Trainer(model, cfg, get_batch, val_data=get_batch, resume=True)
        assert trainer.state.step == steps // 2
    else:
        trainer = Trainer(model, cfg, get_batch, val_data=get_batch)
    trainer.fit()
    val = trainer.evaluate(iters=2)
    full = trainer.full_model()  # a collective under FSDP
    if trainer.dist.is_main:
        save_weights(full, out)
        with open(out + ".txt", "w") as f:
            f.write(f"{trainer.dist.world_size} {val!r} {trainer.state.tokens}\n")
    if trainer.dist.enabled:
        import torch.distributed as dist

        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], grad_accum=int(os.environ.get("GRAD_ACCUM", "1")),
         strategy=os.environ.get("STRATEGY", "ddp"), resume_dir=os.environ.get("RESUME_DIR", ""))
