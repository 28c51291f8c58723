"""Workers for chapter 03 (concurrent.futures).

Chapter 02's workers work with executors too; the ones this chapter uses are
re-exported here so a notebook imports from one place.
"""

from __future__ import annotations

import time

from helpers.pools import (
    _check_seconds,
    checked_sqrt,
    exit_abruptly,
    slow_square,
    square,
    timed_sleep,
    whoami,
)

__all__ = [
    "square",
    "slow_square",
    "checked_sqrt",
    "timed_sleep",
    "whoami",
    "exit_abruptly",
    "fetch_from",
    "sleep_then_fail",
]


def fetch_from(mirror: str, seconds: float) -> str:
    """Pretend to download from ``mirror`` (sleep ``seconds``) and return the mirror's name."""
    if not isinstance(mirror, str):
        raise TypeError(f"mirror must be a str, got {type(mirror).__name__}")
    time.sleep(_check_seconds(seconds))
    return mirror


def sleep_then_fail(seconds: float) -> None:
    """Sleep ``seconds``, then raise ``RuntimeError``: a task that fails part-way."""
    time.sleep(_check_seconds(seconds))
    raise RuntimeError(f"failed after {seconds} s")
