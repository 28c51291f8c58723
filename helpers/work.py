"""What chapters share: CPU-bound work, simulated downloads, and the usable CPU count."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from helpers import timeline
from helpers.validate import check_count as _check_count
from helpers.validate import check_seconds as _check_seconds

if TYPE_CHECKING:  # pathlib is imported when needed: workers start faster without it
    from pathlib import Path

__all__ = [
    "busy_sum",
    "timed_busy_sum",
    "calibrate",
    "fake_download",
    "usable_cpus",
    "cgroup_cpu_limit",
    "parse_cpu_max",
    "parse_cfs_quota",
    "URLS",
]

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


def cgroup_cpu_limit(
    proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
    cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
) -> float | None:
    """Return the CPU quota of this process's cgroup in CPUs (``1.5``), or ``None`` if unlimited.

    A container limited with ``docker run --cpus 1.5``, a Kubernetes CPU limit or a
    Binder session gets a *quota*: so many microseconds of CPU time per period. Linux
    enforces it, but neither ``os.cpu_count()`` nor the affinity mask shows it.

    The cgroup comes from ``proc_cgroup`` (lines ``id:controllers:path``). cgroup v2:
    ``cpu.max`` holds ``"<quota> <period>"`` or ``"max <period>"`` (no limit). cgroup v1:
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, where a quota of ``-1`` means no limit.
    Limits nest, so the smallest quota from the process's cgroup up to the root counts.
    Both paths can be changed, for tests; missing or unreadable files mean no limit.
    """
    from pathlib import Path

    root = Path(cgroup_root)
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":  # cgroup v2
            limits += _quotas(root, path, _read_cpu_max)
        elif "cpu" in controllers.split(","):  # cgroup v1
            for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                if (root / mount).is_dir():
                    limits += _quotas(root / mount, path, _read_cfs_quota)
                    break
    return min(limits) if limits else None


def _quotas(mount: Path, path: str, read: Any) -> list[float]:
    """The quotas found from ``mount/path`` up to ``mount``.

    Inside a container the process's cgroup path is often the host's, and the
    container sees its own cgroup at the mount point: the walk up ends there too.
    """
    found = []
    folder = mount / path.strip("/")
    while True:
        quota = read(folder)
        if quota is not None:
            found.append(quota)
        if folder == mount or mount not in folder.parents:
            return found
        folder = folder.parent


def parse_cpu_max(text: str) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` line, e.g. ``"150000 100000"`` -> 1.5.

    The file holds ``"$QUOTA $PERIOD"`` in microseconds; ``"max ..."`` means no limit
    (returns ``None``). A line with the quota alone uses the kernel's default period
    (100000 us). Raises ``ValueError`` on anything else.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    fields = text.split()
    if not 1 <= len(fields) <= 2:
        raise ValueError(f"text must be 'QUOTA PERIOD' or 'max PERIOD', got {text!r}")
    quota = fields[0]
    try:
        period = int(fields[1]) if len(fields) == 2 else 100_000
        if quota == "max":
            return None
        quota_us = int(quota)
    except ValueError:
        raise ValueError(f"text must be 'QUOTA PERIOD' or 'max PERIOD', got {text!r}") from None
    if quota_us <= 0 or period <= 0:
        raise ValueError(f"quota and period must be > 0, got {text!r}")
    return quota_us / period


def parse_cfs_quota(quota: str, period: str) -> float | None:
    """CPUs allowed by cgroup v1 files ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us``.

    A quota of ``-1`` means no limit (returns ``None``); ``"150000"`` and ``"100000"``
    give 1.5. Raises ``ValueError`` on anything else.
    """
    for name, value in (("quota", quota), ("period", period)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        raise ValueError(f"quota and period must be integers, got {quota!r}, {period!r}") from None
    if quota_us == -1:
        return None
    if quota_us <= 0 or period_us <= 0:
        raise ValueError(f"quota must be -1 or > 0 and period > 0, got {quota!r}, {period!r}")
    return quota_us / period_us


def _read_cpu_max(folder: Path) -> float | None:
    try:
        return parse_cpu_max((folder / "cpu.max").read_text())
    except (OSError, ValueError):
        return None


def _read_cfs_quota(folder: Path) -> float | None:
    try:
        quota = (folder / "cpu.cfs_quota_us").read_text().strip()
        return parse_cfs_quota(quota, (folder / "cpu.cfs_period_us").read_text().strip())
    except (OSError, ValueError):
        return None


def _cpu_count_override() -> int | None:
    """The CPU count set with ``PYTHON_CPU_COUNT`` or ``-X cpu_count`` (Python 3.13+), if any."""
    if sys.version_info < (3, 13):
        return None  # older Pythons ignore both
    value = sys._xoptions.get("cpu_count")  # -X cpu_count=n wins over the variable
    if value is None and not sys.flags.ignore_environment:
        value = os.environ.get("PYTHON_CPU_COUNT")
    if isinstance(value, str) and value.isdigit() and int(value) >= 1:
        return int(value)
    return None  # unset, "default" or "process": no override


def usable_cpus(
    *,
    proc_cgroup: str | os.PathLike[str] = "/proc/self/cgroup",
    cgroup_root: str | os.PathLike[str] = "/sys/fs/cgroup",
) -> int:
    """Return how many CPUs this process can really keep busy at once (at least 1).

    1. On Python 3.13+, a CPU count set with ``PYTHON_CPU_COUNT=n`` (or ``-X cpu_count=n``)
       is what ``os.process_cpu_count()`` returns, and it wins: the user said so.
    2. Otherwise the CPUs this process may run on: ``os.process_cpu_count()`` (3.13+), else
       the size of the affinity mask (``os.sched_getaffinity``, Linux), else ``os.cpu_count()``.
    3. That is lowered to a container's CPU quota (:func:`cgroup_cpu_limit`), rounded
       down: a quota of 1.5 CPUs keeps only one CPU busy all the time.

    The keyword arguments locate the cgroup files (see :func:`cgroup_cpu_limit`), for tests.
    """
    override = _cpu_count_override()
    if override is not None:
        return os.process_cpu_count() or override
    if hasattr(os, "process_cpu_count"):
        count = os.process_cpu_count()
    elif hasattr(os, "sched_getaffinity"):
        count = len(os.sched_getaffinity(0))
    else:
        count = os.cpu_count()
    count = count or 1
    limit = cgroup_cpu_limit(proc_cgroup, cgroup_root)
    if limit is not None:
        count = min(count, math.floor(limit))
    return max(1, count)
