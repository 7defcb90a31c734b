"""Measured memory: the bytes autograd saves for backward, and the peak RSS of one training step."""

from __future__ import annotations

from llmcourse.scaling._common import (
    _check_int,
)


# ----------------------------------------------------------------------------- measured
def saved_activation_bytes(model, idx, targets, *, checkpoint: bool = False) -> int:
    """Bytes of the tensors autograd saves for backward in one forward pass of our GPT.

    Measured exactly with :func:`torch.autograd.graph.saved_tensors_hooks`: every tensor
    saved for backward passes through the hook; we count each storage once (a tensor saved
    by two ops is one buffer) and leave out the parameters (they exist anyway). With
    ``checkpoint=True`` every block runs under :func:`torch.utils.checkpoint.checkpoint`
    (``use_reentrant=True``: the block's forward runs without autograd and only its input is
    saved; backward re-runs it). Returns the bytes; also runs backward so the graph is freed.
    """
    import torch
    from torch.utils.checkpoint import checkpoint as ckpt

    from llmcourse.model import GPT

    if not isinstance(model, GPT):
        raise TypeError(f"model must be an llmcourse.model.GPT, got {type(model).__name__}")
    model._check_idx(idx)
    model._check_targets(targets, idx)
    if not isinstance(checkpoint, bool):
        raise TypeError(f"checkpoint must be a bool, got {type(checkpoint).__name__}")
    idx = idx if idx.dtype in (torch.long, torch.int32) else idx.long()  # what nn.Embedding takes
    param_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in param_storages:
            seen[ptr] = max(seen.get(ptr, 0), t.untyped_storage().nbytes())
        return t

    tr = model.transformer
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        pos = torch.arange(idx.size(1), device=idx.device)
        x = tr.drop(tr.wte(idx) + tr.wpe(pos))
        for block in tr.h:
            if checkpoint:
                x = ckpt(lambda inp, blk=block: blk(inp)[0], x, use_reentrant=True)
            else:
                x = block(x)[0]
        logits = model.lm_head(tr.ln_f(x))
        loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)),
                                                 targets.reshape(-1).long())
    loss.backward()
    return int(sum(seen.values()))


_PEAK_SCRIPT = """
import json, resource, sys
import torch
from llmcourse.model import GPT, GPTConfig
from llmcourse.scaling import saved_activation_bytes
a = json.loads(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(1)
net = GPT(GPTConfig(**a["config"]))
idx = torch.randint(0, net.config.vocab_size, (a["batch_size"], a["seq_len"]))
tgt = torch.randint(0, net.config.vocab_size, (a["batch_size"], a["seq_len"]))
# warm up on a tiny batch: imports, thread pools and kernel set-up are not the step's memory
saved_activation_bytes(net, idx[:1, :8], tgt[:1, :8], checkpoint=a["checkpoint"])
net.zero_grad(set_to_none=True)
def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])


try:  # Linux: reset the high-water mark to the current RSS, then read it after the step
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before, unit = status_kib("VmRSS"), 1024
    peak = lambda: status_kib("VmHWM")
except OSError:  # elsewhere: the process's maximum RSS (bytes on macOS)
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before, unit = peak(), 1 if sys.platform == "darwin" else 1024
saved = saved_activation_bytes(net, idx, tgt, checkpoint=a["checkpoint"])
print(json.dumps({"peak_increase": (peak() - before) * unit, "saved": saved}))
"""


def peak_rss_of_training_step(config: dict, *, batch_size: int, seq_len: int,
                              checkpoint: bool = False) -> dict[str, int]:
    """Measure how much one forward + backward of our GPT raises the process's peak memory.

    The step runs in a fresh Python process (so earlier allocations do not hide the peak), on
    one thread, with glibc's *dynamic* mmap threshold switched off (``MALLOC_MMAP_THRESHOLD_``):
    large buffers then go back to the OS when freed, and the peak resident set size is the
    peak of live memory — the same number on every run. Returns ``{"peak_increase": bytes,
    "saved": bytes saved for backward}`` (see :func:`saved_activation_bytes`). On Linux the
    peak is the kernel's high-water mark (``VmHWM``), reset just before the step (``ru_maxrss``
    would not do: Linux carries it over from the parent process); elsewhere the process's
    maximum RSS from :mod:`resource` (less exact: other allocators keep freed memory).
    """
    import json
    import os
    import subprocess
    import sys

    if not isinstance(config, dict):
        raise TypeError(f"config must be a dict of GPTConfig fields, got {type(config).__name__}")
    batch_size = _check_int("batch_size", batch_size)
    seq_len = _check_int("seq_len", seq_len)
    if not isinstance(checkpoint, bool):
        raise TypeError(f"checkpoint must be a bool, got {type(checkpoint).__name__}")
    from llmcourse.model import GPTConfig

    cfg = GPTConfig(**config)  # validate here, with GPTConfig's own messages
    if seq_len > cfg.block_size:
        raise ValueError(f"seq_len {seq_len} exceeds block_size {cfg.block_size}")
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0",
               OMP_NUM_THREADS="1")
    args = json.dumps({"config": config, "batch_size": batch_size, "seq_len": seq_len,
                       "checkpoint": bool(checkpoint)})
    out = subprocess.run([sys.executable, "-c", _PEAK_SCRIPT, args], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])
