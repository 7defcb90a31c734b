"""The verifiable task: problems, splits, chat tokenizer and template, parser, rewards."""

import os

import pytest

from llmcourse.align import task as T

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def test_problem_arithmetic_matches_python():
    for a, op, b in ((12, "+", 345), (999, "+", 1), (500, "-", 499), (7, "-", 7), (0, "+", 0)):
        p = T.Problem(a, op, b)
        assert p.question == f"{a}{op}{b}"
        assert p.result == eval(p.question)  # noqa: S307 - our own digits and operator
        assert p.answer == str(eval(p.question))  # noqa: S307
    assert T.Problem(3, "+", 5).key == T.Problem(5, "+", 3).key  # a mirror is the same problem
    assert T.Problem(5, "-", 3).key != T.Problem(3, "+", 5).key
    with pytest.raises(ValueError, match="op"):
        T.Problem(1, "*", 2)
    with pytest.raises(ValueError, match="b must be an int >= 0"):
        T.Problem(1, "+", -2)
    with pytest.raises(TypeError, match="a must be an int"):
        T.Problem(True, "+", 2)
    with pytest.raises(ValueError, match="a must be >= b"):
        T.Problem(3, "-", 5)


def test_splits_are_deterministic_disjoint_and_stable():
    s = T.make_splits(300, 100, digits=3, ops=("+", "-"), seed=1)
    assert len(s["train"]) == 300 and len(s["test"]) == 100
    assert s == T.make_splits(300, 100, digits=3, ops=("+", "-"), seed=1)
    assert s != T.make_splits(300, 100, digits=3, ops=("+", "-"), seed=2)
    keys = {k: [p.key for p in v] for k, v in s.items()}
    assert not set(keys["train"]) & set(keys["test"])
    assert all(len(v) == len(set(v)) for v in keys.values())  # no repeats inside a split
    for p in s["train"] + s["test"]:
        assert 0 <= p.a < 1000 and 0 <= p.b < 1000 and p.result >= 0
    assert {p.op for p in s["train"]} == {"+", "-"}
    # the held-out list of a seed does not depend on the train size, and a problem held out
    # under one seed is never trained on under another
    assert T.make_splits(50, 100, digits=3, ops=("+", "-"), seed=1)["test"] == s["test"]
    other = T.make_splits(2000, 10, digits=3, ops=("+", "-"), seed=7)
    assert not {p.key for p in other["train"]} & set(keys["test"])


def test_splits_run_out_and_bad_inputs():
    one_digit = T.make_splits(30, 5, digits=1)  # 55 distinct sums of two digits
    assert len(one_digit["train"]) == 30
    with pytest.raises(ValueError, match="too few distinct problems"):
        T.make_splits(60, 5, digits=1)
    with pytest.raises(ValueError, match="n_train"):
        T.make_splits(0, 5)
    with pytest.raises(TypeError, match="n_test"):
        T.make_splits(5, 2.0)
    with pytest.raises(ValueError, match="ops"):
        T.make_splits(5, 5, ops=("*",))
    with pytest.raises(TypeError, match="ops"):
        T.make_splits(5, 5, ops="+")
    with pytest.raises(ValueError, match="test_share"):
        T.make_splits(5, 5, test_share=1.0)
    with pytest.raises(ValueError, match="digits"):
        T.make_splits(5, 5, digits=0)


def test_chat_tokenizer_special_tokens_are_single_ids():
    tok = T.ChatTokenizer()
    assert tok.vocab_size == 4 + len(T.CHARS)
    assert [tok.pad_id, tok.user_id, tok.assistant_id, tok.end_id] == [0, 1, 2, 3]
    text = T.chat_text("12+345", "357")
    assert text == "<|user|>12+345<|end|><|assistant|>357<|end|>"
    ids = tok.encode(text)
    assert ids[0] == tok.user_id and ids[-1] == tok.end_id and ids.count(tok.end_id) == 2
    assert ids[7] == tok.end_id and ids[8] == tok.assistant_id
    assert len(ids) == len("12+345") + len("357") + 4  # one id per special token
    assert tok.decode(ids) == text
    assert tok.tokens("<|end|>1") == ["<|end|>", "1"]
    with pytest.raises(ValueError, match="not in this CharTokenizer"):
        tok.encode("1*2")
    with pytest.raises(TypeError, match="text must be a str"):
        tok.encode(12)
    with pytest.raises(ValueError, match="ids must be < vocab_size"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="question"):
        T.chat_prompt("")


def test_hf_export_gives_the_same_ids(tmp_path):
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    tok = T.ChatTokenizer()
    hf = tok.to_hf()
    hf.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    for text in ("<|user|>12+345<|end|><|assistant|>", T.chat_text("7-7", "0"), "0123456789+-"):
        assert hf(text)["input_ids"] == tok.encode(text)
        assert loaded(text)["input_ids"] == tok.encode(text)
        assert loaded.decode(tok.encode(text)) == text
    assert (loaded.pad_token_id, loaded.eos_token_id) == (tok.pad_id, tok.end_id)


def test_parser_and_rewards():
    p = T.Problem(12, "+", 345)
    assert T.parse_answer("357<|end|>") == 357
    assert T.parse_answer("357<|end|>99<|end|>") == 357  # the first end token closes the answer
    assert T.parse_answer("357") is None  # never stopped
    assert T.parse_answer("357", require_end=False) == 357
    assert T.parse_answer("3+57<|end|>") is None and T.parse_answer("<|end|>") is None
    assert T.parse_answer("-4<|end|>") == -4
    assert T.correctness_reward("357<|end|>", p) == 1.0
    assert T.correctness_reward("358<|end|>", p) == 0.0
    assert T.correctness_reward("357", p) == 0.0
    # the flawed rewards pay for what is not the task
    assert T.format_reward("999<|end|>", p) == 1.0 and T.format_reward("9+9<|end|>", p) == 0.0
    assert T.length_reward("35799999", p) == pytest.approx(0.8)
    assert T.length_reward("357<|end|>", p) == pytest.approx(0.3)
    assert T.length_reward("357<|end|>", p) < T.length_reward("1234567<|end|>", p)
    assert set(T.REWARDS) == {"correct", "format", "length"}
    with pytest.raises(TypeError, match="problem"):
        T.correctness_reward("357<|end|>", (12, "+", 345))
    with pytest.raises(TypeError, match="completion"):
        T.format_reward(357, p)
    with pytest.raises(ValueError, match="per_digit"):
        T.length_reward("1", p, per_digit=0)
    with pytest.raises(TypeError, match="require_end"):
        T.parse_answer("1<|end|>", require_end=1)
