"""A small training engine: fast on GPUs, exact on CPUs, the same code on one or many devices.

The whole API is :class:`TrainConfig` + :class:`Trainer`::

    from llmcourse.train import TrainConfig, Trainer

    cfg = TrainConfig(max_steps=200, lr=3e-3, warmup_steps=20, out_dir="runs/demo")
    trainer = Trainer(model, cfg, train_data=get_batch, val_data=get_val_batch)
    trainer.fit()             # or trainer.fit(until=100), then later Trainer(..., resume=True)

**The model** is any ``nn.Module`` whose forward returns either ``(logits, loss)`` (a tuple or
list whose second item is the scalar loss, like :class:`llmcourse.model.GPT`), an object with a
``.loss`` attribute (Hugging Face ``ModelOutput``), or a dict with a ``"loss"`` key.

**A batch** is either a tuple/list ``(inputs, targets)`` → ``model(inputs, targets)``, or a dict
of tensors (``input_ids``, ``labels``, ``attention_mask`` …) → ``model(**batch)``. Tensors are
moved to the trainer's device. Tokens per batch (``TrainState.tokens``) are ``inputs.numel()`` or
``batch["input_ids"].numel()``; tokens/s and MFU leave out padding (``attention_mask == 0``).

**The data** (``train_data`` / ``val_data``) is either

* a callable ``get_batch(generator: torch.Generator) -> batch`` that draws a random batch using
  only ``generator`` for randomness (see :func:`llmcourse.data.make_get_batch`). The trainer
  owns the generator (seeded from ``TrainConfig.seed``) and checkpoints its state, so resuming
  continues the exact same stream; evaluation uses a fresh generator seeded with ``eval_seed``,
  so validation losses are comparable between evaluations and do not disturb training; or
* an iterable (a list of batches, a ``DataLoader`` …). When it is exhausted the trainer starts a
  new pass with ``iter(data)``. On resume the trainer replays and skips the batches it already
  consumed, so exact resume needs an iterable whose fresh copy yields the same sequence (a list,
  or a ``DataLoader`` built with ``generator=torch.Generator().manual_seed(s)`` in the new
  process). Evaluation takes the first ``eval_iters`` batches of ``val_data``.

Each optimiser step consumes ``grad_accum`` batches (micro-batches), each loss weighted by its
share of the step's target tokens, so the step equals one step on the concatenated batch even
when micro-batches hold different numbers of targets (:mod:`llmcourse.train.tokens`).

**Distributed.** Under ``torchrun --nproc_per_node=N`` or ``accelerate launch --multi_gpu
--num_processes N`` (both set ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; the latter is torchrun
underneath and works on CPU too) the trainer initialises the process group (gloo on CPU, nccl
on CUDA) and wraps the model in ``DistributedDataParallel`` — or, with
``TrainConfig(strategy="fsdp")``, shards it with FSDP2 ``fully_shard`` (each ``nn.ModuleList``
entry, then the root). ``accelerate launch --cpu --num_processes N`` is *not* supported: it
starts a single process unless MPI is installed (accelerate's multi-CPU path is ``mpirun``).
Every rank draws the *same* global batch and keeps its contiguous slice of rows (rank ``r`` of
``N`` keeps rows ``[r·B/N, (r+1)·B/N)``), so N processes see exactly the single-process batch;
the batch size must be divisible by N. Each rank weighs its loss by its share of the step's
target tokens (one all-reduce of the count per step) and DDP averages the gradients: together
the single-process gradient, also when ranks hold different numbers of targets.
Only rank 0 writes metrics and checkpoints; under FSDP the shards are gathered to rank 0 first,
so a checkpoint has the same files as a single-process one (the optimizer state is keyed by
parameter name instead of index, so resume with the same strategy).

**Modules.** ``loop`` (:class:`Trainer`: step, evaluation, fit), ``setup`` (what the Trainer
does before its first step), ``config`` (:class:`TrainConfig`, :func:`lr_at`,
:class:`NonFiniteLossError`), ``optim`` (AdamW or Muon: :class:`MuonAdamW`, :func:`muon_split`),
``batches`` (the batch contract: :func:`forward_loss`, :func:`batch_tokens`), ``tokens``
(token-weighted accumulation, what tokens/s counts), ``precision``, ``distributed``, ``metrics``
(``metrics.jsonl``, tokens/s, MFU) and ``checkpoint``.
"""

from llmcourse.train.batches import batch_tokens, forward_loss
from llmcourse.train.checkpoint import (
    CKPT_PREFIX,
    RUN_INDEPENDENT,
    SAFE_PICKLE_GLOBALS,
    TrainState,
    list_checkpoints,
    load_weights,
    pickle_globals,
    save_weights,
)
from llmcourse.train.config import (
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    STRATEGIES,
    NonFiniteLossError,
    TrainConfig,
    config_fields,
    lr_at,
)
from llmcourse.train.distributed import DistInfo, setup_distributed
from llmcourse.train.loop import Trainer
from llmcourse.train.metrics import peak_flops_here, read_metrics
from llmcourse.train.optim import MuonAdamW, muon_split
from llmcourse.train.precision import autocast_context, fastest_precision, resolve_precision

__all__ = [
    "CKPT_PREFIX",
    "OPTIMIZERS",
    "PRECISIONS",
    "SAFE_PICKLE_GLOBALS",
    "SCHEDULES",
    "STRATEGIES",
    "DistInfo",
    "MuonAdamW",
    "NonFiniteLossError",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "autocast_context",
    "batch_tokens",
    "config_fields",
    "fastest_precision",
    "forward_loss",
    "list_checkpoints",
    "load_weights",
    "lr_at",
    "muon_split",
    "peak_flops_here",
    "pickle_globals",
    "read_metrics",
    "resolve_precision",
    "save_weights",
    "setup_distributed",
    "RUN_INDEPENDENT",
]
