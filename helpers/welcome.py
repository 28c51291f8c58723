"""Small tools for chapter 00 (welcome): how many CPUs this process may use."""

from __future__ import annotations

import os

__all__ = ["usable_cpus"]


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
