"""A JupyterLab server for the real-browser tests (not a test module: pytest does not collect it).

:func:`serve` starts ``jupyter lab`` on a free 127.0.0.1 port with a random token over a folder
the test prepared, with its own runtime, workspace and settings folders (no news toast, no
update check: offline), waits until the server answers, and stops it afterwards. The browser is
Debian's Chromium (``.ci/run`` installs it); :data:`needs_chromium` skips a test without it,
except in CI, where a missing browser must fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
# In CI (.ci/run installs chromium) a missing browser is a failure, not a skip: the test must run.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true")
needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists() and not IN_CI,
    reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install chromium) to run "
           "the real-browser test")


def jupyter() -> Path:
    """The ``jupyter`` of the running Python's environment (else the repository's .venv)."""
    exe = Path(sys.prefix) / "bin" / "jupyter"
    return exe if exe.exists() else ROOT / ".venv" / "bin" / "jupyter"


def lab_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a test server: its own runtime, workspace and settings folders under
    ``tmp_path``, the ``ci`` profile, the repository importable; ``extra`` adds or overrides."""
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"), LLMCOURSE_PROFILE="ci",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.update(extra)
    return env


def write_settings(tmp_path: Path, settings: dict[str, dict] | None = None) -> None:
    """JupyterLab user settings under ``tmp_path/settings``: no news, no update check, plus
    ``settings`` (``{"@jupyterlab/notebook-extension/tracker": {...}}``)."""
    wanted = {"@jupyterlab/apputils-extension/notification":
              {"fetchNews": "false", "checkForUpdates": False}, **(settings or {})}
    for key, value in wanted.items():
        path = tmp_path / "settings" / f"{key}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))


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


@contextlib.contextmanager
def serve(work: Path, tmp_path: Path, env: dict[str, str], timeout: float = 45):
    """Run JupyterLab over ``work``; yield ``(base_url, token)``; stop it (log in tmp_path)."""
    port, token = _free_port(), secrets.token_hex(24)
    log_path = tmp_path / "jupyterlab.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [str(jupyter()), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={work}", "--LabApp.expose_app_in_browser=True",
         "--LabApp.news_url=", "--ServerApp.terminals_enabled=False", "--allow-root"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(f"{base}/api/status?token={token}", proc, timeout=timeout, log=log_path)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def open_and_run_all(page, base: str, token: str, name: str) -> None:
    """Open notebook ``name`` in JupyterLab in the Playwright ``page``, wait until its kernel is
    idle, then run every cell (the learner's "Run All")."""
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


def playwright_api():
    """``playwright.sync_api``: in CI a missing Chromium or Playwright fails, elsewhere it skips."""
    assert Path(CHROMIUM).exists(), f"CI must provide {CHROMIUM} (see .ci/run)"
    if IN_CI:
        from playwright import sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    return sync_api


def screenshot_failure(page, tmp_path: Path, full_page: bool = True) -> None:
    """Keep a picture of the page a test failed on (``tmp_path/failure.png``) and say where."""
    if page is not None:
        failure = tmp_path / "failure.png"
        page.screenshot(path=str(failure), full_page=full_page)
        print(f"\nscreenshot of the failure: {failure}")
