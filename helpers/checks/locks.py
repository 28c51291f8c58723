"""Checks for the exercises of chapter 07 (race conditions, locks and semaphores)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from typing import Any

from helpers import timeline
from helpers.checks import (
    ExerciseFailed,
    LearnerFunction,
    collect,
    expect,
    fail,
    passed,
    require_function,
    stop_processes,
)

__all__ = ["check_move", "check_polite_download"]


class _AccountLock:
    """Stands in for one account's ``multiprocessing.Lock``: logs acquisitions, never hangs.

    The check calls the learner's function in one thread, so taking a lock that is
    already held can only mean it was taken twice or never released: that fails at once
    instead of blocking for ever.
    """

    def __init__(self, index: int, log: list[int]) -> None:
        self.index, self.log, self.held = index, log, False

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        if self.held:
            fail(
                f"account_locks[{self.index}] was taken while already held (taken twice, or "
                "never released by an earlier call): a Lock would wait for ever here"
            )
        self.held = True
        self.log.append(self.index)
        return True

    def release(self) -> None:
        if not self.held:
            raise ValueError("release of an unlocked lock")
        self.held = False

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class _WatchedBalances:
    """Stands in for the shared ``Array``: records every access made without its lock."""

    def __init__(self, values: list[int], account_locks: list[_AccountLock]) -> None:
        self.values, self.account_locks, self.unlocked = list(values), account_locks, set()

    def _watch(self, i: int) -> None:
        if not self.account_locks[i].held:
            self.unlocked.add(i)

    def __getitem__(self, i: int) -> int:
        self._watch(i)
        return self.values[i]

    def __setitem__(self, i: int, value: int) -> None:
        self._watch(i)
        self.values[i] = value

    def __len__(self) -> int:
        return len(self.values)


def _move_many(
    move: Any, balances: Any, account_locks: Any, src: int, dst: int, times: int, start_line: Any
) -> None:
    """Child process of ``check_move``: call ``move`` ``times`` times, 1 unit each."""
    start_line.wait()
    for _ in range(times):
        move(balances, account_locks, src, dst, 1)


def check_move(func: Any, times: int = 2000) -> None:
    """Check ``move(balances, account_locks, src, dst, amount)``: both accounts' locks held
    around every read and write, taken in one fixed order, released; then two processes
    moving money in opposite directions neither lose money nor deadlock."""
    require_function(func)
    start = [100, 100, 100]
    for src, dst, expected in [(0, 2, [95, 100, 105]), (2, 0, [100, 100, 100])]:
        log: list[int] = []
        account_locks = [_AccountLock(i, log) for i in range(3)]
        balances = _WatchedBalances(start, account_locks)
        call = f"{func.__name__}(balances, account_locks, src={src}, dst={dst}, amount=5)"
        try:
            func(balances, account_locks, src, dst, 5)
        except ExerciseFailed:
            raise
        except Exception as exc:
            fail(f"{call} raised {exc!r}")
        expect(
            balances.values == expected,
            f"after {call} the balances were {balances.values}, expected {expected}",
        )
        expect(
            not balances.unlocked,
            f"{call} read or wrote balances{sorted(balances.unlocked)} without holding "
            "that account's lock: hold account_locks[src] AND account_locks[dst] around the "
            "reads and writes",
        )
        expect(
            log == sorted(log),
            f"{call} took the locks in the order {log}: a process moving money the other "
            "way takes them the other way round, and the two can deadlock (section 6). "
            "Take them in one fixed order, for example the lower account number first",
        )
        held = [lock.index for lock in account_locks if lock.held]
        expect(not held, f"{call} returned still holding account_locks{held}: release them")
        start = expected

    balances = multiprocessing.Array("i", [times, times], lock=False)
    account_locks = [multiprocessing.Lock(), multiprocessing.Lock()]
    start_line = multiprocessing.Barrier(2, timeout=30)
    worker = LearnerFunction(func)
    movers = [
        multiprocessing.Process(
            target=_move_many,
            args=(worker, balances, account_locks, src, dst, times, start_line),
        )
        for src, dst in [(0, 1), (1, 0)]
    ]
    for p in movers:
        p.start()
    stuck = stop_processes(movers, 30)
    expect(not stuck, "the two processes were still moving money after 30 s: a deadlock?")
    codes = [p.exitcode for p in movers]
    expect(codes == [0, 0], f"the processes exited with codes {codes}, expected 0 and 0")
    expect(
        list(balances) == [times, times],
        f"{times} moves each way left the balances at {list(balances)}, "
        f"expected [{times}, {times}]",
    )
    passed(
        f"{times} moves each way in 2 processes at once: no money lost, no deadlock, "
        "locks always in the same order."
    )


HOSTS = {"example.org": "e", "python.org": "p"}  # host -> first letter of its pages' labels


def _urls(per_host: int) -> list[str]:
    return [
        f"https://{host}/{letter}{i}" for i in range(per_host) for host, letter in HOSTS.items()
    ]


def _per_host_overlap(spans: list) -> dict[str, int]:
    return {
        host: timeline.max_overlap([s for s in spans if s.label.startswith(letter)])
        for host, letter in HOSTS.items()
    }


def _run_threads(func: Any, urls: list[str], limit: int, seconds_allowed: float) -> list:
    limits = {host: threading.Semaphore(limit) for host in HOSTS}
    sink: list = []
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
    if errors:
        fail(f"{func.__name__} raised {errors[0]!r}")
    return sink


def check_polite_download(func: Any, limit: int = 2, per_host: int = 4) -> None:
    """Check ``polite_download(limits, url, sink)``: at most ``limit`` downloads at a time
    from each host, hosts independent of each other; threads first, then processes."""
    require_function(func)
    urls = _urls(per_host)
    sink = _run_threads(func, urls, limit, seconds_allowed=3)
    expect(
        len(sink) == len(urls) and all(isinstance(s, timeline.Span) for s in sink),
        f"expected {len(urls)} spans in sink (one per download from work.fake_download), "
        f"got {len(sink)}",
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
        "other. Take the semaphore of the url's own host, not one for everything",
    )

    limits = {host: multiprocessing.Semaphore(1) for host in HOSTS}
    spans = multiprocessing.Queue()
    worker = LearnerFunction(func)
    urls = _urls(2)
    workers = [multiprocessing.Process(target=worker, args=(limits, url, spans)) for url in urls]
    for p in workers:
        p.start()
    got = collect(spans, len(urls), timeout=30)
    stop_processes(workers, 10 * len(workers))
    expect(len(got) == len(urls), f"only {len(got)} of {len(urls)} processes delivered a span")
    overlap = _per_host_overlap(got)
    expect(
        max(overlap.values()) <= 1,
        f"with one place per host, processes downloaded {overlap} at once per host",
    )
    passed(
        f"{len(sink)} downloads in threads and {len(got)} in processes, never more than the "
        "limit per host, and the hosts in parallel."
    )
