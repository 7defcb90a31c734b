"""tools/build_book.py: the course as a static book that needs no kernel and no network.

A small made-up course (two chapters, a README, a glossary) checks each rule of the builder;
the real course is then built once and, in headless Chromium (Debian's ``chromium``, as in
tests/test_browser.py), every chapter page must show a figure while every request that is not
to the local server is blocked and reported.
"""

from __future__ import annotations

import base64
import functools
import http.server
import importlib.metadata
import importlib.util
import json
import os
import re
import struct
import sys
import threading
import zlib
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_book", ROOT / "tools" / "build_book.py")
bb = importlib.util.module_from_spec(spec)
sys.modules["build_book"] = bb  # its dataclasses look their module up
spec.loader.exec_module(bb)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true")
PLOTLY_JS = Path(importlib.util.find_spec("plotly").origin).parent / "package_data" / "plotly.min.js"


def _png(width: int, height: int) -> str:
    """A red RGB PNG, base64, written by hand (zlib + CRCs)."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return base64.b64encode(png).decode()


PNG = _png(4, 4)
SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="200" height="120">'
       '<rect width="200" height="120" fill="teal"/></svg>')
BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/x/y/blob/main/chapters/{}.ipynb)")


def _mathjax_installed() -> bool:
    return bb.mathjax_source() is not None


# ---------------------------------------------------------------------------------------------
# a made-up course


def _code(source, outputs, n, tags=()):
    cell = nbformat.v4.new_code_cell(source, execution_count=n, outputs=outputs)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _plotly_figure():
    import plotly.graph_objects as go
    import plotly.io as pio

    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[40.5, 51.25, 62.125], name="scatter-trace"))
    fig.update_layout(title="a scatter plot", height=380)
    return json.loads(pio.to_json(fig))


def write_course(root: Path, numbers=("00", "01")) -> Path:
    """chapters/{00_intro,01_plots}.ipynb, README.md with the chapter table, docs/glossary.md."""
    chapters = root / "chapters"
    chapters.mkdir(parents=True)
    intro, plots = f"{numbers[0]}_intro", f"{numbers[1]}_plots"
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell(f"# Introduction\n\n{BADGE.format(intro)}\n\nThe loss "
                                      "$H(p, q) = -\\sum_x p(x) \\log q(x)$ and a tokenizer."),
        _code("print('hello from intro')", [nbformat.v4.new_output(
            "stream", name="stdout", text="hello from intro\n")], 1),
    ]
    nbformat.write(nb, chapters / f"{intro}.ipynb")
    nb = nbformat.v4.new_notebook()
    attachment = nbformat.v4.new_markdown_cell("A scatter plot, an attached picture and a map:"
                                               "\n\n![attached](attachment:dot.png)\n\n"
                                               "![the map](../assets/map.svg)")
    (root / "assets").mkdir()
    (root / "assets" / "map.svg").write_text(SVG)
    attachment["attachments"] = {"dot.png": {"image/png": PNG}}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Plots\n\nSee [the introduction]"
                                      f"({intro}.ipynb#Introduction)."),
        attachment,
        _code("fig", [nbformat.v4.new_output("display_data", data={
            "application/vnd.plotly.v1+json": _plotly_figure(), "text/plain": ["Figure"]})], 1),
        _code("box", [nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "abc", "version_major": 2,
                                                         "version_minor": 0},
            "text/plain": ["VBox(children=(Text(value='x'),))"]})], 2),
        _code("SECRET_INPUT = 1\nprint('output of a hidden input')", [nbformat.v4.new_output(
            "stream", name="stdout", text="output of a hidden input\n")], 3, tags=["hide-input"]),
        _code("REMOVED_CELL = 1", [nbformat.v4.new_output(
            "stream", name="stdout", text="REMOVED_OUTPUT\n")], 4, tags=["remove-cell"]),
        _code("png", [nbformat.v4.new_output("display_data", data={
            "image/png": PNG, "text/plain": ["<Figure>"]})], 5),
    ]
    nbformat.write(nb, chapters / f"{plots}.ipynb")
    (root / "README.md").write_text(
        "# minicourse — a test\n\nAn introduction paragraph with **bold**.\n\n## Chapters\n\n"
        "| # | Chapter | What you learn | Colab |\n|---|---|---|---|\n"
        f"| {numbers[0]} | [Intro](chapters/{intro}.ipynb) | the `loss` | {BADGE.format(intro)} |\n"
        f"| {numbers[1]} | [Plots](chapters/{plots}.ipynb) | figures | {BADGE.format(plots)} |\n"
        "\n## Later\n\ntext\n", encoding="utf-8")
    write_glossary(root, [("Tokenizer", "分词器", "text to ids", "intro"),
                          ("Scatter plot", "散点图", "points", "plots")])
    return root


def write_glossary(root: Path, rows) -> None:
    (root / "docs").mkdir(exist_ok=True)
    body = "\n".join(f"| {a} | {b} | {c} | `{d}` |" for a, b, c, d in rows)
    (root / "docs" / "glossary.md").write_text(
        "# Glossary · 术语表\n\nIntro text.\n\n## Terms\n\n| Term | 中文 | Meaning | Chapter |\n"
        f"|---|---|---|---|\n{body}\n", encoding="utf-8")


def build(root: Path, out: Path | None = None, **kw):
    out = out or root / "book"
    return bb.build_book(out, chapters_dir=root / "chapters", readme=root / "README.md",
                         glossary=root / "docs" / "glossary.md", **kw)


class Fetches(HTMLParser):
    """Every URL a page would load by itself (script/link/img/iframe/... sources)."""

    TAGS = {"script": "src", "link": "href", "img": "src", "iframe": "src", "source": "src",
            "video": "src", "audio": "src", "embed": "src", "object": "data"}

    def __init__(self):
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in self.TAGS and attrs.get(self.TAGS[tag]):
            self.urls.append((tag, attrs[self.TAGS[tag]]))
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def parse(page: Path) -> Fetches:
    p = Fetches()
    p.feed(page.read_text(encoding="utf-8"))
    return p


def is_remote(url: str) -> bool:
    return bool(re.match(r"^(?:[a-z][a-z0-9+.-]*:)?//", url, re.IGNORECASE))


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    root = write_course(tmp_path_factory.mktemp("course"))
    return root, build(root)


# ---------------------------------------------------------------------------------------------
# the builder's rules, on the made-up course


def test_pages_navigation_and_home_page(mini):
    root, report = mini
    out = report.out
    assert sorted(p.name for p in out.glob("*.html")) == [
        "00_intro.html", "01_plots.html", "glossary.html", "index.html"]
    index = (out / "index.html").read_text()
    assert "An introduction paragraph with <strong>bold</strong>" in index
    rows = re.findall(r'<tr id="chapter-(\w+)"><td>(\d\d)</td><td><a href="([^"]+)">([^<]+)</a>',
                      index)
    assert rows == [("intro", "00", "00_intro.html", "Intro"),
                    ("plots", "01", "01_plots.html", "Plots")]
    assert "<code>loss</code>" in index and "Colab" not in index  # the badge column is dropped
    plots = parse(out / "01_plots.html")
    # prev/next: index <- 00 <- 01 -> glossary, and home + glossary on every page, top and bottom
    assert plots.links.count("index.html") == 2 and plots.links.count("glossary.html") == 4
    assert "00_intro.html" in plots.links
    assert "index.html" in parse(out / "00_intro.html").links
    # a link to a chapter notebook goes to its page
    assert "00_intro.html#Introduction" in plots.links
    assert "<title>01 · Plots — llmcourse</title>" in (out / "01_plots.html").read_text()


def test_figures_are_kept_and_plotly_is_drawn_by_one_local_copy(mini):
    root, report = mini
    out = report.out
    page = (out / "01_plots.html").read_text()
    # plotly JSON -> a div drawn by Plotly.newPlot with the stored data, id stable across builds
    assert 'id="fig-plots-2-0"' in page and 'Plotly.newPlot(' in page
    assert "[40.5,51.25,62.125]" in page.replace(" ", "") and "a scatter plot" in page
    assert "application/vnd.plotly.v1+json" not in page
    assert page.count('<script src="static/plotly.min.js"></script>') == 1
    assert (out / "static" / "plotly.min.js").read_bytes() == PLOTLY_JS.read_bytes()
    assert [p.name for p in out.rglob("*plotly*")] == ["plotly.min.js"]
    assert "plotly.js v" not in page  # not inlined
    assert "static/plotly.min.js" not in (out / "00_intro.html").read_text()  # only where needed
    # the PNG output, the markdown attachment and the local SVG file are embedded
    assert page.count(f"data:image/png;base64,{PNG}") == 2
    svg = base64.b64encode(SVG.encode()).decode()
    assert re.search(r'<img alt="the map" src="data:image/svg\+xml;base64,' + re.escape(svg), page)
    assert report.figures == {"00_intro.html": 0, "01_plots.html": 4}
    assert report.without_figures == ["00_intro.html"]


def test_widgets_tags_and_remote_images(mini):
    root, report = mini
    page = (report.out / "01_plots.html").read_text()
    assert page.count(bb.WIDGET_NOTE) == 1 and "VBox(" not in page
    assert "output of a hidden input" in page and "SECRET_INPUT" not in page  # hide-input
    assert "REMOVED_CELL" not in page and "REMOVED_OUTPUT" not in page  # remove-cell
    intro = (report.out / "00_intro.html").read_text()
    # the Colab badge is a remote image: its alt text stays, still a link to Colab
    assert "colab-badge.svg" not in intro
    assert re.search(r'<a href="https://colab\.research\.google\.com/[^"]+"><span '
                     r'class="book-remote-image">Open In Colab</span></a>', intro)


def test_nothing_is_fetched_from_the_network(mini):
    root, report = mini
    for page in report.out.glob("*.html"):
        fetched = parse(page).urls
        assert fetched, page.name  # the parser sees the stylesheets
        remote = [(tag, url) for tag, url in fetched if is_remote(url)]
        assert remote == [], page.name
        for _, url in fetched:  # every local file a page loads is in the book
            if not url.startswith("data:"):
                assert (report.out / url.split("#")[0]).is_file(), (page.name, url)
    assert bb.CSS_FETCH.search((report.out / "static" / "notebook.css").read_text()) is None


def test_math_is_bundled_or_shown_as_tex(mini, tmp_path):
    root, report = mini
    intro = (report.out / "00_intro.html").read_text()
    assert "$H(p, q) = -\\sum_x p(x) \\log q(x)$" in intro  # left for MathJax, unmangled
    if _mathjax_installed():
        assert report.mathjax
        shipped = report.out / "static" / "mathjax" / "tex-svg-full.js"
        assert shipped.read_bytes() == bb.mathjax_source().read_bytes()
        assert '<script defer="" src="static/mathjax/tex-svg-full.js"></script>' in intro
        assert bb.NO_MATHJAX_NOTE not in intro
    else:
        assert not IN_CI, f"CI must install {bb.MATHJAX_DIST}: the book bundles MathJax"
    plain = build(root, tmp_path / "plain", mathjax=False)
    page = (plain.out / "00_intro.html").read_text()
    assert not plain.mathjax and bb.NO_MATHJAX_NOTE in page and "mathjax" not in page.replace(
        "without MathJax", "").replace("django-static-mathjax", "").lower()
    assert not (plain.out / "static" / "mathjax").exists()


def test_glossary_links_each_term_to_its_chapter(mini):
    root, report = mini
    page = (report.out / "glossary.html").read_text()
    assert report.terms == 2
    assert re.search(r'<tr id="term-tokenizer"><td>Tokenizer</td><td class="book-zh" '
                     r'lang="zh-Hans">分词器</td><td>text to ids</td><td><a class="book-term-'
                     r'chapter" href="00_intro.html">00 · Intro</a>', page)
    assert 'href="01_plots.html">01 · Plots</a>' in page
    assert "<h2>Terms</h2>" in page and "<p>Intro text.</p>" in page


def test_renumbered_chapters_keep_their_glossary_links(tmp_path):
    """Chapters are found by slug: 01_plots -> 07_plots needs no edit of the glossary."""
    root = write_course(tmp_path / "c", numbers=("00", "07"))
    report = build(root)
    page = (report.out / "glossary.html").read_text()
    assert 'href="07_plots.html">07 · Plots</a>' in page and "01_plots" not in page
    assert (report.out / "07_plots.html").is_file()


@pytest.mark.parametrize("rows, message", [
    ([("Tokenizer", "分词器", "x", "post_training")], "names chapter 'post_training', which does "
                                                     "not exist"),
    ([("Perplexity", "困惑度", "x", "intro")], "'Perplexity' (looked for ['perplexity']) does "
                                              "not occur in chapter 00_intro.ipynb"),
    ([("Tokenizer", "tokenizer", "x", "intro")], "has no Chinese"),
    ([("Tokenizer", "分词器", "x", "intro"), ("tokenizer", "分词器", "y", "intro")],
     "is already on line"),
    ([("Tokenizer", "分词器", "", "intro")], "4 non-empty cells"),
])
def test_a_bad_glossary_fails_the_build(tmp_path, rows, message):
    root = write_course(tmp_path / "c")
    write_glossary(root, rows)
    with pytest.raises(bb.BookError) as e:
        build(root)
    assert message in str(e.value)
    assert not (root / "book").exists()  # nothing half-built


def test_a_glossary_table_needs_its_header(tmp_path):
    root = write_course(tmp_path / "c")
    (root / "docs" / "glossary.md").write_text("| Term | Chinese |\n|---|---|\n| a | 词 |\n")
    with pytest.raises(bb.BookError, match=r"\| Term \| 中文 \| Meaning \| Chapter \|"):
        build(root)


def _edit_readme(root: Path, old: str, new: str) -> None:
    readme = root / "README.md"
    text = readme.read_text()
    assert old in text
    readme.write_text(text.replace(old, new))


@pytest.mark.parametrize("old, new, message", [
    ("| 01 | [Plots](chapters/01_plots.ipynb) | figures |", "", "no row for 01_plots.ipynb"),
    ("chapters/01_plots.ipynb)", "chapters/01_pictures.ipynb)", "lists chapters/01_pictures"
                                                                ".ipynb, which does not exist"),
    ("| 01 | [Plots]", "| 02 | [Plots]", "says # 02, the file 01"),
    ("## Chapters", "## Contents", "no '## Chapters' heading"),
    ("[Plots](chapters/01_plots.ipynb)", "Plots", "is not [Title](chapters/NN_slug.ipynb)"),
])
def test_the_home_page_must_match_the_chapter_files(tmp_path, old, new, message):
    root = write_course(tmp_path / "c")
    _edit_readme(root, old, new)
    with pytest.raises(bb.BookError) as e:
        build(root)
    assert message in str(e.value)


def test_unexecuted_or_mermaid_chapters_fail(tmp_path):
    root = write_course(tmp_path / "c")
    path = root / "chapters" / "00_intro.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))  # never executed
    nbformat.write(nb, path)
    with pytest.raises(bb.BookError, match=r"00_intro.ipynb: cells \[2\] were never executed"):
        build(root)
    nb.cells[-1] = nbformat.v4.new_markdown_cell("```mermaid\ngraph LR; a-->b\n```")
    nbformat.write(nb, path)
    with pytest.raises(bb.BookError, match="mermaid diagram needs mermaid.js from the network"):
        build(root)


@pytest.mark.parametrize("markdown", ["![gone](../assets/missing.png)",
                                      '<img src="../assets/map.svg">'])
def test_an_image_that_cannot_be_embedded_fails(tmp_path, markdown):
    root = write_course(tmp_path / "c")
    path = root / "chapters" / "00_intro.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell(markdown))
    nbformat.write(nb, path)
    with pytest.raises(bb.BookError, match=r"00_intro.html: the image '../assets/[a-z]+\.[a-z]+' "
                                           "was not found to embed"):
        build(root)


def test_a_page_that_would_fetch_from_the_network_fails(tmp_path):
    root = write_course(tmp_path / "c")
    path = root / "chapters" / "00_intro.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(_code("fig.show('notebook_connected')", [nbformat.v4.new_output(
        "display_data", data={"text/html": '<script src="https://cdn.plot.ly/plotly-3.0.1.min.js">'
                                           "</script>"})], 9))
    nbformat.write(nb, path)
    with pytest.raises(bb.BookError, match=r'00_intro.html: <script src="https://cdn.plot.ly/'):
        build(root)
    with pytest.raises(bb.BookError, match="a stylesheet fetches from the network"):
        bb.check_offline("x.html", "<style>@import url('https://fonts.example/x.css');</style>")
    bb.check_offline("x.html", '<a href="https://example.org">a link is not a fetch</a>')


def test_out_is_rebuilt_but_a_foreign_folder_is_never_emptied(tmp_path):
    root = write_course(tmp_path / "c")
    out = tmp_path / "site"
    build(root, out)
    (out / "stale.html").write_text("old")
    build(root, out)  # a book built here before: emptied and rebuilt
    assert not (out / "stale.html").exists() and (out / "index.html").is_file()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("precious")
    with pytest.raises(ValueError, match="not empty and was not built by build_book.py"):
        build(root, mine)
    assert (mine / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="out must be a folder"):
        build(root, tmp_path / "file")


def test_bad_arguments(tmp_path):
    root = write_course(tmp_path / "c")
    with pytest.raises(TypeError, match="out must be a path"):
        bb.build_book(3)
    with pytest.raises(TypeError, match="out must be a path"):
        bb.build_book(True)
    with pytest.raises(ValueError, match="out must not be empty"):
        bb.build_book("")
    with pytest.raises(TypeError, match="mathjax must be True, False or None"):
        build(root, mathjax="yes")
    with pytest.raises(ValueError, match="readme must be an existing file"):
        bb.build_book(tmp_path / "o", chapters_dir=root / "chapters", readme=root / "nope.md",
                      glossary=root / "docs" / "glossary.md")
    with pytest.raises(ValueError, match="chapters_dir must be a folder"):
        bb.build_book(tmp_path / "o", chapters_dir=root / "nope", readme=root / "README.md",
                      glossary=root / "docs" / "glossary.md")
    (root / "chapters" / "02_Bad-Name.ipynb").write_text("{}")
    with pytest.raises(bb.BookError, match="02_Bad-Name.ipynb: a chapter file is named"):
        build(root)
    with pytest.raises(TypeError, match="readme must be the README's text"):
        bb.parse_chapter_table(b"## Chapters")
    with pytest.raises(TypeError, match="text must be the glossary's markdown"):
        bb.parse_glossary(None, [])
    with pytest.raises(TypeError, match="english must be a term"):
        bb.term_keys(["BPE"])
    with pytest.raises(TypeError, match="page must be HTML"):
        bb.check_offline("x.html", b"<html>")


def test_mathjax_true_without_the_package_is_an_error(tmp_path, monkeypatch):
    root = write_course(tmp_path / "c")
    monkeypatch.setattr(bb, "mathjax_source", lambda: None)
    with pytest.raises(ValueError, match="mathjax=True needs the django-static-mathjax package"):
        build(root, mathjax=True)
    assert not build(root).mathjax  # auto: falls back to TeX source


def test_command_line(tmp_path, capsys):
    root = write_course(tmp_path / "c")
    args = ["--chapters", str(root / "chapters"), "--readme", str(root / "README.md"),
            "--glossary", str(root / "docs" / "glossary.md")]
    assert bb.main(["--out", str(tmp_path / "site"), *args]) == 0
    out = capsys.readouterr().out
    assert "01_plots.html" in out and "4 figure(s)" in out and "without a figure: 00_intro" in out
    write_glossary(root, [("Tokenizer", "分词器", "x", "nope")])
    assert bb.main(["--out", str(tmp_path / "site"), *args]) == 1
    assert "names chapter 'nope', which does not exist" in capsys.readouterr().err


def test_term_keys():
    assert bb.term_keys("Byte-pair encoding (BPE)") == ["bpe", "byte pair encoding"]
    assert bb.term_keys("Query / key / value") == ["query", "key", "value"]
    assert bb.term_keys("Top-p (nucleus sampling)") == ["nucleus sampling", "top p"]


# ---------------------------------------------------------------------------------------------
# the real course


@pytest.fixture(scope="module")
def course_book(tmp_path_factory):
    return bb.build_book(tmp_path_factory.mktemp("real") / "book")


def _plotly_outputs(notebook: Path) -> int:
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return sum("application/vnd.plotly.v1+json" in o.get("data", {})
               for c in nb["cells"] for o in c.get("outputs", []))


@pytest.mark.slow
def test_the_course_book(course_book):
    out = course_book.out
    notebooks = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    assert [n.with_suffix(".html").name for n in notebooks] == list(course_book.figures)
    index = parse(out / "index.html")
    for nb in notebooks:
        page = out / nb.with_suffix(".html").name
        assert page.is_file() and page.name in index.links
        text = page.read_text(encoding="utf-8")
        # every stored plotly figure is drawn (counted from the notebook itself)
        assert text.count('class="plotly-graph-div"') == _plotly_outputs(nb), page.name
        assert "application/vnd.plotly.v1+json" not in text
        assert [u for _, u in parse(page).urls if is_remote(u)] == [], page.name
    assert [p.relative_to(out).as_posix() for p in out.rglob("*plotly*")] == [
        "static/plotly.min.js"]
    assert course_book.terms >= 60
    chapter_links = re.findall(r'<a class="book-term-chapter" href="([^"]+)">',
                               (out / "glossary.html").read_text(encoding="utf-8"))
    assert len(chapter_links) == course_book.terms
    assert all((out / h).is_file() for h in chapter_links)
    for name, size in course_book.pages.items():
        assert size < 2_000_000, (name, size)  # plotly.js and MathJax are not inlined
    print(f"\nbuilt in {course_book.seconds:.1f} s: " + ", ".join(
        f"{n} {s // 1024} KiB" for n, s in course_book.pages.items()))


# ---------------------------------------------------------------------------------------------
# the real course in a real browser


@pytest.fixture(scope="module")
def served_book(course_book):
    handler = functools.partial(_QuietHandler, directory=str(course_book.out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", course_book
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# counts what a reader sees as a figure: a drawn plotly graph, a loaded image or an SVG
# (not MathJax's), at least 100 x 100 CSS pixels
SEEN = """() => {
  const big = el => { const r = el.getBoundingClientRect(); return r.width >= 100 && r.height >= 100; };
  const drawn = gd => gd.querySelector('.main-svg') && big(gd);
  return {
    plots: [...document.querySelectorAll('.js-plotly-plot')].filter(drawn).length,
    undrawn: [...document.querySelectorAll('.plotly-graph-div')].filter(
              gd => !gd.querySelector('.main-svg')).length,
    images: [...document.querySelectorAll('main img')].filter(
              el => el.complete && el.naturalWidth > 0 && big(el)).length,
    svgs: [...document.querySelectorAll('main svg')].filter(
              el => !el.closest('.js-plotly-plot') && !el.closest('mjx-container') && big(el)).length,
    math: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror, [data-mjx-error]').length,
  };
}"""


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.skipif(not Path(CHROMIUM).exists() and not IN_CI,
                    reason=f"{CHROMIUM} is absent: install Debian's chromium "
                           "(apt-get install chromium) to run the real-browser test")
def test_every_chapter_page_shows_a_figure_in_a_browser(served_book, tmp_path):
    assert Path(CHROMIUM).exists(), f"CI must provide {CHROMIUM} (see .ci/run)"
    if IN_CI:
        from playwright import sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    base, book = served_book
    blocked, failed, errors, seen = [], [], [], {}

    def route(r):
        if r.request.url.startswith(base + "/") or r.request.url.startswith("data:"):
            r.continue_()
        else:  # anything else would need the network: refuse it and say so
            blocked.append(r.request.url)
            r.abort()

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 1000})
            context.route("**/*", route)
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
            page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
            for name in ["index.html", *book.figures, "glossary.html"]:
                page.goto(f"{base}/{name}", wait_until="load")
                page.wait_for_function("() => [...document.querySelectorAll('.plotly-graph-div')]"
                                       ".every(gd => gd.querySelector('.main-svg'))")
                if name in book.figures and book.mathjax:  # chapter pages typeset math
                    page.wait_for_function("() => window.MathJax && MathJax.startup &&"
                                           " MathJax.startup.promise")
                    page.evaluate("() => MathJax.startup.promise")
                seen[name] = page.evaluate(SEEN)
                if name == "03_attention.html":
                    page.screenshot(path=str(tmp_path / "03_attention.png"))
            # every link of the glossary (and its navigation) leads to a page of the book
            page.goto(f"{base}/glossary.html", wait_until="load")
            hrefs = page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
            local = sorted({h.split("#")[0] for h in hrefs if h.startswith(base)})
            terms = page.eval_on_selector_all("a.book-term-chapter", "els => els.map(a => a.href)")
            assert len(terms) == book.terms and set(terms) <= set(local)
            for url in local:
                assert context.request.get(url).status == 200, url
            page.locator("a.book-term-chapter", has_text="Attention").first.click()
            page.wait_for_url(re.compile(r"/\d\d_attention\.html$"))
            assert "Attention" in page.title()
        finally:
            browser.close()
    report = "\n".join(f"  {n:45s} {s}" for n, s in seen.items())
    print(f"\nwhat the browser saw:\n{report}\nscreenshot: {tmp_path / '03_attention.png'}")
    assert blocked == [], f"pages asked the network for: {blocked}"
    assert failed == [], f"local requests that failed: {failed}"
    assert errors == [], f"JavaScript errors: {errors}"
    for name, s in seen.items():
        assert s["undrawn"] == 0, f"{name}: plotly divs not drawn: {s}"
        assert s["mathErrors"] == 0, f"{name}: MathJax errors: {s}"
    if book.mathjax:
        assert seen["06_cross_entropy_and_optimization.html"]["math"] > 0
    lacking = [n for n in book.figures if not (seen[n]["plots"] + seen[n]["images"]
                                               + seen[n]["svgs"])]
    assert lacking == [], f"chapter pages without a visible figure: {lacking}\n{report}"
