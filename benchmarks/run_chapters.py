"""Execute copies of the chapter notebooks under a profile; record wall time, pass/fail, numbers.

    LLMCOURSE_PROFILE=gpu python benchmarks/run_chapters.py --out-dir /tmp/ch --jobs 10 \\
        --budget 300 --csv chapters.csv --md chapters.md --outputs outputs.txt

Each chapter ``chapters/NN_*.ipynb`` is read, executed top to bottom by a fresh Jupyter kernel
(``nbclient``, working directory ``chapters/`` as under nbval), and the executed copy is written
to ``--out-dir``: the stored notebooks are never touched (they stay executed under ``ci``).
Every chapter runs in its own child process with a deadline (the smaller of ``--timeout`` and
what is left of ``--budget``). At the deadline the child kills its kernel's process group and
reports how far it got (cells done, the cell it was in). ``--jobs`` chapters run at a time;
with more than one at a time the wall times are upper bounds (they share the GPU and CPUs), and
the table says how many ran together.

Per chapter the CSV and Markdown tables give: status (pass, error, timeout), wall seconds, code
cells done / total, the three slowest cells (index: seconds, first line), the error, and
*headline numbers*: printed lines that mention a loss, accuracy, perplexity, tokens/s, MFU,
BLEU, F1, steps or seconds (the last few of them). ``--outputs`` collects all printed text.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = ROOT / "chapters"
HEADLINE = re.compile(r"loss|accura|acc\b|perplex|ppl|tokens/s|MFU|BLEU|F1|steps|seconds|\d s\b|"
                      r"ms/step|TFLOP|GFLOP|speed|faster|→", re.IGNORECASE)
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# ----------------------------------------------------------------------------- one chapter
def run_one(notebook: Path, executed: Path, status_path: Path, cell_timeout: int) -> int:
    """Execute ``notebook`` into ``executed``; keep ``status_path`` (JSON) up to date.

    Returns 0 (pass), 1 (a cell raised) or 124 (stopped by SIGUSR1 at the deadline).
    """
    early = signal.signal(signal.SIGUSR1, lambda *_: os._exit(124))  # a deadline during imports
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:  # a copy with no stored (ci) outputs: partial runs show only new ones
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    status = {"chapter": notebook.stem, "status": "running", "cells_total": len(code),
              "cells_done": 0, "current_cell": None, "cell_seconds": {}, "kernel_pid": None,
              "started": time.time(), "error": None}

    def save() -> None:
        status["elapsed_s"] = round(time.time() - status["started"], 1)
        tmp = status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(status))
        os.replace(tmp, status_path)

    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(notebook.parent)}},
                            record_timing=True)
    started: dict[int, float] = {}

    def kernel_pid() -> int | None:
        km = getattr(client, "km", None)
        prov = getattr(km, "provisioner", None)
        return getattr(prov, "pid", None) or getattr(getattr(km, "kernel", None), "pid", None)

    def on_start(**_: object) -> None:
        status["kernel_pid"] = kernel_pid()
        save()

    def on_execute(cell, cell_index: int, **_: object) -> None:
        started[cell_index] = time.time()
        status["current_cell"] = {"index": cell_index, "first_line": _first_line(cell.source)}
        save()

    def on_executed(cell, cell_index: int, **_: object) -> None:
        if cell.cell_type == "code":
            status["cells_done"] += 1
            status["cell_seconds"][str(cell_index)] = round(time.time() - started[cell_index], 2)
        save()

    client.on_notebook_start = on_start
    client.on_cell_execute = on_execute
    client.on_cell_executed = on_executed

    def deadline(signum: int, frame: object) -> None:  # the parent's SIGUSR1
        status["status"] = "timeout"
        status["kernel_pid"] = status["kernel_pid"] or kernel_pid()
        _kill_group(status["kernel_pid"])
        save()
        _write_quietly(nb, executed)
        os._exit(124)

    # SIGUSR1, not SIGTERM: nbclient hooks SIGINT and SIGTERM itself (it cancels the run)
    signal.signal(signal.SIGUSR1, deadline)
    del early
    save()
    rc = 0
    try:
        client.execute()
        status["status"] = "pass"
    except CellExecutionError as err:
        status["status"], rc = "error", 1
        text = ANSI.sub("", str(err))
        status["error"] = _error_line(text)
        status["traceback_tail"] = text.strip().splitlines()[-12:]
    except (Exception, asyncio.CancelledError) as err:  # a dead kernel, a cell's timeout …
        status["status"], rc = "error", 1
        status["error"] = f"{type(err).__name__}: {ANSI.sub('', str(err)).strip()[:300]}"
    finally:
        _kill_group(status["kernel_pid"])  # a kernel is its own session: it would outlive us
    save()
    _write_quietly(nb, executed)
    return rc


def _first_line(source: str) -> str:
    lines = [ln for ln in source.splitlines() if ln.strip() and not ln.startswith("# NBVAL")]
    return (lines[0] if lines else "")[:80]


def _error_line(text: str) -> str:
    for line in reversed(text.strip().splitlines()):
        if re.match(r"^[A-Za-z_.]*(Error|Exception|Interrupt)\b", line.strip()):
            return line.strip()[:300]
    return text.strip().splitlines()[-1][:300] if text.strip() else "error"


def _kill_group(pid: int | None) -> None:
    """SIGKILL the process group led by ``pid`` (a Jupyter kernel starts its own session)."""
    if not pid:
        return
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _write_quietly(nb, path: Path) -> None:
    try:
        import nbformat

        nbformat.write(nb, path)
    except Exception as err:  # a half-executed notebook that does not validate
        print(f"could not write {path}: {err}", file=sys.stderr)


# ----------------------------------------------------------------------------- all chapters
def printed_text(executed: Path) -> list[str]:
    """The text a notebook printed: stream outputs and plain-text results, line by line."""
    if not executed.is_file():
        return []
    nb = json.loads(executed.read_text())
    lines = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                text = out.get("text", "")
            elif out.get("output_type") in ("execute_result", "display_data"):
                text = out.get("data", {}).get("text/plain", "")
                if "text/html" in out.get("data", {}) or "application/vnd.plotly.v1+json" in \
                        out.get("data", {}):
                    continue  # a figure's repr says nothing
            else:
                continue
            text = "".join(text) if isinstance(text, list) else text
            lines += [ANSI.sub("", ln) for ln in text.splitlines() if ln.strip()]
    return lines


def headline(lines: list[str], keep: int = 4) -> str:
    """The last ``keep`` printed lines that look like results (see ``HEADLINE``)."""
    hits = [ln.strip()[:140] for ln in lines if HEADLINE.search(ln) and re.search(r"\d", ln)]
    return " | ".join(hits[-keep:])


def run_all(args: argparse.Namespace) -> list[dict]:
    """Run the chosen chapters ``args.jobs`` at a time; return one row per chapter."""
    chosen = sorted(CHAPTERS.glob("[0-9][0-9]_*.ipynb"))
    if args.chapters:
        chosen = [p for p in chosen if p.name[:2] in args.chapters or p.stem in args.chapters]
        if not chosen:
            raise SystemExit(f"no chapter matches {args.chapters}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    pending = list(chosen)
    running: dict[str, tuple[subprocess.Popen, Path, float, float]] = {}
    rows: list[dict] = []
    env = {**os.environ}
    while pending or running:
        while pending and len(running) < args.jobs:
            nb = pending.pop(0)
            left = args.budget - (time.time() - t0)
            limit = min(args.timeout, left)
            if left < min(10, args.timeout):  # not worth starting
                rows.append(_row(nb, args, "skipped (budget spent)", 0.0, None, []))
                continue
            status = args.out_dir / f"{nb.stem}.status.json"
            executed = args.out_dir / f"{nb.stem}.ipynb"
            cmd = [sys.executable, __file__, "--one", str(nb), "--executed", str(executed),
                   "--status", str(status), "--cell-timeout", str(int(limit) + 5)]
            proc = subprocess.Popen(cmd, env=env, cwd=str(CHAPTERS))
            running[nb.stem] = (proc, status, time.time(), limit)
            print(f"[chapters] start {nb.stem} (deadline {limit:.0f} s)", flush=True)
        time.sleep(0.5)
        for stem, (proc, status, start, limit) in list(running.items()):
            over = time.time() - start > limit
            if proc.poll() is None and not over:
                continue
            if proc.poll() is None:  # the deadline: let it kill its kernel, then make sure
                proc.send_signal(signal.SIGUSR1)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            wall = time.time() - start
            info = json.loads(status.read_text()) if status.is_file() else {}
            _kill_group(info.get("kernel_pid"))
            state = info.get("status", "running")
            if state == "running":
                state = "timeout" if over else "error"
            if proc.returncode not in (0, 1, 124) and state == "pass":
                state = "error"
            nb = CHAPTERS / f"{stem}.ipynb"
            rows.append(_row(nb, args, state, wall, info, printed_text(args.out_dir / f"{stem}.ipynb")))
            print(f"[chapters] {stem}: {state} in {wall:.1f} s "
                  f"({info.get('cells_done', 0)}/{info.get('cells_total', '?')} cells)", flush=True)
            del running[stem]
    order = {p.stem: i for i, p in enumerate(chosen)}
    return sorted(rows, key=lambda r: order.get(r["chapter"], 99))


def _row(nb: Path, args: argparse.Namespace, state: str, wall: float, info: dict | None,
         lines: list[str]) -> dict:
    info = info or {}
    secs = info.get("cell_seconds", {})
    slow = sorted(secs.items(), key=lambda kv: -kv[1])[:3]
    cells = {}
    if slow:
        source = json.loads(nb.read_text())["cells"]
        cells = {int(i): _first_line("".join(source[int(i)]["source"])) for i, _ in slow}
    current = info.get("current_cell") or {}
    error = info.get("error") or ""
    if state == "timeout" and current:
        error = f"stopped in cell {current.get('index')}: {current.get('first_line', '')}"
    return {"chapter": nb.stem, "status": state, "wall_s": round(wall, 1),
            "cells": f"{info.get('cells_done', 0)}/{info.get('cells_total', '?')}",
            "profile": os.environ.get("LLMCOURSE_PROFILE", "(default)"), "jobs": args.jobs,
            "slowest_cells": "; ".join(f"[{i}] {s:.0f}s {cells.get(int(i), '')}" for i, s in slow),
            "error": error, "headline": headline(lines), "_lines": lines,
            "_traceback": info.get("traceback_tail", [])}


def write_tables(rows: list[dict], args: argparse.Namespace) -> None:
    """Write the CSV, the Markdown table and the printed text of every chapter."""
    cols = ["chapter", "status", "wall_s", "cells", "profile", "jobs", "slowest_cells", "error",
            "headline"]
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    if args.md:
        esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(esc(r[c]) for c in cols) + " |" for r in rows]
        Path(args.md).write_text("\n".join(lines) + "\n")
    if args.outputs:
        with open(args.outputs, "w") as f:
            for r in rows:
                f.write(f"\n===== {r['chapter']}: {r['status']} in {r['wall_s']} s =====\n")
                if r["_traceback"]:
                    f.write("traceback (last lines):\n" + "\n".join(r["_traceback"]) + "\n---\n")
                f.write("\n".join(r["_lines"][-args.max_lines:]) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--executed", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--status", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--cell-timeout", type=int, default=900, help=argparse.SUPPRESS)
    ap.add_argument("--chapters", nargs="*", default=None, help="e.g. 00 06 (default: all)")
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/llmcourse-chapters"))
    ap.add_argument("--jobs", type=int, default=1, help="chapters at a time")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per chapter")
    ap.add_argument("--budget", type=float, default=3600, help="seconds for all chapters")
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--md", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--outputs", type=Path, default=None, help="all printed text, per chapter")
    ap.add_argument("--max-lines", type=int, default=150, help="printed lines kept per chapter")
    args = ap.parse_args(argv)
    if args.one is not None:
        return run_one(args.one, args.executed, args.status, args.cell_timeout)
    for name in ("jobs", "max_lines"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.timeout <= 0 or args.budget <= 0:
        ap.error("--timeout and --budget must be > 0")
    rows = run_all(args)
    write_tables(rows, args)
    if args.json:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if not k.startswith("_")}
                                         for r in rows], indent=1))
    for r in rows:
        print(f"{r['chapter']:<40} {r['status']:<8} {r['wall_s']:>7.1f} s  {r['cells']:>7}  "
              f"{r['error'][:60]}")
    return 0 if all(r["status"] == "pass" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
