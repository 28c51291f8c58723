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


def get_one(q: Any, results: Any) -> None:
    """Get one item from ``q`` (blocking) and put ``len(item[1])`` on ``results``."""
    _check_queue(q, "q")
    _check_queue(results, "results")
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
