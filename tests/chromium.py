"""Headless Chromium for the browser tests: Debian's binary, driven by Playwright.

Playwright never downloads a browser here: it starts the system's ``chromium`` (or the one
named by ``COURSE_CHROMIUM``) with a fresh profile and the flags a closed network needs.
Without a Chromium the tests are skipped with the reason, except under CI (``CI=true``, or
``COURSE_REQUIRE_BROWSER=1`` as .ci/run sets), where a missing browser fails them: CI must
prove the pages and JupyterLab work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The Chromium binary to use, or None."""
    named = os.environ.get("COURSE_CHROMIUM")
    if named:
        return named if Path(named).is_file() else None
    for candidate in (shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def unavailable(reason: str) -> None:
    """Skip the test with ``reason``; under CI, fail it instead."""
    if os.environ.get("CI") == "true" or os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}: CI must run the browser tests", pytrace=False)
    pytest.skip(f"{reason}: browser test skipped")


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        unavailable("no chromium on this machine (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("the playwright package is missing (pip install -e '.[test]')")
    return path


@contextlib.contextmanager
def browser_context(viewport=(1280, 900)):
    """A Playwright browser context in headless Chromium, with a fresh profile folder."""
    from playwright.sync_api import sync_playwright

    executable = require_chromium()
    with tempfile.TemporaryDirectory(prefix="course-chromium-") as profile:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=FLAGS,
                viewport={"width": viewport[0], "height": viewport[1]},
                timeout=60_000,
            )
            try:
                yield context
            finally:
                context.close()
