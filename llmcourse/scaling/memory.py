"""Memory per GPU: bytes per parameter, activations per layer (GPT-2 and Llama layouts), ZeRO, recomputation."""

from __future__ import annotations

from collections.abc import Mapping

from llmcourse.hardware import GPU_SPECS, gpu_key
from llmcourse.scaling._common import (
    _GB,
    OPTIMIZERS,
    RECOMPUTE,
    TRAINING_PRECISIONS,
    _check_choice,
    _check_int,
    _check_real,
    _check_shape,
)


# ----------------------------------------------------------------------------- memory
def bytes_per_param(precision: str = "mixed", optimizer: str = "adamw") -> dict[str, int]:
    """Bytes per parameter of weights, gradients and optimizer states.

    * ``"mixed"`` (Micikevicius et al. 2018; ZeRO §3): 16-bit weights (2) and gradients (2);
      the optimizer keeps fp32 master weights (4) plus its states: Adam(W) momentum and
      variance (4 + 4), so ``K = 12`` and 16 bytes in all; SGD with momentum ``K = 8``.
    * ``"fp32"``: 4 + 4, Adam states 8 (16 in all); SGD momentum 4.
    * ``"bf16"``: everything in bf16 with no master copy (2 + 2, Adam 4): cheaper, and the
      rounding of small updates hurts — large runs use ``"mixed"``.

    ``optimizer="adamw8bit"``: AdamW with both states quantised to 1 byte each (Dettmers et al.
    2022, "8-bit Optimizers via Block-wise Quantization"; bitsandbytes' ``AdamW8bit``), so 2
    bytes of states instead of 8; the per-block quantisation constants (one fp32 per 2,048
    values) are left out. With ``"mixed"``: 2 + 2 + (4 + 2) = 10 bytes per parameter.
    """
    _check_choice("precision", precision, TRAINING_PRECISIONS)
    _check_choice("optimizer", optimizer, OPTIMIZERS)
    if precision == "mixed":
        w, g, master = 2, 2, 4
        state = 4
    elif precision == "fp32":
        w, g, master, state = 4, 4, 0, 4
    else:
        w, g, master, state = 2, 2, 0, 2
    if optimizer == "adamw8bit":
        return {"weights": w, "grads": g, "optimizer": master + 2}
    n_states = 2 if optimizer == "adamw" else 1
    return {"weights": w, "grads": g, "optimizer": master + n_states * state}


def _activation_terms(*, seq_len, micro_batch, d_model, n_heads, arch, d_ff, n_kv_heads,
                      dropout) -> tuple[float, float, float]:
    """``(s·b·h, linear coefficient, score coefficient)``: bytes = sbh·lin + a·s²·b·score."""
    s = _check_int("seq_len", seq_len)
    b = _check_int("micro_batch", micro_batch)
    h, a, kv, f, llama = _check_shape(arch, d_model, n_heads, n_kv_heads, d_ff)
    dropout = (not llama) if dropout is None else dropout
    if not isinstance(dropout, bool):
        raise TypeError(f"dropout must be a bool or None, got {type(dropout).__name__}")
    kv_share = kv / a  # K and V are kv_share × the size of Q
    # attention: norm output (QKV input) 2, Q 2, K and V 2·kv_share each, output-projection
    # input 2; with dropout also the 1-byte mask after the output projection
    lin = 2 + 2 + 4 * kv_share + 2 + (1 if dropout else 0)
    # MLP: norm output 2; GELU: its input and output, 2·f/h each; SwiGLU: the gate's input, its
    # SiLU, the up projection and their product (the down projection's input), 2·f/h each
    lin += 2 + (8 if llama else 4) * f / h + (1 if dropout else 0)
    lin += 4  # the two norms' inputs, 2 each
    # scores: the softmax output (2 bytes, also the input of the product with V); with dropout
    # also its 1-byte mask and the dropped-out copy (2)
    score = 5 if dropout else 2
    return float(s) * b * h, lin, score


def activation_bytes_per_layer(*, seq_len: int, micro_batch: int, d_model: int, n_heads: int,
                               recompute: str = "none", arch: str = "gpt2",
                               d_ff: int | None = None, n_kv_heads: int | None = None,
                               dropout: bool | None = None) -> float:
    """Activation bytes one transformer layer keeps for backward (Korthikanti et al. 2022 §4).

    16-bit activations, 1-byte dropout masks, no tensor/sequence parallelism; ``s`` =
    ``seq_len``, ``b`` = ``micro_batch``, ``h`` = ``d_model``, ``a`` = ``n_heads``.

    The default, ``arch="gpt2"`` with dropout and a GELU MLP of width ``d_ff = 4h``, is the
    paper's count:

    * ``"none"``: ``s·b·h·(34 + 5·a·s/h)`` — 34·sbh for the linear layers, norms, GELU and
      dropouts, ``5·a·s²·b`` for the attention scores, softmax and its dropout;
    * ``"selective"``: ``34·s·b·h`` — the attention-score part is recomputed (FlashAttention
      does the same by design);
    * ``"full"``: ``2·s·b·h`` — only the layer's input; everything else is recomputed.

    ``arch="llama"`` (``d_ff`` required; ``dropout`` defaults to ``False``, as Llama trains
    without dropout) counts the same tensors for RMSNorm, rotary attention with ``n_kv_heads``
    key/value heads and a SwiGLU MLP: the dropout masks go, the attention scores keep only the
    softmax output (``2·a·s²·b`` instead of ``5·a·s²·b``), and the MLP keeps four ``s·b·f``
    tensors (the gate's input, its SiLU, the up projection, their product) as eager PyTorch
    autograd does: ``(16 + 8·f/h)·s·b·h + 2·a·s²·b`` with ``n_kv_heads = n_heads``, about half
    of the GPT-3 count for Llama-2-7B at s = 4096. ``dropout`` (a bool) overrides either default.
    """
    sbh, lin, score = _activation_terms(seq_len=seq_len, micro_batch=micro_batch,
                                        d_model=d_model, n_heads=n_heads, arch=arch, d_ff=d_ff,
                                        n_kv_heads=n_kv_heads, dropout=dropout)
    _check_choice("recompute", recompute, RECOMPUTE)
    s, h, a = seq_len, d_model, n_heads
    if recompute == "none":
        return sbh * (lin + score * a * s / h)
    if recompute == "selective":
        return lin * sbh
    return 2 * sbh


def _recompute_working_set(*, seq_len, micro_batch, d_model, n_heads, recompute, arch, d_ff,
                           n_kv_heads, dropout) -> float:
    """Bytes that exist only while one layer is recomputed during backward."""
    sbh, lin, score = _activation_terms(seq_len=seq_len, micro_batch=micro_batch,
                                        d_model=d_model, n_heads=n_heads, arch=arch, d_ff=d_ff,
                                        n_kv_heads=n_kv_heads, dropout=dropout)
    if recompute == "none":
        return 0.0
    scores = sbh * score * n_heads * seq_len / d_model
    if recompute == "selective":  # one layer's attention scores, rebuilt for its backward
        return scores
    return sbh * lin + scores - 2 * sbh  # full: the whole layer, less the input it kept


def training_memory(n_params: float, *, precision: str = "mixed", optimizer: str = "adamw",
                    zero_stage: int = 0, n_gpus: int = 1, activations: bool = True,
                    seq_len: int | None = None, micro_batch: int | None = None,
                    n_layer: int | None = None, d_model: int | None = None,
                    n_heads: int | None = None, recompute: str = "none", arch: str = "gpt2",
                    d_ff: int | None = None, n_kv_heads: int | None = None,
                    dropout: bool | None = None) -> dict[str, float]:
    """Training memory **per GPU** in bytes: ``weights``, ``grads``, ``optimizer``,
    ``activations`` and their ``total``, plus ``working_set`` and ``peak``.

    Model states follow :func:`bytes_per_param` (16 bytes/parameter for mixed-precision AdamW).
    ZeRO data parallelism over ``n_gpus`` (Rajbhandari et al. 2020): stage 1 shards the
    optimizer states, stage 2 also the gradients, stage 3 also the weights (PyTorch FSDP's
    ``FULL_SHARD`` is stage 3). Stage 0 is plain data parallelism: every GPU holds everything.

    Activations (per GPU, never sharded by ZeRO: each GPU processes its own ``micro_batch``)
    follow :func:`activation_bytes_per_layer` × ``n_layer``; they need ``seq_len``,
    ``micro_batch``, ``n_layer``, ``d_model`` and ``n_heads``, or ``activations=False``;
    ``arch``, ``d_ff``, ``n_kv_heads`` and ``dropout`` pass through (``arch="llama"`` for a
    Llama-style layer without dropout).

    ``working_set``: with recomputation, the backward pass rebuilds one layer at a time, and
    that layer's activations exist on top of the stored ones while its gradients are computed
    (Korthikanti et al. 2022 count what is stored; this is what exists on top): all of them for ``"full"`` (less the input it kept), its
    attention scores for ``"selective"``; 0 for ``"none"`` or ``activations=False``. ``peak`` =
    ``total + working_set`` is what must fit in the GPU (:func:`fits` compares it).
    Not counted: temporary buffers, the logits of the output layer, fragmentation, the CUDA
    context (~0.5–1 GB) — plan for 10–20 % more.

    >>> m = training_memory(7.5e9, zero_stage=1, n_gpus=64, activations=False)
    >>> round(m["total"] / 1e9, 1)
    31.4
    """
    N = _check_real("n_params", n_params)
    if isinstance(zero_stage, bool) or not isinstance(zero_stage, int):
        raise TypeError(f"zero_stage must be an int (0, 1, 2 or 3), got {type(zero_stage).__name__}")
    if zero_stage not in (0, 1, 2, 3):
        raise ValueError(f"zero_stage must be one of 0, 1, 2, 3, got {zero_stage!r}")
    n = _check_int("n_gpus", n_gpus)
    if not isinstance(activations, bool):
        raise TypeError(f"activations must be a bool, got {type(activations).__name__}")
    bpp = bytes_per_param(precision, optimizer)
    out = {
        "weights": N * bpp["weights"] / (n if zero_stage >= 3 else 1),
        "grads": N * bpp["grads"] / (n if zero_stage >= 2 else 1),
        "optimizer": N * bpp["optimizer"] / (n if zero_stage >= 1 else 1),
        "activations": 0.0,
        "working_set": 0.0,
    }
    _check_choice("recompute", recompute, RECOMPUTE)
    if activations:
        shape = {"seq_len": seq_len, "micro_batch": micro_batch, "n_layer": n_layer,
                 "d_model": d_model, "n_heads": n_heads}
        missing = [k for k, v in shape.items() if v is None]
        if missing:
            raise ValueError(f"activations=True needs {', '.join(missing)} "
                             f"(or pass activations=False for model states only)")
        L = _check_int("n_layer", n_layer)
        layer = dict(seq_len=seq_len, micro_batch=micro_batch, d_model=d_model, n_heads=n_heads,
                     arch=arch, d_ff=d_ff, n_kv_heads=n_kv_heads, dropout=dropout)
        per_layer = activation_bytes_per_layer(**layer, recompute=recompute)
        scale = 2 if precision == "fp32" else 1  # the paper counts 16-bit activations
        out["activations"] = L * per_layer * scale
        out["working_set"] = _recompute_working_set(**layer, recompute=recompute) * scale
    out["total"] = out["weights"] + out["grads"] + out["optimizer"] + out["activations"]
    out["peak"] = out["total"] + out["working_set"]
    return out


def fits(memory: Mapping[str, float], gpu: str) -> bool:
    """Whether a :func:`training_memory` result fits the memory of one ``gpu``.

    Compares ``memory["peak"]`` (the stored bytes plus the recomputation working set) when the
    dict has it, else ``memory["total"]``.
    """
    if not isinstance(memory, Mapping):
        raise TypeError(f"memory must be a training_memory() dict, got {type(memory).__name__}")
    if "total" not in memory:
        raise ValueError(f"memory must have a 'total' entry (a training_memory() result), got "
                         f"keys {sorted(memory)}")
    total = _check_real("memory['total']", memory["total"], allow_zero=True)
    if "peak" in memory:
        total = _check_real("memory['peak']", memory["peak"], allow_zero=True)
    return total <= GPU_SPECS[gpu_key(gpu)]["memory_gb"] * _GB
