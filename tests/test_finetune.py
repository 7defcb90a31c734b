import copy

import pytest
import torch
import torch.nn as nn

from llmcourse import finetune as ft
from llmcourse.model import GPT, GPTConfig


@pytest.fixture(scope="module")
def families():
    return ft.docstring_families()


def test_families_dataset(families):
    n = sum(len(v) for v in families.splits.values())
    assert n >= 1000
    assert families.labels == sorted(ft.FAMILIES)
    again = ft.docstring_families()
    assert again.splits == families.splits  # deterministic
    for s in ft.SPLITS:
        assert set(families.targets(s)) == set(range(len(families.labels)))
    keys = [set(families.keys[s]) for s in ft.SPLITS]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    # no text in two splits, and none twice in one: inherited docstrings are merged
    texts = [ft.normalise(t) for s in ft.SPLITS for t in families.texts(s)]
    assert len(texts) == len(set(texts))
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert families.overlap(a, b) == set()
    card = families.describe()
    assert "train" in card and "test" in card and "network" in card
    assert abs(len(families.splits["train"]) / n - 0.7) < 0.05
    with pytest.raises(ValueError, match="split"):
        families.texts("dev")
    with pytest.raises(ValueError, match="max_per_class"):
        ft.docstring_families(max_per_class=0)


def test_instruction_pairs():
    d = ft.instruction_pairs()
    rows = d.texts("train")
    assert len(rows) > 500
    instr, ans = rows[0].split("\t")
    assert instr.startswith("What does `") and instr.endswith("do?") and len(ans) >= 10
    questions = {s: [t.split("\t")[0] for t in d.texts(s)] for s in ft.SPLITS}
    every = [q for s in ft.SPLITS for q in questions[s]]
    assert len(every) == len(set(every))  # one row per question, so none in two splits
    assert "What does `open` do?" not in every  # asked of many docstrings: ambiguous, dropped
    assert ft.instruction_pairs(max_pairs=50).splits == ft.instruction_pairs(max_pairs=50).splits
    with pytest.raises(ValueError, match="max_pairs"):
        ft.instruction_pairs(max_pairs=0)


def test_online_dataset_val_is_carved_out_of_train(monkeypatch):
    datasets = pytest.importorskip("datasets")
    train_texts = [f"train review number {i}" for i in range(200)] + ["seen in test too"]
    test_texts = [f"test review number {i}" for i in range(40)] + ["seen in test too"]
    fake = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": train_texts,
                                             "label": [i % 2 for i in range(len(train_texts))]}),
        "test": datasets.Dataset.from_dict({"text": test_texts,
                                            "label": [i % 2 for i in range(len(test_texts))]}),
    })
    calls = []

    def load_dataset(path, config=None, revision=None):
        calls.append((path, config, revision))
        return fake

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    d = ft.load_text_classification("imdb", online=True)
    # the hub repository, pinned to one commit
    assert calls == [("stanfordnlp/imdb", None, "e6281661ce1c48d982bc483cf8a173c1bbeb5d31")]
    tr, va, te = (set(d.texts(s)) for s in ft.SPLITS)
    assert te == set(test_texts) and len(d.splits["test"]) == len(test_texts)
    assert va and tr and not (va & te) and not (tr & te) and not (tr & va)
    assert tr | va == set(train_texts) - {"seen in test too"}  # train and val come from train
    assert 0.03 < len(va) / len(train_texts) < 0.2
    assert ft.load_text_classification("imdb", online=True).splits == d.splits  # deterministic
    small = ft.load_text_classification("imdb", online=True, max_examples=5)
    assert all(len(v) == 5 for v in small.splits.values())
    assert set(small.texts("val")) <= va
    with pytest.raises(ValueError, match="max_examples"):
        ft.load_text_classification("imdb", online=True, max_examples=0)


def test_load_helper_and_model_name():
    with pytest.raises(ValueError, match="online=True"):
        ft.load_text_classification("sst2")
    with pytest.raises(ValueError, match="stdlib-families"):
        ft.load_text_classification("nope")
    path, where = ft.resolve_model_name("minilm")
    assert where == "offline"
    assert ft.resolve_model_name("bert-base-uncased") == ("bert-base-uncased", "hub")
    with pytest.raises(ValueError, match="model_name"):
        ft.resolve_model_name("")


def test_split_and_cleaning():
    assert ft.normalise("  Return   THE\nvalue. ") == "return the value."
    with pytest.raises(TypeError):
        ft.normalise(3)
    assert ft.split_of("x") in ft.SPLITS and ft.split_of("x") == ft.split_of("x")
    with pytest.raises(ValueError):
        ft.split_of("x", (0.5, 0.5, 0.5))
    assert ft.clean_docstring("A  b\nc.\n\nMore.") == "A b c."
    assert ft.first_sentence("Join two paths. Then more.") == "Join two paths."


def test_lora_linear_init_merge_and_grad():
    torch.manual_seed(0)
    base = nn.Linear(16, 8)
    x = torch.randn(5, 16)
    lo = ft.LoRALinear(copy.deepcopy(base), r=4, alpha=8)
    assert torch.allclose(lo(x), base(x))
    with torch.no_grad():
        lo.lora_B.normal_()
    assert not torch.allclose(lo(x), base(x))
    assert torch.allclose(lo.merged()(x), lo(x), atol=1e-5)
    lo(x).sum().backward()
    assert lo.base.weight.grad is None and lo.lora_A.grad is not None
    for dtype in (torch.float64, torch.bfloat16):  # merging keeps the base layer's dtype
        lo64 = ft.LoRALinear(copy.deepcopy(base).to(dtype), r=4, alpha=8)
        with torch.no_grad():
            lo64.lora_B.normal_()
        m = lo64.merged()
        assert m.weight.dtype == dtype and m.bias.dtype == dtype
        assert torch.allclose(m(x.to(dtype)).float(), lo64(x.to(dtype)).float(), atol=0.1)
    with pytest.raises(TypeError):
        ft.LoRALinear(nn.Conv1d(1, 1, 1))
    with pytest.raises(ValueError, match="r must"):
        ft.LoRALinear(base, r=0)


def test_apply_lora_matches_peft():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))
    ours = copy.deepcopy(net)
    names = ft.apply_lora(ours, ["0", "2"], r=2, alpha=4)
    assert names == ["0", "2"]
    cfg = peft.LoraConfig(r=2, lora_alpha=4, target_modules=["0", "2"], lora_dropout=0.0)
    theirs = peft.get_peft_model(copy.deepcopy(net), cfg)
    for n in ("0", "2"):
        pm = theirs.base_model.model.get_submodule(n)
        with torch.no_grad():
            pm.lora_A["default"].weight.copy_(ours.get_submodule(n).lora_A)
            ours.get_submodule(n).lora_B.normal_()
            pm.lora_B["default"].weight.copy_(ours.get_submodule(n).lora_B)
    x = torch.randn(7, 32)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    t, total, share = ft.trainable_share(ours)
    assert t == sum(p.numel() for p in theirs.parameters() if p.requires_grad) and share < 0.1
    y = ours(x)
    merged_ours = ft.merge_lora(ours)
    assert not any(isinstance(m, ft.LoRALinear) for m in merged_ours.modules())
    merged_theirs = theirs.merge_and_unload()
    assert torch.allclose(merged_ours(x), y, atol=1e-5)
    assert torch.allclose(merged_ours(x), merged_theirs(x), atol=1e-5)
    with pytest.raises(ValueError, match="no nn.Linear"):
        ft.apply_lora(copy.deepcopy(net), ["nothing"])


def test_gpt_classifier_last_token():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=16))
    clf = ft.GPTClassifier(gpt, num_labels=3)
    x = torch.randint(0, 50, (2, 10))
    padded = x.clone()
    padded[0, 6:] = 0  # row 0 has 6 real tokens
    logits, loss = clf(padded, lengths=torch.tensor([6, 10]), labels=torch.tensor([0, 2]))
    alone, _ = clf(x[:1, :6])
    assert torch.allclose(logits[0], alone[0], atol=1e-5)  # padding after the end is invisible
    assert logits.shape == (2, 3) and loss.item() > 0
    with pytest.raises(ValueError, match="lengths"):
        clf(padded, lengths=torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="num_labels"):
        ft.GPTClassifier(gpt, 1)


def test_sft_masking_prompt_has_zero_loss():
    enc = lambda s: list(s.encode())  # noqa: E731
    ids, labels = ft.sft_example(enc, "What does x do?", "It does y.", eos_id=0, max_len=200)
    prompt = enc(ft.format_prompt("What does x do?"))
    assert len(ids) == len(labels) == len(prompt) + len(enc("It does y."))
    assert labels[: len(prompt) - 1] == [-100] * (len(prompt) - 1)
    assert labels[len(prompt) - 1 :] == enc("It does y.") + [0]
    X, Y = ft.collate_sft([(ids, labels), (ids[:5], labels[:5])])
    assert X.shape == Y.shape and (Y[1, 5:] == -100).all()
    # the prompt contributes zero loss: its positions get zero gradient from the loss
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=256, block_size=256, n_layer=1, n_head=2, n_embd=16))
    logits, loss = gpt(X, Y)
    logits.retain_grad()
    loss.backward()
    assert logits.grad[0, : len(prompt) - 1].abs().max() == 0
    assert logits.grad[0, len(prompt) - 1 :].abs().max() > 0
    with pytest.raises(ValueError):
        ft.format_prompt("  ")
    with pytest.raises(ValueError):
        ft.sft_example(enc, "a", "b", eos_id=0, max_len=1)
    # a prompt that fills max_len leaves no response target: an error, not a NaN loss later
    n_prompt = len(enc(ft.format_prompt("a")))
    _, ok = ft.sft_example(enc, "a", "b", eos_id=0, max_len=n_prompt)
    assert ok[-1] == enc("b")[0]  # one response target still fits
    with pytest.raises(ValueError, match="fills max_len"):
        ft.sft_example(enc, "a", "b", eos_id=0, max_len=n_prompt - 1)
