"""Checks for the exercises of chapter 03 (concurrent.futures)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from helpers.checks import call_with_timeout, expect, fail, passed, require_function

__all__ = ["BOUNDED_ITEMS", "FIRST_SUCCESS_CASES", "check_bounded_map", "check_first_success"]


class WatchedExecutor(ThreadPoolExecutor):
    """A thread pool that remembers every future it handed out, and the most ever unfinished.

    ``max_in_flight`` counts, at each ``submit``, the futures submitted earlier that are not
    done yet, plus the new one. A future is done before anyone waiting on it wakes up, so an
    answer that waits for one call before submitting the next never counts it twice.
    """

    def __init__(self, max_workers: int):
        super().__init__(max_workers=max_workers, thread_name_prefix="check")
        self.futures: list[Any] = []
        self.calls: list[tuple[Any, tuple]] = []  # (fn, args) of every submit
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            in_flight = sum(not f.done() for f in self.futures) + 1
            self.max_in_flight = max(self.max_in_flight, in_flight)
            future = super().submit(fn, *args, **kwargs)
            self.futures.append(future)
            self.calls.append((fn, args))
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
    executor = WatchedExecutor(max_workers=BOUNDED_LIMIT + 2)
    read_ahead = [0]  # the most items ever taken from the input beyond the finished calls

    def items():
        for i in range(BOUNDED_ITEMS):
            finished = sum(f.done() for f in list(executor.futures))
            read_ahead[0] = max(read_ahead[0], i + 1 - finished)
            yield i

    try:
        outcome = call_with_timeout(bounded_map, (executor, work, items(), BOUNDED_LIMIT), timeout)
        submitted = len(executor.futures)  # before the probe below adds one
        probe = None
        if outcome:
            try:
                probe = executor.submit(sum, (1, 2)).result(timeout=5)
            except Exception as exc:  # shut down
                probe = exc
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
        probe == 3,
        f"the executor no longer takes work after bounded_map returned ({probe!r}). It "
        "belongs to the caller: wait for your own futures, don't shut the executor down",
    )
    expect(
        not work.held_too_long,
        "the long first call kept the others waiting: after submitting a batch you waited "
        "for ALL of it. Wait with return_when=FIRST_COMPLETED and submit the next item as "
        "soon as any call finishes.",
    )
    expect(
        read_ahead[0] <= BOUNDED_LIMIT + 1,
        f"bounded_map took {read_ahead[0]} items from the input before as many calls had "
        f"finished, with limit={BOUNDED_LIMIT}. items may be a long generator: don't read it "
        "all first (list(items) does); take the next item only when a call has finished",
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
    # one at a time; fewer items than limit; none; the same item several times
    for limit, items_ in ((1, range(5)), (4, range(2)), (2, []), (2, [3, 1, 3, 1, 3])):
        _check_small_run(bounded_map, limit, list(items_), timeout)
    _check_failing_call(bounded_map, timeout)
    _check_waits_idle(bounded_map, timeout)
    passed(
        f"{BOUNDED_ITEMS} calls with never more than {executor.max_in_flight} in flight, "
        "results in input order; limits 1 and 4, an empty input, repeated items and a "
        "failing call work too, and you wait without using the CPU."
    )


def _tenfold(item: int) -> int:
    time.sleep(0.01)
    return item * 10


def _check_small_run(bounded_map: Callable[..., Any], limit: int, items: list, timeout: float):
    """Run ``bounded_map`` over quick ``items`` with ``limit``; fail on a wrong answer."""
    executor = WatchedExecutor(max_workers=limit + 2)
    try:
        outcome = call_with_timeout(bounded_map, (executor, _tenfold, iter(items), limit), timeout)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    shown = f"<{len(items)} items>" if items == list(range(len(items))) else f"iter({items})"
    where = f"bounded_map(executor, fn, {shown}, limit={limit})"
    if not outcome:
        fail(f"{where} did not return within {timeout:.0f} s: wait with a timeout")
    if "error" in outcome:
        exc = outcome["error"]
        fail(f"{where} raised {type(exc).__name__}: {exc}")
    expect(
        executor.max_in_flight <= limit,
        f"{where}: {executor.max_in_flight} calls were in flight at once",
    )
    expected = [i * 10 for i in items]
    expect(
        outcome["value"] == expected,
        f"{where} returned {outcome['value']!r}, expected {expected}"
        + (
            ": the same item can come more than once; key results by position, not by item"
            if len(set(items)) < len(items)
            else ""
        ),
    )


class _Failing:
    """``fn`` for the failure run: item 2 raises ``ValueError``, the others are quick."""

    def __init__(self) -> None:
        self.error = ValueError("item 2 is bad")

    def __call__(self, item: int) -> int:
        time.sleep(0.01)
        if item == 2:
            raise self.error
        return item * 10


def _check_failing_call(bounded_map: Callable[..., Any], timeout: float) -> None:
    """A call that raises: its exception must reach bounded_map's caller."""
    executor = WatchedExecutor(max_workers=4)
    fn = _Failing()
    try:
        outcome = call_with_timeout(bounded_map, (executor, fn, iter(range(5)), 2), timeout)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    where = "bounded_map(executor, fn, <5 items>, limit=2), where fn(2) raises ValueError,"
    if not outcome:
        fail(f"{where} did not return within {timeout:.0f} s: wait with a timeout")
    expect(
        "error" in outcome,
        f"{where} returned {outcome.get('value')!r}: a call's exception must reach the "
        "caller (future.result() re-raises it), as it does with executor.map",
    )
    expect(
        outcome["error"] is fn.error,
        f"{where} raised {outcome['error']!r} instead: let the call's own exception "
        "propagate (future.result() re-raises it)",
    )


_IDLE_ITEMS, _IDLE_SECONDS = 4, 0.15  # the idle run: 4 calls of 0.15 s, limit 2


def _sleepy(item: int) -> int:
    time.sleep(_IDLE_SECONDS)
    return item * 10


def _check_waits_idle(bounded_map: Callable[..., Any], timeout: float) -> None:
    """While the calls sleep, bounded_map should block in a wait, not spin on done()."""
    executor = WatchedExecutor(max_workers=4)
    used: dict[str, float] = {}

    def timed(*args: Any) -> Any:
        # The CPU time of the thread that runs bounded_map only: other threads of this
        # process (the executor's, the kernel's, a test runner's) don't count.
        start = time.thread_time()
        try:
            return bounded_map(*args)
        finally:
            used["cpu"] = time.thread_time() - start

    try:
        wall = time.perf_counter()
        outcome = call_with_timeout(
            timed, (executor, _sleepy, iter(range(_IDLE_ITEMS)), 2), timeout
        )
        wall = time.perf_counter() - wall
        cpu = used.get("cpu", 0.0)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
    where = f"bounded_map(executor, fn, <{_IDLE_ITEMS} items>, limit=2)"
    if not outcome or "error" in outcome:
        fail(f"{where} did not return its results: {outcome.get('error')!r}")
    expect(
        outcome["value"] == [i * 10 for i in range(_IDLE_ITEMS)],
        f"{where} returned {outcome['value']!r}",
    )
    # A blocking wait uses next to no CPU (about 1 ms here); a loop that polls done() uses a
    # whole core (on a busy machine, its share of one: 30 % of the time with 10 programs
    # running on 2 cores). Fail only when it clearly spun.
    expect(
        cpu < 0.03 or cpu < 0.1 * wall,
        f"{where} used {cpu:.2f} s of CPU in {wall:.2f} s while the calls only slept: "
        "a loop that keeps checking done() burns a core. Block in wait(..., timeout=..., "
        "return_when=FIRST_COMPLETED) instead",
    )


# ---- Exercise 2: the first mirror that answers ---------------------------------------------

# Each case: mirror names in the order the check passes them, and how each download goes:
# ("ok", s) returns after s seconds, ("fail", s) raises after s seconds, "held" is still
# running when a right answer returns (it finishes only once the check lets it, or after
# HOLD seconds). The pool has 2 workers, so later mirrors wait in its queue.
FIRST_SUCCESS_CASES = (
    # the first call to finish fails; a later one succeeds while others are held or queued
    (("north", "held"), ("east", ("fail", 0.02)), ("south", ("ok", 0.05)))
    + tuple((name, "held") for name in ("west", "up", "down")),
    # the first mirror passed is the one that answers
    (("alpha", ("ok", 0.03)), ("beta", "held"), ("gamma", "held"), ("delta", "held")),
    # every mirror fails, each its own way
    (("a", ("fail", 0.02)), ("b", ("fail", 0.05)), ("c", ("fail", 0.01))),
    # a single mirror
    (("only", ("ok", 0.01)),),
)
FIRST_SUCCESS_WORKERS = 2
HOLD = 1.0
_FAILURES = (ConnectionError, TimeoutError, OSError, ValueError, KeyError, RuntimeError)


class _Mirrors:
    """The ``fetch`` the check passes: it plays each mirror's part and notes every call."""

    def __init__(self, plan: dict[str, Any]):
        self.plan = plan
        self.calls: list[tuple[str, str]] = []  # (mirror, thread name)
        self.release = threading.Event()
        self.held_finished = False
        self._lock = threading.Lock()

    def data(self, name: str) -> bytes:
        return f"the file, from {name}".encode()

    def __call__(self, name: str) -> bytes:
        with self._lock:
            self.calls.append((name, threading.current_thread().name))
        how = self.plan.get(name)
        if how is None:
            raise KeyError(f"no mirror called {name!r}")
        if how == "held":
            if not self.release.wait(HOLD):
                self.held_finished = True
            return self.data(name)
        kind, seconds = how
        time.sleep(seconds)
        if kind == "fail":
            failure = _FAILURES[sum(map(ord, name)) % len(_FAILURES)]
            raise failure(f"mirror {name} is down")
        return self.data(name)


def check_first_success(first_success: Callable[..., Any]) -> None:
    """Exercise 2: ``first_success(executor, fetch, mirrors)`` returns ``(name, data)`` of the
    first download to succeed, as soon as it does, or ``None`` if every one fails.

    The check's ``fetch`` hides how long each mirror takes and which ones fail; its thread pool
    has fewer workers than there are mirrors. A right answer cancels the downloads still
    queued and leaves the executor (the caller's) working.
    """
    require_function(first_success, "first_success")
    for case in FIRST_SUCCESS_CASES:
        plan = dict(case)
        names = list(plan)
        winners = [n for n, how in case if how != "held" and how[0] == "ok"]
        expected = (winners[0], _Mirrors(plan).data(winners[0])) if winners else None
        fetch = _Mirrors(plan)
        executor = WatchedExecutor(max_workers=FIRST_SUCCESS_WORKERS)
        try:
            outcome = call_with_timeout(first_success, (executor, fetch, list(names)), 5.0)
            queued = [f for f in executor.futures if not f.done() and not f.running()]
            submitted = sorted(
                str(args[0]) if fn is fetch and len(args) == 1 else f"{fn!r}{args!r}"
                for fn, args in executor.calls
            )
            held_finished = fetch.held_finished  # before the check lets held calls end
            fetch.release.set()
            try:
                probe = executor.submit(sum, (1, 2)).result(timeout=5)
            except Exception as exc:  # shut down, or broken
                probe = exc
        finally:
            fetch.release.set()
            executor.shutdown(wait=True, cancel_futures=True)
        where = f"first_success(executor, fetch, {names})"
        if not outcome:
            fail(f"{where} did not return within 5 s: wait with a timeout")
        if "error" in outcome:
            exc = outcome["error"]
            fail(
                f"{where} raised {type(exc).__name__}: {exc}. A mirror that fails is not the "
                "end: look at the next download that completes"
            )
        answer = outcome["value"]
        if isinstance(answer, list) and len(answer) == 2:
            answer = tuple(answer)  # [name, data] is as good as (name, data)
        expect(
            bool(executor.futures) and all(t.startswith("check") for _, t in fetch.calls),
            f"{where}: fetch ran in this thread, not on the executor: submit every download "
            "to the executor, so they run at the same time",
        )
        expect(
            submitted == sorted(names),
            f"{where}: you submitted {submitted}; submit one fetch(name) per mirror",
        )
        expect(
            probe == 3,
            f"{where}: the executor no longer takes work afterwards ({probe!r}). It belongs "
            "to the caller: cancel your own futures, don't shut the executor down",
        )
        expect(
            not held_finished,
            f"{where}: you returned only after downloads that were still running had "
            "finished. Return as soon as the first download succeeds",
        )
        if answer != expected:
            hint = (
                "with every mirror down, return None"
                if expected is None
                else "a download that failed is not an answer: wait for the next one to complete"
                if isinstance(answer, tuple) and answer and answer[0] not in winners
                else "return (name, data): the mirror's name and what its fetch returned"
            )
            fail(f"{where} returned {answer!r}, expected {expected!r}: {hint}")
        expect(
            not queued,
            f"{where}: {len(queued)} download(s) were still queued when you returned, and "
            "would run for nothing: cancel() the futures that are not done (it stops those "
            "that haven't started)",
        )
    passed(
        "you return the first download that succeeds, as soon as it does, skip the ones that "
        "fail, cancel what is still queued, and leave the executor to its owner."
    )
