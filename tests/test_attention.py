import pytest
import torch
from torch.nn import functional as F

from llmcourse.attention import (
    MultiHeadAttention,
    causal_mask,
    merge_heads,
    padding_mask,
    peak_memory,
    scaled_dot_product_attention,
    split_heads,
)

SHAPES = [  # (q batch dims, T, S, D, Dv)
    ((), 1, 1, 4, 4),
    ((2,), 5, 5, 8, 8),
    ((2, 3), 4, 7, 16, 5),
    ((1, 4), 7, 4, 8, 8),
    ((3, 2), 16, 16, 32, 32),
]


def _qkv(batch, T, S, D, Dv, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*batch, T, D, generator=g), torch.randn(*batch, S, D, generator=g),
            torch.randn(*batch, S, Dv, generator=g))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("causal", [False, True])
def test_equals_torch_sdpa(shape, causal):
    q, k, v = _qkv(*shape)
    out, w = scaled_dot_product_attention(q, k, v, is_causal=causal)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert out.shape == ref.shape
    assert torch.allclose(out, ref, atol=1e-5)
    assert w.shape == (*shape[0], shape[1], shape[2])
    assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-6)  # rows sum to 1


@pytest.mark.parametrize("shape", SHAPES[1:])
def test_boolean_mask_matches_torch(shape):
    q, k, v = _qkv(*shape, seed=1)
    T, S = shape[1], shape[2]
    g = torch.Generator().manual_seed(2)
    mask = torch.rand(T, S, generator=g) > 0.4
    mask[:, 0] = True  # every query sees at least one key (torch gives NaN otherwise)
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.all(w[..., ~mask] == 0)  # masked keys get exactly zero weight
    assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-6)


def test_float_mask_and_scale_match_torch():
    q, k, v = _qkv((2, 2), 5, 6, 8, 3, seed=3)
    bias = torch.randn(5, 6)
    out, _ = scaled_dot_product_attention(q, k, v, mask=bias, scale=0.3)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.3)
    assert torch.allclose(out, ref, atol=1e-5)


def test_mask_and_causal_combine():
    q, k, v = _qkv((1,), 4, 4, 8, 8)
    pad = torch.tensor([True, True, True, False])
    _, w = scaled_dot_product_attention(q, k, v, mask=pad, is_causal=True)
    allowed = causal_mask(4) & pad
    assert torch.all(w[0][~allowed] == 0)
    assert torch.allclose(w.sum(-1), torch.ones(()))


def test_fully_masked_row_is_zero_not_nan():
    q, k, v = _qkv((), 3, 3, 4, 4)
    mask = torch.tensor([[True, False, False], [False, False, False], [True, True, True]])
    out, w = scaled_dot_product_attention(q, k, v, mask=mask)
    assert not torch.isnan(out).any() and not torch.isnan(w).any()
    assert torch.all(w[1] == 0) and torch.all(out[1] == 0)
    assert torch.allclose(w[0], torch.tensor([1.0, 0.0, 0.0]))  # a single key gets weight 1
    # what a plain softmax gives there (0/0), and what torch's SDPA gives (zeros since 2.5)
    assert torch.isnan(torch.full((3,), float("-inf")).softmax(-1)).all()
    if tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 5):
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        assert torch.equal(ref[1], torch.zeros(4)) and torch.allclose(out, ref, atol=1e-6)


def test_equal_scores_are_uniform():
    q = torch.zeros(1, 4)
    k = torch.randn(3, 4)
    v = torch.arange(3.0)[:, None]
    out, w = scaled_dot_product_attention(q, k, v)
    assert torch.allclose(w, torch.full((1, 3), 1 / 3))
    assert torch.allclose(out, torch.tensor([[1.0]]))


def test_dropout_keeps_weights_normalised():
    torch.manual_seed(0)
    q, k, v = _qkv((2,), 6, 6, 8, 8)
    out, w = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert torch.allclose(w.sum(-1), torch.ones(()), atol=1e-6)
    ref, _ = scaled_dot_product_attention(q, k, v)
    assert not torch.allclose(out, ref)


@pytest.mark.parametrize("bad, match", [
    (dict(q=torch.randn(2, 3, 4), k=torch.randn(2, 3, 5)), r"\(2, 3, 4\).*\(2, 3, 5\)"),
    (dict(v=torch.randn(2, 7, 4)), r"\(2, 3, 4\).*\(2, 7, 4\)"),
    (dict(k=torch.randn(2, 3, 4, dtype=torch.float64)), r"dtype.*\(2, 3, 4\)"),
    (dict(q=torch.randn(4)), r"at least 2 dims"),
    (dict(q=torch.randn(5, 3, 4)), r"batch dims.*\(5, 3, 4\).*\(2, 3, 4\)"),
    (dict(mask=torch.ones(2, 5, dtype=torch.bool)), r"mask \(2, 5\)"),
    (dict(q=torch.ones(2, 3, 4, dtype=torch.long)), r"floating-point"),
    (dict(dropout_p=1.5), r"dropout_p"),
])
def test_bad_inputs_raise_value_error(bad, match):
    args = dict(q=torch.randn(2, 3, 4), k=torch.randn(2, 3, 4), v=torch.randn(2, 3, 4))
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        scaled_dot_product_attention(**args)


def test_bad_types_raise_type_error():
    x = torch.randn(2, 3, 4)
    with pytest.raises(TypeError, match="q must be"):
        scaled_dot_product_attention([[1.0]], x, x)
    with pytest.raises(ValueError, match="mask must be bool"):  # a wrong dtype is a wrong value
        scaled_dot_product_attention(x, x, x, mask=torch.ones(3, 3, dtype=torch.long))


def test_causal_and_padding_masks():
    assert causal_mask(3).int().tolist() == [[1, 0, 0], [1, 1, 0], [1, 1, 1]]
    assert causal_mask(2, 3).shape == (2, 3)
    with pytest.raises(ValueError, match="T must be"):
        causal_mask(0)
    m = padding_mask(torch.tensor([[1, 1, 0]]))
    assert m.shape == (1, 1, 1, 3) and m.dtype == torch.bool
    with pytest.raises(ValueError, match="attention_mask"):
        padding_mask(torch.ones(3))


def test_split_merge_heads_round_trip():
    x = torch.randn(2, 5, 12)
    h = split_heads(x, 3)
    assert h.shape == (2, 3, 5, 4)
    assert torch.equal(h[:, 1], x[..., 4:8])  # head 1 owns channels 4..7
    assert torch.equal(merge_heads(h), x)
    with pytest.raises(ValueError, match="divisible"):
        split_heads(x, 5)


@pytest.mark.parametrize("causal", [False, True])
def test_mha_equals_torch_multihead_attention(causal):
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(ref).eval()
    x = torch.randn(3, 6, 16)
    blocked = ~causal_mask(6) if causal else None  # nn.MultiheadAttention: True = blocked
    y_ref, w_ref = ref(x, x, x, attn_mask=blocked, average_attn_weights=False)
    y, w = ours(x, is_causal=causal)
    assert torch.allclose(y, y_ref, atol=1e-5)
    assert torch.allclose(w, w_ref, atol=1e-5)


def test_mha_padding_and_cross_attention():
    torch.manual_seed(0)
    ref = torch.nn.MultiheadAttention(8, 2, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(ref).eval()
    q, kv = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    keep = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    y_ref, _ = ref(q, kv, kv, key_padding_mask=~keep.bool())
    y, w = ours(q, kv, mask=padding_mask(keep))
    assert torch.allclose(y, y_ref, atol=1e-5)
    assert w.shape == (2, 2, 3, 5) and torch.all(w[1, :, :, 2:] == 0)


def test_mha_validation():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(ValueError, match=r"query must have shape \(batch, seq_len, 8\)"):
        MultiHeadAttention(8, 2)(torch.randn(2, 3, 6))
    with pytest.raises(TypeError, match="nn.MultiheadAttention"):
        MultiHeadAttention.from_torch(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------- peak_memory

def test_peak_memory_counts_what_a_call_holds_at_once():
    x = torch.ones(1000)  # made before the call: not counted
    out, peak = peak_memory(lambda: x * 2 + 1)
    assert peak == 8000 and torch.equal(out, torch.full((1000,), 3.0))  # x * 2 lives during + 1
    assert peak_memory(lambda: x.view(10, 100).t())[1] == 0  # a view allocates nothing
    assert peak_memory(lambda: x.mul_(1))[1] == 0  # in place on an input: nothing new

    def alloc_free_alloc():
        a = torch.empty(250_000)
        del a  # freed before the next one: the peak is one buffer, not two
        return torch.empty(250_000)

    assert peak_memory(alloc_free_alloc)[1] == 1_000_000

    def keep_both():
        a = torch.empty(250_000)
        return a, torch.empty(250_000, dtype=torch.float64)

    assert peak_memory(keep_both)[1] == 1_000_000 + 2_000_000


def test_peak_memory_of_attention_scores_grows_as_t_squared():
    def scores(T):
        q = torch.randn(1, T, 16)  # (B, T, d): made inside, counted
        return q @ q.transpose(-2, -1)  # (B, T, T)

    peaks = [peak_memory(scores, T)[1] for T in (64, 128, 256)]
    assert peaks == [4 * (T * 16 + T * T) for T in (64, 128, 256)]  # q and the T×T scores


def test_peak_memory_passes_arguments_and_rejects_a_non_callable():
    out, peak = peak_memory(torch.zeros, 3, dtype=torch.float64)
    assert out.dtype == torch.float64 and peak == 24
    with pytest.raises(TypeError, match="fn"):
        peak_memory(5)
