"""`make lab`, the README's first command, run exactly as a newcomer runs it.

It must start JupyterLab on chapters/ for root (containers, cloud notebooks) and for ordinary
users, bound to 127.0.0.1, with token authentication on, and print the URL to open.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on ``port`` (from /proc/net/tcp, state 0A)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, hexport = local.split(":")
        if state == "0A" and int(hexport, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
    return found


def _environment_ready() -> bool:
    """`make lab` would install nothing (the environment exists and is up to date)."""
    return subprocess.run(["make", "-q", "install-lab"], cwd=ROOT).returncode == 0


@pytest.mark.slow
def test_make_lab_serves_chapters_with_token_auth(tmp_path):
    if not _environment_ready():
        if os.environ.get("CI"):
            pytest.fail("`make install-lab` is not up to date: CI runs this test after make test")
        pytest.skip("the course environment (.venv) is not installed; run `make lab` once")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_TOKEN": token, "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"), "JUPYTER_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(["make", "lab", f"LAB_PORT={port}"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"make lab exited early:\n{proc.stdout.read()}"
            try:
                status, _ = _get(f"{base}/api/status", token)
                if status == 200:
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "JupyterLab did not answer within 90 s"
            time.sleep(0.5)
        # Without the token the API refuses; with it, it lists the chapters.
        status, _ = _get(f"{base}/api/contents")
        assert status == 403
        status, _ = _get(f"{base}/api/contents", token="wrong" + token)
        assert status == 403
        status, body = _get(f"{base}/api/contents", token)
        assert status == 200
        names = {item["name"] for item in json.loads(body)["content"]}
        assert "00_setup.ipynb" in names, names
        # Bound to loopback only (read from the kernel's socket table, no traffic sent).
        assert _listening_addresses(port) == {"127.0.0.1"}
        tcp6 = Path("/proc/net/tcp6")
        if tcp6.exists():
            assert f":{port:04X} " not in tcp6.read_text(), "JupyterLab listens on IPv6 too"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    # The URL to open is printed, and the server shut down cleanly on SIGTERM.
    assert f"http://127.0.0.1:{port}/lab" in out
    assert "Shutting down" in out or "shutting down" in out.lower(), out[-2000:]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the server still listens after SIGTERM"
