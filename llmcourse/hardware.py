"""Peak throughput of the accelerators the course meets, shared by the training engine (MFU)
and the scaling calculator (GPU-hours).

Dense (no 2:4 sparsity) tensor-core peaks in FLOP/s from the vendors' data sheets:
NVIDIA T4 (2018), L4 (2023), A100 (2020, SXM and PCIe share the peak), H100 SXM5 and PCIe
(2022), H200 (2024, the H100 SXM chip with more memory). ``None``: the format has no tensor-core
path on that chip (the T4 has no bf16).
"""

from __future__ import annotations

import torch

# name → {precision: peak FLOP/s}; "memory_gb" is the card's memory in GB (1e9 bytes).
GPU_SPECS: dict[str, dict[str, float | None]] = {
    "T4": {"fp32": 8.1e12, "tf32": None, "fp16": 65e12, "bf16": None, "memory_gb": 16},
    "L4": {"fp32": 30.3e12, "tf32": 60e12, "fp16": 121e12, "bf16": 121e12, "memory_gb": 24},
    "A100": {"fp32": 19.5e12, "tf32": 156e12, "fp16": 312e12, "bf16": 312e12, "memory_gb": 80},
    "H100-SXM": {"fp32": 67e12, "tf32": 494.5e12, "fp16": 989.5e12, "bf16": 989.5e12, "memory_gb": 80},
    "H100-PCIe": {"fp32": 51e12, "tf32": 378e12, "fp16": 756e12, "bf16": 756e12, "memory_gb": 80},
    "H200": {"fp32": 67e12, "tf32": 494.5e12, "fp16": 989.5e12, "bf16": 989.5e12, "memory_gb": 141},
}
ALIASES = {"H100": "H100-SXM", "A100-80GB": "A100", "A100-40GB": "A100"}
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


def gpu_key(name: str) -> str:
    """Normalise a GPU name (``"a100"``, ``"H100"``, ``"NVIDIA H100 80GB HBM3"``) to a table key."""
    if not isinstance(name, str):
        raise TypeError(f"gpu must be a str, got {type(name).__name__}")
    n = name.upper().replace("NVIDIA", "").strip()
    if n in GPU_SPECS:
        return n
    for key in (*ALIASES, *GPU_SPECS):
        if n == key.upper():
            return ALIASES.get(key, key)
    if "H200" in n:
        return "H200"
    if "H100" in n:
        return "H100-PCIe" if "PCIE" in n else "H100-SXM"
    for key in ("A100", "L4", "T4"):
        if key in n.split() or n.startswith(key):
            return key
    raise ValueError(f"unknown gpu {name!r}; valid: {', '.join([*GPU_SPECS, *ALIASES])}")


def peak_flops(gpu: str, precision: str = "bf16") -> float:
    """Peak dense FLOP/s of ``gpu`` in ``precision`` (fp32, tf32, fp16, bf16)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    key = gpu_key(gpu)
    value = GPU_SPECS[key][precision]
    if value is None:
        raise ValueError(f"{key} has no {precision} tensor cores; use one of "
                         f"{', '.join(p for p in PRECISIONS if GPU_SPECS[key][p])}")
    return float(value)


def current_gpu() -> str | None:
    """The table key of the CUDA device in use, or ``None`` on CPU/MPS or an unlisted GPU."""
    if not torch.cuda.is_available():
        return None
    try:
        return gpu_key(torch.cuda.get_device_name())
    except ValueError:
        return None
