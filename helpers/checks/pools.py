"""Checks for the exercises of chapter 02 (process pools)."""

from __future__ import annotations

import gc
import math
import multiprocessing
import multiprocessing.pool
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from helpers.checks import expect, fail, passed
from helpers.pools import Root, flaky_call_log

__all__ = ["RETRY_BATCH", "FIRST_FAILURE_BATCH", "check_run_with_retries", "check_first_failure"]

# Exercise 1: flaky_sqrt(x, attempt) fails with ConnectionError on its first int(x) % 3
# attempts; negative values always fail with ValueError. Each call for x >= 0 takes 0.05 s.
RETRY_BATCH = (9, 4, 5, -1, 2.25, 8, -4, 3, 0)
RETRY_ATTEMPTS = (1, 3, 2)  # 1: no retries at all; 3: every value can succeed; 2: some give up
REMOTE = ("RemoteTraceback", "_RemoteTraceback")  # Pool's, and ProcessPoolExecutor's


def _needed(x: float) -> int:
    """How many attempts flaky_sqrt needs for a non-negative x."""
    return int(abs(x)) % 3 + 1


def _children() -> set[Any]:
    return set(multiprocessing.active_children())


def _left_running(before: set[Any], grace: float = 1.0) -> list[Any]:
    """Child processes started since ``before`` that are still running after ``grace`` s.

    Whatever is found is stopped (its pool terminated), so the check leaves nothing behind.
    """
    deadline = time.monotonic() + grace
    while True:
        extra = [p for p in _children() - before if p.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if extra:
        for obj in gc.get_objects():
            try:
                if isinstance(obj, multiprocessing.pool.Pool) and any(
                    w in extra for w in obj._pool
                ):
                    obj.terminate()
                elif isinstance(obj, ProcessPoolExecutor) and any(
                    w in extra for w in (obj._processes or {}).values()
                ):
                    obj.shutdown(wait=False, cancel_futures=True)
            except Exception:  # best effort: the processes are stopped below anyway
                pass
        for p in extra:
            p.terminate()
            p.join(5)
    return extra


def _run_in_thread(
    func: Any, args: tuple, timeout: float, name: str, too_slow: str | None = None
) -> dict[str, Any]:
    """Call ``func(*args)`` in a thread; report its value, its exception, or that it hung.

    Fails, after stopping them, if the call left child processes running. A call still
    running after ``timeout`` fails with the hint ``too_slow``, if given.
    """
    outcome: dict[str, Any] = {}
    before = _children()

    def call() -> None:
        start = time.monotonic()
        try:
            outcome["value"] = func(*args)
        except BaseException as exc:  # reported as a hint, not as a traceback
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - start

    worker = threading.Thread(target=call, name=name, daemon=True)
    worker.start()
    peak = 0  # the most child processes (started during the call) seen alive at once
    deadline = time.monotonic() + timeout
    while worker.is_alive() and time.monotonic() < deadline:
        peak = max(peak, sum(p.is_alive() for p in _children() - before))
        worker.join(min(0.02, max(deadline - time.monotonic(), 0)))
    outcome["peak_children"] = peak
    if worker.is_alive():
        _left_running(before, grace=0)
        if too_slow:
            fail(too_slow)
        fail(
            f"{name} did not return within {timeout:.0f} s. Give every get() a timeout, and "
            "leave the with block (or terminate the pool) when you are done"
        )
    if "error" in outcome:
        _left_running(before, grace=0)
        exc = outcome["error"]
        fail(f"{name} raised {type(exc).__name__}: {exc}")
    extra = _left_running(before)
    expect(
        not extra,
        f"{len(extra)} worker process(es) were still running after {name} returned: a pool "
        "you start is yours to stop before you return (a with block does it for you)",
    )
    return outcome


def _overlapping(roots: list[Any]) -> bool:
    """True if two of these results were computed at the same time in different processes."""
    spans = sorted((r.start, r.end, r.pid) for r in roots)  # Roots, or flaky_sqrt's errors
    return any(
        b_start < a_end and a_pid != b_pid
        for i, (a_start, a_end, a_pid) in enumerate(spans)
        for b_start, _, b_pid in spans[i + 1 :]
    )


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
    final. ``results`` maps values to square roots, ``errors`` to the last exception. The
    check varies ``attempts``, tries an empty input, requires calls (and retries) to run
    at the same time, and that no worker process is left running.
    """
    expect(
        callable(run_with_retries),
        "pass your function itself: check_run_with_retries(run_with_retries)",
    )
    overlapped: list[bool] = []  # per run: did two calls run at the same time?
    retries_overlapped: list[bool] = []  # per run with retries: did two of them?
    for attempts in RETRY_ATTEMPTS:
        values = list(RETRY_BATCH)
        log = flaky_call_log(os.getpid())
        open(log, "w").close()  # flaky_sqrt notes its calls here while the file exists
        try:
            outcome = _run_in_thread(run_with_retries, (values, attempts), 30, "run_with_retries")
            with open(log) as lines:
                calls = [line.split() for line in lines]
        finally:
            os.remove(log)
        tried: dict[float, list[int]] = {}
        for x, attempt in calls:
            tried.setdefault(float(x), []).append(int(attempt))
        answer = outcome["value"]
        where = f"run_with_retries({values}, attempts={attempts})"
        results, errors = _result_pair(answer)
        expect(
            values == list(RETRY_BATCH),
            f"{where} changed the caller's list of values: work on a copy",
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
            expect(
                "(attempt 1)" in str(errors[value]),
                f"{where}: {value} was tried again after a ValueError ({errors[value]}): only "
                "a ConnectionError is worth another attempt",
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
            expect(
                f"(attempt {attempts})" in str(errors[value]),
                f"{where}: errors[{value}] is {errors[value]!r}, not the error of attempt "
                f"{attempts}, the last one: keep the exception of each value's latest attempt",
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
                isinstance(results[value], Root) and results[value].pid != os.getpid(),
                f"{where}: results[{value}] was not computed by flaky_sqrt in a worker "
                "process: store exactly what get() returned",
            )
        expect(
            sorted(results) == sorted(good) and sorted(errors) == sorted(bad + gave_up),
            f"{where}: results has keys {sorted(results)} and errors {sorted(errors)}; "
            f"expected {sorted(good)} and {sorted(bad + gave_up)}",
        )
        for value, exc in errors.items():
            _ran_in_a_worker(value, exc, "errors")
        for value in values if calls else ():  # no calls noted: the log is elsewhere
            last = 1 if value < 0 else min(_needed(value), attempts)  # ValueError is final
            expected = list(range(1, last + 1))
            got = sorted(tried.get(float(value), []))
            expect(
                got == expected,
                f"{where}: flaky_sqrt({value}, attempt) was called with attempt {got}, "
                f"expected {expected}: give each value attempt 1 first, and after each "
                "ConnectionError call it again with the next attempt number",
            )
        final = {v: results[v] for v in good} | {v: errors[v] for v in gave_up}
        timed = {v: call for v, call in final.items() if hasattr(call, "start")}
        overlapped.append(_overlapping(list(timed.values())))
        retried = [call for v, call in timed.items() if _needed(v) > 1]  # final attempt >= 2
        if attempts > 1 and len(retried) >= 2:
            retries_overlapped.append(_overlapping(retried))
    # Judged over all the runs, so that one worker starting late on a busy machine doesn't
    # fail a right answer; an answer that never overlaps its calls fails every run.
    expect(
        any(overlapped),
        "in no run did two calls run at the same time, so the pool's two workers never "
        "worked together. Submit a whole round of calls before you wait for any of them",
    )
    expect(
        any(retries_overlapped),
        "the retries ran one after another in every run. Submit every call that needs "
        "another attempt before you wait for any of them",
    )
    outcome = _run_in_thread(run_with_retries, ([], 2), 30, "run_with_retries")
    expect(
        _result_pair(outcome["value"]) == ({}, {}),
        f"run_with_retries([], 2) returned {outcome['value']!r}: with no values, return "
        "({}, {})",
    )
    passed(
        f"with {', '.join(map(str, RETRY_ATTEMPTS))} attempts, transient failures were retried "
        "side by side until they worked or the attempts ran out, and the permanent ones were "
        "reported at once."
    )


def _result_pair(answer: Any) -> tuple[dict, dict]:
    expect(answer is not None, "run_with_retries returned None: return (results, errors)")
    expect(
        isinstance(answer, tuple) and len(answer) == 2,
        f"run_with_retries should return a tuple (results, errors), got {type(answer).__name__}",
    )
    results, errors = answer
    expect(
        isinstance(results, dict) and isinstance(errors, dict),
        "results and errors should both be dicts keyed by the input value",
    )
    return results, errors


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
    limit = BATCH_SECONDS - 3.0  # room for starting the pool on a busy machine
    slow = (
        f"first_failure did not return within {limit:.1f} s: it waited for (most of) the "
        f"whole batch ({BATCH_SECONDS:.1f} s on 2 workers). map raises only after every task "
        "has run; take results one at a time (imap) and stop the pool at the first error"
    )
    outcome = _run_in_thread(first_failure, (values,), limit, "first_failure", too_slow=slow)
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
        f"the index is {index!r}, but the bad value {values[BAD]} is values[{BAD}]. Count "
        "positions only where results come in input order, one task per result: a chunk "
        "of several tasks raises its error at the chunk's first position",
    )
    expect(
        isinstance(exc, ValueError),
        f"the exception is {exc!r}: return the ValueError that get() or next() raised",
    )
    _ran_in_a_worker(index, exc, "the exception for values")
    expect(
        str(values[BAD]) in str(exc),
        f"the exception {exc!r} is not the one slow_sqrt({values[BAD]}) raised",
    )
    expect(
        outcome["peak_children"] >= 2,
        "no two worker processes were running at the same time during first_failure: run "
        "the batch on a Pool(2), so that two tasks run side by side",
    )
    seconds = outcome["seconds"]
    expect(seconds < limit, slow)
    calm_run = _run_in_thread(first_failure, ([1, 4],), 30, "first_failure")
    calm = calm_run["value"]
    expect(calm is None, f"first_failure([1, 4]) returned {calm!r}: with no error, return None")
    expect(
        calm_run["seconds"] >= 0.45,
        f"first_failure([1, 4]) returned after {calm_run['seconds']:.2f} s, sooner than "
        "slow_sqrt(1) takes: run the batch, and return None once every task has succeeded",
    )
    first = _run_in_thread(first_failure, ([-1, 4, 9],), 30, "first_failure")["value"]
    expect(
        isinstance(first, tuple) and len(first) == 2 and first[0] == 0,
        f"first_failure([-1, 4, 9]) returned {first!r}: the bad value is values[0]",
    )
    passed(
        f"the bad value was found after {seconds:.1f} s; the whole batch would take "
        f"{BATCH_SECONDS:.1f} s."
    )
