"""llmcourse.diagrams: well-formed SVG with its labels, laid out inside the canvas, and a PNG of it.

The XML parser is the reference for well-formedness; Pillow decodes the PNG; DejaVu Sans's own
metrics (where the font is installed) check that every label fits in its box. The real browser
check (JupyterLab drawing them from the executed chapters) is tests/test_browser_diagrams.py.
"""

from __future__ import annotations

import base64
import io
import re
import xml.etree.ElementTree as ET

import pytest

from llmcourse import diagrams

NS = "{http://www.w3.org/2000/svg}"
ALL = {
    "attention_flow": diagrams.attention_flow,
    "transformer_block": diagrams.transformer_block,
    "gpt_stack": diagrams.gpt_stack,
    "kv_cache": diagrams.kv_cache,
}


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def _texts(svg: str) -> list[str]:
    return [el.text or "" for el in _parse(svg).iter(f"{NS}text")]


@pytest.mark.parametrize("name", ALL)
def test_well_formed_svg_with_a_title_and_nothing_external(name):
    svg = ALL[name]()
    root = _parse(svg)
    w, h = float(root.get("width")), float(root.get("height"))
    assert w >= 400 and h >= 200
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    title = root.find(f"{NS}title")
    assert title is not None and len(title.text) > 10
    assert root.get("aria-label") == title.text
    assert not re.search(r"<script|href=|url\(|@import|<foreignObject|<image", svg)
    tags = {el.tag.removeprefix(NS) for el in root.iter()} - {"svg"}
    assert tags <= {"title", "rect", "polyline", "polygon", "circle", "text"}


@pytest.mark.parametrize("name", ALL)
def test_everything_lies_inside_the_canvas(name):
    root = _parse(ALL[name]())
    w, h = float(root.get("width")), float(root.get("height"))
    for el in root.iter():
        tag = el.tag.removeprefix(NS)
        if tag == "rect":
            x, y = float(el.get("x")), float(el.get("y"))
            assert 0 <= x and x + float(el.get("width")) <= w, el.attrib
            assert 0 <= y and y + float(el.get("height")) <= h, el.attrib
        elif tag in ("text", "circle"):
            x = float(el.get("x", el.get("cx")))
            y = float(el.get("y", el.get("cy")))
            assert 0 <= x <= w and 0 <= y <= h, (tag, el.attrib, el.text)
        elif tag in ("polyline", "polygon"):
            for pair in el.get("points").split():
                x, y = map(float, pair.split(","))
                assert -1 <= x <= w + 1 and -1 <= y <= h + 1, el.attrib


def _font_or_skip(bold: bool, mono: bool, size: float):
    from PIL import ImageFont

    name = {(False, False): "DejaVuSans.ttf", (True, False): "DejaVuSans-Bold.ttf",
            (False, True): "DejaVuSansMono.ttf", (True, True): "DejaVuSansMono-Bold.ttf"}
    try:
        return ImageFont.truetype(name[(bold, mono)], size)
    except OSError:
        pytest.skip("DejaVu fonts are not installed: label widths cannot be measured")


@pytest.mark.parametrize("name", ALL)
def test_every_label_fits_in_its_box(name):
    """Each text drawn inside a rect (DejaVu Sans, the first font the SVG asks for) fits in it
    with 4 px to spare on each side."""
    root = _parse(ALL[name]())
    rects = [tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
             for r in root.iter(f"{NS}rect")][1:]  # [0] is the white background
    checked = 0
    for el in root.iter(f"{NS}text"):
        x, y = float(el.get("x")), float(el.get("y"))
        inside = [r for r in rects if r[0] <= x <= r[0] + r[2] and r[1] <= y <= r[1] + r[3]]
        if not inside:
            continue
        rx, _, rw, _ = min(inside, key=lambda r: r[2] * r[3])
        font = _font_or_skip(el.get("font-weight") == "bold", "Mono" in el.get("font-family"),
                             float(el.get("font-size")))
        width = font.getlength(el.text)
        left = {"start": x, "middle": x - width / 2, "end": x - width}[el.get("text-anchor")]
        assert rx + 4 <= left and left + width <= rx + rw - 4, (el.text, rx, rw, left, width)
        checked += 1
    assert checked >= 8


def test_attention_flow_labels_and_shapes():
    texts = _texts(diagrams.attention_flow())
    for label in ("X", "W_Q = nn.Linear", "W_K = nn.Linear", "W_V = nn.Linear",
                  "W_O = nn.Linear", "Q · Kᵀ / √hs", "causal mask: −∞ above the diagonal",
                  "weights · V", "concat heads: transpose(1, 2) + view", "Y"):
        assert label in texts, label
    assert "(B, nh, T, hs)" in texts and "(B, nh, T, T)" in texts and "(B, T, C)" in texts
    assert any(t.startswith("softmax") for t in texts)
    assert any(t.startswith("dropout") for t in texts)


def test_attention_flow_with_numbers_and_options():
    texts = _texts(diagrams.attention_flow(B=2, T=8, C=64, n_head=4))
    assert "(2, 4, 8, 16)" in texts and "(2, 4, 8, 8)" in texts and "(2, 8, 64)" in texts
    assert "64 → 64" in texts
    texts = _texts(diagrams.attention_flow(causal=False, dropout=False))
    assert not any("mask" in t or "dropout" in t for t in texts)
    assert any(t.startswith("softmax") for t in texts)
    # a symbol is escaped, and comes back intact from the parser
    assert "(B, <t>, C)" in _texts(diagrams.attention_flow(T="<t>"))


def test_transformer_block_pre_and_post_norm():
    pre = _texts(diagrams.transformer_block())
    assert {"ln_1: LayerNorm(C)", "ln_2: LayerNorm(C)", "x + attn(ln_1(x))",
            "x + mlp(ln_2(x))", "residual", "stream"} <= set(pre)
    assert "C → 4C → C" in pre
    post = _texts(diagrams.transformer_block(norm="post", C=768))
    assert {"ln_1(x + attn(x))", "ln_2(x + mlp(x))", "ln_1: LayerNorm(768)"} <= set(post)
    assert "768 → 3072 → 768" in post
    root = _parse(diagrams.transformer_block())
    assert len(list(root.iter(f"{NS}circle"))) == 2  # two residual additions


def test_gpt_stack_blocks_and_tying():
    texts = _texts(diagrams.gpt_stack(n_layer=12, vocab_size=50257, block_size=1024, n_embd=768))
    assert {"h[0]: Block", "h[1]: Block", "⋮", "h[11]: Block", "12 blocks"} <= set(texts)
    assert "50257 × 768" in texts and "1024 × 768" in texts and "768 → 50257, no bias" in texts
    assert "tied" in texts
    two = _texts(diagrams.gpt_stack(n_layer=2))
    assert "h[1]: Block" in two and "⋮" not in two and "h[2]: Block" not in two
    symbolic = _texts(diagrams.gpt_stack())
    assert "h[L−1]: Block" in symbolic and "V × C" in symbolic
    svg = diagrams.gpt_stack()
    assert 'stroke-dasharray' in svg  # the tying is drawn as a dashed line


def test_kv_cache_shows_stored_and_computed():
    svg = diagrams.kv_cache(t=4)
    texts = _texts(svg)
    for i in range(1, 5):
        assert texts.count(f"k{i}") == 2 and texts.count(f"v{i}") == 2  # both panels
    assert "q4" in texts and "k5" not in texts
    assert any("2 · n_layer · T · n_embd" in t for t in texts)
    fills = [r.get("fill") for r in _parse(svg).iter(f"{NS}rect")]
    stored, computed = diagrams.STYLE["stored"][0], diagrams.STYLE["computed"][0]
    # without the cache: 4 k + 4 v + 4 tokens + q computed; with it: 3 k + 3 v stored
    assert fills.count(stored) == 2 * 3 + 1  # + the legend's swatch
    assert fills.count(computed) == (4 + 4 + 4 + 1) + (1 + 1 + 1 + 1) + 1


def test_to_png_draws_the_boxes():
    from PIL import Image

    svg = diagrams.attention_flow()
    png = diagrams.to_png(svg, scale=2)
    img = Image.open(io.BytesIO(png)).convert("RGB")
    root = _parse(svg)
    assert img.size == (2 * int(root.get("width")), 2 * int(root.get("height")))
    fill = diagrams.STYLE["linear"][0]
    want = tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5))
    boxes = [r for r in root.iter(f"{NS}rect") if r.get("fill") == fill]
    assert len(boxes) == 4  # W_Q, W_K, W_V, W_O
    for r in boxes:  # a point inside each box, left of its centred text, has the box's colour
        x = 2 * (float(r.get("x")) + 8)
        y = 2 * (float(r.get("y")) + float(r.get("height")) / 2)
        got = img.getpixel((round(x), round(y)))
        assert max(abs(a - b) for a, b in zip(got, want)) <= 12, (got, want)
    assert img.getpixel((1, 1)) == (255, 255, 255)
    dark = sum(img.convert("L").histogram()[:70])
    assert dark > 2_000  # text and lines were drawn


@pytest.mark.parametrize("name", ALL)
def test_every_diagram_rasterises_with_every_box_in_its_colour(name):
    """to_png understands every element each drawing writes (another would be a ValueError) and
    paints each filled box: a pixel just inside its left edge has the box's fill colour."""
    from PIL import Image

    svg = ALL[name]()
    root = _parse(svg)
    img = Image.open(io.BytesIO(diagrams.to_png(svg, scale=2))).convert("RGB")
    assert img.size == (2 * int(float(root.get("width"))), 2 * int(float(root.get("height"))))
    boxes = [r for r in root.iter(f"{NS}rect")
             if r.get("fill", "none") not in ("none", "#fff", "#ffffff")
             and float(r.get("width")) > 12 and float(r.get("height")) > 12]
    assert boxes
    for r in boxes:
        fill = r.get("fill")
        want = tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5))
        x, y = 2 * (float(r.get("x")) + 3), 2 * (float(r.get("y")) + 3)
        got = img.getpixel((round(x), round(y)))
        assert max(abs(a - b) for a, b in zip(got, want)) <= 12, (name, fill, got)


def test_show_gives_svg_png_and_a_text_fallback():
    from PIL import Image

    d = diagrams.show(diagrams.kv_cache())
    data, meta = d._repr_mimebundle_()
    assert data["image/svg+xml"] == diagrams.kv_cache()
    assert data["text/plain"].startswith("<diagram: The KV cache")
    png = base64.b64decode(data["image/png"])
    assert Image.open(io.BytesIO(png)).format == "PNG"
    root = _parse(data["image/svg+xml"])
    assert meta["image/png"] == {"width": int(root.get("width")),
                                 "height": int(root.get("height"))}


def test_diagrams_are_deterministic():
    for fn in ALL.values():
        assert fn() == fn()
    assert diagrams.to_png(diagrams.gpt_stack()) == diagrams.to_png(diagrams.gpt_stack())


@pytest.mark.parametrize("call, exc, name", [
    (lambda: diagrams.attention_flow(T=0), ValueError, "T"),
    (lambda: diagrams.attention_flow(T=2.5), TypeError, "T"),
    (lambda: diagrams.attention_flow(T=True), TypeError, "T"),
    (lambda: diagrams.attention_flow(B=""), ValueError, "B"),
    (lambda: diagrams.attention_flow(C="channels!"), ValueError, "C"),
    (lambda: diagrams.attention_flow(C=65, n_head=4), ValueError, "n_head"),
    (lambda: diagrams.attention_flow(causal="yes"), TypeError, "causal"),
    (lambda: diagrams.attention_flow(dropout=1), TypeError, "dropout"),
    (lambda: diagrams.transformer_block(norm="sandwich"), ValueError, "norm"),
    (lambda: diagrams.transformer_block(norm=1), TypeError, "norm"),
    (lambda: diagrams.transformer_block(C=-1), ValueError, "C"),
    (lambda: diagrams.gpt_stack(n_layer=0), ValueError, "n_layer"),
    (lambda: diagrams.gpt_stack(vocab_size=[1]), TypeError, "vocab_size"),
    (lambda: diagrams.kv_cache(t=1), ValueError, "t"),
    (lambda: diagrams.kv_cache(t=11), ValueError, "t"),
    (lambda: diagrams.kv_cache(t="6"), TypeError, "t"),
    (lambda: diagrams.to_png(""), ValueError, "svg"),
    (lambda: diagrams.to_png(b"<svg/>"), TypeError, "svg"),
    (lambda: diagrams.to_png("<svg"), ValueError, "svg"),
    (lambda: diagrams.to_png("<html/>"), ValueError, "svg"),
    (lambda: diagrams.to_png('<svg xmlns="http://www.w3.org/2000/svg" width="0" height="5"/>'),
     ValueError, "svg"),
    (lambda: diagrams.to_png('<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">'
                             '<image href="x.png"/></svg>'), ValueError, "svg"),
    (lambda: diagrams.to_png(diagrams.kv_cache(), scale=0), ValueError, "scale"),
    (lambda: diagrams.to_png(diagrams.kv_cache(), scale="2"), TypeError, "scale"),
    (lambda: diagrams.show(5), TypeError, "svg"),
    (lambda: diagrams.show("<p>no svg</p>"), ValueError, "svg"),
    (lambda: diagrams.show("not xml <"), ValueError, "svg"),
])
def test_bad_inputs_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=rf"\b{name}\b"):
        call()
