"""Every chapter as a learner runs it: JupyterLab's own Run All, in headless Chromium.

A real ``jupyter lab`` server starts on 127.0.0.1 (a free port, a token, temporary Jupyter
and IPython folders) on a copy of notebooks/. For each notebook the test opens it, runs
the ``notebook:run-all-cells`` command, waits until the kernel is idle and no cell is queued,
and asserts from the page:

- every code cell ran (it shows an execution count);
- no error or stderr output is shown outside cells tagged ``raises-exception``;
- solution cells (tagged ``solution``) start collapsed: a closed ``<details>``;
- each check cell (tagged ``check``) answers the untouched skeleton with "Not yet";
- with the solution pasted into the exercise cell and both cells run again, as a learner
  would, the check says "Correct".

Then it shuts the kernel down; at the end the server, and the test fails if any process
the server started is still alive. Screenshots go to build/screenshots/jupyterlab/.
Skipped (with the reason) without a Chromium; under CI (CI=true) that fails instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import psutil
import pytest
from chromium import browser_context, require_chromium

from helpers.exercises import exercises

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = Path(os.environ.get("COURSE_NOTEBOOKS", ROOT / "notebooks"))
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
SCREENSHOTS = ROOT / "build" / "screenshots" / "jupyterlab"
RUN_ALL_TIMEOUT = 300  # seconds per notebook; a chapter takes 30 s at most on an idle machine
STDERR = "application/vnd.jupyter.stderr"


@dataclass
class Lab:
    url: str
    token: str
    process: subprocess.Popen
    log: Path
    seen: dict = field(default_factory=dict)

    def api(self, method: str, path: str, timeout: float = 10):
        request = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
            data=b"" if method == "POST" else None,
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def remember_processes(self) -> None:
        """Note the server's processes now (kernels and their children), to check at the end."""
        for proc in _tree(psutil.Process(self.process.pid)):
            self.seen.setdefault(proc.pid, proc)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tree(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    require_chromium()
    if not NOTEBOOKS:
        pytest.fail(f"no notebooks in {NOTEBOOK_DIR}")
    base = tmp_path_factory.mktemp("jupyterlab")
    work = base / "notebooks"
    shutil.copytree(NOTEBOOK_DIR, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    config = base / "config"
    # Notebooks render every cell (no windowing), so the page holds every cell's output.
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    # No "official Jupyter news?" prompt: the page shows only the notebook.
    settings = settings.parent / "apputils-extension"
    settings.mkdir()
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(config),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
    }
    # As a learner's kernel: default start method, children's output forwarded to the page.
    for name in ("PYTEST_CURRENT_TEST", "COURSE_START_METHOD"):
        env.pop(name, None)
    port, token = free_port(), secrets.token_hex(16)
    args = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={work}",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    if os.geteuid() == 0:
        args.append("--allow-root")
    log = base / "jupyterlab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            args,
            cwd=work,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Lab(f"http://127.0.0.1:{port}", token, process, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"jupyter lab exited ({process.returncode}):\n{log.read_text()}")
            try:
                server.api("GET", "/api/status", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer in 90 s:\n{log.read_text()}")
                time.sleep(0.5)
        yield server
    finally:
        server.remember_processes()
        _shut_down(server, list(server.seen.values()))


def _shut_down(server: Lab, processes: list[psutil.Process]) -> None:
    """Stop every kernel and the server; fail if anything they started is still alive."""
    try:
        for session in server.api("GET", "/api/sessions") or []:
            server.api("DELETE", f"/api/sessions/{session['id']}", timeout=30)
        server.api("POST", "/api/shutdown")
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        pass
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=15)
    if alive:
        described = [f"pid {p.pid}: {' '.join(p.cmdline())[:120]}" for p in alive if p.is_running()]
        for proc in alive:
            try:
                proc.kill()
            except psutil.Error:
                pass
        if described:
            pytest.fail("left running after JupyterLab shut down:\n  " + "\n  ".join(described))


@pytest.fixture(scope="module")
def context(lab):
    with browser_context(viewport=(1400, 1000)) as ctx:
        yield ctx


APP_READY = """name => {
    const app = window.jupyterapp;
    const w = app && app.shell.currentWidget;
    return !!(w && w.context && w.context.path === name && w.content && w.sessionContext
              && w.sessionContext.session && w.sessionContext.session.kernel
              && w.sessionContext.session.kernel.status === 'idle');
}"""

RUN_ALL = """() => {
    window.__courseRunAll = undefined;
    window.jupyterapp.commands.execute('notebook:run-all-cells').then(
        ok => { window.__courseRunAll = String(ok); },
        err => { window.__courseRunAll = 'error: ' + err; });
}"""

RUN_FINISHED = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    if (window.__courseRunAll === undefined) return false;
    const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
    if (!kernel || kernel.status !== 'idle') return false;
    return !w.content.widgets.some(c => c.model.type === 'code'
        && (c.node.querySelector('.jp-InputPrompt') || {}).textContent.includes('*'));
}"""

CELLS = """() => {
    const w = window.jupyterapp.shell.currentWidget;
    // checkVisibility: laid out, not in a closed <details> (content-visibility), not hidden.
    const shown = e => !!e && e.checkVisibility({visibilityProperty: true, opacityProperty: true});
    return w.content.widgets.map((c, index) => {
        const tags = c.model.getMetadata('tags') || [];
        const cell = {index, type: c.model.type, tags,
                      source: c.model.sharedModel.getSource().slice(0, 120)};
        if (c.model.type === 'code') {
            cell.prompt = (c.node.querySelector('.jp-InputPrompt') || {}).textContent || '';
            cell.stderr = [...c.node.querySelectorAll(
                    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
                .map(e => e.textContent.slice(0, 400));
            const area = c.node.querySelector('.jp-OutputArea');
            cell.output = area ? area.textContent.slice(-2000) : '';
        } else if (c.model.type === 'markdown') {
            const details = c.node.querySelector('.jp-RenderedMarkdown details');
            cell.details = details && {
                open: details.open,
                summary: (details.querySelector('summary') || {}).textContent || '',
                codeShown: [...details.querySelectorAll('pre')].some(shown),
            };
        }
        return cell;
    });
}"""


TRY_SOLUTION = """([exercise, check, code]) => {
    // As a learner does: paste the solution into the exercise cell, run it, run the check.
    const app = window.jupyterapp;
    const nb = app.shell.currentWidget.content;
    window.__courseTry = undefined;
    nb.widgets[exercise].model.sharedModel.setSource(code);
    const run = index => {
        nb.activeCellIndex = index;
        return app.commands.execute('notebook:run-cell');
    };
    run(exercise)
        .then(() => run(check))
        .then(() => {
            const area = nb.widgets[check].node.querySelector('.jp-OutputArea');
            window.__courseTry = area ? area.textContent : '';
        }, err => { window.__courseTry = 'error: ' + err; });
}"""


@pytest.mark.parametrize("nb_path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_run_all_in_jupyterlab(lab, context, nb_path):
    name = nb_path.name
    page = context.new_page()
    page.set_default_timeout(60_000)
    started = time.perf_counter()
    try:
        # A workspace of its own, emptied: only this notebook opens (no tabs, and no kernels,
        # brought back from the notebooks before it).
        url = f"{lab.url}/lab/workspaces/{nb_path.stem}/tree/{name}?reset&token={lab.token}"
        page.goto(url, wait_until="load")
        page.wait_for_function(APP_READY, arg=name, timeout=120_000, polling=250)
        page.evaluate(RUN_ALL)
        page.wait_for_function(RUN_FINISHED, timeout=RUN_ALL_TIMEOUT * 1000, polling=500)
        run_all = page.evaluate("() => window.__courseRunAll")
        elapsed = time.perf_counter() - started
        cells = page.evaluate(CELLS)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / f"{nb_path.stem}.png")
        answered = []  # the check's output after the solution was pasted in and run
        for exercise in exercises(nbformat.read(nb_path, as_version=4)):
            check = exercise.index + 1
            page.evaluate(TRY_SOLUTION, [exercise.index, check, exercise.solution_code])
            page.wait_for_function("() => window.__courseTry !== undefined", timeout=120_000)
            answered.append((check, page.evaluate("() => window.__courseTry")))
        with open(SCREENSHOTS / "timings.txt", "a") as timings:
            timings.write(f"{elapsed:6.1f} s  {name}\n")
    finally:
        lab.remember_processes()
        try:
            page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
        except Exception:  # the page may be gone; the server's shutdown stops the kernel
            pass
        page.close()
    code = [c for c in cells if c["type"] == "code"]
    assert code, f"{name}: no code cells on the page"
    # An error first: Run All stops there, so it explains the cells that did not run.
    for c in code:
        if "raises-exception" not in c["tags"]:
            assert not c["stderr"], (
                f"{name} cell {c['index']} shows an error or stderr output:\n"
                + "\n".join(c["stderr"])
            )
    not_run = [c for c in code if not re.search(r"\[\d+\]", c["prompt"])]
    assert not not_run, (
        f"{name}: Run All ({run_all}) left code cells without an execution count: "
        + "; ".join(f"cell {c['index']} {c['prompt']!r} {c['source'][:60]!r}" for c in not_run)
    )
    solutions = [c for c in cells if "solution" in c["tags"]]
    checks = [c for c in code if "check" in c["tags"]]
    expected = exercises(nbformat.read(nb_path, as_version=4))
    assert len(solutions) == len(checks) == len(expected), (
        f"{name}: the page shows {len(checks)} check and {len(solutions)} solution cells "
        f"for {len(expected)} exercises"
    )
    for c in solutions:
        details = c.get("details")
        assert details, f"{name} cell {c['index']}: solution is not a rendered <details> block"
        assert "Solution" in details["summary"], f"{name} cell {c['index']}: {details}"
        assert not details["open"] and not details["codeShown"], (
            f"{name} cell {c['index']}: the solution is not collapsed"
        )
    for c in checks:
        assert "raises-exception" in c["tags"], f"{name} cell {c['index']}: check untagged"
        assert "Not yet" in c["output"] and "Correct" not in c["output"], (
            f"{name} cell {c['index']}: the check should say 'Not yet' on the untouched "
            f"skeleton; it shows:\n{c['output'][-500:]}"
        )
    for check, output in answered:
        assert "Correct" in output and "Not yet" not in output, (
            f"{name} cell {check}: with the solution pasted into the exercise cell, the check "
            f"should say 'Correct'; it shows:\n{output[-500:]}"
        )
