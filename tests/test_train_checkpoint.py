"""Tests of llmcourse.train.checkpoint: durable saves, clean-up after killed saves, fall-back
past a damaged checkpoint, errors that name the file, refusal to resume a different run, and no
checkpoint with NaN weights."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

import llmcourse.train.checkpoint as ckpt_mod
from llmcourse.data import make_get_batch
from llmcourse.model import GPT, GPTConfig
from llmcourse.train import (
    NonFiniteLossError,
    TrainConfig,
    Trainer,
    list_checkpoints,
    load_weights,
    pickle_globals,
)

VOCAB, BLOCK = 64, 16


def gpt(seed: int = 0, n_head: int = 2) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=1, n_head=n_head, n_embd=32,
                         dropout=0.0))


def data():
    tokens = torch.randint(VOCAB, (2_000,), generator=torch.Generator().manual_seed(1))
    return make_get_batch(tokens, batch_size=4, block_size=BLOCK)


def cfg(out, **kw) -> TrainConfig:
    base = dict(max_steps=6, lr=3e-3, warmup_steps=2, log_every=2, ckpt_every=2, keep_last=3,
                progress=False, device="cpu", out_dir=str(out), precision="fp32")
    base.update(kw)
    return TrainConfig(**base)


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def run(tmp_path):
    """A finished 6-step run with checkpoints at steps 2, 4 and 6, and its final weights."""
    t = Trainer(gpt(), cfg(tmp_path), data())
    t.fit()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000002", "step_000004",
                                                            "step_000006"]
    return tmp_path, weights(t.raw_model)


# ----------------------------------------------------------------------------- durability
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/fd")
def test_files_and_directories_are_fsynced_around_the_rename(tmp_path, monkeypatch):
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", f"{os.fspath(src)} -> {os.fspath(dst)}"))
        return real_replace(src, dst)

    t = Trainer(gpt(), cfg(tmp_path, ckpt_every=0), data())
    t.fit(until=1)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    final = t.save_checkpoint()
    root = str(tmp_path / "checkpoints")
    rename = next(i for i, (kind, what) in enumerate(events)
                  if kind == "replace" and what.endswith(f"-> {final}"))
    tmp = events[rename][1].split(" -> ")[0]
    assert os.path.basename(tmp).startswith(".tmp-step_000001-")
    synced = {what for kind, what in events[:rename] if kind == "fsync"}
    renamed = dict(what.split(" -> ")[::-1] for kind, what in events[:rename] if kind == "replace")
    for name in ("model.safetensors", "state.pt", "meta.json"):
        path = f"{tmp}/{name}"  # fsynced under its own name, or as the temp file renamed to it
        assert path in synced or renamed.get(path) in synced, name
    last_write = max(i for i, (kind, what) in enumerate(events[:rename]) if what != tmp)
    assert ("fsync", tmp) in events[last_write + 1:rename]  # the directory's entries, then
    assert ("fsync", root) in events[rename + 1:]  # the rename itself
    assert not list((tmp_path / "checkpoints").glob(".*"))


def test_stale_temp_dirs_are_removed_when_a_trainer_starts(run):
    out, _ = run
    root = out / "checkpoints"
    killed = root / ".tmp-step_000008-k3x_9q"  # a save killed before its rename
    killed.mkdir()
    (killed / "state.pt").write_bytes(b"half")
    done_old = root / ".old-step_000004-4242"  # killed after the re-save's second rename
    shutil.copytree(root / "step_000004", done_old)
    os.replace(root / "step_000006", root / ".old-step_000006-4242")  # killed between them
    keep = [root / ".tmp-notes", root / "step_notes", root / ".tmp-step_x", out / ".tmp-step_1-a"]
    for p in keep:  # not the course's naming, or not in checkpoints/: left alone
        p.mkdir()
    other = out.parent / "elsewhere" / "checkpoints" / ".tmp-step_000002-abc"
    other.mkdir(parents=True)
    Trainer(gpt(), cfg(out), data())  # not even resuming
    assert not killed.exists() and not done_old.exists()
    assert [p.name for p in list_checkpoints(out)] == ["step_000002", "step_000004",
                                                       "step_000006"]  # 6 put back whole
    assert all(p.exists() for p in keep) and other.exists()


# ----------------------------------------------------------------------------- damage
def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _nan_weights(path):
    t = load_file(path)
    t[next(iter(t))][0] = math.nan
    save_file(t, path)


DAMAGE = {
    "state.pt truncated": ("state.pt", _truncate),
    "model.safetensors truncated": ("model.safetensors", _truncate),
    "meta.json garbage": ("meta.json", lambda p: p.write_text("{not json")),
    "state.pt empty": ("state.pt", lambda p: p.write_bytes(b"")),
    "weights NaN": ("model.safetensors", _nan_weights),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(run, damage):
    out, straight = run
    name, spoil = DAMAGE[damage]
    spoil(out / "checkpoints" / "step_000006" / name)
    with pytest.warns(RuntimeWarning, match=rf"step_000006.*{name}"):
        t = Trainer(gpt(seed=9), cfg(out), data(), resume=True)
    assert t.state.step == 4 and t.state.last_checkpoint.endswith("step_000004")
    t.fit()  # redo steps 5 and 6: the same weights as the run that was not interrupted
    assert same(weights(t.raw_model), straight)
    assert list_checkpoints(out)[-1].name == "step_000006"  # the damaged one replaced
    load_file(out / "checkpoints" / "step_000006" / "model.safetensors")


def test_every_checkpoint_damaged_is_an_error_not_a_fresh_start(run):
    out, _ = run
    for p in list_checkpoints(out):
        _truncate(p / "state.pt")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="none of the 3 checkpoints"):
            Trainer(gpt(), cfg(out), data(), resume=True)
    assert sum("skipping checkpoint" in str(w.message) for w in seen) == 3


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_loading_a_damaged_checkpoint_names_the_file_and_changes_nothing(run, damage):
    out, _ = run
    name, spoil = DAMAGE[damage]
    path = out / "checkpoints" / "step_000006"
    spoil(path / name)
    t = Trainer(gpt(seed=3), cfg(out), data())
    before = weights(t.raw_model)
    with pytest.raises(ValueError, match=str(path / name).replace("\\", "\\\\")):
        t.load_checkpoint(path)
    assert same(weights(t.raw_model), before) and t.state.step == 0


def test_load_weights_names_the_file(tmp_path):
    from llmcourse.train import save_weights

    path = tmp_path / "w.safetensors"
    save_weights(gpt(), path)
    with pytest.raises(ValueError, match="do not fit"):
        load_weights(GPT(GPTConfig(vocab_size=VOCAB, block_size=BLOCK, n_layer=2, n_head=2,
                                   n_embd=32)), path)
    _truncate(path)
    with pytest.raises(ValueError, match=str(path).replace("\\", "\\\\")):
        load_weights(gpt(), path)
    (tmp_path / "x.pt").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="x.pt"):
        pickle_globals(tmp_path / "x.pt")


def test_list_checkpoints_ignores_foreign_and_incomplete_dirs(run):
    out, _ = run
    (out / "checkpoints" / "step_abc").mkdir()
    partial = out / "checkpoints" / "step_000010"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"")
    (partial / "state.pt").write_bytes(b"")  # no meta.json: not complete
    assert [p.name for p in list_checkpoints(out)][-1] == "step_000006"


# ----------------------------------------------------------------------------- same run
def test_meta_json_records_the_model_and_the_run(run):
    out, _ = run
    meta = json.loads((list_checkpoints(out)[-1] / "meta.json").read_text())
    assert meta["model"]["class"] == "llmcourse.model.GPT"
    assert meta["model"]["config"] == gpt().config.to_dict()
    c = meta["config"]
    assert (c["max_steps"], c["lr"], c["warmup_steps"], c["schedule"], c["seed"]) == \
        (6, 3e-3, 2, "cosine", 0)
    assert c["betas"] == [0.9, 0.95] and c["grad_clip"] == 1.0 and meta["precision"] == "fp32"


def test_resume_refuses_a_different_model_of_the_same_shape(run):
    out, _ = run
    other = gpt(seed=5, n_head=4)  # 4 heads of 8 instead of 2 of 16: the same tensors
    before = weights(other)
    with pytest.raises(ValueError, match=r"model\.n_head 2 -> 4"):
        Trainer(other, cfg(out), data(), resume=True)
    assert same(weights(other), before)  # nothing was loaded


def test_resume_refuses_another_schedule_naming_every_change(run):
    out, _ = run
    with pytest.raises(ValueError) as info:
        Trainer(gpt(), cfg(out, max_steps=1000, lr=1.0), data(), resume=True)
    msg = str(info.value)
    assert "max_steps 6 -> 1000" in msg and "lr 0.003 -> 1.0" in msg and "step_000006" in msg
    assert "resume_allow=('lr', 'max_steps')" in msg
    with pytest.raises(ValueError, match=r"grad_accum 1 -> 2.*seed 0 -> 1"):
        Trainer(gpt(), cfg(out, grad_accum=2, seed=1), data(), resume=True)


def test_an_allowed_change_resumes_and_the_schedule_follows_the_new_config(run):
    out, _ = run
    longer = cfg(out, max_steps=10, resume_allow=("max_steps",))
    t = Trainer(gpt(), longer, data(), resume=True)
    assert t.state.step == 6
    t.fit()
    assert t.state.step == 10
    with pytest.raises(ValueError, match="lr"):  # only what was allowed
        Trainer(gpt(), cfg(out, max_steps=10, lr=1e-3, resume_allow=("max_steps",)), data(),
                resume=True)
    # settings that do not change the weights may differ freely
    Trainer(gpt(), cfg(out, max_steps=10, log_every=1, eval_every=3, keep_last=5), data(),
            resume=True)


def test_precision_is_compared_as_resolved(run):
    out, _ = run  # saved with precision="fp32" on a CPU
    assert Trainer(gpt(), cfg(out, precision="auto"), data(), resume=True).state.step == 6
    with pytest.raises(ValueError, match="precision 'fp32' -> 'bf16'"):
        Trainer(gpt(), cfg(out, precision="bf16"), data(), resume=True)


@pytest.mark.slow  # transformers' import and model set-up: ~6 s here
def test_resume_compares_hugging_face_configs(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    def hf(n_head):
        torch.manual_seed(0)
        return GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=BLOCK, n_embd=32,
                                          n_layer=1, n_head=n_head))

    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": (x := torch.randint(VOCAB, (2, BLOCK), generator=g)), "labels": x}
               for _ in range(3)]
    Trainer(hf(2), cfg(tmp_path, max_steps=2), batches).fit()
    meta = json.loads((list_checkpoints(tmp_path)[-1] / "meta.json").read_text())
    assert meta["model"]["config"]["n_head"] == 2 and "transformers_version" not in \
        meta["model"]["config"]
    assert Trainer(hf(2), cfg(tmp_path, max_steps=2), batches, resume=True).state.step == 2
    with pytest.raises(ValueError, match=r"model\.n_head 2 -> 4"):
        Trainer(hf(4), cfg(tmp_path, max_steps=2), batches, resume=True)


def test_resume_allow_is_checked():
    with pytest.raises(TypeError, match="resume_allow"):
        TrainConfig(resume_allow="max_steps")
    with pytest.raises(ValueError, match="resume_allow"):
        TrainConfig(resume_allow=("max_step",))
    assert TrainConfig(resume_allow=["lr", "model.dropout"]).resume_allow == ("lr",
                                                                             "model.dropout")


# ----------------------------------------------------------------------------- NaN
def test_a_checkpoint_never_holds_nan_weights(run):
    out, _ = run
    t = Trainer(gpt(), cfg(out), data(), resume=True)
    with torch.no_grad():
        t.raw_model.lm_head.weight[0, 0] = math.nan
    with pytest.raises(NonFiniteLossError, match=r"wte\.weight.*not saved.*step_000006"):
        t.save_checkpoint()
    assert [p.name for p in list_checkpoints(out)][-1] == "step_000006"
    assert t.state.last_checkpoint.endswith("step_000006")
    assert not list((out / "checkpoints").glob(".*"))


def test_nan_gradients_with_a_finite_norm_never_reach_a_checkpoint(tmp_path, monkeypatch):
    """The failure of grad_clip=nan: NaN gradients applied while the reported norm is finite.
    The step-1 checkpoint is refused, so no message calls a NaN checkpoint good."""
    import llmcourse.train.loop as loop

    def nan_clip(model, max_norm):
        for p in model.parameters():
            p.grad.fill_(math.nan)
        return torch.tensor(1.0)

    monkeypatch.setattr(loop, "_clip_grad_norm", nan_clip)
    t = Trainer(gpt(), cfg(tmp_path, ckpt_every=1), data())
    with pytest.raises(NonFiniteLossError, match="not saved. Last good checkpoint: none saved yet"):
        t.fit()
    assert list_checkpoints(tmp_path) == [] and t.state.last_checkpoint is None


def test_the_private_helpers_keep_their_contract():
    assert ckpt_mod.RUN_INDEPENDENT <= set(TrainConfig().to_dict())
    assert {"lr", "max_steps", "warmup_steps", "schedule", "grad_accum", "seed",
            "precision"}.isdisjoint(ckpt_mod.RUN_INDEPENDENT)
