"""Attention visualisation that works offline: JupyterLab 4, Colab, VS Code and static HTML.

* :func:`attention_heatmap` — one head at a time, with **layer and head dropdowns built into the
  figure** (plotly ``updatemenus``: no Python kernel needed, so they keep working in an exported
  HTML file), hover ``query → key: p``, masked positions in grey, the head's entropy shown.
* :func:`model_view` — every layer × head as a grid of small heatmaps, each labelled with its
  entropy; long inputs are pooled into blocks so 512 tokens still render.
* :func:`attention_entropy` and :func:`head_summary` — the numbers behind the pictures.

The interactive :func:`~llmcourse.widgets.explorer.attention_explorer` (in
:mod:`llmcourse.widgets.explorer`) is built on the same inputs and colours.

``attentions`` is what models return: a tuple/list with one ``(batch, heads, T, S)`` tensor per
layer (Hugging Face with ``output_attentions=True`` — load the model with
``attn_implementation="eager"``, with ``sdpa`` it returns none — or our
``GPT(idx, return_attentions=True)``). A single ``(heads, T, S)``/``(layers, heads, T, S)`` tensor
or array is accepted too. Figures are plain plotly: no CDN, no network.

**Offline static export.** Notebook outputs use plotly's mimetype renderer (small files; shown by
JupyterLab, VS Code and nbviewer-like tools with the plotly extension). For a self-contained file
that opens anywhere without a network, write ``fig.write_html("f.html", include_plotlyjs=True)``
(see :func:`llmcourse.widgets.renderer.export_html`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from llmcourse._checks import check_int
from llmcourse.widgets.renderer import _plotly_text

__all__ = [
    "attention_entropy",
    "attention_heatmap",
    "head_summary",
    "model_view",
]

# plotly.py's sequential "Blues" (white → dark blue), written out: plotly.js's own legacy
# "Blues" runs the other way, and model_view's figure is not re-validated by plotly.py
COLORSCALE = [[0.0, "rgb(247,251,255)"], [0.125, "rgb(222,235,247)"],
              [0.25, "rgb(198,219,239)"], [0.375, "rgb(158,202,225)"],
              [0.5, "rgb(107,174,214)"], [0.625, "rgb(66,146,198)"],
              [0.75, "rgb(33,113,181)"], [0.875, "rgb(8,81,156)"], [1.0, "rgb(8,48,107)"]]
MASK_COLOR = "#c8c8c8"  # masked cells: plot background shows through the gaps
_ZWSP = "\u200b"  # makes repeated tokens distinct categories without changing how they look


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------
def _to_array(attentions: Any, batch_index: int = 0) -> np.ndarray:
    """Normalise ``attentions`` to a float32 array ``(layers, heads, T, S)``."""
    if batch_index is not None and (isinstance(batch_index, bool)
                                    or not isinstance(batch_index, int)):
        raise TypeError(f"batch_index must be an int, got {type(batch_index).__name__}")
    if isinstance(attentions, (torch.Tensor, np.ndarray)):
        a = attentions.detach().float().cpu().numpy() if isinstance(
            attentions, torch.Tensor) else np.asarray(attentions, dtype=np.float32)
        if a.ndim == 3:
            a = a[None]  # (heads, T, S) → one layer
        elif a.ndim == 5:
            a = a[:, batch_index]
        if a.ndim != 4:
            raise ValueError("attentions must be (heads, T, S), (layers, heads, T, S) or a "
                             f"tuple of (batch, heads, T, S); got an array of shape {a.shape}")
        return _probabilities(a.astype(np.float32, copy=False))
    if not isinstance(attentions, (tuple, list)):
        raise TypeError("attentions must be a tuple/list of (batch, heads, T, S) tensors (one per "
                        f"layer) or a tensor/array, got {type(attentions).__name__}")
    if len(attentions) == 0:
        raise ValueError("attentions is empty: a Hugging Face model loaded with sdpa attention "
                         "returns none — load it with attn_implementation=\"eager\" and call it "
                         "with output_attentions=True")
    layers = []
    for i, a in enumerate(attentions):
        if a is None:
            raise ValueError(f"attentions[{i}] is None: call our GPT with return_attentions=True "
                             "(or a Hugging Face model with output_attentions=True)")
        if isinstance(a, torch.Tensor):
            a = a.detach().float().cpu().numpy()
        a = np.asarray(a, dtype=np.float32)
        if a.ndim == 4:
            if not -a.shape[0] <= batch_index < a.shape[0]:
                raise ValueError(f"batch_index {batch_index} out of range for batch size "
                                 f"{a.shape[0]}")
            a = a[batch_index]
        if a.ndim != 3:
            raise ValueError(f"attentions[{i}] must be (batch, heads, T, S) or (heads, T, S), "
                             f"got shape {a.shape}")
        if layers and a.shape != layers[0].shape:
            raise ValueError(f"attentions[{i}] has shape {a.shape}, attentions[0] has "
                             f"{layers[0].shape}: every layer must match")
        layers.append(a)
    return _probabilities(np.stack(layers))


def _probabilities(a: np.ndarray) -> np.ndarray:
    """``a`` itself, once checked to hold attention probabilities: finite, non-negative."""
    if not np.isfinite(a).all():
        raise ValueError("attentions must be finite (attention probabilities), found NaN/inf")
    if (a < -1e-6).any():
        raise ValueError("attentions must be non-negative (attention probabilities), found "
                         f"{float(a.min()):.3g}")
    return a


def _check_tokens(tokens: Any, n: int, what: str = "tokens") -> list[str]:
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"{what} must be a list of strings, got {type(tokens).__name__}")
    if len(tokens) != n:
        raise ValueError(f"{what} has {len(tokens)} entries but the attention maps have {n} "
                         "positions")
    for k, t in enumerate(tokens):
        if not isinstance(t, str):
            raise TypeError(f"{what} must be a list of strings, got {type(t).__name__} {t!r} at "
                            f"position {k}")
    return list(tokens)


def _clean(t: str) -> str:
    """Make whitespace tokens visible: space ␣, newline ⏎, tab ⇥, empty ∅."""
    t = t.replace("\n", "⏎").replace("\t", "⇥")
    return (t.replace(" ", "␣") if not t.strip() else t) or "∅"


_INVISIBLE = "\u200b\u200c\u200d\u2060"  # zero-width characters


def _unique_labels(tokens: Sequence[str]) -> list[str]:
    """Tokens as plotly labels: whitespace made visible, plotly markup escaped (see
    :mod:`llmcourse.widgets.renderer`), and repeated tokens given an invisible zero-width
    suffix (the repeat count written in base 4 with zero-width characters, lowest digit first,
    so no two counts share a suffix), so plotly keeps one row per position and the labels look
    unchanged."""
    seen: dict[str, int] = {}
    out = []
    for t in tokens:
        t = _plotly_text(_clean(t))
        k = seen.get(t, 0)
        seen[t] = k + 1
        suffix = ""
        while k:
            k, r = divmod(k, 4)
            suffix += _INVISIBLE[r]
        out.append(t + suffix)
    return out


def _check_layer_head(a: np.ndarray, layer: int, head: int) -> None:
    L, H = a.shape[:2]
    for name, value, n in (("layer", layer, L), ("head", head, H)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not 0 <= value < n:
            raise ValueError(f"{name} must be in [0, {n}), got {value}")


# --------------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------------
def attention_entropy(weights: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Entropy in nats of each attention row (over the last dim): ``-Σ p log p``, ``0 log 0 = 0``.

    0 means all weight on one key; ``log S`` means uniform over ``S`` keys. Returns a tensor of
    shape ``weights.shape[:-1]``.

    >>> attention_entropy(torch.tensor([[1.0, 0.0], [0.5, 0.5]])).tolist()  # doctest: +ELLIPSIS
    [0.0, 0.693...]
    """
    if isinstance(weights, np.ndarray):
        weights = torch.from_numpy(weights)
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"weights must be a tensor or array, got {type(weights).__name__}")
    if weights.dim() < 1 or not weights.is_floating_point():
        raise ValueError(f"weights must be a float tensor with at least 1 dim, got shape "
                         f"{tuple(weights.shape)} and dtype {weights.dtype}")
    if not torch.isfinite(weights).all():
        raise ValueError("weights must be finite (attention probabilities), found NaN/inf")
    if (weights < -1e-6).any():
        raise ValueError("weights must be non-negative (attention probabilities)")
    w = weights.clamp_min(0)
    return -torch.special.xlogy(w, w).sum(-1)  # xlogy(0, 0) = 0


def _head_entropies(a: np.ndarray) -> np.ndarray:
    """Mean row entropy per (layer, head), ignoring all-zero rows (masked queries)."""
    ent = attention_entropy(torch.from_numpy(a)).numpy()  # (L, H, T)
    live = a.sum(-1) > 0.5  # (L, H, T)
    return (ent * live).sum(-1) / np.maximum(live.sum(-1), 1)


def head_summary(attentions: Any, tokens: Sequence[str] | None = None, *, batch_index: int = 0):
    """One row per (layer, head): what the head does, in numbers.

    Columns: ``entropy`` (mean row entropy, nats), ``max_weight`` (mean of each row's largest
    weight), ``prev`` (mean weight on the previous token), ``first`` (on position 0, e.g.
    ``[CLS]``), ``last`` (on the last position, e.g. ``[SEP]``), ``self`` (on the query's own
    position) and, with ``tokens``, ``same_word`` (on *other* positions holding the same token).
    Rows that are entirely masked are left out of the means. Returns a pandas ``DataFrame``.
    """
    import pandas as pd

    a = _to_array(attentions, batch_index)  # (L, H, T, S)
    L, H, T, S = a.shape
    live = a.sum(-1) > 0.5  # (L, H, T)
    n_live = np.maximum(live.sum(-1), 1)

    def mean_rows(x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        m = live if rows is None else live & rows
        return (x * m).sum(-1) / np.maximum(m.sum(-1), 1)

    idx = np.arange(min(T, S))
    diag = np.zeros((L, H, T), np.float32)
    diag[..., idx] = a[..., idx, idx]
    prev = np.zeros((L, H, T), np.float32)
    if T > 1 and S > 1:
        j = np.arange(1, min(T, S + 1))
        prev[..., j] = a[..., j, j - 1]
    data = {
        "layer": np.repeat(np.arange(L), H),
        "head": np.tile(np.arange(H), L),
        "entropy": (_head_entropies(a)).ravel(),
        "max_weight": ((a.max(-1) * live).sum(-1) / n_live).ravel(),
        "prev": mean_rows(prev, np.arange(T) > 0).ravel(),
        "first": mean_rows(a[..., 0]).ravel(),
        "last": mean_rows(a[..., -1]).ravel(),
        "self": mean_rows(diag).ravel(),
    }
    if tokens is not None:
        toks = _check_tokens(tokens, T)
        if S == T:
            same = np.array([[toks[i] == toks[j] and i != j for j in range(S)] for i in range(T)])
            data["same_word"] = mean_rows((a * same).sum(-1), same.any(-1)).ravel()
    df = pd.DataFrame(data)
    for c in df.columns[2:]:
        df[c] = df[c].astype(float).round(4)
    return df


# --------------------------------------------------------------------------------------------
# one head at a time
# --------------------------------------------------------------------------------------------
def _percent(a: np.ndarray) -> np.ndarray:
    """Weights as whole percents, one byte a cell: what the figures store (JSON stays small)."""
    return np.rint(np.clip(a, 0.0, 1.0) * 100).astype(np.uint8)


def _masked(a: np.ndarray, mask: Any | None) -> np.ndarray:
    """Boolean ``(T, S)``: True where a key is masked for a query, the same in every head.

    Without ``mask`` it is inferred: a cell is masked when its weight is exactly 0 in **every**
    layer and head. A masked score (−∞) always gives exactly 0, but so can float32 underflow (an
    unmasked score roughly 100 or more below its row's maximum): with one head, a very sharp
    head can make an unmasked cell look masked. Pass ``mask`` when you know it.
    """
    if mask is None:
        return (a == 0.0).all(axis=(0, 1))
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.dtype != bool:
        raise TypeError(f"mask must be boolean (True = may attend), got dtype {m.dtype}")
    try:
        m = np.broadcast_to(m, a.shape)
    except ValueError as err:
        raise ValueError(f"mask {m.shape} does not broadcast to the attention maps "
                         f"{a.shape}") from err
    if not (m == m[:1, :1]).all():
        raise ValueError("mask must be the same for every layer and head (a causal or padding "
                         "mask): broadcastable to (T, S)")
    return ~m[0, 0]


def _title(layer: int, head: int, ent: float, n: int) -> str:
    return (f"layer {layer} · head {head} — entropy {ent:.2f} nats "
            f"(0 = one key, {math.log(max(n, 1)):.2f} = uniform over {n})")


def attention_heatmap(attentions: Any, tokens: Sequence[str], layer: int = 0, head: int = 0, *,
                      key_tokens: Sequence[str] | None = None, mask: Any | None = None,
                      batch_index: int = 0, height: int | None = None) -> go.Figure:
    """Heatmap of one head's weights (rows: queries, columns: keys) with layer/head dropdowns.

    The dropdowns are plotly ``updatemenus``: they work without a Python kernel (in a static
    HTML export too). Each layer × head is a trace; the layer menu toggles traces' ``visible``,
    the head menu their ``opacity`` (and hover), so the two menus combine freely. The entropy of
    the shown head (computed from the exact weights) is written above the map.

    **Size.** Every head travels with the figure, so the weights are stored as whole percents
    (``uint8``, 1 byte a cell, like :func:`model_view`): 6 layers × 12 heads over 128 tokens
    make at most about 2 MB of JSON (float32 made ~7 MB), 512 tokens ~26 MB (not ~107 MB). The
    colour bar is in probability units (0 to 1); hover shows ``query → key: p%`` rounded to a
    whole percent (a weight under 0.5 % reads 0 %).

    **Masks.** Masked cells are drawn grey by one overlay trace shared by all heads (their weight
    is 0, and hover says 0 %). ``mask`` (boolean, ``True`` = may attend, broadcastable to
    ``(T, S)`` — a causal or padding mask, the same for every head) sets them; without it a
    cell counts as masked when its weight is exactly 0 in every layer and head, which float32
    underflow can also produce (see :func:`_masked`).

    Args:
        attentions: per-layer ``(batch, heads, T, S)`` tensors (see the module docstring).
        tokens: the ``T`` query tokens (and keys, unless ``key_tokens`` is given).
        layer, head: what is shown first.
        key_tokens: the ``S`` key tokens when they differ from the queries.
        mask: optional boolean mask, ``True`` = may attend, broadcastable to ``(T, S)``.
        batch_index: which sequence of the batch to show.
        height: figure height in pixels (default: from the number of tokens).
    """
    a = _to_array(attentions, batch_index)
    L, H, T, S = a.shape
    _check_layer_head(a, layer, head)
    if height is not None:
        check_int("height", height, min=1)
    ylab = _unique_labels(_check_tokens(tokens, T))
    xlab = ylab if key_tokens is None else _unique_labels(_check_tokens(key_tokens, S,
                                                                        "key_tokens"))
    masked = _masked(a, mask)  # (T, S)
    a = np.where(masked, 0.0, a)
    pct = _percent(a)  # (L, H, T, S): 1 byte a cell
    ent = _head_entropies(a)
    hover = "%{y} → %{x}: %{z}%<extra></extra>"
    data = []
    for ly in range(L):
        for h in range(H):
            on = h == head
            data.append(dict(
                type="heatmap", z=pct[ly, h], x=xlab, y=ylab, coloraxis="coloraxis",
                hovertemplate=hover, hoverinfo="all" if on else "skip",
                visible=ly == layer, opacity=1.0 if on else 0.0,
                name=f"L{ly} H{h}", meta=[ly, h, float(ent[ly, h])]))
    # the label above the map: one text trace per (layer, head), toggled like the heatmaps; it
    # lives on an invisible overlay axis (y2, range 0..1) so it sits just above the top row
    for ly in range(L):
        for h in range(H):
            data.append(dict(
                type="scatter", x=[xlab[0]], y=[1.0], mode="text",
                text=[_title(ly, h, ent[ly, h], S)],
                textposition="top right", hoverinfo="skip", showlegend=False, cliponaxis=False,
                visible=ly == layer, opacity=1.0 if h == head else 0.0,
                textfont=dict(size=13), yaxis="y2", xaxis="x"))
    n = L * H
    extra = 0
    if masked.any():  # grey where masked, a gap (NaN) elsewhere: drawn over every head
        data.append(dict(
            type="heatmap", z=np.where(masked, np.float32(1.0), np.float32(np.nan)),
            x=xlab, y=ylab,
            colorscale=[[0.0, MASK_COLOR], [1.0, MASK_COLOR]], showscale=False,
            hoverinfo="skip", hoverongaps=False, name="masked"))
        extra = 1

    def heads_of(h: int) -> list[float]:
        return [1.0 if i % H == h else 0.0 for i in range(n)] * 2 + [1.0] * extra

    layer_buttons = [dict(label=f"layer {ly}", method="restyle",
                          args=[{"visible": [i // H == ly for i in range(n)] * 2
                                 + [True] * extra}])
                     for ly in range(L)]
    head_buttons = [dict(label=f"head {h}", method="restyle",
                         args=[{"opacity": heads_of(h),
                                "hoverinfo": ["all" if i % H == h else "skip" for i in range(n)]
                                + ["skip"] * (n + extra)}])
                    for h in range(H)]
    side = max(380, min(900, 28 * T + 200)) if height is None else height
    layout: dict[str, Any] = dict(
        height=side,
        margin=dict(l=10, r=10, t=96, b=10),
        plot_bgcolor=MASK_COLOR,
        coloraxis=dict(colorscale=COLORSCALE, cmin=0, cmax=100,  # z is in whole percents
                       colorbar=dict(title=dict(text="weight"), thickness=12,
                                     tickvals=[0, 25, 50, 75, 100],
                                     ticktext=["0", "0.25", "0.5", "0.75", "1"])),
        xaxis=dict(title=dict(text="key (attended to)"), side="bottom", tickangle=-45,
                   showgrid=False, constrain="domain", range=[-0.5, S - 0.5]),
        yaxis=dict(title=dict(text="query (attending)"), range=[T - 0.5, -0.5], showgrid=False,
                   scaleanchor="x", constrain="domain"),
        yaxis2=dict(overlaying="y", visible=False, range=[0, 1], fixedrange=True),
        updatemenus=[
            dict(buttons=layer_buttons, active=layer, direction="down", x=0.0, xanchor="left",
                 y=1.0, yanchor="bottom", pad=dict(b=34), showactive=True, name="layer"),
            dict(buttons=head_buttons, active=head, direction="down", x=0.2, xanchor="left",
                 y=1.0, yanchor="bottom", pad=dict(b=34), showactive=True, name="head"),
        ],
        annotations=[dict(text="grey = masked", showarrow=False, xref="paper", yref="paper",
                          x=1.0, y=1.0, xanchor="right", yanchor="bottom", yshift=40,
                          font=dict(size=11, color="#666"))],
    )
    if height is None:
        layout["width"] = max(460, min(1000, 28 * S + 260))
    # plain dicts, not re-validated by plotly.py (2 × L × H traces: much faster); the tests
    # validate the same dict with go.Figure(fig.to_dict())
    return go.Figure(dict(data=data, layout=layout), _validate=False)


# --------------------------------------------------------------------------------------------
# all heads at once
# --------------------------------------------------------------------------------------------
def _pool(a: np.ndarray, tokens: list[str], max_tokens: int) -> tuple[np.ndarray, list[str]]:
    """Pool (L, H, T, T) into blocks so that T ≤ max_tokens: a block's weight is the mean over
    its queries of the total weight on its keys (rows still sum to 1)."""
    T = a.shape[-1]
    b = math.ceil(T / max_tokens)
    if b == 1:
        return a, tokens
    n = math.ceil(T / b)
    pad = n * b - T
    p = np.pad(a, [(0, 0), (0, 0), (0, pad), (0, pad)]) if pad else a
    p = p.reshape(*a.shape[:2], n, b, n, b).sum(-1)  # keys: total weight of the block
    counts = np.minimum(b, T - np.arange(n) * b)
    p = p.sum(-2) / counts[None, None, :, None]  # queries: mean over the block
    labels = [f"{i * b}–{min(T, (i + 1) * b) - 1}:{_plotly_text(_clean(tokens[i * b]))}…"
              for i in range(n)]
    return p.astype(np.float32), labels


def model_view(attentions: Any, tokens: Sequence[str], *, batch_index: int = 0,
               max_tokens: int = 128, cell_px: int = 90) -> go.Figure:
    """All layers × heads as a grid of small heatmaps, each titled with its entropy (nats).

    Hover shows ``query → key: p%``. Weights are stored as whole percents (uint8): a 6 × 12 grid
    over 128 tokens serialises to about 1.5 MB. Inputs longer than ``max_tokens`` are pooled into
    blocks of consecutive tokens (hover then names the block), so 512 tokens render too.
    """
    a = _to_array(attentions, batch_index)
    L, H, T, S = a.shape
    if T != S:
        raise ValueError(f"model_view needs self-attention maps (T == S): attentions have T={T}, "
                         f"S={S}")
    check_int("max_tokens", max_tokens, min=2)
    check_int("cell_px", cell_px, min=1)
    toks = _check_tokens(tokens, T)
    ent = _head_entropies(a)
    a, toks = _pool(a, toks, max_tokens)
    lab = toks if len(toks) != T else [f"{i}:{_plotly_text(_clean(t))}"
                                       for i, t in enumerate(toks)]
    pct = _percent(a)
    gap = 0.012
    w, hgt = (1 - gap * (H - 1)) / H, (1 - gap * 4 * (L - 1)) / L
    layout: dict[str, Any] = {}
    data = []
    annotations = []
    for ly in range(L):
        for h in range(H):
            k = ly * H + h + 1
            xs, ys = ("" if k == 1 else str(k)), ("" if k == 1 else str(k))
            x0, y1 = h * (w + gap), 1 - ly * (hgt + 4 * gap)
            layout[f"xaxis{xs}"] = dict(domain=[round(x0, 5), min(1.0, round(x0 + w, 5))], showticklabels=False,
                                        showgrid=False, zeroline=False, anchor=f"y{ys}",
                                        fixedrange=True)
            layout[f"yaxis{ys}"] = dict(domain=[max(0.0, round(y1 - hgt, 5)), round(y1, 5)], showticklabels=False,
                                        showgrid=False, zeroline=False, anchor=f"x{xs}",
                                        autorange="reversed", fixedrange=True)
            data.append(dict(type="heatmap", z=pct[ly, h], x=lab, y=lab, xaxis=f"x{xs}",
                             yaxis=f"y{ys}", coloraxis="coloraxis",
                             hovertemplate=f"L{ly} H{h}<br>%{{y}} → %{{x}}: %{{z}}%<extra></extra>"))
            annotations.append(dict(text=f"L{ly} H{h} · {ent[ly, h]:.2f}", x=x0 + w / 2,
                                    y=y1, xref="paper", yref="paper", showarrow=False,
                                    xanchor="center", yanchor="bottom", font=dict(size=10)))
    layout.update(
        height=L * (cell_px + 22) + 90, width=H * (cell_px + 4) + 120,
        margin=dict(l=10, r=10, t=60, b=10),
        title=dict(text=f"all heads · {T} tokens · label: layer, head · entropy (nats)"
                   + ("" if len(lab) == T else f" · pooled to {len(lab)} blocks"),
                   font=dict(size=13)),
        coloraxis=dict(colorscale=COLORSCALE, cmin=0, cmax=100,
                       colorbar=dict(title=dict(text="%"), thickness=10)),
        annotations=annotations, plot_bgcolor="white", paper_bgcolor="white",
    )
    # built as plain dicts and not re-validated by plotly.py (72 traces: 3× faster); the tests
    # validate the same dict with go.Figure(fig.to_dict())
    return go.Figure(dict(data=data, layout=layout), _validate=False)
