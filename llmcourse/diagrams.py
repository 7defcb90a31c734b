"""Diagrams drawn by code: attention's shape flow, a transformer block, the GPT stack, the KV cache.

Each public drawing function returns SVG text (a few kilobytes: boxes, lines and labels, no
script, no external reference, no font file), so a chapter can embed it in its own output::

    from llmcourse import diagrams
    diagrams.show(diagrams.attention_flow(T=8, C=64, n_head=4))

:func:`show` returns an object that a notebook displays as the SVG **and** a PNG of it. The PNG
is not decoration: JupyterLab refuses to draw an SVG output of a notebook it does not trust (any
notebook it did not execute itself, such as a fresh clone of the course) and falls back to the
PNG, which it always draws; Colab and GitHub's notebook view show one or the other. The PNG is
rasterised from the SVG text by :func:`to_png` (Pillow), which understands exactly the small
subset of SVG this module writes.

Why one module of about 560 lines: the drawings and the rasteriser belong together — ``to_png``
understands exactly the elements the drawing canvas writes, and a test draws every diagram
through both.
"""

from __future__ import annotations

import base64
import io
import math
import numbers
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape

from llmcourse._checks import check_bool, check_choice, check_int, check_number, check_str

__all__ = ["Diagram", "attention_flow", "gpt_stack", "kv_cache", "show", "to_png",
           "transformer_block"]

SVG_NS = "http://www.w3.org/2000/svg"
SANS = "DejaVu Sans, Verdana, Arial, sans-serif"
MONO = "DejaVu Sans Mono, Menlo, Consolas, monospace"
INK, MUTED, LINE = "#111827", "#4b5563", "#374151"
# fill, stroke of each kind of box
STYLE = {
    "tensor": ("#f3f4f6", "#6b7280"),  # an input or output tensor
    "linear": ("#dbeafe", "#2563eb"),  # a layer with learned weights
    "op": ("#fef3c7", "#d97706"),  # an operation without weights
    "norm": ("#dcfce7", "#16a34a"),  # LayerNorm
    "mlp": ("#ede9fe", "#7c3aed"),  # the MLP
    "stored": ("#bfdbfe", "#1d4ed8"),  # KV cache: kept from earlier steps
    "computed": ("#fed7aa", "#c2410c"),  # KV cache: computed at this step
}


# ---------------------------------------------------------------------------------------------
# A tiny canvas that writes SVG elements (and only the ones to_png can draw)
# ---------------------------------------------------------------------------------------------

def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


class _Canvas:
    def __init__(self, width: int, height: int, title: str) -> None:
        self.width, self.height, self.title = width, height, title
        self.parts: list[str] = []

    def rect(self, x: float, y: float, w: float, h: float, kind: str = "tensor", *,
             rx: float = 6, dash: bool = False) -> None:
        fill, stroke = STYLE[kind]
        extra = ' stroke-dasharray="5 4"' if dash else ""
        self.parts.append(f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(w)}" '
                          f'height="{_num(h)}" rx="{_num(rx)}" fill="{fill}" stroke="{stroke}" '
                          f'stroke-width="1.5"{extra}/>')

    def text(self, x: float, y: float, s: str, *, size: float = 13, anchor: str = "middle",
             bold: bool = False, mono: bool = False, fill: str = INK) -> None:
        weight = ' font-weight="bold"' if bold else ""
        family = MONO if mono else SANS
        self.parts.append(f'<text x="{_num(x)}" y="{_num(y)}" font-size="{_num(size)}" '
                          f'font-family="{family}" text-anchor="{anchor}" fill="{fill}"'
                          f'{weight}>{escape(s)}</text>')

    def line(self, points: list[tuple[float, float]], *, stroke: str = LINE, width: float = 1.5,
             dash: bool = False, head: bool = True) -> None:
        """A polyline through ``points``; an arrowhead at the last point when ``head``."""
        extra = ' stroke-dasharray="5 4"' if dash else ""
        pts = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
        self.parts.append(f'<polyline points="{pts}" fill="none" stroke="{stroke}" '
                          f'stroke-width="{_num(width)}"{extra}/>')
        if head:
            (x0, y0), (x1, y1) = points[-2], points[-1]
            a = math.atan2(y1 - y0, x1 - x0)
            size = 8 + width
            left = (x1 - size * math.cos(a - 0.4), y1 - size * math.sin(a - 0.4))
            right = (x1 - size * math.cos(a + 0.4), y1 - size * math.sin(a + 0.4))
            tri = " ".join(f"{_num(x)},{_num(y)}" for x, y in ((x1, y1), left, right))
            self.parts.append(f'<polygon points="{tri}" fill="{stroke}"/>')

    def plus(self, cx: float, cy: float, r: float = 11) -> None:
        """The residual addition: a circle with a plus."""
        self.parts.append(f'<circle cx="{_num(cx)}" cy="{_num(cy)}" r="{_num(r)}" fill="#ffffff" '
                          f'stroke="{LINE}" stroke-width="1.5"/>')
        self.line([(cx - r + 4, cy), (cx + r - 4, cy)], head=False)
        self.line([(cx, cy - r + 4), (cx, cy + r - 4)], head=False)

    def box(self, cx: float, y: float, w: float, h: float, label: str, sub: str | None = None,
            kind: str = "op", *, dash: bool = False) -> tuple[float, float]:
        """A box centred on ``cx`` from ``y`` to ``y + h`` with a label (and a smaller second
        line, in monospace: a shape or a signature). Returns the box's top and bottom y."""
        self.rect(cx - w / 2, y, w, h, kind, dash=dash)
        if sub is None:
            self.text(cx, y + h / 2 + 4.5, label, bold=True)
        else:
            self.text(cx, y + h / 2 - 3, label, bold=True)
            self.text(cx, y + h / 2 + 12, sub, size=11.5, mono=True, fill=MUTED)
        return y, y + h

    def svg(self) -> str:
        w, h = self.width, self.height
        head = (f'<svg xmlns="{SVG_NS}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
                f'role="img" aria-label="{escape(self.title, {chr(34): "&quot;"})}">')
        body = [f"<title>{escape(self.title)}</title>",
                f'<rect x="0" y="0" width="{w}" height="{h}" rx="0" fill="#ffffff" '
                f'stroke="#ffffff" stroke-width="0"/>', *self.parts]
        return "\n".join([head, *body, "</svg>"]) + "\n"


def _dim(name: str, value: object, default: str) -> str:
    """A dimension shown in a diagram: a positive int, or a symbol (a short non-empty str)."""
    if value is None:
        return default
    if isinstance(value, str):
        check_str(name, value, empty=False)
        if len(value) > 8:
            raise ValueError(f"{name} must be a symbol of at most 8 characters, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int or a str symbol, got {type(value).__name__} "
                        f"{value!r}")
    return str(check_int(name, value, min=1))


# ---------------------------------------------------------------------------------------------
# The diagrams
# ---------------------------------------------------------------------------------------------

def attention_flow(*, B: int | str | None = None, T: int | str | None = None,
                   C: int | str | None = None, n_head: int | str | None = None,
                   causal: bool = True, dropout: bool = True) -> str:
    """Multi-head self-attention as shapes flow through it, top to bottom.

    ``X (B, T, C)`` → ``W_Q, W_K, W_V`` → split into heads ``(B, nh, T, hs)`` →
    ``Q·Kᵀ/√hs`` ``(B, nh, T, T)`` → causal mask → softmax → dropout → ``·V`` → concatenate
    the heads ``(B, T, C)`` → ``W_O``. Each dimension is a symbol or, given as an int, its value
    (``hs = C // n_head`` is computed when both are ints).
    """
    b, t, c = _dim("B", B, "B"), _dim("T", T, "T"), _dim("C", C, "C")
    nh = _dim("n_head", n_head, "nh")
    check_bool("causal", causal)
    check_bool("dropout", dropout)
    if c.isdigit() and nh.isdigit():
        if int(c) % int(nh):
            raise ValueError(f"C ({c}) must be divisible by n_head ({nh})")
        hs = str(int(c) // int(nh))
    else:
        hs = "hs"
    btc, heads, tt = f"({b}, {t}, {c})", f"({b}, {nh}, {t}, {hs})", f"({b}, {nh}, {t}, {t})"
    cv = _Canvas(660, 0, "Multi-head self-attention: shapes from X to W_O")
    xq, xk, xv, mid = 120, 330, 540, 225  # columns: Q, K, V; the Q·Kᵀ chain between Q and K
    gap, h = 22, 44
    y = 14
    _, y1 = cv.box(330, y, 220, h, "X", btc, "tensor")
    y = y1 + gap
    for x, name in ((xq, "Q"), (xk, "K"), (xv, "V")):
        cv.line([(330, y1), (330, y1 + 8), (x, y1 + 8), (x, y)])
        cv.box(x, y, 190, h, f"W_{name} = nn.Linear", f"{c} → {c}", "linear")
    y2 = y + h
    y = y2 + gap
    for x, name in ((xq, "Q"), (xk, "K"), (xv, "V")):
        cv.line([(x, y2), (x, y)])
        cv.box(x, y, 190, h, f"{name}: view + transpose", heads, "op")
    y3 = y + h
    y = y3 + gap
    cv.line([(xq, y3), (xq, y3 + 8), (mid - 20, y3 + 8), (mid - 20, y)])
    cv.line([(xk, y3), (xk, y3 + 8), (mid + 20, y3 + 8), (mid + 20, y)])
    steps = [("Q · Kᵀ / √hs", tt, "op")]
    if causal:
        steps.append(("causal mask: −∞ above the diagonal", tt, "op"))
    steps.append(("softmax over the keys (rows sum to 1)", tt, "op"))
    if dropout:
        steps.append(("dropout on the weights (training)", tt, "op"))
    for k, (label, sub, kind) in enumerate(steps):
        if k:
            cv.line([(mid, y - gap), (mid, y)])
        cv.box(mid, y, 330, h, label, sub, kind)
        y += h + gap
    y_w = y - gap  # bottom of the weights
    y_av = y
    cv.line([(mid, y_w), (mid, y_av)])
    cv.line([(xv, y3), (xv, y_av)])  # V comes down its own column
    cv.box(330, y_av, 500, h, "weights · V", heads, "op")
    y = y_av + h + gap
    cv.line([(330, y - gap), (330, y)])
    cv.box(330, y, 420, h, "concat heads: transpose(1, 2) + view", btc, "op")
    y += h + gap
    cv.line([(330, y - gap), (330, y)])
    cv.box(330, y, 220, h, "W_O = nn.Linear", f"{c} → {c}", "linear")
    y += h + gap
    cv.line([(330, y - gap), (330, y)])
    cv.box(330, y, 220, h, "Y", btc, "tensor")
    cv.height = int(y + h + 14)
    return cv.svg()


def transformer_block(*, norm: str = "pre", C: int | str | None = None) -> str:
    """One GPT block and its residual stream.

    ``norm="pre"`` (GPT-2): ``x = x + attn(ln_1(x))``, then ``x = x + mlp(ln_2(x))`` — the
    stream itself is never normalised. ``norm="post"`` (the 2017 transformer):
    ``x = ln_1(x + attn(x))``, then ``x = ln_2(x + mlp(x))`` — a LayerNorm on the stream.
    """
    check_choice("norm", norm, ("pre", "post"))
    c = _dim("C", C, "C")
    c4 = str(4 * int(c)) if c.isdigit() else f"4{c}"
    shape = f"(B, T, {c})"
    pre = norm == "pre"
    title = ("A pre-norm transformer block (GPT-2) and its residual stream" if pre
             else "A post-norm transformer block (2017) and its residual stream")
    cv = _Canvas(640, 0, title)
    xs, xb = 150, 420  # the stream's column, the branches' column
    h = 42
    cv.box(xs, 12, 200, h, "x", shape, "tensor")
    stream_top = y = 12 + h
    cv.text(xs - 12, y + 40, "residual", size=12, anchor="end", fill=MUTED)
    cv.text(xs - 12, y + 55, "stream", size=12, anchor="end", fill=MUTED)
    sublayers = (("ln_1", "attn: CausalSelfAttention", f"{shape} → {shape}", "op",
                  "x + attn(ln_1(x))" if pre else "ln_1(x + attn(x))"),
                 ("ln_2", "mlp: Linear → GELU → Linear", f"{c} → {c4} → {c}", "mlp",
                  "x + mlp(ln_2(x))" if pre else "ln_2(x + mlp(x))"))
    for ln, label, sig, kind, formula in sublayers:
        y_branch = y + 24  # the branch leaves the stream here ...
        cv.line([(xs, y_branch), (xb, y_branch), (xb, y_branch + 18)])
        y = y_branch + 18
        if pre:  # ... and is normalised on its way in: the stream itself is not
            cv.box(xb, y, 250, 34, f"{ln}: LayerNorm({c})", None, "norm")
            cv.line([(xb, y + 34), (xb, y + 52)])
            y += 52
        cv.box(xb, y, 300, h, label, sig, kind)
        y_plus = y + h + 26  # ... and is added back to the stream here
        cv.line([(xb, y + h), (xb, y_plus), (xs + 12, y_plus)])
        cv.text((xs + xb) / 2 + 10, y_plus - 7, formula, size=11.5, mono=True, fill=MUTED)
        cv.plus(xs, y_plus)
        y = y_plus + 11
        if not pre:  # post-norm: a LayerNorm sits on the stream itself
            cv.box(xs, y + 18, 200, 34, f"{ln}: LayerNorm({c})", None, "norm")
            y += 52
    y_out = y + 26
    # the stream: one thick line from x to out, under the boxes and the ⊕s drawn above
    cv.parts.insert(0, f'<polyline points="{_num(xs)},{_num(stream_top)} {_num(xs)},'
                       f'{_num(y_out - 12)}" fill="none" stroke="#9ca3af" stroke-width="4"/>')
    cv.line([(xs, y_out - 14), (xs, y_out)])
    cv.box(xs, y_out, 200, h, "out", shape, "tensor")
    cv.height = int(y_out + h + 14)
    return cv.svg()


def gpt_stack(*, n_layer: int | str | None = None, vocab_size: int | str | None = None,
              block_size: int | str | None = None, n_embd: int | str | None = None) -> str:
    """The GPT: token and position embeddings → ``n_layer`` blocks → ``ln_f`` → the head (tied
    to the token embeddings) → logits → the loss. Sizes are symbols or ints."""
    L = _dim("n_layer", n_layer, "L")
    V, T, C = _dim("vocab_size", vocab_size, "V"), _dim("block_size", block_size, "T"), \
        _dim("n_embd", n_embd, "C")
    cv = _Canvas(660, 0, "The GPT stack: embeddings, blocks, final LayerNorm, tied head")
    xm, xa = 300, 480  # the main column; the shape annotations start at xa
    h, gap = 40, 18

    def shape(y: float, s: str) -> None:
        cv.text(xa, y + h / 2 + 4, s, size=12, anchor="start", mono=True, fill=MUTED)

    y = 12
    cv.box(xm, y, 240, h, "idx: token ids", None, "tensor")
    shape(y, "(B, T)")
    y += h + gap
    cv.line([(xm - 60, y - gap), (xm - 60, y - 6), (180, y - 6), (180, y)])
    cv.line([(xm + 60, y - gap), (xm + 60, y - 6), (400, y - 6), (400, y)])
    cv.box(180, y, 200, h, "wte: Embedding", f"{V} × {C}", "linear")
    cv.box(400, y, 200, h, "wpe: Embedding", f"{T} × {C}", "linear")
    y_wte = y
    y += h + 26
    cv.line([(180, y - 26), (180, y), (xm - 11, y)])
    cv.line([(400, y - 26), (400, y), (xm + 11, y)])
    cv.plus(xm, y)
    cv.text(xm, y - 16, "token + position", size=11.5, fill=MUTED)
    shape(y - h / 2, f"(B, T, {C})")
    y += 11 + gap
    cv.line([(xm, y - gap), (xm, y)])
    cv.box(xm, y, 240, 34, "drop: Dropout", None, "op")
    y += 34 + gap
    blocks = [f"h[{i}]: Block" for i in range(3)] if not L.isdigit() or int(L) > 3 else \
        [f"h[{i}]: Block" for i in range(int(L))]
    if not L.isdigit() or int(L) > 3:
        last = f"h[{int(L) - 1}]: Block" if L.isdigit() else f"h[{L}−1]: Block"
        blocks = blocks[:2] + ["⋮"] + [last]
    y_blocks = y
    for k, label in enumerate(blocks):
        cv.line([(xm, y - gap), (xm, y)])
        if label == "⋮":
            cv.text(xm, y + 18, "⋮", size=18, bold=True)
            y += 26 + gap
            continue
        cv.box(xm, y, 240, h, label, "x + attn, x + mlp", "mlp")
        if k == 0:
            shape(y, f"(B, T, {C})")
        y += h + gap
    cv.text(xm - 132, (y_blocks + y - gap) / 2 + 4, f"{L} blocks", size=12.5, anchor="end",
            fill=MUTED)
    cv.line([(xm, y - gap), (xm, y)])
    cv.box(xm, y, 240, 34, f"ln_f: LayerNorm({C})", None, "norm")
    y += 34 + gap
    cv.line([(xm, y - gap), (xm, y)])
    cv.box(xm, y, 240, h, "lm_head: Linear", f"{C} → {V}, no bias", "linear")
    y_head = y
    shape(y, f"(B, T, {V})")
    # weight tying: the head's weight is wte's weight
    cv.line([(xm - 120, y_head + h / 2), (40, y_head + h / 2), (40, y_wte + h / 2),
             (80, y_wte + h / 2)], dash=True, stroke="#2563eb")
    cv.text(48, (y_head + y_wte) / 2 + h / 2 - 8, "one weight,", size=12, anchor="start",
            fill="#2563eb")
    cv.text(48, (y_head + y_wte) / 2 + h / 2 + 8, "tied", size=12, anchor="start",
            fill="#2563eb")
    y += h + gap
    cv.line([(xm, y - gap), (xm, y)])
    cv.box(xm, y, 240, h, "logits", "scores of the next token", "tensor")
    y += h + gap
    cv.line([(xm, y - gap), (xm, y)])
    cv.box(xm, y, 320, h, "cross-entropy with targets", "(B, T) → loss, a number", "op")
    cv.height = int(y + h + 14)
    return cv.svg()


def kv_cache(*, t: int = 6) -> str:
    """Generating token ``t + 1`` of one layer, without and with a KV cache.

    Without a cache every step runs all ``t`` tokens through the layer and recomputes every key
    and value. With a cache the keys and values of tokens ``1 … t−1`` are read back (they never
    change: a token's key and value depend only on it and the tokens before it) and only the
    newest token is computed and appended.
    """
    t = check_int("t", t, min=2, max=10)
    cv = _Canvas(720, 0, "The KV cache: what is stored and what is computed at each step")
    cw, ch, x0 = 48, 26, 150
    y = 10

    def panel(y: float, title: str, cached: bool, work: str) -> float:
        cv.text(16, y + 16, title, size=13.5, anchor="start", bold=True)
        y += 30
        for row, name in ((0, "k"), (1, "v")):
            cv.text(x0 - 14, y + row * (ch + 6) + ch / 2 + 4.5, f"{name} (keys)" if name == "k"
                    else f"{name} (values)", size=12, anchor="end", fill=MUTED)
            for i in range(t):
                new = i == t - 1
                kind = "computed" if (new or not cached) else "stored"
                x = x0 + i * (cw + 8)
                cv.rect(x, y + row * (ch + 6), cw, ch, kind, rx=4)
                cv.text(x + cw / 2, y + row * (ch + 6) + ch / 2 + 4.5, f"{name}{i + 1}",
                        size=12, mono=True)
        y_tok = y + 2 * (ch + 6) + 4
        cv.text(x0 - 14, y_tok + ch / 2 + 4.5, "tokens", size=12, anchor="end", fill=MUTED)
        for i in range(t):
            x = x0 + i * (cw + 8)
            kind = "computed" if (i == t - 1 or not cached) else "tensor"
            cv.rect(x, y_tok, cw, ch, kind, rx=4, dash=cached and i < t - 1)
            cv.text(x + cw / 2, y_tok + ch / 2 + 4.5, f"x{i + 1}", size=12, mono=True)
        xq = x0 + (t - 1) * (cw + 8) + cw + 26
        cv.rect(xq, y, cw, ch, "computed", rx=4)
        cv.text(xq + cw / 2, y + ch / 2 + 4.5, f"q{t}", size=12, mono=True)
        cv.line([(xq, y + ch / 2), (xq - 20, y + ch / 2)])
        cv.text(xq + cw + 10, y + ch / 2 + 4.5, f"q{t} · k1…k{t}", size=12, anchor="start",
                mono=True, fill=MUTED)
        cv.text(xq + cw + 10, y + ch + 6 + ch / 2 + 4.5, f"weights · v1…v{t}", size=12,
                anchor="start", mono=True, fill=MUTED)
        cv.text(x0, y_tok + ch + 22, work, size=12, anchor="start", fill=MUTED)
        return y_tok + ch + 34

    y = panel(y, f"Without a cache: step {t} recomputes all {t} tokens", False,
              f"all {t} tokens go through every layer again: their k, v are recomputed")
    y = panel(y + 6, f"With a KV cache: step {t} computes one token", True,
              f"only x{t} goes through the layers; k1…k{t - 1}, v1…v{t - 1} are read back, "
              f"k{t}, v{t} appended")
    # legend
    y += 4
    for i, (kind, label) in enumerate((("computed", "computed at this step"),
                                       ("stored", "stored in the cache, read back"))):
        x = 16 + i * 260
        cv.rect(x, y, 22, 16, kind, rx=3)
        cv.text(x + 30, y + 12.5, label, size=12, anchor="start")
    y += 30
    cv.text(16, y + 4, "cache size per sequence: 2 · n_layer · T · n_embd · bytes per number",
            size=12.5, anchor="start", mono=True)
    cv.height = int(y + 18)
    return cv.svg()


# ---------------------------------------------------------------------------------------------
# Display: the SVG, and a PNG of it for notebooks that are not trusted
# ---------------------------------------------------------------------------------------------

_FALLBACK = {"ᵀ": "^T", "√": "sqrt ", "→": "->", "×": "x", "−": "-", "⋮": ":",
             "…": "...", "·": "*"}
_FONT_FILES = {(False, False): ("DejaVuSans.ttf", "Arial.ttf", "Verdana.ttf"),
               (True, False): ("DejaVuSans-Bold.ttf", "Arial Bold.ttf", "arialbd.ttf"),
               (False, True): ("DejaVuSansMono.ttf", "Menlo.ttc", "consola.ttf"),
               (True, True): ("DejaVuSansMono-Bold.ttf", "Menlo.ttc", "consolab.ttf")}
_fonts: dict = {}


def _font(size: float, bold: bool, mono: bool):
    from PIL import ImageFont

    key = (round(size * 4) / 4, bold, mono)
    if key not in _fonts:
        font = None
        for name in _FONT_FILES[(bold, mono)]:
            try:
                font = ImageFont.truetype(name, key[0])
                break
            except OSError:
                continue
        if font is None:
            font = ImageFont.load_default(size=key[0])  # Pillow's own font, Latin only
        missing = bytes(font.getmask("\uffff"))

        def ok(ch: str) -> bool:
            return ch.isascii() or bytes(font.getmask(ch)) != missing
        _fonts[key] = (font, ok)
    return _fonts[key]


def _color(value: str | None) -> str | None:
    return None if value in (None, "none") else value


def _parse_svg(svg: str) -> ET.Element:
    try:
        root = ET.fromstring(svg)
    except ET.ParseError as err:
        raise ValueError(f"svg must be well-formed XML: {err}") from err
    if root.tag != f"{{{SVG_NS}}}svg":
        raise ValueError(f"svg must have an <svg> root in the SVG namespace, got {root.tag!r}")
    return root


def to_png(svg: str, *, scale: float = 2.0) -> bytes:
    """Rasterise an SVG written by this module into PNG bytes, ``scale`` pixels per unit.

    Understands the elements this module writes (``rect``, ``polyline``, ``polygon``,
    ``circle``, ``text``, ``title``) and nothing else: another element is a ``ValueError``.
    Needs Pillow; text uses DejaVu Sans where it is installed, else Pillow's own font (glyphs it
    lacks, such as ``√``, are then spelt in ASCII).
    """
    check_str("svg", svg, empty=False)
    check_number("scale", scale, min=0.25, max=8.0)
    try:
        from PIL import Image, ImageDraw
    except ImportError as err:  # pragma: no cover - Pillow is a dependency
        raise ImportError("to_png needs Pillow: pip install pillow") from err
    root = _parse_svg(svg)
    width, height = float(root.get("width", 0)), float(root.get("height", 0))
    if width <= 0 or height <= 0:
        raise ValueError(f"svg must have a positive width and height, got {width} × {height}")
    s = scale
    img = Image.new("RGB", (round(width * s), round(height * s)), "#ffffff")
    draw = ImageDraw.Draw(img)

    def pts(text: str) -> list[tuple[float, float]]:
        out = []
        for pair in text.split():
            x, y = pair.split(",")
            out.append((float(x) * s, float(y) * s))
        return out

    def dashed(points: list[tuple[float, float]], fill: str, w: int) -> None:
        on, off = 5 * s, 4 * s
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            length = math.hypot(x1 - x0, y1 - y0)
            d = 0.0
            while d < length:
                e = min(d + on, length)
                draw.line([(x0 + (x1 - x0) * d / length, y0 + (y1 - y0) * d / length),
                           (x0 + (x1 - x0) * e / length, y0 + (y1 - y0) * e / length)],
                          fill=fill, width=w)
                d = e + off

    for el in root:
        tag = el.tag.removeprefix(f"{{{SVG_NS}}}")
        a = el.attrib
        sw = max(1, round(float(a.get("stroke-width", 1)) * s))
        if tag == "title":
            continue
        if tag == "rect":
            x, y = float(a["x"]) * s, float(a["y"]) * s
            box = [x, y, x + float(a["width"]) * s, y + float(a["height"]) * s]
            stroke = _color(a.get("stroke")) if float(a.get("stroke-width", 1)) > 0 else None
            dash = "stroke-dasharray" in a
            draw.rounded_rectangle(box, radius=float(a.get("rx", 0)) * s,
                                   fill=_color(a.get("fill")), outline=None if dash else stroke,
                                   width=sw)
            if dash and stroke:
                x0, y0, x1, y1 = box
                dashed([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], stroke, sw)
        elif tag == "polyline":
            p = pts(a["points"])
            if "stroke-dasharray" in a:
                dashed(p, a["stroke"], sw)
            else:
                draw.line(p, fill=a["stroke"], width=sw, joint="curve")
        elif tag == "polygon":
            draw.polygon(pts(a["points"]), fill=_color(a.get("fill")))
        elif tag == "circle":
            cx, cy, r = (float(a[k]) * s for k in ("cx", "cy", "r"))
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_color(a.get("fill")),
                         outline=_color(a.get("stroke")), width=sw)
        elif tag == "text":
            bold = a.get("font-weight") == "bold"
            mono = "Mono" in a.get("font-family", "")
            font, ok = _font(float(a.get("font-size", 13)) * s, bold, mono)
            text = "".join(ch if ok(ch) else _FALLBACK.get(ch, "?") for ch in (el.text or ""))
            anchor = {"start": "ls", "middle": "ms", "end": "rs"}[a.get("text-anchor", "start")]
            draw.text((float(a["x"]) * s, float(a["y"]) * s), text, font=font,
                      fill=a.get("fill", INK), anchor=anchor)
        else:
            raise ValueError(f"svg holds a <{tag}> element, which to_png does not draw")
    buf = io.BytesIO()
    img.quantize(colors=64, dither=Image.Dither.NONE).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


@dataclass(frozen=True)
class Diagram:
    """An SVG that a notebook displays as itself and as a PNG (see the module's docstring)."""

    svg: str
    name: str

    def _repr_mimebundle_(self, include=None, exclude=None):
        root = ET.fromstring(self.svg)
        width, height = int(float(root.get("width"))), int(float(root.get("height")))
        data = {"image/svg+xml": self.svg, "text/plain": f"<diagram: {self.name}>"}
        meta = {}
        try:
            png = to_png(self.svg)
        except ImportError:  # pragma: no cover - without Pillow: the SVG alone
            png = None
        if png is not None:
            data["image/png"] = base64.b64encode(png).decode("ascii")
            meta["image/png"] = {"width": width, "height": height}
        return data, meta


def show(svg: str) -> Diagram:
    """Wrap SVG text from this module for display: a notebook shows the SVG, and the PNG where
    it does not draw the SVG (JupyterLab, for a notebook it does not trust)."""
    check_str("svg", svg, empty=False)
    root = _parse_svg(svg)
    title = root.find(f"{{{SVG_NS}}}title")
    return Diagram(svg, title.text if title is not None and title.text else "diagram")
