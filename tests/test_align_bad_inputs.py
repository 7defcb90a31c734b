"""Every public function of llmcourse.align (and chapter 10's checkers) refuses malformed input:
TypeError for a wrong type, ValueError for a wrong value, the argument named in the message.
Same table style as tests/test_bad_inputs.py."""

import random

import pytest
import torch
import torch.nn as nn

from llmcourse import align as A
from llmcourse.exercises import post_training as ex
from llmcourse.model import GPT, GPTConfig

NAN = float("nan")
TOK = A.ChatTokenizer()
P = A.Problem(12, "+", 34)
torch.manual_seed(0)
GPT_ = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
IDS, TGT = A.sft_batch(TOK, [P, A.Problem(1, "+", 2)])
F1 = torch.zeros(3)
LP = torch.zeros(2, 4)
ADV = torch.zeros(2)
OPT = torch.optim.SGD(GPT_.parameters(), lr=0.0)


def bad(exc, argname, fn, *args, **kwargs):
    return pytest.param(fn, args, kwargs, exc, argname,
                        id=f"{getattr(fn, '__name__', fn)}-{argname}-{exc.__name__}")


CASES = [
    # task
    bad(TypeError, "a", A.Problem, 1.0, "+", 2),
    bad(TypeError, "b", A.Problem, 1, "+", True),
    bad(TypeError, "op", A.Problem, 1, 5, 2),
    bad(ValueError, "op", A.Problem, 1, "*", 2),
    bad(ValueError, "a", A.Problem, 1, "-", 2),
    bad(TypeError, "n_train", A.make_splits, 2.0, 1),
    bad(ValueError, "n_test", A.make_splits, 2, 0),
    bad(ValueError, "digits", A.make_splits, 2, 1, digits=19),
    bad(TypeError, "seed", A.make_splits, 2, 1, seed=None),
    bad(TypeError, "ops", A.make_splits, 2, 1, ops=None),
    bad(ValueError, "ops", A.make_splits, 2, 1, ops=("+", "+")),
    bad(ValueError, "test_share", A.make_splits, 2, 1, test_share=NAN),
    bad(TypeError, "test_share", A.make_splits, 2, 1, test_share="0.2"),
    bad(TypeError, "chars", A.ChatTokenizer, 5),
    bad(ValueError, "chars", A.ChatTokenizer, "aa"),
    bad(TypeError, "text", TOK.encode, None),
    bad(TypeError, "ids", TOK.decode, "12"),
    bad(TypeError, "ids", TOK.decode, [1.0]),
    bad(ValueError, "ids", TOK.decode, [-1]),
    bad(TypeError, "question", A.chat_prompt, 12),
    bad(TypeError, "answer", A.chat_text, "1+2", 3),
    bad(TypeError, "completion", A.parse_answer, None),
    bad(TypeError, "require_end", A.parse_answer, "1", require_end="yes"),
    bad(TypeError, "problem", A.correctness_reward, "1<|end|>", "1+0"),
    bad(TypeError, "completion", A.format_reward, b"1", P),
    bad(ValueError, "per_digit", A.length_reward, "1", P, per_digit=NAN),
    # sft
    bad(TypeError, "tok", A.chat_example, "tok", P),
    bad(TypeError, "answer", A.chat_example, TOK, P, answer=46),
    bad(TypeError, "problems", A.sft_batch, TOK, P),
    bad(ValueError, "problems", A.sft_batch, TOK, []),
    bad(TypeError, "mask_prompt", A.sft_batch, TOK, [P], mask_prompt=None),
    bad(TypeError, "batch_size", A.make_sft_get_batch, TOK, [P], 2.0),
    bad(ValueError, "batch_size", A.make_sft_get_batch, TOK, [P], 0),
    bad(TypeError, "model", A.accumulation_mismatch, None, [(IDS, TGT)]),
    bad(ValueError, "micro_batches", A.accumulation_mismatch, GPT_, ()),
    # logprobs
    bad(TypeError, "model", A.model_logits, lambda x: x, IDS),
    bad(ValueError, "ids", A.model_logits, GPT_, IDS.float()),
    bad(ValueError, "ids", A.model_logits, GPT_, IDS[0]),
    bad(ValueError, "targets", A.token_logps, GPT_, IDS, TGT[:, 1:]),
    bad(ValueError, "targets", A.token_logps, GPT_, IDS, TGT.float()),
    bad(ValueError, "temperature", A.token_logps, GPT_, IDS, TGT, temperature=0),
    bad(TypeError, "temperature", A.token_logps, GPT_, IDS, TGT, temperature=True),
    bad(TypeError, "targets", A.sequence_logps, GPT_, IDS, TGT.tolist()),
    # dpo
    bad(TypeError, "policy_chosen_logps", A.dpo_loss, [0.0], F1, F1, F1),
    bad(ValueError, "policy_rejected_logps", A.dpo_loss, F1, F1.long(), F1, F1),
    bad(ValueError, "ref_chosen_logps", A.dpo_loss, F1, F1, torch.zeros(2), F1),
    bad(ValueError, "ref_rejected_logps", A.dpo_loss, F1, F1, F1, torch.full((3,), NAN)),
    bad(ValueError, "policy_chosen_logps", A.dpo_loss, torch.zeros(0), torch.zeros(0),
        torch.zeros(0), torch.zeros(0)),
    bad(ValueError, "beta", A.dpo_loss, F1, F1, F1, F1, beta=-0.1),
    bad(TypeError, "beta", A.dpo_loss, F1, F1, F1, F1, beta="0.1"),
    bad(TypeError, "problem", A.perturb_answer, "12+34", random.Random(0)),
    bad(TypeError, "rng", A.perturb_answer, P, 0),
    bad(TypeError, "seed", A.preference_pairs, [P], seed=1.5),
    bad(ValueError, "problems", A.preference_pairs, []),
    bad(ValueError, "pairs", A.dpo_batch, TOK, []),
    bad(TypeError, "pairs", A.dpo_batch, TOK, [(P, "46")]),
    bad(TypeError, "policy", A.dpo_step, None, GPT_, OPT, (IDS, TGT)),
    bad(TypeError, "ref_model", A.dpo_step, GPT_, None, OPT, (IDS, TGT)),
    bad(TypeError, "optimizer", A.dpo_step, GPT_, GPT_, None, (IDS, TGT)),
    bad(TypeError, "batch", A.dpo_step, GPT_, GPT_, OPT, IDS),
    bad(ValueError, "ids", A.dpo_step, GPT_, GPT_, OPT, (IDS.float(), TGT)),
    bad(ValueError, "beta", A.dpo_step, GPT_, GPT_, OPT, (IDS, TGT), beta=0),
    # grpo
    bad(TypeError, "rewards", A.group_advantages, [1.0, 0.0], 2),
    bad(ValueError, "rewards", A.group_advantages, torch.zeros(2, 2, 2), 2),
    bad(TypeError, "group_size", A.group_advantages, torch.zeros(4), 2.0),
    bad(ValueError, "group_size", A.group_advantages, torch.zeros(4), 1),
    bad(ValueError, "eps", A.group_advantages, torch.zeros(4), 2, eps=-1.0),
    bad(TypeError, "scale", A.group_advantages, torch.zeros(4), 2, scale=1),
    bad(TypeError, "logps", A.kl_k3, [0.0], F1),
    bad(ValueError, "ref_logps", A.kl_k3, F1, torch.zeros(2)),
    bad(ValueError, "old_logps", A.grpo_loss, LP, LP[:, :2], LP, ADV, LP),
    bad(ValueError, "mask", A.grpo_loss, LP, LP, LP, ADV, LP[0]),
    bad(ValueError, "advantages", A.grpo_loss, LP, LP, LP, torch.zeros(3), LP),
    bad(ValueError, "advantages", A.grpo_loss, LP, LP, LP, ADV.long(), LP),
    bad(ValueError, "epsilon", A.grpo_loss, LP, LP, LP, ADV, LP, epsilon=0),
    bad(ValueError, "beta", A.grpo_loss, LP, LP, LP, ADV, LP, beta=NAN),
    bad(ValueError, "loss_type", A.grpo_loss, LP, LP, LP, ADV, LP, loss_type="dapo"),
    bad(ValueError, "ref_logps", A.grpo_loss, LP, LP, None, ADV, LP, beta=0.1),
    bad(ValueError, "ref_logps", A.grpo_loss, LP, LP, LP[:1], ADV, LP),
    bad(TypeError, "reward_fn", A.rollout, GPT_, TOK, [P], None),
    bad(ValueError, "group_size", A.rollout, GPT_, TOK, [P], A.correctness_reward, group_size=1),
    bad(ValueError, "temperature", A.rollout, GPT_, TOK, [P], A.correctness_reward,
        temperature=0.0),
    bad(TypeError, "max_new_tokens", A.rollout, GPT_, TOK, [P], A.correctness_reward,
        max_new_tokens=2.0),
    bad(TypeError, "tok", A.rollout, GPT_, None, [P], A.correctness_reward),
    bad(TypeError, "optimizer", A.grpo_step, GPT_, GPT_, None, TOK, [P], A.correctness_reward),
    bad(TypeError, "policy", A.grpo_step, None, GPT_, OPT, TOK, [P], A.correctness_reward),
    bad(TypeError, "ref_model", A.grpo_step, GPT_, "ref", OPT, TOK, [P], A.correctness_reward,
        beta=0.0),
    bad(ValueError, "inner_steps", A.grpo_step, GPT_, GPT_, OPT, TOK, [P], A.correctness_reward,
        inner_steps=0),
    bad(ValueError, "grad_clip", A.grpo_step, GPT_, GPT_, OPT, TOK, [P], A.correctness_reward,
        grad_clip=-1.0),
    # evals
    bad(TypeError, "model", A.sample_completions, nn.Linear(1, 1), [[1]], 2, 3),
    bad(TypeError, "prompts", A.sample_completions, GPT_, "12", 2, 3),
    bad(ValueError, "prompts", A.sample_completions, GPT_, [], 2, 3),
    bad(ValueError, "prompts[0]", A.sample_completions, GPT_, [[1.5]], 2, 3),
    bad(TypeError, "max_new_tokens", A.sample_completions, GPT_, [[1]], 2.0, 3),
    bad(TypeError, "stop_id", A.sample_completions, GPT_, [[1]], 2, None),
    bad(ValueError, "num_samples", A.sample_completions, GPT_, [[1]], 2, 3, num_samples=0),
    bad(ValueError, "max_batch", A.sample_completions, GPT_, [[1]], 2, 3, max_batch=0),
    bad(TypeError, "tok", A.task_accuracy, GPT_, "tok", [P]),
    bad(ValueError, "problems", A.task_accuracy, GPT_, TOK, []),
    bad(TypeError, "n", A.pass_at_k, 5.0, 1, 1),
    bad(ValueError, "n", A.pass_at_k, 0, 0, 1),
    bad(ValueError, "c", A.pass_at_k, 5, -1, 1),
    bad(ValueError, "c", A.pass_at_k, 5, 6, 1),
    bad(TypeError, "k", A.pass_at_k, 5, 1, True),
    bad(ValueError, "k", A.pass_at_k, 5, 1, 6),
    bad(TypeError, "model", A.choice_loglikelihoods, None, TOK.encode, "1", ["2", "3"]),
    bad(TypeError, "encode", A.choice_loglikelihoods, GPT_, None, "1", ["2", "3"]),
    bad(ValueError, "context", A.choice_loglikelihoods, GPT_, TOK.encode, "", ["2", "3"]),
    bad(ValueError, "choices", A.choice_loglikelihoods, GPT_, TOK.encode, "1", ["2"]),
    bad(ValueError, "choices", A.choice_loglikelihoods, GPT_, TOK.encode, "1", ["2", ""]),
    bad(TypeError, "target_delimiter", A.choice_loglikelihoods, GPT_, TOK.encode, "1",
        ["2", "3"], target_delimiter=None),
    bad(TypeError, "items", A.score_multiple_choice, GPT_, TOK.encode, "1"),
    bad(ValueError, "items", A.score_multiple_choice, GPT_, TOK.encode, []),
    bad(TypeError, "items[0]", A.score_multiple_choice, GPT_, TOK.encode, [("1", ["2", "3"])]),
    bad(ValueError, "gold", A.score_multiple_choice, GPT_, TOK.encode, [("1", ["2", "3"], 2)]),
    # chapter 10's checkers
    bad(TypeError, "fn", ex.check_dpo_loss, "not a function"),
    bad(TypeError, "fn", ex.check_group_advantages, None),
    bad(TypeError, "fn", ex.check_pass_at_k, 3),
]


@pytest.mark.parametrize(("fn", "args", "kwargs", "exc", "argname"), CASES)
def test_bad_input_raises_naming_the_argument(fn, args, kwargs, exc, argname, capsys):
    with pytest.raises(Exception) as info:  # noqa: PT011 - the exact type is asserted below
        fn(*args, **kwargs)
    assert type(info.value) is exc, f"raised {type(info.value).__name__}: {info.value}"
    assert argname in str(info.value), f"message does not name {argname!r}: {info.value}"
    assert capsys.readouterr().out == ""  # refused before doing anything


def test_package_reexports_every_public_name_of_its_modules():
    """The convention of llmcourse's subpackages (tests/test_project.py)."""
    import importlib
    import pkgutil

    exported = set(A.__all__)
    for info in pkgutil.iter_modules(A.__path__):
        mod = importlib.import_module(f"llmcourse.align.{info.name}")
        assert mod.__doc__ and mod.__doc__.strip(), mod.__name__
        public = set(mod.__all__)
        assert public <= exported, f"{mod.__name__}: {sorted(public - exported)}"
        assert all(getattr(A, n) is getattr(mod, n) for n in public)
