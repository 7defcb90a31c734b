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

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "browser" / "chat_widget.ipynb"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# In CI (.ci/run installs chromium) a missing browser is a failure, not a skip: the test must run.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true")
PROMPT, ANSWER = "hello", "pqrstuvwxyz"  # the fixture asserts that this is its greedy answer

# records the reply area's text length at every change, from before the click on
WATCH = """() => {
    const reply = document.querySelector('.llmcourse-chat-reply');
    window.__chatLengths = [reply.textContent.length];
    new MutationObserver(() => window.__chatLengths.push(reply.textContent.length))
        .observe(reply, {childList: true, subtree: true, characterData: true});
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_server(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"JupyterLab exited with code {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"JupyterLab did not answer {url.split('?')[0]} within {timeout:.0f} s")


@pytest.fixture
def chat_lab(tmp_path):
    """JupyterLab serving a temporary copy of the fixture notebook (as in test_browser.py)."""
    jupyter = Path(sys.prefix) / "bin" / "jupyter"
    if not jupyter.exists():
        jupyter = ROOT / ".venv" / "bin" / "jupyter"
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(FIXTURE, work / FIXTURE.name)
    port, token = _free_port(), secrets.token_hex(24)
    notification = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               LLMCOURSE_PROFILE="ci", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [str(jupyter), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=", "--ServerApp.terminals_enabled=False", "--allow-root"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", proc, timeout=45,
                         log=tmp_path / "jupyterlab.log")
        yield base, token, FIXTURE.name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not IN_CI,
                    reason=f"{CHROMIUM} is absent: install Debian's chromium "
                           "(apt-get install chromium) to run the real-browser test")
def test_chat_widget_streams_tokens_in_jupyterlab(chat_lab, tmp_path):
    assert Path(CHROMIUM).exists(), f"CI must provide {CHROMIUM} (see .ci/run)"
    if IN_CI:
        from playwright import sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    base, token, name = chat_lab
    assert name == FIXTURE.name
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        page = None
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(30_000)
            page.goto(f"{base}/lab/tree/{name}?token={token}", wait_until="domcontentloaded")
            page.wait_for_function("() => window.jupyterapp && document.querySelector("
                                   "'.jp-Notebook .jp-Cell')", timeout=45_000)
            page.wait_for_function(
                "() => { const w = window.jupyterapp.shell.currentWidget;"
                " return w && w.sessionContext && w.sessionContext.session &&"
                " w.sessionContext.session.kernel &&"
                " w.sessionContext.session.kernel.connectionStatus === 'connected' &&"
                " w.sessionContext.session.kernel.status === 'idle'; }", timeout=45_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
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
            if page is not None:
                failure = tmp_path / "failure.png"
                page.screenshot(path=str(failure), full_page=True)
                print(f"\nscreenshot of the failure: {failure}")
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
