"""Where each process runs and how the model is spread over processes.

Owns the process group (:func:`setup_distributed`, :class:`DistInfo`: rank ``r`` of ``N``), the
device a process trains on (the local GPU under torchrun), the wrapping of the model (FSDP2
``fully_shard`` of each ``nn.ModuleList`` entry then the root, or DDP; ``torch.compile``) and its
unwrapping, the row slicing that gives rank ``r`` rows ``[r·B/N, (r+1)·B/N)`` of the global
batch, and the collectives the loop needs (gradients synced on the last micro-batch only, a
mean over ranks, the FSDP gather of the full model, the number of distinct GPUs).
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size``, its ``local_rank`` on the node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device_type: str | None = None) -> DistInfo:
    """Initialise ``torch.distributed`` from the torchrun/accelerate environment variables.

    Does nothing (returns rank 0 of 1) when ``WORLD_SIZE`` is unset or 1. Backend: nccl when
    CUDA is used, gloo otherwise. Safe to call twice. On CUDA, process ``LOCAL_RANK`` of a node
    trains on GPU ``LOCAL_RANK``: a ``LOCAL_RANK`` beyond the visible GPUs raises ``ValueError``.
    """
    import torch.distributed as dist

    if device_type is not None and not isinstance(device_type, str):
        raise TypeError(f"device_type must be a str or None, got {type(device_type).__name__}")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device_type is None:
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cuda" and not 0 <= local < torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK={local} but this node has {torch.cuda.device_count()} visible CUDA "
            "device(s): each process of a node trains on GPU LOCAL_RANK, so start at most that "
            "many processes per node (torchrun --nproc_per_node) and do not narrow "
            "CUDA_VISIBLE_DEVICES per process")
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def _device_and_rank(name: str | None) -> tuple[torch.device, DistInfo]:
    """The device this process trains on (``name``, else the local GPU under torchrun, else
    :func:`llmcourse.get_device`) and its place in the process group (initialised here)."""
    from llmcourse.env import get_device

    if name is None and int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    else:
        device = get_device(name)
    dist = setup_distributed(device.type)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    return device, dist


def _place(model: nn.Module, device: torch.device, fsdp: bool) -> nn.Module | None:
    """Move ``model`` to ``device``; under FSDP shard it in place (each block, then the rest).

    Returns, under FSDP, a CPU replica of the full model: checkpoints are read and written in
    the same safetensors format as a single process (rank 0 gathers the shards into it)."""
    replica = copy.deepcopy(model).to("cpu") if fsdp else None
    model.to(device)
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        for module in list(model.modules()):
            if isinstance(module, nn.ModuleList):  # shard each block, then the rest
                for block in module:
                    fully_shard(block)
        fully_shard(model)
    return replica


def _wrap(model: nn.Module, device: torch.device, dist: DistInfo, fsdp: bool,
          compile_model: bool) -> nn.Module:
    """DDP around the model when distributed without FSDP, then ``torch.compile`` if asked."""
    if dist.enabled and not fsdp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    if compile_model:
        model = torch.compile(model)
    return model


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _slice_rows(batch: Any, rank: int, world: int) -> Any:
    """Rank ``rank``'s contiguous rows ``[rank·B/world, (rank+1)·B/world)`` of every tensor."""
    if isinstance(batch, torch.Tensor):
        n = batch.size(0)
        if n % world:
            raise ValueError(f"batch size {n} must be divisible by the world size {world}")
        k = n // world
        return batch[rank * k:(rank + 1) * k]
    if isinstance(batch, dict):
        return {k: _slice_rows(v, rank, world) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_slice_rows(v, rank, world) for v in batch)
    return batch


def _local_rows(batch: Any, dist: DistInfo, device: torch.device) -> Any:
    """This rank's rows of a global batch (all of it in one process), on ``device``."""
    from llmcourse.train.batches import _to_device

    if dist.enabled:
        batch = _slice_rows(batch, dist.rank, dist.world_size)
    return _to_device(batch, device)


def _grad_sync(model: nn.Module, raw_model: nn.Module, dist: DistInfo, fsdp: bool,
               last_micro: bool) -> contextlib.AbstractContextManager:
    """Reduce gradients across ranks on the last micro-batch of a step only (a context)."""
    if fsdp:  # FSDP2: reduce-scatter gradients only on the last micro-batch
        raw_model.set_requires_gradient_sync(last_micro)
    sync = not dist.enabled or last_micro or not hasattr(model, "no_sync")
    return contextlib.nullcontext() if sync else model.no_sync()


def _mean_over_ranks(value: torch.Tensor, dist: DistInfo) -> torch.Tensor:
    """The mean of ``value`` over all ranks (``value`` itself in a single process)."""
    if dist.enabled:
        import torch.distributed as tdist

        tdist.all_reduce(value, op=tdist.ReduceOp.SUM)  # gloo has no AVG
        value = value / dist.world_size
    return value


def _clip_grad_norm(model: nn.Module, max_norm: float | None) -> torch.Tensor:
    """Clip the gradients to a global norm of ``max_norm`` (``None``/0: leave them) and return
    their global norm before clipping (gathered over the shards under FSDP), as a 0-dim fp32
    tensor on the device: the loop reads it together with the loss, one host sync per step."""
    if max_norm:
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    else:
        norm = torch.linalg.vector_norm(torch.stack(
            [p.grad.detach().float().norm() for p in model.parameters() if p.grad is not None]))
    if hasattr(norm, "full_tensor"):  # a DTensor under FSDP
        norm = norm.full_tensor()
    return norm.float()


def _gpu_count(device: torch.device, dist: DistInfo) -> int:
    """How many distinct GPUs the ranks train on (the world size off CUDA or in one process).

    Usually one per rank, but ranks can share one (more processes than GPUs, as in
    ``benchmarks/ddp_gpu.py``): MFU divides by GPUs. A collective: every rank gathers every
    rank's GPU UUID (host name and index where the UUID is not available)."""
    if not dist.enabled or device.type != "cuda":
        return dist.world_size
    import torch.distributed as tdist

    uuid = getattr(torch.cuda.get_device_properties(device), "uuid", None)
    me = str(uuid) if uuid is not None else f"{socket.gethostname()}:{device.index}"
    everyone: list = [None] * dist.world_size
    tdist.all_gather_object(everyone, me)
    return len(set(everyone))


def _barrier(dist: DistInfo) -> None:
    if dist.enabled:
        import torch.distributed as tdist

        tdist.barrier()


def _full_model(model: nn.Module, raw_model: nn.Module, replica: nn.Module | None,
                dist: DistInfo) -> nn.Module | None:
    """The whole model, unwrapped; under FSDP (``replica`` given) a collective call that
    gathers the shards into ``replica`` on rank 0 and returns ``None`` on the other ranks."""
    if replica is None:
        return _unwrap(model)
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(raw_model,
                                options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not dist.is_main:
        return None
    replica.load_state_dict(full)
    return replica
