"""Inference engineering: why decoding is memory-bound and what that makes worth doing.

* :mod:`~llmcourse.inference.quantize`: int8 / int4 weight-only quantisation from scratch,
  ``QuantLinear``, ``quantize(model, scheme)``, storage in bytes, activation outliers.
* :mod:`~llmcourse.inference.speculative`: speculative decoding (draft proposes, target
  verifies) with the exact accept/reject rule.
* :mod:`~llmcourse.inference.bandwidth`: the bandwidth bound on decoding tokens/s, a measured
  bandwidth, the worked 7B example.
* :mod:`~llmcourse.inference.serving`: static vs continuous batching simulated, a paged KV
  cache block table with prefix caching.
* :mod:`~llmcourse.inference.stream`: :func:`generate_stream`, token ids one at a time (a chat
  UI's loop, :class:`llmcourse.widgets.chat.ChatWidget`).
"""

from llmcourse.inference.bandwidth import (
    GPU_BANDWIDTH,
    LLAMA2_7B,
    best_time,
    clock_for,
    decode_bytes_per_step,
    decode_example_7b,
    decode_tokens_per_s,
    fastest_times,
    kv_cache_bytes,
    measure_bandwidth,
    memory_bandwidth,
)
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
from llmcourse.inference.serving import (
    BlockTable,
    LinearCost,
    Request,
    kv_fragmentation,
    measure_step_costs,
    simulate_batching,
)
from llmcourse.inference.speculative import (
    acceptance_rule,
    forward_with_cache,
    speculative_accept,
    speculative_generate,
)
from llmcourse.inference.stream import generate_stream

__all__ = [
    "GPU_BANDWIDTH", "LLAMA2_7B", "SCHEMES", "BlockTable", "LinearCost", "QuantLinear", "Request",
    "acceptance_rule", "best_time", "clock_for", "decode_bytes_per_step", "decode_example_7b",
    "decode_tokens_per_s", "dequantize_int4", "dequantize_int8", "fastest_times",
    "forward_with_cache", "generate_stream", "kv_cache_bytes", "kv_fragmentation",
    "linear_weight_bytes", "measure_bandwidth", "measure_step_costs", "memory_bandwidth",
    "outlier_stats", "pack_int4", "quantize", "quantize_int4", "quantize_int8",
    "simulate_batching", "speculative_accept", "speculative_generate", "unpack_int4",
    "weight_bytes", "weight_bytes_by_scheme",
]
