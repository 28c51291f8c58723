"""Checks for the exercises of chapter 04 (Queues)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.process
import queue
import threading
import time
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

__all__ = ["GATHER_SCENARIOS", "check_gather", "check_parallel_blocks"]


def _judge_gather(outcome: dict[str, Any], expected: Counter, timeout: float, where: str) -> None:
    if not outcome:
        fail(
            f"gather did not return within {timeout:.0f} s ({where}): it waited for more "
            "than was sent. Stop once every producer has sent its None or has ended."
        )
    if "error" in outcome:
        exc = outcome["error"]
        hint = (
            " An empty queue is no sign that the producers are done: catch queue.Empty and "
            "look at the producers"
            if isinstance(exc, queue.Empty)
            else ""
        )
        fail(f"gather raised {type(exc).__name__}: {exc} ({where}).{hint}")
    value = outcome["value"]
    expect(value is not None, "gather returned None: return the list of items you got")
    expect(
        isinstance(value, list),
        f"gather should return a list, got {type(value).__name__}",
    )
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
            f"{extra[:4]}. Neither the first None, nor an empty queue, nor a producer that "
            "has ended means the end: stop when every producer has sent its None or ended, "
            "and nothing more is waiting in the queue."
        )


# ---- Exercise 1 ---------------------------------------------------------------------------

# Each scenario: (what it tries, [(kind, name, count, seconds), ...], wait until all exited?)
# kind "ok" runs produce_then_sentinel, "crash" runs produce_then_crash (no sentinel),
# "linger" runs produce_then_linger (its None, then ``seconds`` more alive: gather must not
# wait for it to end).
GATHER_SCENARIOS = (
    (
        "three producers, one of which crashes before its None",
        (("ok", "A", 3000, 0.0), ("ok", "B", 0, 0.0), ("crash", "C", 4, 0.05)),
        False,
    ),
    (
        "a producer that is alive but pauses 1.6 s before each item, beside one that is done "
        "and one that crashed",
        (("ok", "S", 1, 1.6), ("ok", "F", 2, 0.0), ("crash", "K", 1, 0.0)),
        False,
    ),
    (
        "producers that had all ended (one crashed before sending anything; two sent the same "
        "items) before gather was called",
        (("ok", "D", 5, 0.0), ("ok", "D", 3, 0.0), ("crash", "E", 0, 0.0)),
        True,
    ),
    (
        "two producers that send their None and then stay alive for 4 s",
        (("linger", "L", 3, 4.0), ("linger", "M", 0, 4.0)),
        False,
    ),
)

# gather must return within this many seconds after the last producer has ended.
GATHER_LATENESS = 1.5


def _start_producers(q: Any, plan: Any) -> list[Any]:
    procs = []
    targets = {
        "ok": queues.produce_then_sentinel,
        "crash": queues.produce_then_crash,
        "linger": queues.produce_then_linger,
    }
    for k, (kind, name, count, seconds) in enumerate(plan):
        procs.append(
            multiprocessing.Process(
                target=targets[kind], args=(q, name, count, seconds), name=f"producer {k} {name}"
            )
        )
    for p in procs:
        p.start()
    return procs


def _watch_ends(procs: list[Any], stop: threading.Event) -> dict[str, float]:
    """Record (in a thread) the moment each producer process ended."""
    ended: dict[str, float] = {}

    def watch() -> None:
        while len(ended) < len(procs) and not stop.is_set():
            for p in procs:
                if p.name not in ended and p.exitcode is not None:
                    ended[p.name] = time.monotonic()
            time.sleep(0.01)

    threading.Thread(target=watch, name="producer-watch", daemon=True).start()
    return ended


def _call_in_thread(func: Any, args: tuple) -> Any:
    """Start ``func(*args)`` in a daemon thread; return ``result(timeout)``, which gives
    ``({"value": ...} or {"error": exc} or {} if still running, the moment it returned)``."""
    outcome: dict[str, Any] = {}
    returned: list[float] = []

    def call() -> None:
        try:
            outcome["value"] = func(*args)
        except BaseException as exc:  # reported as a hint, not as a traceback
            outcome["error"] = exc
        returned.append(time.monotonic())

    worker = threading.Thread(target=call, name="learner-answer", daemon=True)
    worker.start()

    def result(timeout: float) -> tuple[dict[str, Any], float]:
        worker.join(timeout)
        snapshot = dict(outcome)
        return snapshot, (returned[0] if returned and snapshot else time.monotonic())

    return result


def check_gather(gather: Any, *, timeout: float = 6.0) -> None:
    """Exercise 1: ``gather(q, producers)`` returns every item put by ``producers``, each of
    which signs off with ``None`` unless it crashes first; it returns soon after the last
    producer has ended, and does not mistake a slow producer for a finished one.
    """
    require_function(gather, "gather")
    # 0. No producers at all.
    q: Any = queue.Queue()
    outcome = call_with_timeout(gather, (q, []), 2.0)
    if not outcome:
        fail(
            "gather(q, []) did not return within 2 s: with no producers there is nothing "
            "to wait for"
        )
    _judge_gather(outcome, Counter(), 2.0, "with no producers")

    # 1. The scenarios, side by side (each gather call in its own thread).
    runs = []
    try:
        # The producers that end before gather is called go first, so that the others are
        # still at work (or pausing) when gather starts.
        for what, plan, first in sorted(GATHER_SCENARIOS, key=lambda scenario: not scenario[2]):
            q = multiprocessing.Queue()
            runs.append({"what": what, "plan": plan, "first": first, "q": q, "stop": None})
            runs[-1]["procs"] = _start_producers(q, plan)
            deadline = time.monotonic() + 10
            while first and any(p.is_alive() for p in runs[-1]["procs"]):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
        for run in runs:
            run["stop"] = threading.Event()
            run["ended"] = _watch_ends(run["procs"], run["stop"])
            run["call"] = _call_in_thread(gather, (run["q"], list(run["procs"])))
        deadline = time.monotonic() + timeout
        for run in runs:
            outcome, returned = run["call"](max(0.0, deadline - time.monotonic()))
            run["outcome"], run["returned"] = outcome, returned
            run["ended_before_return"] = {
                name: at for name, at in dict(run["ended"]).items() if at <= returned
            }
            if not outcome:
                for _ in range(20):
                    run["q"].put(None)  # release a gather waiting for more
    finally:
        for run in runs:
            if run["stop"] is not None:
                run["stop"].set()
        # Every verdict is settled by now (the moments the producers ended were recorded
        # above): stop whichever producers are still running (pausing, lingering, or stuck
        # with items nobody read) instead of waiting for them.
        stop_processes([p for run in runs for p in run.get("procs", [])], timeout=0.3)
        for run in runs:
            run["q"].cancel_join_thread()
            run["q"].close()
    for run in runs:
        plan, outcome = run["plan"], run["outcome"]
        expected = Counter((name, i) for kind, name, count, _ in plan for i in range(count))
        where = f"with {run['what']}"
        if not outcome and any(kind == "crash" for kind, *_ in plan):
            fail(
                f"gather did not return within {timeout:.0f} s {where}: a producer that "
                "crashed never sends its None. Wait with get(timeout=...) and, when nothing "
                "comes, look at the producer processes."
            )
        _judge_gather(outcome, expected, timeout, where)
        ended = run["ended_before_return"]
        lingered = [
            p.name
            for p, (kind, *_) in zip(run["procs"], plan, strict=True)
            if kind == "linger" and p.name in ended
        ]
        expect(
            not lingered,
            f"{where}: gather returned only after the producer that had sent its None ended "
            "too; a producer is done with you at its None, even if its process goes on",
        )
        if not run["first"] and len(ended) == len(plan):
            late = run["returned"] - max(ended.values())
            expect(
                late < GATHER_LATENESS,
                f"{where}: gather returned {late:.1f} s after the last producer had ended; "
                "notice sooner (within about a second) that nobody is left to send anything",
            )
    passed(
        "every item arrived, from producers that finished, crashed, paused or had already "
        "ended, and you stopped soon after the last one"
    )


# ---- Exercise 2 ---------------------------------------------------------------------------

# (sizes, n_workers) tried in turn; blocks of 100 kB and more don't fit into a queue's pipe.
BLOCK_CASES = (
    ([300_000, 7, 150_000, 0, 120_000, 7, 64], 3),
    ([], 1),
)


def _describe(blocks: Any) -> str:
    if not isinstance(blocks, list):
        return repr(type(blocks).__name__)
    parts = []
    for block in blocks[:8]:
        if isinstance(block, (bytes, bytearray)) and block:
            parts.append(f"{len(block)} x {block[0]}")
        elif isinstance(block, (bytes, bytearray)):
            parts.append("b''")
        else:
            parts.append(type(block).__name__)
    return "[" + ", ".join(parts) + (", ...]" if len(blocks) > 8 else "]")


class _ProcessWatch:
    """Record every Process started (and joined) while the learner's function runs."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.joined: set[int] = set()
        self.targets: dict[int, Any] = {}
        self._cls = multiprocessing.process.BaseProcess
        self._start = self._cls.start
        self._join = self._cls.join

    def __enter__(self) -> _ProcessWatch:
        watch = self

        def start(process: Any) -> None:
            watch.targets[id(process)] = getattr(process, "_target", None)  # start() drops it
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


def check_parallel_blocks(parallel_blocks: Any, *, timeout: float = 6.0) -> None:
    """Exercise 2: ``parallel_blocks(sizes, n_workers)`` makes the blocks in ``n_workers``
    processes running :func:`helpers.queues.make_block` and returns them in input order,
    after joining every worker. Some blocks are too big for a queue's pipe, so joining the
    workers before collecting their results hangs.
    """
    require_function(parallel_blocks, "parallel_blocks")
    for sizes, n_workers in BLOCK_CASES:
        where = f"parallel_blocks({_short(sizes)}, n_workers={n_workers})"
        with _ProcessWatch() as watch:
            outcome = call_with_timeout(parallel_blocks, (list(sizes), n_workers), timeout)
        still_running = [p for p in watch.started if p.exitcode is None]
        stop_processes(still_running, timeout=1.0)
        if not outcome:
            fail(
                f"{where} did not return within {timeout:.0f} s ({len(still_running)} "
                "worker(s) still running, now stopped). A worker that has put a big block "
                "can't exit until someone gets it; and one None stops one worker."
            )
        if "error" in outcome:
            exc = outcome["error"]
            fail(f"{where} raised {type(exc).__name__}: {exc}")
        value = outcome["value"]
        expect(value is not None, "parallel_blocks returned None: return the list of blocks")
        expect(
            len(watch.started) == n_workers,
            f"{where}: you started {len(watch.started)} process(es): start n_workers "
            "processes running queues.make_block(tasks, results)",
        )
        expect(
            all(watch.targets.get(id(p)) is queues.make_block for p in watch.started),
            f"{where}: your processes run {[watch.targets.get(id(p)) for p in watch.started]}: "
            "the blocks should be made by processes running queues.make_block",
        )
        expected = [bytes([i % 256]) * size for i, size in enumerate(sizes)]
        expect(
            isinstance(value, list),
            f"parallel_blocks should return a list, got {type(value).__name__}",
        )
        if value != expected:
            if len(value) == len(expected) and sorted(value) == sorted(expected):
                fail(
                    f"{where}: all the blocks are there, but in the order they arrived, not "
                    "in input order: each result carries its index, put it back there"
                )
            fail(
                f"{where}: expected blocks (size x byte) {_describe(expected)}, got "
                f"{_describe(value)}"
            )
        unjoined = [p for p in watch.started if id(p) not in watch.joined]
        expect(
            not unjoined and not still_running,
            f"{where}: {len(unjoined)} worker(s) were not joined when parallel_blocks "
            "returned: after collecting every result, join() each worker",
        )
        expect(
            all(p.exitcode == 0 for p in watch.started),
            f"{where}: workers exited with codes {[p.exitcode for p in watch.started]}: "
            "stop them with one None each, not terminate()",
        )
    passed(
        f"{len(BLOCK_CASES)} runs, blocks up to 300 kB in input order, every worker joined "
        "after its results were collected"
    )


def _short(sizes: Any) -> str:
    text = repr(list(sizes))
    return text if len(text) < 40 else text[:36] + "...]"
