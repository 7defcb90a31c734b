"""An interactive next-token explorer: type a prefix, compare models' next-token distributions.

Used in chapter 01 to put a bigram and an LSTM side by side::

    w = NextTokenWidget({"bigram": bigram_fn, "LSTM": lstm_fn}, labels=tok.itos)
    display(w.box)           # a text box above one plotly bar chart per model
    w.update("def f(x")      # the same thing, from code: returns the top-k per model

Each model is a function ``prefix (str) -> probabilities (tensor of shape (V,))``. The figure
is a plotly ``go.FigureWidget``, so typing in the box updates the bars in place.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence

import torch

from llmcourse._checks import check_int
from llmcourse.widgets.renderer import _plotly_text

__all__ = ["NextTokenWidget", "show_token"]

_VISIBLE = {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def show_token(token: str) -> str:
    """A printable label for a token: spaces as ``␣``, newlines and tabs escaped."""
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, got {type(token).__name__}")
    return "".join(_VISIBLE.get(c, c) for c in token)


class NextTokenWidget:
    """Text box + side-by-side bar charts of the top-``k`` next tokens of several models.

    Attributes:
        text: the ``ipywidgets.Text`` the learner types in.
        status: an ``ipywidgets.HTML`` line showing the prefix used (or an error).
        fig: the ``plotly.graph_objects.FigureWidget`` (one bar trace per model).
        box: the ``ipywidgets.VBox`` to display.
        last: what the latest :meth:`update` computed: ``{model: [(token, prob), ...]}``.
    """

    def __init__(self, models: Mapping[str, Callable[[str], torch.Tensor]],
                 labels: Sequence[str], *, top_k: int = 10, prefix: str = "") -> None:
        import ipywidgets as widgets
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        if not isinstance(models, Mapping):
            raise TypeError("models must be a mapping name -> function(prefix) -> probs, got "
                            f"{type(models).__name__}")
        if not models:
            raise ValueError("models must be a non-empty mapping name -> function(prefix) -> probs")
        for name, fn in models.items():
            if not callable(fn):
                raise TypeError(f"models[{name!r}] must be callable, got {type(fn).__name__}")
        if isinstance(labels, (str, bytes)) or not isinstance(labels, Sequence):
            raise TypeError("labels must be a sequence of str (one per token id), got "
                            f"{type(labels).__name__}")
        labels = list(labels)
        if not all(isinstance(s, str) for s in labels):
            raise TypeError("labels must be a sequence of str (one per token id)")
        if not labels:
            raise ValueError("labels must be a non-empty sequence of str (one per token id)")
        check_int("top_k", top_k, min=1, max=len(labels))
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        self.models = dict(models)
        self.labels = labels
        self.top_k = top_k
        self.last: dict[str, list[tuple[str, float]]] = {}
        names = list(self.models)
        base = make_subplots(rows=1, cols=len(names), subplot_titles=names, shared_yaxes=True)
        for j, name in enumerate(names, 1):
            base.add_trace(go.Bar(x=[], y=[], name=name, showlegend=False), row=1, col=j)
        base.update_layout(height=320, margin=dict(l=40, r=10, t=40, b=40),
                           yaxis_title="P(next token)")
        base.update_yaxes(range=[0, 1])
        self.fig = go.FigureWidget(base)
        self.text = widgets.Text(value=prefix, description="prefix:", continuous_update=True,
                                 layout=widgets.Layout(width="60%"))
        self.status = widgets.HTML()
        self.box = widgets.VBox([self.text, self.status, self.fig])
        self.text.observe(lambda change: self._safe_update(change["new"]), names="value")
        self._safe_update(prefix)

    def _safe_update(self, prefix: str) -> None:
        try:
            self.update(prefix)
        except ValueError as err:  # e.g. a character the vocabulary does not know
            self.status.value = f"<span style='color:#b00'>{html.escape(str(err))}</span>"

    def update(self, prefix: str) -> dict[str, list[tuple[str, float]]]:
        """Recompute every model's distribution after ``prefix``; redraw; return the top-k."""
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        result: dict[str, list[tuple[str, float]]] = {}
        for name, fn in self.models.items():
            probs = torch.as_tensor(fn(prefix), dtype=torch.float64).flatten()
            if probs.numel() != len(self.labels):
                raise ValueError(f"model {name!r} returned {probs.numel()} probabilities for "
                                 f"{len(self.labels)} labels")
            top = torch.topk(probs, self.top_k)
            result[name] = [(self.labels[i], float(p)) for p, i in zip(top.values.tolist(),
                                                                       top.indices.tolist())]
        with self.fig.batch_update():
            for trace, name in zip(self.fig.data, self.models):
                trace.x = [_plotly_text(show_token(t)) for t, _ in result[name]]
                trace.y = [p for _, p in result[name]]
        self.status.value = f"next token after <code>{html.escape(show_token(prefix[-40:])) or '(empty)'}</code>"
        self.last = result
        return result
