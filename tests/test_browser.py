"""Real-browser test: JupyterLab 4 + headless Chromium (Debian's ``chromium``) via Playwright.

Starts JupyterLab on 127.0.0.1 (fresh token, free port) in a temporary copy of
``tests/browser/attention_widgets.ipynb``, runs the notebook, changes the explorer's head
selector and checks that the heatmap's data changed in the page, clicks the kernel-free head
menu of a static ``attention_heatmap``, and saves a screenshot. Skips when ``/usr/bin/chromium``
is absent (CI installs it: see ``.ci/run``); Playwright's own browser download is not used.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from labserver import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    lab_env,
    needs_chromium,
    open_and_run_all,
    playwright_api,
    screenshot_failure,
    serve,
    write_settings,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIXTURE = ROOT / "tests" / "browser" / "attention_widgets.ipynb"

# reads every plotly graph on the page: the heatmap z of its first trace, as text
# (z from _fullData: plotly.js has decoded base64 typed arrays there)
Z_OF = ("(gd) => JSON.stringify(Array.from((gd._fullData && gd._fullData[0] || gd.data[0]).z,"
        " row => Array.from(row)))")
READ_GRAPHS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => ({
    z: (""" + Z_OF + """)(gd),
    title: (gd.layout.title && gd.layout.title.text) || '',
    opacity: gd.data.map(t => t.opacity === undefined ? 1 : t.opacity).join(','),
    menus: (gd.layout.updatemenus || []).length,
}))"""


@pytest.fixture
def jupyterlab(tmp_path):
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(FIXTURE, work / FIXTURE.name)
    write_settings(tmp_path)  # no "get Jupyter news?" toast over the picture, no update check
    with serve(work, tmp_path, lab_env(tmp_path)) as (base, token):
        yield base, token, FIXTURE.name


@needs_chromium
def test_attention_widgets_in_jupyterlab(jupyterlab, tmp_path):
    sync_api = playwright_api()
    base, token, name = jupyterlab
    shot = tmp_path / "attention_widgets.png"
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1500})
            open_and_run_all(page, base, token, name)  # wait for the kernel, run every cell
            # two plotly graphs: the explorer's and the static heatmap
            page.wait_for_function(
                "() => document.querySelectorAll('.js-plotly-plot').length >= 2 &&"
                " !document.querySelector('.jp-OutputArea-output[data-mime-type="
                "\"application/vnd.jupyter.stderr\"]')", timeout=60_000)
            errors = page.locator(".jp-OutputArea-output[data-mime-type="
                                  "'application/vnd.jupyter.error']")
            assert errors.count() == 0, errors.first.inner_text()
            graphs = page.evaluate(READ_GRAPHS)
            explorer = [g for g in graphs if g["menus"] == 0]
            static = [g for g in graphs if g["menus"] == 2]
            assert len(explorer) == 1 and len(static) == 1, graphs
            before = explorer[0]
            assert before["title"] == "layer 1 · head 0"

            # change the explorer's head selector (an ipywidgets Dropdown → <select>)
            head = page.locator(".widget-dropdown", has=page.locator("label", has_text="head"))
            head.locator("select").select_option(label="head 2")
            page.wait_for_function(
                "(old) => Array.from(document.querySelectorAll('.js-plotly-plot')).some("
                "gd => gd.layout.title && gd.layout.title.text === 'layer 1 · head 2' &&"
                " (" + Z_OF + ")(gd) !== old)", arg=before["z"], timeout=30_000)
            after = [g for g in page.evaluate(READ_GRAPHS) if g["menus"] == 0][0]
            assert after["z"] != before["z"]
            z_before, z_after = json.loads(before["z"]), json.loads(after["z"])
            assert len(z_before) == len(z_after) == 15  # "abc abd abc abd"
            assert z_before != z_after

            # the static figure's head menu works with no kernel round trip: plotly restyles
            static_gd = page.locator(".js-plotly-plot").filter(has=page.locator(".updatemenu-header"))
            static_gd.locator(".updatemenu-header").nth(1).click()
            static_gd.locator(".updatemenu-dropdown-button", has_text="head 3").click()
            page.wait_for_function(
                "() => Array.from(document.querySelectorAll('.js-plotly-plot')).some(gd =>"
                " (gd.layout.updatemenus || []).length === 2 && gd.data[3].opacity === 1 &&"
                " gd.data[0].opacity === 0)", timeout=10_000)

            try:  # JupyterLab's "notified about news?" toast would cover the picture
                page.get_by_role("button", name="No").click(timeout=2_000)
            except sync_api.Error:
                pass
            page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=True)
        except Exception:
            screenshot_failure(page, tmp_path)
            raise
        finally:
            browser.close()
    print(f"\nscreenshot: {shot}")
    assert shot.stat().st_size > 10_000
    if os.environ.get("LLMCOURSE_UPDATE_ASSETS") == "1":  # `make assets` refreshes the README's picture
        shutil.copy(shot, ROOT / "assets" / "attention_widgets_in_jupyterlab.png")
