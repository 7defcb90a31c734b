"""tools/install_torch.py: which torch build `make` installs, decided without installing it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("install_torch", ROOT / "tools" / "install_torch.py")
it = importlib.util.module_from_spec(spec)
spec.loader.exec_module(it)


@pytest.fixture
def calls(monkeypatch):
    """Record pip installs instead of running them; by default every install succeeds."""
    record: list[tuple[str, ...]] = []
    monkeypatch.setattr(it, "pip", lambda *a: record.append(a) or 0)
    monkeypatch.setattr(it.subprocess, "call", lambda *a, **k: 0)
    monkeypatch.setattr(it, "pypi_torch_is_cpu", lambda: False)
    return record


def test_installed_torch_is_kept(monkeypatch, calls):
    monkeypatch.setenv("LLMCOURSE_TORCH", "auto")
    monkeypatch.setattr(it, "installed_torch", lambda: ("2.5.0+cu121", True))
    monkeypatch.setattr(it, "has_nvidia_gpu", lambda: False)
    assert it.main() == 0
    assert calls == []


def test_forcing_the_other_build_replaces_it(monkeypatch, calls):
    monkeypatch.setenv("LLMCOURSE_TORCH", "cpu")
    monkeypatch.setattr(it, "installed_torch", lambda: ("2.5.0+cu121", True))
    assert it.main() == 0
    assert calls and "--index-url" in calls[0] and it.CPU_INDEX in calls[0]


@pytest.mark.parametrize("gpu, want_index", [(False, True), (True, False)])
def test_auto_picks_by_gpu(monkeypatch, calls, gpu, want_index):
    monkeypatch.setenv("LLMCOURSE_TORCH", "auto")
    monkeypatch.setattr(it, "installed_torch", lambda: None)
    monkeypatch.setattr(it, "has_nvidia_gpu", lambda: gpu)
    assert it.main() == 0
    assert ("--index-url" in calls[0]) is want_index
    assert calls[0][-1] == (it.CPU_INDEX if want_index else "torch")


def test_unreachable_cpu_index_falls_back_to_a_local_cpu_wheel(monkeypatch, tmp_path, capsys):
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    machine = it.platform.machine().lower()
    for v in ("2.4.0", "2.13.0"):
        (tmp_path / f"torch-{v}+cpu-{tag}-{tag}-manylinux_2_28_{machine}.whl").touch()
    (tmp_path / f"torch-2.99.0-{tag}-{tag}-manylinux_2_28_{machine}.whl").touch()  # a CUDA build
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setattr(it, "pypi_torch_is_cpu", lambda: False)
    record = []
    # the CPU index fails; the local wheel install succeeds
    monkeypatch.setattr(it, "pip", lambda *a: record.append(a) or (1 if "--index-url" in a else 0))
    assert it.install_cpu() == 0
    assert record[-1] == (str(tmp_path / f"torch-2.13.0+cpu-{tag}-{tag}-manylinux_2_28_{machine}.whl"),)
    assert "could not be reached" in capsys.readouterr().out


def test_no_cpu_build_anywhere_warns_loudly(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    monkeypatch.setattr(it, "find_links_dirs", lambda: [str(tmp_path)])
    monkeypatch.setattr(it, "pypi_torch_is_cpu", lambda: False)
    record = []
    monkeypatch.setattr(it, "pip", lambda *a: record.append(a) or (1 if "--index-url" in a else 0))
    assert it.install_cpu() == 0
    assert record[-1] == ("torch",)
    assert "WARNING" in capsys.readouterr().out


def test_bad_choice_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("LLMCOURSE_TORCH", "rocm")
    assert it.main() == 2
    assert "LLMCOURSE_TORCH must be one of auto, cpu, cuda" in capsys.readouterr().out
