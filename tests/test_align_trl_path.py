"""Chapter 10's online path, offline: TRL's SFTTrainer and DPOTrainer on our GPT exported to a
Hugging Face folder (the stand-in for a hub instruct model) — same masking, same DPO loss."""

import copy
import math
import os

import pytest
import torch

from llmcourse.align import trl_path
from llmcourse.align.dpo import dpo_loss, preference_pairs
from llmcourse.align.evals import task_accuracy
from llmcourse.align.logprobs import sequence_logps
from llmcourse.align.sft import chat_example
from llmcourse.align.task import ChatTokenizer, Problem, chat_prompt, chat_text, make_splits
from llmcourse.model import GPT, GPTConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
TOK = ChatTokenizer()


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16))


def test_resolve_instruct_model_says_which_copy(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMCOURSE_ONLINE", raising=False)
    with pytest.raises(ValueError, match="pass local="):
        trl_path.resolve_instruct_model()
    with pytest.raises(ValueError, match="config.json"):
        trl_path.resolve_instruct_model(local=tmp_path)
    with pytest.raises(TypeError, match="local"):
        trl_path.resolve_instruct_model(local=3)
    with pytest.raises(ValueError, match="name"):
        trl_path.resolve_instruct_model("")
    (tmp_path / "config.json").write_text("{}")
    assert trl_path.resolve_instruct_model(local=tmp_path) == (str(tmp_path), "local")
    monkeypatch.setenv("LLMCOURSE_ONLINE", "1")  # nothing is downloaded: only the name is given
    assert trl_path.resolve_instruct_model(local=tmp_path) == (
        trl_path.DEFAULT_INSTRUCT_MODEL, "hub")


def test_export_loads_with_transformers_and_renders_the_chat_format(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = tiny_gpt().eval()
    folder = trl_path.export_chat_model(model, TOK, tmp_path / "m")
    assert (folder / "model.safetensors").is_file()
    hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    prompt = tok.apply_chat_template([{"role": "user", "content": "12+34"}], tokenize=False,
                                     add_generation_prompt=True)
    assert prompt == chat_prompt("12+34")
    whole = tok.apply_chat_template([{"role": "user", "content": "12+34"},
                                     {"role": "assistant", "content": "46"}], tokenize=False)
    assert whole == chat_text("12+34", "46")
    ids = tok(whole, add_special_tokens=False).input_ids
    assert ids == TOK.encode(whole)
    x = torch.tensor([ids])
    with torch.no_grad():
        assert torch.allclose(hf(x).logits, model(x)[0], atol=1e-5)
    assert tok.eos_token_id == TOK.end_id == hf.generation_config.eos_token_id
    with pytest.raises(TypeError, match="tok"):
        trl_path.export_chat_model(model, tok, tmp_path / "x")
    with pytest.raises(TypeError, match="model"):
        trl_path.export_chat_model("gpt", TOK, tmp_path / "x")


def test_hf_task_accuracy_equals_ours_on_an_export(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmcourse.align.sft import make_sft_get_batch
    from llmcourse.train import TrainConfig, Trainer

    splits = make_splits(60, 30, digits=1, ops=("+", "-"), seed=0, test_share=0.3)
    model = tiny_gpt()
    cfg = TrainConfig(max_steps=80, lr=1e-2, progress=False, log_every=80, device="cpu",
                      precision="fp32")
    Trainer(model, cfg, train_data=make_sft_get_batch(TOK, splits["train"], 32)).fit()
    ours = task_accuracy(model, TOK, splits["test"])
    folder = trl_path.export_chat_model(model, TOK, tmp_path / "m")
    hf, tok = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    theirs = trl_path.hf_task_accuracy(hf, tok, splits["test"])
    assert theirs == ours
    assert 0 < ours["accuracy"] < 1 and ours["end_rate"] > 0.5  # a real, non-trivial check
    with pytest.raises(TypeError, match="tokenizer"):
        trl_path.hf_task_accuracy(hf, TOK, splits["test"])
    with pytest.raises(ValueError, match="problems"):
        trl_path.hf_task_accuracy(hf, tok, [])


def test_datasets_are_conversational():
    probs = [Problem(1, "+", 2), Problem(30, "-", 4)]
    sft = trl_path.sft_dataset(probs)
    assert sft[1] == {"prompt": [{"role": "user", "content": "30-4"}],
                      "completion": [{"role": "assistant", "content": "26"}]}
    dpo = trl_path.dpo_dataset([(probs[0], "3", "4")])
    assert dpo[0]["chosen"] == [{"role": "assistant", "content": "3"}]
    assert dpo[0]["rejected"] == [{"role": "assistant", "content": "4"}]
    with pytest.raises(ValueError, match="pairs"):
        trl_path.dpo_dataset([])
    with pytest.raises(TypeError, match=r"pairs\[0\]"):
        trl_path.dpo_dataset([("1+2", "3", "4")])
    with pytest.raises(TypeError, match="problems"):
        trl_path.sft_dataset("1+2")


@pytest.mark.slow
def test_trl_sft_masks_the_prompt_as_we_do_and_dpo_matches_our_loss(tmp_path):
    """The chapter's online cells, on the local stand-in: TRL's SFT labels are our -100 targets;
    TRL's DPO loss on its first batch equals ours; both trainers train."""
    pytest.importorskip("trl")
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    splits = make_splits(32, 4, digits=2, seed=0)
    folder = trl_path.export_chat_model(tiny_gpt(), TOK, tmp_path / "m")
    path, where = trl_path.resolve_instruct_model(local=folder)
    assert where == "local"
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    common = dict(report_to="none", use_cpu=True, bf16=False, logging_steps=1,
                  save_strategy="no", disable_tqdm=True, per_device_train_batch_size=8)
    sft = SFTTrainer(model=model, processing_class=tok, train_dataset=trl_path.sft_dataset(
        splits["train"]), args=SFTConfig(output_dir=str(tmp_path / "sft"), max_steps=3,
                                         learning_rate=1e-3, **common))
    batch = next(iter(sft.get_train_dataloader()))
    by_ids = {tuple(chat_example(TOK, p)[0]): chat_example(TOK, p)[1] for p in splits["train"]}
    for ids, labels, att in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        n = int(att.sum())
        ours = by_ids[tuple(ids[:n - 1].tolist())]  # our inputs are the sequence minus its end
        assert labels[1:n].tolist() == ours  # HF shifts inside the model: labels[t] = targets[t-1]
        assert labels[0] == -100 and (labels[n:] == -100).all()
    before = [p.detach().clone() for p in sft.model.parameters()]
    sft.train()
    losses = [r["loss"] for r in sft.state.log_history if "loss" in r]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, sft.model.parameters()))

    policy = sft.model
    ref = copy.deepcopy(policy).eval()  # the SFT model, not the export TRL would reload
    pairs = preference_pairs(splits["train"], seed=0)
    beta = 0.1
    dpo = DPOTrainer(model=policy, ref_model=ref, processing_class=tok,
                     train_dataset=trl_path.dpo_dataset(pairs),
                     args=DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=2, beta=beta,
                                    learning_rate=1e-4, **common))
    first = next(iter(dpo.get_train_dataloader()))
    trl_loss = dpo._compute_loss(dpo.model, first, return_outputs=False)
    ids, comp = first["input_ids"], first["completion_mask"]
    x, y = ids[:, :-1], ids[:, 1:].masked_fill(comp[:, 1:] == 0, -100)
    gpt_policy, gpt_ref = GPT.from_hf(policy), GPT.from_hf(ref)
    with torch.no_grad():
        pc, pr = sequence_logps(gpt_policy, x, y).chunk(2)
        rc, rr = sequence_logps(gpt_ref, x, y).chunk(2)
    assert dpo_loss(pc, pr, rc, rr, beta)[0].item() == pytest.approx(trl_loss.item(), abs=1e-6)
    assert trl_loss.item() == pytest.approx(math.log(2), abs=1e-6)  # policy == its reference
    dpo.train()
    logged = [r for r in dpo.state.log_history if "rewards/accuracies" in r]
    assert len(logged) == 2 and all(math.isfinite(r["loss"]) for r in logged)
    # the rows TRL scored are our conversations: chosen rows, then the rejected ones
    texts = [TOK.decode(r[a.bool()].tolist()) for r, a in zip(ids, first["attention_mask"])]
    half = len(texts) // 2
    expected = {(chat_text(p.question, c), chat_text(p.question, r)) for p, c, r in pairs}
    assert set(zip(texts[:half], texts[half:])) <= expected
