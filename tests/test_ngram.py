import math

import pytest
import torch

from llmcourse.ngram import MLPLanguageModel, NGramLM, context_windows, perplexity
from llmcourse.widgets import NextTokenWidget, show_token


def test_bigram_probabilities_from_counts():
    lm = NGramLM(2, 3, alpha=0.0).fit([0, 1, 0, 1, 0, 2])
    assert lm.counts[0].tolist() == [0, 2, 1]
    assert torch.allclose(lm.probs([0]), torch.tensor([0, 2 / 3, 1 / 3], dtype=torch.float64))
    assert torch.allclose(lm.prob_table().sum(1), torch.ones(3, dtype=torch.float64))
    # context 2 never seen: uniform when alpha = 0
    assert torch.allclose(lm.probs([2]), torch.full((3,), 1 / 3, dtype=torch.float64))


def test_smoothing_and_perplexity():
    train, held_out = [0, 1, 0, 1, 0, 1], [1, 1]
    assert NGramLM(2, 2, alpha=0.0).fit(train).perplexity(held_out) == math.inf
    lm = NGramLM(2, 2, alpha=1.0).fit(train)
    # P(1 | 1) = (0 + 1) / (2 + 2)
    assert math.isclose(lm.nll(held_out), -math.log(1 / 4))
    assert math.isclose(lm.perplexity(held_out), 4.0)
    assert perplexity(0.0) == 1.0 and perplexity(1e6) == math.inf


def test_log_probs_match_probs_for_trigram():
    ids = torch.randint(0, 4, (200,), generator=torch.Generator().manual_seed(0))
    lm = NGramLM(3, 4, alpha=0.5).fit(ids)
    lp = lm.log_probs(ids[:10])
    assert lp.shape == (8,)
    for t in range(2, 10):
        assert math.isclose(float(lp[t - 2]), math.log(lm.probs(ids[:t])[ids[t]]), rel_tol=1e-9)


def test_unigram_and_sampling():
    lm = NGramLM(1, 3, alpha=0.0).fit([2, 2, 2, 1])
    assert torch.allclose(lm.probs([]), torch.tensor([0, 0.25, 0.75], dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    big = NGramLM(2, 3, alpha=0.0).fit([0, 1, 2, 0, 1, 2, 0])
    assert big.sample([0], 5, generator=g) == [1, 2, 0, 1, 2]  # deterministic chain
    assert len(lm.sample([], 4, generator=g)) == 4


def test_bad_inputs():
    with pytest.raises(ValueError, match="order"):
        NGramLM(0, 3)
    with pytest.raises(TypeError, match="vocab_size"):
        NGramLM(2, 3.0)
    with pytest.raises(ValueError, match="alpha"):
        NGramLM(2, 3, alpha=-1)
    with pytest.raises(ValueError, match="dense table"):
        NGramLM(4, 1000)
    lm = NGramLM(2, 3)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        lm.fit([0, 3])
    with pytest.raises(ValueError, match="at least order"):
        lm.fit([0])
    with pytest.raises(ValueError, match="context"):
        lm.probs([])
    with pytest.raises(ValueError, match="n must be"):
        lm.sample([0], -1)
    with pytest.raises(ValueError, match="nll"):
        perplexity(-1.0)


def test_next_token_widget_updates_figure():
    labels = ["a", "b", " "]
    w = NextTokenWidget({"m1": lambda p: torch.tensor([0.7, 0.2, 0.1]),
                         "m2": lambda p: torch.tensor([0.1, 0.1, 0.8]) if p.endswith("a")
                         else torch.tensor([1 / 3] * 3)}, labels, top_k=2)
    out = w.update("ba")
    assert out["m1"][0] == ("a", pytest.approx(0.7))
    assert list(w.fig.data[1].x) == ["␣", "a"] or list(w.fig.data[1].x) == ["␣", "b"]
    assert w.fig.data[0].y[0] == pytest.approx(0.7)
    w.text.value = "b"  # typing triggers the update
    assert w.last["m2"][0][1] == pytest.approx(1 / 3)
    assert show_token(" \n\t") == "␣\\n\\t"
    with pytest.raises(ValueError, match="top_k"):
        NextTokenWidget({"m": lambda p: torch.ones(3) / 3}, labels, top_k=5)
    with pytest.raises(TypeError, match="callable"):
        NextTokenWidget({"m": 3}, labels)
    bad = NextTokenWidget({"m": lambda p: torch.ones(2)}, labels, top_k=1, prefix="")
    assert "returned 2 probabilities" in bad.status.value  # shown, not raised, when typing


def test_context_windows_pairs_each_token_with_the_k_before_it():
    x, y = context_windows(torch.arange(10), context=3)
    assert x.shape == (7, 3) and y.shape == (7,)
    assert x[0].tolist() == [0, 1, 2] and y[0] == 3
    assert x[-1].tolist() == [6, 7, 8] and y[-1] == 9
    assert torch.equal(x[:-1, 1:], x[1:, :-1])  # windows overlap: each slides by one token
    assert torch.equal(x[1:, -1], y[:-1])  # each target is the next window's last context token
    x1, y1 = context_windows([4, 2, 7], context=1)
    assert x1.tolist() == [[4], [2]] and y1.tolist() == [2, 7]


def test_mlp_language_model_shapes_parameters_and_forward():
    V, k, d, H = 11, 3, 4, 6
    torch.manual_seed(0)
    model = MLPLanguageModel(V, k, d, H)
    assert sum(p.numel() for p in model.parameters()) == V * d + (k * d * H + H) + (H * V + V)
    ctx = torch.tensor([[1, 2, 3], [3, 2, 1]])
    logits = model(ctx)
    assert logits.shape == (2, V)
    # the same forward written out: concatenate the embeddings in order, tanh layer, head
    e = torch.cat([model.embed.weight[i] for i in (1, 2, 3)])
    h = torch.tanh(model.hidden.weight @ e + model.hidden.bias)
    assert torch.allclose(logits[0], model.head.weight @ h + model.head.bias, atol=1e-6)
    # order matters: reversing the context changes the prediction (it is not a bag of tokens)
    assert not torch.allclose(logits[0], logits[1])


def test_mlp_language_model_learns_a_sequence_the_bigram_cannot():
    # 0 1 2 | 0 1 3 repeated: after "1" the bigram can only guess 2 or 3; two tokens of context decide
    ids = torch.tensor([0, 1, 2, 0, 1, 3] * 20)
    x, y = context_windows(ids, context=3)
    torch.manual_seed(0)
    model = MLPLanguageModel(4, 3, 8, 16)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    bigram_nll = NGramLM(2, 4, alpha=0.0).fit(ids).nll(ids)
    assert bigram_nll > 0.2 and loss.item() < 0.01


def test_mlp_and_windows_bad_inputs():
    with pytest.raises(TypeError, match="context"):
        MLPLanguageModel(10, 2.0, 4, 8)
    with pytest.raises(ValueError, match="d_hidden"):
        MLPLanguageModel(10, 2, 4, 0)
    model = MLPLanguageModel(10, 2, 4, 8)
    with pytest.raises(TypeError, match="ctx"):
        model([[1, 2]])
    with pytest.raises(ValueError, match="ctx must have shape"):
        model(torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="ctx must be an integer"):
        model(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match="more than context"):
        context_windows([1, 2], context=2)
    with pytest.raises(TypeError, match="context"):
        context_windows([1, 2, 3], context="2")
