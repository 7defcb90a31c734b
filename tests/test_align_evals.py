"""Evaluation: pass@k (vs enumeration), sampling and task accuracy, multiple choice (vs lm-eval)."""

import itertools
import json
import math
import os

import pytest
import torch
import torch.nn as nn

from llmcourse.align import evals
from llmcourse.align.task import ChatTokenizer, Problem, chat_prompt
from llmcourse.model import GPT, GPTConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
TOK = ChatTokenizer()
TEXT_TOK = ChatTokenizer(chars="abcdefghijklmnopqrstuvwxyz ?.")
ITEMS = [  # (context, choices, gold): different lengths, so acc and acc_norm can disagree
    ("the cat sat on the", ["mat", "hat", "elephant"], 0),
    ("what is red? it is", ["a rose", "sky", "grass."], 0),
    ("one two three", ["four", "five six", "x"], 1),
    ("a b c d e ", ["f", "g h"], 0),  # a trailing space moves to the continuation
    ("is it raining?", ["yes", "no", "maybe so"], 2),
]


def brute_pass_at_k(n, c, k):
    """The share of k-subsets of n samples (c of them correct) holding a correct one."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_equals_enumeration():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = brute_pass_at_k(n, c, k)
                assert evals.pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert evals.pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the share correct
    assert evals.pass_at_k(200, 0, 100) == 0.0 and evals.pass_at_k(200, 150, 100) == 1.0
    # the naive 1 - (1 - c/n)^k is biased: it is not the same number
    assert evals.pass_at_k(10, 3, 5) != pytest.approx(1 - (1 - 0.3) ** 5, abs=1e-3)
    # the product form stays finite where the binomials are astronomically large
    big = evals.pass_at_k(2000, 7, 100)
    assert big == pytest.approx(1 - math.comb(1993, 100) / math.comb(2000, 100), rel=1e-9)


def test_pass_at_k_bad_inputs():
    with pytest.raises(ValueError, match="c must be <= n"):
        evals.pass_at_k(5, 6, 1)
    with pytest.raises(ValueError, match="k must be <= n"):
        evals.pass_at_k(5, 1, 6)
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        evals.pass_at_k(5, 1, 0)
    with pytest.raises(TypeError, match="n must be an int"):
        evals.pass_at_k(5.0, 1, 1)
    with pytest.raises(TypeError, match="c must be an int"):
        evals.pass_at_k(5, True, 1)


class Oracle(nn.Module):
    """A fake GPT whose ``generate`` appends a chosen completion (to test the bookkeeping)."""

    def __init__(self, answer_of):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.answer_of = answer_of

    def generate(self, idx, max_new_tokens, temperature=1.0, generator=None):
        rows = []
        for row in idx.tolist():
            new = TOK.encode(self.answer_of(TOK.decode(row)))
            new = (new + [TOK.pad_id] * max_new_tokens)[:max_new_tokens]
            rows.append(row + new)
        return torch.tensor(rows)


def test_task_accuracy_counts_answers_and_stops():
    probs = [Problem(1, "+", 2), Problem(10, "+", 20), Problem(5, "-", 3), Problem(99, "+", 1)]
    right = {chat_prompt(p.question): p.answer for p in probs}

    def answer(prompt):  # right and stopped; wrong; right but never stops; right and stops
        return {0: right[prompt] + "<|end|>", 1: "31<|end|>", 2: right[prompt] + "11111"}.get(
            list(right).index(prompt), right[prompt] + "<|end|>")

    res = evals.task_accuracy(Oracle(answer), TOK, probs)
    assert res == {"accuracy": 0.5, "end_rate": 0.75, "n": 4.0}
    comps = evals.sample_completions(Oracle(answer), [TOK.encode(p) for p in right], 6,
                                     TOK.end_id, num_samples=2)
    assert [len(c) for c in comps] == [2, 2, 2, 2]
    assert TOK.decode(comps[0][0]) == "3<|end|>"  # cut after the end token
    assert TOK.decode(comps[2][1]) == "211111"  # never stopped: all max_new_tokens kept
    with pytest.raises(TypeError, match="generate"):
        evals.sample_completions(nn.Linear(2, 2), [[1]], 3, TOK.end_id)
    with pytest.raises(ValueError, match=r"prompts\[0\]"):
        evals.sample_completions(Oracle(answer), [[]], 3, TOK.end_id)
    with pytest.raises(ValueError, match="max_new_tokens"):
        evals.sample_completions(Oracle(answer), [[1]], 0, TOK.end_id)


def test_sampling_a_real_gpt_is_reproducible_and_grouped_by_length():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    prompts = [TOK.encode(chat_prompt(q)) for q in ("1+2", "10+20", "3+4")]
    a = evals.sample_completions(model, prompts, 5, TOK.end_id, num_samples=3, temperature=1.0,
                                 generator=torch.Generator().manual_seed(1))
    b = evals.sample_completions(model, prompts, 5, TOK.end_id, num_samples=3, temperature=1.0,
                                 generator=torch.Generator().manual_seed(1))
    assert a == b and [len(g) for g in a] == [3, 3, 3]
    greedy = evals.sample_completions(model, prompts[1:2], 5, TOK.end_id)
    ref = model.generate(torch.tensor(prompts[1:2]), 5, temperature=0)[0, len(prompts[1]):].tolist()
    cut = ref.index(TOK.end_id) + 1 if TOK.end_id in ref else 5
    assert greedy == [[ref[:cut]]]


class Uniform(nn.Module):
    """Every next token equally likely: log p(continuation) = -len(tokens) * log V."""

    def __init__(self, vocab):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.vocab = vocab

    def forward(self, ids):
        return torch.zeros(*ids.shape, self.vocab) + 0 * self.w, None


def test_multiple_choice_acc_and_acc_norm_hand_computed():
    V = TEXT_TOK.vocab_size
    lls = evals.choice_loglikelihoods(Uniform(V), TEXT_TOK.encode, "the cat", ["a", "bcd"])
    assert [v for v, _ in lls] == pytest.approx([-2 * math.log(V), -4 * math.log(V)])  # + " "
    res = evals.score_multiple_choice(Uniform(V), TEXT_TOK.encode,
                                      [("the cat", ["a", "bcd"], 0), ("the cat", ["a", "bcd"], 1)])
    # summed: the shorter choice wins; per character: (-2/1 vs -4/3) log V, the longer wins
    assert res["pred"] == [0, 0] and res["pred_norm"] == [1, 1]
    assert res["acc"] == 0.5 and res["acc_norm"] == 0.5
    with pytest.raises(ValueError, match="gold"):
        evals.score_multiple_choice(Uniform(V), TEXT_TOK.encode, [("x", ["a", "b"], 2)])
    with pytest.raises(ValueError, match="context"):
        evals.choice_loglikelihoods(Uniform(V), TEXT_TOK.encode, "", ["a", "b"])
    with pytest.raises(ValueError, match="choices"):
        evals.choice_loglikelihoods(Uniform(V), TEXT_TOK.encode, "x", ["a"])
    with pytest.raises(TypeError, match="encode"):
        evals.choice_loglikelihoods(Uniform(V), "abc", "x", ["a", "b"])


def _text_gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=TEXT_TOK.vocab_size, block_size=64, n_layer=1, n_head=2,
                         n_embd=16)).eval()


def test_multiple_choice_same_on_our_gpt_and_its_hf_export():
    pytest.importorskip("transformers")
    gpt = _text_gpt()
    ours = evals.score_multiple_choice(gpt, TEXT_TOK.encode, ITEMS)
    hf = evals.score_multiple_choice(gpt.to_hf().eval(), TEXT_TOK.encode, ITEMS)
    for a, b in zip(ours["loglikelihoods"], hf["loglikelihoods"]):
        assert a == pytest.approx(b, abs=1e-4)
    assert ours["pred"] == hf["pred"] and ours["pred_norm"] == hf["pred_norm"]


@pytest.mark.slow
def test_multiple_choice_equals_lm_eval_harness(tmp_path):
    """lm-eval's HFLM on the exported model and a local multiple-choice task (no network)."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    gpt = _text_gpt()
    gpt.to_hf().save_pretrained(tmp_path / "model")
    TEXT_TOK.to_hf().save_pretrained(tmp_path / "model")
    data = tmp_path / "mc.jsonl"
    data.write_text("".join(json.dumps({"ctx": c, "choices": ch, "gold": g}) + "\n"
                            for c, ch, g in ITEMS))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "tiny_mc.yaml").write_text(
        "task: tiny_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {data}\ntest_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{ctx}}"\ndoc_to_choice: "{{choices}}"\ndoc_to_target: gold\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
        "  - metric: acc_norm\n    aggregation: mean\n    higher_is_better: true\n")
    # logits_cache=False: lm-eval 0.4.13's cache can return a wrong log-likelihood for the shorter
    # of two requests that cover the same bytes split differently (chapter 11 shows it)
    lm = HFLM(pretrained=str(tmp_path / "model"), device="cpu", batch_size=4, logits_cache=False)
    out = lm_eval.simple_evaluate(
        model=lm, tasks=["tiny_mc"], num_fewshot=0, log_samples=True,
        task_manager=TaskManager(include_path=str(tmp_path / "tasks"), include_defaults=False))
    theirs = out["results"]["tiny_mc"]
    ours = evals.score_multiple_choice(gpt, TEXT_TOK.encode, ITEMS)
    assert ours["acc"] == theirs["acc,none"] and ours["acc_norm"] == theirs["acc_norm,none"]
    assert ours["pred"] != ours["pred_norm"]  # the items tell the two metrics apart
    samples = sorted(out["samples"]["tiny_mc"], key=lambda s: s["doc_id"])
    assert len(samples) == len(ITEMS)
    for i, s in enumerate(samples):
        assert ours["loglikelihoods"][i] == pytest.approx([r[0][0] for r in s["resps"]], abs=1e-4)
        assert s["acc"] == float(ours["pred"][i] == ITEMS[i][2])
        assert s["acc_norm"] == float(ours["pred_norm"][i] == ITEMS[i][2])
