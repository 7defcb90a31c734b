"""MFU of the Trainer on the GPT-2 124M configuration (needs a CUDA GPU).

    python benchmarks/mfu.py                         # bf16 (fp16 on T4), torch.compile, batch 16x1024
    python benchmarks/mfu.py --no-compile --batch-size 8 --steps 30
    python benchmarks/mfu.py --json mfu.json --profile top_ops.txt --count-syncs 3 --measure-peak

Trains GPT-2 small (12 layers, 12 heads, 768 wide, 1024 positions, vocabulary padded to 50304)
on random tokens with the course's Trainer and reports tokens/s and MFU (PaLM formula,
6N + 12·L·H·Q·T FLOPs per token, over the GPU's dense peak from ``llmcourse.hardware``) as logged
in the Trainer's metrics, skipping the first logging window (compilation, warm-up).

What else it can measure, in the same process (so the compiled model is not compiled twice):

* ``--count-syncs K``: K more steps under ``torch.cuda.set_sync_debug_mode("warn")``; every
  host synchronisation (``float(t)``, ``.item()``, ``bool(t.any())``, a blocking copy) is
  counted and attributed to its source line. The target is one per step.
* ``--profile FILE``: ``torch.profiler`` over two more steps (after one warm-up step): the top
  operators by self device time, kernel time by category (matmul, attention, fused Triton,
  optimizer …) and how busy the GPU was; ``--trace FILE.json.gz`` also saves the Chrome trace.
* ``torch._dynamo`` counters: graphs, graph breaks (with reasons) and frames compiled after the
  first logging window (recompiles: the target is 0).
* ``--measure-peak``: the bf16 matrix-product rate of this GPU (8192³, random data), so MFU is
  also given against what the chip really does, not only its data sheet.

``--device cpu --size tiny`` runs the same code paths on a CPU in seconds (``gpu_check.sh``'s
dry run); MFU is then undefined and reported as ``None``.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import functools
import gzip
import json
import re
import shutil
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

from llmcourse.hardware import current_gpu, peak_flops
from llmcourse.model import GPT, GPTConfig
from llmcourse.train import TrainConfig, Trainer

SIZES = {  # name -> GPTConfig kwargs (vocab padded to a multiple of 64 like nanoGPT)
    "gpt2": dict(n_layer=12, n_head=12, n_embd=768, vocab_size=50304),
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, vocab_size=512),
}
# kernel-name patterns -> category, first match wins (cuBLAS/CUTLASS/nvjet GEMMs, SDPA backends,
# Inductor's generated Triton kernels, the fused AdamW and foreach kernels, copies, collectives)
KERNEL_CATEGORIES = (
    ("attention", r"flash|fmha|attention|sdpa|cudnn.*mha"),
    ("matmul", r"gemm|sm90_xmma|sm80_xmma|cutlass|nvjet|cublas|wgmma|matmul|mm_"),
    ("optimizer", r"adam|multi_tensor|foreach"),
    ("fused triton", r"^triton_"),
    ("cross entropy / softmax", r"softmax|cross_entropy|nll_loss|log_softmax"),
    ("copy / memset", r"memcpy|memset|copy_|CatArray|fill"),
    ("communication", r"nccl|allreduce|all_reduce|gloo"),
    ("elementwise / reduce", r"elementwise|reduce|vectorized|unrolled"),
)


def positive_int(text: str) -> int:
    """argparse type: an int >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1, got {text}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an int >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text}")
    return value


def dynamo_snapshot() -> dict:
    """Dynamo's counters now: frames compiled, unique graphs, graph breaks (by reason)."""
    from torch._dynamo.utils import counters

    breaks = dict(counters["graph_break"])
    return {"frames_compiled": int(counters["frames"]["total"]),
            "unique_graphs": int(counters["stats"]["unique_graphs"]),
            "graph_breaks": int(sum(breaks.values())),
            "graph_break_reasons": {k.split("\n")[0][:160]: int(v) for k, v in breaks.items()}}


def datasheet_peak(precision: str) -> float | None:
    """This GPU's dense peak from ``llmcourse.hardware`` (fp32 counts as tf32), or ``None``."""
    gpu = current_gpu()
    if gpu is None:
        return None
    for p in ((precision,) if precision != "fp32" else ("tf32", "fp32")):
        try:
            return peak_flops(gpu, p)
        except ValueError:
            continue
    return None


def measure_matmul_peak(device: torch.device, n: int = 8192, reps: int = 10) -> float:
    """bf16 (n, n) @ (n, n) rate in FLOP/s on random data: mean of ``reps`` after 3 warm-ups."""
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16, generator=g)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    torch.cuda.synchronize(device)
    return 2 * n**3 * reps / (start.elapsed_time(end) / 1e3)


def count_host_syncs(trainer: Trainer, steps: int) -> dict:
    """Run ``steps`` optimiser steps with CUDA sync debugging on; count syncs and their sources."""
    sources: collections.Counter[str] = collections.Counter()
    torch.cuda.synchronize(trainer.device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps):
                trainer.train_step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for w in caught:
        if "synchroniz" in str(w.message).lower():
            sources[f"{Path(w.filename).name}:{w.lineno}"] += 1
    total = sum(sources.values())
    return {"steps": steps, "syncs": total, "syncs_per_step": total / steps,
            "sources": dict(sources.most_common())}


def kernel_category(name: str) -> str:
    """The category of a GPU kernel name (see ``KERNEL_CATEGORIES``), else ``other``."""
    for category, pattern in KERNEL_CATEGORIES:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return category
    return "other"


def profile_steps(trainer: Trainer, path: Path, title: str, trace: Path | None) -> dict:
    """Profile 2 steps (after 1 warm-up step); append the tables to ``path``; return a summary."""
    from torch.profiler import ProfilerActivity, profile

    cuda = trainer.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    active = 2
    sync = (lambda: torch.cuda.synchronize(trainer.device)) if cuda else (lambda: None)
    trainer.train_step()  # warm-up outside the profiler (allocator, cuBLAS handles)
    sync()
    with profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for _ in range(active):
            trainer.train_step()
        sync()
        wall_us = (time.perf_counter() - t0) * 1e6
    averages = prof.key_averages()
    sort_by = "self_device_time_total" if cuda else "self_cpu_time_total"
    table = averages.table(sort_by=sort_by, row_limit=30)
    by_category: collections.Counter[str] = collections.Counter()
    kernel_us = 0.0
    if cuda:
        for event in averages:
            if str(getattr(event, "device_type", "")).endswith("CUDA"):  # a kernel, not an op
                us = float(event.self_device_time_total)
                by_category[kernel_category(event.key)] += us
                kernel_us += us
    summary = {"steps": active, "wall_ms_per_step": wall_us / active / 1e3,
               "kernel_ms_per_step": kernel_us / active / 1e3,
               "gpu_busy": (kernel_us / wall_us) if (cuda and wall_us > 0) else None,
               "kernel_ms_by_category": {k: round(v / active / 1e3, 3)
                                         for k, v in by_category.most_common()}}
    with open(path, "a") as f:
        f.write(f"\n{'=' * 100}\n{title}\n{'=' * 100}\n")
        f.write(f"{active} profiled steps: {summary['wall_ms_per_step']:.2f} ms/step wall, "
                f"{summary['kernel_ms_per_step']:.2f} ms/step in kernels"
                + (f" (GPU busy {summary['gpu_busy']:.0%})\n" if summary["gpu_busy"] is not None
                   else "\n"))
        for category, ms in summary["kernel_ms_by_category"].items():
            share = ms / summary["kernel_ms_per_step"] if summary["kernel_ms_per_step"] else 0
            f.write(f"  {category:<26} {ms:9.3f} ms/step  {share:6.1%}\n")
        f.write(f"\ntop operators by {sort_by} (2 steps):\n{table}\n")
    if trace is not None:
        raw = trace.with_suffix("") if trace.suffix == ".gz" else trace
        prof.export_chrome_trace(str(raw))
        if trace.suffix == ".gz":
            with open(raw, "rb") as src, gzip.open(trace, "wb") as dst:
                shutil.copyfileobj(src, dst)
            raw.unlink()
    return summary


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=positive_int, default=60)
    ap.add_argument("--batch-size", type=positive_int, default=16)
    ap.add_argument("--block-size", type=positive_int, default=1024)
    ap.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp16", "fp32"])
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--log-every", type=positive_int, default=10)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cpu only for dry runs of this script (no MFU there)")
    ap.add_argument("--size", default="gpt2", choices=sorted(SIZES))
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--profile", type=Path, default=None,
                    help="append a torch.profiler summary of 2 steps to this text file")
    ap.add_argument("--trace", type=Path, default=None, help="Chrome trace of the profiled steps")
    ap.add_argument("--count-syncs", type=non_negative_int, default=0, metavar="K",
                    help="count host syncs over K extra steps (CUDA only)")
    ap.add_argument("--measure-peak", action="store_true",
                    help="also measure the bf16 matmul rate and give MFU against it")
    ap.add_argument("--compile-backend", default=None,
                    help="torch.compile backend (default inductor; 'eager' for quick dry runs)")
    args = ap.parse_args(argv)
    if args.steps <= args.log_every:
        ap.error("--steps must exceed --log-every (the first logging window is skipped)")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("benchmarks/mfu.py needs a CUDA GPU (MFU is not defined on a CPU); "
                 "--device cpu --size tiny checks the script itself")
    t_start = time.perf_counter()
    # TF32 for any fp32 matmul left (the Trainer sets the same on CUDA); this is the spelling
    # Inductor checks and PyTorch recommends
    torch.set_float32_matmul_precision("high")
    if args.compile_backend is not None:  # the Trainer calls torch.compile(model) itself
        torch.compile = functools.partial(torch.compile, backend=args.compile_backend)
    torch.manual_seed(0)
    size = SIZES[args.size]
    model = GPT(GPTConfig(**size, block_size=args.block_size, dropout=0.0))
    vocab, bs, block = size["vocab_size"], args.batch_size, args.block_size

    def get_batch(generator: torch.Generator):
        x = torch.randint(vocab, (bs, block + 1), generator=generator)
        return x[:, :-1], x[:, 1:]

    cfg = TrainConfig(max_steps=args.steps, lr=6e-4, warmup_steps=10, log_every=args.log_every,
                      precision=args.precision, compile=not args.no_compile, progress=False,
                      device=args.device)
    warm: dict = {}

    def after_first_window(record: dict) -> None:  # dynamo counters once compilation is done
        if record["kind"] == "train" and not warm:
            warm.update(dynamo_snapshot(), time_s=time.perf_counter() - t_start)

    trainer = Trainer(model, cfg, get_batch, callbacks=[after_first_window])
    records = [r for r in trainer.fit() if r["kind"] == "train"]
    recs = records[1:]
    end = dynamo_snapshot()
    tps = statistics.median(r["tokens_per_s"] for r in recs)
    mfu = statistics.median(r["mfu"] for r in recs) if recs[0]["mfu"] is not None else None
    cuda = trainer.device.type == "cuda"
    gpu = torch.cuda.get_device_name(trainer.device) if cuda else "cpu"
    fpt = model.flops_per_token(block)
    result = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "gpu": gpu, "gpu_key": current_gpu() if cuda else None,
        "torch": torch.__version__, "cuda": torch.version.cuda,
        "precision": trainer.precision, "compile": cfg.compile,
        "compile_backend": args.compile_backend or ("inductor" if cfg.compile else None),
        "size": args.size, "batch_size": bs, "block_size": block, "steps": args.steps,
        "params": model.num_params(), "flops_per_token": fpt,
        "peak_flops": datasheet_peak(trainer.precision) if cuda else None,
        "tokens_per_s": tps, "mfu": mfu,
        "step_ms": bs * block / tps * 1e3,
        "tokens_per_s_windows": [None if r["tokens_per_s"] is None else round(r["tokens_per_s"])
                                 for r in records],  # None: the first window after compile
        "memory_mb": recs[-1]["memory_mb"], "final_loss": recs[-1]["loss"],
        "first_window_s": warm.get("time_s"),
        "dynamo": {"after_first_window": {k: v for k, v in warm.items() if k != "time_s"},
                   "end_of_run": end,
                   "recompiles_after_first_window":
                       end["frames_compiled"] - warm.get("frames_compiled", 0)},
    }
    if args.measure_peak and cuda:
        peak = measure_matmul_peak(trainer.device)
        result["measured_bf16_matmul_flops"] = peak
        result["mfu_vs_measured_matmul"] = tps * fpt / peak
    if args.count_syncs and cuda:
        result["host_syncs"] = count_host_syncs(trainer, args.count_syncs)
    elif args.count_syncs:
        result["host_syncs"] = None  # sync debug mode is CUDA only
    if args.profile is not None:
        title = (f"{gpu} | {trainer.precision} | compile {cfg.compile} | batch {bs}x{block} | "
                 f"{args.size}")
        result["profile"] = profile_steps(trainer, args.profile, title, args.trace)
    after = dynamo_snapshot()
    result["dynamo"]["recompiles_in_extra_steps"] = after["frames_compiled"] - end["frames_compiled"]
    result["wall_s"] = time.perf_counter() - t_start

    print(f"gpu {gpu} ({result['gpu_key']}), precision {trainer.precision}, compile {cfg.compile}, "
          f"batch {bs}x{block}, params {model.num_params():,}")
    mfu_text = "n/a (no peak for this device)" if mfu is None else f"{mfu:.1%}"
    print(f"tokens/s {tps:,.0f}  MFU {mfu_text}  step {result['step_ms']:.1f} ms  "
          f"peak memory {recs[-1]['memory_mb']:,.0f} MB  final loss {recs[-1]['loss']:.3f}")
    d = result["dynamo"]
    print(f"dynamo: {end['unique_graphs']} graphs, {end['graph_breaks']} graph breaks, "
          f"{d['recompiles_after_first_window']} frames compiled after the first window, "
          f"{d['recompiles_in_extra_steps']} in the extra steps")
    if result.get("measured_bf16_matmul_flops"):
        print(f"bf16 matmul measured {result['measured_bf16_matmul_flops'] / 1e12:.0f} TFLOP/s; "
              f"MFU against it {result['mfu_vs_measured_matmul']:.1%}")
    if result.get("host_syncs"):
        hs = result["host_syncs"]
        print(f"host syncs per step {hs['syncs_per_step']:.1f}: {hs['sources']}")
    if result.get("profile"):
        p = result["profile"]
        busy = "" if p["gpu_busy"] is None else f", GPU busy {p['gpu_busy']:.0%}"
        print(f"profile: {p['wall_ms_per_step']:.2f} ms/step{busy}; kernels by category (ms/step) "
              f"{p['kernel_ms_by_category']}")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
