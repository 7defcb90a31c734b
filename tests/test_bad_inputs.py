"""Every public function and class refuses malformed input loudly.

A wrong type raises ``TypeError``, a wrong value (range, NaN/inf, empty, shape, dtype, unknown
name) ``ValueError``, and the message names the argument at fault. Nothing is truncated (a bool
is not an int, 2.5 is not 2) or accepted silently.

The test is one table: a list of cases per module (``ATTENTION``, ``MODEL``, ...), concatenated
into ``CASES``. To cover another module, add a list built with :func:`bad` and append it to
``CASES``. ``bad(exc, argname, fn, *args, **kwargs)`` says: ``fn(*args, **kwargs)`` raises
``exc`` and ``argname`` appears in its message.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import llmcourse.evaluate as ev
import llmcourse.exercises as ex
import llmcourse.llama as llama
import llmcourse.pretrain as pretrain
from llmcourse import attention as att
from llmcourse import ddp_demo, env, finetune, hardware, ngram, profiles, scaling, tokenizers
from llmcourse import widgets as wg
from llmcourse.data import batching, corpora, packing
from llmcourse.exercises import attention as ex_attention
from llmcourse.exercises import evaluation as ex_evaluation
from llmcourse.exercises import finetuning as ex_finetuning
from llmcourse.exercises import language_models as ex_lm
from llmcourse.exercises import loss as ex_loss
from llmcourse.exercises import pretraining as ex_pretraining
from llmcourse.exercises import scaling as ex_scaling
from llmcourse.exercises import tokens as ex_tokens
from llmcourse.exercises import transformer as ex_transformer
from llmcourse.model import (
    GPT,
    MLP,
    Block,
    CausalSelfAttention,
    GPTConfig,
    gpt2_config,
    next_token_probs,
    param_count,
)
from llmcourse.train import batches as train_batches
from llmcourse.train import checkpoint as train_checkpoint
from llmcourse.widgets import attention as wg_attention
from llmcourse.widgets import renderer as wg_renderer
from llmcourse.widgets import training_dashboard as wg_dashboard

NAN, INF = math.nan, math.inf


def bad(exc: type[Exception], argname: str, fn, *args, **kwargs):
    """One case: ``fn(*args, **kwargs)`` raises ``exc`` with ``argname`` in the message."""
    name = getattr(fn, "__qualname__", type(fn).__name__)
    return pytest.param(fn, args, kwargs, exc, argname, id=f"{name}-{argname}")


# ----------------------------------------------------------------------------- shared objects
torch.manual_seed(0)
CFG = dict(vocab_size=16, block_size=8, n_layer=1, n_head=1, n_embd=8)
GPT_ = GPT(GPTConfig(**CFG))
IDX = torch.tensor([[1, 2, 3]])
IDS = torch.arange(6) % 16
Q = torch.randn(2, 3, 4)
X8 = torch.randn(2, 3, 8)
MHA = att.MultiHeadAttention(8, 2)


def _cfg(**kw):
    return GPTConfig(**{**CFG, **kw})


def _load_bpe_from(text: str):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "tok.json"
        p.write_text(text)
        return tokenizers.BPETokenizer.load(p)


class _Backend:  # the least a PretrainedTokenizer backend has
    def __len__(self):
        return 10

    def encode(self, text):  # pragma: no cover - never called
        return []

    def decode(self, ids):  # pragma: no cover - never called
        return ""


# ----------------------------------------------------------------------------- attention
ATTENTION = [
    bad(TypeError, "T", att.causal_mask, "3"),
    bad(TypeError, "T", att.causal_mask, 3.0),
    bad(TypeError, "T", att.causal_mask, True),
    bad(ValueError, "T", att.causal_mask, 0),
    bad(ValueError, "S", att.causal_mask, 3, 0),
    bad(TypeError, "S", att.causal_mask, 3, 2.5),
    bad(TypeError, "attention_mask", att.padding_mask, [[1, 0]]),
    bad(ValueError, "attention_mask", att.padding_mask, torch.ones(3)),
    bad(ValueError, "attention_mask", att.padding_mask, torch.tensor([[1, 2]])),
    bad(TypeError, "q", att.scaled_dot_product_attention, [[1.0]], Q, Q),
    bad(TypeError, "k", att.scaled_dot_product_attention, Q, "k", Q),
    bad(TypeError, "v", att.scaled_dot_product_attention, Q, Q, None),
    bad(ValueError, "q", att.scaled_dot_product_attention, torch.randn(4), Q, Q),
    bad(ValueError, "q", att.scaled_dot_product_attention, Q.long(), Q, Q),
    bad(ValueError, "k", att.scaled_dot_product_attention, Q, torch.randn(2, 3, 5), Q),
    bad(ValueError, "v", att.scaled_dot_product_attention, Q, Q, torch.randn(2, 4, 4)),
    bad(ValueError, "q", att.scaled_dot_product_attention, torch.randn(2, 0, 4), Q, Q),
    bad(TypeError, "is_causal", att.scaled_dot_product_attention, Q, Q, Q, is_causal=1),
    bad(ValueError, "dropout_p", att.scaled_dot_product_attention, Q, Q, Q, dropout_p=1.0),
    bad(ValueError, "dropout_p", att.scaled_dot_product_attention, Q, Q, Q, dropout_p=NAN),
    bad(TypeError, "dropout_p", att.scaled_dot_product_attention, Q, Q, Q, dropout_p=True),
    bad(TypeError, "dropout_p", att.scaled_dot_product_attention, Q, Q, Q, dropout_p="0.1"),
    bad(ValueError, "scale", att.scaled_dot_product_attention, Q, Q, Q, scale=NAN),
    bad(ValueError, "scale", att.scaled_dot_product_attention, Q, Q, Q, scale=INF),
    bad(ValueError, "scale", att.scaled_dot_product_attention, Q, Q, Q, scale=0.0),
    bad(TypeError, "scale", att.scaled_dot_product_attention, Q, Q, Q, scale="1"),
    bad(TypeError, "mask", att.scaled_dot_product_attention, Q, Q, Q, mask=[[True]]),
    bad(ValueError, "mask", att.scaled_dot_product_attention, Q, Q, Q,
        mask=torch.ones(3, 3, dtype=torch.long)),
    bad(ValueError, "mask", att.scaled_dot_product_attention, Q, Q, Q,
        mask=torch.ones(5, 5, dtype=torch.bool)),
    bad(ValueError, "mask", att.scaled_dot_product_attention, Q, Q, Q,
        mask=torch.full((3, 3), NAN)),
    bad(TypeError, "x", att.split_heads, [1], 2),
    bad(ValueError, "x", att.split_heads, torch.randn(2, 3), 2),
    bad(TypeError, "n_head", att.split_heads, X8, 2.0),
    bad(ValueError, "n_head", att.split_heads, X8, 0),
    bad(ValueError, "n_head", att.split_heads, torch.randn(2, 3, 5), 2),
    bad(TypeError, "x", att.merge_heads, "x"),
    bad(ValueError, "x", att.merge_heads, X8),
    bad(TypeError, "embed_dim", att.MultiHeadAttention, 8.0, 2),
    bad(ValueError, "num_heads", att.MultiHeadAttention, 8, 0),
    bad(ValueError, "num_heads", att.MultiHeadAttention, 8, 3),
    bad(ValueError, "dropout", att.MultiHeadAttention, 8, 2, dropout=NAN),
    bad(TypeError, "dropout", att.MultiHeadAttention, 8, 2, dropout=True),
    bad(TypeError, "bias", att.MultiHeadAttention, 8, 2, bias="yes"),
    bad(TypeError, "query", MHA, "x"),
    bad(ValueError, "query", MHA, torch.randn(2, 3, 5)),
    bad(ValueError, "query", MHA, X8.long()),
    bad(ValueError, "key", MHA, X8, torch.randn(3, 3, 8)),
    bad(ValueError, "value", MHA, X8, X8, torch.randn(2, 4, 8)),
    bad(TypeError, "is_causal", MHA, X8, is_causal="yes"),
    bad(TypeError, "mha", att.MultiHeadAttention.from_torch, nn.Linear(2, 2)),
]

# ----------------------------------------------------------------------------- model
MODEL = [
    bad(TypeError, "vocab_size", _cfg, vocab_size=16.0),
    bad(ValueError, "block_size", _cfg, block_size=0),
    bad(TypeError, "n_layer", _cfg, n_layer=True),
    bad(ValueError, "n_head", _cfg, n_head=3),
    bad(ValueError, "dropout", _cfg, dropout=NAN),
    bad(ValueError, "dropout", _cfg, dropout=1.0),
    bad(TypeError, "dropout", _cfg, dropout=True),
    bad(TypeError, "dropout", _cfg, dropout="0.1"),
    bad(TypeError, "bias", _cfg, bias=1),
    bad(TypeError, "config", GPT, CFG),
    bad(TypeError, "non_embedding", GPT_.num_params, non_embedding="yes"),
    bad(TypeError, "seq_len", GPT_.flops_per_token, 2.5),
    bad(ValueError, "seq_len", GPT_.flops_per_token, 0),
    bad(TypeError, "idx", GPT_, [[1, 2]]),
    bad(ValueError, "idx", GPT_, torch.zeros(1, 3)),
    bad(ValueError, "idx", GPT_, torch.zeros(3, dtype=torch.long)),
    bad(ValueError, "idx", GPT_, torch.zeros(1, 0, dtype=torch.long)),
    bad(TypeError, "targets", GPT_, IDX, [[1, 2, 3]]),
    bad(ValueError, "targets", GPT_, IDX, torch.zeros(1, 2, dtype=torch.long)),
    bad(ValueError, "targets", GPT_, IDX, IDX.float()),
    bad(ValueError, "targets", GPT_, IDX, torch.full((1, 3), 99)),
    bad(TypeError, "return_attentions", GPT_, IDX, return_attentions=1),
    bad(TypeError, "max_new_tokens", GPT_.generate, IDX, 2.0),
    bad(ValueError, "max_new_tokens", GPT_.generate, IDX, -1),
    bad(ValueError, "temperature", GPT_.generate, IDX, 2, temperature=NAN),
    bad(ValueError, "temperature", GPT_.generate, IDX, 2, temperature=-1),
    bad(TypeError, "temperature", GPT_.generate, IDX, 2, temperature="1"),
    bad(ValueError, "top_k", GPT_.generate, IDX, 2, top_k=0),
    bad(TypeError, "top_k", GPT_.generate, IDX, 2, top_k=2.0),
    bad(ValueError, "top_p", GPT_.generate, IDX, 2, top_p=0),
    bad(ValueError, "top_p", GPT_.generate, IDX, 2, top_p=NAN),
    bad(ValueError, "top_p", GPT_.generate, IDX, 2, top_p=1.5),
    bad(TypeError, "use_cache", GPT_.generate, IDX, 2, use_cache="yes"),
    bad(TypeError, "generator", GPT_.generate, IDX, 2, generator=0),
    bad(TypeError, "logits", next_token_probs, [1.0, 2.0]),
    bad(ValueError, "logits", next_token_probs, torch.tensor([1, 2])),
    bad(ValueError, "logits", next_token_probs, torch.tensor(1.0)),
    bad(ValueError, "logits", next_token_probs, torch.zeros(2, 0)),
    bad(ValueError, "temperature", next_token_probs, torch.zeros(4), temperature=INF),
    bad(TypeError, "name", gpt2_config, 124),
    bad(ValueError, "name", gpt2_config, "gpt3"),
    bad(TypeError, "config", param_count, CFG),
    bad(TypeError, "model", GPT.from_hf, nn.Linear(2, 2)),
    bad(TypeError, "config", CausalSelfAttention, CFG),
    bad(TypeError, "config", MLP, None),
    bad(TypeError, "config", Block, "config"),
    bad(TypeError, "x", GPT_.transformer.h[0], [[1.0]]),
    bad(ValueError, "x", GPT_.transformer.h[0], torch.randn(2, 3, 5)),
    bad(ValueError, "x", GPT_.transformer.h[0].attn, torch.randn(3, 8)),
    bad(ValueError, "x", GPT_.transformer.h[0].mlp, torch.ones(1, 2, 8, dtype=torch.long)),
]

# ----------------------------------------------------------------------------- tokenizers
BPE = tokenizers.BPETokenizer.train("low lower lowest " * 20, 262)
CHAR = tokenizers.CharTokenizer.train("hello")
PRETRAINED = tokenizers.PretrainedTokenizer("fake", _Backend(), "test")
_HEADER = {"format": "llmcourse-bpe", "version": 1, "pattern": tokenizers.GPT2_SPLIT_PATTERN}
TOKENIZERS = [
    bad(TypeError, "text", tokenizers.pre_split, 5),
    bad(TypeError, "pattern", tokenizers.pre_split, "a", pattern=5),
    bad(ValueError, "pattern", tokenizers.pre_split, "a", pattern="("),
    bad(TypeError, "chars", tokenizers.CharTokenizer, 5),
    bad(TypeError, "chars", tokenizers.CharTokenizer, [1, 2]),
    bad(ValueError, "chars", tokenizers.CharTokenizer, ["ab"]),
    bad(ValueError, "chars", tokenizers.CharTokenizer, []),
    bad(ValueError, "chars", tokenizers.CharTokenizer, ["a", "a"]),
    bad(TypeError, "text", tokenizers.CharTokenizer.train, 5),
    bad(ValueError, "text", tokenizers.CharTokenizer.train, ""),
    bad(TypeError, "text", CHAR.encode, 5),
    bad(ValueError, "text", CHAR.encode, "z"),
    bad(TypeError, "ids", CHAR.decode, "ab"),
    bad(TypeError, "ids", CHAR.decode, [1.0]),
    bad(TypeError, "ids", CHAR.decode, [True]),
    bad(ValueError, "ids", CHAR.decode, [99]),
    bad(ValueError, "ids", CHAR.decode, [-1]),
    bad(TypeError, "merges", tokenizers.BPETokenizer, 5),
    bad(TypeError, "merges", tokenizers.BPETokenizer, [(True, 1)]),
    bad(TypeError, "merges", tokenizers.BPETokenizer, [(1.0, 2)]),
    bad(ValueError, "merges", tokenizers.BPETokenizer, [(1, 300)]),
    bad(ValueError, "merges", tokenizers.BPETokenizer, [(1, 2, 3)]),
    bad(ValueError, "merges", tokenizers.BPETokenizer, [(1, 2), (1, 2)]),
    bad(ValueError, "pattern", tokenizers.BPETokenizer, pattern="("),
    bad(TypeError, "pattern", tokenizers.BPETokenizer, pattern=None),
    bad(TypeError, "encoding", tokenizers.BPETokenizer.from_tiktoken, "cl100k_base"),
    bad(TypeError, "byte_order", tokenizers.BPETokenizer, byte_order="abc"),
    bad(ValueError, "byte_order", tokenizers.BPETokenizer, byte_order=[0] * 256),
    bad(TypeError, "special_tokens", tokenizers.BPETokenizer, special_tokens=["<eot>"]),
    bad(ValueError, "special_tokens", tokenizers.BPETokenizer, special_tokens={"<eot>": 5}),
    bad(TypeError, "allowed_special", BPE.encode, "a", allowed_special="<eot>"),
    bad(ValueError, "allowed_special", BPE.encode, "a", allowed_special={"<eot>"}),
    bad(TypeError, "ranks", tokenizers.merges_from_ranks, [1]),
    bad(ValueError, "ranks", tokenizers.merges_from_ranks, {b"a": 0}),
    bad(TypeError, "text", tokenizers.BPETokenizer.train, 5, 300),
    bad(TypeError, "vocab_size", tokenizers.BPETokenizer.train, "abc", 300.0),
    bad(TypeError, "vocab_size", tokenizers.BPETokenizer.train, "abc", True),
    bad(ValueError, "vocab_size", tokenizers.BPETokenizer.train, "abc", 100),
    bad(ValueError, "min_frequency", tokenizers.BPETokenizer.train, "abc", 300, min_frequency=0),
    bad(TypeError, "min_frequency", tokenizers.BPETokenizer.train, "abc", 300,
        min_frequency=2.0),
    bad(TypeError, "verbose", tokenizers.BPETokenizer.train, "abc", 300, verbose="yes"),
    bad(ValueError, "pattern", tokenizers.BPETokenizer.train, "abc", 300, pattern="x"),
    bad(TypeError, "text", BPE.encode, b"bytes"),
    bad(ValueError, "ids", BPE.decode, [262]),
    bad(TypeError, "ids", BPE.decode, "abc"),
    bad(TypeError, "i", BPE.token_bytes, 1.5),
    bad(ValueError, "i", BPE.token_bytes, -1),
    bad(ValueError, "i", BPE.token_bytes, 10_000),
    bad(TypeError, "path", BPE.save, 5),
    bad(ValueError, "path", BPE.save, ""),
    bad(TypeError, "path", tokenizers.BPETokenizer.load, 5),
    bad(ValueError, "path", _load_bpe_from, "not json"),
    bad(ValueError, "path", _load_bpe_from, '{"format": "other"}'),
    bad(ValueError, "path", _load_bpe_from, json.dumps({**_HEADER, "merges": [[1]]})),
    bad(ValueError, "path", _load_bpe_from, json.dumps({**_HEADER, "merges": [3]})),
    bad(TypeError, "name", tokenizers.load_tokenizer, 5),
    bad(ValueError, "name", tokenizers.load_tokenizer, "  "),
    bad(TypeError, "online", tokenizers.load_tokenizer, "cl100k", online="yes"),
    bad(TypeError, "name", tokenizers.PretrainedTokenizer, 5, _Backend(), "src"),
    bad(TypeError, "source", tokenizers.PretrainedTokenizer, "x", _Backend(), None),
    bad(TypeError, "backend", tokenizers.PretrainedTokenizer, "x", object(), "src"),
    bad(TypeError, "text", PRETRAINED.encode, 5),
    bad(TypeError, "text", PRETRAINED.tokens, None),
    bad(TypeError, "ids", PRETRAINED.decode, "abc"),
    bad(ValueError, "ids", PRETRAINED.decode, [10]),
    bad(TypeError, "text", CHAR.tokens, 5),
    bad(TypeError, "text", BPE.tokens, ["a"]),
]

# ----------------------------------------------------------------------------- ngram
LM = ngram.NGramLM(2, 3).fit([0, 1, 2, 0, 1])
NGRAM = [
    bad(TypeError, "nll", ngram.perplexity, "1"),
    bad(TypeError, "nll", ngram.perplexity, True),
    bad(ValueError, "nll", ngram.perplexity, NAN),
    bad(ValueError, "nll", ngram.perplexity, -1.0),
    bad(TypeError, "order", ngram.NGramLM, 2.0, 3),
    bad(ValueError, "order", ngram.NGramLM, 0, 3),
    bad(TypeError, "vocab_size", ngram.NGramLM, 2, True),
    bad(ValueError, "vocab_size", ngram.NGramLM, 2, 0),
    bad(ValueError, "vocab_size", ngram.NGramLM, 8, 1000),
    bad(ValueError, "alpha", ngram.NGramLM, 2, 3, alpha=NAN),
    bad(ValueError, "alpha", ngram.NGramLM, 2, 3, alpha=-1),
    bad(TypeError, "alpha", ngram.NGramLM, 2, 3, alpha="1"),
    bad(TypeError, "ids", LM.fit, "abc"),
    bad(TypeError, "ids", LM.fit, [0.5, 1]),
    bad(ValueError, "ids", LM.fit, [0, 5]),
    bad(ValueError, "ids", LM.fit, [-1, 0]),
    bad(ValueError, "ids", LM.fit, [0]),
    bad(TypeError, "context", LM.probs, 5),
    bad(ValueError, "context", LM.probs, []),
    bad(ValueError, "context", LM.probs, [7]),
    bad(ValueError, "ids", LM.log_probs, [[0, 1]]),
    bad(ValueError, "ids", LM.nll, [1]),
    bad(ValueError, "ids", LM.perplexity, []),
    bad(TypeError, "n", LM.sample, [0], 2.0),
    bad(ValueError, "n", LM.sample, [0], -1),
    bad(TypeError, "generator", LM.sample, [0], 2, generator=0),
    bad(ValueError, "context", LM.sample, [], 2),
    bad(TypeError, "context", LM.sample, "a", 2),
]

# ----------------------------------------------------------------------------- evaluate
P2 = torch.tensor([[0.7, 0.3]])
E = torch.randn(3, 4)


def _encode_bytes(s: str) -> list[int]:
    return [b % 16 for b in s.encode()]


def _scalar(x):
    return x.sum()


EVALUATE = [
    bad(TypeError, "y_pred", ev.accuracy, [1, 0], [0.9, 0.2]),  # probabilities are not labels
    bad(TypeError, "y_true", ev.accuracy, [True, False], [1, 0]),
    bad(TypeError, "y_true", ev.accuracy, "0101", [0, 1, 0, 1]),
    bad(TypeError, "y_true", ev.accuracy, torch.tensor([0.0, 1.0]), [0, 1]),
    bad(TypeError, "y_true", ev.accuracy, 5, [1]),
    bad(ValueError, "y_true", ev.accuracy, [0, 1], [0]),
    bad(ValueError, "y_true", ev.accuracy, [], []),
    bad(ValueError, "y_true", ev.accuracy, [0, -1], [0, 1]),
    bad(TypeError, "num_labels", ev.confusion_matrix, [0, 1], [0, 1], num_labels=2.5),
    bad(ValueError, "num_labels", ev.confusion_matrix, [0, 1], [0, 1], num_labels=0),
    bad(ValueError, "y_true", ev.confusion_matrix, [0, 3], [0, 1], num_labels=2),
    bad(ValueError, "y_pred", ev.confusion_matrix, [0, 1], [0, 3], num_labels=2),
    bad(ValueError, "average", ev.precision_recall_f1, [0, 1], [0, 1], average="weighted"),
    bad(TypeError, "average", ev.precision_recall_f1, [0, 1], [0, 1], average=None),
    bad(TypeError, "model", ev.token_nll, "model", IDS, 4),
    bad(TypeError, "ids", ev.token_nll, GPT_, [1, 2, 3], 4),
    bad(ValueError, "ids", ev.token_nll, GPT_, IDS.float(), 4),
    bad(ValueError, "ids", ev.token_nll, GPT_, IDS.view(2, 3), 4),
    bad(ValueError, "ids", ev.token_nll, GPT_, torch.tensor([1]), 4),
    bad(TypeError, "block_size", ev.token_nll, GPT_, IDS, 4.0),
    bad(TypeError, "block_size", ev.token_nll, GPT_, IDS, True),
    bad(ValueError, "block_size", ev.token_nll, GPT_, IDS, 1),
    bad(ValueError, "stride", ev.token_nll, GPT_, IDS, 4, stride=0),
    bad(ValueError, "stride", ev.token_nll, GPT_, IDS, 4, stride=5),
    bad(TypeError, "stride", ev.token_nll, GPT_, IDS, 4, stride=2.0),
    bad(ValueError, "stride", ev.sliding_window_nll, GPT_, IDS, 4, stride=0),
    bad(ValueError, "nll", ev.perplexity, -1),
    bad(ValueError, "nll", ev.perplexity, NAN),
    bad(TypeError, "nll", ev.perplexity, "2"),
    bad(TypeError, "hypotheses", ev.corpus_bleu, "a b", [["a b"]]),
    bad(TypeError, "hypotheses", ev.corpus_bleu, [1], [["a"]]),
    bad(TypeError, "references", ev.corpus_bleu, ["a b"], ["a b"]),
    bad(TypeError, "references", ev.corpus_bleu, ["a b"], [[1]]),
    bad(ValueError, "references", ev.corpus_bleu, ["a b"], []),
    bad(ValueError, "references", ev.corpus_bleu, ["a b"], [["a", "b"]]),
    bad(ValueError, "hypotheses", ev.corpus_bleu, [], [[]]),
    bad(ValueError, "max_n", ev.corpus_bleu, ["a"], [["a"]], max_n=0),
    bad(TypeError, "max_n", ev.corpus_bleu, ["a"], [["a"]], max_n=2.5),
    bad(TypeError, "probs", ev.reliability_bins, [[0.5, 0.5]], [0]),
    bad(ValueError, "probs", ev.reliability_bins, torch.tensor([0.5, 0.5]), [0]),
    bad(ValueError, "probs", ev.reliability_bins, torch.tensor([[1, 0]]), [0]),
    bad(ValueError, "probs", ev.reliability_bins, torch.tensor([[NAN, 0.5]]), [0]),
    bad(ValueError, "probs", ev.reliability_bins, torch.tensor([[1.5, -0.5]]), [0]),
    bad(ValueError, "probs", ev.reliability_bins, torch.zeros(0, 2), []),
    bad(TypeError, "n_bins", ev.reliability_bins, P2, [0], n_bins=True),
    bad(TypeError, "n_bins", ev.reliability_bins, P2, [0], n_bins=2.0),
    bad(ValueError, "n_bins", ev.reliability_bins, P2, [0], n_bins=0),
    bad(ValueError, "y_true", ev.reliability_bins, P2, [0, 1]),
    bad(ValueError, "y_true", ev.reliability_bins, P2, [2]),
    bad(TypeError, "y_true", ev.expected_calibration_error, P2, [0.5]),
    bad(TypeError, "X", ev.weat_effect_size, [[1.0]], E, E, E),
    bad(ValueError, "X", ev.weat_effect_size, torch.randn(4), E, E, E),
    bad(ValueError, "Y", ev.weat_effect_size, E, torch.zeros(0, 4), E, E),
    bad(ValueError, "B", ev.weat_effect_size, E, E, E, torch.randn(2, 5)),
    bad(ValueError, "n_permutations", ev.weat_permutation_p, E, E, E, E, n_permutations=0),
    bad(TypeError, "n_permutations", ev.weat_permutation_p, E, E, E, E, n_permutations=True),
    bad(ValueError, "seed", ev.weat_permutation_p, E, E, E, E, seed=-1),
    bad(TypeError, "seed", ev.weat_permutation_p, E, E, E, E, seed="0"),
    bad(TypeError, "model", ev.greedy_continue, "model", [1], 2),
    bad(TypeError, "n_tokens", ev.greedy_continue, GPT_, [1], 2.0),
    bad(ValueError, "n_tokens", ev.greedy_continue, GPT_, [1], -1),
    bad(ValueError, "prefix", ev.greedy_continue, GPT_, [], 2),
    bad(TypeError, "prefix", ev.greedy_continue, GPT_, [1.5], 2),
    bad(TypeError, "prefix", ev.greedy_continue, GPT_, 5, 2),
    bad(ValueError, "block_size", ev.greedy_continue, GPT_, [1], 2, block_size=0),
    bad(TypeError, "encode", ev.extraction_rate, GPT_, 5, ["abc"], 1),
    bad(TypeError, "secrets", ev.extraction_rate, GPT_, _encode_bytes, "abc", 1),
    bad(TypeError, "secrets", ev.extraction_rate, GPT_, _encode_bytes, [5], 1),
    bad(ValueError, "secrets", ev.extraction_rate, GPT_, _encode_bytes, ["ab"], 2),
    bad(TypeError, "prefix_chars", ev.extraction_rate, GPT_, _encode_bytes, ["abc"], True),
    bad(TypeError, "model", ev.gradient_x_input, "model", torch.randn(3, 4), _scalar),
    bad(TypeError, "embeds", ev.gradient_x_input, GPT_, [[1.0]], _scalar),
    bad(ValueError, "embeds", ev.gradient_x_input, GPT_, torch.randn(3), _scalar),
    bad(ValueError, "embeds", ev.gradient_x_input, GPT_, torch.randn(2, 3, 4), _scalar),
    bad(TypeError, "forward", ev.gradient_x_input, GPT_, torch.randn(3, 4), 5),
    bad(ValueError, "forward", ev.gradient_x_input, GPT_, torch.randn(3, 4), lambda x: x),
]

# ----------------------------------------------------------------------------- finetune
LIN = nn.Sequential()
LIN.add_module("lin", nn.Linear(4, 4))
LIN.add_module("head", nn.Linear(4, 2))
CLF = finetune.GPTClassifier(GPT_, 2)
DS = finetune.TextDataset("d", "s", ["a", "b"], {"train": [("x", 0)], "test": [("y", 1)]})


def _ds(**kw):
    base = dict(name="d", source="s", labels=["a", "b"], splits={"train": [("x", 0)]})
    return finetune.TextDataset(**{**base, **kw})


def _enc(s: str) -> list[int]:
    return [ord(c) % 50 for c in s]


FINETUNE = [
    bad(TypeError, "key", finetune.split_of, 5),
    bad(ValueError, "fractions", finetune.split_of, "k", (0.5, 0.5)),
    bad(TypeError, "fractions", finetune.split_of, "k", 0.5),
    bad(TypeError, "fractions", finetune.split_of, "k", ("a", 0.5, 0.5)),
    bad(TypeError, "fractions", finetune.split_of, "k", (True, False, False)),
    bad(ValueError, "fractions", finetune.split_of, "k", (NAN, 0.5, 0.5)),
    bad(ValueError, "fractions", finetune.split_of, "k", (-0.5, 1.0, 0.5)),
    bad(TypeError, "text", finetune.normalise, 5),
    bad(TypeError, "text", finetune.clean_docstring, 5),
    bad(ValueError, "max_chars", finetune.clean_docstring, "a", max_chars=0),
    bad(TypeError, "max_chars", finetune.clean_docstring, "a", max_chars=True),
    bad(TypeError, "max_chars", finetune.clean_docstring, "a", max_chars=2.0),
    bad(TypeError, "text", finetune.first_sentence, None),
    bad(ValueError, "max_per_class", finetune.docstring_families, max_per_class=0),
    bad(TypeError, "max_chars", finetune.docstring_families, max_chars=2.5),
    bad(TypeError, "min_chars", finetune.docstring_families, min_chars=True),
    bad(ValueError, "max_pairs", finetune.instruction_pairs, max_pairs=0),
    bad(TypeError, "max_pairs", finetune.instruction_pairs, max_pairs=1.5),
    bad(TypeError, "name", finetune.load_text_classification, 5),
    bad(ValueError, "name", finetune.load_text_classification, "nope"),
    bad(ValueError, "online", finetune.load_text_classification, "sst2"),
    bad(TypeError, "online", finetune.load_text_classification, "sst2", online="yes"),
    bad(ValueError, "max_examples", finetune.load_text_classification, "sst2", online=True,
        max_examples=0),
    bad(TypeError, "max_per_class", finetune.load_text_classification, "sst2", online=True,
        max_per_class=5),
    bad(ValueError, "max_examples", finetune.load_text_classification, max_examples=10),
    bad(TypeError, "model_name", finetune.resolve_model_name, 5),
    bad(ValueError, "model_name", finetune.resolve_model_name, ""),
    bad(TypeError, "model_name", finetune.model_revision, None),
    bad(TypeError, "labels", _ds, labels="ab"),
    bad(TypeError, "splits", _ds, splits=[("x", 0)]),
    bad(ValueError, "splits", _ds, splits={"train": [("x", 5)]}),
    bad(TypeError, "name", _ds, name=None),
    bad(TypeError, "split", DS.texts, 5),
    bad(ValueError, "split", DS.targets, "dev"),
    bad(ValueError, "split", DS.label_counts, "dev"),
    bad(TypeError, "split", DS.overlap, "train", 3),
    bad(TypeError, "x", finetune.LoRALinear(nn.Linear(4, 2)), [1.0] * 4),
    bad(ValueError, "x", finetune.LoRALinear(nn.Linear(4, 2)), torch.randn(3, 5)),
    bad(ValueError, "x", finetune.LoRALinear(nn.Linear(4, 2)), torch.ones(3, 4, dtype=torch.long)),
    bad(TypeError, "idx", CLF.hidden, [[1, 2]]),
    bad(TypeError, "base", finetune.LoRALinear, nn.Conv1d(2, 2, 1)),
    bad(ValueError, "r", finetune.LoRALinear, nn.Linear(4, 4), r=0),
    bad(TypeError, "r", finetune.LoRALinear, nn.Linear(4, 4), r=2.0),
    bad(ValueError, "alpha", finetune.LoRALinear, nn.Linear(4, 4), alpha=NAN),
    bad(ValueError, "alpha", finetune.LoRALinear, nn.Linear(4, 4), alpha=0),
    bad(TypeError, "alpha", finetune.LoRALinear, nn.Linear(4, 4), alpha="16"),
    bad(TypeError, "alpha", finetune.LoRALinear, nn.Linear(4, 4), alpha=True),
    bad(ValueError, "dropout", finetune.LoRALinear, nn.Linear(4, 4), dropout=NAN),
    bad(ValueError, "dropout", finetune.LoRALinear, nn.Linear(4, 4), dropout=1.5),
    bad(TypeError, "model", finetune.apply_lora, "m", ["lin"]),
    bad(TypeError, "targets", finetune.apply_lora, LIN, 5),
    bad(TypeError, "targets", finetune.apply_lora, LIN, [5]),
    bad(ValueError, "targets", finetune.apply_lora, LIN, []),
    bad(ValueError, "targets", finetune.apply_lora, LIN, ["nomatch"]),
    bad(TypeError, "freeze_rest", finetune.apply_lora, LIN, ["lin"], freeze_rest="no"),
    bad(TypeError, "keep_trainable", finetune.apply_lora, LIN, ["lin"], keep_trainable=5),
    bad(ValueError, "alpha", finetune.apply_lora, LIN, ["lin"], alpha=NAN),
    bad(TypeError, "model", finetune.merge_lora, 5),
    bad(TypeError, "model", finetune.trainable_share, 5),
    bad(TypeError, "gpt", finetune.GPTClassifier, 5, 2),
    bad(ValueError, "num_labels", finetune.GPTClassifier, GPT_, 1),
    bad(TypeError, "num_labels", finetune.GPTClassifier, GPT_, 2.0),
    bad(TypeError, "num_labels", finetune.GPTClassifier, GPT_, True),
    bad(ValueError, "idx", CLF, torch.zeros(1, 3)),
    bad(ValueError, "lengths", CLF, IDX, torch.tensor([0])),
    bad(ValueError, "lengths", CLF, IDX, torch.tensor([1.5])),
    bad(TypeError, "lengths", CLF, IDX, [1.5]),
    bad(ValueError, "labels", CLF, IDX, labels=torch.tensor([5])),
    bad(ValueError, "labels", CLF, IDX, labels=torch.tensor([0.0])),
    bad(TypeError, "labels", CLF, IDX, labels=[0]),
    bad(TypeError, "instruction", finetune.format_prompt, 5),
    bad(ValueError, "instruction", finetune.format_prompt, "  "),
    bad(TypeError, "encode", finetune.sft_example, 5, "q", "a", 0, 8),
    bad(TypeError, "eos_id", finetune.sft_example, _enc, "q", "a", None, 8),
    bad(ValueError, "eos_id", finetune.sft_example, _enc, "q", "a", -1, 8),
    bad(TypeError, "eos_id", finetune.sft_example, _enc, "q", "a", 1.0, 8),
    bad(TypeError, "max_len", finetune.sft_example, _enc, "q", "a", 0, True),
    bad(ValueError, "max_len", finetune.sft_example, _enc, "q", "a", 0, 1),
    bad(ValueError, "max_len", finetune.sft_example, _enc, "q" * 50, "a", 0, 4),
    bad(TypeError, "response", finetune.sft_example, _enc, "q", 5, 0, 8),
    bad(TypeError, "encode", finetune.sft_example, lambda s: "abc", "q", "a", 0, 8),
    bad(TypeError, "examples", finetune.collate_sft, 5),
    bad(ValueError, "examples", finetune.collate_sft, []),
    bad(TypeError, "examples", finetune.collate_sft, [[1, 2]]),
    bad(TypeError, "examples", finetune.collate_sft, [([1.5], [1])]),
    bad(ValueError, "examples", finetune.collate_sft, [([1, 2], [1])]),
    bad(TypeError, "pad_id", finetune.collate_sft, [([1], [1])], pad_id=None),
]

# ----------------------------------------------------------------------------- scaling
SHAPE = dict(vocab_size=100, n_layer=2, d_model=8, n_heads=2)
MEM = dict(activations=False)


def _count(**kw):
    return scaling.count_params(**{**SHAPE, **kw})


def _peak(config=None, **kw):
    return scaling.peak_rss_of_training_step(CFG if config is None else config,
                                             **{"batch_size": 1, "seq_len": 4, **kw})


SCALING = [
    bad(ValueError, "arch", _count, arch="rnn"),
    bad(TypeError, "arch", _count, arch=5),
    bad(TypeError, "vocab_size", _count, vocab_size=10.0),
    bad(ValueError, "n_layer", _count, n_layer=0),
    bad(ValueError, "n_heads", _count, d_model=10, n_heads=3),
    bad(ValueError, "n_kv_heads", _count, n_kv_heads=3),
    bad(ValueError, "d_ff", _count, arch="llama"),
    bad(TypeError, "tied", _count, tied="yes"),
    bad(TypeError, "bias", _count, bias=1),
    bad(TypeError, "n_params", scaling.training_flops, "1e9", 1e9),
    bad(ValueError, "n_params", scaling.training_flops, NAN, 1e9),
    bad(ValueError, "n_tokens", scaling.training_flops, 1e9, -1),
    bad(ValueError, "n_layer", scaling.training_flops, 1e9, 1e9, seq_len=8),
    bad(TypeError, "seq_len", scaling.training_flops, 1e9, 1e9, seq_len=8.0, n_layer=2,
        d_model=8),
    bad(ValueError, "n_params", scaling.chinchilla_tokens, INF),
    bad(TypeError, "gpu", scaling.gpu_hours, 1e20, gpu=5),
    bad(ValueError, "gpu", scaling.gpu_hours, 1e20, gpu="TPU"),
    bad(ValueError, "mfu", scaling.gpu_hours, 1e20, gpu="A100", mfu=0),
    bad(ValueError, "mfu", scaling.gpu_hours, 1e20, gpu="A100", mfu=1.5),
    bad(ValueError, "mfu", scaling.gpu_hours, 1e20, gpu="A100", mfu=NAN),
    bad(ValueError, "precision", scaling.gpu_hours, 1e20, gpu="A100", precision="fp8"),
    bad(TypeError, "precision", scaling.gpu_hours, 1e20, gpu="A100", precision=16),
    bad(ValueError, "precision", scaling.gpu_hours, 1e20, gpu="T4", precision="bf16"),
    bad(ValueError, "n_gpus", scaling.training_time, 1e20, gpu="A100", n_gpus=0),
    bad(TypeError, "n_gpus", scaling.training_time, 1e20, gpu="A100", n_gpus=2.0),
    bad(ValueError, "reported_gpu_hours", scaling.implied_mfu, 1e20, 0, gpu="A100"),
    bad(ValueError, "usd_per_gpu_hour", scaling.training_cost, 1e20, gpu="A100",
        usd_per_gpu_hour=-1),
    bad(TypeError, "usd_per_gpu_hour", scaling.training_cost, 1e20, gpu="A100",
        usd_per_gpu_hour="2"),
    bad(ValueError, "precision", scaling.bytes_per_param, "fp16"),
    bad(ValueError, "optimizer", scaling.bytes_per_param, optimizer="adam"),
    bad(TypeError, "optimizer", scaling.bytes_per_param, optimizer=None),
    bad(ValueError, "seq_len", scaling.activation_bytes_per_layer, seq_len=0, micro_batch=1,
        d_model=8, n_heads=2),
    bad(TypeError, "micro_batch", scaling.activation_bytes_per_layer, seq_len=4,
        micro_batch=1.5, d_model=8, n_heads=2),
    bad(ValueError, "recompute", scaling.activation_bytes_per_layer, seq_len=4, micro_batch=1,
        d_model=8, n_heads=2, recompute="some"),
    bad(ValueError, "zero_stage", scaling.training_memory, 1e9, zero_stage=4, **MEM),
    bad(TypeError, "zero_stage", scaling.training_memory, 1e9, zero_stage=1.0, **MEM),
    bad(TypeError, "zero_stage", scaling.training_memory, 1e9, zero_stage=True, **MEM),
    bad(TypeError, "activations", scaling.training_memory, 1e9, activations="no"),
    bad(ValueError, "activations", scaling.training_memory, 1e9),
    bad(ValueError, "n_gpus", scaling.training_memory, 1e9, n_gpus=0, **MEM),
    bad(ValueError, "n_params", scaling.training_memory, -1, **MEM),
    bad(TypeError, "memory", scaling.fits, 5, "A100"),
    bad(ValueError, "memory", scaling.fits, {}, "A100"),
    bad(ValueError, "memory", scaling.fits, {"total": NAN}, "A100"),
    bad(ValueError, "gpu", scaling.fits, {"total": 1.0}, "TPU"),
    bad(TypeError, "x", scaling.fit_power_law, 5, [1, 2, 3]),
    bad(ValueError, "x", scaling.fit_power_law, [1, 2], [1, 2]),
    bad(ValueError, "y", scaling.fit_power_law, [1, 2, 3], [1, 0, 3]),
    bad(TypeError, "x", scaling.fit_power_law, [1, 2, "3"], [1, 2, 3]),
    bad(ValueError, "x", scaling.fit_power_law, [2, 2, 2], [1, 2, 3]),
    bad(ValueError, "x", scaling.fit_power_law, [1, 2, NAN], [1, 2, 3]),
    bad(TypeError, "model", scaling.saved_activation_bytes, "m", IDX, IDX),
    bad(ValueError, "targets", scaling.saved_activation_bytes, GPT_, IDX, IDX[:, :1]),
    bad(ValueError, "idx", scaling.saved_activation_bytes, GPT_, IDX.float(), IDX),
    bad(TypeError, "checkpoint", scaling.saved_activation_bytes, GPT_, IDX, IDX,
        checkpoint="yes"),
    bad(TypeError, "config", _peak, config=[]),
    bad(ValueError, "batch_size", _peak, batch_size=0),
    bad(TypeError, "batch_size", _peak, batch_size=1.0),
    bad(ValueError, "seq_len", _peak, seq_len=100),
    bad(TypeError, "checkpoint", _peak, checkpoint="yes"),
    bad(ValueError, "vocab_size", _peak, config={**CFG, "vocab_size": 0}),
]

# ----------------------------------------------------------------------------- hardware, profiles, env
HARDWARE = [
    bad(TypeError, "gpu", hardware.gpu_key, 5),
    bad(ValueError, "gpu", hardware.gpu_key, "TPUv4"),
    bad(ValueError, "gpu", hardware.gpu_key, ""),
    bad(TypeError, "gpu", hardware.peak_flops, None),
    bad(ValueError, "precision", hardware.peak_flops, "A100", "fp8"),
    bad(TypeError, "precision", hardware.peak_flops, "A100", None),
    bad(ValueError, "precision", hardware.peak_flops, "T4", "bf16"),
]


def _profile(**kw):
    return dataclasses.replace(profiles.profile("ci"), **kw)


PROFILES = [
    bad(TypeError, "name", profiles.profile, 5),
    bad(ValueError, "name", profiles.profile, "tpu"),
    bad(ValueError, "name", _profile, name="laptop"),
    bad(ValueError, "precision", _profile, precision="fp8"),
    bad(ValueError, "batch_size", _profile, batch_size=0),
    bad(TypeError, "batch_size", _profile, batch_size=1.5),
    bad(TypeError, "max_steps", _profile, max_steps=None),
    bad(TypeError, "compile", _profile, compile="no"),
    bad(ValueError, "gpt", _profile, gpt={"n_layer": 1}),
    bad(TypeError, "gpt", _profile, gpt=5),
    bad(ValueError, "corpus_chars", _profile, corpus_chars=0),
    bad(TypeError, "gpu", profiles.profile("ci").pick, ci=1, cpu=2),
]

ENV = [
    bad(TypeError, "prefer", env.get_device, 5),
    bad(ValueError, "prefer", env.get_device, "tpu"),
    bad(ValueError, "prefer", env.get_device, ""),
    bad(TypeError, "seed", env.seed_everything, 1.5),
    bad(TypeError, "seed", env.seed_everything, True),
    bad(ValueError, "seed", env.seed_everything, -1),
    bad(ValueError, "seed", env.seed_everything, 2**32),
    bad(TypeError, "seed", env.setup, seed="0"),
    bad(TypeError, "quiet", env.setup, quiet="yes"),
    bad(TypeError, "name", env.hub_repo, 5),
    bad(ValueError, "name", env.hub_repo, ""),
]

# ----------------------------------------------------------------------------- ddp_demo
DDP_DEMO = [
    bad(TypeError, "steps", ddp_demo.global_batches, 2.0, 8, 32),
    bad(ValueError, "steps", ddp_demo.global_batches, 0, 8, 32),
    bad(TypeError, "batch", ddp_demo.global_batches, 1, True, 32),
    bad(ValueError, "block", ddp_demo.global_batches, 1, 8, 0),
    bad(ValueError, "seed", ddp_demo.global_batches, 1, 8, 8, seed=-1),
    bad(TypeError, "model", ddp_demo.train, "m", [], 1e-3),
    bad(TypeError, "batches", ddp_demo.train, GPT_, 5, 1e-3),
    bad(ValueError, "batches", ddp_demo.train, GPT_, [torch.zeros(2, dtype=torch.long)], 1e-3),
    bad(ValueError, "lr", ddp_demo.train, GPT_, [], NAN),
    bad(TypeError, "lr", ddp_demo.train, GPT_, [], "0.1"),
    bad(TypeError, "model", ddp_demo.flat_params, 5),
    bad(TypeError, "argv", ddp_demo.main, "--steps 2"),
    bad(TypeError, "nproc", ddp_demo.launch, 2.0, out="x.json"),
    bad(ValueError, "nproc", ddp_demo.launch, 0, out="x.json"),
    bad(ValueError, "steps", ddp_demo.launch, 2, steps=0, out="x.json"),
    bad(ValueError, "batch", ddp_demo.launch, 2, batch=3, out="x.json"),
    bad(TypeError, "out", ddp_demo.launch, 2, out=None),
    bad(ValueError, "timeout", ddp_demo.launch, 2, out="x.json", timeout=NAN),
]

# ----------------------------------------------------------------------------- exercises
_CASE = ex.Case((1,), 1)
CHECKERS = [
    ex.check_softmax, ex_attention.check_attention, ex_attention.check_causal_mask,
    ex_evaluation.check_macro_f1, ex_evaluation.check_ece, ex_evaluation.check_acc_norm, ex_finetuning.check_sft_labels,
    ex_lm.check_bigram_counts, ex_lm.check_perplexity, ex_loss.check_bits_per_byte,
    ex_loss.check_rmsprop_step, ex_pretraining.check_warmup_cosine, ex_pretraining.check_pack,
    ex_scaling.check_model_state_bytes, ex_scaling.check_gpu_hours, ex_tokens.check_bpe_merge,
    ex_tokens.check_bpe_encode, ex_tokens.check_sinusoidal, ex_transformer.check_gpt_params, ex_transformer.check_top_p,
]
EXERCISES = [
    bad(TypeError, "fn", ex.run_checks, 5, [_CASE], name="x"),
    bad(TypeError, "fn", ex.check_fn, None),
    bad(ValueError, "cases", ex.run_checks, abs, [], name="x"),
    bad(TypeError, "cases", ex.run_checks, abs, 5, name="x"),
    bad(TypeError, "cases", ex.run_checks, abs, [5], name="x"),
    bad(TypeError, "name", ex.run_checks, abs, [_CASE], name=5),
    bad(ValueError, "name", ex.run_checks, abs, [_CASE], name=""),
    bad(ValueError, "atol", ex.run_checks, abs, [_CASE], name="x", atol=NAN),
    bad(ValueError, "atol", ex.run_checks, abs, [_CASE], name="x", atol=-1),
    bad(TypeError, "atol", ex.run_checks, abs, [_CASE], name="x", atol="0"),
    bad(TypeError, "args", ex.Case, 5, 1),
    bad(TypeError, "hint", ex.Case, (1,), 1, hint=5),
    bad(TypeError, "kwargs", ex.Case, (1,), 1, kwargs=[1]),
    *[bad(TypeError, "fn", check, "not a function") for check in CHECKERS],
    bad(ValueError, "d_model", ex_tokens.sinusoidal_positions, 4, 3),
    bad(TypeError, "d_model", ex_tokens.sinusoidal_positions, 4, 4.0),
    bad(ValueError, "n_positions", ex_tokens.sinusoidal_positions, 0, 4),
    bad(TypeError, "n_positions", ex_tokens.sinusoidal_positions, True, 4),
    bad(ValueError, "base", ex_tokens.sinusoidal_positions, 4, 4, base=NAN),
    bad(ValueError, "base", ex_tokens.sinusoidal_positions, 4, 4, base=0),
    bad(TypeError, "base", ex_tokens.sinusoidal_positions, 4, 4, base="1e4"),
]

# ----------------------------------------------------------------------------- train options
def _trainer():
    from llmcourse.train import TrainConfig, Trainer

    return Trainer(GPT(GPTConfig(**CFG)), TrainConfig(device="cpu", progress=False, max_steps=2),
                   [(IDX, IDX)])


def _train_config(**kw):
    from llmcourse.train import TrainConfig

    return TrainConfig(**kw)


def _muon_adamw(*args, **kw):
    from llmcourse.train import MuonAdamW

    return MuonAdamW(*args, **kw)


def _train(name: str):
    import llmcourse.train

    return getattr(llmcourse.train, name)


_TRAINER = _trainer()

TRAIN_CONFIG_CASES = [
    bad(ValueError, "schedule", _train_config, schedule="step"),
    bad(TypeError, "schedule", _train_config, schedule=1),
    bad(TypeError, "schedule", _train_config, schedule=None),
    bad(ValueError, "optimizer", _train_config, optimizer="sgd"),
    bad(ValueError, "optimizer", _train_config, optimizer="Muon"),
    bad(TypeError, "optimizer", _train_config, optimizer=None),
    bad(ValueError, "decay_frac", _train_config, decay_frac=0),
    bad(ValueError, "decay_frac", _train_config, decay_frac=1.5),
    bad(ValueError, "decay_frac", _train_config, decay_frac=-0.2),
    bad(ValueError, "decay_frac", _train_config, decay_frac=NAN),
    bad(ValueError, "decay_frac", _train_config, decay_frac=INF),
    bad(TypeError, "decay_frac", _train_config, decay_frac=True),
    bad(TypeError, "decay_frac", _train_config, decay_frac="0.2"),
    bad(TypeError, "decay_frac", _train_config, decay_frac=None),
    bad(TypeError, "precision", _train_config, precision=16),
    bad(TypeError, "strategy", _train_config, strategy=None),
    bad(TypeError, "model", _train("muon_split"), "gpt"),
    bad(ValueError, "muon_params", _muon_adamw, [], [], lr=1e-3, weight_decay=0.0),
    bad(TypeError, "adamw_groups", _muon_adamw, [torch.zeros(2, 2, requires_grad=True)], "x",
        lr=1e-3, weight_decay=0.0),
    bad(TypeError, "device", _train("peak_flops_here"), 5, "bf16"),
    bad(TypeError, "precision", _train("peak_flops_here"), "cpu", None),
    bad(ValueError, "precision", _train("peak_flops_here"), "cpu", "fp8"),
    bad(TypeError, "device_type", _train("setup_distributed"), 5),
    bad(ValueError, "until", _TRAINER.fit, until=5),
    bad(ValueError, "until", _TRAINER.fit, until=-1),
    bad(TypeError, "until", _TRAINER.fit, until=1.5),
    bad(TypeError, "until", _TRAINER.fit, until=True),
    bad(ValueError, "iters", _TRAINER.evaluate, [(IDX, IDX)], iters=0),
    bad(TypeError, "iters", _TRAINER.evaluate, [(IDX, IDX)], iters=2.0),
]

# ----------------------------------------------------------------------------- checkpoints, data,
# widgets, pretraining (llmcourse.train.checkpoint/batches, llmcourse.data, llmcourse.widgets,
# llmcourse.llama helpers, llmcourse.pretrain)
_TMPDIR = tempfile.TemporaryDirectory(prefix="llmcourse-bad-inputs-")  # removed at exit
_TMP = Path(_TMPDIR.name)
_NOT_ZIP = _TMP / "not-a-zip.pt"
_NOT_ZIP.write_bytes(b"plain bytes")
_TRUNCATED = _TMP / "truncated.safetensors"
_TRUNCATED.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")  # a header, then nothing
_TEXT = "def add(a, b):\n    return a + b\n\nThe quick brown fox. " * 20
_BPE = packing.train_bpe(_TEXT, vocab_size=300)
_DS = packing.tokenize_dataset(["a b", "c d"], _BPE)
_ATT = torch.softmax(torch.randn(1, 2, 3, 3, generator=torch.Generator().manual_seed(0)), -1)
_TOKS = ["a", "b", "c"]
_LLAMA = llama.Llama(llama.LlamaConfig(vocab_size=16, block_size=8, n_layer=1, n_head=2,
                                       n_embd=8, n_kv_head=1))
_CI = pretrain.PRESETS["ci"]
_ONE = lambda prefix: torch.ones(1)  # a next-token "model" over one label


def _run_config(**kw):
    from llmcourse.train import TrainConfig

    return TrainConfig(**{"device": "cpu", "progress": False, "max_steps": 2, **kw})


def _trainer_with(resume=False, **kw):
    from llmcourse.train import Trainer

    return Trainer(GPT(GPTConfig(**CFG)), _run_config(**kw), [(IDX, IDX)], resume=resume)


def _autocast(precision):
    from llmcourse.train import autocast_context

    return autocast_context(precision, torch.device("cpu"))


def _preset(**kw):
    return dataclasses.replace(_CI, **kw)


TRAIN_CHECKPOINT = [
    bad(TypeError, "out_dir", train_checkpoint.list_checkpoints, 5),
    bad(ValueError, "out_dir", train_checkpoint.list_checkpoints, ""),
    bad(TypeError, "model", train_checkpoint.save_weights, "gpt", _TMP / "w.safetensors"),
    bad(TypeError, "path", train_checkpoint.save_weights, GPT_, None),
    bad(TypeError, "model", train_checkpoint.load_weights, {"w": 1}, _TRUNCATED),
    bad(TypeError, "path", train_checkpoint.load_weights, GPT_, 5),
    bad(ValueError, "path", train_checkpoint.load_weights, GPT_, _TMP / "missing.safetensors"),
    bad(ValueError, "truncated.safetensors", train_checkpoint.load_weights, GPT_, _TRUNCATED),
    bad(TypeError, "path", train_checkpoint.pickle_globals, 5),
    bad(ValueError, "path", train_checkpoint.pickle_globals, _TMP),
    bad(ValueError, "path", train_checkpoint.pickle_globals, _NOT_ZIP),
    bad(TypeError, "resume", _trainer_with, resume=5),
    bad(TypeError, "resume", _trainer_with, resume=[_TMP]),
    bad(ValueError, "out_dir", _trainer_with, resume=True),
    bad(ValueError, "checkpoint directory", _trainer_with, resume=_TMP / "missing"),
    bad(TypeError, "path", _TRAINER.load_checkpoint, 5),
    bad(ValueError, "checkpoint directory", _TRAINER.load_checkpoint, _TMP),
    bad(ValueError, "out_dir", _TRAINER.save_checkpoint),
    bad(TypeError, "resume_allow", _run_config, resume_allow="max_steps"),
    bad(TypeError, "resume_allow", _run_config, resume_allow=("lr", 1)),
    bad(TypeError, "resume_allow", _run_config, resume_allow=None),
    bad(ValueError, "resume_allow", _run_config, resume_allow=("max_step",)),
    # the examples, in config.py and precision.py
    bad(ValueError, "grad_clip", _run_config, grad_clip=NAN),
    bad(ValueError, "grad_clip", _run_config, grad_clip=INF),
    bad(ValueError, "grad_clip", _run_config, grad_clip=-1.0),
    bad(TypeError, "grad_clip", _run_config, grad_clip="1.0"),
    bad(TypeError, "grad_clip", _run_config, grad_clip=True),
    bad(TypeError, "compile", _run_config, compile="false"),
    bad(TypeError, "compile", _run_config, compile=1),
    bad(TypeError, "progress", _run_config, progress="no"),
    bad(ValueError, "precision", _autocast, "fp8"),
    bad(TypeError, "precision", _autocast, None),
]

TRAIN_BATCHES = [
    bad(TypeError, "batch", train_batches.batch_tokens, 5),
    bad(TypeError, "batch", train_batches.batch_tokens, []),
    bad(TypeError, "batch", train_batches.batch_tokens, {"labels": IDX}),
    bad(TypeError, "model", train_batches.forward_loss, "gpt", (IDX, IDX)),
    bad(TypeError, "batch", train_batches.forward_loss, GPT_, IDX),
    bad(TypeError, "loss", train_batches.forward_loss, GPT_, (IDX,)),  # no targets, no loss
]

DATA = [
    bad(TypeError, "ids", batching.as_token_tensor, "abc"),
    bad(TypeError, "ids", batching.as_token_tensor, [1.5, 2.0]),
    bad(TypeError, "ids", batching.as_token_tensor, torch.tensor([1.0, 2.0])),
    bad(TypeError, "ids", batching.as_token_tensor, torch.tensor([True, False])),
    bad(ValueError, "ids", batching.as_token_tensor, torch.zeros(2, 2, dtype=torch.long)),
    bad(ValueError, "ids", batching.as_token_tensor, [1, -2]),
    bad(TypeError, "name", batching.as_token_tensor, [1, 2], name=3),
    bad(TypeError, "block_size", batching.make_blocks, [0, 1, 2, 3], 2.0),
    bad(TypeError, "block_size", batching.make_blocks, [0, 1, 2, 3], True),
    bad(ValueError, "block_size", batching.make_blocks, [0, 1, 2, 3], 0),
    bad(ValueError, "ids", batching.make_blocks, [0, 1], 4),
    bad(ValueError, "device", batching.make_blocks, [0, 1, 2, 3], 2, device="gpu"),
    bad(TypeError, "device", batching.make_blocks, [0, 1, 2, 3], 2, device=1.5),
    bad(TypeError, "data", batching.get_batch, None, 2, 2),
    bad(TypeError, "batch_size", batching.get_batch, list(range(10)), 2, 2.5),
    bad(ValueError, "batch_size", batching.get_batch, list(range(10)), 2, 0),
    bad(ValueError, "data", batching.get_batch, list(range(3)), 4, 2),
    bad(TypeError, "generator", batching.get_batch, list(range(10)), 2, 2, generator=0),
    bad(ValueError, "device", batching.get_batch, list(range(10)), 2, 2, device="tpu"),
    bad(TypeError, "name", corpora.load_corpus, 5),
    bad(ValueError, "name", corpora.load_corpus, "nope"),
    bad(ValueError, "name", corpora.load_corpus, ""),
    bad(TypeError, "data", corpora.train_val_split, 5),
    bad(TypeError, "val_fraction", corpora.train_val_split, "abcdef", "0.1"),
    bad(TypeError, "val_fraction", corpora.train_val_split, "abcdef", True),
    bad(ValueError, "val_fraction", corpora.train_val_split, "abcdef", NAN),
    bad(ValueError, "val_fraction", corpora.train_val_split, "abcdef", 1.0),
    bad(ValueError, "data", corpora.train_val_split, "a", 0.5),
]

PACKING = [
    bad(TypeError, "vocab_size", packing.train_bpe, _TEXT, vocab_size=300.0),
    bad(TypeError, "vocab_size", packing.train_bpe, _TEXT, vocab_size=True),
    bad(ValueError, "vocab_size", packing.train_bpe, _TEXT, vocab_size=100),
    bad(TypeError, "text", packing.train_bpe, 5),
    bad(TypeError, "text", packing.train_bpe, [b"bytes"]),
    bad(ValueError, "text", packing.train_bpe, ""),
    bad(ValueError, "text", packing.train_bpe, []),
    bad(TypeError, "cache", packing.train_bpe, _TEXT, cache=5),
    bad(TypeError, "texts", packing.tokenize_dataset, "one string", _BPE),
    bad(TypeError, "texts", packing.tokenize_dataset, [1, 2], _BPE),
    bad(ValueError, "texts", packing.tokenize_dataset, [], _BPE),
    bad(TypeError, "tokenizer", packing.tokenize_dataset, ["a"], "gpt2"),
    bad(TypeError, "add_eos", packing.tokenize_dataset, ["a"], _BPE, add_eos="yes"),
    bad(TypeError, "batch_size", packing.tokenize_dataset, ["a"], _BPE, batch_size=1.5),
    bad(ValueError, "batch_size", packing.tokenize_dataset, ["a"], _BPE, batch_size=0),
    bad(TypeError, "text_column", packing.tokenize_dataset, ["a"], _BPE, text_column=1),
    bad(ValueError, "text_column", packing.tokenize_dataset, _DS, _BPE, text_column="text"),
    bad(TypeError, "block_size", packing.pack_blocks, _DS, 2.0),
    bad(ValueError, "block_size", packing.pack_blocks, _DS, 0),
    bad(TypeError, "dataset", packing.pack_blocks, [[1, 2]], 2),
    bad(TypeError, "batch_size", packing.pack_blocks, _DS, 2, batch_size="8"),
    bad(TypeError, "dataset", packing.token_stream, [[1, 2]]),
    bad(ValueError, "dataset", packing.token_stream, {"text": ["a"]}),
    bad(TypeError, "chunks", packing.write_token_file, [[1.5, 2.0]], _TMP / "f.bin"),
    bad(TypeError, "chunks", packing.write_token_file, [[1.0, 2.0]], _TMP / "f.bin"),
    bad(TypeError, "chunks", packing.write_token_file, [torch.tensor([1.0, 2.0])], _TMP / "f.bin"),
    bad(TypeError, "chunks", packing.write_token_file, [[True, False]], _TMP / "f.bin"),
    bad(TypeError, "chunks", packing.write_token_file, ["abc"], _TMP / "f.bin"),
    bad(TypeError, "chunks", packing.write_token_file, 5, _TMP / "f.bin"),
    bad(ValueError, "chunks", packing.write_token_file, [[1, 2], [[3]]], _TMP / "f.bin"),
    bad(ValueError, "token ids", packing.write_token_file, [[1, 300]], _TMP / "f.bin",
        vocab_size=300),
    bad(ValueError, "token ids", packing.write_token_file, [[-1]], _TMP / "f.bin"),
    bad(TypeError, "vocab_size", packing.write_token_file, [[1]], _TMP / "f.bin",
        vocab_size=2.0**16),
    bad(ValueError, "vocab_size", packing.write_token_file, [[1]], _TMP / "f.bin",
        vocab_size=2**33),
    bad(TypeError, "path", packing.write_token_file, [[1]], None),
    bad(TypeError, "path", packing.open_token_file, 5),
    bad(ValueError, "path", packing.open_token_file, _TMP / "missing.bin"),
    bad(TypeError, "tokens", packing.make_get_batch, torch.arange(10.0), 1, 2),
    bad(TypeError, "tokens", packing.make_get_batch, [1.5, 2.0, 3.0, 4.0, 5.0, 6.0], 1, 2),
    bad(TypeError, "tokens", packing.make_get_batch, torch.arange(10).numpy() * 1.0, 1, 2),
    bad(TypeError, "tokens", packing.make_get_batch, "abcdefgh", 1, 2),
    bad(ValueError, "tokens", packing.make_get_batch, [1, -2, 3, 4, 5, 6], 1, 2),
    bad(ValueError, "tokens", packing.make_get_batch, torch.zeros(4, 4, dtype=torch.long), 1, 2),
    bad(ValueError, "tokens", packing.make_get_batch, list(range(4)), 1, 4),
    bad(TypeError, "batch_size", packing.make_get_batch, list(range(100)), 2.0, 4),
    bad(ValueError, "block_size", packing.make_get_batch, list(range(100)), 2, 0),
    bad(TypeError, "generator", packing.make_get_batch(list(range(100)), 2, 4), 0),
    bad(TypeError, "blocks", packing.blocks_loader, [[1, 2, 3]], 1),
    bad(TypeError, "batch_size", packing.blocks_loader, {"input_ids": [[1, 2, 3]]}, 1.0),
    bad(TypeError, "seed", packing.blocks_loader, {"input_ids": [[1, 2, 3]]}, 1, seed=0.5),
    bad(TypeError, "shuffle", packing.blocks_loader, {"input_ids": [[1, 2, 3]]}, 1,
        shuffle="no"),
    bad(ValueError, "blocks", packing.blocks_loader, {"input_ids": [[1, 2, 3], [1, 2]]}, 1),
    bad(ValueError, "blocks", packing.blocks_loader, {"input_ids": [[1.5, 2.0]]}, 1),
    bad(ValueError, "batch_size", packing.blocks_loader, {"input_ids": [[1, 2, 3]]}, 2),
]

WIDGETS = [
    bad(TypeError, "attentions", wg.attention_heatmap, "att", _TOKS),
    bad(ValueError, "attentions", wg.attention_heatmap, (), _TOKS),
    bad(ValueError, "attentions", wg.attention_heatmap, torch.rand(3, 3), _TOKS),
    bad(ValueError, "attentions", wg.attention_heatmap, (_ATT, torch.rand(1, 2, 4, 4)), _TOKS),
    bad(ValueError, "attentions", wg.attention_heatmap, (torch.full((1, 2, 3, 3), NAN),), _TOKS),
    bad(ValueError, "attentions", wg.attention_heatmap, (-_ATT,), _TOKS),
    bad(TypeError, "tokens", wg.attention_heatmap, (_ATT,), "abc"),
    bad(ValueError, "tokens", wg.attention_heatmap, (_ATT,), ["a", "b"]),
    bad(TypeError, "tokens", wg.attention_heatmap, (_ATT,), [1, 2, 3]),
    bad(TypeError, "layer", wg.attention_heatmap, (_ATT,), _TOKS, layer=0.0),
    bad(ValueError, "layer", wg.attention_heatmap, (_ATT,), _TOKS, layer=1),
    bad(ValueError, "head", wg.attention_heatmap, (_ATT,), _TOKS, head=-1),
    bad(TypeError, "head", wg.attention_heatmap, (_ATT,), _TOKS, head=True),
    bad(ValueError, "key_tokens", wg.attention_heatmap, (_ATT,), _TOKS, key_tokens=["a"]),
    bad(TypeError, "mask", wg.attention_heatmap, (_ATT,), _TOKS, mask=torch.ones(3, 3)),
    bad(ValueError, "mask", wg.attention_heatmap, (_ATT,), _TOKS,
        mask=torch.ones(4, 4, dtype=torch.bool)),
    bad(TypeError, "batch_index", wg.attention_heatmap, (_ATT,), _TOKS, batch_index=0.0),
    bad(ValueError, "batch_index", wg.attention_heatmap, (_ATT,), _TOKS, batch_index=3),
    bad(TypeError, "height", wg.attention_heatmap, (_ATT,), _TOKS, height="400"),
    bad(ValueError, "height", wg.attention_heatmap, (_ATT,), _TOKS, height=0),
    bad(TypeError, "max_tokens", wg.model_view, (_ATT,), _TOKS, max_tokens=2.5),
    bad(ValueError, "max_tokens", wg.model_view, (_ATT,), _TOKS, max_tokens=1),
    bad(TypeError, "cell_px", wg.model_view, (_ATT,), _TOKS, cell_px="90"),
    bad(ValueError, "cell_px", wg.model_view, (_ATT,), _TOKS, cell_px=0),
    bad(ValueError, "attentions", wg.model_view, (torch.rand(1, 2, 3, 4),), _TOKS),
    bad(TypeError, "weights", wg.attention_entropy, [[0.5, 0.5]]),
    bad(ValueError, "weights", wg.attention_entropy, torch.tensor([[1, 0]])),
    bad(ValueError, "weights", wg.attention_entropy, torch.tensor([-0.5, 1.5])),
    bad(ValueError, "weights", wg.attention_entropy, torch.tensor([NAN, 1.0])),
    bad(TypeError, "tokens", wg.head_summary, (_ATT,), "abc"),
    bad(TypeError, "batch_index", wg.head_summary, (_ATT,), batch_index="0"),
    bad(TypeError, "model", wg.attention_explorer, "bert", None, "text"),
    bad(ValueError, "text", wg.attention_explorer, nn.Linear(2, 2), None, ""),
    bad(TypeError, "text", wg.attention_explorer, nn.Linear(2, 2), None, 5),
    bad(TypeError, "token", wg.show_token, 5),
    bad(ValueError, "models", wg.NextTokenWidget, {}, ["a"]),
    bad(TypeError, "models", wg.NextTokenWidget, [_ONE], ["a"]),
    bad(TypeError, "models", wg.NextTokenWidget, {"m": 5}, ["a"]),
    bad(TypeError, "labels", wg.NextTokenWidget, {"m": _ONE}, "a"),
    bad(TypeError, "labels", wg.NextTokenWidget, {"m": _ONE}, [1]),
    bad(TypeError, "top_k", wg.NextTokenWidget, {"m": _ONE}, ["a"], top_k=1.0),
    bad(ValueError, "top_k", wg.NextTokenWidget, {"m": _ONE}, ["a"], top_k=2),
    bad(TypeError, "prefix", wg.NextTokenWidget, {"m": _ONE}, ["a"], top_k=1, prefix=1),
    bad(TypeError, "name", wg.configure_renderer, 5),
    bad(ValueError, "name", wg.configure_renderer, "no-such-renderer"),
    bad(TypeError, "fig", wg.export_html, {"data": []}, _TMP / "a.html"),
    bad(TypeError, "path", wg_renderer.export_html, wg.attention_heatmap((_ATT,), _TOKS), None),
    bad(ValueError, "model", wg.ScalingCalculator, "GPT-5"),
    bad(TypeError, "model", wg.ScalingCalculator, 7),
    bad(ValueError, "gpu", wg.ScalingCalculator, gpu="TPUv4"),
    bad(TypeError, "gpu", wg.ScalingCalculator, gpu=4),
    bad(TypeError, "source", wg.figure_from_metrics, 5),
    bad(ValueError, "source", wg.figure_from_metrics, _TMP / "no-run"),
    bad(ValueError, "source", wg.figure_from_metrics, [{"loss": 1.0}]),
    bad(TypeError, "source", wg_dashboard.figure_from_metrics, [5]),
    bad(ValueError, "record", wg.Dashboard().update, {"loss": 1.0}),
    bad(TypeError, "record", wg.Dashboard().update, [("step", 1)]),
    bad(TypeError, "records", wg.Dashboard, 5),
    bad(ValueError, "attentions", wg_attention.head_summary, (torch.full((1, 1, 2, 2), INF),)),
]

LLAMA = [
    bad(TypeError, "n_embd", llama.swiglu_hidden, 8.0),
    bad(ValueError, "multiple_of", llama.swiglu_hidden, 8, 0),
    bad(TypeError, "x", llama.rotate_half, [1.0, 2.0]),
    bad(ValueError, "x", llama.rotate_half, torch.randn(2, 3)),
    bad(TypeError, "cos", llama.apply_rope, torch.randn(1, 1, 2, 4), [1.0], torch.randn(2, 4)),
    bad(TypeError, "n_rep", llama.repeat_kv, torch.randn(1, 1, 2, 4), 2.0),
    bad(ValueError, "n_rep", llama.repeat_kv, torch.randn(1, 1, 2, 4), 0),
    bad(ValueError, "x", llama.repeat_kv, torch.randn(2, 4), 2),
    bad(TypeError, "T", llama.causal_mask, 2.0),
    bad(ValueError, "past", llama.causal_mask, 2, past=-1),
    bad(ValueError, "sliding_window", llama.causal_mask, 2, sliding_window=0),
    bad(TypeError, "router_logits", llama.load_balancing_loss, torch.randn(3, 2), 1),
    bad(TypeError, "max_new_tokens", _LLAMA.generate, IDX, 2.0),
    bad(ValueError, "max_new_tokens", _LLAMA.generate, IDX, -1),
    bad(ValueError, "temperature", _LLAMA.generate, IDX, 2, temperature=NAN),
    bad(ValueError, "top_k", _LLAMA.generate, IDX, 2, top_k=0),
    bad(ValueError, "top_p", _LLAMA.generate, IDX, 2, top_p=1.5),
    bad(TypeError, "generator", _LLAMA.generate, IDX, 2, generator=0),
    bad(TypeError, "idx", _LLAMA.generate, [[1, 2]], 2),
    bad(TypeError, "seq_len", _LLAMA.flops_per_token, 2.5),
    bad(TypeError, "active", _LLAMA.num_params, active="yes"),
    bad(TypeError, "model", llama.Llama.from_hf, nn.Linear(2, 2)),
    bad(TypeError, "config", llama.Llama, {"vocab_size": 16}),
]

PRETRAIN = [
    bad(TypeError, "argv", pretrain.main, "--preset ci"),
    bad(TypeError, "argv", pretrain.main, ["--preset", 1]),
    bad(TypeError, "preset", pretrain.prepare_data, "ci", _TMP),
    bad(TypeError, "out", pretrain.prepare_data, _CI, 5),
    bad(TypeError, "preset", pretrain.data_key, "ci"),
    bad(TypeError, "preset", pretrain.build_model, "ci", 64),
    bad(TypeError, "vocab_size", pretrain.build_model, _CI, 64.0),
    bad(ValueError, "vocab_size", pretrain.build_model, _CI, 0),
    bad(ValueError, "arch", pretrain.build_model, _CI, 64, "bert"),
    bad(TypeError, "arch", pretrain.build_model, _CI, 64, None),
    bad(TypeError, "model", pretrain.export, "gpt", _BPE, _TMP),
    bad(TypeError, "tokenizer", pretrain.export, GPT_, "tok", _TMP),
    bad(TypeError, "model", pretrain.export, nn.Linear(2, 2), _BPE, _TMP),
    bad(TypeError, "out", pretrain.export, GPT_, _BPE, 5),
    bad(ValueError, "Preset.vocab_size", _preset, vocab_size=100),
    bad(TypeError, "Preset.vocab_size", _preset, vocab_size=512.0),
    bad(ValueError, "Preset.corpus", _preset, corpus=("nope",)),
    bad(TypeError, "Preset.corpus", _preset, corpus="python-reference"),
    bad(ValueError, "Preset.corpus_chars", _preset, corpus_chars=0),
    bad(ValueError, "Preset.lr", _preset, lr=NAN),
    bad(ValueError, "Preset.lr", _preset, lr=0.0),
    bad(ValueError, "Preset.dropout", _preset, dropout=1.0),
    bad(ValueError, "Preset.n_layer", _preset, n_layer=0),
    bad(TypeError, "Preset.batch_size", _preset, batch_size=2.5),
    bad(ValueError, "Preset.model_vocab", _preset, model_vocab=256),
    bad(ValueError, "Preset.precision", _preset, precision="fp8"),
    bad(TypeError, "Preset.compile", _preset, compile="yes"),
]

CASES = [*ATTENTION, *MODEL, *TOKENIZERS, *NGRAM, *EVALUATE, *FINETUNE, *SCALING, *HARDWARE,
         *PROFILES, *ENV, *DDP_DEMO, *EXERCISES,
         *TRAIN_CONFIG_CASES,
         *TRAIN_CHECKPOINT, *TRAIN_BATCHES, *DATA, *PACKING, *WIDGETS, *LLAMA, *PRETRAIN]


@pytest.mark.parametrize(("fn", "args", "kwargs", "exc", "argname"), CASES)
def test_bad_input_raises_naming_the_argument(fn, args, kwargs, exc, argname, capsys):
    with pytest.raises(Exception) as info:  # noqa: PT011 - the exact type is asserted below
        fn(*args, **kwargs)
    assert type(info.value) is exc, f"raised {type(info.value).__name__}: {info.value}"
    assert argname in str(info.value), f"message does not name {argname!r}: {info.value}"
    assert capsys.readouterr().out == ""  # refused before doing anything


def test_enough_cases():
    assert len(CASES) >= 150


def test_apply_lora_validates_before_freezing():
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(ValueError, match="alpha"):
        finetune.apply_lora(model, ["0"], alpha=math.nan)
    assert all(p.requires_grad for p in model.parameters())  # nothing frozen by the failed call


def test_setup_validates_before_touching_the_environment(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("LLMCOURSE_ONLINE", raising=False)
    with pytest.raises(TypeError, match="seed"):
        env.setup(seed=1.5)
    assert "HF_HUB_OFFLINE" not in os.environ


def test_huge_ngram_order_is_refused_at_once():
    with pytest.raises(ValueError, match="vocab_size"):
        ngram.NGramLM(10**9, 2)  # never computes 2 ** 1e9


def test_extraction_rate_refuses_an_encoder_that_gives_no_tokens():
    with pytest.raises(ValueError, match="encode"):  # not a ZeroDivisionError
        ev.extraction_rate(GPT_, lambda s: [1] if s == "ab" else [], ["abcd"], 2)
