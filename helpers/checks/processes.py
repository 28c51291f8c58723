"""Checks for the exercises in chapter 01 (processes and start methods)."""

from __future__ import annotations

import multiprocessing
import signal
import threading
import time
from multiprocessing.process import BaseProcess
from typing import Any

from helpers import processes
from helpers.checks import expect, fail, passed, stop_processes

__all__ = [
    "DEADLINE_JOBS",
    "EXIT_CASES",
    "check_run_with_deadline",
    "check_exit_codes",
    "measure_exit_codes",
]

# The jobs the deadline exercise is checked with: two quick ones, one that exits with 3,
# and two that would sleep 30 s (two, so that waiting the whole deadline per process shows).
DEADLINE = 2.5  # generous: a spawned child may need a second to start on a busy machine
DEADLINE_JOBS = (
    (processes.nap, (0.0,)),
    (processes.nap, (30,)),
    (processes.exit_with, (3,)),
    (processes.nap, (30,)),
    (processes.nap, (0.1,)),
)
DEADLINE_CODES = [0, -signal.SIGTERM, 3, -signal.SIGTERM, 0]


class _Watch:
    """Record the processes started and joined while it is active (any start method)."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.joined: set[int] = set()
        self.last_start = 0.0

    def __enter__(self) -> _Watch:
        real_start, real_join = BaseProcess.start, BaseProcess.join
        watch = self

        def start(self: Any) -> None:
            real_start(self)
            watch.started.append(self)
            watch.last_start = time.monotonic()

        def join(self: Any, timeout: float | None = None) -> None:
            real_join(self, timeout)
            if self.exitcode is not None:
                watch.joined.add(id(self))

        self._saved = (real_start, real_join)
        BaseProcess.start, BaseProcess.join = start, join  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc_info: object) -> None:
        BaseProcess.start, BaseProcess.join = self._saved  # type: ignore[method-assign]


def check_run_with_deadline(run_with_deadline: Any, *, timeout: float = 8.0) -> None:
    """Check ``run_with_deadline(jobs, seconds) -> exit codes`` on :data:`DEADLINE_JOBS`.

    One process per job, all started at once, one shared deadline of ``seconds``, the
    late ones terminated, every process joined, the exit codes returned in job order.
    The learner's function runs in a thread: if it is still waiting after ``timeout``
    seconds, the check terminates the children it started (which frees it) and fails.
    """
    expect(
        callable(run_with_deadline),
        "pass the function itself: check_run_with_deadline(run_with_deadline)",
    )
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["value"] = run_with_deadline(list(DEADLINE_JOBS), DEADLINE)
            outcome["returned"] = time.monotonic()
        except BaseException as exc:  # reported as a hint, not as a traceback
            outcome["error"] = exc

    with _Watch() as watch:
        worker = threading.Thread(target=call, name="run_with_deadline", daemon=True)
        worker.start()
        worker.join(timeout)
        hung = worker.is_alive()
        joined = set(watch.joined)  # by the learner's code, not by the clean-up below
        stuck = stop_processes(list(watch.started), timeout=0 if hung else 3)
        worker.join(5)
    if hung:
        fail(
            f"run_with_deadline was still waiting after {timeout:.0f} s, so the check stopped "
            "its children. A plain join() waits for a child however long it runs: give each "
            "join() a timeout, the time left until the deadline"
        )
    if "error" in outcome:
        exc = outcome["error"]
        fail(f"run_with_deadline raised {type(exc).__name__}: {exc}")
    codes = outcome.get("value")
    expect(codes is not None, "run_with_deadline returned None: return the list of exit codes")
    expect(
        isinstance(codes, list),
        f"run_with_deadline should return a list of exit codes, got {type(codes).__name__}",
    )
    started = watch.started
    expect(
        len(started) == len(DEADLINE_JOBS),
        f"{len(started)} processes were started for {len(DEADLINE_JOBS)} jobs: start one "
        "Process per job",
    )
    waited = outcome["returned"] - watch.last_start
    expect(
        waited < DEADLINE + 1.0,
        f"run_with_deadline waited {waited:.1f} s after starting the children, with a deadline "
        f"of {DEADLINE:g} s: one deadline is shared by all of them. Compute it once "
        "(time.monotonic() + seconds) and give each join() only the time left until it",
    )
    expect(
        not stuck,
        f"{len(stuck)} process(es) were still running after run_with_deadline returned: "
        "terminate() the ones still alive at the deadline",
    )
    expect(
        all(id(p) in joined for p in started),
        "a process was never joined after it ended: join() every process, also after "
        "terminate() (a terminated process's exit code is only known once it is joined)",
    )
    expect(
        len(codes) == len(DEADLINE_JOBS),
        f"got {len(codes)} exit codes for {len(DEADLINE_JOBS)} jobs: one per job",
    )
    expect(
        None not in codes,
        f"exit codes {codes}: None means that process had not ended when you read its "
        "exitcode: join() it first (after terminate() too)",
    )
    expect(
        codes == DEADLINE_CODES,
        f"exit codes {codes}, expected {DEADLINE_CODES}: return p.exitcode of each process, "
        "in the order of the jobs",
    )
    passed(
        f"exit codes {codes}: the two 30 s jobs were stopped at the {DEADLINE:g} s deadline "
        f"(returned {waited:.1f} s after the last start)"
    )


# Each case of the exit-code exercise: how the child ends, and why it gets its code.
EXIT_CASES = {
    "returns 42": (
        processes.return_value,
        (42,),
        "Process throws the target's return value away; exit code 0 just means "
        "run() finished without an exception",
    ),
    "calls sys.exit()": (
        processes.exit_with,
        (None,),
        "sys.exit() with no argument (None) means success",
    ),
    "calls sys.exit('bye')": (
        processes.exit_with,
        ("bye",),
        "sys.exit() with a non-integer prints it to stderr and exits with 1",
    ),
    "calls sys.exit(300)": (
        processes.exit_with,
        (300,),
        "on Linux and macOS an exit status is one byte: sys.exit(n) gives n & 0xFF, "
        "that is n % 256",
    ),
}


def measure_exit_codes() -> dict[str, int | None]:
    """Run each case of :data:`EXIT_CASES` in a spawned child and return its exit code."""
    ctx = multiprocessing.get_context("spawn")
    procs = {}
    with processes.captured_stderr():  # the 'bye' child writes to stderr
        for name, (target, args, _) in EXIT_CASES.items():
            procs[name] = ctx.Process(target=target, args=args)
            procs[name].start()
        for p in procs.values():
            p.join(timeout=30)
    for p in procs.values():
        if p.is_alive():  # never expected; don't leave a child behind
            p.kill()
            p.join()
    return {name: p.exitcode for name, p in procs.items()}


def check_exit_codes(predicted: Any) -> None:
    """Compare predicted exit codes with the ones real children produce."""
    expect(
        isinstance(predicted, dict),
        f"predicted must be a dict (case -> exit code), got {type(predicted).__name__}",
    )
    missing = [case for case in EXIT_CASES if case not in predicted]
    expect(not missing, f"predicted is missing these cases: {missing}")
    for case, code in predicted.items():
        expect(case in EXIT_CASES, f"{case!r} is not one of the cases: {list(EXIT_CASES)}")
        expect(
            isinstance(code, int) and not isinstance(code, bool),
            f"predict an int for {case!r} (the value of p.exitcode), got {code!r}",
        )
    actual = measure_exit_codes()
    wrong = [case for case in EXIT_CASES if predicted[case] != actual[case]]
    if wrong:
        case = wrong[0]
        fail(f"a child that {case} does not exit with {predicted[case]}: {EXIT_CASES[case][2]}")
    passed(f"real children exited with {actual}")
