"""Weight-only quantisation from scratch: int8 absmax and int4 group-wise round-to-nearest.

A weight ``w`` becomes integers ``q = round(w / s)`` and a float scale ``s``; the layer computes
with ``q · s``. Symmetric absmax puts the largest ``|w|`` on the largest code, so every weight
is off by at most half a step: ``|w - q·s| <= s / 2``.

* ``int8-tensor``: one scale for the whole matrix, ``s = max|w| / 127``.
* ``int8-channel``: one scale per output channel (row of ``nn.Linear.weight``), so one large
  row no longer coarsens the steps of all the others.
* ``int4-g32`` / ``int4-g128``: codes in ``[-7, 7]``, one scale per group of 32 / 128
  consecutive input weights of a row (``s = max|group| / 7``); two codes packed per byte.

Scales are stored in float32 (libraries often use float16: see :func:`linear_weight_bytes`).
The forward pass dequantises and runs a float matmul, so a :class:`QuantLinear` is exact to its
dequantised weights; real kernels fuse the two and read only the small integers from memory.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn as nn
from torch.nn import functional as F

from llmcourse._checks import check_bool, check_choice, check_int, check_module, check_tensor

__all__ = [
    "SCHEMES",
    "QuantLinear",
    "dequantize_int4",
    "dequantize_int8",
    "linear_weight_bytes",
    "outlier_stats",
    "pack_int4",
    "quantize",
    "quantize_int4",
    "quantize_int8",
    "unpack_int4",
    "weight_bytes",
    "weight_bytes_by_scheme",
]

# name -> (bits, granularity, group size)
SCHEMES: dict[str, tuple[int, str, int | None]] = {
    "int8-tensor": (8, "tensor", None),
    "int8-channel": (8, "channel", None),
    "int4-g32": (4, "group", 32),
    "int4-g128": (4, "group", 128),
}
INT8_MAX, INT4_MAX = 127, 7


def _check_scheme(scheme: object) -> str:
    if not isinstance(scheme, str):
        raise TypeError(f"scheme must be a str, got {type(scheme).__name__}")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    return scheme


def _check_weight(w: object, name: str = "w", *, dim: int | None = None) -> torch.Tensor:
    check_tensor(name, w, ndim=dim, dtype="float",
                 shape="(out_features, in_features)" if dim == 2 else "")
    if w.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(w.shape)}")
    if not bool(torch.isfinite(w).all()):
        raise ValueError(f"{name} must be finite (no NaN/inf)")
    return w


def _absmax_scale(amax: torch.Tensor, qmax: int) -> torch.Tensor:
    """``max|w| / qmax``; an all-zero slice gets scale 1 (its codes are 0 either way)."""
    scale = amax.float() / qmax
    return torch.where(scale > 0, scale, torch.ones_like(scale))


# ------------------------------------------------------------------------------------ int8
def quantize_int8(w: torch.Tensor, granularity: str = "tensor"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric absmax int8: ``q = round(w / s)`` in ``[-127, 127]``, ``s = max|w| / 127``.

    ``granularity="tensor"``: one scale, shape ``()``. ``"channel"``: one scale per row
    (output channel of an ``nn.Linear`` weight), shape ``(out, 1)``; ``w`` must be 2-D.
    Returns ``(q int8 like w, scale float32)``.
    """
    check_choice("granularity", granularity, ("tensor", "channel"))
    w = _check_weight(w, dim=2 if granularity == "channel" else None)
    if granularity == "tensor":
        scale = _absmax_scale(w.abs().amax(), INT8_MAX)  # ()
    else:
        scale = _absmax_scale(w.abs().amax(dim=1, keepdim=True), INT8_MAX)  # (out, 1)
    q = torch.round(w.float() / scale).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``q · scale`` in float32 (``scale`` broadcasts: ``()`` or ``(out, 1)``)."""
    check_tensor("q", q)
    if q.dtype != torch.int8:
        raise ValueError(f"q must be an int8 tensor, got dtype {q.dtype}")
    scale = _check_weight(scale, "scale")
    try:
        torch.broadcast_shapes(q.shape, scale.shape)
    except RuntimeError as err:
        raise ValueError(f"scale of shape {tuple(scale.shape)} does not broadcast to q "
                         f"{tuple(q.shape)}") from err
    return q.float() * scale.float()


# ------------------------------------------------------------------------------------ int4
def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack int4 codes in ``[-8, 7]`` two per byte along the last dim (even length):
    byte ``j`` holds ``q[..., 2j] + 8`` in its low nibble and ``q[..., 2j+1] + 8`` in its high."""
    check_tensor("q", q, dtype="int")
    if q.dim() == 0 or q.size(-1) % 2:
        raise ValueError(f"q's last dim must be even to pack two codes per byte, got shape "
                         f"{tuple(q.shape)}")
    if q.numel() and (int(q.min()) < -8 or int(q.max()) > 7):
        raise ValueError(f"q must hold int4 codes in [-8, 7], got min {int(q.min())}, "
                         f"max {int(q.max())}")
    u = (q.to(torch.int16) + 8).to(torch.uint8)  # 0..15
    return u[..., 0::2] | (u[..., 1::2] << 4)  # (..., n / 2)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: uint8 ``(..., n/2)`` -> int8 codes ``(..., n)``."""
    check_tensor("packed", packed)
    if packed.dtype != torch.uint8:
        raise ValueError(f"packed must be a uint8 tensor (from pack_int4), got dtype "
                         f"{packed.dtype}")
    if packed.dim() == 0:
        raise ValueError("packed must have at least one dim")
    low = (packed & 0x0F).to(torch.int8) - 8
    high = (packed >> 4).to(torch.int8) - 8
    return torch.stack([low, high], dim=-1).flatten(-2)  # interleave back: (..., n)


def quantize_int4(w: torch.Tensor, group_size: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    """Group-wise round-to-nearest int4 of a 2-D weight ``(out, in)``.

    Each row is cut into groups of ``group_size`` consecutive weights; a group's scale is
    ``max|group| / 7`` and its codes ``round(w / s)`` lie in ``[-7, 7]``.
    Returns ``(packed uint8 (out, in/2), scale float32 (out, in/group_size))``.
    """
    w = _check_weight(w, dim=2)
    g = check_int("group_size", group_size, min=2)
    out, n_in = w.shape
    if g % 2 or n_in % g:
        raise ValueError(f"group_size must be even and divide in_features ({n_in}), got {g}")
    groups = w.float().view(out, n_in // g, g)  # (out, n_groups, g)
    scale = _absmax_scale(groups.abs().amax(dim=-1), INT4_MAX)  # (out, n_groups)
    q = torch.round(groups / scale[..., None]).clamp(-INT4_MAX, INT4_MAX).to(torch.int8)
    return pack_int4(q.view(out, n_in)), scale


def dequantize_int4(packed: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Float32 ``(out, in)`` weights from :func:`quantize_int4`'s output (the group size is
    ``in / scale.shape[1]``)."""
    q = unpack_int4(packed)  # (out, in)
    scale = _check_weight(scale, "scale", dim=2)
    out, n_in = q.shape
    if scale.size(0) != out or n_in % scale.size(1):
        raise ValueError(f"scale of shape {tuple(scale.shape)} does not match {out} rows of "
                         f"{n_in} codes")
    g = n_in // scale.size(1)
    return (q.view(out, -1, g).float() * scale.float()[..., None]).view(out, n_in)


# ------------------------------------------------------------------------------- the layer
class QuantLinear(nn.Module):
    """A drop-in ``nn.Linear`` whose weight is stored quantised (buffers ``qweight``, ``scale``).

    ``forward`` computes ``F.linear(x, dequantized_weight(), bias)``: exactly the float layer
    with the dequantised weights.
    """

    def __init__(self, in_features: int, out_features: int, scheme: str, bias: bool = True,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        check_int("in_features", in_features, min=1)
        check_int("out_features", out_features, min=1)
        bits, gran, g = SCHEMES[_check_scheme(scheme)]
        check_bool("bias", bias)
        if bits == 4 and in_features % g:
            raise ValueError(f"scheme {scheme!r} needs in_features divisible by {g}, got "
                             f"{in_features}")
        self.in_features, self.out_features, self.scheme = in_features, out_features, scheme
        if bits == 8:
            self.register_buffer("qweight", torch.zeros(out_features, in_features,
                                                        dtype=torch.int8))
            shape = () if gran == "tensor" else (out_features, 1)
        else:
            self.register_buffer("qweight", torch.zeros(out_features, in_features // 2,
                                                        dtype=torch.uint8))
            shape = (out_features, in_features // g)
        self.register_buffer("scale", torch.ones(shape))
        self.register_buffer("bias", torch.zeros(out_features, dtype=dtype) if bias else None)

    @classmethod
    def from_linear(cls, linear: nn.Linear, scheme: str) -> QuantLinear:
        """Quantise an ``nn.Linear``'s weight with ``scheme``; the bias is kept in float."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach()
        layer = cls(linear.in_features, linear.out_features, scheme,
                    bias=linear.bias is not None, dtype=w.dtype)
        bits, gran, g = SCHEMES[scheme]
        q, s = quantize_int8(w, gran) if bits == 8 else quantize_int4(w, g)
        layer.qweight.copy_(q)
        layer.scale = s
        if linear.bias is not None:
            layer.bias.copy_(linear.bias.detach())
        return layer.to(w.device)

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 weight ``(out, in)`` this layer computes with."""
        if SCHEMES[self.scheme][0] == 8:
            return dequantize_int8(self.qweight, self.scale)
        return dequantize_int4(self.qweight, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.dequantized_weight().to(x.dtype)  # (out, in)
        b = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, w, b)  # (..., out)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"scheme={self.scheme!r}, bias={self.bias is not None}")


def _tied_weights(model: nn.Module) -> set[int]:
    """ids of parameters reachable under more than one name (e.g. GPT's lm_head = wte)."""
    seen: dict[int, int] = {}
    for _, p in model.named_parameters(remove_duplicate=False):
        seen[id(p)] = seen.get(id(p), 0) + 1
    return {k for k, n in seen.items() if n > 1}


def quantize(model: nn.Module, scheme: str, skip: Iterable[str] = ()) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` replaced by a :class:`QuantLinear`.

    Left in float: Linears named in ``skip`` and Linears whose weight is tied to another
    module (GPT's ``lm_head`` shares the token embedding: quantising it would store the
    matrix twice). ``model`` itself is not changed.
    """
    check_module("model", model)
    scheme = _check_scheme(scheme)
    if isinstance(skip, str) or not isinstance(skip, Iterable):
        raise TypeError("skip must be an iterable of module names (not a single str)")
    skip = set(skip)
    names = {name for name, _ in model.named_modules()}
    if unknown := skip - names:
        raise ValueError(f"skip names modules the model does not have: {sorted(unknown)}")
    new = copy.deepcopy(model)
    tied = _tied_weights(new)
    for name, module in list(new.named_modules()):
        if not isinstance(module, nn.Linear) or name in skip or id(module.weight) in tied:
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = new.get_submodule(parent_name) if parent_name else new
        setattr(parent, attr, QuantLinear.from_linear(module, scheme).train(module.training))
    return new


# ------------------------------------------------------------------------------- storage
def weight_bytes(model: nn.Module) -> int:
    """Bytes of a model's stored weights: every tensor of its ``state_dict`` (parameters and
    persistent buffers, so quantised codes and their scales), tied tensors counted once."""
    check_module("model", model)
    seen, total = set(), 0
    for t in model.state_dict().values():
        key = (t.data_ptr(), t.nbytes)
        if key not in seen:
            seen.add(key)
            total += t.nbytes
    return total


def linear_weight_bytes(out_features: int, in_features: int, scheme: str, *,
                        scale_bytes: int = 4) -> int:
    """Bytes of one quantised ``(out, in)`` weight matrix by formula (no bias): the codes plus
    the scales (``scale_bytes`` each: 4 as :class:`QuantLinear` stores them, 2 for float16)."""
    check_int("out_features", out_features, min=1)
    check_int("in_features", in_features, min=1)
    check_int("scale_bytes", scale_bytes, min=1)
    bits, gran, g = SCHEMES[_check_scheme(scheme)]
    n_scales = {"tensor": 1, "channel": out_features}.get(gran)
    if gran == "group":
        if in_features % g:
            raise ValueError(f"scheme {scheme!r} needs in_features divisible by {g}")
        n_scales = out_features * in_features // g
    return out_features * in_features * bits // 8 + n_scales * scale_bytes


def weight_bytes_by_scheme(model: nn.Module, schemes: Iterable[str] | None = None,
                           skip: Iterable[str] = ()) -> dict[str, int]:
    """``{"float": bytes, scheme: bytes, ...}``: :func:`weight_bytes` of the model and of its
    :func:`quantize`'d copies (default: every scheme in :data:`SCHEMES`)."""
    if schemes is not None and (isinstance(schemes, str) or not isinstance(schemes, Iterable)):
        raise TypeError("schemes must be None or an iterable of scheme names (not a single str)")
    schemes = list(SCHEMES) if schemes is None else [_check_scheme(s) for s in schemes]
    skip = tuple(skip) if isinstance(skip, Iterable) and not isinstance(skip, str) else skip
    out = {"float": weight_bytes(model)}
    for s in schemes:
        out[s] = weight_bytes(quantize(model, s, skip=skip))
    return out


# ---------------------------------------------------------------------------- activations
@torch.no_grad()
def outlier_stats(model: nn.Module, inputs: torch.Tensor | Mapping[str, torch.Tensor]
                  ) -> dict[str, dict]:
    """Per-channel activation outliers at the input of every ``nn.Linear`` of ``model``.

    Runs ``model(inputs)`` (or ``model(**inputs)`` for a mapping, e.g. a tokenizer's output)
    in eval mode with forward pre-hooks. For each Linear, ``channel_max[c]`` is the largest
    ``|x[..., c]|`` over all tokens; the result per layer name is a dict with ``channel_max``
    (in_features,), ``max``, ``median`` (of ``channel_max``), ``ratio = max / median`` and
    ``top_channel``. A ratio far above a few means a handful of channels dominate: per-tensor
    int8 activations would spend their range on them (LLM.int8(), SmoothQuant).
    """
    check_module("model", model)
    if not isinstance(inputs, (torch.Tensor, Mapping)):
        raise TypeError(f"inputs must be a tensor or a mapping of tensors, got "
                        f"{type(inputs).__name__}")
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, QuantLinear))]
    if not linears:
        raise ValueError("model has no nn.Linear layers to observe")
    maxima: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def hook(module, args):
            x = args[0].detach().abs().float().reshape(-1, args[0].size(-1))  # (tokens, C_in)
            m = x.amax(dim=0)  # (C_in,)
            maxima[name] = m if name not in maxima else torch.maximum(maxima[name], m)
        return hook

    handles = [m.register_forward_pre_hook(hook_for(n)) for n, m in linears]
    was_training = model.training
    model.eval()
    try:
        model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    stats = {}
    for name, _ in linears:
        if name not in maxima:  # a Linear the forward pass did not use
            continue
        m = maxima[name]
        med = float(m.median())
        mx = float(m.max())
        stats[name] = {"channel_max": m, "max": mx, "median": med,
                       "ratio": mx / med if med > 0 else math.inf,
                       "top_channel": int(m.argmax())}
    return stats
