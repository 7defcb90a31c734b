"""Rule-based quality filters (llmcourse.data.quality): each Gopher rule and each code rule with a
passing and a failing example, and the filters on planted junk."""

import pathlib
import sysconfig

import pytest

from llmcourse.data.quality import (
    CODE_RULES,
    GOPHER_RULES,
    code_filter,
    code_report,
    code_rules,
    code_stats,
    gopher_filter,
    gopher_rules,
    gopher_stats,
    quality_report,
)

PROSE = """The river that runs through the old town has changed its course several times over the
last thousand years. Each flood left a layer of silt behind, and farmers learned to plant their
crops on the higher ground to the east of the bridge.

Historians who study the town's records have found that the market moved with the water. When the
main channel shifted north, merchants followed it, building new warehouses close to the docks and
abandoning the stone halls that had served their grandparents. Today only a few walls remain, but
visitors can still trace the outline of the medieval square in the pattern of the modern streets."""

PROSE2 = """A good recipe for bread needs only flour, water, salt and yeast, yet bakers argue about
every step. Some insist that the dough must rest overnight in a cold room; others knead it by hand
for twenty minutes and bake it the same afternoon. Both methods work, and the difference shows
mostly in the crust and in the size of the holes inside the loaf. What matters most is patience
with the rising, and an oven that is hot enough when the bread goes in."""

# rule name -> a text that fails it (and, each time, PROSE passes it)
FAILING = {
    "word_count": "The cat sat on the mat with a hat.",
    "mean_word_length": "a an to of " * 10 + "the be and that have with",
    "symbol_to_word_ratio": PROSE + " #tag" * 15,
    "bullet_lines": "\n".join(f"- item {w} to buy and have with the rest" for w in PROSE.split()[:20]),
    "ellipsis_lines": "\n".join(line.rstrip(".") + "..." for line in PROSE.splitlines() if line),
    "alphabetic_words": PROSE + " " + " ".join(str(n) for n in range(40, 130)),
    "stop_words": " ".join(w for w in PROSE.split() if w.lower() not in ("the", "and", "to", "of",
                                                                         "that", "have", "with")),
    "duplicate_lines": PROSE + "\n" + "\n".join(["Buy cheap watches now at our store!"] * 8),
    "duplicate_paragraphs": "\n\n".join([PROSE2] + ["Click here to subscribe and win a prize."] * 3),
    "duplicate_line_chars": PROSE + "\n" + "\n".join(PROSE.splitlines()[5:8]),  # 3 long lines
    "duplicate_paragraph_chars": PROSE2 + "\n\n" + PROSE2 + "\n\n" + PROSE,
    "top_2gram_chars": PROSE2 + " bread machine" * 30,
    "top_3gram_chars": PROSE2 + " best bread machine" * 20,
    "top_4gram_chars": PROSE2 + " the best bread machine" * 14,
    **{f"duplicate_{n}gram_chars": PROSE2 + " " + PROSE2.split("\n")[0] for n in range(5, 11)},
}


def test_prose_passes_every_rule():
    for text in (PROSE, PROSE2):
        assert quality_report(text) == [], gopher_stats(text)
    assert list(gopher_rules(PROSE)) == list(GOPHER_RULES)
    assert set(FAILING) == set(GOPHER_RULES)


@pytest.mark.parametrize("rule", list(GOPHER_RULES))
def test_each_gopher_rule_fails_its_example(rule):
    rules = gopher_rules(FAILING[rule])
    assert rules[rule] is False, gopher_stats(FAILING[rule])
    assert gopher_rules(PROSE)[rule] is True


def test_gopher_stats():
    s = gopher_stats("The cat... # sat\n- on the mat\n- on the mat\n\nwith 42 hats")
    assert s["n_words"] == 15  # whitespace tokens: "cat...", "#", "-" are words
    assert s["bullet_line_fraction"] == pytest.approx(2 / 4)
    assert s["ellipsis_line_fraction"] == 0.0  # "..." in the middle of a line
    assert s["symbol_to_word_ratio"] == pytest.approx(1 / 15)
    assert s["alphabetic_word_fraction"] == pytest.approx(11 / 15)
    assert s["n_stop_words"] == 2  # the, with
    assert s["dup_line_fraction"] == pytest.approx(1 / 4)
    assert s["dup_line_char_fraction"] == pytest.approx(12 / (len("The cat... # sat") + 24 + 12))
    assert gopher_stats("")["n_words"] == 0 and quality_report("")[0] == "word_count"
    # top n-gram: 3 occurrences of "ab cd" (8 letters) over 6 words of 2 letters plus "x"
    s = gopher_stats("ab cd ab cd ab cd x")
    assert s["top_2gram_char_fraction"] == pytest.approx(12 / 13)
    assert s["dup_5gram_char_fraction"] == 0.0  # its three 5-grams differ
    s = gopher_stats("a b c d e f x a b c d e f y")  # "a b c d e", "b c d e f" twice each
    assert s["dup_5gram_char_fraction"] == pytest.approx(12 / 14)  # overlaps counted once
    assert s["dup_6gram_char_fraction"] == pytest.approx(12 / 14)
    assert s["dup_7gram_char_fraction"] == 0.0


def test_gopher_filter_drops_planted_junk():
    bullets = "\n".join(f"* {w} sale with the best offers of the day" for w in PROSE2.split()[:25])
    spam = "\n".join(["Win a free phone today, click the link and claim it now!"] * 10)
    symbols = " ".join(f"#{w}" for w in PROSE2.split())
    kept, reasons = gopher_filter([PROSE, bullets, spam, symbols, PROSE2])
    assert kept == [0, 4]
    assert "bullet_lines" in reasons[1]
    assert "duplicate_lines" in reasons[2] and "duplicate_line_chars" in reasons[2]
    assert reasons[3] == ["symbol_to_word_ratio"]


CODE = '''"""A small module."""


def mean(xs: list[float]) -> float:
    """The arithmetic mean of xs."""
    return sum(xs) / len(xs)
'''

CODE_FAILING = {
    "not_empty": "",
    "max_line_length": CODE + "DATA = " + repr("x" * 1200) + "\n",
    "mean_line_length": "\n".join(f"T{i} = {list(range(40))}" for i in range(20)),
    "alphanumeric_fraction": CODE + "# " + "=-" * 200 + "\n",
    "not_autogenerated": "# Generated by the protocol buffer compiler.  DO NOT EDIT!\n" + CODE,
}


@pytest.mark.parametrize("rule", list(CODE_RULES))
def test_each_code_rule(rule):
    assert code_rules(CODE)[rule] is True
    assert code_rules(CODE_FAILING[rule])[rule] is False, code_stats(CODE_FAILING[rule])


def test_code_stats_and_filter():
    s = code_stats("ab\n\ncdef\n")
    assert (s["max_line_length"], s["mean_line_length"]) == (4, 2.0)
    assert s["alphanumeric_fraction"] == pytest.approx(6 / 9)
    assert code_stats("x = 1\n" * 5 + "# auto-generated\n")["autogenerated"] == 0.0  # line 6
    kept, reasons = code_filter([CODE, *CODE_FAILING.values()])
    assert kept == [0]
    assert all(rule in reasons[i + 1] for i, rule in enumerate(CODE_FAILING))
    assert reasons[1] == ["not_empty", "alphanumeric_fraction"]


def test_code_rules_on_stdlib_files():
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    for name, failed in [("keyword.py", ["not_autogenerated"]),
                         ("encodings/cp437.py", ["not_autogenerated"]),  # "generated from"
                         ("textwrap.py", []), ("json/decoder.py", [])]:
        path = root / name
        if path.exists():
            assert code_report(path.read_text(encoding="utf-8")) == failed, name


def test_bad_inputs():
    with pytest.raises(TypeError, match="text"):
        gopher_rules(b"bytes")
    with pytest.raises(TypeError, match="text"):
        code_rules(None)
    with pytest.raises(TypeError, match="docs"):
        gopher_filter("one string")
    with pytest.raises(TypeError, match="docs"):
        code_filter([CODE, 1])
    with pytest.raises(ValueError, match="docs"):
        gopher_filter([])
