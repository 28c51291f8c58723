"""Checks for the exercises of chapter 07 (race conditions, locks and semaphores)."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from typing import Any

from helpers import timeline
from helpers.checks import (
    ExerciseFailed,
    LearnerFunction,
    call_with_timeout,
    expect,
    fail,
    passed,
    require_function,
    stop_processes,
)

__all__ = ["check_pay", "check_polite_download"]


class _LockOrder:
    """What the account locks of ``check_pay`` saw, over all the calls the check makes.

    Every time a call *waits* for a lock (a blocking ``acquire``) while it holds others, each
    held lock must come before the awaited one in some order that all calls agree on. The
    edges ``held -> awaited`` of all calls together must therefore have no cycle: a cycle is
    two (or more) payments that can each hold what the other waits for. A non-blocking
    attempt (``block=False``) never waits, so it adds no edge: backing off is fine.
    """

    def __init__(self) -> None:
        self.edges: dict[tuple[int, int], tuple[str, list[int]]] = {}  # edge -> (call, log)
        self.holding: list[int] = []
        self.log: list[int] = []  # the locks the current call waited for, in order
        self.new: list[tuple[int, int]] = []

    def start(self) -> None:
        self.holding, self.log, self.new = [], [], []

    def waited(self, index: int) -> None:
        self.log.append(index)
        for held in self.holding:
            if (held, index) not in self.edges and (held, index) not in self.new:
                self.new.append((held, index))

    def _path(self, start: int, goal: int) -> list[tuple[int, int]] | None:
        """Edges of a path start -> ... -> goal among the recorded edges, or None."""
        seen, todo = {start}, [(start, [])]
        while todo:
            node, path = todo.pop()
            if node == goal:
                return path
            for a, b in self.edges:
                if a == node and b not in seen:
                    seen.add(b)
                    todo.append((b, [*path, (a, b)]))
        return None

    def conflict(self, call: str) -> tuple[str, list[int]] | None:
        """Record this call's edges; return (call, log) of an earlier call whose order no
        single order fits together with this one's, or None."""
        for a, b in self.new:
            path = self._path(b, a)
            if path:
                return self.edges[path[0]]
        for edge in self.new:
            self.edges[edge] = (call, list(self.log))
        return None


class _AccountLock:
    """Stands in for one account's ``multiprocessing.Lock``: logs acquisitions, never hangs.

    The check calls the learner's function in one thread, so taking a lock that is
    already held can only mean it was taken twice or never released: that fails at once
    instead of blocking for ever. With ``busy``, the first attempt that is allowed to give up
    (``block=False`` or a timeout) fails, as it would while another process holds the lock.
    """

    def __init__(self, index: int, order: _LockOrder, busy: bool = False) -> None:
        self.index, self.order, self.held, self.busy = index, order, False, busy

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        if self.held:
            fail(
                f"account_locks[{self.index}] was taken while already held (taken twice, or "
                "never released by an earlier call): a Lock would wait for ever here"
            )
        if self.busy and (not block or timeout is not None):
            self.busy = False  # another process held it until this attempt gave up
            return False
        if block:
            self.order.waited(self.index)
        self.held = True
        self.order.holding.append(self.index)
        return True

    def release(self) -> None:
        if not self.held:
            raise ValueError("release of an unlocked lock")
        self.held = False
        self.order.holding.remove(self.index)

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class _WatchedBalances:
    """Stands in for the shared ``Array``: records accesses made without every lock of the
    payment held (the whole payment must be one step)."""

    def __init__(self, values: list[int], account_locks: list[_AccountLock], involved: set):
        self.values, self.account_locks = list(values), account_locks
        self.involved, self.unlocked = involved, set()

    def _watch(self, i: int) -> None:
        if not all(self.account_locks[j].held for j in self.involved):
            self.unlocked.add(i)

    def __getitem__(self, i: int) -> int:
        self._watch(i)
        return self.values[i]

    def __setitem__(self, i: int, value: int) -> None:
        self._watch(i)
        self.values[i] = value

    def __len__(self) -> int:
        return len(self.values)


def _pay_many(
    pay: Any, balances: Any, account_locks: Any, src: int, dsts: list, times: int, start_line: Any
) -> None:
    """Child process of ``check_pay``: call ``pay`` ``times`` times, 1 unit to each payee."""
    start_line.wait()
    for _ in range(times):
        pay(balances, account_locks, src, dsts, 1)


# (src, dsts, amount): payees out of order, a payee twice, nobody, oneself, amount 0; and
# last the first one again, with a lock that is busy when first tried without waiting.
PAY_CASES = [
    (1, [2, 0], 5),
    (3, [1, 1, 0], 2),
    (0, [], 7),
    (2, [2, 3], 4),
    (0, [3], 0),
    (1, [2, 0], 3),
]
BUSY_CASE = len(PAY_CASES) - 1


def _expected_after(values: list[int], src: int, dsts: list, amount: int) -> list[int]:
    values = list(values)
    for dst in dsts:
        values[src] -= amount
        values[dst] += amount
    return values


def check_pay(func: Any, times: int = 1000) -> None:
    """Check ``pay(balances, account_locks, src, dsts, amount)``: ``amount`` from ``src`` to
    each account in ``dsts``, as one step. In one thread first, with locks that log: every
    read and write happens with the lock of every account involved held, each lock taken
    once and released, and the calls wait for locks in orders that one global order fits
    (any order; a non-blocking attempt that backs off is fine). In the last call one lock is
    busy at the first attempt that may give up, as if another process held it. Then three
    processes paying each other in overlapping circles with real locks: no money lost, no
    deadlock."""
    require_function(func)
    values = [100, 100, 100, 100]
    order = _LockOrder()
    for case, (src, dsts, amount) in enumerate(PAY_CASES):
        order.start()
        busy = sorted({src, *dsts})[1] if case == BUSY_CASE else None
        account_locks = [_AccountLock(i, order, i == busy) for i in range(len(values))]
        involved = {src, *dsts}
        balances = _WatchedBalances(values, account_locks, involved if dsts else set())
        call = f"{func.__name__}(balances, account_locks, src={src}, dsts={dsts}, amount={amount})"
        expected = _expected_after(values, src, dsts, amount)
        outcome = call_with_timeout(func, (balances, account_locks, src, dsts, amount), 2)
        if "error" in outcome:
            if isinstance(outcome["error"], ExerciseFailed):
                raise ExerciseFailed(f"{call}: {outcome['error']}")
            fail(f"{call} raised {outcome['error']!r}")
        expect(bool(outcome), f"{call} did not return within 2 s")
        expect(
            balances.values == expected,
            f"after {call} the balances were {balances.values}, expected {expected}",
        )
        expect(
            not balances.unlocked,
            f"{call} read or wrote balances{sorted(balances.unlocked)} while not holding the "
            f"locks of all the accounts it involves ({sorted(involved)}): hold them all, from "
            "the first change to the last, so nobody sees half a payment"
            + (
                " (here a lock was busy: an acquire that gives up returns False, and then "
                "you don't hold it)"
                if case == BUSY_CASE
                else ""
            ),
        )
        other = order.conflict(call)
        if other is not None:
            fail(
                f"{call} waited for the locks in the order {order.log}, and {other[0]} in the "
                f"order {other[1]}: no one order fits both, so two payments at the same time "
                "can each hold a lock the other waits for and deadlock. Take each account's "
                "lock once, always in one order that every process agrees on (section 6)"
            )
        held = [lock.index for lock in account_locks if lock.held]
        expect(not held, f"{call} returned still holding account_locks{held}: release them")
        values = expected

    start = 3 * times
    balances = multiprocessing.Array("i", [start] * 3, lock=False)
    account_locks = [multiprocessing.Lock() for _ in range(3)]
    start_line = multiprocessing.Barrier(3, timeout=30)
    worker = LearnerFunction(func)
    circles = [(0, [1, 2]), (1, [2, 0]), (2, [0, 1])]
    payers = [
        multiprocessing.Process(
            target=_pay_many,
            args=(worker, balances, account_locks, src, dsts, times, start_line),
        )
        for src, dsts in circles
    ]
    for p in payers:
        p.start()
    stuck = stop_processes(payers, 10)
    expect(not stuck, "the three processes were still paying after 10 s: a deadlock?")
    codes = [p.exitcode for p in payers]
    expect(codes == [0, 0, 0], f"the processes exited with codes {codes}, expected 0, 0 and 0")
    expect(
        list(balances) == [start] * 3,
        f"{times} payments from each of 3 processes left the balances at {list(balances)}, "
        f"expected {[start] * 3}",
    )
    passed(
        f"payees in any order, twice, none or yourself: one step, each lock once, in one "
        f"order; then {times} payments from each of 3 processes in a circle: no money lost, "
        "no deadlock."
    )


HOSTS = {"example.org": "e", "python.org": "p"}  # host -> first letter of its pages' labels


def _urls(per_host: int) -> list[str]:
    """Pages e0, p0, e1, ...; every other one deeper in its site (the host is split("/")[2])."""
    return [
        f"https://{host}/{'docs/v2/' if i % 2 else ''}{letter}{i}"
        for i in range(per_host)
        for host, letter in HOSTS.items()
    ]


def _per_host_overlap(spans: list) -> dict[str, int]:
    return {
        host: timeline.max_overlap([s for s in spans if s.label.startswith(letter)])
        for host, letter in HOSTS.items()
    }


class _FlakySink(list):
    """A list sink whose ``append`` raises for one label: that download fails at its end."""

    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing = failing

    def append(self, span: Any) -> None:
        if span.label == self.failing:
            raise ConnectionError(f"the download of {span.label} failed")
        super().append(span)


FAILING = "e0"  # the first example.org page: its download raises ConnectionError


def _run_threads(func: Any, urls: list[str], limit: int, seconds_allowed: float) -> list:
    limits = {host: threading.Semaphore(limit) for host in HOSTS}
    sink = _FlakySink(FAILING)
    errors: list = []

    def task(url: str) -> None:
        try:
            func(limits, url, sink)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=task, args=(url,), daemon=True) for url in urls]
    for t in threads:
        t.start()
    deadline = time.monotonic() + seconds_allowed
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [t for t in threads if t.is_alive()]
    if stuck:
        for sem in limits.values():  # let the blocked threads finish
            for _ in range(len(urls)):
                sem.release()
        fail(
            f"{len(stuck)} of {len(urls)} tasks never got a place: release the semaphore after "
            "each download (`with limits[host]:` does it for you, even on errors)"
        )
    failed = [exc for exc in errors if isinstance(exc, ConnectionError)]
    others = [exc for exc in errors if not isinstance(exc, ConnectionError)]
    if others:
        fail(f"{func.__name__} raised {others[0]!r}")
    expect(
        len(failed) == 1 or not sink,  # no span at all: the sink hint below says more
        f"the download of {FAILING} raised ConnectionError, but {func.__name__} did not let "
        "it reach the caller: don't hide a failed download",
    )
    for host, sem in limits.items():
        free = [sem.acquire(blocking=False) for _ in range(limit)]
        extra = all(free) and sem.acquire(blocking=False)
        for got in [*free, extra]:
            if got:
                sem.release()
        expect(
            not extra,
            f"after every download, {host} had more than its {limit} places: a place was "
            "given back more often than it was taken. Release once per acquire, on every "
            "path (`with` does exactly that)",
        )
        expect(
            all(free),
            f"after every download, only {sum(free)} of {host}'s {limit} places were free: "
            f"the failed download of {FAILING} kept its place. Give it back on every path "
            "(`with`, or `finally`)",
        )
    return list(sink)


def _collect_while_alive(q: Any, n: int, procs: list, timeout: float) -> list:
    """Up to ``n`` items from ``q`` within ``timeout`` s; stop early once every process in
    ``procs`` has exited and nothing more arrives, so a crashed worker fails fast."""
    got: list = []
    deadline = time.monotonic() + timeout
    quiet_since = None
    while len(got) < n and time.monotonic() < deadline:
        try:
            got.append(q.get(timeout=0.1))
            quiet_since = None
        except queue.Empty:
            if any(p.is_alive() for p in procs):
                continue
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 0.5:  # all exited; a last item had time
                break
    return got


def check_polite_download(func: Any, limit: int = 2, per_host: int = 4) -> None:
    """Check ``polite_download(limits, url, sink)``: at most ``limit`` downloads at a time
    from each host, hosts independent of each other; threads first, then processes."""
    require_function(func)
    urls = _urls(per_host)
    sink = _run_threads(func, urls, limit, seconds_allowed=3)
    expect(
        len(sink) == len(urls) - 1 and all(isinstance(s, timeline.Span) for s in sink),
        f"expected {len(urls) - 1} spans in sink (one per download from work.fake_download, "
        f"except the one that failed), got {len(sink)}",
    )
    overlap = _per_host_overlap(sink)
    too_many = {host: n for host, n in overlap.items() if n > limit}
    expect(
        not too_many,
        f"downloads at the same time per host: {overlap}, but each host allows {limit}: "
        "download inside `with limits[host]:`, the semaphore of the url's host",
    )
    expect(
        timeline.max_overlap(sink) > limit,
        f"never more than {limit} downloads ran at once in all: the two hosts waited for each "
        "other. Take the semaphore of the url's own host, not one for everything, and one "
        "place per download",
    )

    limits = {host: multiprocessing.Semaphore(1) for host in HOSTS}
    spans = multiprocessing.Queue()
    worker = LearnerFunction(func)
    urls = _urls(2)
    workers = [multiprocessing.Process(target=worker, args=(limits, url, spans)) for url in urls]
    for p in workers:
        p.start()
    got = _collect_while_alive(spans, len(urls), workers, timeout=30)
    stop_processes(workers, 10 * len(workers))
    codes = [p.exitcode for p in workers]
    expect(
        len(got) == len(urls),
        f"only {len(got)} of {len(urls)} processes delivered a span (exit codes {codes}; a "
        "traceback above says why). In a process, your function knows the modules the "
        "notebook imported, but no other variables of the notebook",
    )
    overlap = _per_host_overlap(got)
    expect(
        max(overlap.values()) <= 1,
        f"with one place per host, processes downloaded {overlap} at once per host",
    )
    passed(
        f"{len(sink)} downloads in threads (and one that failed, whose place came back) and "
        f"{len(got)} in processes, never more than the limit per host, and the hosts in "
        "parallel."
    )
