"""Where plotly figures show: the renderer for the notebook front end, and offline HTML export.

Every widget in :mod:`llmcourse.widgets` is a plain plotly figure (or an ipywidgets box around
one); :func:`configure_renderer` picks how notebooks display them (small JSON outputs, no CDN)
and :func:`export_html` writes one self-contained file that opens without a network.
"""

from __future__ import annotations

import os
import sys

import plotly.graph_objects as go

__all__ = ["configure_renderer", "export_html"]


def configure_renderer(name: str | None = None) -> str:
    """Pick the plotly renderer so figures show where the notebook runs; return its name.

    * Colab → ``"colab"``;
    * everywhere else (JupyterLab 4, VS Code, Jupyter Notebook 7) → ``"plotly_mimetype"``: the
      figure is stored as JSON (``application/vnd.plotly.v1+json``) and drawn by the front end's
      bundled plotly.js — no CDN, and the notebook stays small (``"notebook"`` would embed
      ~4 MB of plotly.js in the first output).

    ``name`` forces a renderer (any of ``plotly.io.renderers``), and so does the environment
    variable ``LLMCOURSE_PLOTLY_RENDERER``. For an offline static HTML file use
    :func:`export_html`.
    """
    import plotly.io as pio

    if name is None:
        name = os.environ.get("LLMCOURSE_PLOTLY_RENDERER") or None
    if name is None:
        name = "colab" if "google.colab" in sys.modules else "plotly_mimetype"
    if not isinstance(name, str):
        raise TypeError(f"name must be a str or None, got {type(name).__name__}")
    try:
        pio.renderers.default = name
    except ValueError as err:
        raise ValueError(f"name={name!r} is not a plotly renderer; valid: "
                         f"{', '.join(pio.renderers)}") from err
    return name


def export_html(fig: go.Figure, path: str | os.PathLike) -> str:
    """Write ``fig`` as one self-contained HTML file (plotly.js included once, ~4 MB): opens
    offline, dropdowns and hover included. Returns the path written."""
    if not isinstance(fig, go.Figure):
        raise TypeError(f"fig must be a plotly Figure, got {type(fig).__name__}")
    fig.write_html(os.fspath(path), include_plotlyjs=True, full_html=True)
    return os.fspath(path)
