"""Notebook widgets and figures, each module named by what it shows; all offline (no CDN).

* ``next_token``: :class:`NextTokenWidget`, a text box over bar charts of several models'
  next-token distributions (chapter 01); :func:`show_token` makes whitespace visible.
* ``attention``: :func:`attention_heatmap` (one head, layer/head dropdowns in the figure),
  :func:`model_view` (every layer × head), :func:`attention_entropy`, :func:`head_summary`.
* ``explorer``: :func:`attention_explorer`, type text and watch a head's weights (chapter 03).
* ``training_dashboard``: :class:`Dashboard`, train/val loss, learning rate and tokens/s, live
  as a trainer callback or from ``metrics.jsonl`` (:func:`figure_from_metrics`; chapter 07).
* ``scaling_calculator``: :class:`ScalingCalculator`, a model and a cluster → memory per GPU,
  time and cost of a training run (chapter 08).
* ``chat``: :class:`ChatWidget`, a prompt box whose answer streams in token by token from one
  of the course's models, stopping at the end token, with temperature/top-p controls (chapter 12).
* ``renderer``: :func:`configure_renderer` (figures show in JupyterLab, VS Code and Colab) and
  :func:`export_html` (one self-contained HTML file).
"""

from llmcourse.widgets.attention import (
    attention_entropy,
    attention_heatmap,
    head_summary,
    model_view,
)
from llmcourse.widgets.chat import ChatWidget
from llmcourse.widgets.explorer import AttentionExplorer, attention_explorer
from llmcourse.widgets.next_token import NextTokenWidget, show_token
from llmcourse.widgets.renderer import configure_renderer, export_html
from llmcourse.widgets.scaling_calculator import ScalingCalculator
from llmcourse.widgets.training_dashboard import Dashboard, figure_from_metrics

__all__ = [
    "AttentionExplorer",
    "ChatWidget",
    "Dashboard",
    "NextTokenWidget",
    "ScalingCalculator",
    "attention_entropy",
    "attention_explorer",
    "attention_heatmap",
    "configure_renderer",
    "export_html",
    "figure_from_metrics",
    "head_summary",
    "model_view",
    "show_token",
]
