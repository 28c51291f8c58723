"""Checks for the exercises of chapter 09 (performance)."""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from typing import Any

from helpers.checks import LearnerFunction, expect, fail, passed

__all__ = [
    "TIMING_TABLES",
    "reference_plan",
    "check_plan_workers",
    "BLAS_CASES",
    "check_init_worker",
]

# --- Exercise 1: serial fraction and worker count from a table of timings -------------


def _table(t1: float, f: float, workers: tuple[int, ...]) -> dict[int, float]:
    return {n: round(t1 * (f + (1 - f) / n), 4) for n in workers}


# Made-up measurements that follow Amdahl's law (serial fractions 0.3, 0.12, 0.035),
# with T(1) of a few seconds so that seconds and speed-ups differ.
TIMING_TABLES = (
    _table(2.0, 0.30, (1, 2, 4, 8)),
    _table(6.0, 0.12, (1, 2, 3, 4, 6)),
    _table(3.5, 0.035, (1, 2, 4, 8, 16)),
)
MAX_WORKERS = 64


def reference_plan(timings: dict[int, float]) -> tuple[float, int]:
    """The answer the check expects: (fitted serial fraction, workers at >= 50% efficiency)."""
    import numpy as np

    ns = sorted(timings)
    speedups = [timings[1] / timings[n] for n in ns]
    _, intercept = np.polyfit([1 / n for n in ns], [1 / s for s in speedups], 1)
    f = float(intercept)
    best = max(n for n in range(1, MAX_WORKERS + 1) if 1 / (f * n + 1 - f) >= 0.5)
    return f, best


def check_plan_workers(plan_workers: Callable[[dict[int, float]], Any]) -> None:
    """Exercise 1: ``plan_workers(timings)`` returns ``(serial_fraction, workers)``."""
    expect(callable(plan_workers), "pass your function itself: check_plan_workers(plan_workers)")
    for timings in TIMING_TABLES:
        f_ref, n_ref = reference_plan(timings)
        answer = plan_workers(dict(timings))
        expect(
            isinstance(answer, tuple) and len(answer) == 2,
            f"plan_workers returned {answer!r}: return a tuple (serial_fraction, workers)",
        )
        f, n = answer
        expect(
            isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f),
            f"the serial fraction should be a number, got {f!r}",
        )
        if abs(f - f_ref) > 0.01:
            t1 = timings[1]
            if abs(f - (1 - f_ref)) < 0.02:
                hint = (
                    "that is the slope of the line (the parallel fraction). The serial fraction "
                    "is the intercept: 1/S where 1/n reaches 0."
                )
            elif abs(f - f_ref * t1) < 0.02:
                hint = (
                    "you fitted seconds, not speed-ups: compute S(n) = T(1) / T(n) first, then "
                    "fit 1/S against 1/n."
                )
            else:
                hint = "fit 1/S against 1/n with numpy.polyfit(x, y, 1); the intercept is f."
            fail(f"for {timings} your serial fraction is {f:.3f}, expected {f_ref:.3f}: {hint}")
        expect(
            isinstance(n, int) and not isinstance(n, bool),
            f"workers should be an int, got {n!r}",
        )
        if n != n_ref:
            if n == max(timings):
                hint = (
                    "that is the largest count in the table. Use Amdahl's law with your serial "
                    "fraction to predict the efficiency S(n)/n for every n up to 64."
                )
            else:
                hint = (
                    "the efficiency predicted by Amdahl's law is 1 / (f*n + 1 - f); keep the "
                    "largest n (up to 64) where it is still at least 0.5."
                )
            fail(f"for serial fraction {f_ref:.3f} you chose {n} workers, expected {n_ref}: {hint}")
    passed(
        "serial fractions "
        + ", ".join(f"{reference_plan(t)[0]:.3f}" for t in TIMING_TABLES)
        + "; worker counts "
        + ", ".join(str(reference_plan(t)[1]) for t in TIMING_TABLES)
        + ". The smaller the serial part, the more workers pay off."
    )


# --- Exercise 2: share the CPUs between workers' BLAS thread pools --------------------

# (CPUs of the machine, workers in the pool) the check tries; each worker starts with
# BLAS set to STARTING_THREADS, as NumPy would on a machine with that many CPUs.
BLAS_CASES = ((8, 2), (1, 2))
STARTING_THREADS = 8

_init_error: str | None = None


def _start_worker(init: Any, total_cpus: int, workers: int) -> None:
    """Initializer the check gives the pool: BLAS at STARTING_THREADS, then the learner's."""
    global _init_error
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=STARTING_THREADS, user_api="blas")
    try:
        init(total_cpus, workers)
    except Exception as exc:  # reported to the learner as a hint
        _init_error = f"{type(exc).__name__}: {exc}"


def _report() -> tuple[int, str | None]:
    from helpers.performance import blas_threads

    return blas_threads(), _init_error


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
    for total, workers in BLAS_CASES:
        want = expected_threads(total, workers)
        with ProcessPoolExecutor(
            max_workers=1,
            mp_context=spawn,
            initializer=_start_worker,
            initargs=(func, total, workers),
        ) as executor:
            try:
                threads, error = executor.submit(_report).result(timeout=60)
            except FuturesTimeout:
                fail(
                    "a worker did not answer within 60 s: does your initializer wait for something?"
                )
        if error is not None:
            fail(
                f"your initializer raised {error} in the worker. It runs in a fresh process that "
                "only has the modules your function uses: call threadpoolctl.threadpool_limits "
                "(with `import threadpoolctl` in the notebook)."
            )
        if threads == want:
            continue
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
            f"with {total} CPUs and {workers} workers, a worker runs {threads} BLAS threads, "
            f"expected {want}: {hint}"
        )
    passed(
        "each worker's BLAS now uses its share of the CPUs (4 of 8 with 2 workers, and at "
        "least 1), so the pool no longer runs more threads than there are CPUs."
    )
