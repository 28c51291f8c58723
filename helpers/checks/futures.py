"""Checks for the exercises of chapter 03 (concurrent.futures)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from typing import Any

from helpers.checks import expect, fail, passed
from helpers.futures import checked_sqrt

__all__ = ["TALLY_INPUTS", "MIRROR_SETS", "check_tally_outcome", "check_fastest"]

# The tasks check_tally_outcome submits: two of them fail.
TALLY_INPUTS = (4, -1, 9, -9, 16)


class _Collect(logging.Handler):
    """Keep log records instead of printing them."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def check_tally_outcome(tally_outcome: Callable[[Any, dict], Any]) -> None:
    """Exercise 1: a done-callback ``tally_outcome(future, tally)`` that never raises.

    The check submits ``checked_sqrt`` for :data:`TALLY_INPUTS` to a process pool and
    adds ``partial(tally_outcome, tally=tally)`` as each future's callback, where
    ``tally = {"results": [], "errors": []}``. Every result must land in
    ``tally["results"]`` and every exception in ``tally["errors"]``.
    """
    expect(callable(tally_outcome), "pass your function itself: check_tally_outcome(f)")
    tally: dict[str, list] = {"results": [], "errors": []}
    # An exception in a callback is only logged by concurrent.futures: catch the log
    # here so the hint can say what happened.
    logger = logging.getLogger("concurrent.futures")
    handler = _Collect()
    logger.addHandler(handler)
    saved = logger.propagate
    logger.propagate = False
    try:
        with ProcessPoolExecutor(max_workers=2) as executor:
            for x in TALLY_INPUTS:
                future = executor.submit(checked_sqrt, x)
                future.add_done_callback(partial(tally_outcome, tally=tally))
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved
    if handler.records:
        record = handler.records[0]
        exc = record.exc_info[1] if record.exc_info else None
        fail(
            f"your callback raised {exc!r} in {len(handler.records)} of {len(TALLY_INPUTS)} "
            "calls. concurrent.futures only logs an exception raised in a callback, so the "
            "failure is easy to miss. Check future.exception() first and call "
            "future.result() only when it is None."
        )
    good = sorted(math.sqrt(x) for x in TALLY_INPUTS if x >= 0)
    n_bad = sum(1 for x in TALLY_INPUTS if x < 0)
    results, errors = tally.get("results"), tally.get("errors")
    expect(
        isinstance(results, list) and isinstance(errors, list),
        'keep tally["results"] and tally["errors"] as lists: append to them',
    )
    expect(
        len(errors) == n_bad,
        f'tally["errors"] has {len(errors)} entries; {n_bad} tasks failed. Append '
        "future.exception() when it is not None.",
    )
    expect(
        all(isinstance(e, ValueError) for e in errors),
        f'tally["errors"] should hold the exceptions themselves (ValueError), got {errors!r}',
    )
    expect(
        sorted(results) == good,
        f'tally["results"] is {sorted(results)}; expected {good} (the value of '
        "future.result() for each task that succeeded)",
    )
    passed(f"{len(results)} results and {len(errors)} errors tallied; the callback never raised.")


# Each set maps a mirror's name to how long its (fake) download takes.
MIRROR_SETS = (
    {"slow": 0.8, "medium": 0.4, "fast": 0.05},
    {"eu": 0.4, "us": 0.05, "asia": 0.8},
)


def check_fastest(fastest: Callable[[Any, dict], Any]) -> None:
    """Exercise 2: ``fastest(executor, mirrors)`` returns the first mirror to finish.

    The check passes a fresh ``ThreadPoolExecutor`` (waiting on downloads is I/O) and
    each dict of :data:`MIRROR_SETS`; the answer must come back well before the
    slowest download would finish.
    """
    expect(callable(fastest), "pass your function itself: check_fastest(fastest)")
    for mirrors in MIRROR_SETS:
        expected = min(mirrors, key=mirrors.get)
        slowest = max(mirrors.values())
        with ThreadPoolExecutor(max_workers=len(mirrors)) as executor:
            start = time.perf_counter()
            answer = fastest(executor, dict(mirrors))
            took = time.perf_counter() - start
        expect(answer is not None, "fastest returned None: return the winning mirror's name")
        if answer != expected:
            first = next(iter(mirrors))
            hint = (
                "map() and a loop over the futures in submit order give results in input "
                "order; use as_completed() or wait(..., return_when=FIRST_COMPLETED)."
                if answer == first
                else "return future.result() of the first future that completes."
            )
            fail(f"for {mirrors} you returned {answer!r}, expected {expected!r}: {hint}")
        expect(
            took < slowest - 0.2,
            f"the answer took {took:.2f} s: you waited for every download (the slowest takes "
            f"{slowest} s). Return as soon as the first one completes.",
        )
    passed("you return as soon as the first download completes, whichever mirror it is.")
