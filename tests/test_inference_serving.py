import random

import pytest
import torch

from llmcourse.inference.serving import (
    BlockTable,
    LinearCost,
    Request,
    kv_fragmentation,
    measure_step_costs,
    simulate_batching,
)
from llmcourse.model import GPT, GPTConfig

THREE = [Request(0.0, 2, 3), Request(0.0, 2, 1), Request(0.0, 2, 2)]
UNIT = dict(max_batch=2, prefill_cost_per_token=1.0, decode_cost=LinearCost(1.0, 0.0))


# --------------------------------------------------------------------------- batching
def test_static_batching_by_hand():
    # batch {0, 1}: prefill 4 tokens (t=4), decode to the longest (2 more steps, t=6), return
    # both; then {2}: prefill 2 (t=8), 1 step (t=9)
    r = simulate_batching(THREE, policy="static", **UNIT)
    assert [x["finish"] for x in r["requests"]] == [6.0, 6.0, 9.0]
    assert [x["first_token"] for x in r["requests"]] == [4.0, 4.0, 8.0]
    assert r["makespan"] == 9.0 and r["throughput"] == 6 / 9 and r["decode_steps"] == 3
    assert r["mean_latency"] == 7.0 and r["p50_latency"] == 6.0 and r["p90_latency"] == 9.0
    assert r["mean_ttft"] == pytest.approx(16 / 3)


def test_continuous_batching_by_hand():
    # t=4: {0, 1} prefilled, 1 is done at once (output 1); step [0] -> t=5; 2 joins: prefill
    # -> t=7; step [0, 2] -> t=8, both done
    r = simulate_batching(THREE, policy="continuous", **UNIT)
    assert [x["finish"] for x in r["requests"]] == [8.0, 4.0, 8.0]
    assert [x["ttft"] for x in r["requests"]] == [4.0, 4.0, 7.0]
    assert r["makespan"] == 8.0 and r["decode_steps"] == 2
    assert r["mean_latency"] == pytest.approx(20 / 3)


def test_idle_server_waits_and_costs_use_batch_size():
    calls = []

    def cost(b):
        calls.append(b)
        return 0.5 * b

    reqs = [Request(5.0, 1, 3), Request(5.5, 2, 2)]
    r = simulate_batching(reqs, policy="continuous", max_batch=4, prefill_cost_per_token=1.0,
                          decode_cost=cost)
    # t=5 idle until arrival; prefill 1 -> 6; step [0] -> 6.5; 1 joins: prefill 2 -> 8.5;
    # step [0, 1] -> 9.5, both done
    assert [x["finish"] for x in r["requests"]] == [9.5, 9.5]
    assert calls == [1, 2]
    assert r["makespan"] == 4.5


def test_continuous_beats_static_on_mixed_lengths():
    rng = random.Random(0)
    reqs = [Request(rng.uniform(0, 50), rng.randint(8, 64), rng.choice([4, 16, 128]))
            for _ in range(60)]
    cost = dict(max_batch=8, prefill_cost_per_token=0.002, decode_cost=LinearCost(0.05, 0.002))
    s = simulate_batching(reqs, policy="static", **cost)
    c = simulate_batching(reqs, policy="continuous", **cost)
    assert c["throughput"] > 1.3 * s["throughput"]
    assert c["mean_latency"] < s["mean_latency"] and c["p90_latency"] < s["p90_latency"]
    assert sum(x["finish"] >= x["first_token"] >= x["arrival"] for x in c["requests"]) == 60


def test_batching_bad_inputs():
    with pytest.raises(ValueError, match="policy"):
        simulate_batching(THREE, policy="greedy", **UNIT)
    with pytest.raises(ValueError, match="empty"):
        simulate_batching([], policy="static", **UNIT)
    with pytest.raises(TypeError, match="Request"):
        simulate_batching([(0, 1, 1)], policy="static", **UNIT)
    with pytest.raises(TypeError, match="max_batch"):
        simulate_batching(THREE, policy="static", **{**UNIT, "max_batch": 2.0})
    with pytest.raises(ValueError, match="decode_cost"):
        simulate_batching(THREE, policy="static", **{**UNIT, "decode_cost": lambda b: -1.0})
    with pytest.raises(ValueError, match="output_len must be an int >= 1"):
        Request(0.0, 4, 0)
    with pytest.raises(ValueError, match="arrival"):
        Request(float("nan"), 4, 1)
    with pytest.raises(TypeError, match="prompt_len"):
        Request(0.0, True, 1)


def test_measure_step_costs_on_a_gpt():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=64, n_layer=2, n_head=2, n_embd=32))
    got = measure_step_costs(model, prompt_len=16, batch_sizes=[1, 4], repeats=2)
    assert got["prefill_cost_per_token"] > 0 and set(got["decode"]) == {1, 4}
    assert all(v > 0 for v in got["decode"].values()) and isinstance(got["fit"], LinearCost)
    assert model.training  # mode restored
    with pytest.raises(ValueError, match="block_size"):
        measure_step_costs(model, prompt_len=64, batch_sizes=[1])
    with pytest.raises(ValueError, match="batch_sizes"):
        measure_step_costs(model, prompt_len=8, batch_sizes=[])


# --------------------------------------------------------------------------- paged KV
def test_kv_fragmentation_by_hand():
    f = kv_fragmentation([10, 3, 17], block_size=4, max_len=32)
    assert f["tokens"] == 30 and f["paged_slots"] == 12 + 4 + 20 and f["paged_waste"] == 6
    assert f["contiguous_slots"] == 96 and f["contiguous_waste"] == 66
    assert f["paged_waste_frac"] == 6 / 36 and f["contiguous_waste_frac"] == 66 / 96
    with pytest.raises(ValueError, match="max_len"):
        kv_fragmentation([40], block_size=4, max_len=32)
    with pytest.raises(TypeError, match="block_size"):
        kv_fragmentation([4], block_size=4.0, max_len=32)


def test_block_table_allocates_and_frees():
    t = BlockTable(10, 4)
    assert t.add_sequence("a", list(range(10))) == 0
    assert len(t.block_ids("a")) == 3 and t.num_free_blocks == 7
    t.append("a", 1)
    t.append("a", 2)
    assert len(t.block_ids("a")) == 3  # 12 tokens fill 3 blocks exactly
    t.append("a", 3)
    assert len(t.block_ids("a")) == 4 and t.num_free_blocks == 6
    t.add_sequence("b", [5] * 3)
    assert t.stats()["waste"] == (16 - 13) + (4 - 3)
    ids = t.block_ids("a") + t.block_ids("b")
    assert len(set(ids)) == 5  # no block given twice
    live = kv_fragmentation([13, 3], block_size=4, max_len=16)
    assert t.stats()["used_slots"] == live["paged_slots"]
    assert t.stats()["waste"] == live["paged_waste"]
    t.free("a")
    t.free("b")
    assert t.num_free_blocks == 10 and t.stats()["used_blocks"] == 0


def test_block_table_out_of_blocks_leaves_state_unchanged():
    t = BlockTable(3, 4)
    t.add_sequence(0, list(range(8)))
    with pytest.raises(RuntimeError, match="out of KV blocks"):
        t.add_sequence(1, list(range(9)))
    assert t.num_free_blocks == 1 and t.block_ids(0) == [0, 1]
    t.add_sequence(1, [1, 2, 3, 4])
    with pytest.raises(RuntimeError, match="out of KV blocks"):
        t.append(1, 5)
    with pytest.raises(ValueError, match="unknown seq_id"):
        t.free(7)
    with pytest.raises(ValueError, match="new hashable id"):
        t.add_sequence(0, [1])
    with pytest.raises(ValueError, match="non-empty"):
        t.add_sequence(2, [])
    with pytest.raises(TypeError, match="token"):
        t.add_sequence(2, [1.5])


def test_prefix_caching_shares_full_prompt_blocks():
    system = [7, 7, 1, 2, 9, 9, 3, 4]  # two full blocks of 4
    t = BlockTable(16, 4, prefix_caching=True)
    assert t.add_sequence("a", system + [1, 2, 3]) == 0  # nothing cached yet
    assert t.add_sequence("b", system + [4, 5]) == 8  # both system blocks reused
    assert t.block_ids("a")[:2] == t.block_ids("b")[:2]
    assert t.block_ids("a")[2] != t.block_ids("b")[2]  # partial blocks stay private
    s = t.stats()
    assert s["used_blocks"] == 4 and s["shared_blocks"] == 2  # 4 instead of 3 + 3
    assert s["hits"] == 2 and s["queries"] == 4 and s["hit_rate"] == 0.5
    # the same tokens after another prefix are another block (keys chain the prefix)
    assert t.add_sequence("c", [0, 0, 0, 0] + system[4:]) == 0
    # freed cached blocks stay reusable ...
    for s_id in "abc":
        t.free(s_id)
    assert t.num_free_blocks == 16
    assert t.add_sequence("d", system) == 8
    t.free("d")
    # ... until allocations need their space (least recently freed evicted first)
    t.add_sequence("e", list(range(100, 164)))  # all 16 blocks
    t.free("e")
    assert t.add_sequence("f", system) == 0


def test_prefix_cache_registers_blocks_filled_by_generation():
    t = BlockTable(8, 4, prefix_caching=True)
    t.add_sequence("a", [1, 2, 3])
    t.append("a", 4)  # the first block is now full: cached
    assert t.add_sequence("b", [1, 2, 3, 4, 5]) == 4
    plain = BlockTable(8, 4)  # without prefix caching nothing is shared
    plain.add_sequence("a", [1, 2, 3, 4])
    assert plain.add_sequence("b", [1, 2, 3, 4]) == 0 and plain.stats()["hit_rate"] == 0.0
