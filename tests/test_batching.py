import numpy as np
import pytest
import torch

from llmcourse.data.batching import as_token_tensor, get_batch, make_blocks


def test_make_blocks_shifts_by_one():
    x, y = make_blocks(list(range(11)), block_size=3)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert y.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert x.dtype == torch.long
    x, y = make_blocks(np.arange(4), 3)  # exactly one block
    assert x.tolist() == [[0, 1, 2]] and y.tolist() == [[1, 2, 3]]


def test_get_batch_shapes_shift_and_reproducibility():
    data = torch.arange(1000)
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(data, 8, 4, generator=g)
    assert x.shape == y.shape == (4, 8)
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y, x + 1)
    x2, _ = get_batch(data, 8, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    x3, _ = get_batch(data, 8, 4, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(x, x3)


def test_get_batch_covers_every_start_and_never_overruns():
    data = torch.arange(6)
    g = torch.Generator().manual_seed(0)
    starts = set()
    for _ in range(200):
        x, y = get_batch(data, 3, 2, generator=g)
        assert int(y.max()) <= 5
        starts.update(x[:, 0].tolist())
    assert starts == {0, 1, 2}


def test_get_batch_device():
    x, y = get_batch(list(range(20)), 4, 2, device="cpu")
    assert x.device.type == "cpu"


@pytest.mark.parametrize("bad, exc, match", [
    ("abc", TypeError, "data"),
    (torch.zeros(3, 3, dtype=torch.long), ValueError, "1-D"),
    (torch.rand(10), TypeError, "integer"),
    ([0, -1, 2, 3, 4, 5], ValueError, "non-negative"),
    ([0, 1, 2], ValueError, "needs at least"),
])
def test_get_batch_bad_data(bad, exc, match):
    with pytest.raises(exc, match=match):
        get_batch(bad, 4, 2)


def test_bad_sizes():
    with pytest.raises(ValueError, match="block_size"):
        get_batch(list(range(10)), 0, 2)
    with pytest.raises(TypeError, match="batch_size"):
        get_batch(list(range(10)), 2, 2.0)
    with pytest.raises(TypeError, match="generator"):
        get_batch(list(range(10)), 2, 2, generator=0)
    with pytest.raises(ValueError, match="too short"):
        make_blocks([1, 2], 2)
    with pytest.raises(ValueError, match="block_size"):
        make_blocks([1, 2, 3], -1)
    assert as_token_tensor(np.array([1, 2], dtype=np.int32)).dtype == torch.long
