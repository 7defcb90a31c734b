"""An interactive attention explorer: type text, pick layer/head/query, see the heatmap update.

:func:`attention_explorer` runs our GPT (with a tokenizer that has ``encode``/``decode``) or any
Hugging Face model (loaded with ``attn_implementation="eager"``) on the text and shows one
head's weights in a plotly ``FigureWidget`` under ipywidgets controls; the controls can be set
from code too (``ex.head.value = 3``), which is how it is tested. Without ``anywidget`` the
figure is redrawn as a plain ``go.Figure`` inside an ``Output`` widget.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from llmcourse.widgets.attention import (
    COLORSCALE,
    MASK_COLOR,
    _check_layer_head,
    _head_entropies,
    _to_array,
    _unique_labels,
)

__all__ = ["AttentionExplorer", "attention_explorer"]


def _run_model(model: Any, tokenizer: Any, text: str) -> tuple[tuple, list[str]]:
    """Attention maps and tokens for ``text``, from our GPT or a Hugging Face model."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            cfg = getattr(model, "config", None)
            if hasattr(cfg, "block_size") and hasattr(tokenizer, "encode") and not callable(
                    getattr(tokenizer, "convert_ids_to_tokens", None)):
                ids = list(tokenizer.encode(text))[-cfg.block_size:]  # our GPT
                if not ids:
                    raise ValueError(f"the tokenizer turned {text!r} into no tokens")
                idx = torch.tensor([ids], dtype=torch.long, device=device)
                _, _, atts = model(idx, return_attentions=True)
                tokens = [tokenizer.decode([i]) for i in ids]
            elif callable(getattr(tokenizer, "convert_ids_to_tokens", None)):  # Hugging Face
                enc = tokenizer(text, return_tensors="pt", truncation=True)
                enc = {k: v.to(device) for k, v in enc.items()}
                out = model(**enc, output_attentions=True)
                atts = getattr(out, "attentions", None)
                if not atts:
                    raise ValueError("the model returned no attentions: load it with "
                                     "attn_implementation=\"eager\" (sdpa returns none)")
                tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
            else:
                raise TypeError("tokenizer must have encode/decode (for our GPT) or be a Hugging "
                                f"Face tokenizer, got {type(tokenizer).__name__}")
    finally:
        model.train(was_training)
    return tuple(atts), list(tokens)


def _figure_widget(fig: go.Figure):
    """A ``go.FigureWidget`` (needs ``anywidget``), else ``None``."""
    try:
        return go.FigureWidget(fig)
    except ImportError:
        return None


class AttentionExplorer:
    """The object behind :func:`attention_explorer`; display it (or ``.widget``) in a notebook.

    Attributes:
        text, layer, head, query: the ipywidgets controls (Text, two Dropdowns, a Dropdown of
            query tokens with ``-1`` = all queries).
        figure: the plotly ``FigureWidget`` showing the selected head (a plain ``go.Figure``
            redrawn in an ``Output`` when ``anywidget`` is not installed).
        info: an ``HTML`` widget with the head's entropy and, with a query focused, its top keys.
        attentions, tokens: what the model returned for the current text.
    """

    def __init__(self, model: Any, tokenizer: Any, text: str, *, layer: int = 0,
                 head: int = 0) -> None:
        import ipywidgets as W

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model, self.tokenizer = model, tokenizer
        self.attentions, self.tokens = _run_model(model, tokenizer, text)
        a = _to_array(self.attentions)
        _check_layer_head(a, layer, head)
        L, H = a.shape[:2]
        self.text = W.Text(value=text, description="text", continuous_update=False,
                           layout=W.Layout(width="95%"))
        self.layer = W.Dropdown(options=[(f"layer {i}", i) for i in range(L)], value=layer,
                                description="layer", layout=W.Layout(width="180px"))
        self.head = W.Dropdown(options=[(f"head {i}", i) for i in range(H)], value=head,
                               description="head", layout=W.Layout(width="180px"))
        self.query = W.Dropdown(description="query", layout=W.Layout(width="260px"))
        self.info = W.HTML()
        base = self._base_figure()
        fw = _figure_widget(base)
        self.output = None
        if fw is None:  # no anywidget: redraw a plain figure inside an Output widget
            self.figure = base
            self.output = W.Output()
        else:
            self.figure = fw
        self._set_query_options()
        self._redraw()
        self.text.observe(self._on_text, names="value")
        for w in (self.layer, self.head, self.query):
            w.observe(lambda _change: self._redraw(), names="value")
        self.widget = W.VBox([self.text, W.HBox([self.layer, self.head, self.query]),
                              self.info, self.figure if self.output is None else self.output])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _base_figure(self) -> go.Figure:
        fig = go.Figure(go.Heatmap(z=[[0.0]], coloraxis="coloraxis", hoverongaps=False,
                                   hovertemplate="%{y} → %{x}: %{z:.3f}<extra></extra>"))
        fig.update_layout(
            height=460, width=560, margin=dict(l=10, r=10, t=70, b=10),
            plot_bgcolor=MASK_COLOR, title=dict(font=dict(size=13)),
            coloraxis=dict(colorscale=COLORSCALE, cmin=0.0, cmax=1.0),
            xaxis=dict(side="top", tickangle=-45, showgrid=False),
            yaxis=dict(autorange="reversed", showgrid=False))
        return fig

    def _set_query_options(self) -> None:
        opts = [("all queries", -1)] + [(f"{i}: {t}", i) for i, t in enumerate(self.tokens)]
        self.query.options = opts
        self.query.value = -1

    def _on_text(self, change: dict) -> None:
        self.attentions, self.tokens = _run_model(self.model, self.tokenizer, change["new"])
        self._set_query_options()
        self._redraw()

    def current_weights(self) -> np.ndarray:
        """The ``(T, S)`` weights of the selected layer and head."""
        return _to_array(self.attentions)[self.layer.value, self.head.value]

    def _redraw(self) -> None:
        w = self.current_weights()
        lab = _unique_labels(self.tokens)
        z = np.where(w == 0.0, np.nan, w)  # exact zeros as gaps: masked keys (or float32 underflow)
        ent = float(_head_entropies(w[None, None])[0, 0])
        q = self.query.value if self.query.value is not None else -1
        shapes = []
        msg = (f"<b>layer {self.layer.value} · head {self.head.value}</b> — mean entropy "
               f"{ent:.2f} nats (uniform over {w.shape[1]} keys: {math.log(w.shape[1]):.2f})")
        if q >= 0:  # token text goes into HTML: escaped, so a token is never markup
            top = np.argsort(-w[q])[:3]
            code = [f"<code>{html.escape(self.tokens[j], quote=False)}</code>" for j in top]
            msg += (f"<br>query <code>{html.escape(self.tokens[q], quote=False)}</code> → "
                    + ", ".join(f"{c} {w[q, j]:.2f}" for c, j in zip(code, top)))
            shapes = [dict(type="rect", xref="paper", x0=0, x1=1, yref="y", y0=q - 0.5,
                           y1=q + 0.5, line=dict(color="#d62728", width=2))]
        self.info.value = msg
        fig = self.figure
        if self.output is None:  # widget messages are JSON: NaN is not allowed, null is a gap
            z = [[None if v != v else float(v) for v in row] for row in z.tolist()]
        with fig.batch_update() if self.output is None else _nullcontext():
            fig.data[0].update(z=z, x=lab, y=lab)
            fig.layout.title.text = f"layer {self.layer.value} · head {self.head.value}"
            fig.layout.shapes = shapes
        if self.output is not None:
            self.output.clear_output(wait=True)
            with self.output:
                fig.show()


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def attention_explorer(model: Any, tokenizer: Any, text: str, *, layer: int = 0,
                       head: int = 0) -> AttentionExplorer:
    """Interactive attention explorer: type text, pick layer/head/query, see the heatmap update.

    Works with our ``GPT`` and a tokenizer with ``encode``/``decode`` (the input is cropped to
    the last ``block_size`` tokens), and with any Hugging Face model and its tokenizer (load the
    model with ``attn_implementation="eager"``). Display the returned object in a notebook; its
    controls can also be set from code (``ex.head.value = 3``), which is how it is tested.
    """
    return AttentionExplorer(model, tokenizer, text, layer=layer, head=head)
