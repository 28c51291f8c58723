"""Checks for the exercises of chapter 09 (performance)."""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import time
from collections.abc import Callable
from typing import Any

from helpers.checks import LearnerFunction, call_with_timeout, expect, fail, passed

__all__ = [
    "TIMING_TABLES",
    "fit_model",
    "reference_plan",
    "check_plan_workers",
    "BLAS_CASES",
    "check_init_worker",
]

# --- Exercise 1: the fastest number of workers when every worker costs something -------


def _table(a: float, b: float, c: float, workers: tuple[int, ...], seed: int) -> dict[int, float]:
    """Timings that follow ``a + b/n + c*n``, each off by up to 2 % (seeded: the same
    every run), as real measurements would be."""
    import random

    rng = random.Random(seed)
    return {n: round((a + b / n + c * n) * (1 + rng.uniform(-0.02, 0.02)), 4) for n in workers}


# (serial seconds a, parallel seconds b, cost per worker c): the optimum lies between the
# measured counts (about 14), near the top (about 55), low (about 3), beyond 64 (so 64), in
# a table of only three measurements (about 10), and (a sharp minimum, about 22) where no
# power of two comes within 3 % (so searching only 1, 2, 4, ..., 64 fails).
TIMING_TABLES = (
    _table(0.4, 24.0, 0.12, (1, 2, 4, 8, 32), 1),
    _table(1.0, 60.0, 0.02, (1, 4, 16, 32, 64), 2),
    _table(0.2, 3.0, 0.25, (1, 2, 3, 6, 8), 3),
    _table(0.5, 40.0, 0.003, (1, 4, 16, 32, 48), 4),
    _table(0.3, 10.0, 0.1, (1, 3, 30), 5),
    _table(0.1, 50.0, 0.1, (64, 8, 1, 4, 2), 6),
)
MAX_WORKERS = 64
TOLERANCE = 1.03  # an answer whose predicted time is within 3 % of the best one is right


def fit_model(timings: dict[int, float]) -> tuple[float, float, float]:
    """Least-squares fit of ``T(n) = a + b/n + c*n`` to ``timings``; returns ``(a, b, c)``."""
    import numpy as np

    ns = np.array(sorted(timings), dtype=float)
    seconds = np.array([timings[n] for n in sorted(timings)])
    columns = np.column_stack([np.ones_like(ns), 1 / ns, ns])
    (a, b, c), *_ = np.linalg.lstsq(columns, seconds, rcond=None)
    return float(a), float(b), float(c)


def predicted_times(timings: dict[int, float]) -> list[float]:
    """The fitted model's time for 1 to MAX_WORKERS workers (index 0: one worker)."""
    a, b, c = fit_model(timings)
    return [a + b / n + c * n for n in range(1, MAX_WORKERS + 1)]


def reference_plan(timings: dict[int, float]) -> int:
    """The answer the check expects: workers (1-64) with the shortest predicted time."""
    predicted = predicted_times(timings)
    return predicted.index(min(predicted)) + 1


def _as_count(value: Any) -> int | None:
    """``value`` as an int if it is a whole number (int, NumPy integer, 12.0), else None."""
    import numbers
    import operator

    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def check_plan_workers(plan_workers: Callable[[dict[int, float]], Any]) -> None:
    """Exercise 1: ``plan_workers(timings)`` returns the fastest number of workers (1-64)
    under the model ``T(n) = a + b/n + c*n`` fitted to ``timings``."""
    expect(callable(plan_workers), "pass your function itself: check_plan_workers(plan_workers)")
    for timings in TIMING_TABLES:
        given = dict(timings)
        outcome = call_with_timeout(plan_workers, (given,), 5)
        if "error" in outcome:
            error = outcome["error"]
            fail(f"for {timings} plan_workers raised {type(error).__name__}: {error}")
        if "value" not in outcome:
            fail(f"plan_workers did not return within 5 s for {timings}")
        expect(
            given == timings,
            "plan_workers changed the timings it was given: leave them as they are",
        )
        answer = outcome["value"]
        n = _as_count(answer)
        expect(
            n is not None,
            f"plan_workers returned {answer!r}: return the number of workers, a whole number",
        )
        expect(
            1 <= n <= MAX_WORKERS,
            f"for {timings} you chose {n} workers: choose from 1 to {MAX_WORKERS} (if the model "
            f"keeps improving beyond {MAX_WORKERS}, the answer is {MAX_WORKERS})",
        )
        predicted = predicted_times(timings)
        best = min(predicted)
        if predicted[n - 1] <= best * TOLERANCE:
            continue
        fastest_measured = min(timings, key=timings.get)
        if n == fastest_measured:
            hint = (
                "that is the fastest count that was measured. The fastest count may lie between "
                "or beyond the measured ones: fit the model, then look at every n from 1 to 64."
            )
        elif n > max(timings) or n == MAX_WORKERS:
            hint = (
                "Amdahl's law alone never predicts a slow-down. Here every worker adds a cost "
                "c*n: fit T(n) = a + b/n + c*n (three unknowns, linear in a, b and c)."
            )
        else:
            hint = (
                "fit all three unknowns to every measurement (least squares), then compare the "
                "predicted times of every n from 1 to 64."
            )
        fail(
            f"for {timings} you chose {n} workers, for which the fitted model predicts "
            f"{predicted[n - 1]:.2f} s; the best count takes {best:.2f} s: {hint}"
        )
    passed(
        "best worker counts "
        + ", ".join(str(reference_plan(t)) for t in TIMING_TABLES)
        + ". Where each worker costs something, adding workers helps only up to about "
        "sqrt(b/c); beyond that the job gets slower again."
    )


# --- Exercise 2: share the CPUs between workers' BLAS thread pools --------------------

# (CPUs of the machine, workers in the pool) the check tries; each worker starts with
# BLAS set to STARTING_THREADS, as NumPy would on a machine with that many CPUs.
# (8, 3): 2 threads, not 3 (rounding or ceiling); (4, 1): one worker still gets a limit, 4;
# (1, 2): at least 1 (0 would leave the limit unchanged).
BLAS_CASES = ((8, 2), (8, 3), (4, 1), (1, 2))
STARTING_THREADS = 8
INIT_TIMEOUT = 60  # seconds a worker may take to start and answer

_init_error: str | None = None
# (get, set) for each BLAS thread pool threadpoolctl finds in this worker, captured before
# any learner code runs there: an initializer that patches threadpoolctl (to report a number
# it never set, or no BLAS at all) can't change what the check reads.
_blas: list[tuple[Callable[[], Any], Callable[[int], Any]]] | None = None


def _blas_pools() -> list[tuple[Callable[[], Any], Callable[[int], Any]]]:
    global _blas
    if _blas is None:
        import numpy  # noqa: F401  (loads the BLAS library)
        from threadpoolctl import ThreadpoolController

        _blas = [
            (lib.get_num_threads, lib.set_num_threads)
            for lib in ThreadpoolController().lib_controllers
            if lib.user_api == "blas"
        ]
    return _blas


def _start_worker(init: Any, total_cpus: int, workers: int, started: Any = None) -> None:
    """Initializer the check gives the pool: BLAS at STARTING_THREADS, then the learner's.
    As the pool's initializer it first puts its pid on ``started`` (a worker the pool had to
    replace shows up as a second pid)."""
    global _init_error
    pools = _blas_pools()
    if started is not None:
        started.put(os.getpid())
    _init_error = None
    for _, set_threads in pools:
        set_threads(STARTING_THREADS)
    try:
        init(total_cpus, workers)
    except BaseException as exc:  # reported to the learner as a hint (sys.exit() included:
        # a worker that exits in its initializer would be replaced, again and again)
        _init_error = f"{type(exc).__name__}: {exc}"


def _report() -> tuple[int, str | None, bool]:
    """The worker's BLAS threads, its initializer's error, and whether threadpoolctl saw a
    BLAS at all (it can't see Apple's Accelerate, NumPy's BLAS on macOS 14 and later)."""
    pools = _blas_pools()
    return max((get() or 0 for get, _ in pools), default=0), _init_error, bool(pools)


def _start_again(init: Any, total_cpus: int, workers: int) -> tuple[int, str | None, bool]:
    """Task for the pool's worker: BLAS back at STARTING_THREADS, the learner's initializer
    run again with other arguments, then the report (one spawned worker for every case)."""
    _start_worker(init, total_cpus, workers)
    return _report()


def expected_threads(total_cpus: int, workers: int) -> int:
    """BLAS threads each worker should have: a fair share of the CPUs, at least one."""
    return max(1, total_cpus // workers)


def check_init_worker(init_worker: Callable[[int, int], Any]) -> None:
    """Exercise 2: ``init_worker(total_cpus, workers)`` limits each worker's BLAS threads.

    The check starts a spawn pool whose workers first set BLAS to 8 threads (as on an
    8-CPU machine), then run the learner's initializer; a worker reports its threads.
    """
    expect(callable(init_worker), "pass your function itself: check_init_worker(init_worker)")
    func = LearnerFunction(init_worker)
    spawn = multiprocessing.get_context("spawn")
    # A Pool, not a ProcessPoolExecutor: leaving the with block terminates the worker, so an
    # initializer that never returns can't make the check hang after the timeout. The first
    # case runs as the pool's initializer; the others run it again in the same worker (one
    # spawn start-up in all), each starting from STARTING_THREADS again.
    started = spawn.SimpleQueue()
    pool = spawn.Pool(1, initializer=_start_worker, initargs=(func, *BLAS_CASES[0], started))
    with pool, contextlib.closing(started):
        for case, (total, workers) in enumerate(BLAS_CASES):
            want = expected_threads(total, workers)
            if case == 0:
                answer = pool.apply_async(_report)
            else:
                answer = pool.apply_async(_start_again, (func, total, workers))
            _wait_for(answer, started)
            try:
                threads, error, visible = answer.get(timeout=0)
            except Exception as exc:  # e.g. the initializer broke what the report needs
                fail(
                    f"the worker failed after your initializer ran ({type(exc).__name__}: "
                    f"{exc}): set the limit and return, changing nothing else"
                )
            if error is None and not visible:
                print(
                    "Not checked: threadpoolctl finds no BLAS thread pool in NumPy on this "
                    "machine (on macOS 14 and later NumPy uses Apple's Accelerate, which it "
                    "can neither see nor limit), so the threads can't be counted here. Your "
                    "function ran without an error; compare it with the solution."
                )
                return
            _judge_threads(func, total, workers, want, threads, error)
    passed(
        "each worker's BLAS now uses its share of the CPUs (4 of 8 with 2 workers, and at "
        "least 1), so the pool no longer runs more threads than there are CPUs."
    )


def _wait_for(answer: Any, started: Any) -> None:
    """Wait for ``answer`` (an AsyncResult) for up to INIT_TIMEOUT s; fail at once if the
    pool had to start a second worker: the first one exited while running the initializer
    (or the task), so the answer would never come."""
    pids = []
    deadline = time.monotonic() + INIT_TIMEOUT
    while not answer.ready():
        while not started.empty():
            pids.append(started.get())
        expect(
            len(pids) <= 1,
            "the worker exited while running your initializer (os._exit()? a crash?), and "
            "the pool started another one: set the limit and return, so that the worker "
            "goes on to run its tasks",
        )
        if time.monotonic() > deadline:
            fail(
                f"a worker did not answer within {INIT_TIMEOUT:g} s: does your initializer "
                "wait for something?"
            )
        answer.wait(0.1)


def _judge_threads(
    func: LearnerFunction, total: int, workers: int, want: int, threads: int, error: str | None
) -> None:
    """Fail with a hint unless a worker of ``total`` CPUs / ``workers`` runs ``want`` threads."""
    if error is not None:
        if error.startswith(("NameError", "ImportError", "ModuleNotFoundError")):
            fail(
                f"your initializer raised {error} in the worker. It runs in a fresh process "
                "that only has the modules your function uses: call "
                "threadpoolctl.threadpool_limits (with `import threadpoolctl` in the notebook)."
            )
        if error.startswith("SystemExit"):
            fail(
                f"your initializer raised {error}: it ends the worker it should prepare. Set "
                "the limit and return; the worker then goes on to run its tasks."
            )
        fail(f"your initializer raised {error} in the worker: it must set the limit and return.")
    if threads == want:
        return
    source = func.source
    if threads == STARTING_THREADS:
        if "environ" in source:
            hint = (
                "setting an environment variable does nothing once NumPy is loaded (it is, "
                "in a worker that ran numpy code). Call threadpoolctl.threadpool_limits."
            )
        elif "with " in source:
            hint = (
                "a with block restores the old limit when it ends, before the worker runs "
                "any task. Call threadpool_limits(...) without with: the limit then lasts "
                "for the worker's life."
            )
        else:
            hint = "the limit did not change: call threadpoolctl.threadpool_limits(limits=...)."
    elif threads == 1 and want > 1:
        hint = (
            f"one thread each leaves CPUs idle: {total} CPUs shared by {workers} workers is "
            f"{want} threads each (total_cpus // workers)."
        )
    else:
        hint = "use total_cpus // workers threads, and at least 1."
    fail(
        f"with {total} CPUs and {workers} worker{'s' * (workers != 1)}, a worker runs {threads} "
        f"BLAS threads, expected {want}: {hint}"
    )
