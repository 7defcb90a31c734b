"""Collect what ``gpu_check.sh`` measured into ``summary.md`` and ``results.json`` under OUT.

    python benchmarks/gpu_check_summary.py --work /tmp/gpucheck --out "$OUT"

Run after every stage (it imports no torch and takes well under a second), so that a run stopped
at its time limit still leaves a summary of the stages that finished. It also copies the stage
files that travel back (``profile.txt``, ``chapters.csv``, ``chapter_outputs.txt``,
``trace.json.gz`` when under 15 MB) into OUT, keeping OUT at 8 files or fewer.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import statistics
from pathlib import Path

COPIED = ("profile.txt", "chapters.csv", "chapter_outputs.txt", "trace.json.gz")
MAX_COPY = 15 * 2**20
MFU_TARGET = 0.45


def load(path: Path) -> dict | list | None:
    """A JSON file, or ``None`` when it is missing or half written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def fmt(value, spec: str = ",.0f", none: str = "—") -> str:
    """``format(value, spec)``, or ``none`` for a missing value."""
    return none if value is None else format(value, spec)


def gpu_util(path: Path) -> dict | None:
    """Mean and max GPU utilisation (%) and max memory (MiB) from nvidia-smi's CSV samples."""
    if not path.is_file():
        return None
    util, mem = [], []
    for row in csv.reader(path.read_text().splitlines()):
        try:
            util.append(float(row[1]))
            mem.append(float(row[2]))
        except (IndexError, ValueError):
            continue
    if not util:
        return None
    return {"samples": len(util), "util_mean": statistics.mean(util), "util_max": max(util),
            "memory_max_mib": max(mem)}


def nccl_probe(path: Path) -> str | None:
    """The telling lines of the NCCL attempt's log (the error NCCL gave, if any)."""
    if not path.is_file():
        return None
    lines = path.read_text(errors="replace").splitlines()
    hits = [ln.strip() for ln in lines
            if re.search(r"duplicate gpu|ncclInvalidUsage|ncclUnhandled|NCCL WARN|DistBackendError"
                         r"|NCCL error|invalid usage", ln, re.IGNORECASE)]
    seen: list[str] = []
    for h in hits:
        if h[:200] not in seen:
            seen.append(h[:200])
    return " / ".join(seen[:3]) if seen else (lines[-1][:200] if lines else "")


def mfu_section(runs: list[dict]) -> list[str]:
    out = ["## 1. MFU of GPT-2 124M (`benchmarks/mfu.py`)", ""]
    if not runs:
        return out + ["not run", ""]
    out += ["| compile | precision | batch | tokens/s | step ms | MFU (data-sheet peak) | MFU (measured "
            "matmul) | peak memory MB | graphs | graph breaks | recompiles after warm-up | host "
            "syncs/step |", "|" + "---|" * 12]
    for r in runs:
        d = r.get("dynamo", {})
        end = d.get("end_of_run", {})
        hs = r.get("host_syncs") or {}
        recompiles = d.get("recompiles_after_first_window", 0) + d.get("recompiles_in_extra_steps", 0)
        out.append(
            f"| {'yes' if r['compile'] else 'no'} | {r['precision']} | {r['batch_size']}×"
            f"{r['block_size']} | {fmt(r['tokens_per_s'])} | {fmt(r['step_ms'], '.1f')} | "
            f"{fmt(r['mfu'], '.1%')} | {fmt(r.get('mfu_vs_measured_matmul'), '.1%')} | "
            f"{fmt(r['memory_mb'])} | {end.get('unique_graphs', '—') if r['compile'] else '—'} | "
            f"{end.get('graph_breaks', '—') if r['compile'] else '—'} | "
            f"{recompiles if r['compile'] else '—'} | {fmt(hs.get('syncs_per_step'), '.1f')} |")
    first = runs[0]
    peak = first.get("peak_flops")
    measured = first.get("measured_bf16_matmul_flops")
    out += ["", f"GPU {first['gpu']} (table key {first.get('gpu_key')}), torch {first['torch']}, "
            f"CUDA {first['cuda']}; data-sheet peak {fmt(peak and peak / 1e12, '.1f')} TFLOP/s, "
            f"measured bf16 matmul {fmt(measured and measured / 1e12, '.0f')} TFLOP/s; "
            f"{fmt(first['flops_per_token'] / 1e9, '.3f')} GFLOP per token; date {first['date']}.",
            ""]
    compiled = [r for r in runs if r["compile"]]
    if compiled and compiled[0]["mfu"] is not None:
        m = compiled[0]["mfu"]
        verdict = (f"**target met**: {m:.1%} ≥ {MFU_TARGET:.0%}" if m >= MFU_TARGET else
                   f"**short of the target** by {100 * (MFU_TARGET - m):.1f} points "
                   f"({m:.1%} < {MFU_TARGET:.0%}): see the profile below and `profile.txt`")
        out += [f"Target ≥ {MFU_TARGET:.0%} MFU with compile: {verdict}.", ""]
    for r in runs:
        hs = r.get("host_syncs")
        if hs:
            out.append(f"- host syncs, compile {r['compile']}: {hs['syncs_per_step']:.1f} per step "
                       f"over {hs['steps']} steps, from {hs['sources']}")
        d = r.get("dynamo", {})
        reasons = d.get("end_of_run", {}).get("graph_break_reasons")
        if r["compile"] and reasons:
            out.append(f"- graph breaks: {reasons}")
        p = r.get("profile")
        if p:
            busy = "" if p.get("gpu_busy") is None else f", GPU busy {p['gpu_busy']:.0%}"
            cats = ", ".join(f"{k} {v:.2f}" for k, v in p["kernel_ms_by_category"].items())
            out.append(f"- profile, compile {r['compile']}: {p['wall_ms_per_step']:.2f} ms/step wall, "
                       f"{p['kernel_ms_per_step']:.2f} ms/step in kernels{busy}; ms/step by kind: "
                       f"{cats or '—'}")
    out += ["", "Rows for the table in `benchmarks/README.md`:", "", "```"]
    for r in runs:
        out.append(f"| {r['gpu']} | {r['precision']} | {'yes' if r['compile'] else 'no'} | "
                   f"{r['batch_size']} × {r['block_size']} | {fmt(r['tokens_per_s'])} | "
                   f"{fmt(r['mfu'], '.1%')} | {r['date']} |")
    return out + ["```", ""]


def ddp_section(one: dict | None, two: dict | None, probe: str | None, nccl: dict | None) -> list[str]:
    out = ["## 3a. The Trainer's DDP path on the GPU (`benchmarks/ddp_gpu.py`)", ""]
    rows = [r for r in (one, two, nccl) if r]
    if not rows:
        out.append("not run")
    else:
        out += ["| processes | backend | device(s) | ranks per GPU | precision | tokens/s (all) | "
                "tokens/s per rank | step ms | max diff between ranks | max diff vs 1 process |",
                "|" + "---|" * 10]
        for r in rows:
            out.append(f"| {r['world_size']} | {r['backend']} | {r['device']} | "
                       f"{r.get('ranks_per_gpu', '—')} | {r['precision']} | {fmt(r['tokens_per_s'])} | "
                       f"{fmt(r['tokens_per_s_per_rank'])} | {fmt(r['step_ms'], '.1f')} | "
                       f"{r['max_diff_between_ranks']:.2e} | "
                       f"{fmt(r.get('max_diff_vs_one_process'), '.2e')} |")
    if probe is not None:
        out += ["", f"NCCL with 2 processes on this machine: {probe or 'no error line found'}"]
    return out + [""]


def llama_section(llama: dict | None) -> list[str]:
    out = ["## 3b. Llama (`benchmarks/llama_gpu.py`)", ""]
    if llama is None:
        return out + ["not run", ""]
    if "skipped" in llama:
        return out + [f"skipped: {llama['skipped']}", ""]
    return out + [f"{llama['model']}: {llama['params']:,} parameters, {llama['precision']}, compile "
                  f"{llama['compile']}, batch {llama['batch_size']}×{llama['block_size']}: "
                  f"**{fmt(llama['tokens_per_s'])} tokens/s**, MFU {fmt(llama['mfu'], '.1%')} "
                  f"(FLOPs from {llama['flops_per_token']}), step {fmt(llama['step_ms'], '.1f')} ms, "
                  f"peak memory {fmt(llama['memory_mb'])} MB, date {llama['date']}", ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    w, out = args.work, args.out
    out.mkdir(parents=True, exist_ok=True)
    env = load(w / "env.json") or {}
    runs = [r for r in (load(w / "mfu_compile.json"), load(w / "mfu_eager.json")) if r]
    one, two, nccl = load(w / "ddp_1.json"), load(w / "ddp_2.json"), load(w / "ddp_nccl.json")
    probe = nccl_probe(w / "nccl_probe.log")
    llama = load(w / "llama.json")
    chapters = load(w / "chapters.json")
    util = gpu_util(w / "gpu_util.csv")
    stages = []
    if (w / "stages.csv").is_file():
        stages = [dict(zip(("stage", "rc", "seconds", "limit"), row, strict=False))
                  for row in csv.reader((w / "stages.csv").read_text().splitlines()) if row]

    v = env.get("versions", {})
    lines = [f"# GPU check: {v.get('gpu', 'no GPU')} ({(runs[0]['date'] if runs else '')})", "",
             f"torch {v.get('torch')} (CUDA {v.get('cuda')}, cuDNN {v.get('cudnn')}, NCCL "
             f"{v.get('nccl')}), Python {v.get('python')}; {v.get('gpus', 0)} GPU(s), capability "
             f"{v.get('capability')}, {v.get('sm_count')} SMs, {v.get('memory_gib')} GiB; "
             f"nvidia-smi: {v.get('nvidia_smi')}; peak table key {v.get('peak_table_key')} "
             f"({v.get('peak_bf16_tflops')} TFLOP/s bf16)", ""]
    bad = {k: m for k, m in env.get("imports", {}).items() if not str(m).startswith("ok")}
    if env:
        lines += [f"imports: {'all ok' if not bad else 'FAILED ' + json.dumps(bad)}", ""]
    lines += ["## Stages", "", "| stage | exit | seconds | limit |", "|---|---|---|---|"]
    lines += [f"| {s['stage']} | {s['rc']} | {s['seconds']} | {s.get('limit', '')} |" for s in stages]
    lines += [""]
    lines += mfu_section(runs)
    profiles = sorted({r.get("profile", "?") for r in chapters or []}) or ["gpu"]
    lines += [f"## 2. Chapters under `LLMCOURSE_PROFILE={'/'.join(profiles)}` (executed copies)", ""]
    if (w / "chapters.md").is_file():
        lines += [(w / "chapters.md").read_text()]
        if util:
            lines += [f"GPU utilisation during the chapters: mean {util['util_mean']:.0f}%, max "
                      f"{util['util_max']:.0f}%, memory up to {util['memory_max_mib']:,.0f} MiB "
                      f"({util['samples']} samples, 2 s apart).", ""]
    else:
        lines += ["not run", ""]
    lines += ddp_section(one, two, probe, nccl)
    lines += llama_section(llama)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    results = {"env": env, "stages": stages, "mfu": runs, "ddp": {"one": one, "two": two,
               "nccl": nccl, "nccl_probe": probe}, "llama": llama, "chapters": chapters,
               "gpu_util_chapters": util}
    (out / "results.json").write_text(json.dumps(results, indent=1))
    for name in COPIED:
        src = w / name
        if src.is_file() and src.stat().st_size <= MAX_COPY:
            shutil.copyfile(src, out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
