"""Checks for the exercises in chapter 01 (processes and start methods)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from helpers import processes
from helpers.checks import expect, fail, passed, stop_processes

__all__ = [
    "DEADLINE_BATCHES",
    "MIRROR_BATCHES",
    "check_run_with_deadline",
    "check_first_success",
]

TERMINATED = -signal.SIGTERM if hasattr(signal, "SIGTERM") else None
nap, exit_with = processes.nap, processes.exit_with

# The batches the deadline exercise is checked with: (jobs, seconds, expected exit codes).
# The first finishes long before its deadline; in the second, two jobs would sleep 30 s (two,
# so that waiting the whole deadline per process shows) and one needs some of the deadline.
DEADLINE_BATCHES = (
    (((nap, (0.0,)), (exit_with, (3,)), (nap, (0.1,))), 4.0, [0, 3, 0]),
    (
        ((nap, (30,)), (exit_with, (3,)), (nap, (30,)), (nap, (0.3,))),
        2.5,  # generous: a spawned child may need a second or more to start on a busy machine
        [TERMINATED, 3, TERMINATED, 0],
    ),
)
# The batches the mirror exercise is checked with: (jobs, seconds, the index to return).
# In the first, a failure ends first, and the quickest success is not the first in the list.
MIRROR_BATCHES = (
    (((exit_with, (2,)), (nap, (30,)), (nap, (1.5,)), (nap, (0.2,))), 5.0, 3),
    (((exit_with, (1,)), (nap, (30,))), 0.8, None),
)


class _Watch:
    """Record the processes started and joined while active, and when each one ended.

    A monitor thread waits on (copies of) the processes' sentinels, so it learns when each
    child ends without reaping it: the learner's code still has to join them.
    """

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.joined: set[int] = set()
        self.ended: dict[int, float] = {}  # id(process) -> time.monotonic() it ended
        self.last_start = 0.0
        self.cpu_at_last_start = 0.0  # time.process_time() then
        self._handles: dict[Any, Any] = {}  # sentinel copy -> process
        self._lock = threading.Lock()
        self._done = threading.Event()

    def __enter__(self) -> _Watch:
        real_start, real_join = BaseProcess.start, BaseProcess.join
        watch = self

        def start(self: Any) -> None:
            real_start(self)
            with watch._lock:
                watch.started.append(self)
                watch.last_start = time.monotonic()
                watch.cpu_at_last_start = time.process_time()
                copy = os.dup(self.sentinel) if sys.platform != "win32" else self.sentinel
                watch._handles[copy] = self

        def join(self: Any, timeout: float | None = None) -> None:
            real_join(self, timeout)
            if self.exitcode is not None:
                watch.joined.add(id(self))

        self._saved = (real_start, real_join)
        BaseProcess.start, BaseProcess.join = start, join  # type: ignore[method-assign]
        self._monitor = threading.Thread(target=self._watch_ends, daemon=True)
        self._monitor.start()
        return self

    def _watch_ends(self) -> None:
        while not self._done.is_set():
            with self._lock:
                pending = [h for h, p in self._handles.items() if id(p) not in self.ended]
            if not pending:
                time.sleep(0.01)
                continue
            for handle in wait(pending, timeout=0.02):
                self.ended.setdefault(id(self._handles[handle]), time.monotonic())

    def __exit__(self, *exc_info: object) -> None:
        BaseProcess.start, BaseProcess.join = self._saved  # type: ignore[method-assign]
        self._done.set()
        self._monitor.join(5)
        if sys.platform != "win32":
            for handle in self._handles:
                os.close(handle)


def _call(func: Any, jobs: tuple, seconds: float, timeout: float) -> dict[str, Any]:
    """Run ``func(list(jobs), seconds)`` in a thread, watching the processes it starts.

    Returns what happened: the value (or error), when it returned, the CPU time this process
    used meanwhile, the processes started and joined, when each ended, and which ones the
    check had to stop afterwards. Nothing is left running.
    """
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = func(list(jobs), seconds)
        except BaseException as exc:  # reported as a hint, not as a traceback
            outcome["error"] = exc
        outcome["returned"] = time.monotonic()
        outcome["cpu_at_return"] = time.process_time()

    with _Watch() as watch:
        worker = threading.Thread(target=call, name="learner-answer", daemon=True)
        worker.start()
        worker.join(timeout)
        outcome["hung"] = worker.is_alive()
        joined = set(watch.joined)  # by the learner's code, not by the clean-up below
        ended = dict(watch.ended)
        started = list(watch.started)
        outcome["stuck"] = stop_processes(started, timeout=0 if outcome["hung"] else 2)
        worker.join(5)
    outcome.update(started=started, joined=joined, ended=ended, last_start=watch.last_start)
    if "cpu_at_return" in outcome:  # CPU time this process used between last start and return
        outcome["cpu"] = outcome["cpu_at_return"] - watch.cpu_at_last_start
    return outcome


def _common(name: str, outcome: dict[str, Any], jobs: tuple, timeout: float) -> None:
    """The hints every answer of both exercises can need: hung, raised, wrong processes."""
    if outcome["hung"]:
        fail(
            f"{name} was still waiting after {timeout:.0f} s, so the check stopped its "
            "children. A plain join() waits for a child however long it runs: give each "
            "wait a timeout, the time left until the deadline"
        )
    if "error" in outcome:
        exc = outcome["error"]
        fail(f"{name} raised {type(exc).__name__}: {exc}")
    started = outcome["started"]
    expect(
        len(started) == len(jobs),
        f"{len(started)} processes were started for {len(jobs)} jobs: start one Process per "
        "job, all at once",
    )
    expect(
        not outcome["stuck"],
        f"{len(outcome['stuck'])} process(es) were still running after {name} returned: "
        "terminate() the ones you no longer wait for",
    )
    expect(
        all(id(p) in outcome["joined"] for p in started),
        "a process was never joined after it ended: join() every process, also after "
        "terminate() (a terminated process's exit code is only known once it is joined)",
    )


def check_run_with_deadline(run_with_deadline: Any, *, timeout: float = 8.0) -> None:
    """Check ``run_with_deadline(jobs, seconds) -> exit codes`` on :data:`DEADLINE_BATCHES`.

    One process per job, all started at once, one shared deadline of ``seconds`` (no
    shorter, and no waiting once every job has ended), the late ones terminated, every
    process joined, the exit codes returned in job order.
    """
    name = "run_with_deadline"
    expect(callable(run_with_deadline), f"pass the function itself: check_{name}({name})")
    for jobs, seconds, expected in DEADLINE_BATCHES:
        outcome = _call(run_with_deadline, jobs, seconds, timeout)
        _common(name, outcome, jobs, timeout)
        codes = outcome.get("value")
        expect(codes is not None, f"{name} returned None: return the list of exit codes")
        expect(
            isinstance(codes, list),
            f"{name} should return a list of exit codes, got {type(codes).__name__}",
        )
        waited = outcome["returned"] - outcome["last_start"]
        ended = outcome["ended"]
        all_ended = max(ended.values(), default=outcome["returned"])
        if TERMINATED in expected:
            expect(
                waited >= seconds - 0.1,
                f"with a deadline of {seconds:g} s, {name} stopped the children "
                f"{waited:.1f} s after starting them: give them all the time they are allowed",
            )
            expect(
                waited < seconds + 1.0,
                f"{name} waited {waited:.1f} s after starting the children, with a deadline of "
                f"{seconds:g} s: one deadline is shared by all of them. Compute it once "
                "(time.monotonic() + seconds) and give each join() only the time left until it",
            )
        else:
            expect(
                outcome["returned"] - all_ended < 1.0,
                f"every child had ended, but {name} returned "
                f"{outcome['returned'] - all_ended:.1f} s later (deadline {seconds:g} s): "
                "don't wait longer than the children need",
            )
        expect(
            len(codes) == len(jobs),
            f"got {len(codes)} exit codes for {len(jobs)} jobs: one per job",
        )
        expect(
            None not in codes,
            f"exit codes {codes}: None means that process had not ended when you read its "
            "exitcode: join() it first (after terminate() too)",
        )
        expect(
            codes == expected,
            f"exit codes {codes}, expected {expected}: return p.exitcode of each process, "
            "in the order of the jobs (and stop only the ones still running at the deadline)",
        )
    passed(
        "a batch that finished early returned at once; in the other, the two 30 s jobs were "
        f"stopped at the {DEADLINE_BATCHES[1][1]:g} s deadline and the 0.3 s job was not"
    )


def check_first_success(first_success: Any, *, timeout: float = 8.0) -> None:
    """Check ``first_success(jobs, seconds) -> index or None`` on :data:`MIRROR_BATCHES`.

    The index of the first job whose process exits with 0, returned as soon as it has
    ended; jobs that fail don't count; None once ``seconds`` have passed without a success;
    every other process stopped and joined; no CPU kept busy while waiting.
    """
    name = "first_success"
    expect(callable(first_success), f"pass the function itself: check_{name}({name})")
    for jobs, seconds, expected in MIRROR_BATCHES:
        outcome = _call(first_success, jobs, seconds, timeout)
        _common(name, outcome, jobs, timeout)
        value = outcome.get("value")
        waited = outcome["returned"] - outcome["last_start"]
        expect(
            outcome["cpu"] < 0.2 * max(waited, 0.5),
            f"{name} used {outcome['cpu']:.2f} s of CPU time while waiting {waited:.1f} s: a loop "
            "that keeps asking is_alive() keeps a CPU busy. Block until a child ends instead",
        )
        if expected is None:
            expect(
                value is None,
                f"no job succeeded within {seconds:g} s, but {name} returned {value!r}: a "
                "child that exits with a non-zero code, or is stopped, did not succeed",
            )
            expect(
                waited >= seconds - 0.1,
                f"with {seconds:g} s allowed, {name} gave up after {waited:.1f} s: wait until "
                "the deadline for a job that may still succeed",
            )
            expect(
                waited < seconds + 1.0,
                f"{name} returned {waited:.1f} s after starting the children, with "
                f"{seconds:g} s allowed: stop waiting at the deadline",
            )
            continue
        expect(
            value is not None,
            f"{name} returned None, but job {expected} exited with 0 "
            f"{'after' if expected else 'before'} another had failed: keep waiting for the "
            "others when a child fails",
        )
        expect(
            isinstance(value, int) and not isinstance(value, bool),
            f"{name} should return the index of a job (an int), got {type(value).__name__}",
        )
        if 0 <= value < len(outcome["started"]) and value != expected:
            code = outcome["started"][value].exitcode
            expect(
                code == 0,
                f"{name} returned {value}, but that child's exit code was {code}: a child that "
                "fails (or that you stopped) doesn't count. Keep waiting for the others",
            )
        expect(
            value == expected,
            f"{name} returned {value}, but job {expected} was the first to exit with 0 "
            f"(exit codes: {[p.exitcode for p in outcome['started']]}): return the index of the "
            "first child that ends with exit code 0",
        )
        winner = outcome["started"][expected]
        late = outcome["returned"] - outcome["ended"].get(id(winner), outcome["returned"])
        expect(
            late < 0.5,
            f"job {expected} succeeded, but {name} returned {late:.1f} s later: wait for "
            "whichever child ends first, not for the children in order",
        )
    passed(
        "the first child to exit with 0 won, failures were skipped, the rest were stopped, and "
        "None came back at the deadline when nothing succeeded"
    )
