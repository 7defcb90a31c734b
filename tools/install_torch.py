"""Install PyTorch into the course's environment, choosing the build that fits this machine.

Run by ``make`` (``make lab`` / ``make test``) before the course itself is installed, so that
``pip install -e .`` finds torch already there and keeps it.

* A torch that is already importable (Colab's, or yours, visible through the environment) is
  kept, unless ``LLMCOURSE_TORCH`` asks for the other build.
* ``LLMCOURSE_TORCH=auto`` (the default): the CUDA build when ``nvidia-smi`` sees a GPU, else the
  CPU build. ``cpu`` or ``cuda`` forces one.
* The CPU build comes from PyTorch's CPU wheel index (``LLMCOURSE_TORCH_INDEX_URL`` overrides
  it). When that index cannot be reached, a CPU wheel in one of pip's configured ``find-links``
  folders (a local wheelhouse) is used; failing that, the default index's torch is installed
  with a warning (on Linux x86-64 that is the CUDA build, several GB).

Only the standard library is used: this runs before anything else is installed.
"""

from __future__ import annotations

import glob
import os
import platform
import re
import shutil
import subprocess
import sys

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
CHOICES = ("auto", "cpu", "cuda")


def say(msg: str) -> None:
    print(f"[install_torch] {msg}", flush=True)


def pip(*args: str) -> int:
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-compile", *args]
    say("$ " + " ".join(cmd[2:]))
    return subprocess.call(cmd)


def installed_torch() -> tuple[str, bool] | None:
    """(version, is_cuda_build) of an importable torch, or None."""
    code = "import torch; print(torch.__version__); print(torch.version.cuda is not None)"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    version, cuda = out.stdout.split()[-2:]
    return version, cuda == "True"


def has_nvidia_gpu() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def pypi_torch_is_cpu() -> bool:
    """On macOS and on Linux/Windows for Arm, PyPI's torch wheel is already a CPU build."""
    return sys.platform == "darwin" or platform.machine().lower() in ("aarch64", "arm64")


def find_links_dirs() -> list[str]:
    """Folders that pip is configured to read wheels from (``find-links``)."""
    dirs = os.environ.get("PIP_FIND_LINKS", "").split()
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                         text=True)
    for line in out.stdout.splitlines():
        key, _, value = line.partition("=")
        if key.endswith("find-links"):
            dirs += value.strip().strip("'\"").split()
    return [d.removeprefix("file://") for d in dict.fromkeys(dirs) if os.path.isdir(
        d.removeprefix("file://"))]


def local_cpu_wheel() -> str | None:
    """The newest torch ``+cpu`` wheel for this interpreter in a find-links folder, if any."""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    machine = platform.machine().lower()
    best: tuple[tuple[int, ...], str] | None = None
    for folder in find_links_dirs():
        for path in glob.glob(os.path.join(folder, f"torch-*+cpu-{tag}-{tag}-*.whl")):
            name = os.path.basename(path)
            if machine not in name and not (machine == "amd64" and "win_amd64" in name):
                continue
            m = re.match(r"torch-(\d+(?:\.\d+)*)\+cpu", name)
            if m:
                key = (tuple(int(x) for x in m.group(1).split(".")), path)
                best = key if best is None or key > best else best
    return best[1] if best else None


def install_cpu() -> int:
    if pypi_torch_is_cpu():
        return pip("torch")
    index = os.environ.get("LLMCOURSE_TORCH_INDEX_URL", CPU_INDEX)
    if pip("--retries", "1", "--timeout", "20", "torch", "--index-url", index) == 0:
        return 0
    say(f"PyTorch's CPU wheel index ({index}) could not be reached or had no matching wheel.")
    wheel = local_cpu_wheel()
    if wheel:
        say(f"Using the CPU wheel found in pip's find-links folder: {wheel}")
        return pip(wheel)
    say("WARNING: no CPU build found; installing torch from the default index instead. On Linux "
        "x86-64 that is the CUDA build (several GB). To avoid it, set LLMCOURSE_TORCH_INDEX_URL "
        "to a reachable mirror of " + CPU_INDEX + " and run make again.")
    return pip("torch")


def main() -> int:
    choice = os.environ.get("LLMCOURSE_TORCH", "auto").strip().lower() or "auto"
    if choice not in CHOICES:
        say(f"LLMCOURSE_TORCH must be one of {', '.join(CHOICES)}, got {choice!r}")
        return 2
    want_cuda = choice == "cuda" or (choice == "auto" and has_nvidia_gpu())
    have = installed_torch()
    if have is not None:
        version, is_cuda = have
        if choice == "auto" or is_cuda == want_cuda:
            say(f"torch {version} ({'CUDA' if is_cuda else 'CPU'} build) is already installed: "
                "kept")
            return 0
        say(f"torch {version} is installed but LLMCOURSE_TORCH={choice} asks for the "
            f"{'CUDA' if want_cuda else 'CPU'} build: replacing it")
        subprocess.call([sys.executable, "-m", "pip", "uninstall", "-q", "-y", "torch"])
    if want_cuda:
        say("NVIDIA GPU found (or LLMCOURSE_TORCH=cuda): installing the CUDA build of torch")
        return pip("torch")
    say("No NVIDIA GPU (or LLMCOURSE_TORCH=cpu): installing the CPU build of torch")
    return install_cpu()


if __name__ == "__main__":
    sys.exit(main())
