"""Checks for the exercises of chapter 02 (process pools)."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from helpers.checks import expect, fail, passed

__all__ = ["RETRY_BATCH", "FIRST_FAILURE_BATCH", "check_run_with_retries", "check_first_failure"]

# Exercise 1: flaky_sqrt(x, attempt) fails with ConnectionError on its first int(abs(x)) % 3
# attempts; negative values always fail with ValueError.
RETRY_BATCH = (9, 4, 5, -1, 2.25, 8, -4)
REMOTE = ("RemoteTraceback", "_RemoteTraceback")  # Pool's, and ProcessPoolExecutor's


def _needed(x: float) -> int:
    """How many attempts flaky_sqrt needs for a non-negative x."""
    return int(abs(x)) % 3 + 1


def _run_in_thread(func: Any, args: tuple, timeout: float, name: str) -> dict[str, Any]:
    """Call ``func(*args)`` in a thread; report its value, its exception, or that it hung."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        start = time.monotonic()
        try:
            outcome["value"] = func(*args)
        except BaseException as exc:  # reported as a hint, not as a traceback
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - start

    worker = threading.Thread(target=call, name=name, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        fail(
            f"{name} did not return within {timeout:.0f} s. Give every get() a timeout, and "
            "leave the with block (or terminate the pool) when you are done"
        )
    if "error" in outcome:
        exc = outcome["error"]
        fail(f"{name} raised {type(exc).__name__}: {exc}")
    return outcome


def _ran_in_a_worker(value: Any, exc: BaseException, name: str) -> None:
    cause = type(exc.__cause__).__name__
    expect(
        cause in REMOTE,
        f"{name}[{value}] was raised in this process, not in a worker process (it has no "
        "remote traceback): run every call in the pool (pool.apply_async) and collect it "
        "with get()",
    )


def check_run_with_retries(run_with_retries: Any) -> None:
    """Exercise 1: ``run_with_retries(values, attempts) -> (results, errors)``.

    Each value's ``flaky_sqrt(value, attempt)`` runs in a worker; a ``ConnectionError`` is
    retried (attempt 2, 3, ...) up to ``attempts`` attempts in all, any other exception is
    final. ``results`` maps values to square roots, ``errors`` to the last exception.
    """
    expect(
        callable(run_with_retries),
        "pass your function itself: check_run_with_retries(run_with_retries)",
    )
    for attempts in (2,):  # 4 needs 2 attempts, 5 and 8 need 3: retried, then given up
        values = list(RETRY_BATCH)
        outcome = _run_in_thread(run_with_retries, (values, attempts), 30, "run_with_retries")
        answer = outcome["value"]
        where = f"run_with_retries({values}, attempts={attempts})"
        expect(answer is not None, "run_with_retries returned None: return (results, errors)")
        expect(
            isinstance(answer, tuple) and len(answer) == 2,
            f"run_with_retries should return a tuple (results, errors), got "
            f"{type(answer).__name__}",
        )
        results, errors = answer
        expect(
            isinstance(results, dict) and isinstance(errors, dict),
            "results and errors should both be dicts keyed by the input value",
        )
        good = [v for v in values if v >= 0 and _needed(v) <= attempts]
        gave_up = [v for v in values if v >= 0 and _needed(v) > attempts]
        bad = [v for v in values if v < 0]
        for value in bad:
            expect(
                value in errors,
                f"{where}: errors has no entry for {value}. Every failed task must show up: "
                "call get() on each AsyncResult inside try/except",
            )
            expect(
                isinstance(errors[value], ValueError),
                f"{where}: errors[{value}] is {errors[value]!r}; a negative value fails with "
                "ValueError on every attempt: don't retry it, store that exception",
            )
        for value in gave_up:
            expect(
                value not in results,
                f"{where}: {value} needs {_needed(value)} attempts, more than {attempts}: "
                "stop retrying after `attempts` attempts in all",
            )
            expect(
                isinstance(errors.get(value), ConnectionError),
                f"{where}: errors[{value}] should be the ConnectionError of its last attempt, "
                f"got {errors.get(value)!r}",
            )
        missing = [v for v in good if v not in results]
        if missing:
            retried = any(_needed(v) > 1 for v in missing)
            fail(
                f"{where}: results has no entry for {missing}. "
                + (
                    "Their first attempt failed with ConnectionError: submit them again "
                    "with attempt=2, then 3, while attempts are left"
                    if retried
                    else "Store the value get() returns for every task that succeeded"
                )
            )
        for value in good:
            expect(
                isinstance(results[value], float)
                and math.isclose(results[value], math.sqrt(value)),
                f"{where}: results[{value}] is {results[value]!r}, expected {math.sqrt(value)}",
            )
        expect(
            sorted(results) == sorted(good) and sorted(errors) == sorted(bad + gave_up),
            f"{where}: results has keys {sorted(results)} and errors {sorted(errors)}; "
            f"expected {sorted(good)} and {sorted(bad + gave_up)}",
        )
        for value, exc in errors.items():
            _ran_in_a_worker(value, exc, "errors")
    passed(
        "transient failures were retried until they worked or the attempts ran out, and the "
        "permanent ones were reported at once."
    )


# Exercise 2: slow_sqrt(x) takes 0.5 s (a bad x fails at once); the bad value comes early.
FIRST_FAILURE_BATCH = (1, 4, 9, -16, *(n * n for n in range(5, 31)))
BAD = 3  # the index of the bad value
BATCH_SECONDS = 0.5 * (len(FIRST_FAILURE_BATCH) - 1) / 2  # the whole batch on 2 workers


def check_first_failure(first_failure: Any) -> None:
    """Exercise 2: ``first_failure(values) -> (index, exception) or None``, failing fast.

    The check gives a batch of 30 slow tasks whose fourth value is bad: the whole batch
    takes about 7 s on 2 workers, a fail-fast answer returns well before that. A batch with
    no bad value must give None.
    """
    expect(callable(first_failure), "pass your function itself: check_first_failure(f)")
    values = list(FIRST_FAILURE_BATCH)
    outcome = _run_in_thread(first_failure, (values,), 30, "first_failure")
    answer = outcome["value"]
    expect(
        answer is not None,
        f"first_failure(...) returned None, but slow_sqrt({values[BAD]}) fails: "
        "return (index, exception)",
    )
    expect(
        isinstance(answer, tuple) and len(answer) == 2,
        f"first_failure should return a tuple (index, exception), got {answer!r}",
    )
    index, exc = answer
    expect(
        index == BAD,
        f"the index is {index!r}, but the bad value {values[BAD]} is values[{BAD}]. imap gives the "
        "results (and raises the errors) in input order, so you can count where you are",
    )
    expect(
        isinstance(exc, ValueError),
        f"the exception is {exc!r}: return the ValueError that get() or next() raised",
    )
    _ran_in_a_worker(index, exc, "the exception for values")
    seconds = outcome["seconds"]
    expect(
        seconds < BATCH_SECONDS - 3.0,  # room for starting the pool on a busy machine
        f"first_failure took {seconds:.1f} s: it waited for the whole batch "
        f"({BATCH_SECONDS:.1f} s on 2 workers). map raises only after every task has run; "
        "take results one at a time (imap) and stop the pool at the first error",
    )
    calm = _run_in_thread(first_failure, ([1, 4],), 30, "first_failure")["value"]
    expect(calm is None, f"first_failure([1, 4]) returned {calm!r}: with no error, return None")
    passed(
        f"the bad value was found after {seconds:.1f} s; the whole batch would take "
        f"{BATCH_SECONDS:.1f} s."
    )
