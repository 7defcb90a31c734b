"""A chat box: type a prompt, watch a model's reply arrive token by token (chapter 12).

::

    chat = ChatWidget(model, encode, decode, eos_id=EOS)
    chat                       # the widget: prompt box, Send, temperature and top-p sliders
    chat.submit("def add(a, b):")   # the same from code: returns the reply

Tokens come from :func:`llmcourse.inference.generate_stream` (KV cache, one token per step);
the reply area (an ``ipywidgets.HTML``) is rewritten after every token, so the browser shows
the text growing, and generation stops at ``eos_id`` or after ``max_new_tokens``. Prompt and
reply are HTML-escaped.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable, Sequence

import torch

from llmcourse._checks import check_callable, check_int, check_number

__all__ = ["ChatWidget"]


class ChatWidget:
    """Prompt ``Text`` + ``Send`` button + temperature / top-p sliders + a streamed reply.

    ``encode(str) -> list[int]`` and ``decode(list[int]) -> str`` are the model's tokenizer;
    ``bos_id`` (optional) is put before every prompt (e.g. the end-of-text token a model saw
    between documents); ``eos_id`` stops a reply (it is not shown). Temperature 0 is greedy;
    top-p 1 keeps the whole distribution. Each reply samples with a generator seeded with
    ``seed``, so the same prompt and settings give the same reply. ``delay`` sleeps that many
    seconds after each token (a tiny model is faster than the eye).

    Attributes: ``text``, ``button``, ``temperature``, ``top_p``, ``output`` (the reply's
    ``HTML``), ``status`` (an ``HTML`` line: tokens, tokens/s, why it stopped), ``box`` (the
    ``VBox`` shown), and after a reply ``tokens`` (ids, without the end token), ``reply``
    (text), ``stopped`` (``"eos"`` or ``"max_new_tokens"``), ``history`` (the reply area's
    length after each token).
    """

    def __init__(self, model: torch.nn.Module, encode: Callable[[str], Sequence[int]],
                 decode: Callable[[Sequence[int]], str], *, eos_id: int | None = None,
                 bos_id: int | None = None, max_new_tokens: int = 200,
                 temperature: float = 0.8, top_p: float = 0.95, seed: int = 0,
                 delay: float = 0.0, prompt: str = "") -> None:
        import ipywidgets as widgets

        from llmcourse.llama import Llama
        from llmcourse.model import GPT

        if not isinstance(model, (GPT, Llama)):
            raise TypeError(f"model must be a llmcourse GPT or Llama, got {type(model).__name__}")
        check_callable("encode", encode, " (str -> list of token ids)")
        check_callable("decode", decode, " (list of token ids -> str)")
        V = model.config.vocab_size
        for name, tok in (("eos_id", eos_id), ("bos_id", bos_id)):
            if tok is not None:
                check_int(name, tok, min=0, max=V - 1)
        self.max_new_tokens = check_int("max_new_tokens", max_new_tokens, min=1)
        check_number("temperature", temperature, min=0.0, max=2.0)
        check_number("top_p", top_p, min=0.0, max=1.0, min_open=True)
        self.seed = check_int("seed", seed, min=0)
        self.delay = check_number("delay", delay, min=0.0)
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        self.model, self.encode, self.decode = model, encode, decode
        self.eos_id, self.bos_id = eos_id, bos_id
        self.tokens: list[int] = []
        self.reply, self.stopped = "", ""
        self.history: list[int] = []

        self.text = widgets.Text(value=prompt, placeholder="type a prompt",
                                 description="prompt", layout=widgets.Layout(width="70%"))
        self.button = widgets.Button(description="Send", button_style="primary")
        self.temperature = widgets.FloatSlider(value=temperature, min=0.0, max=2.0, step=0.05,
                                               description="temperature", readout_format=".2f")
        self.top_p = widgets.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05,
                                         description="top-p", readout_format=".2f")
        self.output = widgets.HTML(value="")
        self.output.add_class("llmcourse-chat-reply")
        self.status = widgets.HTML(value="")
        self.status.add_class("llmcourse-chat-status")
        self.button.on_click(lambda _button: self.submit())
        self.box = widgets.VBox([widgets.HBox([self.text, self.button]),
                                 widgets.HBox([self.temperature, self.top_p]),
                                 self.output, self.status])

    def _render(self, prompt: str, reply: str) -> str:
        return ('<pre style="white-space: pre-wrap; margin: 0">'
                f"<b>{html.escape(prompt)}</b>{html.escape(reply)}</pre>")

    def submit(self, prompt: str | None = None) -> str:
        """Generate a reply to ``prompt`` (default: the text box's), streaming it into
        ``output`` token by token; return the reply text. This is what ``Send`` calls."""
        from llmcourse.inference.stream import generate_stream

        if prompt is None:
            prompt = self.text.value
        elif not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str or None, got {type(prompt).__name__}")
        else:
            self.text.value = prompt
        ids = ([] if self.bos_id is None else [self.bos_id]) + list(self.encode(prompt))
        self.tokens, self.reply, self.stopped, self.history = [], "", "", []
        if not ids:
            self.status.value = "type a prompt first (the model needs at least one token)"
            self.output.value = ""
            return ""
        device = self.model.lm_head.weight.device
        idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
        temperature, top_p = float(self.temperature.value), float(self.top_p.value)
        gen = torch.Generator(device=device).manual_seed(self.seed)
        self.button.disabled = True
        self.output.value = self._render(prompt, "")
        t0 = time.perf_counter()
        try:
            for tok in generate_stream(self.model, idx, self.max_new_tokens,
                                       temperature=temperature,
                                       top_p=None if top_p >= 1 else top_p,
                                       eos_id=self.eos_id, generator=gen):
                if tok == self.eos_id:
                    self.stopped = "eos"
                    break
                self.tokens.append(tok)
                self.reply = self.decode(self.tokens)
                self.output.value = self._render(prompt, self.reply)
                self.history.append(len(self.reply))
                if self.delay:
                    time.sleep(self.delay)
            else:
                self.stopped = "max_new_tokens"
        finally:
            self.button.disabled = False
        dt = time.perf_counter() - t0
        why = "the end token" if self.stopped == "eos" else f"max_new_tokens={self.max_new_tokens}"
        self.status.value = (f"{len(self.tokens)} tokens in {dt:.2f} s "
                             f"({len(self.tokens) / max(dt, 1e-9):.0f} tokens/s), stopped at {why}")
        return self.reply

    def _repr_mimebundle_(self, **kwargs):
        return self.box._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return (f"ChatWidget(max_new_tokens={self.max_new_tokens}, eos_id={self.eos_id}, "
                f"temperature={self.temperature.value:.2f}, top_p={self.top_p.value:.2f})")

