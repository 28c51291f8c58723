"""Workers for chapter 07: race conditions, locks and semaphores.

Every function here runs in a child process, so it lives in an importable module
(a function defined in a notebook cell can't be found by a spawn or forkserver child).
"""

from __future__ import annotations

import os
import time
from typing import Any

from helpers import timeline
from helpers.validate import check_count as _check_count
from helpers.validate import check_seconds as _check_seconds

__all__ = [
    "tickets_left",
    "sell_global",
    "sell",
    "sell_locked",
    "sell_whole_loop_locked",
    "sell_local_then_once",
    "check_person",
    "transfer",
]

# A plain module global: every process has its own copy of it.
tickets_left = 100


def _check_shared_value(counter: Any) -> None:
    if not hasattr(counter, "value"):
        raise TypeError(
            f"counter must be a multiprocessing.Value (something with .value), "
            f"got {type(counter).__name__}"
        )


def sell_global(times: int, results: Any) -> None:
    """Sell ``times`` tickets from the module global and report (pid, what this process sees)."""
    global tickets_left
    _check_count(times, "times")
    for _ in range(times):
        tickets_left -= 1
    results.put((os.getpid(), tickets_left))


def sell(counter: Any, times: int, sink: Any = None, start_line: Any = None) -> None:
    """Sell ``times`` tickets with ``counter.value -= 1``: a read, then a separate write (racy).

    Puts a span into ``sink`` if given. With ``start_line`` (a ``Barrier`` shared by the
    sellers) it waits there first, so all sellers start selling at the same moment.
    The other sellers below take the same arguments.
    """
    _check_shared_value(counter)
    _check_count(times, "times")
    if start_line is not None:
        start_line.wait()  # a Barrier: all sellers start together
    with timeline.record("no lock", sink=sink):
        for _ in range(times):
            counter.value -= 1


def sell_locked(counter: Any, times: int, sink: Any = None, start_line: Any = None) -> None:
    """Sell ``times`` tickets, holding ``counter.get_lock()`` around each read-modify-write."""
    _check_shared_value(counter)
    _check_count(times, "times")
    if start_line is not None:
        start_line.wait()  # a Barrier: all sellers start together
    with timeline.record("lock per ticket", sink=sink):
        for _ in range(times):
            with counter.get_lock():
                counter.value -= 1


def sell_whole_loop_locked(
    counter: Any, times: int, sink: Any = None, start_line: Any = None
) -> None:
    """Sell ``times`` tickets holding the lock for the whole loop (correct, but serial).

    The span starts once the lock is held, so waiting for it shows as a gap.
    """
    _check_shared_value(counter)
    _check_count(times, "times")
    if start_line is not None:
        start_line.wait()  # a Barrier: all sellers start together
    with counter.get_lock():
        with timeline.record("lock whole loop", sink=sink):
            for _ in range(times):
                counter.value -= 1


def sell_local_then_once(
    counter: Any, times: int, sink: Any = None, start_line: Any = None
) -> None:
    """Count sales in a local variable, then subtract the total once under the lock."""
    _check_shared_value(counter)
    _check_count(times, "times")
    if start_line is not None:
        start_line.wait()  # a Barrier: all sellers start together
    with timeline.record("local, add once", sink=sink):
        sold = 0
        for _ in range(times):
            sold += 1
        with counter.get_lock():
            counter.value -= sold


def check_person(
    security: Any, person: str, seconds: float, sink: Any, start_line: Any = None
) -> None:
    """Queue for the security check (a semaphore), get checked for ``seconds``, leave.

    Puts two spans into ``sink``: ``"queue"`` (arrival until let in) and ``person``
    (the check itself, while holding one of the semaphore's places). With
    ``start_line`` (a Barrier), everybody arrives together once all have met there.
    """
    if not isinstance(person, str):
        raise TypeError(f"person must be a str, got {type(person).__name__}")
    seconds = _check_seconds(seconds, "seconds")
    if start_line is not None:
        start_line.wait()
    arrived = timeline.now()
    with security:  # released even if the check raises
        sink.put(timeline.make_span("queue", arrived, timeline.now()))
        with timeline.record(person, sink=sink):
            time.sleep(seconds)


def transfer(
    name: str,
    first: tuple[str, Any],
    second: tuple[str, Any],
    start_line: Any,
    results: Any,
    hold: float = 0.3,
    timeout: float = 1.0,
    holding_line: Any = None,
) -> None:
    """Take lock ``first``, work ``hold`` s, then take ``second``; never wait past ``timeout``.

    ``first`` and ``second`` are ``(label, lock)`` pairs. ``start_line`` is a
    ``Barrier`` shared with the other worker, so both start at the same moment. With
    ``holding_line`` (another Barrier), each worker waits there once it holds its first
    lock, so both hold one before either asks for its second, however slowly they start.
    Puts ``{"name", "outcome", "spans"}`` into ``results``; ``outcome`` is ``"done"``
    or ``"gave up waiting for <label>"``.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    for argname, pair in (("first", first), ("second", second)):
        if not (isinstance(pair, tuple) and len(pair) == 2 and isinstance(pair[0], str)):
            raise TypeError(f"{argname} must be a (label, lock) pair")
    hold = _check_seconds(hold, "hold")
    timeout = _check_seconds(timeout, "timeout")
    (first_label, first_lock), (second_label, second_lock) = first, second
    spans = []
    outcome = f"gave up waiting for {first_label}"
    start_line.wait()
    waiting = timeline.now()
    if first_lock.acquire(timeout=timeout):
        try:
            spans.append(timeline.make_span(f"wait {first_label}", waiting, timeline.now()))
            with timeline.record(f"hold {first_label}", sink=spans):
                if holding_line is not None:
                    holding_line.wait()  # the other worker holds its first lock too
                time.sleep(hold)
            waiting = timeline.now()
            got_second = second_lock.acquire(timeout=timeout)
            spans.append(timeline.make_span(f"wait {second_label}", waiting, timeline.now()))
            if got_second:
                try:
                    with timeline.record(f"hold {first_label}+{second_label}", sink=spans):
                        time.sleep(0.05)
                    outcome = "done"
                finally:
                    second_lock.release()
            else:
                outcome = f"gave up waiting for {second_label}"
        finally:
            first_lock.release()
    else:
        spans.append(timeline.make_span(f"wait {first_label}", waiting, timeline.now()))
    results.put({"name": name, "outcome": outcome, "spans": spans})
