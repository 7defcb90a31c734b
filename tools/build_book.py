"""Build the course as a static book: one HTML page per executed chapter, a home page, a glossary.

    python tools/build_book.py --out _build/book

Reads the stored outputs of every ``chapters/NN_slug.ipynb`` (nothing is executed) and writes a
site that needs no kernel and no network:

* ``index.html``: the README's chapter table (generated, so it cannot drift), each row linked to
  its page; the build fails when the table and the chapter files disagree.
* ``NN_slug.html``: the chapter through nbconvert's HTMLExporter (lab template). Plotly outputs
  (``application/vnd.plotly.v1+json``, which nbconvert alone drops) become plotly divs drawn by
  ONE local ``static/plotly.min.js`` copied from the installed ``plotly``; images (PNG/SVG/JPEG
  outputs, markdown attachments, local markdown images) are embedded; widget views, which have
  no stored state, become a note "interactive widget: run the notebook"; remote images (the
  Colab badge) become their alt text, still linked. Cell tags: ``remove-cell`` drops the cell,
  ``hide-input``/``remove-input`` drop the input and keep the output, ``remove-output`` drops
  the outputs.
* ``glossary.html``: ``docs/glossary.md``'s terms with their Chinese equivalents, each linked to
  the chapter that teaches it. A term names its chapter by *slug* (``attention``, not ``03``),
  resolved against the chapter files at build time, so renumbering needs no edit; the build
  fails on an unknown slug, or when the term does not occur in that chapter's text.
* Math: MathJax 3 (``tex-svg-full.js``, self-contained: no fonts or extensions fetched) copied
  from the ``django-static-mathjax`` distribution when it is installed; without it (or with
  ``--no-mathjax``) math stays TeX source and every page says so.

Every page carries a navigation bar (home, previous, next, glossary). The build fails when any
page would load a script, stylesheet, image or frame from the network.
"""

from __future__ import annotations

import argparse
import base64
import html
import importlib.metadata
import json
import mimetypes
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_FILE = re.compile(r"^(\d\d)_([a-z0-9]+(?:_[a-z0-9]+)*)\.ipynb$")
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
WIDGET_NOTE = "interactive widget: run the notebook"
MATHJAX_DIST = "django-static-mathjax"
MATHJAX_FILE = "es5/tex-svg-full.js"
MARKER = ".llmcourse-book"  # marks a folder this script built, so a rebuild may empty it
TAGS = {"remove_cell_tags": ("remove-cell",),
        "remove_input_tags": ("hide-input", "remove-input"),
        "remove_all_outputs_tags": ("remove-output",)}
# an element that would make the browser fetch something: <script src>, <link href>, <img src>…
FETCHING_TAG = re.compile(
    r"<(script|link|img|iframe|source|video|audio|embed|object|image|use)\b[^>]*?"
    r"\b(src|href|data|srcset|xlink:href)\s*=\s*[\"']?\s*((?:https?:)?//[^\"'\s>]*)",
    re.IGNORECASE)
CSS_FETCH = re.compile(r"@import\s+(?:url\()?[\"']?(?:https?:)?//|url\(\s*[\"']?(?:https?:)?//",
                       re.IGNORECASE)
REMOTE_IMG = re.compile(r"<img\b[^>]*\bsrc\s*=\s*\"(?:https?:)?//[^\"]*\"[^>]*>", re.IGNORECASE)
LOCAL_IMG = re.compile(r"<img\b[^>]*\bsrc\s*=\s*\"(?!data:)([^\"]*)\"", re.IGNORECASE)
CJK = re.compile(r"[\u3400-\u9fff]")


class BookError(ValueError):
    """The sources cannot make a correct book (a chapter missing, a table out of sync, …)."""


@dataclass(frozen=True)
class Chapter:
    """One executed chapter notebook and the page it becomes."""

    number: str  # "03"
    slug: str  # "attention": what the glossary refers to; stable when chapters are renumbered
    source: Path  # chapters/03_attention.ipynb
    title: str  # "Attention", from the README's chapter table

    @property
    def page(self) -> str:
        return f"{self.number}_{self.slug}.html"

    @property
    def label(self) -> str:
        return f"{self.number} · {self.title}"


@dataclass
class BookReport:
    """What a build wrote: page sizes in bytes, figures per chapter page, seconds taken."""

    out: Path
    pages: dict[str, int] = field(default_factory=dict)
    figures: dict[str, int] = field(default_factory=dict)
    terms: int = 0
    mathjax: bool = False
    seconds: float = 0.0

    @property
    def without_figures(self) -> list[str]:
        return [page for page, n in self.figures.items() if n == 0]


# ---------------------------------------------------------------------------------------------
# sources: chapters, the README's table, the glossary


def find_chapters(chapters_dir: Path) -> list[tuple[str, str, Path]]:
    """``(number, slug, path)`` of every ``NN_slug.ipynb`` in ``chapters_dir``, in order."""
    chapters_dir = _as_path(chapters_dir, "chapters_dir")
    if not chapters_dir.is_dir():
        raise ValueError(f"chapters_dir must be a folder, got {chapters_dir}")
    found, slugs, numbers = [], {}, {}
    for path in sorted(chapters_dir.glob("[0-9][0-9]_*.ipynb")):
        m = CHAPTER_FILE.match(path.name)
        if not m:
            raise BookError(f"{path.name}: a chapter file is named NN_lowercase_words.ipynb")
        number, slug = m.groups()
        for seen, key, what in ((slugs, slug, "slug"), (numbers, number, "number")):
            if key in seen:
                raise BookError(f"chapters {seen[key]} and {path.name} share the {what} {key!r}")
            seen[key] = path.name
        found.append((number, slug, path))
    if not found:
        raise BookError(f"no chapter notebooks (NN_slug.ipynb) in {chapters_dir}")
    return found


def _table_rows(lines: list[str], start: int) -> tuple[list[list[str]], int]:
    """The rows (cells stripped) of the markdown table at or after ``lines[start]``."""
    i = start
    while i < len(lines) and not lines[i].lstrip().startswith("|"):
        i += 1
    rows = []
    while i < len(lines) and lines[i].lstrip().startswith("|"):
        rows.append(_split_row(lines[i]))
        i += 1
    if len(rows) >= 2 and all(re.fullmatch(r":?-{3,}:?", c) for c in rows[1]):
        return [rows[0]] + rows[2:], i
    return rows, i


def _split_row(line: str) -> list[str]:
    """Cells of one markdown table row; ``\\|`` and pipes inside backticks stay in the cell."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    cells, cell, in_code = [], "", False
    for i, ch in enumerate(body):
        if ch == "`":
            in_code = not in_code
        if ch == "|" and not in_code and (i == 0 or body[i - 1] != "\\"):
            cells.append(cell.strip())
            cell = ""
        else:
            cell += ch
    cells.append(cell.strip())
    return cells


def parse_chapter_table(readme: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the table under the README's ``## Chapters`` heading."""
    if not isinstance(readme, str):
        raise TypeError(f"readme must be the README's text (str), got {type(readme).__name__}")
    lines = readme.splitlines()
    heading = next((i for i, line in enumerate(lines) if line.strip() == "## Chapters"), None)
    if heading is None:
        raise BookError("README.md has no '## Chapters' heading")
    rows, _ = _table_rows(lines, heading + 1)
    if len(rows) < 2:
        raise BookError("README.md: no chapter table under '## Chapters'")
    header, body = rows[0], rows[1:]
    if header[:2] != ["#", "Chapter"]:
        raise BookError(f"README.md: the chapter table starts with columns '#', 'Chapter', "
                        f"got {header[:2]}")
    for row in body:
        if len(row) != len(header):
            raise BookError(f"README.md: chapter row {row[:2]} has {len(row)} cells, the header "
                            f"{len(header)}")
    return header, body


def _resolve_chapters(found: list[tuple[str, str, Path]],
                      readme: str) -> tuple[list[Chapter], list[str], list[list[str]]]:
    """Match the chapter files with the README's rows; every file has a row and vice versa."""
    header, rows = parse_chapter_table(readme)
    by_file = {path.name: (number, slug, path) for number, slug, path in found}
    chapters, seen = [], set()
    for row in rows:
        m = re.fullmatch(r"\[([^\]]+)\]\((?:\./)?chapters/([^)\s]+\.ipynb)\)", row[1])
        if not m:
            raise BookError(f"README.md: chapter cell {row[1]!r} is not [Title](chapters/NN_slug"
                            f".ipynb)")
        title, name = m.groups()
        if name not in by_file:
            raise BookError(f"README.md lists chapters/{name}, which does not exist")
        number, slug, path = by_file[name]
        if row[0] != number:
            raise BookError(f"README.md: the row of {name} says # {row[0]}, the file {number}")
        if name in seen:
            raise BookError(f"README.md lists chapters/{name} twice")
        seen.add(name)
        chapters.append(Chapter(number, slug, path, title))
    missing = sorted(set(by_file) - seen)
    if missing:
        raise BookError(f"README.md's chapter table has no row for {', '.join(missing)}")
    return sorted(chapters, key=lambda c: c.number), header, rows


@dataclass(frozen=True)
class Term:
    english: str
    chinese: str
    meaning: str
    chapter: Chapter

    @property
    def anchor(self) -> str:
        return "term-" + re.sub(r"[^a-z0-9]+", "-", self.english.lower()).strip("-")


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[-_‐–]", " ", text.lower()))


def term_keys(english: str) -> list[str]:
    """What to look for in the chapter: ``Byte-pair encoding (BPE)`` -> byte pair encoding, bpe."""
    if not isinstance(english, str):
        raise TypeError(f"english must be a term (str), got {type(english).__name__}")
    parts = re.findall(r"\(([^)]*)\)", english) + [re.sub(r"\([^)]*\)", "", english)]
    keys = [_normalise(k).strip() for part in parts for k in part.split(" / ")]
    return [k for k in keys if k]


def _chapter_text(path: Path) -> str:
    """The normalised source text (markdown and code) of a notebook, for term look-ups."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    return _normalise("\n".join("".join(c.get("source", "")) for c in nb.get("cells", [])))


def parse_glossary(text: str, chapters: list[Chapter]) -> tuple[list[str | list[Term]], int]:
    """Markdown blocks and term tables of ``docs/glossary.md``, chapters resolved by slug.

    A term table has the header ``| Term | 中文 | Meaning | Chapter |``; its Chapter cell is a
    chapter slug (in backticks or not). Returns the document as a list of markdown strings and
    term lists, and the number of terms.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be the glossary's markdown (str), got {type(text).__name__}")
    by_slug = {c.slug: c for c in chapters}
    texts = {c.slug: _chapter_text(c.source) for c in chapters}
    lines = text.splitlines()
    blocks: list[str | list[Term]] = []
    prose: list[str] = []
    seen: dict[str, int] = {}
    absent: list[str] = []  # reported together: a renamed chapter usually breaks several
    i = 0
    while i < len(lines):
        if not lines[i].lstrip().startswith("|"):
            prose.append(lines[i])
            i += 1
            continue
        start = i
        rows, i = _table_rows(lines, i)
        if not rows or [c.lower() for c in rows[0]] != ["term", "中文", "meaning", "chapter"]:
            raise BookError(f"glossary line {start + 1}: a term table has the header "
                            f"| Term | 中文 | Meaning | Chapter |, got {rows[0] if rows else []}")
        terms = []
        for n, row in enumerate(rows[1:], start=start + 3):
            if len(row) != 4 or not all(row):
                raise BookError(f"glossary line {n}: a term row has 4 non-empty cells, got {row}")
            english, chinese, meaning, slug = row[0], row[1], row[2], row[3].strip("` ")
            if not CJK.search(chinese):
                raise BookError(f"glossary line {n}: {english!r} has no Chinese in {chinese!r}")
            if slug not in by_slug:
                raise BookError(
                    f"glossary line {n}: {english!r} names chapter {slug!r}, which does not exist"
                    f" (chapters: {', '.join(sorted(by_slug))})")
            if english.lower() in seen:
                raise BookError(f"glossary line {n}: {english!r} is already on line "
                                f"{seen[english.lower()]}")
            seen[english.lower()] = n
            keys = term_keys(english)
            if not any(k in texts[slug] for k in keys):
                absent.append(f"glossary line {n}: {english!r} (looked for {keys}) does not "
                              f"occur in chapter {by_slug[slug].source.name}")
            terms.append(Term(english, chinese, meaning, by_slug[slug]))
        if prose:
            blocks.append("\n".join(prose))
            prose = []
        blocks.append(terms)
    if prose:
        blocks.append("\n".join(prose))
    if absent:
        raise BookError("\n".join(absent))
    return blocks, len(seen)


# ---------------------------------------------------------------------------------------------
# rendering


def _markdown(text: str, inline: bool = False) -> str:
    import mistune

    out = mistune.create_markdown(escape=False, plugins=["table", "strikethrough"])(text)
    if inline:
        out = out.strip()
        if out.startswith("<p>") and out.endswith("</p>") and out.count("<p>") == 1:
            out = out[3:-4]
    return out


def _nav(prev: tuple[str, str] | None, nxt: tuple[str, str] | None, where: str) -> str:
    """The navigation bar: home, previous, glossary, next (``(href, label)`` pairs)."""
    def link(item, cls, rel, fmt):
        if item is None:
            return f'<span class="{cls} book-nav-none"></span>'
        return (f'<a class="{cls}" rel="{rel}" href="{item[0]}">'
                f'{fmt.format(html.escape(item[1]))}</a>')
    return (f'<nav class="book-nav book-nav-{where}" aria-label="chapters">'
            '<a class="book-home" href="index.html">llmcourse</a>'
            f'{link(prev, "book-prev", "prev", "← {}")}'
            '<a class="book-glossary" href="glossary.html">Glossary · 术语表</a>'
            f'{link(nxt, "book-next", "next", "{} →")}'
            '</nav>')


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="static/book.css">
</head>
<body class="book-page">
{nav_top}
<main class="book-main">
{body}
</main>
{nav_bottom}
</body>
</html>
"""

MATHJAX_CONFIG = """<script>
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']],
        processEscapes: true, processEnvironments: true, tags: 'ams'},
  options: {ignoreHtmlClass: 'tex2jax_ignore|js-plotly-plot', processHtmlClass: 'tex2jax_process'},
  svg: {fontCache: 'global'}
};
</script>
<script defer src="static/mathjax/tex-svg-full.js"></script>"""

NO_MATHJAX_NOTE = ('<p class="book-note">Math is shown as TeX source: this book was built '
                   'without MathJax (install <code>django-static-mathjax</code> and rebuild).</p>')

# nbconvert's lab page without what it would fetch (require.js, MathJax 2, mermaid, widget
# manager from CDNs), with the book's stylesheets and navigation
CHAPTER_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{{ resources.book.head_js }}{%- endblock html_head_js -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{% block notebook_css %}
<link rel="icon" href="data:,">
<link rel="stylesheet" href="static/notebook.css">
<link rel="stylesheet" href="static/book.css">
{% endblock notebook_css %}
{%- block html_head_js_mathjax -%}{{ resources.book.mathjax }}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{#- the lab template runs pygments' (escaped) HTML through bleach: most of the build time -#}
{% block input %}
<div class="jp-CodeMirrorEditor jp-Editor jp-InputArea-editor" data-type="inline">
     <div class="cm-editor cm-s-jupyter">
{{ cell.source | highlight_code(metadata=cell.metadata) }}
     </div>
</div>
{%- endblock input %}
{%- block body_header -%}
<body class="jp-Notebook book-chapter" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.book.nav_top }}
{{ resources.book.note }}
<main>
{%- endblock body_header -%}
{% block body_footer %}
</main>
{{ resources.book.nav_bottom }}
</body>
{% endblock body_footer %}
"""

# what nbconvert's lab template inlines on every page besides its stylesheet (index.css)
NOTEBOOK_CSS_EXTRA = """
* { -webkit-print-color-adjust: exact; }
a.anchor-link { display: none; }
.jp-InputArea { overflow: hidden; }
.jp-InputArea-editor { overflow: hidden; }
.cm-editor.cm-s-jupyter .highlight pre { padding: var(--jp-code-padding) 4px; margin: 0;
  font-family: inherit; font-size: inherit; line-height: inherit; color: inherit; }
.jp-OutputArea-output pre { line-height: inherit; font-family: inherit; }
.jp-RenderedText pre { color: var(--jp-content-font-color1); font-size: var(--jp-code-font-size); }
.jp-Collapser { display: none; }
@media print { .jp-Cell-inputWrapper, .jp-Cell-outputWrapper { display: block; } }
"""

BOOK_CSS = """
body.book-page { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif;
  color: #1f2328; margin: 0; line-height: 1.55; }
.book-main { max-width: 1100px; margin: 0 auto; padding: 0 24px 48px; }
body.book-chapter main { max-width: 1100px; margin: 0 auto; }
.book-nav { display: flex; gap: 16px; align-items: center; flex-wrap: wrap;
  padding: 10px 24px; background: #f6f8fa; border-bottom: 1px solid #d0d7de;
  font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; font-size: 15px; }
.book-nav-bottom { border-top: 1px solid #d0d7de; border-bottom: none; margin-top: 32px; }
.book-nav a { color: #0969da; text-decoration: none; }
.book-nav a:hover { text-decoration: underline; }
.book-nav .book-home { font-weight: 600; color: #1f2328; }
.book-nav .book-next { margin-left: auto; }
.book-nav .book-prev + .book-glossary { margin-left: 0; }
.book-note, .book-widget-note { background: #fff8c5; border: 1px solid #d4a72c;
  border-radius: 6px; padding: 6px 12px; margin: 8px auto; max-width: 1100px;
  font-family: system-ui, sans-serif; font-size: 14px; }
.book-widget-note { display: inline-block; margin: 4px 0; }
.book-remote-image { border: 1px solid #d0d7de; border-radius: 4px; padding: 1px 6px;
  font-size: 13px; }
table.book-table { border-collapse: collapse; width: 100%; margin: 16px 0; font-size: 15px; }
table.book-table th, table.book-table td { border: 1px solid #d0d7de; padding: 6px 10px;
  vertical-align: top; text-align: left; }
table.book-table th { background: #f6f8fa; }
table.book-table tr:target { background: #fff8c5; }
td.book-zh { font-size: 16px; white-space: nowrap; }
code { font-family: menlo, consolas, 'DejaVu Sans Mono', monospace; font-size: 90%; }
"""


def _plotly_html(figure: dict, div_id: str) -> str:
    """A plotly div (and its ``Plotly.newPlot`` call) for a stored plotly JSON output."""
    import plotly.io as pio

    layout = figure.get("layout", {}) if isinstance(figure, dict) else {}
    return pio.to_html(figure, include_plotlyjs=False, include_mathjax=False, full_html=False,
                       validate=False, div_id=div_id, default_width="100%",
                       default_height=f"{int(layout.get('height', 450))}px")


MD_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*<?([^)\s>]+)>?((?:\s+\"[^\"]*\")?)\s*\)")


def _attach_local_images(cell, folder: Path) -> None:
    """Markdown images of local files (``../assets/map.svg``) -> cell attachments, embedded.

    nbconvert embeds only files inside the notebook's folder; the course keeps pictures in
    ``assets/`` beside ``chapters/``. Files outside the project (``folder.parent``) stay links,
    and the page check then fails the build.
    """
    project = folder.resolve().parent

    def attach(m: re.Match) -> str:
        alt, src, title = m.groups()
        if re.match(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", src, re.IGNORECASE):
            return m.group(0)
        path = (folder / src).resolve()
        mime = mimetypes.guess_type(path.name)[0]
        if not path.is_file() or project not in path.parents or not (mime or "").startswith(
                "image/"):
            return m.group(0)
        name = path.relative_to(project).as_posix().replace("/", "_")
        cell.setdefault("attachments", {})[name] = {
            mime: base64.b64encode(path.read_bytes()).decode("ascii")}
        return f"![{alt}](attachment:{name}{title})"

    cell.source = MD_IMAGE.sub(attach, cell.source)


def _prepare(nb, chapter: Chapter) -> tuple[int, bool]:
    """Make a notebook exportable in place; returns (figures, has_plotly).

    Plotly JSON -> a text/html plotly div; widget views -> a note; mermaid is refused (it would
    need a script from the network).
    """
    nb.metadata.pop("widgets", None)
    figures, plotly = 0, False
    for index, cell in enumerate(nb.cells):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & set(TAGS["remove_cell_tags"]):
            continue
        if cell.cell_type == "markdown":
            _attach_local_images(cell, chapter.source.parent)
            if re.search(r"^\s*(```|~~~)\s*mermaid", cell.source, re.MULTILINE):
                raise BookError(f"{chapter.source.name} cell {index}: a mermaid diagram needs "
                                "mermaid.js from the network; use an SVG or PNG image instead")
            images = re.findall(r"!\[[^\]]*\]\(\s*(?!https?:|//)[^)]+\)|<img\b(?![^>]*src=\""
                                r"(?:https?:)?//)", cell.source)
            figures += len(images)
            continue
        if cell.cell_type != "code" or tags & set(TAGS["remove_all_outputs_tags"]):
            continue
        for n, output in enumerate(cell.get("outputs", [])):
            data = output.get("data")
            if not data:
                continue
            if PLOTLY_MIME in data:
                div = _plotly_html(data[PLOTLY_MIME], f"fig-{chapter.slug}-{index}-{n}")
                output["data"] = {"text/html": div}
                figures, plotly = figures + 1, True
            elif WIDGET_MIME in data:
                output["data"] = {"text/html": f'<div class="book-widget-note">{WIDGET_NOTE}'
                                               "</div>"}
                output.get("metadata", {}).pop(WIDGET_MIME, None)
            elif any(m in data for m in IMAGE_MIMES):
                figures += 1
            elif "text/vnd.mermaid" in data:
                raise BookError(f"{chapter.source.name} cell {index}: a mermaid output needs "
                                "mermaid.js from the network")
    return figures, plotly


def _localise(page: str, chapters: list[Chapter]) -> str:
    """Remote images -> their alt text; links to chapter notebooks -> their pages."""
    def alt_text(m: re.Match) -> str:
        alt = re.search(r"\balt\s*=\s*\"([^\"]*)\"", m.group(0))
        return f'<span class="book-remote-image">{alt.group(1) if alt else "image"}</span>'
    page = REMOTE_IMG.sub(alt_text, page)
    for c in chapters:
        page = re.sub(r'href="(?:\.\./chapters/|chapters/|\./)?' + re.escape(c.source.name)
                      + r'(#[^"]*)?"', lambda m, c=c: f'href="{c.page}{m.group(1) or ""}"', page)
    return page


def check_offline(name: str, page: str) -> None:
    """Raise BookError when a page would fetch anything from the network, or miss an image."""
    if not isinstance(page, str):
        raise TypeError(f"page must be HTML (str), got {type(page).__name__}")
    m = FETCHING_TAG.search(page)
    if m:
        raise BookError(f"{name}: <{m.group(1)} {m.group(2)}=\"{m.group(3)}\"> fetches from the "
                        "network")
    m = CSS_FETCH.search(page)
    if m:
        raise BookError(f"{name}: a stylesheet fetches from the network ({m.group(0)!r})")
    m = LOCAL_IMG.search(page)
    if m:  # markdown images are embedded; this one was missing or written as raw <img>
        raise BookError(f"{name}: the image {m.group(1)!r} was not found to embed (use a "
                        "markdown image, ![alt](path), with a path relative to the notebook)")


def _exporter():
    import jinja2
    from nbconvert import HTMLExporter
    from traitlets.config import Config

    config = Config()
    config.TagRemovePreprocessor.enabled = True
    for trait, tags in TAGS.items():
        setattr(config.TagRemovePreprocessor, trait, set(tags))
    exporter = HTMLExporter(config=config, template_name="lab",
                            extra_loaders=[jinja2.DictLoader({"book.html.j2": CHAPTER_TEMPLATE})],
                            template_file="book.html.j2")
    exporter.embed_images = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    exporter.anchor_link_text = "¶"
    return exporter


def _render_chapter(chapter: Chapter, prev: tuple[str, str] | None, nxt: tuple[str, str] | None,
                   mathjax: bool, chapters: list[Chapter], exporter=None) -> tuple[str, int]:
    """One chapter's page (HTML) and how many figures it shows."""
    import nbformat

    nb = nbformat.read(chapter.source, as_version=4)
    unexecuted = [i for i, c in enumerate(nb.cells)
                  if c.cell_type == "code" and c.source.strip() and c.execution_count is None]
    if unexecuted:
        raise BookError(f"{chapter.source.name}: cells {unexecuted[:5]} were never executed "
                        "(run `make notebooks`)")
    figures, plotly = _prepare(nb, chapter)
    exporter = exporter or _exporter()
    resources = {"metadata": {"path": str(chapter.source.parent),
                              "name": f"{chapter.label} — llmcourse"},
                 "book": {"head_js": ('<script src="static/plotly.min.js"></script>'
                                      if plotly else ""),
                          "mathjax": MATHJAX_CONFIG if mathjax else "",
                          "note": "" if mathjax else NO_MATHJAX_NOTE,
                          "nav_top": _nav(prev, nxt, "top"),
                          "nav_bottom": _nav(prev, nxt, "bottom")}}
    page, _ = exporter.from_notebook_node(nb, resources=resources)
    page = _localise(page, chapters)
    check_offline(chapter.page, page)
    return page, figures


def _render_index(readme: str, chapters: list[Chapter], header: list[str],
                 rows: list[list[str]]) -> str:
    """The home page: the README's introduction and its chapter table, linked to the pages."""
    lines = readme.splitlines()
    title = next((line[2:].strip() for line in lines if line.startswith("# ")), "llmcourse")
    first_h2 = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
    intro_start = next((i + 1 for i, line in enumerate(lines) if line.startswith("# ")), 0)
    intro = _localise(_markdown("\n".join(lines[intro_start:first_h2])), chapters)
    by_number = {c.number: c for c in chapters}
    keep = [i for i, h in enumerate(header) if h.lower() != "colab"]
    head = "".join(f"<th>{html.escape(header[i])}</th>" for i in keep)
    body = []
    for row in rows:
        chapter = by_number[row[0]]
        cells = []
        for i in keep:
            if i == 1:
                cells.append(f'<td><a href="{chapter.page}">{html.escape(chapter.title)}</a></td>')
            else:
                cells.append(f"<td>{_markdown(row[i], inline=True)}</td>")
        body.append(f'<tr id="chapter-{chapter.slug}">{"".join(cells)}</tr>')
    table = (f'<table class="book-table book-chapters"><thead><tr>{head}</tr></thead>'
             f'<tbody>{"".join(body)}</tbody></table>')
    main = (f"<h1>{html.escape(title)}</h1>\n{intro}\n<h2>Chapters</h2>\n{table}\n"
            '<p>Terms and their Chinese equivalents: the <a href="glossary.html">glossary '
            "(术语表)</a>. Every page here was built from the executed notebooks; figures are "
            "drawn in the page, with no kernel and no network.</p>")
    nxt = (chapters[0].page, chapters[0].label)
    page = PAGE.format(title=html.escape(title), body=main, nav_top=_nav(None, nxt, "top"),
                       nav_bottom=_nav(None, nxt, "bottom"))
    check_offline("index.html", page)
    return page


def _render_glossary(blocks: list[str | list[Term]], chapters: list[Chapter]) -> str:
    """The glossary page: prose as markdown, term tables with one anchor per term."""
    parts = []
    for block in blocks:
        if isinstance(block, str):
            parts.append(_markdown(block))
            continue
        rows = "".join(
            f'<tr id="{t.anchor}"><td>{_markdown(t.english, inline=True)}</td>'
            f'<td class="book-zh" lang="zh-Hans">{html.escape(t.chinese)}</td>'
            f"<td>{_markdown(t.meaning, inline=True)}</td>"
            f'<td><a class="book-term-chapter" href="{t.chapter.page}">'
            f"{html.escape(t.chapter.label)}</a></td></tr>" for t in block)
        parts.append('<table class="book-table book-glossary"><thead><tr><th>Term</th>'
                     "<th>中文</th><th>Meaning</th><th>Chapter</th></tr></thead>"
                     f"<tbody>{rows}</tbody></table>")
    prev = (chapters[-1].page, chapters[-1].label)
    page = PAGE.format(title="Glossary · 术语表 — llmcourse", body="\n".join(parts),
                       nav_top=_nav(prev, None, "top"), nav_bottom=_nav(prev, None, "bottom"))
    check_offline("glossary.html", page)
    return page


# ---------------------------------------------------------------------------------------------
# assets and the build


def mathjax_source() -> Path | None:
    """MathJax 3's self-contained ``tex-svg-full.js`` from django-static-mathjax, if installed."""
    try:
        dist = importlib.metadata.distribution(MATHJAX_DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or []:
        if str(file).endswith(MATHJAX_FILE):
            path = Path(dist.locate_file(file))
            return path if path.is_file() else None
    return None


def _lab_css() -> str:
    from jupyter_core.paths import jupyter_path

    for base in jupyter_path("nbconvert", "templates"):
        static = Path(base) / "lab" / "static"
        if (static / "index.css").is_file():
            return ((static / "index.css").read_text(encoding="utf-8")
                    + (static / "theme-light.css").read_text(encoding="utf-8"))
    raise BookError("nbconvert's lab template (lab/static/index.css) is not installed")


def _prepare_out(out: Path) -> None:
    """Create ``out``, or empty it when it is a book this script built; refuse anything else."""
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"out must be a folder, got the file {out}")
        if any(out.iterdir()) and not (out / MARKER).is_file():
            raise ValueError(f"out {out} is not empty and was not built by build_book.py: "
                             "refusing to delete it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("built by tools/build_book.py; rebuilt from scratch each time\n")


def build_book(out: Path, *, chapters_dir: Path = ROOT / "chapters",
               readme: Path = ROOT / "README.md", glossary: Path = ROOT / "docs" / "glossary.md",
               mathjax: bool | None = None) -> BookReport:
    """Build the static book into ``out``; ``mathjax=None`` bundles MathJax when installed.

    Raises BookError (a ValueError) when the sources cannot make a correct book; ``mathjax=True``
    without django-static-mathjax is a ValueError too.
    """
    started = time.perf_counter()
    out = _as_path(out, "out")
    readme, glossary = _as_path(readme, "readme"), _as_path(glossary, "glossary")
    if mathjax is not None and not isinstance(mathjax, bool):
        raise TypeError(f"mathjax must be True, False or None, got {type(mathjax).__name__}")
    for path, name in ((readme, "readme"), (glossary, "glossary")):
        if not path.is_file():
            raise ValueError(f"{name} must be an existing file, got {path}")
    mathjax_js = mathjax_source() if mathjax is not False else None
    if mathjax is True and mathjax_js is None:
        raise ValueError(f"mathjax=True needs the {MATHJAX_DIST} package (pip install "
                         f"{MATHJAX_DIST})")
    readme_text = readme.read_text(encoding="utf-8")
    chapters, header, rows = _resolve_chapters(find_chapters(chapters_dir), readme_text)
    blocks, n_terms = parse_glossary(glossary.read_text(encoding="utf-8"), chapters)

    pages = {"index.html": _render_index(readme_text, chapters, header, rows)}
    report = BookReport(out=out, terms=n_terms, mathjax=mathjax_js is not None)
    exporter = _exporter()
    for i, chapter in enumerate(chapters):
        prev = (chapters[i - 1].page, chapters[i - 1].label) if i else ("index.html", "Home")
        nxt = ((chapters[i + 1].page, chapters[i + 1].label) if i + 1 < len(chapters)
               else ("glossary.html", "Glossary"))
        pages[chapter.page], report.figures[chapter.page] = _render_chapter(
            chapter, prev, nxt, report.mathjax, chapters, exporter)
    pages["glossary.html"] = _render_glossary(blocks, chapters)

    import plotly

    _prepare_out(out)
    static = out / "static"
    static.mkdir()
    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", static)
    (static / "notebook.css").write_text(_lab_css() + NOTEBOOK_CSS_EXTRA, encoding="utf-8")
    (static / "book.css").write_text(BOOK_CSS, encoding="utf-8")
    if mathjax_js is not None:
        (static / "mathjax").mkdir()
        shutil.copy(mathjax_js, static / "mathjax" / "tex-svg-full.js")
        licence = mathjax_js.parents[1] / "LICENSE"
        if licence.is_file():
            shutil.copy(licence, static / "mathjax" / "LICENSE")
    for name, page in pages.items():
        (out / name).write_text(page, encoding="utf-8")
        report.pages[name] = len(page.encode("utf-8"))
    report.seconds = time.perf_counter() - started
    return report


def _as_path(value, name: str) -> Path:
    if isinstance(value, bool) or not isinstance(value, (str, Path)):
        raise TypeError(f"{name} must be a path (str or Path), got {type(value).__name__}")
    if not str(value):
        raise ValueError(f"{name} must not be empty")
    return Path(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "_build" / "book"),
                        help="folder to write the book into (default: _build/book)")
    parser.add_argument("--chapters", default=str(ROOT / "chapters"))
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--glossary", default=str(ROOT / "docs" / "glossary.md"))
    parser.add_argument("--no-mathjax", action="store_true",
                        help="show math as TeX source even when MathJax is installed")
    args = parser.parse_args(argv)
    try:
        report = build_book(Path(args.out), chapters_dir=Path(args.chapters),
                            readme=Path(args.readme), glossary=Path(args.glossary),
                            mathjax=False if args.no_mathjax else None)
    except (BookError, ValueError, TypeError) as e:
        print(f"build_book: {e}", file=sys.stderr)
        return 1
    for name, size in report.pages.items():
        figs = f"  {report.figures[name]} figure(s)" if name in report.figures else ""
        print(f"  {name:45s} {size / 1024:8.0f} KiB{figs}")
    if not report.mathjax:
        print(f"warning: no MathJax ({MATHJAX_DIST} not installed or --no-mathjax): math is "
              "shown as TeX source", file=sys.stderr)
    if report.without_figures:
        print(f"note: chapter pages without a figure: {', '.join(report.without_figures)}")
    print(f"book: {len(report.pages)} pages, {report.terms} glossary terms, MathJax "
          f"{'bundled' if report.mathjax else 'absent'}, {report.seconds:.1f} s -> {report.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
