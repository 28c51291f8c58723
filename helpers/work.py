"""What chapters share: CPU-bound work, simulated downloads, and the usable CPU count."""

from __future__ import annotations

import os
import time
from typing import Any

from helpers import timeline
from helpers.validate import check_count as _check_count
from helpers.validate import check_seconds as _check_seconds

__all__ = ["busy_sum", "timed_busy_sum", "calibrate", "fake_download", "usable_cpus", "URLS"]

# Offline stand-ins for the pages a scraper would fetch (nothing is downloaded).
URLS = ("https://example.org/a", "https://example.org/b", "https://example.org/c")


def busy_sum(n: int) -> int:
    """CPU-bound pure-Python loop (holds the GIL): the sum of i*i % 7 for i < n."""
    _check_count(n)
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def timed_busy_sum(label: str, n: int) -> timeline.Span:
    """Run :func:`busy_sum` and return the span it took (label, pid, thread, times)."""
    with timeline.record(label) as rec:
        busy_sum(n)
    return rec.span


def calibrate(seconds: float = 0.2) -> int:
    """Return n such that ``busy_sum(n)`` takes about ``seconds`` on this machine."""
    seconds = _check_seconds(seconds)
    if seconds == 0:
        raise ValueError("seconds must be > 0")
    n = 20_000
    while True:
        start = time.perf_counter()
        busy_sum(n)
        took = time.perf_counter() - start
        if took > 0.05:
            return max(1, int(n * seconds / took))
        n *= 4


def fake_download(url: str, seconds: float = 0.3, sink: Any = None) -> timeline.Span:
    """Pretend to download ``url`` (sleep ``seconds``) and return the span it took.

    With ``sink`` (a queue or list), the span is also delivered there: use that from a
    ``Process``, which has no return value.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a str, got {type(url).__name__}")
    seconds = _check_seconds(seconds)
    with timeline.record(url.rsplit("/", 1)[-1] or url, sink=sink) as rec:
        time.sleep(seconds)
    return rec.span


def usable_cpus() -> int:
    """Return how many CPUs this process may run on.

    ``os.process_cpu_count()`` (Python 3.13+) where it exists, else the size of the
    CPU affinity mask (``os.sched_getaffinity``, Linux), else ``os.cpu_count()``.
    ``os.cpu_count()`` alone counts every CPU in the machine, including ones a
    container or ``taskset`` does not let this process use. Never less than 1.
    """
    if hasattr(os, "process_cpu_count"):
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count()
    return count or 1
