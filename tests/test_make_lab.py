"""`make lab`, the README's third command, starts JupyterLab and serves the lab page, as root
(a container, a cloud notebook) and as a normal user, with the course's settings (no news
prompt)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_lab(tmp_path: Path, user: str | None = None) -> tuple[int, str, str]:
    """Run `make lab` (as ``user`` if given), fetch /lab; return (status, page, log)."""
    if not (VENV / "bin" / "jupyter").exists():
        pytest.skip("no .venv: run `make install` first")
    port, token = free_port(), secrets.token_hex(16)
    # Somewhere the other user can write: pytest's tmp_path is private to this user.
    home = Path(tempfile.mkdtemp(prefix="course-lab-home-"))
    home.chmod(0o777)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "JUPYTER_TOKEN": token,
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    command = ["make", "--no-print-directory", "lab", f"LAB_PORT={port}", "LAB_ARGS=--no-browser"]
    if user is not None:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv (util-linux) is needed to run make lab as another user")
        uid = {"nobody": 65534}[user]
        # A normal user, who may still read this checkout's venv and the Python it points
        # at (pyenv's builds live under root's private home here): reading is all it may
        # do beyond what that user can.
        read = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]
        command = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *read, *command]
    log_path = tmp_path / "lab.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                return -process.returncode or -1, "", log_path.read_text()
            try:
                url = f"http://127.0.0.1:{port}/lab?token={token}"
                with urllib.request.urlopen(url, timeout=5) as response:
                    return response.status, response.read().decode(), log_path.read_text()
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    return 0, "", log_path.read_text()
                time.sleep(0.5)
    finally:
        members = (
            psutil.Process(process.pid).children(recursive=True) if process.poll() is None else []
        )
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:  # make already exited
            pass
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        psutil.wait_procs(members, timeout=10)
        shutil.rmtree(home, ignore_errors=True)


def page_config(page: str) -> dict:
    match = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.DOTALL
    )
    assert match, "the lab page has no jupyter-config-data"
    return json.loads(match.group(1))


def check_lab_page(status: int, page: str, log: str) -> None:
    assert status == 200, f"make lab did not serve the lab page (status {status}):\n{log[-3000:]}"
    config = page_config(page)
    assert config.get("appName") == "JupyterLab"
    assert config.get("news") == {"disabled": True}, "the news prompt is on: jupyter/ not used"


pytestmark = pytest.mark.skipif(
    not hasattr(os, "killpg"), reason="these tests start make lab in a process group (POSIX)"
)


def test_make_lab_serves_the_lab_page_as_this_user(tmp_path):
    check_lab_page(*serve_lab(tmp_path))


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() != 0, reason="needs root")
def test_make_lab_serves_the_lab_page_as_a_normal_user_too(tmp_path):
    check_lab_page(*serve_lab(tmp_path, user="nobody"))
