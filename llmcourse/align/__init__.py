"""Post-training that visibly works (chapter 10): SFT that stops, DPO, GRPO, and LLM evaluation.

Modules, by concept:

* :mod:`~llmcourse.align.task` — the verifiable arithmetic task: problems and splits, the chat
  tokenizer and template, the answer parser, the reward (and two hackable ones);
* :mod:`~llmcourse.align.sft` — SFT batches with the prompt masked, for
  :class:`llmcourse.train.Trainer`; per-token vs per-micro-batch gradient accumulation;
* :mod:`~llmcourse.align.logprobs` — log-probs of given tokens (DPO, GRPO and evaluation);
* :mod:`~llmcourse.align.dpo` — the DPO loss (as TRL), preference pairs, one DPO step;
* :mod:`~llmcourse.align.grpo` — group advantages, the clipped loss with a k3 KL penalty,
  rollouts and one GRPO step;
* :mod:`~llmcourse.align.evals` — sampling, task accuracy, pass@k, multiple-choice scoring
  (``acc``/``acc_norm`` as lm-evaluation-harness);
* :mod:`~llmcourse.align.trl_path` — the online path: which instruct model (hub or a local
  export of our GPT), the task as TRL datasets, accuracy of a Hugging Face model.
"""

from llmcourse.align.dpo import dpo_batch, dpo_loss, dpo_step, perturb_answer, preference_pairs
from llmcourse.align.evals import (
    choice_loglikelihoods,
    pass_at_k,
    sample_completions,
    score_multiple_choice,
    task_accuracy,
)
from llmcourse.align.grpo import (
    LOSS_TYPES,
    Rollout,
    group_advantages,
    grpo_loss,
    grpo_step,
    kl_k3,
    rollout,
)
from llmcourse.align.logprobs import IGNORE, model_logits, sequence_logps, token_logps
from llmcourse.align.sft import accumulation_mismatch, chat_example, make_sft_get_batch, sft_batch
from llmcourse.align.task import (
    ASSISTANT,
    CHARS,
    END,
    OPS,
    PAD,
    REWARDS,
    SPECIAL_TOKENS,
    USER,
    ChatTokenizer,
    Problem,
    chat_prompt,
    chat_text,
    correctness_reward,
    format_reward,
    length_reward,
    make_splits,
    parse_answer,
)
from llmcourse.align.trl_path import (
    CHAT_TEMPLATE,
    DEFAULT_INSTRUCT_MODEL,
    dpo_dataset,
    export_chat_model,
    hf_task_accuracy,
    resolve_instruct_model,
    sft_dataset,
)

__all__ = [
    "ASSISTANT", "CHARS", "CHAT_TEMPLATE", "ChatTokenizer", "DEFAULT_INSTRUCT_MODEL", "END",
    "IGNORE", "LOSS_TYPES", "OPS", "PAD", "Problem", "REWARDS", "Rollout", "SPECIAL_TOKENS", "USER",
    "accumulation_mismatch", "chat_example", "chat_prompt", "chat_text", "choice_loglikelihoods",
    "correctness_reward", "dpo_batch", "dpo_dataset", "dpo_loss", "dpo_step", "export_chat_model",
    "format_reward", "group_advantages", "grpo_loss", "grpo_step", "hf_task_accuracy", "kl_k3",
    "length_reward", "make_sft_get_batch", "make_splits", "model_logits", "parse_answer",
    "pass_at_k", "perturb_answer", "preference_pairs", "resolve_instruct_model", "rollout",
    "sample_completions", "score_multiple_choice", "sequence_logps", "sft_batch", "sft_dataset",
    "task_accuracy", "token_logps",
]
