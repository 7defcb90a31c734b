"""Checkers for chapter 11 (evaluation): macro-F1, expected calibration error, acc_norm."""

from __future__ import annotations

from collections.abc import Callable

import torch

from llmcourse.exercises import Case, check_fn, run_checks


def check_macro_f1(fn: Callable[[list[int], list[int]], float]) -> bool:
    """Check ``fn(y_true, y_pred) -> macro-F1`` (mean over classes that occur; 0/0 counts as 0)."""
    check_fn(fn)
    cases = [
        Case(([0, 1, 0, 1], [0, 1, 0, 1]), 1.0, hint="perfect predictions give 1.0"),
        Case(([0, 0, 1, 1], [0, 1, 1, 1]), 0.7333333333333334,
             hint="F1 per class is 2PR/(P+R); macro averages the classes equally"),
        Case(([0, 0, 0, 1], [0, 0, 0, 0]), 0.42857142857142855,
             hint="a class never predicted has precision 0/0: count it as 0"),
        Case(([0, 1, 2, 2, 2], [0, 2, 2, 2, 1]), 0.5555555555555555,
             hint="three classes: average the three F1 scores"),
    ]
    return run_checks(fn, cases, name="macro_f1", atol=1e-6)


def check_ece(fn: Callable[[torch.Tensor, list[int], int], float]) -> bool:
    """Check ``fn(probs, y_true, n_bins) -> ECE`` with bins ``(i/n, (i+1)/n]``."""
    check_fn(fn)
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    cases = [
        Case((torch.tensor([[1.0, 0.0], [0.0, 1.0]]), [0, 1], 10), 0.0,
             hint="confident and right: perfectly calibrated"),
        Case((probs, [0, 1, 1, 1], 10), 0.4,
             hint="confidence = max probability; weight each bin by its share of examples"),
        Case((probs, [0, 1, 1, 1], 1), 0.0,
             hint="one bin: |mean accuracy (0.75) − mean confidence (0.75)|"),
        Case((torch.tensor([[0.95, 0.05], [0.92, 0.08], [0.65, 0.35]]), [0, 0, 1], 10), 0.26,
             hint="weight each bin by its share of examples (here 2/3 and 1/3)"),
        Case((torch.tensor([[0.55, 0.45], [0.95, 0.05]]), [1, 0], 2), 0.25,
             hint="0.55 and 0.95 both fall in the bin (0.5, 1.0]"),
    ]
    return run_checks(fn, cases, name="ece", atol=1e-5)


def check_acc_norm(fn: Callable[[list[float], list[str]], int]) -> bool:
    """Check ``fn(loglikelihoods, choices) -> index`` of the ``acc_norm`` prediction.

    lm-evaluation-harness's definition: the argmax (the first one on ties) of each choice's
    summed log-likelihood divided by the choice's length in characters, without the delimiter.
    """
    check_fn(fn)
    cases = [
        Case(([-2.0, -3.0], ["ab", "cd"]), 0, hint="same lengths: the higher log-likelihood wins"),
        Case(([-3.0, -5.0], ["ab", "abcdefg"]), 1,
             hint="divide each log-likelihood by its choice's length: -1.5 vs -0.71"),
        Case(([-2.9, -5.0], ["ab", "abcd"]), 1,
             hint="the length is the choice's own characters, not counting the space before it"),
        Case(([-4.2, -5.2], ["\u00e9\u00e9\u00e9", "abcd"]), 1,
             hint="acc_norm counts characters (len(choice)), not UTF-8 bytes"),
        Case(([-2.0, -4.0, -9.0], ["a", "bc", "def"]), 0,
             hint="on a tie (-2 per character twice) the first choice wins, like numpy.argmax"),
    ]
    return run_checks(fn, cases, name="acc_norm")
