import dataclasses

import pytest

from llmcourse.profiles import PROFILE_NAMES, Profile, profile


def test_env_var_selects(monkeypatch):
    for name in PROFILE_NAMES:
        monkeypatch.setenv("LLMCOURSE_PROFILE", name)
        assert profile().name == name
    monkeypatch.setenv("LLMCOURSE_PROFILE", " CI ")
    assert profile().name == "ci"


def test_default_without_env(monkeypatch):
    import torch

    monkeypatch.delenv("LLMCOURSE_PROFILE", raising=False)
    assert profile().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_bad_name_lists_valid(monkeypatch):
    with pytest.raises(ValueError, match="ci, cpu, gpu"):
        profile("tpu")
    monkeypatch.setenv("LLMCOURSE_PROFILE", "fast")
    with pytest.raises(ValueError, match="LLMCOURSE_PROFILE"):
        profile()
    with pytest.raises(TypeError):
        profile(3)


def test_frozen_and_scaled():
    p = profile("ci")
    assert isinstance(p, Profile)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "gpu"
    with pytest.raises(TypeError):
        p.gpt["n_layer"] = 9
    assert profile("ci").gpt["n_embd"] < profile("cpu").gpt["n_embd"] < profile("gpu").gpt["n_embd"]
    assert profile("gpu").precision in ("bf16", "fp16")
    assert profile("cpu").pick(ci="a", cpu="b", gpu="c") == "b"
