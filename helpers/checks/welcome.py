"""Check for the exercise in chapter 00 (welcome): downloads that wait, parsing that computes.

``download(url)`` waits (like a network request) and ``parse(page)`` is pure-Python
computation. Both record where and when they ran, so the check judges the answer by what
happened: downloads that overlapped, parsing in several processes at the same time, and
nothing left running afterwards.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any, NamedTuple

import psutil

from helpers import timeline
from helpers.checks import call_with_timeout, expect, fail, passed

__all__ = ["Page", "Parsed", "download", "parse", "check_download_and_parse"]

DOWNLOAD_SECONDS = 0.1  # each download waits this long
PARSE_CPU_SECONDS = 0.12  # each parse computes this long (CPU time of its thread)
# Processes multiprocessing starts for its own bookkeeping: not the answer's to stop.
_BOOKKEEPERS = ("resource_tracker", "forkserver")


class Page(NamedTuple):
    """A downloaded page: its url, its text, and when and where the download ran."""

    url: str
    text: str
    span: timeline.Span


class Parsed(NamedTuple):
    """What parsing found in a page (url, word count), and the download's and parse's spans."""

    url: str
    words: int
    downloaded: timeline.Span
    span: timeline.Span


def download(url: str) -> Page:
    """Simulate downloading ``url``: wait, then return the :class:`Page`.

    The wait is :data:`DOWNLOAD_SECONDS`, or what the url asks for with ``?wait=SECONDS``
    (the check makes early pages slow, so pages finish out of order, as real ones do).
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    start = timeline.now()
    _, _, asked = url.partition("?wait=")
    time.sleep(float(asked) if asked else DOWNLOAD_SECONDS)
    text = " ".join([url] * (len(url) % 7 + 3))
    return Page(url, text, timeline.make_span(f"download {url}", start, timeline.now()))


def parse(page: Page) -> Parsed:
    """Simulate parsing ``page``: compute in pure Python, then return the :class:`Parsed`."""
    if not isinstance(page, Page):
        raise TypeError(f"page must be a Page from download(), got {type(page).__name__}")
    start = timeline.now()
    spent = time.thread_time()
    total = 0
    while time.thread_time() - spent < PARSE_CPU_SECONDS:  # holds the GIL while it computes
        for i in range(1000):
            total += i * i
    words = len(page.text.split())
    span = timeline.make_span(f"parse {page.url}", start, timeline.now())
    return Parsed(page.url, words, page.span, span)


def _expected(url: str) -> int:
    return len(url) % 7 + 3


def _our_children() -> list[psutil.Process]:
    """Child processes of this process, minus multiprocessing's own bookkeepers."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
        except psutil.Error:
            continue
        if not any(name in cmdline for name in _BOOKKEEPERS):
            found.append(child)
    return found


def _running(child: psutil.Process) -> bool:
    """Whether ``child`` still runs (a zombie has ended; it just wasn't reaped yet)."""
    try:
        return child.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _settled(before_threads: int, seconds: float = 3.0) -> tuple[list[Any], int]:
    """Wait up to ``seconds`` for children and threads to go; return what is left."""
    deadline = time.monotonic() + seconds
    while True:
        children = _our_children()
        extra_threads = threading.active_count() - before_threads
        if (not children and extra_threads <= 0) or time.monotonic() > deadline:
            return children, extra_threads
        time.sleep(0.05)


class _PeakChildren:
    """Count, every 50 ms while active, the child processes running at once; keep the peak."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, len(_our_children()))

    def __enter__(self) -> _PeakChildren:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _run(answer: Any, urls: list[str], timeout: float) -> tuple[list[Any], int]:
    """Call the answer on ``urls``; return its results as a list (or fail with a hint), and
    the peak number of child processes running at once during the call."""
    before_threads = threading.active_count()
    with _PeakChildren() as children_seen:
        outcome = call_with_timeout(answer, (list(urls), download, parse), timeout)
    if not outcome:
        fail(
            f"download_and_parse({len(urls)} urls) had not returned after {timeout:.0f} s: "
            "does it wait for something that never comes?"
        )
    if "error" in outcome:
        exc = outcome["error"]
        fail(f"download_and_parse raised {type(exc).__name__}: {exc}")
    # Right at return: an executor left to shut down on its own (shutdown(wait=False)) still
    # has its workers, which a with block or shutdown() (wait=True) would have joined.
    running_at_return = [c for c in _our_children() if _running(c)]
    threads_at_return = threading.active_count() - before_threads
    value = outcome["value"]
    expect(
        value is not None,
        "download_and_parse returned None: return the parse results, one per url",
    )
    try:
        results = list(value)
    except TypeError:
        fail(f"download_and_parse should return a list of results, got {type(value).__name__}")
    children, extra_threads = _settled(before_threads)
    for child in children:  # don't leave them running, whatever the verdict
        try:
            child.kill()
        except psutil.Error:
            pass
    expect(
        not children,
        f"{len(children)} child process(es) were still running after download_and_parse "
        "returned: shut down (or leave the `with` block of) every pool or executor you start",
    )
    expect(
        extra_threads <= 0,
        f"{extra_threads} thread(s) were still running after download_and_parse returned: "
        "shut down every executor you start (a `with` block does it)",
    )
    expect(
        not running_at_return and threads_at_return <= 0,
        f"when download_and_parse returned, {len(running_at_return)} worker process(es) and "
        f"{max(threads_at_return, 0)} thread(s) were still running (they ended later on their "
        "own): wait for every pool or executor to finish shutting down before returning",
    )
    return results, children_seen.peak


def check_download_and_parse(download_and_parse: Any) -> None:
    """Check ``download_and_parse(urls, download, parse)`` by what happened when it ran."""
    expect(
        callable(download_and_parse),
        "pass the function itself: check_download_and_parse(download_and_parse)",
    )
    tag = random.randrange(1000, 9999)
    # Early pages take longest, so finishing order is the reverse of the urls' order.
    urls = [
        f"https://example.com/{tag}/page-{i}{'x' * i}?wait={0.05 * (5 - i):.2f}" for i in range(5)
    ]
    urls.insert(3, urls[1])  # the same page twice: one result per url, duplicates included
    results, peak = _run(download_and_parse, urls, timeout=8)
    expect(
        all(isinstance(r, Parsed) for r in results),
        "return what parse() returned for each page (a list of its results), not "
        f"{type(results[0]).__name__ if results else 'an empty list'}",
    )
    expect(
        [r.url for r in results] == urls,
        f"got results for {len(results)} pages, not one per url in the order of urls "
        f"({len(urls)} urls)",
    )
    expect(
        all(r.words == _expected(r.url) for r in results),
        "a result does not match its page: pass each url's own page to parse()",
    )
    downloads = [r.downloaded for r in results]
    expect(
        timeline.max_overlap(downloads) >= 2,
        "the downloads ran one after another: a download spends its time waiting. Can "
        "several waits happen at the same time?",
    )
    me = os.getpid()
    expect(
        all(s.pid == me for s in downloads),
        "download() ran in another process: a download only waits, and waiting needs no CPU "
        "of its own. Which kind of worker waits side by side in this process, cheaper to start?",
    )
    parse_spans = [r.span for r in results]
    expect(
        all(s.pid != me for s in parse_spans),
        "parse() ran in this process: it is pure-Python computation, so threads in one "
        "process take turns at it. Where can two parses really run at the same time?",
    )
    parse_pids = {s.pid for s in parse_spans}
    # Two processes parsed at the same time; or, on a busy machine where one worker started
    # late and found no work left, at least two child processes were running at once.
    expect(
        (len(parse_pids) >= 2 and timeline.max_overlap(parse_spans) >= 2) or peak >= 2,
        f"parse() ran in {len(parse_pids)} process(es) and never in two at the same time: "
        "use at least two worker processes for parsing",
    )
    expect(
        _run(download_and_parse, [], timeout=8)[0] == [],
        "with no urls, return an empty list",
    )
    passed(
        "the downloads waited side by side, and the pages were parsed in worker processes "
        f"({len(parse_pids)} of them did the parsing)"
    )
