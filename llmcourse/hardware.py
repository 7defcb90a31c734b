"""Peak throughput of the accelerators the course meets, shared by the training engine (MFU)
and the scaling calculator (GPU-hours).

Dense (no 2:4 sparsity) tensor-core peaks in FLOP/s from the vendors' data sheets:
NVIDIA T4 (2018), L4 (2023), A100 (2020, SXM and PCIe share the peak), H100 SXM5 and PCIe
(2022), H200 (2024, the H100 SXM chip with more memory), the NVL cards (H100 NVL 2023, H200
NVL 2024: PCIe boards at a lower power limit) and the GH200 Grace Hopper superchip (its GPU
computes as an H100 SXM). ``None``: the format has no tensor-core path on that chip (the T4 has
no bf16).
"""

from __future__ import annotations

import re

import torch

# name → {precision: peak FLOP/s}; "memory_gb" is the card's memory in GB (1e9 bytes).
GPU_SPECS: dict[str, dict[str, float | None]] = {
    "T4": {"fp32": 8.1e12, "tf32": None, "fp16": 65e12, "bf16": None, "memory_gb": 16},
    "L4": {"fp32": 30.3e12, "tf32": 60e12, "fp16": 121e12, "bf16": 121e12, "memory_gb": 24},
    "A100": {"fp32": 19.5e12, "tf32": 156e12, "fp16": 312e12, "bf16": 312e12, "memory_gb": 80},
    "A100-40GB": {"fp32": 19.5e12, "tf32": 156e12, "fp16": 312e12, "bf16": 312e12, "memory_gb": 40},
    "H100-SXM": {"fp32": 67e12, "tf32": 494.5e12, "fp16": 989.5e12, "bf16": 989.5e12, "memory_gb": 80},
    "H100-PCIe": {"fp32": 51e12, "tf32": 378e12, "fp16": 756e12, "bf16": 756e12, "memory_gb": 80},
    "H200": {"fp32": 67e12, "tf32": 494.5e12, "fp16": 989.5e12, "bf16": 989.5e12, "memory_gb": 141},
    # NVIDIA's H100 and H200 product pages (nvidia.com/en-us/data-center/h100/, .../h200/), the
    # NVL columns: FP32 60 TFLOPS, TF32 835 and BF16/FP16 1,671 TFLOPS "with sparsity" (half
    # of that dense), 94 GB (H100 NVL) and 141 GB (H200 NVL).
    "H100-NVL": {"fp32": 60e12, "tf32": 417.5e12, "fp16": 835.5e12, "bf16": 835.5e12,
                 "memory_gb": 94},
    "H200-NVL": {"fp32": 60e12, "tf32": 417.5e12, "fp16": 835.5e12, "bf16": 835.5e12,
                 "memory_gb": 141},
    # GH200 data sheet (nvidia.com/en-us/data-center/grace-hopper-superchip/): FP32 67 TFLOPS,
    # TF32 494 and BF16/FP16 990 TFLOPS dense (989 / 1,979 with sparsity), the H100 SXM's
    # figures; 96 GB HBM3 ("GH200 480GB") or 144 GB HBM3e ("GH200 144G HBM3e").
    "GH200": {"fp32": 67e12, "tf32": 494.5e12, "fp16": 989.5e12, "bf16": 989.5e12,
              "memory_gb": 96},
    "GH200-144GB": {"fp32": 67e12, "tf32": 494.5e12, "fp16": 989.5e12, "bf16": 989.5e12,
                    "memory_gb": 144},
}
ALIASES = {"H100": "H100-SXM", "A100-80GB": "A100"}
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


def gpu_key(gpu: str) -> str:
    """Normalise a GPU name to a table key: ``"a100"``, ``"H100"``, or what CUDA reports
    (``"NVIDIA H100 80GB HBM3"``, ``"Tesla T4"``, ``"NVIDIA A100-SXM4-40GB"``).

    Names are matched word by word, so an L40S is not taken for an L4, an H100 NVL for an H100
    SXM nor a GH200 for an H200 (``"NVIDIA H100 NVL"``, ``"NVIDIA GH200 480GB"`` are listed): a
    GPU that is not in the table raises ``ValueError`` listing the valid names.
    """
    if not isinstance(gpu, str):
        raise TypeError(f"gpu must be a str, got {type(gpu).__name__}")
    n = gpu.upper().replace("NVIDIA", "").strip()
    for key in (*GPU_SPECS, *ALIASES):
        if n == key.upper():
            return ALIASES.get(key, key)
    words = set(re.split(r"[\s_-]+", n))
    if "GH200" in words:
        return "GH200-144GB" if words & {"144G", "144GB", "HBM3E"} else "GH200"
    if "H200" in words:
        return "H200-NVL" if "NVL" in words else "H200"
    if "H100" in words:
        if "NVL" in words:
            return "H100-NVL"
        return "H100-PCIe" if "PCIE" in words else "H100-SXM"
    if "A100" in words:
        return "A100-40GB" if "40GB" in words else "A100"
    for key in ("L4", "T4"):
        if key in words:
            return key
    raise ValueError(f"unknown gpu {gpu!r}; valid: {', '.join([*GPU_SPECS, *ALIASES])}")


def peak_flops(gpu: str, precision: str = "bf16") -> float:
    """Peak dense FLOP/s of ``gpu`` in ``precision`` (fp32, tf32, fp16, bf16)."""
    if not isinstance(precision, str):
        raise TypeError(f"precision must be a str, one of {', '.join(PRECISIONS)}; got "
                        f"{type(precision).__name__}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    key = gpu_key(gpu)
    value = GPU_SPECS[key][precision]
    if value is None:
        raise ValueError(f"precision={precision!r} is not available on {key} (no {precision} "
                         f"tensor cores); use one of "
                         f"{', '.join(p for p in PRECISIONS if GPU_SPECS[key][p])}")
    return float(value)


def native_bf16() -> bool:
    """Whether the CUDA device computes bf16 in hardware (compute capability 8.0+: A100, L4, H100).

    ``torch.cuda.is_bf16_supported()`` also answers ``True`` on a T4 (capability 7.5), where
    bf16 is emulated and slow; there the right choice is fp16 with loss scaling.
    """
    return torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


def current_gpu() -> str | None:
    """The table key of the CUDA device in use, or ``None`` on CPU/MPS or an unlisted GPU."""
    if not torch.cuda.is_available():
        return None
    try:
        return gpu_key(torch.cuda.get_device_name())
    except ValueError:
        return None
