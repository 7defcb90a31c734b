"""Tests of the pretraining CLI: a ci run, bitwise-exact resume, the HF export, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from llmcourse.pretrain import PRESETS, main
from llmcourse.train import read_metrics


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight")
    summary = main(["--preset", "ci", "--out", str(out), "--max-steps", "40", "--quiet"])
    return out, summary


def test_ci_run_writes_everything(straight):
    out, summary = straight
    assert summary["step"] == 40 and summary["start_step"] == 0
    for name in ("metrics.jsonl", "model.safetensors", "config.json", "tokenizer.json",
                 "data/train.bin", "data/val.bin", "hf/config.json", "hf/model.safetensors",
                 "hf/tokenizer.json"):
        assert (out / name).is_file(), name
    recs = read_metrics(out)
    train = [r for r in recs if r["kind"] == "train"]
    assert train[-1]["step"] == 40 and train[-1]["loss"] < train[0]["loss"]
    assert any(r["kind"] == "eval" for r in recs)
    assert summary["val_loss"] is not None


def test_cli_resume_is_bitwise_exact(straight, tmp_path):
    out, _ = straight
    main(["--preset", "ci", "--out", str(tmp_path), "--max-steps", "40", "--stop-at", "20", "--quiet"])
    assert not (tmp_path / "model.safetensors").exists()
    s = main(["--preset", "ci", "--out", str(tmp_path), "--max-steps", "40", "--resume", "--quiet"])
    assert s["start_step"] == 20 and s["step"] == 40
    a, b = load_file(out / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    la = [r["loss"] for r in read_metrics(out) if r["kind"] == "train" and r["step"] > 20]
    lb = [r["loss"] for r in read_metrics(tmp_path) if r["kind"] == "train" and r["step"] > 20]
    assert la == lb


def test_hf_export_matches(straight):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmcourse.model import GPT, GPTConfig
    from llmcourse.train import load_weights

    out, _ = straight
    import json

    cfg = json.loads((out / "config.json").read_text())["config"]
    ours = load_weights(GPT(GPTConfig(**cfg)), out / "model.safetensors").eval()
    hf = AutoModelForCausalLM.from_pretrained(out / "hf").eval()
    tok = AutoTokenizer.from_pretrained(out / "hf")
    ids = torch.tensor([tok.encode("The for statement is used to iterate")])
    with torch.no_grad():
        assert torch.allclose(ours(ids)[0], hf(ids).logits, atol=1e-4)


def test_bad_inputs(tmp_path, straight):
    with pytest.raises(SystemExit):
        main(["--preset", "nope", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="max-steps"):
        main(["--preset", "ci", "--out", str(tmp_path), "--max-steps", "0"])
    with pytest.raises(SystemExit, match="--resume"):
        main(["--preset", "ci", "--out", str(straight[0]), "--quiet"])
    assert set(PRESETS) == {"ci", "cpu", "gpu", "gpt2-124m"}


@pytest.mark.slow
def test_module_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "llmcourse.pretrain", "--preset", "ci", "--out",
                           str(tmp_path), "--max-steps", "3"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '"step": 3' in proc.stdout
    assert (tmp_path / "model.safetensors").is_file()


@pytest.mark.slow
def test_cli_under_torchrun_equals_one_process(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    args = ["--preset", "ci", "--max-steps", "4", "--quiet", "--device", "cpu"]
    for cmd, out in (([sys.executable, "-m", "llmcourse.pretrain"], tmp_path / "one"),
                     ([sys.executable, "-m", "torch.distributed.run", "--standalone",
                       "--nproc_per_node=2", "-m", "llmcourse.pretrain"], tmp_path / "two")):
        proc = subprocess.run([*cmd, *args, "--out", str(out)], capture_output=True, text=True,
                              timeout=300, env=env)
        assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    diff = max((a[k] - b[k]).abs().max().item() for k in a)
    # 1e-4, not 1e-5: the CLI keeps AdamW's eps=1e-8, which turns 1-ulp differences of near-zero
    # gradients (summed in another order by two processes) into ~2e-5 weight differences after a
    # few steps (tests/test_ddp.py checks the Trainer at 1e-5 with eps=1e-6).
    assert diff < 1e-4, diff


# ----------------------------------------------------------------------------- data cache
def _small(**kw):
    from dataclasses import replace

    return replace(PRESETS["ci"], corpus_chars=30_000, **kw)


def test_prepare_data_reuses_only_data_made_the_same_way(tmp_path, capsys):
    from llmcourse.pretrain import data_key, prepare_data

    tok, train, _ = prepare_data(_small(), tmp_path)
    made = json.loads((tmp_path / "data" / "source.json").read_text())
    assert made["key"] == data_key(_small()) and capsys.readouterr().err == ""
    stamp = (tmp_path / "data" / "train.bin").stat().st_mtime_ns
    tok2, train2, _ = prepare_data(_small(), tmp_path)  # the same preset: reused as it is
    assert (tmp_path / "data" / "train.bin").stat().st_mtime_ns == stamp
    assert tok2.get_vocab() == tok.get_vocab() and (train2 == train).all()
    assert capsys.readouterr().err == ""

    # another vocabulary in the same folder (--preset cpu where ci ran): rebuilt, and said why
    tok3, train3, _ = prepare_data(_small(vocab_size=600), tmp_path)
    assert "vocab_size 512 -> 600" in capsys.readouterr().err
    assert tok3.get_vocab_size() == 600 and tok.get_vocab_size() == 512
    assert int(train3.max()) >= 512  # ids only the new tokenizer has

    # a tokenizer swapped under the data, or no record of what made it: rebuilt
    (tmp_path / "tokenizer.json").write_text(tok.to_str())
    prepare_data(_small(vocab_size=600), tmp_path)
    assert "tokenizer.json is not the tokenizer" in capsys.readouterr().err
    (tmp_path / "data" / "source.json").unlink()
    prepare_data(_small(vocab_size=600), tmp_path)
    assert "source.json (what made the data) is missing" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.tmp"))


def test_resume_refuses_changed_options_unless_allowed(straight, tmp_path, capsys):
    import shutil

    out, _ = straight
    shutil.copytree(out / "data", tmp_path / "data")  # the same preset's data: reused
    shutil.copy(out / "tokenizer.json", tmp_path)
    base = ["--preset", "ci", "--out", str(tmp_path), "--quiet"]
    main([*base, "--max-steps", "8", "--stop-at", "4"])
    with pytest.raises(SystemExit, match=r"max_steps 8 -> 12.*--allow-change"):
        main([*base, "--max-steps", "12", "--resume"])
    with pytest.raises(SystemExit, match="--allow-change 'max_step'"):
        main([*base, "--max-steps", "12", "--resume", "--allow-change", "max_step"])
    with pytest.raises(SystemExit, match="only applies with --resume"):
        main([*base, "--allow-change", "max_steps"])
    s = main([*base, "--max-steps", "12", "--resume", "--allow-change", "max_steps",
              "--allow-change", "warmup_steps"])
    assert s["start_step"] == 4 and s["step"] == 12
    assert "rebuilding" not in capsys.readouterr().err


def test_resume_refuses_checkpoints_of_another_presets_data(straight):
    out, _ = straight
    with pytest.raises(SystemExit, match=r"vocab_size 512 -> 2048.*--preset it was started"):
        main(["--preset", "cpu", "--out", str(out), "--resume", "--quiet"])
    assert (out / "data" / "source.json").is_file()  # nothing was rebuilt


def test_main_refuses_a_bad_argv():
    with pytest.raises(TypeError, match="argv"):
        main("--preset ci")


def test_a_killed_exports_temp_files_are_removed(straight):
    out, _ = straight
    stale = [out / ".model.safetensors.123.0123abcd.tmp", out / ".config.json.9.ffffffff.tmp"]
    mine = out / "notes.tmp"
    for p in [*stale, mine]:
        p.write_text("half")
    s = main(["--preset", "ci", "--out", str(out), "--max-steps", "40", "--resume", "--quiet"])
    assert s["start_step"] == 40 and not any(p.exists() for p in stale) and mine.exists()
    mine.unlink()


# ----------------------------------------------------------------------------- corpus and plan
def test_run_plan_arithmetic_and_bad_inputs():
    from llmcourse.pretrain import run_plan

    p = run_plan(n_train_tokens=1_000_000, tokens_per_step=16 * 64, max_steps=500, n_params=50_000)
    assert p["run_tokens"] == 512_000 and p["epochs"] == pytest.approx(0.512)
    assert p["tokens_per_param"] == pytest.approx(10.24) and p["params"] == 50_000
    for name, bad in (("n_train_tokens", 0), ("tokens_per_step", -1), ("max_steps", 0),
                      ("n_params", 0)):
        kw = {"n_train_tokens": 10, "tokens_per_step": 10, "max_steps": 10, "n_params": 10}
        with pytest.raises(ValueError, match=name):
            run_plan(**{**kw, name: bad})
    with pytest.raises(TypeError, match="max_steps"):
        run_plan(10, 10, 2.5, 10)


def test_presets_pick_an_online_corpus_only_when_online(monkeypatch):
    from dataclasses import replace

    from llmcourse.data import hub_revision
    from llmcourse.pretrain import corpus_plan, data_key

    want = {"cpu": "tinystories", "gpu": "fineweb-edu", "gpt2-124m": "fineweb-edu"}
    for name, hub in want.items():
        off, on = corpus_plan(PRESETS[name], online=False), corpus_plan(PRESETS[name], online=True)
        assert off["corpus"] == ["python-stdlib-code"] and off["copy"] == "offline"
        assert on["corpus"] == [hub] and on["copy"] == "online"
        assert on["max_tokens"] == PRESETS[name].online_tokens and hub_revision(hub) in on["source"][0]
        assert data_key(PRESETS[name], online=True) != data_key(PRESETS[name], online=False)
    ci = PRESETS["ci"]
    assert corpus_plan(ci, online=True) == corpus_plan(ci, online=False)  # ci never streams
    assert corpus_plan(ci, online=False)["source"][0].startswith("CPython ")
    monkeypatch.setenv("LLMCOURSE_ONLINE", "1")
    assert data_key(PRESETS["cpu"])["corpus"] == ["tinystories"]
    monkeypatch.delenv("LLMCOURSE_ONLINE")
    assert data_key(PRESETS["cpu"])["corpus"] == ["python-stdlib-code"]
    with pytest.raises(ValueError, match="online_tokens is required"):
        replace(ci, online_corpus="fineweb-edu")
    with pytest.raises(ValueError, match="online_tokens"):
        replace(ci, online_tokens=10)
    with pytest.raises(ValueError, match="online_corpus"):
        replace(ci, online_corpus="python-reference", online_tokens=10)
    with pytest.raises(TypeError, match="online"):
        corpus_plan(ci, online="yes")


def test_a_run_reports_its_plan(straight):
    from llmcourse.pretrain import build_model, run_plan

    out, summary = straight
    plan, line = summary["plan"], summary["plan_line"]
    assert plan["corpus"] == ["python-reference"] and plan["copy"] == "offline"
    from llmcourse.data import open_token_file

    n_params = sum(p.numel() for p in build_model(PRESETS["ci"], 512).parameters())  # vocab 512
    assert plan["params"] == n_params
    assert plan["run_tokens"] == 40 * 16 * 64 == summary["tokens"]
    assert plan["train_tokens"] == len(open_token_file(out / "data" / "train.bin"))
    assert plan["val_tokens"] == len(open_token_file(out / "data" / "val.bin"))
    assert plan == {**plan, **run_plan(plan["train_tokens"], 16 * 64, 40, n_params)}
    assert plan["corpus_tokens"] == plan["train_tokens"] + plan["val_tokens"]
    assert plan["epochs"] == pytest.approx(40 * 16 * 64 / plan["train_tokens"])
    assert line.startswith("pretrain: corpus python-reference (offline copy: CPython ")
    assert f"{plan['run_tokens']:,} tokens" in line and "epochs" in line and "per parameter" in line


def test_the_plan_line_is_printed_before_training(tmp_path, capsys):
    s = main(["--preset", "ci", "--out", str(tmp_path), "--max-steps", "2", "--device", "cpu"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == s["plan_line"] and "2 steps x 16 batch x 64 block x 1 accum" in printed[0]
