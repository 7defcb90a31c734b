import numpy as np
from sklearn.metrics import f1_score

from llmcourse import evaluate as ev
from llmcourse.exercises.evaluation import check_acc_norm, check_ece, check_macro_f1


def test_macro_f1_checker(capsys):
    assert check_macro_f1(lambda t, p: f1_score(t, p, average="macro", zero_division=0))
    assert check_macro_f1(lambda t, p: ev.precision_recall_f1(t, p)[2])
    assert not check_macro_f1(lambda t, p: f1_score(t, p, average="micro"))

    def todo(t, p):
        raise NotImplementedError

    assert not check_macro_f1(todo)
    assert "not implemented" in capsys.readouterr().out


def test_ece_checker():
    assert check_ece(ev.expected_calibration_error)
    # a wrong one: unweighted mean over non-empty bins
    def unweighted(probs, y, n_bins):
        b = ev.reliability_bins(probs, y, n_bins)
        keep = b["count"] > 0
        return float((b["accuracy"] - b["confidence"])[keep].abs().mean())

    assert not check_ece(unweighted)


def test_acc_norm_checker():
    assert check_acc_norm(lambda ll, ch: int(np.argmax(np.array(ll) / [len(c) for c in ch])))
    assert not check_acc_norm(lambda ll, ch: int(np.argmax(ll)))  # acc, not acc_norm
    assert not check_acc_norm(  # the delimiter counted in the length
        lambda ll, ch: int(np.argmax(np.array(ll) / [len(" " + c) for c in ch])))
    assert not check_acc_norm(  # bytes: that is lm-eval's acc_bytes
        lambda ll, ch: int(np.argmax(np.array(ll) / [len(c.encode()) for c in ch])))
    assert not check_acc_norm(  # the last maximum on ties
        lambda ll, ch: max(range(len(ll)), key=lambda i: (ll[i] / len(ch[i]), i)))
