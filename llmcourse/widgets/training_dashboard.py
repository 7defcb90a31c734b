"""A training dashboard: train/val loss, learning rate and tokens/s, live or from a file.

In a notebook, pass the dashboard to the trainer as a callback; its ``FigureWidget`` redraws
after every logged step::

    dash = Dashboard()
    dash.widget                                  # display it (last expression of a cell)
    Trainer(model, cfg, data, callbacks=[dash.update]).fit()

Headless (a script, CI, a finished run): ``figure_from_metrics("runs/ci")`` returns a plain
``go.Figure`` read from ``metrics.jsonl``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["Dashboard", "figure_from_metrics"]

TRACES = ("train loss", "val loss", "lr", "tokens/s")


def _empty_figure() -> go.Figure:
    fig = make_subplots(rows=1, cols=3, subplot_titles=("loss", "learning rate", "tokens / s"))
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="train loss"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="val loss"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="lr"), row=1, col=2)
    fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="tokens/s"), row=1, col=3)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=320, margin=dict(l=40, r=20, t=40, b=40),
                      legend=dict(orientation="h", y=-0.25))
    return fig


def _check_record(name: str, r: object) -> dict:
    if not isinstance(r, dict):
        raise TypeError(f"{name} must be a dict with a 'step' (a metrics record), got "
                        f"{type(r).__name__} {r!r}")
    if "step" not in r:
        raise ValueError(f"{name} must be a dict with a 'step' (a metrics record), got {r!r}")
    return r


def _columns(records: Iterable[dict]) -> dict[str, tuple[list, list]]:
    cols: dict[str, tuple[list, list]] = {name: ([], []) for name in TRACES}
    for r in records:
        if r.get("kind", "train") == "eval" or "val_loss" in r:
            if r.get("val_loss") is not None:
                cols["val loss"][0].append(r["step"])
                cols["val loss"][1].append(r["val_loss"])
            continue
        for name, key in (("train loss", "loss"), ("lr", "lr"), ("tokens/s", "tokens_per_s")):
            if r.get(key) is not None:
                cols[name][0].append(r["step"])
                cols[name][1].append(r[key])
    return cols


def figure_from_metrics(source: str | os.PathLike | Iterable[dict]) -> go.Figure:
    """A ``go.Figure`` of a run: ``source`` is a run directory, a ``metrics.jsonl`` path or a
    list of records (as written by :class:`llmcourse.train.Trainer`)."""
    from llmcourse.train import read_metrics

    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ValueError(f"no run directory or metrics file at source {str(path)!r}")
        records = read_metrics(path)
    elif isinstance(source, Iterable):
        records = [_check_record(f"source[{k}]", r) for k, r in enumerate(source)]
    else:
        raise TypeError(f"source must be a path or a list of records, got {type(source).__name__}")
    fig = _empty_figure()
    for trace, (xs, ys) in zip(fig.data, _columns(records).values()):
        trace.x, trace.y = xs, ys
    return fig


class Dashboard:
    """A live dashboard: call :meth:`update` with each metrics record (a Trainer callback).

    ``widget`` is a plotly ``FigureWidget`` (needs ``ipywidgets``; it redraws in place in
    Jupyter and Colab); ``figure()`` returns a static ``go.Figure`` of what it has so far.
    """

    def __init__(self, records: Iterable[dict] = ()) -> None:
        if isinstance(records, (str, bytes, dict)) or not isinstance(records, Iterable):
            raise TypeError("records must be a list of metrics records (dicts), got "
                            f"{type(records).__name__}")
        self.records: list[dict] = []
        self._widget = None
        for r in records:
            self.update(r)

    @property
    def widget(self) -> go.FigureWidget:
        if self._widget is None:
            self._widget = go.FigureWidget(self.figure())
        return self._widget

    def update(self, record: dict) -> None:
        """Add one record (and redraw the widget if it is shown)."""
        self.records.append(_check_record("record", record))
        if self._widget is not None:
            cols = _columns(self.records)
            with self._widget.batch_update():
                for trace, (xs, ys) in zip(self._widget.data, cols.values()):
                    trace.x, trace.y = xs, ys

    __call__ = update

    def figure(self) -> go.Figure:
        return figure_from_metrics(self.records)
