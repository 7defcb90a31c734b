"""Fault injection: ``python -m llmcourse.pretrain --preset ci`` is killed with SIGKILL at
seeded random moments (while it writes the tokenised data, while it trains, in the middle of a checkpoint save,
while it exports) and resumed with ``--resume`` each time. The final weights equal those of an
uninterrupted run bit for bit, the metrics hold each step once, and nothing temporary is left.

The run goes through a small wrapper (below): checkpoints every 3 steps, and markers on stdout
so the test knows what the process is doing. Each ``torch.save`` (``state.pt``, written inside
the checkpoint's temporary directory, before the rename) sleeps a little after writing, so
that a kill "mid-save" really lands while the half-made checkpoint exists; the test checks
that it did (a ``.tmp-step_*`` directory is there right after the kill). Nothing in
``llmcourse`` is changed for the test.
"""

from __future__ import annotations

import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from llmcourse.train import read_metrics

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)"),
]

MAX_STEPS, SAVE_SLEEP = 24, 0.25

WRAPPER = r"""
import sys, time
from dataclasses import replace

import torch

import llmcourse.pretrain as pretrain
from llmcourse.train import Trainer

sleep = float(sys.argv[1])
pretrain.PRESETS["ci"] = replace(pretrain.PRESETS["ci"], ckpt_every=3, eval_every=6, log_every=2)


def mark(what):
    print(what, flush=True)


def wrap(owner, name, before=None, after=None):
    real = getattr(owner, name)

    def wrapped(*args, **kwargs):
        if before:
            mark(before)
        out = real(*args, **kwargs)
        if after:
            mark(after)
            time.sleep(sleep)
        return out

    setattr(owner, name, wrapped)


wrap(pretrain, "write_token_file", after="TOKENISED")  # train.bin written, the rest not yet
wrap(Trainer, "fit", before="TRAINING")
wrap(torch, "save", after="SAVING")  # state.pt is in the temp dir; the rename comes next
wrap(pretrain, "export", before="EXPORTING")
pretrain.main(sys.argv[2:])
mark("DONE")
"""


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               TOKENIZERS_PARALLELISM="false")
    return env


class Run:
    """One pretraining process and the markers it prints, read by a thread."""

    def __init__(self, wrapper: Path, out: Path, sleep: float) -> None:
        args = ["--preset", "ci", "--out", str(out), "--max-steps", str(MAX_STEPS), "--resume",
                "--quiet", "--device", "cpu"]
        self.proc = subprocess.Popen([sys.executable, str(wrapper), str(sleep), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=_env())
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.err: list[str] = []
        threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("EOF")

    def wait_for(self, marker: str, count: int = 1, timeout: float = 120) -> bool:
        """Until ``marker`` has been printed ``count`` times (False: the process ended first)."""
        end = time.monotonic() + timeout
        while self.seen.count(marker) < count:
            line = self.lines.get(timeout=max(0.1, end - time.monotonic()))
            if line == "EOF":
                return False
            self.seen.append(line)
        return True

    def finish(self, timeout: float = 300) -> int:
        rc = self.proc.wait(timeout=timeout)
        self.wait_for("never", timeout=10)  # drain the markers
        return rc


def _leftovers(out: Path) -> list[str]:
    temp = re.compile(r"^\.(tmp|old)-step_|\.tmp$")
    return sorted(str(p.relative_to(out)) for p in out.rglob("*") if temp.search(p.name))


def test_sigkill_at_random_moments_then_resume_is_bit_exact(tmp_path):
    wrapper = tmp_path / "wrapper.py"
    wrapper.write_text(WRAPPER)
    t0 = time.monotonic()
    ref = Run(wrapper, tmp_path / "ref", sleep=0.0)  # the same code path, never killed; it
    # runs alongside the killed ones (which mostly wait), and is compared at the end
    rng = random.Random(1234)
    out = tmp_path / "killed"
    plan = [("TOKENISED", 1, rng.uniform(0.0, SAVE_SLEEP * 0.8))]  # half the data written
    for _ in range(3):  # mid-save (after a whole save in this process) or anywhere in training
        if rng.random() < 0.6:
            plan.append(("SAVING", 2, rng.uniform(0.0, SAVE_SLEEP * 0.8)))
        else:
            plan.append(("TRAINING", 1, rng.uniform(0.2, 1.5)))
    plan.append(("EXPORTING", 1, rng.uniform(0.0, 0.3)))  # while it writes the final model
    log = []
    for marker, count, delay in plan:
        run = Run(wrapper, out, sleep=SAVE_SLEEP)
        if not run.wait_for(marker, count):
            log.append(f"{marker}: ended before it ({run.finish()})")
            continue
        time.sleep(delay)
        run.proc.send_signal(signal.SIGKILL)
        rc = run.finish()
        half = _leftovers(out)
        ckpts = sorted(p.name for p in (out / "checkpoints").glob("step_*")) if (
            out / "checkpoints").is_dir() else []
        data = "whole" if (out / "data" / "source.json").is_file() else "not yet whole"
        log.append(f"{marker} #{count} +{delay:.2f}s: rc {rc}, left {half or 'nothing'}, "
                   f"checkpoints {ckpts}, data {data}")
    final = Run(wrapper, out, sleep=0.0)
    assert final.finish() == 0, "".join(final.err)[-3000:]
    assert ref.finish() == 0, "".join(ref.err)[-3000:]
    assert "DONE" in final.seen and "DONE" in ref.seen
    print(f"\nfault injection ({time.monotonic() - t0:.0f} s):\n  " + "\n  ".join(log))

    assert "data not yet whole" in log[0], log  # the next run rebuilt the data
    killed_mid_save = [line for line in log if "SAVING" in line and ".tmp-step_" in line]
    assert killed_mid_save, log  # at least one kill left a half-written checkpoint...
    assert _leftovers(out) == []  # ...and the resumes removed every one of them
    a, b = load_file(tmp_path / "ref" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ra = [(r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(tmp_path / "ref")]
    rb = [(r["step"], r.get("loss"), r.get("val_loss")) for r in read_metrics(out)]
    assert rb == ra  # every step logged once, with the same losses
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_000021",
                                                                      "step_000024"]
