"""Checks for the exercises of chapter 04 (Queues)."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
import types
from collections import Counter
from typing import Any

from helpers import queues
from helpers.checks import LearnerFunction, expect, fail, passed, stop_processes

__all__ = ["check_pipeline", "check_drain_then_join"]

PIPELINE_INPUT = tuple(range(20))
BIG_ITEM = 300_000  # bytes: bigger than a pipe buffer, so join-before-drain blocks


def _learner(func: Any, name: str) -> LearnerFunction:
    if not isinstance(func, types.FunctionType):
        fail(f"define {name} with def in the cell above (got {type(func).__name__})")
    return LearnerFunction(func)


def check_pipeline(stage: Any, *, timeout: float = 10.0) -> None:
    """Run ``stage`` as two chained spawned processes and check that nothing is lost.

    ``stage(inbox, outbox)`` must square every number it gets from ``inbox`` onto
    ``outbox`` and, on the sentinel ``None``, forward ``None`` and return.
    """
    worker = _learner(stage, "stage(inbox, outbox)")
    ctx = multiprocessing.get_context("spawn")
    first, middle, last = ctx.Queue(), ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(target=worker, args=(first, middle), name="stage-1"),
        ctx.Process(target=worker, args=(middle, last), name="stage-2"),
    ]
    for p in procs:
        p.start()
    for n in PIPELINE_INPUT:
        first.put(n)
    first.put(None)

    received: list[Any] = []
    got_sentinel = False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            item = last.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if item is None:
            got_sentinel = True
            break
        received.append(item)
    stuck = stop_processes(procs, timeout=3.0)
    for q in (first, middle, last):
        q.cancel_join_thread()  # a broken stage may have left items behind; don't wait on them
        q.close()

    crashed = [p.name for p in procs if p not in stuck and p.exitcode != 0]
    expect(
        not crashed,
        f"{', '.join(crashed)} exited with an error (exit code {procs[0].exitcode}, "
        f"{procs[1].exitcode}): read the traceback above",
    )
    expected = Counter(n**4 for n in PIPELINE_INPUT)
    got = Counter(received)
    if got != expected:
        missing = sorted((expected - got).elements())
        extra = sorted((got - expected).elements())
        fail(
            "the last queue did not get the fourth powers of 0..19, each exactly once "
            f"(each stage squares). Missing: {missing[:5]}{'...' if len(missing) > 5 else ''}; "
            f"unexpected: {extra[:5]}{'...' if len(extra) > 5 else ''}"
        )
    expect(
        got_sentinel,
        "all items arrived but the sentinel None never came out of the last stage: "
        "on None, put None on outbox (so the next stage stops too) and return",
    )
    expect(
        not stuck,
        f"{', '.join(p.name for p in stuck)} did not exit after the sentinel: "
        "return from stage() when you get None",
    )
    passed(
        f"two stages passed {len(PIPELINE_INPUT)} items and the sentinel through; "
        "nothing lost, nothing duplicated, both processes exited"
    )


def _rescue(q: Any, n_items: int, procs: list[Any], worker: threading.Thread) -> int:
    """Unblock a learner function stuck on join() or get(): drain, join, feed fillers."""
    drained = 0
    while drained < n_items:
        try:
            q.get(timeout=1.0)
        except queue.Empty:
            break
        drained += 1
    stop_processes(procs, timeout=3.0)
    for _ in range(n_items):  # a get() waiting for more items than were produced
        q.put((0, b""))
    worker.join(timeout=2.0)
    return drained


class _Watched:
    """A Process as the learner sees it, remembering whether join() saw it exit."""

    def __init__(self, process: Any):
        self._process = process
        self.joined = False

    def join(self, timeout: float | None = None) -> None:
        self._process.join(timeout)
        self.joined = self._process.exitcode is not None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._process, name)

    def __repr__(self) -> str:
        return repr(self._process)


def check_drain_then_join(func: Any, *, timeout: float = 6.0) -> None:
    """Check ``func(q, processes, n_items)``: it must get all items, then join, then return them.

    The check starts 3 producers that each put one ``(pid, 300 kB of bytes)`` item,
    calls ``func`` in a thread (so a deadlock can be detected and undone), and checks
    every item came back and every producer has exited.
    """
    if not callable(func):
        fail(f"define drain_then_join with def in the cell above (got {type(func).__name__})")
    n_items = 3
    q = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=queues.put_big, args=(q, BIG_ITEM), name=f"producer-{i}")
        for i in range(n_items)
    ]
    for p in procs:
        p.start()
    watched = [_Watched(p) for p in procs]
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = func(q, watched, n_items)
            outcome["joined"] = all(w.joined for w in watched)
        except BaseException as exc:  # report it as a hint, don't print a traceback
            outcome["error"] = exc

    worker = threading.Thread(target=call, name="drain_then_join", daemon=True)
    worker.start()
    worker.join(timeout=timeout)
    if worker.is_alive():
        _rescue(q, n_items, procs, worker)
        q.cancel_join_thread()
        fail(
            f"drain_then_join did not return within {timeout:.0f} s: it was stuck. Either it "
            "joined a producer before getting its item (the producer can't exit until its "
            "big item is read), or it called get() more times than n_items. The check "
            "drained the queue to unstick it"
        )
    leftover = 0
    while True:
        try:
            q.get(timeout=0.2)
        except queue.Empty:
            break
        leftover += 1
    stuck = stop_processes(procs, timeout=3.0)

    if "error" in outcome:
        exc = outcome["error"]
        fail(f"drain_then_join raised {type(exc).__name__}: {exc}")
    value = outcome.get("value")
    expect(value is not None, "drain_then_join returned None: return the list of items you got")
    expect(
        isinstance(value, list),
        f"drain_then_join should return a list, got {type(value).__name__}",
    )
    expect(
        len(value) == n_items and leftover == 0,
        f"got {len(value)} of {n_items} items ({leftover} left on the queue): "
        "call q.get() once per item before joining",
    )
    pids = sorted(item[0] for item in value if isinstance(item, tuple) and len(item) == 2)
    expect(
        pids == sorted(p.pid for p in procs),
        "the items should be exactly what the producers put: (pid, payload) tuples, "
        "one from each producer",
    )
    expect(
        outcome.get("joined") and not stuck and all(p.exitcode == 0 for p in procs),
        "drain_then_join returned without joining the producers: "
        "join every process (p.join()) after draining",
    )
    passed(f"all {n_items} big items drained, then all {n_items} producers joined (exit code 0)")
