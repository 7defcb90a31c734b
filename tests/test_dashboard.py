"""Tests of llmcourse.widgets.training_dashboard: headless figures from a run, live updates."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest

from llmcourse.widgets import Dashboard, figure_from_metrics

RECORDS = [
    {"kind": "train", "step": 10, "loss": 4.0, "lr": 1e-3, "tokens_per_s": 1000.0, "mfu": None},
    {"kind": "eval", "step": 10, "val_loss": 4.2},
    {"kind": "train", "step": 20, "loss": 3.5, "lr": 5e-4, "tokens_per_s": 1100.0, "mfu": None},
    {"kind": "eval", "step": 20, "val_loss": 3.9},
]


def test_headless_figure_from_file(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n{partial")
    for source in (tmp_path, tmp_path / "metrics.jsonl", RECORDS):
        fig = figure_from_metrics(source)
        assert isinstance(fig, go.Figure)
        names = [t.name for t in fig.data]
        assert names == ["train loss", "val loss", "lr", "tokens/s"]
        assert list(fig.data[0].y) == [4.0, 3.5] and list(fig.data[1].y) == [4.2, 3.9]
        assert list(fig.data[2].x) == [10, 20] and list(fig.data[3].y) == [1000.0, 1100.0]


def test_live_widget_updates():
    dash = Dashboard()
    w = dash.widget
    assert isinstance(w, go.FigureWidget) and len(w.data[0].x) == 0
    for r in RECORDS:
        dash(r)
    assert list(w.data[0].y) == [4.0, 3.5] and list(w.data[1].x) == [10, 20]
    assert list(dash.figure().data[2].y) == [1e-3, 5e-4]


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="no run directory"):
        figure_from_metrics(tmp_path / "missing")
    with pytest.raises(TypeError, match="source"):
        figure_from_metrics(42)
    with pytest.raises(ValueError, match="step"):
        Dashboard().update({"loss": 1.0})
