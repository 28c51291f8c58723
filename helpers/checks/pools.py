"""Checks for the exercises of chapter 02 (process pools)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from helpers.checks import expect, fail, passed

__all__ = ["BATCH", "check_run_batch", "check_pick_chunksize"]

# The batch the check gives to run_batch: two bad inputs among good ones.
BATCH = (16, -1, 9, 2.25, -4, 0)


def check_run_batch(run_batch: Callable[[list], Any]) -> None:
    """Exercise 1: ``run_batch(values)`` returns ``(results, errors)`` as two dicts.

    ``results`` maps each good value to ``checked_sqrt(value)``, ``errors`` maps each
    bad value to the exception its task raised. Nothing may be lost.
    """
    expect(callable(run_batch), "pass your function itself: check_run_batch(run_batch)")
    values = list(BATCH)
    answer = run_batch(values)
    expect(answer is not None, "run_batch returned None: return (results, errors) at the end")
    expect(
        isinstance(answer, tuple) and len(answer) == 2,
        f"run_batch should return a tuple (results, errors), got {type(answer).__name__}",
    )
    results, errors = answer
    expect(
        isinstance(results, dict) and isinstance(errors, dict),
        "results and errors should both be dicts keyed by the input value",
    )
    good = [v for v in values if v >= 0]
    bad = [v for v in values if v < 0]
    if not errors:
        fail(
            f"errors is empty, but {bad} make checked_sqrt raise. A failed task only shows its "
            "exception when you call .get() on its AsyncResult: call get() on every one, inside "
            "try/except."
        )
    expect(
        sorted(errors) == sorted(bad),
        f"errors has keys {sorted(errors)}; expected exactly the bad inputs {sorted(bad)}",
    )
    for value, exc in errors.items():
        expect(
            isinstance(exc, ValueError),
            f"errors[{value}] is {exc!r}: store the exception object the task raised "
            "(a ValueError), as caught by `except ValueError as exc`",
        )
    expect(
        sorted(results) == sorted(good),
        f"results has keys {sorted(results)}; expected every good input {sorted(good)}",
    )
    for value in good:
        expect(
            isinstance(results[value], float) and math.isclose(results[value], math.sqrt(value)),
            f"results[{value}] is {results[value]!r}, expected {math.sqrt(value)}: store the "
            "value get() returns",
        )
    for value, exc in errors.items():
        # A pool re-raises a worker's exception with the worker's traceback attached as
        # its __cause__ (multiprocessing.pool.RemoteTraceback).
        expect(
            type(exc.__cause__).__name__ == "RemoteTraceback",
            f"errors[{value}] was raised in this process, not in a worker: run every "
            "checked_sqrt call in the pool (pool.apply_async) and collect it with get()",
        )
    passed(f"{len(results)} results and {len(errors)} errors, nothing lost.")


# (n_tasks, n_workers) pairs the chunksize rule is tried on.
CHUNK_CASES = ((10_000, 2), (1_000, 4), (100, 2), (7, 8), (1, 1), (1_000_000, 16))


def check_pick_chunksize(pick_chunksize: Callable[[int, int], Any]) -> None:
    """Exercise 2: ``pick_chunksize(n_tasks, n_workers)`` gives each worker a few chunks.

    Accepted: an int >= 1 such that each worker gets at least 2 chunks (when there are
    enough tasks) and at most 16 chunks.
    """
    expect(callable(pick_chunksize), "pass your function itself: check_pick_chunksize(f)")
    for n_tasks, n_workers in CHUNK_CASES:
        size = pick_chunksize(n_tasks, n_workers)
        where = f"pick_chunksize({n_tasks}, {n_workers}) returned {size!r}"
        expect(
            isinstance(size, int) and not isinstance(size, bool),
            f"{where}: chunksize must be an int (use // or math.ceil, not /)",
        )
        expect(size >= 1, f"{where}: chunksize must be at least 1")
        chunks = math.ceil(n_tasks / size)
        expect(
            chunks >= min(n_tasks, 2 * n_workers),
            f"{where}: that makes only {chunks} chunk(s) for {n_workers} workers. With fewer "
            "than 2 chunks per worker, workers sit idle while the last big chunk runs.",
        )
        expect(
            chunks <= 16 * n_workers,
            f"{where}: that makes {chunks} chunks, more than 16 per worker; each chunk is a "
            "round trip through the pool's queues. Make the chunks bigger.",
        )
    passed("every worker gets a few chunks: few round trips, and no worker left idle at the end.")
