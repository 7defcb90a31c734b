import math

import pytest
import sacrebleu
import torch
from sklearn import metrics as skm

from llmcourse import evaluate as ev


def _labels(seed=0, n=200, k=4):
    g = torch.Generator().manual_seed(seed)
    t = torch.randint(0, k, (n,), generator=g)
    p = torch.where(torch.rand(n, generator=g) < 0.6, t, torch.randint(0, k, (n,), generator=g))
    return t.tolist(), p.tolist()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sklearn(seed):
    t, p = _labels(seed)
    assert ev.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    assert torch.equal(ev.confusion_matrix(t, p), torch.tensor(skm.confusion_matrix(t, p)))
    for avg in ("macro", "micro"):
        ours = ev.precision_recall_f1(t, p, average=avg)
        ref = skm.precision_recall_fscore_support(t, p, average=avg, zero_division=0)[:3]
        assert ours == pytest.approx(ref, abs=1e-12)


def test_metrics_class_never_predicted():
    t, p = [0, 1, 2, 2], [0, 0, 2, 2]
    ref = skm.precision_recall_fscore_support(t, p, average="macro", zero_division=0)[:3]
    assert ev.precision_recall_f1(t, p) == pytest.approx(ref)


def test_metrics_bad_inputs():
    with pytest.raises(ValueError, match="same length"):
        ev.accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="average"):
        ev.precision_recall_f1([0], [0], average="weighted")
    with pytest.raises(TypeError, match="y_true"):
        ev.accuracy(["a"], [0])
    with pytest.raises(ValueError, match="y_true must hold labels in"):
        ev.confusion_matrix([0, 3], [0, 1], num_labels=2)


def test_bleu_equals_sacrebleu():
    hyps = ["the cat sat on the mat", "a quick brown fox jumps over the lazy dog today",
            "hello there my good friend"]
    refs = [["the cat is sitting on the mat", "a fast brown fox jumps over the lazy dog",
             "hello there my dear friend"],
            ["there is a cat on the mat", "the quick brown fox jumped over the lazy dog today",
             "hi there my good friend"]]
    ref = sacrebleu.corpus_bleu(hyps, refs, tokenize="none", smooth_method="none").score
    assert ev.corpus_bleu(hyps, refs) == pytest.approx(ref, abs=1e-6)
    assert ev.corpus_bleu(["a b c d"], [["a b c d"]]) == pytest.approx(100.0)
    assert ev.corpus_bleu(["x y z w"], [["a b c d"]]) == 0.0
    with pytest.raises(ValueError):
        ev.corpus_bleu(["a"], [["a", "b"]])
    with pytest.raises(TypeError):
        ev.corpus_bleu("a b", [["a b"]])


def test_ece_and_bins():
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    y = [0, 1, 1, 1]
    b = ev.reliability_bins(probs, y, n_bins=10)
    assert int(b["count"].sum()) == 4
    # bins: 0.9 -> correct, 0.8 -> wrong, 0.7 -> correct, 0.6 -> correct
    want = (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(1 - 0.6)) / 4
    assert ev.expected_calibration_error(probs, y) == pytest.approx(want, abs=1e-6)
    perfect = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert ev.expected_calibration_error(perfect, [0, 1]) == pytest.approx(0.0)
    with pytest.raises(ValueError):
        ev.reliability_bins(torch.rand(3), [0, 1, 0])
    with pytest.raises(ValueError):
        ev.reliability_bins(probs, [0, 1])


class _Bigram(torch.nn.Module):
    """A model with a fixed context window: logits depend on all previous tokens' mean."""

    def __init__(self, v=11):
        super().__init__()
        self.emb = torch.nn.Embedding(v, v)
        torch.nn.init.normal_(self.emb.weight, std=2.0)

    def forward(self, idx):
        e = self.emb(idx).cumsum(1) / torch.arange(1, idx.size(1) + 1).view(1, -1, 1)
        return (e,)


def test_sliding_window_scores_each_token_once():
    torch.manual_seed(0)
    m = _Bigram()
    ids = torch.randint(0, 11, (50,))
    nll_full, n_full = ev.sliding_window_nll(m, ids, block_size=50)
    with torch.no_grad():
        lp = torch.log_softmax(m(ids[None])[0][0, :-1], -1)
    want = -lp.gather(1, ids[1:, None]).mean()
    assert n_full == 49 and nll_full == pytest.approx(float(want), abs=1e-5)
    for stride in (1, 5, 15):
        _, n = ev.sliding_window_nll(m, ids, block_size=16, stride=stride)
        assert n == 49
    # non-overlapping chunks cannot score the first token of each chunk (4 chunks here)
    assert ev.sliding_window_nll(m, ids, block_size=16, stride=16)[1] == 46
    with pytest.raises(ValueError, match="stride"):
        ev.sliding_window_nll(m, ids, block_size=8, stride=9)
    with pytest.raises(ValueError, match="ids must have shape"):
        ev.sliding_window_nll(m, ids[None], block_size=8)
    assert ev.perplexity(0.0) == 1.0 and ev.perplexity(math.log(7)) == pytest.approx(7)


def test_token_nll_per_token():
    class Bigram(torch.nn.Module):  # next token from the current one only: context-free
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(11, 11)

        def forward(self, idx):
            return (self.emb(idx),)

    torch.manual_seed(0)
    m = Bigram()  # a token's NLL is the same whatever window scores it
    ids = torch.randint(0, 11, (50,))
    with torch.no_grad():
        lp = torch.log_softmax(m(ids[None])[0][0, :-1], -1)
    want = -lp.gather(1, ids[1:, None])[:, 0].double()
    for stride in (1, 5, 16):
        per = ev.token_nll(m, ids, block_size=16, stride=stride)
        assert per.shape == ids.shape and per[0].isnan()
        scored = ~per.isnan()
        assert torch.allclose(per[1:][scored[1:]], want[scored[1:]], atol=1e-5)
        mean, n = ev.sliding_window_nll(m, ids, block_size=16, stride=stride)
        assert n == int(scored.sum()) and mean == pytest.approx(float(per[scored].mean()))
    chunks = ev.token_nll(m, ids, block_size=16, stride=16)
    assert chunks.isnan().nonzero()[:, 0].tolist() == [0, 16, 32, 48]  # chunk starts
    with pytest.raises(ValueError, match="block_size"):
        ev.token_nll(m, ids, block_size=1)


def test_weat():
    torch.manual_seed(0)
    a, b = torch.randn(8), torch.randn(8)
    A = a + 0.1 * torch.randn(5, 8)
    B = b + 0.1 * torch.randn(5, 8)
    X = a + 0.5 * torch.randn(6, 8)  # X close to A
    Y = b + 0.5 * torch.randn(6, 8)
    assert ev.weat_effect_size(X, Y, A, B) > 1.0
    assert ev.weat_effect_size(Y, X, A, B) < -1.0
    assert ev.weat_permutation_p(X, Y, A, B, n_permutations=500) < 0.01
    assert ev.weat_permutation_p(Y, X, A, B, n_permutations=500) > 0.9
    with pytest.raises(ValueError, match="X"):
        ev.weat_effect_size(torch.randn(3), Y, A, B)


def test_greedy_continue_and_extraction():
    class Echo(torch.nn.Module):  # always predicts (last token + 1) mod 10
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, idx):
            return (torch.nn.functional.one_hot((idx + 1) % 10, 10).float() + 0 * self.w,)

    m = Echo()
    assert ev.greedy_continue(m, [3], 4) == [4, 5, 6, 7]
    enc = lambda s: [int(c) for c in s]  # noqa: E731
    assert ev.extraction_rate(m, enc, ["0123456", "0123999"], prefix_chars=3) == [1.0, 0.25]
    with pytest.raises(ValueError):
        ev.greedy_continue(m, [], 3)
    with pytest.raises(ValueError):
        ev.extraction_rate(m, enc, ["01"], prefix_chars=3)


def test_gradient_x_input():
    w = torch.tensor([1.0, -2.0])
    x = torch.tensor([[1.0, 1.0], [3.0, 0.0]])
    attr = ev.gradient_x_input(None, x, lambda e: (e @ w).sum())
    assert torch.allclose(attr, torch.tensor([1.0, 3.0]))
    with pytest.raises(ValueError):
        ev.gradient_x_input(None, torch.ones(3), lambda e: e.sum())


def _scores(seed=0, n=300, k=4, scale=0.4):
    """Logits and labels drawn from softmax(logits / scale): scale < 1 makes the logits
    under-confident (the best temperature is about scale)."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g, dtype=torch.float64)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    cdf = (z / scale).softmax(1).cumsum(1)
    y = (u[:, None] > cdf).sum(1).clamp(max=k - 1)
    return z, y.tolist()


def test_temperature_nll_equals_cross_entropy():
    z, y = _scores()
    want = float(torch.nn.functional.cross_entropy(z / 2.0, torch.tensor(y)))
    assert ev.temperature_nll(z, y, 2.0) == pytest.approx(want, abs=1e-12)
    assert ev.temperature_nll(z, y) == pytest.approx(
        skm.log_loss(y, z.softmax(1).numpy(), labels=list(range(4))), abs=1e-9)


def test_fit_temperature_finds_the_minimum():
    z, y = _scores(scale=0.4)  # the data are sharper than the logits: T must come out < 1
    t = ev.fit_temperature(z, y)
    assert 0.25 < t < 0.7
    grid = torch.logspace(-2, 2, 4001, dtype=torch.float64).tolist()
    best = min(grid, key=lambda s: ev.temperature_nll(z, y, s))
    assert t == pytest.approx(best, rel=2e-3)  # the grid's spacing is 0.23 %
    nll_t = ev.temperature_nll(z, y, t)
    assert nll_t <= ev.temperature_nll(z, y, t * 1.001)
    assert nll_t <= ev.temperature_nll(z, y, t / 1.001)
    assert nll_t <= ev.temperature_nll(z, y, 1.0)
    z2, y2 = _scores(scale=3.0)  # the data are softer than the logits: T > 1
    assert ev.fit_temperature(z2, y2) > 1.5
    # scaling never changes the argmax, so accuracy is the same at every temperature
    assert torch.equal((z / t).argmax(1), z.argmax(1))


def test_fit_temperature_bound_and_bad_inputs():
    z = torch.tensor([[5.0, 0.0], [0.0, 5.0]], dtype=torch.float64)
    assert ev.fit_temperature(z, [0, 1], lo=0.5, hi=2.0) == pytest.approx(0.5, rel=1e-6)  # at lo
    with pytest.raises(TypeError, match="logits"):
        ev.fit_temperature([[1.0, 0.0]], [0])
    with pytest.raises(ValueError, match="logits must have shape"):
        ev.fit_temperature(torch.zeros(3), [0, 1, 0])
    with pytest.raises(ValueError, match="logits must hold at least one row and two classes"):
        ev.fit_temperature(torch.zeros(2, 1), [0, 0])
    with pytest.raises(ValueError, match="logits must be finite"):
        ev.fit_temperature(torch.tensor([[float("nan"), 0.0]]), [0])
    with pytest.raises(ValueError, match="logits must be a floating-point"):
        ev.fit_temperature(torch.zeros(2, 2, dtype=torch.long), [0, 1])
    with pytest.raises(ValueError, match="y_true has 1 labels for 2 rows"):
        ev.fit_temperature(z, [0])
    with pytest.raises(ValueError, match="y_true must hold labels in"):
        ev.fit_temperature(z, [0, 2])
    with pytest.raises(TypeError, match="y_true"):
        ev.fit_temperature(z, [0.5, 1.0])
    with pytest.raises(ValueError, match="lo must be < hi"):
        ev.fit_temperature(z, [0, 1], lo=2.0, hi=1.0)
    with pytest.raises(ValueError, match="lo must be a number > 0"):
        ev.fit_temperature(z, [0, 1], lo=0.0)
    with pytest.raises(TypeError, match="tol must be a number"):
        ev.fit_temperature(z, [0, 1], tol="1e-9")
    with pytest.raises(ValueError, match="temperature must be a number > 0"):
        ev.temperature_nll(z, [0, 1], temperature=0.0)
    with pytest.raises(TypeError, match="temperature must be a number"):
        ev.temperature_nll(z, [0, 1], temperature=True)


def test_hf_byte_tokenizer_ids_are_bytes():
    pytest.importorskip("transformers")
    tok = ev.hf_byte_tokenizer()
    assert len(tok) == 256
    for text in ["Return the base name", "h\u00e9llo w\u00f6rld\n\tx  ", "\u65e5\u672c ok", " a b ",
                 "\u0100 \x00 <|endoftext|>"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == list(text.encode("utf-8")), text
        assert tok.decode(ids) == text
