"""Real-browser test of the streaming chat widget: JupyterLab 4 + headless Chromium (Debian's
``chromium``) via Playwright.

Starts JupyterLab on 127.0.0.1 (fresh token, free port) in a temporary copy of
``tests/browser/chat_widget.ipynb`` (a tiny GPT that learned the alphabet, in a
``ChatWidget``), runs it, types a prompt, clicks *Send*, and watches the reply area in the page:
it must grow token by token (a ``MutationObserver`` records every length it shows), stop at
the end token, and end as the model's greedy answer. Skips when ``/usr/bin/chromium`` is absent
outside CI (CI installs it: see ``.ci/run``).
"""

from __future__ import annotations

import shutil

import labserver as lab
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

FIXTURE = lab.ROOT / "tests" / "browser" / "chat_widget.ipynb"
PROMPT, ANSWER = "hello", "pqrstuvwxyz"  # the fixture asserts that this is its greedy answer

# records the reply area's text length at every change, from before the click on
WATCH = """() => {
    const reply = document.querySelector('.llmcourse-chat-reply');
    window.__chatLengths = [reply.textContent.length];
    new MutationObserver(() => window.__chatLengths.push(reply.textContent.length))
        .observe(reply, {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture
def chat_lab(tmp_path):
    """JupyterLab serving a temporary copy of the fixture notebook (as in test_browser.py)."""
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(FIXTURE, work / FIXTURE.name)
    lab.write_settings(tmp_path)
    with lab.serve(work, tmp_path, lab.lab_env(tmp_path, OMP_NUM_THREADS="1")) as (base, token):
        yield base, token, FIXTURE.name


@lab.needs_chromium
def test_chat_widget_streams_tokens_in_jupyterlab(chat_lab, tmp_path):
    sync_api = lab.playwright_api()
    base, token, name = chat_lab
    assert name == FIXTURE.name
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=lab.CHROMIUM, args=lab.CHROMIUM_ARGS, timeout=30_000)
        page = None
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            lab.open_and_run_all(page, base, token, name)
            page.wait_for_selector(".llmcourse-chat-reply", state="attached", timeout=90_000)
            errors = page.locator(".jp-OutputArea-output[data-mime-type="
                                  "'application/vnd.jupyter.error']")
            assert errors.count() == 0, errors.first.inner_text()
            # the controls: a prompt box, a Send button, temperature and top-p sliders
            sliders = page.locator(".widget-slider")
            assert sliders.count() == 2
            assert "temperature" in sliders.nth(0).inner_text()
            assert "top-p" in sliders.nth(1).inner_text()
            page.evaluate(WATCH)
            box = page.locator(".widget-text input")
            box.fill(PROMPT)
            page.get_by_role("button", name="Send").click()
            page.wait_for_function(
                "() => (document.querySelector('.llmcourse-chat-status') || {}).textContent"
                " && document.querySelector('.llmcourse-chat-status').textContent"
                ".includes('stopped at')", timeout=60_000)
            status = page.locator(".llmcourse-chat-status").inner_text()
            reply = page.locator(".llmcourse-chat-reply").inner_text()
            lengths = page.evaluate("() => window.__chatLengths")
            page.wait_for_timeout(500)  # stopped: nothing arrives after the end token
            assert page.locator(".llmcourse-chat-reply").inner_text() == reply
        except Exception:
            lab.screenshot_failure(page, tmp_path)
            raise
        finally:
            browser.close()
    assert reply.strip() == PROMPT + ANSWER
    assert f"{len(ANSWER)} tokens" in status and "the end token" in status, status
    # the text grew over time: the page showed many intermediate lengths, never shrinking
    # after the prompt appeared, and ended at the full answer
    after_prompt = [n for n in lengths if n >= len(PROMPT)]
    assert after_prompt == sorted(after_prompt), lengths
    distinct = sorted(set(after_prompt))
    assert len(distinct) >= len(ANSWER) // 2, lengths  # seen arriving, not all at once
    assert distinct[-1] == len(PROMPT + ANSWER), lengths
