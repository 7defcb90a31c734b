"""Our int8 weight-only quantisation against torchao's (``Int8WeightOnlyConfig``) on the same
weights. torchao is optional: these tests skip without it.

torchao (0.14.1 and 0.18.0 checked) quantises symmetrically per output channel like our
``int8-channel``, with ``scale = max|w| / 127.5`` and codes in ``[-128, 127]`` (ours:
``max|w| / 127``, ``[-127, 127]``), so the two agree to within half a step of each, not bit for
bit. Its weight tensor changed between those versions (``AffineQuantizedTensor`` with
``tensor_impl.get_plain()``, then ``Int8Tensor`` with ``qdata`` and ``scale``); ``_codes_and_scale``
reads either. torchao is not in the dev extras: installed, other libraries (peft, transformers)
import it too, and its import takes seconds and prints CUDA-library warnings on a CPU machine.
"""

import copy
import warnings

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from llmcourse.inference.quantize import dequantize_int8, quantize, quantize_int8
from llmcourse.model import GPT, GPTConfig

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    torchao = pytest.importorskip("torchao")
    from torchao.quantization import Int8WeightOnlyConfig, quantize_

pytestmark = pytest.mark.slow  # importing torchao takes a few seconds


def _torchao_int8(module, filter_fn=None):
    module = copy.deepcopy(module)
    quantize_(module, Int8WeightOnlyConfig(), filter_fn=filter_fn)
    return module


def _codes_and_scale(weight):
    """(codes (out, in) int8, scale (out,)) of a torchao int8 weight-only weight tensor."""
    if hasattr(weight, "tensor_impl"):  # torchao <= 0.14: AffineQuantizedTensor
        codes, scale, _ = weight.tensor_impl.get_plain()
    else:  # torchao >= 0.15: Int8Tensor, scale (out, 1)
        codes, scale = weight.qdata, weight.scale
        assert not bool(weight.zero_point.any())  # symmetric
    return codes, scale.reshape(-1)


def test_int8_weight_only_matches_torchao_on_a_linear():
    torch.manual_seed(0)
    lin = nn.Linear(256, 128)
    w = lin.weight.detach()
    ao = _torchao_int8(nn.Sequential(lin))[0]
    ao_codes, ao_scale = _codes_and_scale(ao.weight)  # (128, 256) int8, (128,)
    assert ao_codes.dtype == torch.int8 and ao_codes.shape == w.shape
    assert torch.equal(ao.weight.dequantize(), ao_codes.float() * ao_scale[:, None])
    q, s = quantize_int8(w, "channel")
    # same granularity and absmax rule, another divisor
    assert torch.allclose(s[:, 0] * 127, ao_scale * 127.5, rtol=1e-6)
    dq, ao_dq = dequantize_int8(q, s), ao.weight.dequantize()
    assert bool(((w - ao_dq).abs() <= ao_scale[:, None] / 2 * (1 + 1e-4)).all())
    assert bool(((dq - ao_dq).abs() <= (s + ao_scale[:, None]) / 2 * (1 + 1e-4)).all())
    x = torch.randn(16, 256)
    y_ours, y_ao, y_float = F.linear(x, dq, lin.bias), ao(x), lin(x)
    bound = x.abs() @ ((s + ao_scale[:, None]) / 2).expand_as(w).t()  # (16, 128) worst case
    assert bool(((y_ours - y_ao).abs() <= bound + 1e-6).all())
    # measured: max |ours - torchao| ~1e-2 against outputs of size ~0.6; both ~1 % off float
    rel = lambda a, b: ((a - b).norm() / b.norm()).item()
    assert rel(y_ours, y_ao) < 0.02
    assert rel(y_ours, y_float) < 0.01 and rel(y_ao, y_float) < 0.01


def test_quantized_gpt_matches_torchao():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=32, n_layer=2, n_head=4, n_embd=128)).eval()
    ours = quantize(model, "int8-channel")  # leaves the tied lm_head in float
    ao = _torchao_int8(model, lambda m, fqn: isinstance(m, nn.Linear) and fqn != "lm_head")
    idx = torch.randint(64, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref, a, b = model(idx)[0], ours(idx)[0], ao(idx)[0]
    assert (a - b).norm() / ref.norm() < 0.02
    assert (a.argmax(-1) == b.argmax(-1)).float().mean() > 0.95
