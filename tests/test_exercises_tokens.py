import math

import pytest
import torch

from llmcourse.exercises.tokens import check_bpe_merge, check_sinusoidal, sinusoidal_positions
from llmcourse.tokenizers import _merge


def test_bpe_merge_checker(capsys):
    assert check_bpe_merge(_merge)

    def overlapping(ids, pair, new_id):  # merges overlapping occurrences: wrong
        out = list(ids)
        for i in range(len(ids) - 1):
            if (ids[i], ids[i + 1]) == pair:
                out[i] = new_id
        return [t for t in out]

    assert not check_bpe_merge(overlapping)
    assert not check_bpe_merge(lambda ids, pair, new_id: ids)
    assert "❌" in capsys.readouterr().out


def test_sinusoidal_checker():
    assert check_sinusoidal(sinusoidal_positions)
    pe = sinusoidal_positions(10, 6)
    assert math.isclose(float(pe[3, 2]), math.sin(3 / 10000 ** (2 / 6)), rel_tol=1e-6)
    swapped = lambda n, d: sinusoidal_positions(n, d)[:, [i ^ 1 for i in range(d)]]  # cos/sin swapped
    assert not check_sinusoidal(swapped)
    assert not check_sinusoidal(lambda n, d: torch.zeros(n, d))
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 3)
    with pytest.raises(ValueError, match="n_positions"):
        sinusoidal_positions(0, 4)
