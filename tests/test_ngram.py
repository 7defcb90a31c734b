import math

import pytest
import torch

from llmcourse.ngram import NGramLM, perplexity
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
