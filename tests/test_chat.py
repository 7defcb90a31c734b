"""ChatWidget without a browser: the reply is the model's own generation, streamed token by
token, stopped at the end token, HTML-escaped; the Send button runs the same path.
(In JupyterLab with a real browser: tests/test_browser_chat.py.)"""

import pytest
import torch

pytest.importorskip("ipywidgets")

from llmcourse.model import GPT, GPTConfig  # noqa: E402
from llmcourse.widgets.chat import ChatWidget  # noqa: E402

EOS = 256


def byte_gpt(seed=0):
    torch.manual_seed(seed)
    m = GPT(GPTConfig(vocab_size=257, block_size=64, n_layer=1, n_head=2, n_embd=32))
    with torch.no_grad():
        m.lm_head.weight.mul_(8)
    return m.eval()


def encode(s):
    return list(s.encode("utf-8"))


def decode(ids):
    return bytes(ids).decode("utf-8", errors="replace")


def test_greedy_reply_is_the_models_generation_streamed():
    m = byte_gpt()
    chat = ChatWidget(m, encode, decode, max_new_tokens=20, temperature=0.0)
    reply = chat.submit("<b>&")
    ref = m.generate(torch.tensor([encode("<b>&")]), 20, temperature=0)[0, 4:].tolist()
    assert chat.tokens == ref and chat.stopped == "max_new_tokens"
    assert reply == decode(ref) == chat.reply
    assert len(chat.history) == 20  # the reply area was rewritten after every token
    assert chat.history == sorted(chat.history) and chat.history[-1] == len(reply)
    # escaped: the prompt's markup shows as text, it does not become markup
    assert "&lt;b&gt;&amp;" in chat.output.value and "<b><b>" not in chat.output.value
    assert "20 tokens" in chat.status.value and "max_new_tokens=20" in chat.status.value


def test_stops_at_the_end_token_and_does_not_show_it():
    m = byte_gpt()
    ref = m.generate(torch.tensor([encode("ab")]), 30, temperature=0)[0, 2:].tolist()
    eos = ref[5]
    chat = ChatWidget(m, encode, lambda ids: ",".join(map(str, ids)), eos_id=eos,
                      max_new_tokens=30, temperature=0.0)
    chat.submit("ab")
    assert chat.tokens == ref[: ref.index(eos)] and chat.stopped == "eos"
    assert "the end token" in chat.status.value


def test_send_button_uses_the_text_box_and_the_sliders():
    m = byte_gpt(1)
    chat = ChatWidget(m, encode, decode, bos_id=EOS, max_new_tokens=15, seed=3)
    chat.text.value = "def f"
    chat.temperature.value, chat.top_p.value = 1.0, 0.9
    chat.button.click()  # what a click in the browser triggers
    ref = m.generate(torch.tensor([[EOS] + encode("def f")]), 15, temperature=1.0, top_p=0.9,
                     generator=torch.Generator().manual_seed(3))[0, 6:].tolist()
    assert chat.tokens == ref and not chat.button.disabled
    again = chat.submit()  # same prompt, settings and seed: the same reply
    assert chat.tokens == ref and again == decode(ref)
    chat.temperature.value = 0.0
    chat.submit()
    assert chat.tokens == m.generate(torch.tensor([[EOS] + encode("def f")]), 15,
                                     temperature=0)[0, 6:].tolist()


def test_empty_prompt_says_so():
    chat = ChatWidget(byte_gpt(), encode, decode)
    assert chat.submit("") == "" and "type a prompt" in chat.status.value
    with_bos = ChatWidget(byte_gpt(), encode, decode, bos_id=EOS, max_new_tokens=3)
    assert len(with_bos.submit("")) > 0  # the start token alone is a prompt


def test_bad_inputs():
    m = byte_gpt()
    with pytest.raises(TypeError, match="model must be a llmcourse GPT or Llama"):
        ChatWidget(torch.nn.Linear(2, 2), encode, decode)
    with pytest.raises(TypeError, match="encode must be callable"):
        ChatWidget(m, "utf-8", decode)
    with pytest.raises(TypeError, match="decode must be callable"):
        ChatWidget(m, encode, None)
    with pytest.raises(ValueError, match="eos_id must be an int >= 0 and <= 256"):
        ChatWidget(m, encode, decode, eos_id=257)
    with pytest.raises(TypeError, match="bos_id must be an int"):
        ChatWidget(m, encode, decode, bos_id=1.0)
    with pytest.raises(ValueError, match="max_new_tokens must be an int >= 1"):
        ChatWidget(m, encode, decode, max_new_tokens=0)
    with pytest.raises(ValueError, match="temperature"):
        ChatWidget(m, encode, decode, temperature=3.0)
    with pytest.raises(ValueError, match="top_p"):
        ChatWidget(m, encode, decode, top_p=0.0)
    with pytest.raises(ValueError, match="delay"):
        ChatWidget(m, encode, decode, delay=-1)
    with pytest.raises(TypeError, match="prompt must be a str"):
        ChatWidget(m, encode, decode, prompt=3)
    with pytest.raises(TypeError, match="prompt must be a str or None"):
        ChatWidget(m, encode, decode).submit(b"x")
