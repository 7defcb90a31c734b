"""What a training run costs: parameters, FLOPs, memory per GPU, GPU-hours, dollars.

The formulas are plain Python arithmetic on numbers (no tensors); only
:func:`saved_activation_bytes`, the one measured helper, runs a model. Every formula cites where it comes from:

* Parameter counts: GPT-2 (Radford et al. 2019) and Llama 2 (Touvron et al. 2023), counted
  weight by weight; checked against the published 124,439,808 (GPT-2 small) and 6.74e9
  (Llama-2-7B).
* Training FLOPs: ``6·N·D`` (Kaplan et al. 2020, "Scaling Laws for Neural Language Models",
  §2.1) plus the attention term ``12·L·d·T`` per token of PaLM (Chowdhery et al. 2022,
  appendix B), i.e. ``6·L·T·d`` forward+backward for ``QK^T`` and ``6·L·T·d`` for ``AV``.
* Compute-optimal tokens: about 20 tokens per parameter (Hoffmann et al. 2022, "Training
  Compute-Optimal Large Language Models", "Chinchilla", table 3).
* Model-state memory: mixed-precision Adam keeps ``2 + 2 + K`` bytes per parameter with
  ``K = 12`` (fp32 master weights, momentum, variance), and ZeRO stages 1/2/3 shard the
  optimizer states / also the gradients / also the weights over the data-parallel GPUs
  (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
  Models", §3 and figure 1).
* Activation memory per transformer layer: ``s·b·h·(34 + 5·a·s/h)`` bytes with 16-bit
  activations, ``34·s·b·h`` with selective recomputation, ``2·s·b·h`` with full recomputation
  (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
  §4, equations 1 and 2 with no tensor or sequence parallelism). The same terms, tensor by
  tensor, for a Llama-style layer (no dropout masks, RMSNorm, SwiGLU, grouped-query attention):
  ``(16 + 8·f/h)·s·b·h + 2·a·s²·b`` without FlashAttention.
* Hardware vs model FLOPs: recomputation repeats forward FLOPs that the hardware does but the
  model FLOPs utilisation (MFU, defined against the hardware FLOPs utilisation HFU by Chowdhery
  et al. 2022, §4.1 and appendix B) does not count; Korthikanti et al. (2022) report both.
* Loss as a function of parameters and tokens: Chinchilla's parametric law
  ``L = E + A/N^α + B/D^β`` with E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28 (Hoffmann et
  al. 2022, §3.3 and appendix D.2), its compute-optimal allocation (their equation 4) and the
  parabola fit of an IsoFLOP profile (their approach 2, §3.2).
* Batch plan: Llama 2 trained with a global batch of 4M tokens (Touvron et al. 2023, table 1).
* GPU peaks: :mod:`llmcourse.hardware` (the same table the training engine's MFU uses).

Modules: ``compute`` (parameters, FLOPs, batch plan, GPU-hours, cost), ``memory`` (bytes per
parameter, activations, ZeRO, recomputation), ``laws`` (power laws, Chinchilla, IsoFLOP) and
``measure`` (memory measured on our GPT); every name is re-exported here.
"""

from llmcourse.inference.bandwidth import decode_tokens_per_s  # noqa: F401 - chapter 12
from llmcourse.scaling._common import (
    ARCHITECTURES,
    CHINCHILLA_LAW,
    CHINCHILLA_TOKENS_PER_PARAM,
    GPU_PRICES_USD,
    LLAMA2_GLOBAL_BATCH_TOKENS,
    OPTIMIZERS,
    PRESETS,
    RECOMPUTE,
    TRAINING_PRECISIONS,
)
from llmcourse.scaling.compute import (
    batch_plan,
    chinchilla_tokens,
    count_params,
    gpu_hours,
    hardware_flops,
    implied_mfu,
    training_cost,
    training_flops,
    training_time,
)
from llmcourse.scaling.laws import (
    chinchilla_loss,
    chinchilla_optimal,
    fit_power_law,
    isoflop_optimum,
)
from llmcourse.scaling.measure import (
    peak_rss_of_training_step,
    saved_activation_bytes,
)
from llmcourse.scaling.memory import (
    activation_bytes_per_layer,
    bytes_per_param,
    fits,
    training_memory,
)

__all__ = [
    "ARCHITECTURES",
    "CHINCHILLA_TOKENS_PER_PARAM",
    "GPU_PRICES_USD",
    "OPTIMIZERS",
    "PRESETS",
    "RECOMPUTE",
    "TRAINING_PRECISIONS",
    "CHINCHILLA_LAW",
    "LLAMA2_GLOBAL_BATCH_TOKENS",
    "activation_bytes_per_layer",
    "batch_plan",
    "bytes_per_param",
    "chinchilla_loss",
    "chinchilla_optimal",
    "chinchilla_tokens",
    "count_params",
    "fit_power_law",
    "fits",
    "gpu_hours",
    "hardware_flops",
    "implied_mfu",
    "isoflop_optimum",
    "peak_rss_of_training_step",
    "saved_activation_bytes",
    "training_cost",
    "training_flops",
    "training_memory",
    "training_time",
]
