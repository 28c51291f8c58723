"""Workers for chapter 03 (concurrent.futures).

Chapter 02's workers work with executors too; the ones this chapter uses are
re-exported here so a notebook imports from one place.
"""

from __future__ import annotations

import multiprocessing
import time

from helpers.pools import (
    _check_seconds,
    checked_sqrt,
    exit_abruptly,
    logged_sqrt,
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
    "logged_sqrt",
    "fetch_from",
    "sleep_then_fail",
    "start_a_child",
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


def start_a_child() -> tuple[bool, int | None]:
    """Start a child process from this one and join it: ``(this process is daemonic, exit code)``.

    In a ``multiprocessing.Pool`` worker (a daemonic process) ``start()`` raises
    ``AssertionError``; a ``ProcessPoolExecutor`` worker may start children.
    """
    daemonic = multiprocessing.current_process().daemon
    child = multiprocessing.Process(target=whoami)
    child.start()
    child.join(30)
    if child.is_alive():  # never expected: whoami returns at once
        child.terminate()
        child.join()
    return daemonic, child.exitcode
