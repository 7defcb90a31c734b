"""Tests of ``python -m llmcourse.pretrain --arch llama``: a ci run, bitwise-exact resume, the
Hugging Face export (``LlamaForCausalLM``), the model it builds, bad inputs."""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from safetensors.torch import load_file

from llmcourse.pretrain import PRESETS, build_model, main
from llmcourse.train import read_metrics

ARGS = ["--preset", "ci", "--arch", "llama", "--max-steps", "12", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("llama_straight")
    return out, main([*ARGS, "--out", str(out)])


def test_llama_ci_run_writes_everything_and_learns(straight):
    out, summary = straight
    assert summary["arch"] == "llama" and summary["step"] == 12 and summary["start_step"] == 0
    for name in ("metrics.jsonl", "model.safetensors", "config.json", "tokenizer.json",
                 "hf/config.json", "hf/model.safetensors", "hf/tokenizer.json"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == "llmcourse.llama.Llama"
    assert saved["config"]["n_kv_head"] == 1 and saved["config"]["n_head"] == 2
    chance = math.log(saved["config"]["vocab_size"])  # the loss of a uniform guess, at step 0
    train = [r for r in read_metrics(out) if r["kind"] == "train"]
    assert train[-1]["step"] == 12 and train[-1]["loss"] < chance - 0.5
    assert summary["val_loss"] < chance - 0.4
    assert set(load_file(out / "model.safetensors")) >= {
        "model.layers.0.self_attn.k_proj.weight", "model.layers.0.mlp.gate_proj.weight"}


def test_llama_cli_resume_is_bitwise_exact(straight, tmp_path):
    out, _ = straight
    main([*ARGS, "--out", str(tmp_path), "--stop-at", "6"])
    assert not (tmp_path / "model.safetensors").exists()
    s = main([*ARGS, "--out", str(tmp_path), "--resume"])
    assert s["start_step"] == 6 and s["step"] == 12
    a, b = load_file(out / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    la = [r["loss"] for r in read_metrics(out) if r["kind"] == "train" and r["step"] > 6]
    lb = [r["loss"] for r in read_metrics(tmp_path) if r["kind"] == "train" and r["step"] > 6]
    assert la == lb
    # resuming these Llama checkpoints as a GPT stops with a message instead of a key error
    with pytest.raises(SystemExit, match="--arch"):
        main(["--preset", "ci", "--arch", "gpt", "--max-steps", "12", "--quiet", "--out",
              str(tmp_path), "--resume"])


def test_llama_hf_export_loads_with_auto_classes_and_matches(straight):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmcourse.llama import Llama, LlamaConfig
    from llmcourse.train import load_weights

    out, _ = straight
    cfg = json.loads((out / "config.json").read_text())["config"]
    ours = load_weights(Llama(LlamaConfig(**cfg)), out / "model.safetensors").eval()
    hf = AutoModelForCausalLM.from_pretrained(out / "hf").eval()
    assert type(hf).__name__ == "LlamaForCausalLM"
    assert hf.config.num_key_value_heads == 1 and hf.config.eos_token_id is not None
    tok = AutoTokenizer.from_pretrained(out / "hf")
    ids = torch.tensor([tok.encode("The for statement is used to iterate")])
    with torch.no_grad():
        assert torch.allclose(ours(ids)[0], hf(ids).logits, atol=1e-4)
    assert torch.equal(Llama.from_pretrained(out / "hf", verbose=False).generate(ids, 5, 0.0),
                       ours.generate(ids, 5, temperature=0))


def test_build_model_sizes_and_bad_inputs():
    from llmcourse.llama import Llama
    from llmcourse.model import GPT

    preset = PRESETS["cpu"]  # 4 layers, 4 heads, 128 wide
    torch.manual_seed(0)
    gpt, llama = build_model(preset, 2048, "gpt"), build_model(preset, 2048, "llama")
    assert isinstance(gpt, GPT) and isinstance(llama, Llama)
    c = llama.config
    assert (c.n_layer, c.n_head, c.n_kv_head, c.n_embd, c.block_size) == (4, 4, 2, 128, 128)
    assert c.intermediate_size == 352 and c.tie_word_embeddings
    assert abs(llama.num_params() / gpt.num_params() - 1) < 0.1  # about the same size
    assert build_model(PRESETS["gpu"], 64, "llama").config.n_kv_head == 3  # 6 heads
    with pytest.raises(ValueError, match="arch"):
        build_model(preset, 2048, "mamba")
    with pytest.raises(TypeError, match="vocab_size"):
        build_model(preset, 2048.0, "llama")
    with pytest.raises(TypeError, match="preset"):
        build_model("cpu", 2048, "llama")
    with pytest.raises(SystemExit):
        main(["--preset", "ci", "--arch", "mamba", "--out", "unused"])
