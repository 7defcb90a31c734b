"""DDP and FSDP on CPU: two gloo processes equal one process with the same global batch."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

WORKER = str(Path(__file__).with_name("ddp_worker.py"))
ROOT = str(Path(__file__).resolve().parents[1])


def run(cmd: list[str], env_extra: dict | None = None) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=ROOT, **(env_extra or {}))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def compare(a: str, b: str) -> None:
    wa, wb = load_file(a), load_file(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5, rtol=0), f"{k} differs"
    ra, rb = Path(a + ".txt").read_text().split(), Path(b + ".txt").read_text().split()
    assert (ra[0], rb[0]) == ("1", "2")
    assert abs(float(ra[1]) - float(rb[1])) < 1e-5  # same validation loss
    assert ra[2] == rb[2]  # same number of tokens seen


@pytest.mark.slow
@pytest.mark.parametrize("accum", ["2"])  # covers no_sync micro-steps and the synced one
def test_two_gloo_processes_equal_one(tmp_path, accum):
    single, multi = str(tmp_path / "single.safetensors"), str(tmp_path / "ddp.safetensors")
    run([sys.executable, WORKER, single], {"GRAD_ACCUM": accum})
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         WORKER, multi], {"GRAD_ACCUM": accum})
    compare(single, multi)


@pytest.mark.slow
def test_fsdp_two_processes_equal_one_and_resume(tmp_path):
    """FSDP2 (fully_shard) on 2 gloo processes: same weights as 1 process, also after a
    checkpoint written from the shards and read back into them half-way."""
    single = str(tmp_path / "single.safetensors")
    run([sys.executable, WORKER, single])
    for name, extra in (("fsdp", {}), ("fsdp_resumed", {"RESUME_DIR": str(tmp_path / "ckpt")})):
        out = str(tmp_path / f"{name}.safetensors")
        run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
             WORKER, out], {"STRATEGY": "fsdp", **extra})
        compare(single, out)
    from llmcourse.train import SAFE_PICKLE_GLOBALS, list_checkpoints, pickle_globals

    ckpt = list_checkpoints(tmp_path / "ckpt")[-1]
    assert pickle_globals(ckpt / "state.pt") <= SAFE_PICKLE_GLOBALS


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None,
                    reason="accelerate CLI not installed")
def test_accelerate_launch_equals_one_process(tmp_path):
    """``accelerate launch --multi_gpu`` is torchrun underneath and works on CPU too (gloo).

    (``accelerate launch --cpu --num_processes 2`` starts a single process unless MPI is set
    up: accelerate's multi-CPU path is ``mpirun``.)
    """
    single, multi = str(tmp_path / "single.safetensors"), str(tmp_path / "acc.safetensors")
    run([sys.executable, WORKER, single])
    accelerate = str(Path(sys.executable).parent / "accelerate")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
         "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
         WORKER, multi])
    compare(single, multi)


def test_setup_distributed_single_process(monkeypatch):
    from llmcourse.train import DistInfo, setup_distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert setup_distributed() == DistInfo()
    assert not DistInfo().enabled and DistInfo().is_main
