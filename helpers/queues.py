"""Workers for chapter 04 (Queues): producers, consumers and stages that talk through queues.

Every function here runs in a child process, so it lives in a module that spawn and
forkserver children can import by name.
"""

from __future__ import annotations

import os
import time
from typing import Any

from helpers import timeline
from helpers.validate import check_count as _check_int
from helpers.validate import check_seconds as _check_seconds

__all__ = [
    "put_one",
    "put_big",
    "put_big_and_leave",
    "get_one",
    "produce",
    "consume",
    "timed_producer",
    "slow_consumer",
    "work_queue_worker",
    "fragile_worker",
    "produce_then_sentinel",
    "produce_then_linger",
    "init_results",
    "square_to_results",
    "square_to",
    "produce_then_crash",
    "make_block",
]


def _check_queue(q: Any, name: str = "q") -> Any:
    if not (hasattr(q, "put") and hasattr(q, "get")):
        raise TypeError(f"{name} must be a queue with put() and get(), got {type(q).__name__}")
    return q


def put_one(q: Any, item: Any) -> None:
    """Put one item on the queue (the smallest possible producer)."""
    _check_queue(q).put(item)


def put_big(q: Any, size: int, put_returned: Any = None) -> None:
    """Put one ``bytes`` item of ``size`` bytes on the queue, tagged with this process's pid.

    The item is ``(pid, payload)``; with a large ``size`` the queue's feeder thread
    cannot push it all into the pipe until someone reads it. If ``put_returned`` (an
    ``Event``) is given, it is set as soon as ``put()`` has returned.
    """
    _check_queue(q)
    size = _check_int(size, "size")
    if put_returned is not None and not hasattr(put_returned, "set"):
        raise TypeError(
            f"put_returned must be an Event (or None), got {type(put_returned).__name__}"
        )
    q.put((os.getpid(), bytes(size)))
    if put_returned is not None:
        put_returned.set()


def put_big_and_leave(q: Any, size: int) -> None:
    """Like :func:`put_big`, then ``cancel_join_thread()``: exit without flushing the item."""
    put_big(q, size)
    q.cancel_join_thread()


def get_one(q: Any, results: Any, go: Any = None) -> None:
    """Get one item from ``q`` (blocking) and put ``len(item[1])`` on ``results``.

    If ``go`` (an ``Event``) is given, wait until it is set (at most 30 s) before reading.
    """
    _check_queue(q, "q")
    _check_queue(results, "results")
    if go is not None and not hasattr(go, "wait"):
        raise TypeError(f"go must be an Event (or None), got {type(go).__name__}")
    if go is not None:
        go.wait(30)
    _, payload = q.get()
    results.put(len(payload))


def produce(q: Any, name: str, count: int, seconds: float = 0.0) -> None:
    """Put ``count`` items ``(name, 0) ... (name, count - 1)`` on the queue.

    ``seconds`` is a pause before each put (to let several producers overlap).
    """
    _check_queue(q)
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    seconds = _check_seconds(seconds)
    for i in range(_check_int(count, "count")):
        time.sleep(seconds)
        q.put((name, i))


def consume(q: Any, results: Any, seconds: float = 0.0) -> None:
    """Get items until the sentinel ``None``; then put the list of items got on ``results``.

    ``seconds`` simulates work per item. One sentinel stops one consumer, so a
    program with N consumers puts N sentinels.
    """
    _check_queue(q, "q")
    _check_queue(results, "results")
    seconds = _check_seconds(seconds)
    got = []
    while True:
        item = q.get()
        if item is None:
            break
        time.sleep(seconds)
        got.append(item)
    results.put(got)


def timed_producer(q: Any, count: int, spans: Any) -> None:
    """Put ``0 ... count - 1`` on ``q``, recording how long each ``put()`` waited.

    Each put is a span ``put i`` delivered to ``spans`` (a queue): on a bounded queue
    that a slow consumer can't keep up with, the puts get long (back-pressure).
    """
    _check_queue(q, "q")
    _check_queue(spans, "spans")
    for i in range(_check_int(count, "count")):
        with timeline.record(f"put {i}", sink=spans):
            q.put(i)
    q.put(None)


def slow_consumer(q: Any, seconds: float, spans: Any) -> None:
    """Get items until ``None``, spending ``seconds`` on each (a span ``work i`` each)."""
    _check_queue(q, "q")
    _check_queue(spans, "spans")
    seconds = _check_seconds(seconds)
    while True:
        item = q.get()
        if item is None:
            break
        with timeline.record(f"work {item}", sink=spans):
            time.sleep(seconds)


def work_queue_worker(tasks: Any, results: Any) -> None:
    """Serve a ``JoinableQueue`` of numbers: put ``n * n`` on ``results``, then ``task_done()``.

    Runs until it gets the sentinel ``None`` (which it also marks done).
    """
    _check_queue(tasks, "tasks")
    _check_queue(results, "results")
    if not hasattr(tasks, "task_done"):
        raise TypeError("tasks must be a JoinableQueue (it needs task_done())")
    while True:
        n = tasks.get()
        try:
            if n is None:
                return
            results.put((n, n * n))
        finally:
            tasks.task_done()


def fragile_worker(tasks: Any, results: Any, poison: Any) -> None:
    """Serve a ``JoinableQueue`` like :func:`work_queue_worker`, but die on ``poison``.

    On the item ``poison`` the process exits at once with ``os._exit(1)``, as a crash
    would: that item is never marked done, so ``tasks.join()`` can't return. Before
    dying it flushes what it put on ``results`` (``close()`` then ``join_thread()``), so
    those items arrive whole.
    """
    _check_queue(tasks, "tasks")
    _check_queue(results, "results")
    if not hasattr(tasks, "task_done"):
        raise TypeError("tasks must be a JoinableQueue (it needs task_done())")
    if poison is None:
        raise ValueError("poison must not be None (None is the sentinel)")
    while True:
        n = tasks.get()
        if n == poison:
            results.close()
            results.join_thread()  # everything put so far is in the pipe now
            os._exit(1)
        try:
            if n is None:
                return
            results.put((n, n * n))
        finally:
            tasks.task_done()


def produce_then_sentinel(q: Any, name: str, count: int, seconds: float = 0.0) -> None:
    """Put ``count`` items ``(name, i)`` (pausing ``seconds`` before each), then ``None``.

    Each producer signs off with its own sentinel, so a consumer of N producers is done
    after N sentinels, however many items each one sent.
    """
    produce(q, name, count, seconds)
    q.put(None)


def produce_then_linger(q: Any, name: str, count: int, linger: float = 0.0) -> None:
    """Put ``count`` items ``(name, i)``, then ``None``, then stay alive ``linger`` seconds.

    A producer that has signed off but still has other work to do: its consumer is done
    with it at the ``None``, long before the process ends.
    """
    produce(q, name, count)
    q.put(None)
    time.sleep(_check_seconds(linger, "linger"))


# ---- a queue that pool tasks can use ------------------------------------------------------

_results: Any = None  # set in each pool worker by init_results


def init_results(results: Any) -> None:
    """Pool initializer: keep ``results`` (a queue) in this worker for the tasks to use.

    ``Pool(initializer=init_results, initargs=(q,))`` hands the queue to each worker when
    the worker process is created, the one moment a ``multiprocessing.Queue`` can be passed.
    """
    global _results
    _results = _check_queue(results, "results")


def square_to_results(n: int) -> int:
    """Pool task: put ``(n, n * n)`` on the queue :func:`init_results` stored; return the pid."""
    if _results is None:
        raise RuntimeError("no results queue: start the pool with initializer=init_results")
    n = _check_int(n, "n")
    _results.put((n, n * n))
    return os.getpid()


def square_to(results: Any, n: int) -> int:
    """Pool task: put ``(n, n * n)`` on ``results`` (a manager's queue proxy); return the pid."""
    _check_queue(results, "results")
    n = _check_int(n, "n")
    results.put((n, n * n))
    return os.getpid()


# ---- exercise workers ---------------------------------------------------------------------


def produce_then_crash(q: Any, name: str, count: int, seconds: float = 0.0) -> None:
    """Put ``count`` items ``(name, i)`` like :func:`produce`, then die without a sentinel.

    Before dying (``os._exit(1)``, as a crash would) it flushes what it put (``close()``
    then ``join_thread()``), so those items arrive whole; its ``None`` never comes.
    """
    produce(q, name, count, seconds)
    q.close()
    q.join_thread()
    os._exit(1)


def make_block(tasks: Any, results: Any) -> None:
    """Get ``(index, size)`` pairs until ``None``; put ``(index, block)`` on ``results``.

    ``block`` is ``size`` bytes, each equal to ``index % 256``. Small blocks are made a
    little faster than big ones, so results come back out of order; big blocks (100 kB and
    more) don't fit into the queue's pipe until someone reads them.
    """
    _check_queue(tasks, "tasks")
    _check_queue(results, "results")
    while True:
        item = tasks.get()
        if item is None:
            return
        index, size = item
        index, size = _check_int(index, "index"), _check_int(size, "size")
        time.sleep(min(0.05, size / 4e6))
        results.put((index, bytes([index % 256]) * size))
