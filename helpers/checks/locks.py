"""Checks for the exercises of chapter 07 (race conditions, locks and semaphores)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

from helpers import timeline
from helpers.checks import (
    LearnerFunction,
    collect,
    expect,
    fail,
    passed,
    require_function,
    stop_processes,
)

__all__ = ["check_safe_sell", "check_polite_download"]


class _WatchedLock:
    """A re-entrant lock that knows whether it is held (like a Value's own RLock)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.depth = 0

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        got = self._lock.acquire(block, -1 if timeout is None else timeout)
        if got:
            self.depth += 1
        return got

    def release(self) -> None:
        self.depth -= 1
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class _WatchedTickets:
    """Stands in for ``multiprocessing.Value``: records every access made without its lock."""

    def __init__(self, value: int) -> None:
        self._value = value
        self._lock = _WatchedLock()
        self.unlocked_accesses = 0

    def get_lock(self) -> _WatchedLock:
        return self._lock

    @property
    def value(self) -> int:
        if self._lock.depth == 0:
            self.unlocked_accesses += 1
        return self._value

    @value.setter
    def value(self, new: int) -> None:
        if self._lock.depth == 0:
            self.unlocked_accesses += 1
        self._value = new


def check_safe_sell(func: Any, processes: int = 2, times: int = 20_000) -> None:
    """Check ``safe_sell(tickets, times)``: every read and write under ``tickets.get_lock()``,
    and an exact total when several processes sell at once."""
    require_function(func)
    watched = _WatchedTickets(1000)
    try:
        func(watched, 50)
    except Exception as exc:
        fail(f"{func.__name__}(tickets, 50) raised {exc!r}")
    sold = 1000 - watched._value
    expect(sold == 50, f"{func.__name__}(tickets, 50) sold {sold} tickets, expected 50")
    expect(
        watched.unlocked_accesses == 0,
        f"tickets.value was read or written {watched.unlocked_accesses} times without holding "
        "tickets.get_lock(): put the read AND the write inside `with tickets.get_lock():`",
    )

    start = processes * times
    tickets = multiprocessing.Value("i", start)
    worker = LearnerFunction(func)
    workers = [
        multiprocessing.Process(target=worker, args=(tickets, times)) for _ in range(processes)
    ]
    for p in workers:
        p.start()
    stuck = stop_processes(workers, 60)
    expect(not stuck, "a process was still selling after 60 s: does every acquire have a release?")
    codes = [p.exitcode for p in workers]
    expect(codes == [0] * processes, f"the processes exited with codes {codes}, expected all 0")
    expect(
        tickets.value == 0,
        f"{processes} processes x {times} sales left {tickets.value} tickets, expected 0",
    )
    passed(f"{processes} processes sold {start} tickets and none was lost.")


def _run_threads(func: Any, urls: list[str], limit: int, seconds_allowed: float) -> list:
    sem = threading.Semaphore(limit)
    sink: list = []
    errors: list = []

    def task(url: str) -> None:
        try:
            func(sem, url, sink)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=task, args=(url,), daemon=True) for url in urls]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds_allowed
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [t for t in threads if t.is_alive()]
    if stuck:
        for _ in range(len(urls)):  # let the blocked threads finish
            sem.release()
        fail(
            f"{len(stuck)} of {len(urls)} tasks never got a place: release the semaphore after "
            "each download (`with limit:` does it for you, even on errors)"
        )
    if errors:
        fail(f"{func.__name__} raised {errors[0]!r}")
    return sink


def check_polite_download(func: Any, limit: int = 2, downloads: int = 6) -> None:
    """Check ``polite_download(limit, url, sink)``: at most ``limit`` downloads at a time,
    first with threads (quick and deterministic), then with real processes."""
    require_function(func)
    urls = [f"https://example.org/page{i}" for i in range(downloads)]
    sink = _run_threads(func, urls, limit, seconds_allowed=2 + 0.5 * downloads)
    expect(
        len(sink) == downloads and all(isinstance(s, timeline.Span) for s in sink),
        f"expected {downloads} spans in sink (one per download from work.fake_download), "
        f"got {len(sink)}",
    )
    overlap = timeline.max_overlap(sink)
    expect(
        overlap <= limit,
        f"{overlap} downloads ran at the same time, but limit allows {limit}: "
        "download inside `with limit:`",
    )

    sem = multiprocessing.Semaphore(limit)
    spans = multiprocessing.Queue()
    worker = LearnerFunction(func)
    workers = [multiprocessing.Process(target=worker, args=(sem, url, spans)) for url in urls]
    for p in workers:
        p.start()
    got = collect(spans, len(urls), timeout=30)
    stop_processes(workers, 10 * len(workers))
    expect(
        len(got) == downloads,
        f"only {len(got)} of {downloads} processes delivered a span to sink",
    )
    overlap = timeline.max_overlap(got)
    expect(overlap <= limit, f"{overlap} processes downloaded at once; the limit is {limit}")
    passed(
        f"{downloads} downloads in {downloads} processes, never more than {limit} at a time "
        f"(max overlap {overlap})."
    )
