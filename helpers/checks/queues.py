"""Checks for the exercises of chapter 04 (Queues)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import queue
from collections import Counter
from typing import Any

from helpers import queues
from helpers.checks import (
    call_with_timeout,
    expect,
    fail,
    passed,
    require_function,
    stop_processes,
)

__all__ = ["GATHER_COUNTS", "check_gather", "check_parallel_squares"]

# Items each producer sends in check_gather (a producer may send nothing but its sentinel).
GATHER_COUNTS = {"A": 6, "B": 0, "C": 9}


def _judge_gather(outcome: dict[str, Any], expected: Counter, timeout: float, where: str) -> None:
    if not outcome:
        fail(
            f"gather did not return within {timeout:.0f} s ({where}): it waited for more "
            "than was sent. Count the sentinels: stop after one None per producer, not after "
            "a fixed number of items."
        )
    if "error" in outcome:
        exc = outcome["error"]
        hint = (
            " q.empty() is no signal that the producers are done; wait for the sentinels"
            if isinstance(exc, queue.Empty)
            else ""
        )
        fail(f"gather raised {type(exc).__name__}: {exc}.{hint}")
    value = outcome["value"]
    expect(value is not None, "gather returned None: return the list of items you got")
    expect(isinstance(value, list), f"gather should return a list, got {type(value).__name__}")
    expect(
        None not in value,
        "the sentinels (None) are not items: count them, don't return them",
    )
    got = Counter(value)
    if got != expected:
        missing = sorted((expected - got).elements())
        extra = sorted((got - expected).elements())
        fail(
            f"{where}: expected {sum(expected.values())} items, got {len(value)}. "
            f"Missing {missing[:4]}{'...' if len(missing) > 4 else ''}, unexpected "
            f"{extra[:4]}. Neither the first None (ONE producer is done) nor an empty queue "
            "(the producers may still be working) means the end: keep going until you have "
            "seen one None per producer."
        )


def check_gather(gather: Any, *, timeout: float = 6.0) -> None:
    """Exercise 1: ``gather(q, n_producers)`` returns every item of ``n_producers`` producers,
    each of which signs off with its own ``None``.

    First a quick run on a prepared ``queue.Queue`` (the first sentinel comes early), then
    a real one: three producer processes running :func:`helpers.queues.produce_then_sentinel`
    with :data:`GATHER_COUNTS` items.
    """
    require_function(gather, "gather")
    # 1. In this process: one producer's sentinel arrives before the others' items.
    q: queue.Queue = queue.Queue()
    prepared = [("A", 0), None, ("C", 0), ("C", 1), None, ("B", 0), None]
    for item in prepared:
        q.put(item)
    expected = Counter(item for item in prepared if item is not None)
    outcome = call_with_timeout(gather, (q, 3), 2.0)
    if not outcome:
        q.put(None)  # release a gather that waits for a fourth sentinel
        q.put(None)
    _judge_gather(outcome, expected, 2.0, "on a queue holding 4 items and 3 sentinels")

    # 2. Real producer processes that trickle their items in.
    q = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(
            target=queues.produce_then_sentinel,
            args=(q, name, count, 0.01),
            name=f"producer {name}",
        )
        for name, count in GATHER_COUNTS.items()
    ]
    for p in procs:
        p.start()
    try:
        outcome = call_with_timeout(gather, (q, len(procs)), timeout)
        if not outcome:
            for _ in procs:
                q.put(None)  # release a gather waiting for more
    finally:
        stop_processes(procs, timeout=5.0)
        q.cancel_join_thread()  # the fillers above may never be read
        q.close()
    expected = Counter((name, i) for name, count in GATHER_COUNTS.items() for i in range(count))
    _judge_gather(outcome, expected, timeout, f"with {len(procs)} producer processes")
    passed(
        f"every item from {len(procs)} producers, including one that sent only its sentinel; "
        "you stopped after the last sentinel"
    )


# ---- Exercise 2 ---------------------------------------------------------------------------

SQUARE_INPUT = (7, 3, 11, 2, 8, 5, 0, 9, 4, 10, 1, 6)


class _ProcessWatch:
    """Record every Process started (and joined) while the learner's function runs."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.joined: set[int] = set()
        self._cls = multiprocessing.process.BaseProcess
        self._start = self._cls.start
        self._join = self._cls.join

    def __enter__(self) -> _ProcessWatch:
        watch = self

        def start(process: Any) -> None:
            watch._start(process)
            watch.started.append(process)

        def join(process: Any, timeout: float | None = None) -> None:
            watch._join(process, timeout)
            if process.exitcode is not None:
                watch.joined.add(id(process))

        self._cls.start, self._cls.join = start, join
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cls.start, self._cls.join = self._start, self._join


def check_parallel_squares(parallel_squares: Any, *, timeout: float = 10.0) -> None:
    """Exercise 2: ``parallel_squares(numbers, n_workers)`` squares ``numbers`` in
    ``n_workers`` processes running :func:`helpers.queues.square_indexed` and returns the
    squares in input order, after joining every worker.
    """
    require_function(parallel_squares, "parallel_squares")
    numbers, n_workers = list(SQUARE_INPUT), 2
    with _ProcessWatch() as watch:
        outcome = call_with_timeout(parallel_squares, (numbers, n_workers), timeout)
    still_running = [p for p in watch.started if p.exitcode is None]
    stop_processes(still_running, timeout=1.0)
    if not outcome:
        fail(
            f"parallel_squares did not return within {timeout:.0f} s: it was stuck "
            f"({len(still_running)} worker(s) still running, now stopped). One None stops one "
            "worker: put one per worker; and get() exactly one result per number, with a "
            "timeout."
        )
    if "error" in outcome:
        exc = outcome["error"]
        fail(f"parallel_squares raised {type(exc).__name__}: {exc}")
    value = outcome["value"]
    expect(value is not None, "parallel_squares returned None: return the list of squares")
    expect(
        len(watch.started) == n_workers,
        f"you started {len(watch.started)} process(es) for n_workers={n_workers}: start "
        "n_workers processes running queues.square_indexed(tasks, results)",
    )
    expected = [n * n for n in numbers]
    expect(
        isinstance(value, list),
        f"parallel_squares should return a list, got {type(value).__name__}",
    )
    if value != expected:
        if sorted(value, key=repr) == sorted(expected, key=repr):
            fail(
                "all the squares are there, but in the order they arrived, not in input "
                "order: each result carries its index, put it back at that position"
            )
        fail(f"expected {expected}, got {value}")
    unjoined = [p for p in watch.started if id(p) not in watch.joined]
    expect(
        not unjoined and not still_running,
        f"{len(unjoined)} worker(s) were not joined when parallel_squares returned: after "
        "collecting every result, join() each worker",
    )
    expect(
        all(p.exitcode == 0 for p in watch.started),
        f"a worker exited with code {[p.exitcode for p in watch.started]}",
    )
    passed(f"{len(numbers)} squares in input order from {n_workers} workers, both joined")
