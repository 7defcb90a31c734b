"""Real-browser test: the diagrams of the executed chapters 03 and 04 show in JupyterLab.

Starts JupyterLab 4 on 127.0.0.1 (free port, fresh token, a fresh Jupyter data folder so that no
notebook is trusted) in a temporary folder holding copies of the *executed* chapter notebooks,
and opens them in headless Chromium (Debian's ``/usr/bin/chromium``, driven by Playwright)
**without running a cell** — what a learner sees after cloning the course. Each diagram output
(``llmcourse.diagrams.show``) must be drawn as an image of at least 200 × 100 px with ink on it.

JupyterLab draws no SVG output of a notebook it does not trust (it writes "Cannot display an
untrusted SVG"); the diagrams carry a PNG of themselves for that case, which it always draws.
A copy of chapter 04 trusted with ``jupyter trust`` checks the SVG path too. Skips when
chromium is absent, except under CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from labserver import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    jupyter,
    lab_env,
    needs_chromium,
    playwright_api,
    screenshot_failure,
    serve,
    write_settings,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHAPTERS = ["03_attention.ipynb", "04_transformer_and_gpt.ipynb"]
TRUSTED = "04_trusted.ipynb"  # a copy of chapter 04 that `jupyter trust` signed

# JupyterLab's image outputs (PNG and SVG renderers; plotly figures hold images of their own):
# each one's size on the page, its decoded size, what it draws, and the share of its pixels that
# are not white (drawn into a canvas: data: URLs do not taint it)
IMAGES = ".jp-OutputArea-output.jp-RenderedImage img, .jp-OutputArea-output.jp-RenderedSVG img"
READ_IMAGES = """() => Array.from(document.querySelectorAll('""" + IMAGES + """')).map(img => {
    const r = img.getBoundingClientRect();
    let ink = -1;
    try {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d');
        ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) { if (d[i] + d[i + 1] + d[i + 2] < 600) n++; }
        ink = n / (d.length / 4);
    } catch (e) { ink = -2; }
    return {width: r.width, height: r.height, natural: [img.naturalWidth, img.naturalHeight],
            complete: img.complete, kind: img.src.slice(0, 24),
            renderer: img.parentElement.className, ink: ink};
})"""


def _diagram_outputs(notebook: Path) -> list[str]:
    """The text/plain of each diagram output stored in an executed notebook."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    found = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/svg+xml" in data:
                assert "image/png" in data, "a diagram output without its PNG fallback"
                found.append("".join(data.get("text/plain", "")))
    return found


@pytest.fixture
def jupyterlab(tmp_path):
    work = tmp_path / "lab"
    work.mkdir()
    for name in CHAPTERS:
        shutil.copy(ROOT / "chapters" / name, work / name)
    # trust is given to a notebook's content (a signature of it), not to its path: the trusted
    # copy must differ from the untrusted one, or both would be trusted
    nb = json.loads((ROOT / "chapters" / CHAPTERS[1]).read_text(encoding="utf-8"))
    nb["metadata"]["llmcourse_test"] = "the trusted copy"
    (work / TRUSTED).write_text(json.dumps(nb), encoding="utf-8")
    # every cell in the page, not windowed
    write_settings(tmp_path, {"@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"}})
    env = lab_env(tmp_path, JUPYTER_DATA_DIR=str(tmp_path / "data"))  # a fresh trust database
    subprocess.run([str(jupyter()), "trust", str(work / TRUSTED)], env=env, check=True,
                   capture_output=True)
    with serve(work, tmp_path, env) as (base, token):
        yield base, token, work


def _images_once_drawn(page, expected: int) -> list[dict]:
    page.wait_for_function(
        "([n, sel]) => { const imgs = document.querySelectorAll(sel);"
        " return imgs.length >= n && Array.from(imgs).every(i => i.complete && i.naturalWidth); }",
        arg=[expected, IMAGES], timeout=90_000)
    return page.evaluate(READ_IMAGES)


@needs_chromium
def test_chapter_diagrams_show_in_jupyterlab_without_running(jupyterlab, tmp_path):
    sync_api = playwright_api()
    base, token, work = jupyterlab
    expected = {name: _diagram_outputs(work / name) for name in [*CHAPTERS, TRUSTED]}
    assert len(expected["03_attention.ipynb"]) >= 1  # the attention shape flow
    assert len(expected["04_transformer_and_gpt.ipynb"]) >= 3  # block, GPT stack, KV cache
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        page = None
        try:
            for k, (name, diagrams) in enumerate(expected.items()):
                page = browser.new_page(viewport={"width": 1300, "height": 1500})
                page.set_default_timeout(60_000)
                # a workspace of its own: the page holds this notebook only
                page.goto(f"{base}/lab/workspaces/w{k}/tree/{name}?token={token}",
                          wait_until="domcontentloaded")
                page.wait_for_function("() => window.jupyterapp && document.querySelector("
                                       "'.jp-Notebook .jp-Cell')", timeout=60_000)
                images = _images_once_drawn(page, len(diagrams))
                assert len(images) == len(diagrams), (name, images, diagrams)
                for img, label in zip(images, diagrams):
                    assert img["width"] >= 200 and img["height"] >= 100, (name, label, img)
                    assert img["ink"] > 0.02, (name, label, img)  # lines and text, not blank
                text = page.locator(".jp-Notebook").inner_text()
                if name == TRUSTED:  # a trusted notebook: JupyterLab draws the SVG itself
                    assert all(i["kind"].startswith("data:image/svg+xml") for i in images), images
                    assert all("jp-RenderedSVG" in i["renderer"] for i in images), images
                else:  # as cloned: not trusted, the PNG of each diagram is drawn
                    assert all(i["kind"].startswith("data:image/png") for i in images), images
                    assert "Cannot display an untrusted SVG" not in text
                assert "<diagram:" not in text  # no diagram fell back to its text
                page.screenshot(path=str(tmp_path / f"{name}.png"))
                page.close()
                page = None
        except Exception:
            screenshot_failure(page, tmp_path, full_page=False)
            raise
        finally:
            browser.close()
