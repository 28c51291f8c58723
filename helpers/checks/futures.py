"""Checks for the exercises of chapter 03 (concurrent.futures)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from helpers.checks import call_with_timeout, expect, fail, passed, require_function

__all__ = ["BOUNDED_ITEMS", "MIRROR_SETS", "check_bounded_map", "check_fastest"]


class WatchedExecutor(ThreadPoolExecutor):
    """A thread pool that remembers every future it handed out, and the most ever unfinished.

    ``max_in_flight`` counts, at each ``submit``, the futures submitted earlier that are not
    done yet, plus the new one. A future is done before anyone waiting on it wakes up, so an
    answer that waits for one call before submitting the next never counts it twice.
    """

    def __init__(self, max_workers: int):
        super().__init__(max_workers=max_workers, thread_name_prefix="check")
        self.futures: list[Any] = []
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            in_flight = sum(not f.done() for f in self.futures) + 1
            self.max_in_flight = max(self.max_in_flight, in_flight)
            future = super().submit(fn, *args, **kwargs)
            self.futures.append(future)
            return future


# ---- Exercise 1: at most `limit` calls in flight ------------------------------------------

BOUNDED_ITEMS = 12  # items 0 ... 11
BOUNDED_LIMIT = 3
_SHORT = 0.02  # seconds each item but the first takes


class _Workload:
    """The function the check hands to ``bounded_map``, and what it saw.

    Item 0 is a long call: it finishes once 4 other items have finished (or after
    ``hold`` seconds). An answer that submits the next item as soon as any call finishes
    gets there quickly; one that waits for a whole batch keeps item 0 waiting.
    """

    def __init__(self, hold: float):
        self.hold = hold
        self.others_done = 0
        self.released = threading.Event()
        self.held_too_long = False
        self._lock = threading.Lock()

    def __call__(self, item: int) -> int:
        if item == 0:
            if not self.released.wait(self.hold):
                self.held_too_long = True
        else:
            time.sleep(_SHORT)
            with self._lock:
                self.others_done += 1
                if self.others_done >= 4:
                    self.released.set()
        return item * 10


def check_bounded_map(bounded_map: Callable[..., Any], *, timeout: float = 10.0) -> None:
    """Exercise 1: ``bounded_map(executor, fn, items, limit)`` keeps at most ``limit`` calls
    in flight and returns ``[fn(item) for item in items]``, in input order.

    The check passes a thread pool with more workers than ``limit``, a generator of
    :data:`BOUNDED_ITEMS` items and ``limit=3``; it counts how many submitted calls were
    unfinished at each ``submit``.
    """
    require_function(bounded_map, "bounded_map")
    work = _Workload(hold=2.0)
    items_pulled = []

    def items():
        for i in range(BOUNDED_ITEMS):
            items_pulled.append(i)
            yield i

    executor = WatchedExecutor(max_workers=BOUNDED_LIMIT + 2)
    try:
        outcome = call_with_timeout(bounded_map, (executor, work, items(), BOUNDED_LIMIT), timeout)
    finally:
        work.released.set()  # let a held call finish, whatever the answer did
        executor.shutdown(wait=True, cancel_futures=True)
    if not outcome:
        fail(
            f"bounded_map did not return within {timeout:.0f} s. Wait with a timeout "
            "(wait(..., timeout=...)) and make sure every submitted call is waited for once."
        )
    if "error" in outcome:
        exc = outcome["error"]
        fail(f"bounded_map raised {type(exc).__name__}: {exc}")
    value = outcome["value"]
    submitted = len(executor.futures)
    expect(
        submitted > 0,
        "bounded_map never called executor.submit(): run every call on the executor",
    )
    expect(
        value is not None,
        "bounded_map returned None: return the list of results, in input order",
    )
    expect(
        executor.max_in_flight <= BOUNDED_LIMIT,
        f"{executor.max_in_flight} calls were in flight at once; the limit was "
        f"{BOUNDED_LIMIT}. executor.map() and a plain loop of submit() send every item at "
        "once: before each submit, wait until fewer than limit calls are unfinished.",
    )
    expect(
        submitted == BOUNDED_ITEMS,
        f"{submitted} calls were submitted for {BOUNDED_ITEMS} items: submit one per item",
    )
    expect(
        not work.held_too_long,
        "the long first call kept the others waiting: after submitting a batch you waited "
        "for ALL of it. Wait with return_when=FIRST_COMPLETED and submit the next item as "
        "soon as any call finishes.",
    )
    expected = [i * 10 for i in range(BOUNDED_ITEMS)]
    expect(
        isinstance(value, list),
        f"bounded_map should return a list, got {type(value).__name__}",
    )
    if value != expected:
        hint = (
            "the results are all there but not in input order: remember each future's "
            "position (a dict future -> index) and put results back in that order"
            if sorted(value, key=repr) == sorted(expected, key=repr)
            else f"expected {expected}, got {value}"
        )
        fail(hint)
    passed(
        f"{BOUNDED_ITEMS} calls with never more than {executor.max_in_flight} in flight, "
        "results in input order."
    )


# ---- Exercise 2: the fastest mirror --------------------------------------------------------

# Each set maps a mirror's name to how long its (fake) download takes. The check's pool has
# 2 workers, so the first two mirrors start at once and the others wait in the queue.
MIRROR_SETS = (
    {"slow": 0.6, "fast": 0.05, "medium": 0.4, "far": 0.5},
    {"eu": 0.5, "us": 0.05, "asia": 0.6, "au": 0.6},
)
MIRROR_WORKERS = 2


def check_fastest(fastest: Callable[[Any, dict], Any]) -> None:
    """Exercise 2: ``fastest(executor, mirrors)`` returns the first mirror to finish.

    The check passes a thread pool with fewer workers than mirrors (waiting on downloads
    is I/O), so some calls are still queued when the first finishes: the answer must
    return at once and cancel those.
    """
    require_function(fastest, "fastest")
    for mirrors in MIRROR_SETS:
        expected = min(mirrors, key=mirrors.get)
        executor = WatchedExecutor(max_workers=MIRROR_WORKERS)
        try:
            start = time.perf_counter()
            outcome = call_with_timeout(fastest, (executor, dict(mirrors)), 10.0)
            took = time.perf_counter() - start
            queued = [f for f in executor.futures if not f.done() and not f.running()]
        finally:
            executor.shutdown(wait=True, cancel_futures=True)
        if not outcome:
            fail("fastest did not return within 10 s: wait with a timeout")
        if "error" in outcome:
            exc = outcome["error"]
            fail(f"fastest raised {type(exc).__name__}: {exc}")
        answer = outcome["value"]
        expect(
            executor.futures,
            "fastest never called executor.submit(): download from every mirror on the "
            "executor, so they run at the same time",
        )
        expect(answer is not None, "fastest returned None: return the winning mirror's name")
        expect(
            len(executor.futures) == len(mirrors),
            f"{len(executor.futures)} calls submitted for {len(mirrors)} mirrors: submit one "
            "fetch_from per mirror",
        )
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
            took < 0.5,
            f"the answer took {took:.2f} s: you waited for more than the first download "
            f"(it takes {mirrors[expected]} s). Return as soon as the first one completes.",
        )
        expect(
            not queued,
            f"{len(queued)} download(s) were still queued when you returned, and will run "
            "for nothing: cancel() the futures that are not done yet (cancel() stops those "
            "that haven't started).",
        )
    passed(
        "you return as soon as the first download completes, whichever mirror it is, and "
        "cancel the downloads still queued."
    )
