"""Where plotly figures show: the renderer for the notebook front end, and offline HTML export.

Every widget in :mod:`llmcourse.widgets` is a plain plotly figure (or an ipywidgets box around
one); :func:`configure_renderer` picks how notebooks display them (small JSON outputs, no CDN)
and :func:`export_html` writes one self-contained file that opens without a network.

**Token text in figures.** plotly draws text (tick labels, hover, titles) as SVG, not HTML: a
tag it does not know, such as ``<img src=x onerror=...>``, is shown as the characters it is
and never becomes an element. Its own few tags (``<b>``, ``<br>``, ``<a href=…>``,
``<span style=…>``, ``<s>`` …) and HTML entities (``&amp;``) are interpreted, though, so a
token holding one would be drawn as markup: :func:`_plotly_text` escapes every token that
holds a tag or an entity (plotly decodes ``&lt;``, ``&gt;``, ``&amp;`` back), so each token
shows exactly as written; ``<img src=x onerror=...>`` is escaped too. Special tokens shaped like
``<pad>`` or ``<|endoftext|>``, and a lone ``<`` or ``&``, are left as they are. Text that goes into an
HTML widget (``ipywidgets.HTML``) is escaped with :func:`html.escape`, always.
"""

from __future__ import annotations

import html
import os
import re
import sys

import plotly.graph_objects as go

from llmcourse._checks import check_path

__all__ = ["configure_renderer", "export_html"]

_PLOTLY_TAGS = frozenset({"a", "b", "br", "em", "i", "s", "span", "sub", "sup", "u"})
_TAG = re.compile(r"<[^<>]*>")  # what plotly.js reads as a tag
_ENTITY = re.compile(r"&(#\d+|#x[\da-fA-F]+|[a-z]+);")  # and as an entity
_SPECIAL_TOKEN = re.compile(r"<(\|?)([A-Za-z0-9_]+)\1>")  # <pad>, <unk>, <|endoftext|>


def _plotly_text(token: str) -> str:
    """``token`` as plotly text that shows exactly as written (see the module docstring):
    escaped when it holds a tag (other than a special token such as ``<pad>``) or an entity;
    anything else, a lone ``<`` or ``&`` included, is drawn as it is and left unchanged."""
    def special(tag: str) -> bool:
        m = _SPECIAL_TOKEN.fullmatch(tag)
        return m is not None and m[2].lower() not in _PLOTLY_TAGS

    if _ENTITY.search(token) or not all(special(t) for t in _TAG.findall(token)):
        return html.escape(token, quote=False)
    return token


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
    path = check_path("path", path)
    fig.write_html(os.fspath(path), include_plotlyjs=True, full_html=True)
    return os.fspath(path)
