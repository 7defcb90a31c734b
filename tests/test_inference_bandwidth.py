import math
import time

import pytest
import torch

from llmcourse.inference import bandwidth
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
from llmcourse.inference.quantize import weight_bytes
from llmcourse.model import GPT, GPTConfig
from llmcourse.scaling import PRESETS, count_params


def test_kv_cache_bytes_llama2_7b():
    per_token = kv_cache_bytes(n_layer=32, n_kv_heads=32, head_dim=128, context_len=1)
    assert per_token == 2 * 32 * 32 * 128 * 2 == 512 * 1024  # 0.5 MiB per token in bf16
    assert kv_cache_bytes(n_layer=32, n_kv_heads=32, head_dim=128, context_len=4096,
                          batch_size=2) == 2 * 2**30 * 2
    assert kv_cache_bytes(n_layer=2, n_kv_heads=1, head_dim=4, context_len=0) == 0


def test_decode_bound_by_hand():
    assert decode_tokens_per_s(13.5e9, 3.35e12) == pytest.approx(3.35e12 / 13.5e9)  # ~248
    # batch 8: weights read once, 8 caches of 1 GB each
    assert decode_bytes_per_step(13.5e9, batch_size=8, kv_bytes_per_seq=1e9) == 21.5e9
    assert decode_tokens_per_s(13.5e9, 3.35e12, batch_size=8, kv_bytes_per_seq=1e9) == \
        pytest.approx(8 * 3.35e12 / 21.5e9)
    # without KV traffic the bound grows linearly with the batch ...
    assert decode_tokens_per_s(1e9, 1e12, batch_size=4) == pytest.approx(4 * 1e3)
    # ... until the compute roof: 2 FLOPs / weight at 1e15 FLOP/s
    capped = decode_tokens_per_s(1e9, 1e12, batch_size=10_000, flops_per_token=1e9,
                                 peak_flops_per_s=1e15)
    assert capped == pytest.approx(1e15 / 1e9)


def test_worked_7b_example():
    assert LLAMA2_7B["n_params"] == count_params(**PRESETS["Llama-2-7B"])
    rows = {r["scheme"]: r for r in decode_example_7b()}
    assert rows["bf16"]["weight_gb"] == pytest.approx(13.48, abs=0.01)
    assert rows["bf16"]["tokens_per_s"] == pytest.approx(248.6, abs=0.1)  # 3.35e12 / 13.48e9
    assert rows["int8"]["tokens_per_s"] == pytest.approx(2 * rows["bf16"]["tokens_per_s"])
    assert rows["int4-g128"]["tokens_per_s"] == pytest.approx(964.2, abs=0.1)
    assert all(r["tokens_per_s_compute"] > 50 * r["tokens_per_s"] for r in rows.values())
    # a long context at batch 8: the KV cache (8 x 2.1 GB) outweighs the weights
    long = {r["scheme"]: r for r in decode_example_7b("H100", batch_size=8, context_len=4096)}
    assert long["bf16"]["kv_gb"] == pytest.approx(8 * 2**31 / 1e9)
    assert long["int4-g128"]["tokens_per_s"] < 2 * long["bf16"]["tokens_per_s"]
    a100 = {r["scheme"]: r for r in decode_example_7b("A100")}
    assert a100["bf16"]["tokens_per_s"] == pytest.approx(2.039e12 / 13.4768e9, rel=1e-4)


def test_memory_bandwidth_names():
    assert memory_bandwidth("NVIDIA H100 80GB HBM3") == 3.35e12
    assert memory_bandwidth("Tesla T4") == 320e9
    from llmcourse.hardware import GPU_SPECS

    assert set(GPU_BANDWIDTH) == set(GPU_SPECS)  # every GPU the course knows has a bandwidth
    assert memory_bandwidth("NVIDIA H100 NVL") == 3.9e12
    with pytest.raises(ValueError, match="unknown gpu"):
        memory_bandwidth("TPU v5")


def test_bound_bad_inputs():
    with pytest.raises(ValueError, match="bandwidth"):
        decode_tokens_per_s(1e9, 0.0)
    with pytest.raises(TypeError, match="weight_bytes"):
        decode_tokens_per_s("1e9", 1e12)
    with pytest.raises(ValueError, match="weight_bytes"):
        decode_tokens_per_s(math.inf, 1e12)
    with pytest.raises(TypeError, match="batch_size"):
        decode_tokens_per_s(1e9, 1e12, batch_size=2.0)
    with pytest.raises(ValueError, match="both"):
        decode_tokens_per_s(1e9, 1e12, flops_per_token=1e9)
    with pytest.raises(ValueError, match="context_len"):
        kv_cache_bytes(n_layer=1, n_kv_heads=1, head_dim=1, context_len=-1)
    with pytest.raises(ValueError, match="n_bytes"):
        measure_bandwidth(n_bytes=16)
    with pytest.raises(ValueError, match="device"):
        measure_bandwidth(n_bytes=2**20, device="nonsense")
    with pytest.raises(TypeError, match="gpu"):
        memory_bandwidth(100)


def test_clock_for_counts_this_threads_work_on_one_cpu_thread():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        clock = clock_for("cpu")
        assert clock is time.thread_time
        t0 = clock()
        time.sleep(0.05)  # descheduled: no CPU time, as when another process has the core
        assert clock() - t0 < 0.01
        slept = best_time(lambda: time.sleep(0.02), 2, torch.device("cpu"))
        assert slept < 0.01
        torch.set_num_threads(2)  # work on other threads too: only a wall clock sees it all
        assert clock_for(torch.device("cpu")) is time.perf_counter
        assert clock_for("meta") is time.perf_counter
    finally:
        torch.set_num_threads(threads)
    with pytest.raises(TypeError, match="device"):
        clock_for(0)
    with pytest.raises(ValueError, match="device"):
        clock_for("not-a-device")


def test_fastest_times_times_the_steps_in_turn_after_a_warm_up_round(monkeypatch):
    now, calls = [0.0], []  # a fake clock: time passes only inside the steps
    durations = {"a": iter([9.0, 0.3, 0.1, 0.2]), "b": iter([9.0, 0.5, 0.4, 0.6])}

    def step(key):
        def fn():
            calls.append(key)
            now[0] += next(durations[key])
        return fn

    monkeypatch.setattr(bandwidth, "clock_for", lambda device: lambda: now[0])
    got = fastest_times({"a": step("a"), "b": step("b")}, 3, "cpu")
    assert calls == ["a", "b"] * 4  # round by round, a warm-up round first
    assert got == pytest.approx({"a": 0.1, "b": 0.4})  # the 9 s warm-up calls are not counted
    with pytest.raises(TypeError, match="steps"):
        fastest_times({}, 3, "cpu")
    with pytest.raises(TypeError, match="steps"):
        fastest_times({"a": 1}, 3, "cpu")
    with pytest.raises(ValueError, match="rounds"):
        fastest_times({"a": lambda: None}, 0, "cpu")
    with pytest.raises(TypeError, match="device"):
        fastest_times({"a": lambda: None}, 1, 0)


def test_measure_bandwidth_is_plausible():
    bw = measure_bandwidth(n_bytes=16 * 2**20, repeats=2)
    assert bw["n_bytes"] == 16 * 2**20
    for key in ("read", "copy"):
        assert 1e8 < bw[key] < 1e13  # 0.1 GB/s .. 10 TB/s


@pytest.mark.slow
@torch.no_grad()
def test_cpu_decoding_respects_the_measured_bound():
    """A GPT whose float32 weights (~100 MB) do not fit in the CPU caches decodes no faster
    than the bandwidth bound computed from this machine's measured read bandwidth."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=256, block_size=64, n_layer=8, n_head=8, n_embd=512)).eval()
    bound = decode_tokens_per_s(weight_bytes(model), measure_bandwidth(2**28, 3)["read"])
    idx = torch.zeros(1, 1, dtype=torch.long)
    model.generate(idx, 2, temperature=0)  # warm-up
    t0 = time.perf_counter()
    model.generate(idx, 16, temperature=0)
    measured = 16 / (time.perf_counter() - t0)
    assert measured < 1.5 * bound, (measured, bound)  # slack for timing noise
