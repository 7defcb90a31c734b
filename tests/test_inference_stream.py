"""generate_stream against GPT.generate / Llama.generate (the reference: same tokens, same RNG)."""

import pytest
import torch

from llmcourse.inference.stream import generate_stream
from llmcourse.llama import Llama, LlamaConfig
from llmcourse.model import GPT, GPTConfig


def gpt(seed=0, block_size=16):
    torch.manual_seed(seed)
    m = GPT(GPTConfig(vocab_size=40, block_size=block_size, n_layer=2, n_head=2, n_embd=32))
    with torch.no_grad():  # random-init logits are nearly flat: spread them
        m.lm_head.weight.mul_(5)
    return m.eval()


def prompt(seed=0, T=5, V=40):
    return torch.randint(V, (1, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("n", [1, 7, 30])  # 30 > block_size: the window slides
def test_greedy_stream_equals_generate(n):
    m = gpt()
    idx = prompt()
    ref = m.generate(idx, n, temperature=0)[0, idx.size(1):].tolist()
    assert list(generate_stream(m, idx, n, temperature=0)) == ref


def test_sampled_stream_equals_generate_with_the_same_generator():
    m = gpt(1)
    idx = prompt(1)
    for kw in (dict(temperature=1.0), dict(temperature=0.7, top_k=5), dict(temperature=1.3,
                                                                           top_p=0.8)):
        ref = m.generate(idx, 25, generator=torch.Generator().manual_seed(3), **kw)
        got = list(generate_stream(m, idx, 25, generator=torch.Generator().manual_seed(3), **kw))
        assert got == ref[0, idx.size(1):].tolist(), kw
        assert len(set(got)) > 3  # really sampled, not a constant


def test_stops_right_after_the_end_token():
    m = gpt()
    idx = prompt()
    ref = m.generate(idx, 30, temperature=0)[0, idx.size(1):].tolist()
    eos = ref[3]  # the 4th greedy token plays the end token
    first = ref.index(eos)
    assert list(generate_stream(m, idx, 30, temperature=0, eos_id=eos)) == ref[: first + 1]


def test_one_token_at_a_time_and_modes_restored():
    m = gpt().train()
    stream = generate_stream(m, prompt(), 5, temperature=0)
    assert m.training  # nothing runs before the first next()
    first = next(stream)
    assert isinstance(first, int) and not m.training
    assert torch.is_grad_enabled()  # no_grad does not leak out of the generator into the caller
    stream.close()
    assert m.training
    assert list(generate_stream(m, prompt(), 0)) == []


def test_llama_stream_equals_generate():
    torch.manual_seed(0)
    m = Llama(LlamaConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_kv_head=1,
                          n_embd=32)).eval()
    idx = prompt()
    ref = m.generate(idx, 20, temperature=0)[0, idx.size(1):].tolist()
    assert list(generate_stream(m, idx, 20, temperature=0)) == ref


def test_bad_inputs():
    m, idx = gpt(), prompt()
    with pytest.raises(TypeError, match="model must be a llmcourse GPT or Llama"):
        generate_stream(torch.nn.Linear(2, 2), idx, 3)
    with pytest.raises(ValueError, match=r"idx must hold one sequence \(1, T\)"):
        generate_stream(m, torch.zeros(2, 3, dtype=torch.long), 3)
    with pytest.raises(TypeError, match="max_new_tokens must be an int"):
        generate_stream(m, idx, 2.5)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 0"):
        generate_stream(m, idx, -1)
    with pytest.raises(ValueError, match="temperature"):
        generate_stream(m, idx, 3, temperature=float("nan"))
    with pytest.raises(ValueError, match="top_p"):
        generate_stream(m, idx, 3, top_p=1.5)
    with pytest.raises(ValueError, match="eos_id must be an int >= 0 and <= 39"):
        generate_stream(m, idx, 3, eos_id=40)
    with pytest.raises(TypeError, match="eos_id must be an int"):
        generate_stream(m, idx, 3, eos_id=True)
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        generate_stream(m, idx, 3, generator=0)
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 40\)"):
        generate_stream(m, torch.tensor([[1, 99]]), 3)  # id out of the vocabulary
